//! The statistics `compare` needs: Welch's t-test, with the Student t distribution through the
//! regularized incomplete beta function.
//!
//! Welch rather than Mann-Whitney: CI runs have few repeats (3 is common), and with 3 against 3
//! Mann-Whitney's smallest possible two-sided p is 0.1, so it could never flag anything.

/// Mean and sample variance (n-1); `None` for fewer than two values.
pub fn mean_var(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.len() < 2 {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some((mean, var))
}

/// Two-sided p-value of Welch's t-test that `a` and `b` have the same mean; `None` when either
/// has fewer than two values.
pub fn welch_p_value(a: &[f64], b: &[f64]) -> Option<f64> {
    let (ma, va) = mean_var(a)?;
    let (mb, vb) = mean_var(b)?;
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (sa, sb) = (va / na, vb / nb);
    let se2 = sa + sb;
    if se2 <= 0.0 || !se2.is_finite() {
        // No spread at all: equal means are the same, different ones are certainly different.
        return Some(
            if (ma - mb).abs() <= f64::EPSILON * ma.abs().max(mb.abs()) {
                1.0
            } else {
                0.0
            },
        );
    }
    let t = (ma - mb) / se2.sqrt();
    let df = se2 * se2 / (sa * sa / (na - 1.0) + sb * sb / (nb - 1.0));
    Some(student_t_two_sided(t, df))
}

/// The smallest difference of means that Welch's test at level `alpha` would find with
/// probability `power`, given the spread of `a` and `b`: `(t(alpha/2) + t(1 - power)) · SE`,
/// the usual normal-approximation power formula with Student's t at Welch's degrees of
/// freedom. `None` when either has fewer than two values.
pub fn welch_min_detectable(a: &[f64], b: &[f64], alpha: f64, power: f64) -> Option<f64> {
    let (_, va) = mean_var(a)?;
    let (_, vb) = mean_var(b)?;
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (sa, sb) = (va / na, vb / nb);
    let se2 = sa + sb;
    if se2 <= 0.0 || !se2.is_finite() {
        return Some(0.0);
    }
    let df = se2 * se2 / (sa * sa / (na - 1.0) + sb * sb / (nb - 1.0));
    // One-sided 1 - power is a two-sided tail of twice that.
    let t = student_t_critical(alpha, df) + student_t_critical(2.0 * (1.0 - power), df);
    Some(t * se2.sqrt())
}

/// The t with P(|T| >= t) = `p` for Student's t with `df` degrees of freedom (bisection: the
/// tail falls as t grows).
pub fn student_t_critical(p: f64, df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0e6f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_two_sided(mid, df) > p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// P(|T| >= |t|) for Student's t with `df` degrees of freedom.
pub fn student_t_two_sided(t: f64, df: f64) -> f64 {
    if !t.is_finite() {
        return 0.0;
    }
    let x = df / (df + t * t);
    reg_incomplete_beta(df / 2.0, 0.5, x).clamp(0.0, 1.0)
}

fn ln_gamma(x: f64) -> f64 {
    // Lanczos approximation (g = 7, n = 9), accurate to ~1e-15 for x > 0.
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// I_x(a, b), by the continued fraction (modified Lentz), as in Numerical Recipes.
pub fn reg_incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The fraction converges fast only below the mean; use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-14 {
            break;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_values_match_tables() {
        // Student's t tables: two-sided 5% at 2, 4 and 10 degrees of freedom; one-sided 20%.
        for (p, df, t) in [
            (0.05, 2.0, 4.303),
            (0.05, 4.0, 2.776),
            (0.05, 10.0, 2.228),
            (0.4, 4.0, 0.941),
        ] {
            let got = student_t_critical(p, df);
            assert!(
                (got - t).abs() < 1e-3,
                "t({p}, {df}) = {got}, tables say {t}"
            );
        }
    }

    #[test]
    fn the_detection_limit_shrinks_with_repeats_and_grows_with_spread() {
        let three = [100.0, 104.0, 96.0];
        let mde3 = welch_min_detectable(&three, &three, 0.05, 0.8).expect("mde");
        // (t(0.05, 4) + t(0.4, 4)) · sqrt(2 · 16 / 3) = (2.776 + 0.941) · 3.266
        assert!((mde3 - 12.14).abs() < 0.05, "{mde3}");
        let six = [100.0, 104.0, 96.0, 100.0, 104.0, 96.0];
        assert!(welch_min_detectable(&six, &six, 0.05, 0.8).expect("mde") < mde3);
        let wide = [100.0, 108.0, 92.0];
        assert!(welch_min_detectable(&wide, &wide, 0.05, 0.8).expect("mde") > mde3);
        assert_eq!(welch_min_detectable(&[1.0], &three, 0.05, 0.8), None);
    }

    #[test]
    fn t_distribution_matches_tables() {
        // Two-sided critical values: t(0.975; 4) = 2.776, t(0.975; 10) = 2.228, t(0.995; 2) = 9.925.
        assert!((student_t_two_sided(2.776, 4.0) - 0.05).abs() < 1e-3);
        assert!((student_t_two_sided(2.228, 10.0) - 0.05).abs() < 1e-3);
        assert!((student_t_two_sided(9.925, 2.0) - 0.01).abs() < 1e-3);
        assert!((student_t_two_sided(0.0, 7.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn welch_separates_clearly_different_samples() {
        let a = [100.0, 101.0, 99.5];
        let b = [150.0, 149.0, 151.5];
        assert!(welch_p_value(&a, &b).unwrap() < 0.001);
        let c = [100.5, 99.0, 101.0];
        assert!(welch_p_value(&a, &c).unwrap() > 0.5);
        assert_eq!(welch_p_value(&a, &[1.0]), None);
        assert_eq!(welch_p_value(&[2.0, 2.0], &[2.0, 2.0]), Some(1.0));
        assert_eq!(welch_p_value(&[2.0, 2.0], &[3.0, 3.0]), Some(0.0));
    }
}

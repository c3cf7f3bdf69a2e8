//! Reads a soak run's `run.json` (benches/soak.sh) and says whether what could leak stayed
//! flat: per component its heap, threads and open connections, and the process's resident
//! memory, descriptors and threads, one sample a minute after the warmup. A leak is a trend:
//! the median of the last five minutes is judged against the median of the first five (within
//! ±5%, or within an allowance for figures too small for a share to mean anything: 64 KiB of
//! heap, a thread, the four connections of the churn flow). The largest momentary change is
//! shown beside it. Components are threads of one process: resident memory and
//! descriptors exist only for the process as a whole, so they are judged there; a component's
//! memory is its heap (its own jemalloc arena).
//!
//! `cargo run --release -p meshsim-results --example soak_check -- RUN.json [TOLERANCE]`

use results::RunResult;

/// The sample nearest `t` seconds.
fn at(t_s: &[f64], v: &[f64], t: f64) -> Option<f64> {
    let i = t_s
        .iter()
        .enumerate()
        .min_by(|a, b| (a.1 - t).abs().total_cmp(&(b.1 - t).abs()))?
        .0;
    v.get(i).copied()
}

/// Per-minute samples from `from_s` on; the first is the baseline.
fn minutes(t_s: &[f64], v: &[f64], from_s: f64) -> Vec<f64> {
    let end = t_s.last().copied().unwrap_or(0.0);
    let mut out = Vec::new();
    let mut t = from_s;
    while t <= end + 0.5 {
        if let Some(x) = at(t_s, v, t) {
            out.push(x);
        }
        t += 60.0;
    }
    out
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// Largest relative change from the first sample (absolute when the first is 0).
fn drift(v: &[f64]) -> f64 {
    let Some(&v0) = v.first() else { return 0.0 };
    v.iter()
        .map(|x| {
            if v0 == 0.0 {
                (x - v0).abs()
            } else {
                (x / v0 - 1.0).abs()
            }
        })
        .fold(0.0, f64::max)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: soak_check RUN.json [TOLERANCE]")?;
    let tol: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0.05);
    let run = RunResult::load(&path)?;
    let warmup_s = run
        .scenario
        .scenario
        .flows
        .iter()
        .map(|f| f.warmup.0.as_secs_f64())
        .fold(0.0, f64::max);
    // The baseline is the first minute after the warmup.
    let from = warmup_s + 60.0;
    let mut flat = true;
    for m in run.sorted_modes() {
        println!(
            "\n## {} (from {:.0} s, one sample a minute)\n",
            m.mode, from
        );
        println!(
            "| what | first 5 min (median) | last 5 min (median) | trend | min | max | largest momentary change | flat |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---|");
        // `allow`: the absolute change that is no leak whatever its share.
        let mut row = |what: String, v: Vec<f64>, allow: f64| {
            if v.is_empty() {
                return;
            }
            let k = v.len().min(5);
            let (first, last) = (median(&v[..k]), median(&v[v.len() - k..]));
            let trend = if first > 0.0 { last / first - 1.0 } else { 0.0 };
            let ok = (last - first).abs() <= allow || trend.abs() <= tol;
            flat &= ok;
            let (lo, hi) = v
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
            println!(
                "| {what} | {first:.2} | {last:.2} | {:+.1}% | {lo:.2} | {hi:.2} | {:.1}% | {} |",
                trend * 100.0,
                drift(&v) * 100.0,
                if ok { "yes" } else { "**no**" }
            );
        };
        let p = &m.process;
        let as_f = |v: &[u64]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        row(
            "process RSS MiB".into(),
            minutes(&p.t_s, &p.rss_mib, from),
            0.0,
        );
        let fds = minutes(&p.t_s, &as_f(&p.fds), from);
        row("process descriptors".into(), fds, 4.0);
        let threads = minutes(&p.t_s, &as_f(&p.threads), from);
        row("process threads".into(), threads, 1.0);
        for c in &m.components {
            let s = &c.series;
            row(
                format!("{} heap MiB", c.name),
                minutes(&s.t_s, &s.heap_mib, from),
                1.0 / 16.0,
            );
            let threads = minutes(&s.t_s, &as_f(&s.threads), from);
            row(format!("{} threads", c.name), threads, 1.0);
            // The churn flow's connections come and go: up to its 4 at a sample.
            let conns = minutes(&s.t_s, &as_f(&s.connections_active), from);
            row(format!("{} open connections", c.name), conns, 4.0);
        }
    }
    println!(
        "\n{}",
        if flat {
            format!(
                "FLAT: every figure within ±{:.0}% after the warmup",
                tol * 100.0
            )
        } else {
            format!(
                "NOT FLAT: some figure moved more than ±{:.0}% after the warmup",
                tol * 100.0
            )
        }
    );
    if !flat {
        std::process::exit(1);
    }
    Ok(())
}

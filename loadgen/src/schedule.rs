//! The open loop's schedule within a step: request `i` is intended when the step's rate,
//! integrated from its start, reaches `i`. One rate makes that `i / rate`; a surge window
//! runs at its own rate meanwhile, so requests bunch up there exactly as the rate says.

use std::time::Duration;

/// A window of each step at another rate (a traffic surge).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Surge {
    /// From the step's start (its warmup included).
    pub at: Duration,
    pub duration: Duration,
    /// Requests per second while it lasts.
    pub rate: f64,
}

/// Piecewise-constant rate: segments `(start s, requests intended before it, rate)`.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    segs: Vec<(f64, f64, f64)>,
}

impl Schedule {
    /// `base` everywhere but in `surges` (sorted, not overlapping: the spec checks).
    pub fn new(base: f64, surges: &[Surge]) -> Schedule {
        let mut segs = vec![(0.0, 0.0, base)];
        let mut push = |t: f64, rate: f64| {
            let &(t0, n0, r0) = segs.last().expect("never empty");
            segs.push((t, n0 + (t - t0) * r0, rate));
        };
        for s in surges {
            let a = s.at.as_secs_f64();
            push(a, s.rate);
            push(a + s.duration.as_secs_f64(), base);
        }
        Schedule { segs }
    }

    /// Requests intended before `t` into the step (fractional).
    pub fn count(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        let &(t0, n0, r) = self
            .segs
            .iter()
            .rev()
            .find(|s| s.0 <= t)
            .unwrap_or(&self.segs[0]);
        n0 + (t - t0) * r
    }

    /// When request `i` is intended, from the step's start.
    pub fn time_of(&self, i: u64) -> Duration {
        let i = i as f64;
        let &(t0, n0, r) = self
            .segs
            .iter()
            .rev()
            .find(|s| s.1 <= i)
            .unwrap_or(&self.segs[0]);
        Duration::from_secs_f64(t0 + (i - n0) / r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rate_is_i_over_rate() {
        let s = Schedule::new(100.0, &[]);
        assert_eq!(s.time_of(250), Duration::from_millis(2500));
        assert!((s.count(Duration::from_secs(3)) - 300.0).abs() < 1e-9);
    }

    #[test]
    fn a_surge_sends_its_rate_for_its_window_then_the_base_again() {
        let s = Schedule::new(
            100.0,
            &[Surge {
                at: Duration::from_secs(2),
                duration: Duration::from_secs(1),
                rate: 1000.0,
            }],
        );
        // 200 before the surge, 1000 in its second, then 100/s again.
        assert!((s.count(Duration::from_secs(2)) - 200.0).abs() < 1e-9);
        assert!((s.count(Duration::from_secs(3)) - 1200.0).abs() < 1e-9);
        assert!((s.count(Duration::from_secs(4)) - 1300.0).abs() < 1e-9);
        assert_eq!(s.time_of(200), Duration::from_secs(2));
        assert_eq!(s.time_of(700), Duration::from_millis(2500));
        assert_eq!(s.time_of(1250), Duration::from_millis(3500));
        // Every request's time inverts its count.
        for i in [0u64, 199, 201, 1199, 1201, 5000] {
            assert!((s.count(s.time_of(i)) - i as f64).abs() < 1e-6, "{i}");
        }
    }
}

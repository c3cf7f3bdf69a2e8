//! The highest rate that still meets a criterion, found by running rate steps: bracketing
//! (doubling up, or halving down, until a step passes and one fails), then bisecting between
//! the highest passing rate and the lowest failing one until they are within a precision, as
//! Nighthawk's adaptive load controller searches (its binary-search step controller).

/// Where a search stands, fed one step's verdict at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSearch {
    /// Highest rate that passed.
    pub passed: Option<f64>,
    /// Lowest rate that failed.
    pub failed: Option<f64>,
    /// Stop bisecting when (failed − passed) / failed is at most this.
    pub precision: f64,
    pub max_rate: f64,
    pub min_rate: f64,
    /// Steps at most, bracketing included.
    pub max_steps: usize,
    steps: usize,
}

impl RateSearch {
    /// Stops at 5% precision, 12 steps, 1..1 000 000 rps.
    pub fn new() -> RateSearch {
        RateSearch {
            passed: None,
            failed: None,
            precision: 0.05,
            max_rate: 1_000_000.0,
            min_rate: 1.0,
            max_steps: 12,
            steps: 0,
        }
    }

    /// Records that a step at `rate` passed or not; returns the next rate to try, or `None`
    /// when the search is done.
    pub fn after(&mut self, rate: f64, ok: bool) -> Option<f64> {
        self.steps += 1;
        if ok {
            self.passed = Some(self.passed.map_or(rate, |p| p.max(rate)));
        } else {
            self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
        }
        if self.steps >= self.max_steps {
            return None;
        }
        let next = match (self.passed, self.failed) {
            (Some(p), None) => (p * 2.0).min(self.max_rate),
            (None, Some(f)) => f / 2.0,
            (Some(p), Some(f)) => {
                if (f - p) / f <= self.precision {
                    return None;
                }
                (p + f) / 2.0
            }
            (None, None) => return None,
        };
        // Nothing new to learn at a bound already tried.
        let tried = |r: f64| self.passed == Some(r) || self.failed == Some(r);
        (next >= self.min_rate && !tried(next)).then_some((next * 10.0).round() / 10.0)
    }
}

impl Default for RateSearch {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A system that holds up to 3 300 rps: doubled from 100 to a failure at 6 400, then
    /// bisected to within 5%.
    #[test]
    fn brackets_then_bisects_to_the_precision() {
        let mut s = RateSearch::new();
        let mut rate = 100.0;
        let mut tried = vec![];
        while let Some(next) = {
            tried.push(rate);
            s.after(rate, rate <= 3300.0)
        } {
            rate = next;
        }
        assert_eq!(
            &tried[..7],
            [100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0]
        );
        let (p, f) = (s.passed.unwrap(), s.failed.unwrap());
        assert!(p <= 3300.0 && f > 3300.0 && (f - p) / f <= 0.05, "{p}..{f}");
        assert!(tried.len() <= 12);
    }

    #[test]
    fn a_first_step_that_fails_halves_down() {
        let mut s = RateSearch::new();
        assert_eq!(s.after(1000.0, false), Some(500.0));
        assert_eq!(s.after(500.0, true), Some(750.0));
    }
}

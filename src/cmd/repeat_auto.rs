//! `meshsim run --repeat auto --detect 5%`: adds interleaved rounds until every proxy's CPU
//! per 1000 rps and every flow step's p50 are precise enough that a regression of the target
//! size would be found (4 times in 5) against a baseline of as many repeats, or the time
//! budget is spent; then says which figures did not get there.
//!
//! The limit is `compare`'s (Welch's test, p < 0.05, 80% power) with this run's spread on
//! both sides: a baseline run the same way has about the same. Only whole rounds are
//! replicates (interleaved, so independent); per-second samples inside a run are
//! autocorrelated and are not counted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use results::RunResult;
use results::run::ComponentKind;

/// Turns what the runner measured into run.json.
pub(super) type ToResult = dyn Fn(&results::raw::RawRun) -> results::RunResult + Send + Sync;

/// A figure and its detection limit in % of its mean (absent with one round, or a mean of
/// zero).
pub type Limit = (String, Option<f64>);

/// Each figure the goal covers, with its detection limit.
pub fn limits(run: &RunResult) -> Vec<Limit> {
    let mut out = Vec::new();
    let limit = |xs: &[f64]| {
        let mean = xs.iter().sum::<f64>() / xs.len().max(1) as f64;
        reports::stats::welch_min_detectable(
            xs,
            xs,
            reports::compare::P_THRESHOLD,
            reports::compare::POWER,
        )
        .filter(|_| mean != 0.0)
        .map(|d| d / mean.abs() * 100.0)
    };
    for mode in run.mode_names() {
        let reps = run.repeats_of(mode);
        let Some(first) = reps.first() else { continue };
        for kind in ComponentKind::ALL.into_iter().filter(|k| k.is_proxy()) {
            let xs: Vec<f64> = reps
                .iter()
                .filter_map(|m| m.summary.proxies.get(&kind)?.vcpu_per_1000rps)
                .collect();
            if !xs.is_empty() {
                out.push((
                    format!("{mode}: {kind} vCPU/1000 rps per proxy"),
                    limit(&xs),
                ));
            }
        }
        for flow in &first.flows {
            for (i, step) in flow.steps.iter().enumerate() {
                let xs: Vec<f64> = reps
                    .iter()
                    .filter_map(|m| {
                        let s = m.flows.iter().find(|f| f.name == flow.name)?.steps.get(i)?;
                        (s.latency.count > 0).then_some(s.latency.p50_us)
                    })
                    .collect();
                if xs.is_empty() {
                    continue;
                }
                let at = step
                    .target_rps
                    .map_or_else(|| "max".to_string(), |r| format!("{r} rps"));
                out.push((format!("{mode}: {} p50 @{at}", flow.name), limit(&xs)));
            }
        }
    }
    out
}

/// The goal, and what the last round left unreached.
pub struct AutoRepeat {
    pub detect_pct: f64,
    pub budget: Duration,
    started: Instant,
    unreached: Arc<Mutex<Vec<Limit>>>,
}

/// Rounds `--repeat auto` runs at most, whatever the budget: beyond it the spread is the
/// host's, and more rounds will not narrow it much (the limit shrinks as 1/√rounds).
pub const MAX_ROUNDS: u32 = 20;

impl AutoRepeat {
    pub fn new(detect_pct: f64, budget: Duration) -> AutoRepeat {
        AutoRepeat {
            detect_pct,
            budget,
            started: Instant::now(),
            unreached: Arc::default(),
        }
    }

    /// The runner's question after each round: one more?
    pub fn more(&self, to_result: Arc<ToResult>) -> sim::runner::MoreFn {
        let (detect, budget, started, unreached) = (
            self.detect_pct,
            self.budget,
            self.started,
            self.unreached.clone(),
        );
        Arc::new(move |raw: &results::raw::RawRun| {
            let run = to_result(raw);
            let missing: Vec<Limit> = limits(&run)
                .into_iter()
                .filter(|(_, l)| l.is_none_or(|l| l > detect))
                .collect();
            let rounds = raw.modes.iter().map(|m| m.repeat + 1).max().unwrap_or(0);
            let elapsed = started.elapsed();
            let per_round = elapsed / rounds.max(1);
            let fits = elapsed + per_round <= budget;
            let go = !missing.is_empty() && rounds < MAX_ROUNDS && fits;
            eprintln!(
                "repeat auto: after {rounds} round(s) ({:.0} s), {} figure(s) above the {detect}% detection limit{}",
                elapsed.as_secs_f64(),
                missing.len(),
                if go { "; one more round" } else { "" }
            );
            if let Ok(mut u) = unreached.lock() {
                *u = missing;
            }
            go
        })
    }

    /// What the run could not bring within the limit, one line each (none: all did).
    pub fn report(&self) -> Vec<String> {
        let u = self.unreached.lock().map(|u| u.clone()).unwrap_or_default();
        u.into_iter()
            .map(|(f, l)| match l {
                Some(l) => format!(
                    "{f}: a regression smaller than {l:.1}% would not be seen (goal {}%)",
                    self.detect_pct
                ),
                None => format!("{f}: no spread estimate (fewer than two rounds measured it)"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_cover_each_proxy_kind_and_flow_step_and_shrink_with_rounds() {
        let two = results::testing::shaped_run(
            3,
            2,
            results::testing::Shape {
                slowdown: 1.0,
                repeat_noise: 0.05,
            },
        );
        let eight = results::testing::shaped_run(
            3,
            8,
            results::testing::Shape {
                slowdown: 1.0,
                repeat_noise: 0.05,
            },
        );
        let (l2, l8) = (limits(&two), limits(&eight));
        assert!(
            l2.iter()
                .any(|(f, _)| f == "sidecar: sidecar vCPU/1000 rps per proxy"),
            "{l2:?}"
        );
        assert!(l2.iter().any(|(f, _)| f.contains("p50 @")), "{l2:?}");
        // Two rounds estimate a spread poorly, so compare the figures' limits as a whole.
        let mean = |l: &[Limit]| l.iter().filter_map(|(_, v)| *v).sum::<f64>() / l.len() as f64;
        assert!(mean(&l8) < mean(&l2) / 2.0, "{l2:?} {l8:?}");
        let one = results::testing::sample_run(1, 1.0);
        assert!(limits(&one).iter().all(|(_, l)| l.is_none()));
    }
}

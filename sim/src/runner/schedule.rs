//! What a run will do, decided before anything starts: the (mode, repeat) schedule, how long
//! a mode's load lasts, and the checks of the options against the scenario.

use std::net::Ipv4Addr;
use std::time::Duration;

use scenario::{Loaded, Mode};

use super::{RunError, RunOptions};

/// Modes in the order they run: `opts.modes` or the scenario's, repeated and interleaved
/// (A B C A B C …) so slow drift of a shared machine hits every mode alike.
pub fn schedule(loaded: &Loaded, opts: &RunOptions) -> Vec<(Mode, u32)> {
    let modes = if opts.modes.is_empty() {
        loaded.scenario.modes.clone()
    } else {
        opts.modes.clone()
    };
    (0..opts.repeat)
        .flat_map(|r| modes.iter().map(move |m| (*m, r)))
        .collect()
}

/// The migration stages a mode applies live: the scenario's, in mode `declared` (the labels'
/// own mode); none in the others, which measure the scenario as written.
pub fn staged(loaded: &Loaded, mode: Mode) -> usize {
    match (&loaded.scenario.migration, mode) {
        (Some(m), Mode::Declared) => m.stages.len(),
        _ => 0,
    }
}

/// A migration run's step: every flow runs each stage with the longest warmup and duration
/// any flow asks for, so the stages start at the same moment for all of them.
pub fn stage_step(loaded: &Loaded, opts: &RunOptions) -> (Duration, Duration) {
    let fl = &loaded.scenario.flows;
    (
        opts.warmup
            .unwrap_or_else(|| fl.iter().map(|f| f.warmup.0).max().unwrap_or_default()),
        opts.duration
            .unwrap_or_else(|| fl.iter().map(|f| f.duration.0).max().unwrap_or_default()),
    )
}

/// Planned length of one mode's load: its longest flow (a migration: a step per stage).
pub fn planned_load_time(loaded: &Loaded, opts: &RunOptions) -> Duration {
    let stages = schedule(loaded, opts)
        .iter()
        .map(|&(m, _)| staged(loaded, m))
        .max()
        .unwrap_or(0);
    if stages > 0 {
        let (w, d) = stage_step(loaded, opts);
        return (w + d) * (stages as u32 + 1);
    }
    loaded
        .scenario
        .flows
        .iter()
        .map(|f| {
            // A search takes as many steps as it needs: planned at its most.
            let steps = if f.rate.is_search() {
                loadgen::search::RateSearch::new().max_steps as u32
            } else {
                f.rate.steps().len().max(1) as u32
            };
            (opts.warmup.unwrap_or(f.warmup.0) + opts.duration.unwrap_or(f.duration.0)) * steps
        })
        .max()
        .unwrap_or_default()
}

/// Checks the options against the scenario before anything starts.
pub fn check(loaded: &Loaded, opts: &RunOptions) -> Result<(), RunError> {
    if opts.repeat == 0 {
        return Err(RunError::NoRepeat);
    }
    if loaded.scenario.flows.is_empty() {
        return Err(RunError::NoFlows);
    }
    if opts.duration.is_some_and(|d| d.is_zero()) {
        return Err(RunError::ZeroTime { what: "--duration" });
    }
    for f in &loaded.scenario.flows {
        // The address does not matter for checking; the cluster gives the real one.
        let mut spec = super::flows::load_spec(f, Ipv4Addr::LOCALHOST, opts)?;
        spec.mode = loadgen::Mode::Closed;
        spec.validate().map_err(|e| RunError::Flow {
            flow: f.name.clone(),
            reason: e.to_string(),
        })?;
    }
    // Faults were checked against the flows' own durations; an override may cut them short.
    let (_, step) = stage_step(loaded, opts);
    for f in &loaded.scenario.faults {
        if f.at.0 + f.length() > step {
            return Err(RunError::Flow {
                flow: loaded
                    .scenario
                    .flows
                    .first()
                    .map(|f| f.name.clone())
                    .unwrap_or_default(),
                reason: format!(
                    "fault `{}` ends {} into the step, after its measured window ({}): give a longer --duration",
                    f.label(),
                    humantime::format_duration(f.at.0 + f.length()),
                    humantime::format_duration(step)
                ),
            });
        }
    }
    let migrates = schedule(loaded, opts)
        .iter()
        .any(|&(m, _)| staged(loaded, m) > 0);
    for f in loaded.scenario.flows.iter().filter(|_| migrates) {
        let n = f.rate.steps().len();
        if n != 1 {
            return Err(RunError::Flow {
                flow: f.name.clone(),
                reason: format!(
                    "a migration run measures each stage as one step at the flow's rate: give it one fixed `rate:` (it has {})",
                    if n == 0 {
                        "none: a closed loop".to_string()
                    } else {
                        format!("{n} steps")
                    }
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::tests::{SCENARIO, loaded};

    #[test]
    fn repeats_interleave_the_modes() {
        let l = loaded(SCENARIO);
        let mut o = RunOptions::new();
        o.repeat = 2;
        assert_eq!(
            schedule(&l, &o),
            vec![
                (Mode::NoMesh, 0),
                (Mode::Sidecar, 0),
                (Mode::NoMesh, 1),
                (Mode::Sidecar, 1)
            ]
        );
        o.modes = vec![Mode::Ambient];
        o.repeat = 1;
        assert_eq!(schedule(&l, &o), vec![(Mode::Ambient, 0)]);
    }

    #[test]
    fn planned_time_is_the_longest_flow_and_follows_overrides() {
        let l = loaded(SCENARIO);
        let mut o = RunOptions::new();
        assert_eq!(planned_load_time(&l, &o), Duration::from_secs(6));
        o.duration = Some(Duration::from_secs(10));
        o.warmup = Some(Duration::ZERO);
        assert_eq!(planned_load_time(&l, &o), Duration::from_secs(20));
    }

    #[test]
    fn bad_options_are_refused_before_anything_starts() {
        let l = loaded(SCENARIO);
        let mut o = RunOptions::new();
        o.repeat = 0;
        assert!(matches!(check(&l, &o), Err(RunError::NoRepeat)));
        o.repeat = 1;
        o.duration = Some(Duration::ZERO);
        assert!(matches!(check(&l, &o), Err(RunError::ZeroTime { .. })));
        o.duration = None;
        assert!(check(&l, &o).is_ok());
    }
}

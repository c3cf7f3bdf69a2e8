//! What happens to the cluster while the load runs: a migration's stages, applied as every
//! flow starts the step that measures each, and the scenario's faults, each at its `at` into
//! every step's measured window and undone `duration` later.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use results::raw::{RawFault, RawStage};
use scenario::{Loaded, Mode};
use tokio_util::sync::CancellationToken;

use super::{FlowRun, RunError};
use crate::cluster::Cluster;
use crate::cluster::faults::Down;
use crate::component::Component;
use crate::meter::Meter;

pub(super) struct Timeline<'a> {
    pub cluster: &'a mut Cluster,
    pub loaded: &'a Loaded,
    pub meter: &'a Meter,
    /// Components the meter already reads.
    pub metered: Vec<Arc<Component>>,
    pub load_start: Instant,
    pub mode: Mode,
    /// Every flow's warmup (the runner gave them one step time line).
    pub warmup: Duration,
    pub stop: CancellationToken,
}

/// Something due at an instant: a fault to start, or one to end.
enum Due {
    Start { fault: usize, step: usize },
    End { record: usize, down: Down },
}

impl Timeline<'_> {
    /// Follows the flows' steps (`steps[f]`: how many flow `f` runs) until the load ends,
    /// applying stages and faults; returns what was applied, when.
    pub fn follow(
        &mut self,
        started: &Receiver<usize>,
        steps: &[usize],
        stages: usize,
        handles: &[tokio::task::JoinHandle<FlowRun>],
    ) -> Result<(Vec<RawStage>, Vec<RawFault>), RunError> {
        let names: Vec<String> = self
            .loaded
            .scenario
            .migration
            .iter()
            .flat_map(|m| m.stages.iter().map(|s| s.name.clone()))
            .collect();
        let mut raw_stages = Vec::new();
        if stages > 0 {
            raw_stages.push(RawStage {
                name: "before".into(),
                applied_at_s: None,
                changes: Vec::new(),
                apply_s: 0.0,
            });
        }
        let mut faults = Vec::new();
        let most = steps.iter().copied().max().unwrap_or(0);
        let mut count = vec![0usize; most + 1];
        let mut due: Vec<(Instant, Due)> = Vec::new();
        loop {
            let next = due.iter().map(|d| d.0).min();
            let wait = next.map_or(Duration::from_millis(100), |t| {
                t.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100))
            });
            match started.recv_timeout(wait) {
                Ok(k) if k <= most => {
                    count[k] += 1;
                    // The step begins for the timeline once every flow that runs it has.
                    let running = steps.iter().filter(|&&n| n > k).count();
                    if count[k] == running {
                        let at = Instant::now();
                        if k >= 1 && k <= stages {
                            raw_stages.push(self.stage(k - 1, &names[k - 1])?);
                        }
                        let measure = at + self.warmup;
                        for (i, f) in self.loaded.scenario.faults.iter().enumerate() {
                            due.push((measure + f.at.0, Due::Start { fault: i, step: k }));
                        }
                    }
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if due.is_empty() {
                        break;
                    }
                }
            }
            let stopping = self.stop.is_cancelled() || handles.iter().all(|h| h.is_finished());
            // Due events fire; when the load is over, every fault still on is undone now.
            let now = Instant::now();
            let (fire, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut due)
                .into_iter()
                .partition(|(t, d)| *t <= now || (stopping && matches!(d, Due::End { .. })));
            due = keep;
            if stopping {
                due.retain(|(_, d)| !matches!(d, Due::Start { .. }));
            }
            for (_, d) in fire {
                match d {
                    Due::Start { fault, step } => {
                        if let Some(end) = self.start_fault(fault, step, &mut faults)? {
                            due.push(end);
                        }
                    }
                    Due::End { record, down } => self.end_fault(record, down, &mut faults)?,
                }
            }
            if stopping && due.is_empty() {
                break;
            }
        }
        Ok((raw_stages, faults))
    }

    fn now_s(&self) -> f64 {
        self.load_start.elapsed().as_secs_f64()
    }

    /// Meters what the cluster started since (a restarted proxy runs as its old component).
    fn meter_new(&mut self) {
        for c in &self.cluster.components {
            if !self.metered.iter().any(|m| Arc::ptr_eq(m, c)) {
                self.meter.add(c.clone());
                self.metered.push(c.clone());
            }
        }
    }

    fn stage(&mut self, stage: usize, name: &str) -> Result<RawStage, RunError> {
        let at = self.now_s();
        let span = tracing::info_span!("stage", stage = name);
        let _g = span.enter();
        let done = self
            .cluster
            .apply_stage(self.loaded, stage)
            .map_err(|source| RunError::Stage {
                mode: self.mode,
                stage: name.to_string(),
                source: Box::new(source),
            })?;
        self.meter_new();
        tracing::info!(took_s = done.took_s, "stage applied");
        Ok(RawStage {
            name: name.to_string(),
            applied_at_s: Some(at),
            changes: done.describe(),
            apply_s: done.took_s,
        })
    }

    fn start_fault(
        &mut self,
        i: usize,
        step: usize,
        out: &mut Vec<RawFault>,
    ) -> Result<Option<(Instant, Due)>, RunError> {
        let f = &self.loaded.scenario.faults[i];
        let label = f.label();
        let span = tracing::info_span!("fault", fault = %label);
        let _g = span.enter();
        let start_s = self.now_s();
        let down = self
            .cluster
            .fault_down(f)
            .map_err(|source| RunError::Fault {
                mode: self.mode,
                fault: label.clone(),
                source: Box::new(source),
            })?;
        let note = match &down {
            Down::NotApplicable(why) => Some(why.clone()),
            _ => None,
        };
        tracing::info!(applies = note.is_none(), "fault started");
        out.push(RawFault {
            label,
            kind: f.kind.as_str().to_string(),
            step,
            start_s,
            end_s: start_s,
            not_applied: note.clone(),
            note: None,
        });
        Ok(note.is_none().then(|| {
            (
                Instant::now() + f.length(),
                Due::End {
                    record: out.len() - 1,
                    down,
                },
            )
        }))
    }

    fn end_fault(
        &mut self,
        record: usize,
        down: Down,
        out: &mut [RawFault],
    ) -> Result<(), RunError> {
        let label = out[record].label.clone();
        let note = self
            .cluster
            .fault_up(down)
            .map_err(|source| RunError::Fault {
                mode: self.mode,
                fault: label,
                source: Box::new(source),
            })?;
        self.meter_new();
        out[record].end_s = self.now_s();
        out[record].note = note;
        Ok(())
    }
}

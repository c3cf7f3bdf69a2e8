//! Metering: CPU and live heap per component, sampled each second into time series.
//!
//! - CPU: the sum over a component's threads of `/proc/self/task/<tid>/schedstat` (run time in
//!   ns), plus what its exited threads had used. Exact to the scheduler's accounting.
//! - Heap: each component allocates from a jemalloc arena of its own (its threads are bound to
//!   it when they start), so the arena's allocated bytes are the component's live heap. Needs
//!   jemalloc as the program's global allocator (the `meshsim` binary has it); without it,
//!   memory is reported as not measured rather than as zero.
//! - The process total is sampled beside the components' sum, so unattributed work shows.
//! - The host's steal time (`/proc/stat`) over the run: on a shared VM the hypervisor gives
//!   the cores to other tenants, and then every figure comes from a contended machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::component::{Component, ComponentKind};
use crate::os::{current_thread_cpu_ns, heap, process_cpu_ns};

fn thread_cpu_s() -> f64 {
    current_thread_cpu_ns() as f64 / 1e9
}

/// One component's meter readings at one instant.
#[derive(Debug, Clone, Copy)]
struct Reading {
    cpu_ns: u64,
    heap_bytes: Option<u64>,
}

fn read(c: &Component) -> Reading {
    Reading {
        cpu_ns: c.cpu_ns(),
        heap_bytes: c.arena().and_then(heap::arena_allocated),
    }
}

/// A component's time series: one point per sampling interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSeries {
    pub name: String,
    pub kind: ComponentKind,
    /// vCPU used in each interval (1.0 = one core busy the whole interval).
    pub vcpu: Vec<f64>,
    /// Live heap at the end of each interval, MiB; empty when heap is not measured.
    pub heap_mib: Vec<f64>,
    /// CPU limit enforced on the component, in vCPU, if any.
    pub cpu_limit: Option<f64>,
}

impl ComponentSeries {
    pub fn summary(&self) -> ComponentSummary {
        let n = self.vcpu.len().max(1) as f64;
        ComponentSummary {
            name: self.name.clone(),
            kind: self.kind,
            avg_vcpu: self.vcpu.iter().sum::<f64>() / n,
            peak_vcpu: self.vcpu.iter().copied().fold(0.0, f64::max),
            avg_heap_mib: (!self.heap_mib.is_empty())
                .then(|| self.heap_mib.iter().sum::<f64>() / self.heap_mib.len() as f64),
            peak_heap_mib: (!self.heap_mib.is_empty())
                .then(|| self.heap_mib.iter().copied().fold(0.0, f64::max)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSummary {
    pub name: String,
    pub kind: ComponentKind,
    pub avg_vcpu: f64,
    pub peak_vcpu: f64,
    pub avg_heap_mib: Option<f64>,
    pub peak_heap_mib: Option<f64>,
}

impl ComponentSummary {
    /// vCPU per 1000 requests per second of the load the component carried.
    pub fn vcpu_per_krps(&self, rps: f64) -> Option<f64> {
        (rps > 0.0).then(|| self.avg_vcpu / rps * 1000.0)
    }
}

/// Everything the meter measured over a run (or one part of it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterReport {
    pub interval_s: f64,
    /// End of each sampled interval, seconds since the meter started (the last interval may
    /// be shorter than `interval_s`).
    pub t_s: Vec<f64>,
    pub cores: usize,
    pub components: Vec<ComponentSeries>,
    /// Whole process, vCPU per interval: the components' sum plus anything unattributed.
    pub process_vcpu: Vec<f64>,
    /// Heap measured per component (false: jemalloc is not the allocator).
    pub heap_measured: bool,
    /// CPU the meter itself used, in vCPU over the whole run (its overhead).
    pub meter_vcpu: f64,
    /// Set when in some interval the components together used more than 85% of the cores:
    /// latency then measures contention on this machine, not the mesh.
    pub saturation_warning: Option<String>,
    /// Share of the machine's busy CPU time that the hypervisor gave to other tenants while
    /// the meter ran (steal); `None` where `/proc/stat` has no steal column.
    #[serde(default)]
    pub host_steal_share: Option<f64>,
}

impl MeterReport {
    pub fn summaries(&self) -> Vec<ComponentSummary> {
        self.components
            .iter()
            .map(ComponentSeries::summary)
            .collect()
    }

    /// Sum over components, per interval.
    pub fn components_vcpu(&self) -> Vec<f64> {
        let n = self.process_vcpu.len();
        (0..n)
            .map(|i| self.components.iter().filter_map(|c| c.vcpu.get(i)).sum())
            .collect()
    }
}

/// Fraction of the machine's cores above which a sample counts as saturated.
pub const SATURATION: f64 = 0.85;

/// Samples a set of components every `interval` on a thread of its own until stopped.
pub struct Meter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<MeterReport>>,
}

impl Meter {
    pub fn start(components: Vec<Arc<Component>>, interval: Duration) -> std::io::Result<Meter> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("meter".into())
            .spawn(move || sample_loop(&components, interval, &flag))?;
        Ok(Meter {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops sampling (after a last, possibly partial, interval) and returns the series.
    pub fn finish(mut self) -> MeterReport {
        self.stop.store(true, Ordering::Relaxed);
        let t = self
            .thread
            .take()
            .expect("meter thread is present until finish");
        t.thread().unpark();
        match t.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

fn sample_loop(
    components: &[Arc<Component>],
    interval: Duration,
    stop: &AtomicBool,
) -> MeterReport {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let heap_measured = heap::active();
    let mut series: Vec<ComponentSeries> = components
        .iter()
        .map(|c| ComponentSeries {
            name: c.name.clone(),
            kind: c.kind,
            vcpu: Vec::new(),
            heap_mib: Vec::new(),
            cpu_limit: c.cpu_limit_millis().map(|m| m as f64 / 1000.0),
        })
        .collect();
    let mut process_vcpu = Vec::new();
    let mut t_s = Vec::new();
    let start = Instant::now();
    let mut last: Vec<Reading> = components.iter().map(|c| read(c)).collect();
    let mut last_proc = process_cpu_ns();
    let host_start = HostTicks::read();
    let mut last_t = Instant::now();
    let mut next = last_t + interval;
    let mut sums = Vec::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping {
            let now = Instant::now();
            if now < next {
                std::thread::park_timeout(next - now);
                continue;
            }
        }
        heap::refresh();
        let now = Instant::now();
        let dt = now.duration_since(last_t).as_secs_f64();
        // A last interval shorter than a tenth of the period is noise, not a sample.
        if dt >= interval.as_secs_f64() / 10.0 {
            let mut sum = 0.0;
            for ((c, s), prev) in components
                .iter()
                .zip(series.iter_mut())
                .zip(last.iter_mut())
            {
                let r = read(c);
                let v = r.cpu_ns.saturating_sub(prev.cpu_ns) as f64 / 1e9 / dt;
                sum += v;
                s.vcpu.push(v);
                if heap_measured && let Some(h) = r.heap_bytes {
                    s.heap_mib.push(h as f64 / (1024.0 * 1024.0));
                }
                *prev = r;
            }
            let p = process_cpu_ns();
            process_vcpu.push(p.saturating_sub(last_proc) as f64 / 1e9 / dt);
            t_s.push(now.duration_since(start).as_secs_f64());
            sums.push(sum);
            last_proc = p;
            last_t = now;
        }
        next += interval;
        if stopping {
            break;
        }
    }
    MeterReport {
        interval_s: interval.as_secs_f64(),
        t_s,
        cores,
        components: series,
        process_vcpu,
        heap_measured,
        meter_vcpu: thread_cpu_s() / start.elapsed().as_secs_f64().max(1e-9),
        saturation_warning: saturation_warning(&sums, cores),
        host_steal_share: host_start
            .zip(HostTicks::read())
            .and_then(|(a, b)| b.steal_share_since(&a)),
    }
}

/// Steal share above which a run is flagged as measured on a contended host.
pub const STEAL_WARNING: f64 = 0.05;

/// The machine-wide CPU counters of `/proc/stat` (ticks), as far as the steal share needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostTicks {
    /// Ticks the cores ran anything, steal included.
    pub busy: u64,
    /// Ticks the hypervisor ran other guests while this one had work (steal).
    pub steal: u64,
}

impl HostTicks {
    pub fn read() -> Option<HostTicks> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// From the aggregate `cpu` line: user nice system idle iowait irq softirq steal ...
    pub fn parse(proc_stat: &str) -> Option<HostTicks> {
        let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let &[user, nice, system, _idle, _iowait, irq, softirq, steal, ..] = v.as_slice() else {
            return None;
        };
        Some(HostTicks {
            busy: user + nice + system + irq + softirq + steal,
            steal,
        })
    }

    /// Steal over busy time between two readings; `None` when the cores did nothing.
    pub fn steal_share_since(&self, earlier: &HostTicks) -> Option<f64> {
        let busy = self.busy.checked_sub(earlier.busy)?;
        let steal = self.steal.checked_sub(earlier.steal)?;
        (busy > 0).then(|| steal as f64 / busy as f64)
    }
}

/// The contended-host guard: a warning when the hypervisor took more than [`STEAL_WARNING`]
/// of the busy time. Steal itself is not charged to threads (paravirtual time accounting),
/// but the neighbours it signals share caches and cores, so CPU per request and latency
/// both come out higher and noisier than on a quiet machine.
pub fn steal_warning(share: Option<f64>) -> Option<String> {
    let s = share?;
    (s > STEAL_WARNING).then(|| {
        format!(
            "the host was contended: the hypervisor gave {:.1}% of this machine's busy CPU time \
             to other tenants (steal, over {:.0}%), so CPU per request and latency come out \
             higher and noisier than on a quiet machine; compare with --repeat or rerun when \
             the host is quiet",
            s * 100.0,
            STEAL_WARNING * 100.0
        )
    })
}

/// The saturation guard: a warning when, in any interval, the components together used more
/// than [`SATURATION`] of the machine's cores.
pub fn saturation_warning(components_vcpu: &[f64], cores: usize) -> Option<String> {
    let (i, v) = components_vcpu
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    (v > SATURATION * cores as f64).then(|| {
        format!(
            "the machine was saturated: components used {v:.2} of {cores} cores in interval {i} \
             (over {:.0}%); latency then measures contention on this machine, not the mesh. \
             Lower the load or the number of components.",
            SATURATION * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_is_flagged_above_85_percent_of_the_cores() {
        assert!(saturation_warning(&[0.5, 1.6, 0.2], 2).is_none());
        let w = saturation_warning(&[0.5, 1.75, 0.2], 2).expect("flagged");
        assert!(w.contains("1.75 of 2 cores in interval 1"), "{w}");
        assert!(saturation_warning(&[], 2).is_none());
    }

    #[test]
    fn steal_is_read_from_proc_stat_and_flagged_above_5_percent() {
        let a = HostTicks::parse(
            "cpu  100 0 50 9000 3 0 10 40 0 0\ncpu0 50 0 25 4500 1 0 5 20 0 0\nintr 1\n",
        )
        .expect("parsed");
        assert_eq!(
            a,
            HostTicks {
                busy: 200,
                steal: 40
            }
        );
        let b = HostTicks::parse("cpu  250 0 100 9100 3 0 10 60 0 0\n").expect("parsed");
        let share = b.steal_share_since(&a).expect("busy");
        assert!((share - 20.0 / 220.0).abs() < 1e-12, "{share}");
        assert!(steal_warning(Some(0.04)).is_none());
        assert!(steal_warning(None).is_none());
        let w = steal_warning(Some(share)).expect("flagged");
        assert!(w.contains("9.1% of this machine's busy CPU time"), "{w}");
        // No steal column (old kernels) or no work between readings: no figure, no warning.
        assert!(HostTicks::parse("cpu  1 2 3 4\n").is_none());
        assert!(a.steal_share_since(&a).is_none());
    }

    #[test]
    fn summaries_average_and_peak() {
        let s = ComponentSeries {
            name: "sidecar-a".into(),
            kind: ComponentKind::Sidecar,
            vcpu: vec![0.1, 0.3],
            heap_mib: vec![10.0, 30.0],
            cpu_limit: None,
        };
        let m = s.summary();
        assert!((m.avg_vcpu - 0.2).abs() < 1e-9 && (m.peak_vcpu - 0.3).abs() < 1e-9);
        assert_eq!(m.peak_heap_mib, Some(30.0));
        assert!((m.vcpu_per_krps(500.0).expect("rps") - 0.4).abs() < 1e-9);
    }
}

//! Metering: CPU and live heap per component, sampled each second into time series.
//!
//! - CPU: the sum over a component's threads of `/proc/self/task/<tid>/schedstat` (run time in
//!   ns), plus what its exited threads had used. Exact to the scheduler's accounting.
//! - Heap: each component allocates from a jemalloc arena of its own (its threads are bound to
//!   it when they start), so the arena's allocated bytes are the component's live heap. Needs
//!   jemalloc as the program's global allocator (the `meshsim` binary has it); without it,
//!   memory is reported as not measured rather than as zero.
//! - The process total is sampled beside the components' sum, so unattributed work shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::component::{Component, ComponentKind};

/// jemalloc control: arenas per component and their statistics.
pub mod heap {
    use std::sync::OnceLock;

    /// Whether allocations of this program go through jemalloc (checked once, by allocating).
    pub fn active() -> bool {
        static ACTIVE: OnceLock<bool> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let before = thread_allocated();
            let v = std::hint::black_box(vec![1u8; 256 * 1024]);
            let after = thread_allocated();
            drop(v);
            matches!((before, after), (Some(b), Some(a)) if a >= b + 256 * 1024)
        })
    }

    fn thread_allocated() -> Option<u64> {
        let _ = tikv_jemalloc_ctl::epoch::advance();
        tikv_jemalloc_ctl::thread::allocatedp::read()
            .ok()
            .map(|p| p.get())
    }

    /// A new arena for one component, or `None` when jemalloc is not the allocator.
    pub fn create_arena() -> Option<u32> {
        if !active() {
            return None;
        }
        // SAFETY: `arenas.create` is a read-only-style mallctl returning an unsigned index.
        unsafe { tikv_jemalloc_ctl::raw::read::<u32>(b"arenas.create\0").ok() }
    }

    /// Makes the calling thread allocate from `arena` from now on.
    pub fn bind_thread(arena: u32) {
        // SAFETY: `thread.arena` takes an unsigned arena index.
        unsafe {
            let _ = tikv_jemalloc_ctl::raw::write::<u32>(b"thread.arena\0", arena);
        }
    }

    /// Refreshes jemalloc's statistics snapshot; call once before reading a batch.
    pub fn refresh() {
        let _ = tikv_jemalloc_ctl::epoch::advance();
    }

    /// Bytes allocated and not yet freed from `arena` (small and large objects).
    pub fn arena_allocated(arena: u32) -> Option<u64> {
        let read = |what: &str| -> Option<u64> {
            let name = format!("stats.arenas.{arena}.{what}.allocated\0");
            // SAFETY: these statistics are `size_t`.
            unsafe { tikv_jemalloc_ctl::raw::read::<usize>(name.as_bytes()).ok() }.map(|v| v as u64)
        };
        Some(read("small")? + read("large")?)
    }

    /// Bytes allocated by the whole process.
    pub fn total_allocated() -> Option<u64> {
        tikv_jemalloc_ctl::stats::allocated::read()
            .ok()
            .map(|v| v as u64)
    }
}

/// CPU time of the whole process in ns (all threads, live and exited).
pub fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain syscall writing into a valid timespec.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain syscall writing into a valid timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
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
    }
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

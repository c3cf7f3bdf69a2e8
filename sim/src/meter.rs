//! Metering: CPU and live heap per component, sampled each second into time series.
//!
//! - CPU: the sum over a component's threads of `/proc/self/task/<tid>/schedstat` (run time in
//!   ns), plus what its exited threads had used. Exact to the scheduler's accounting.
//! - Heap: each component allocates from a jemalloc arena of its own (its threads are bound to
//!   it when they start), so the arena's allocated bytes are the component's live heap. Needs
//!   jemalloc as the program's global allocator (the `meshsim` binary has it); without it,
//!   memory is reported as not measured rather than as zero.
//! - Work: each component's own counters (requests or L4 exchanges, connections, the CPU it
//!   burned to reach its cost floor, the memory its profile gives it), read at the same
//!   instants as its CPU, so a figure per request divides two readings of one window.
//! - The process total is sampled beside the components' sum, so unattributed work shows;
//!   with its resident memory, descriptors and threads, what a soak watches for leaks.
//! - The host's steal time (`/proc/stat`) over the run: on a shared VM the hypervisor gives
//!   the cores to other tenants, and then every figure comes from a contended machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use results::host::saturation_warning;
use results::raw::{ComponentSeries, MeterReport, ProcessReadings};

use crate::component::Component;
use crate::os::{current_thread_cpu_ns, heap, process_cpu_ns};

fn thread_cpu_s() -> f64 {
    current_thread_cpu_ns() as f64 / 1e9
}

/// One component's readings at one instant: its clocks and counters.
#[derive(Debug, Clone, Copy)]
struct Reading {
    cpu_ns: u64,
    floor_ns: u64,
    requests: u64,
    connections_opened: u64,
    tls_handshakes: u64,
}

fn read(c: &Component) -> Reading {
    let k = &c.counters;
    Reading {
        cpu_ns: c.cpu_ns(),
        floor_ns: k.floor_burned_ns.load(Ordering::Relaxed),
        requests: k.requests.load(Ordering::Relaxed),
        connections_opened: k.connections_opened.load(Ordering::Relaxed),
        tls_handshakes: k.tls_handshakes.load(Ordering::Relaxed),
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// Samples a set of components every `interval` on a thread of its own until stopped.
pub struct Meter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<MeterReport>>,
    /// Components started while it runs (a migration stage's ztunnels, waypoints, sidecars).
    joining: Arc<Joining>,
}

/// Components waiting to be metered, with their first readings.
type Joining = std::sync::Mutex<Vec<(Arc<Component>, Reading)>>;

impl Meter {
    /// Starts sampling; every `t_s` of the report counts from `origin` (the mode's load start,
    /// so the meters' time line and the flows' are one).
    pub fn start(
        components: Vec<Arc<Component>>,
        interval: Duration,
        origin: Instant,
    ) -> std::io::Result<Meter> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let joining = Arc::new(std::sync::Mutex::new(Vec::new()));
        let join = joining.clone();
        // The first readings are taken now, not when the thread gets to run: work done right
        // after `start` returns belongs to the first interval.
        let first = Start {
            readings: components.iter().map(|c| read(c)).collect(),
            process_cpu_ns: process_cpu_ns(),
            host: HostTicks::read(),
            at: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("meter".into())
            .spawn(move || sample_loop(components, interval, origin, first, (&flag, &join)))?;
        Ok(Meter {
            stop,
            thread: Some(thread),
            joining,
        })
    }

    /// Meters a component started after the meter: its series reads zero for the intervals
    /// before (it was not running), and counts from now.
    pub fn add(&self, c: Arc<Component>) {
        let r = read(&c);
        self.joining
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((c, r));
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

fn new_series(c: &Component) -> ComponentSeries {
    let mut s = ComponentSeries::new(c.name.clone(), c.kind);
    s.cpu_limit_millis = c.cpu_limit_millis();
    s.cpu_limit_enforced = c.cpu_limit_enforced();
    s
}

/// Appends one interval of `dt` seconds to a component's series.
fn push_interval(s: &mut ComponentSeries, c: &Component, r: Reading, prev: Reading, dt: f64) {
    s.vcpu
        .push(r.cpu_ns.saturating_sub(prev.cpu_ns) as f64 / 1e9 / dt);
    s.floor_vcpu
        .push(r.floor_ns.saturating_sub(prev.floor_ns) as f64 / 1e9 / dt);
    s.requests.push(r.requests.saturating_sub(prev.requests));
    s.connections_opened
        .push(r.connections_opened.saturating_sub(prev.connections_opened));
    s.tls_handshakes
        .push(r.tls_handshakes.saturating_sub(prev.tls_handshakes));
    let k = &c.counters;
    s.connections_active
        .push(k.connections_active.load(Ordering::Relaxed));
    s.threads.push(c.threads().len() as u64);
    let profile = k.profile_memory_bytes.load(Ordering::Relaxed);
    // Once it had some, every interval gets a value (a stopped proxy's is zero).
    if profile > 0 || !s.profile_mib.is_empty() {
        s.profile_mib.push(profile as f64 / MIB);
    }
    if let Some(h) = c.arena().and_then(heap::arena_allocated) {
        s.heap_mib.push(h as f64 / MIB);
    }
}

/// The readings a meter starts from.
struct Start {
    readings: Vec<Reading>,
    process_cpu_ns: u64,
    host: Option<HostTicks>,
    at: Instant,
}

/// A late component's series, padded to `n` intervals of nothing.
fn late_series(c: &Component, n: usize, heap: bool) -> ComponentSeries {
    let mut s = new_series(c);
    s.vcpu = vec![0.0; n];
    s.floor_vcpu = vec![0.0; n];
    s.requests = vec![0; n];
    s.connections_opened = vec![0; n];
    s.tls_handshakes = vec![0; n];
    s.connections_active = vec![0; n];
    s.threads = vec![0; n];
    if heap {
        s.heap_mib = vec![0.0; n];
    }
    if c.counters.profile_memory_bytes.load(Ordering::Relaxed) > 0 {
        s.profile_mib = vec![0.0; n];
    }
    s
}

fn sample_loop(
    mut components: Vec<Arc<Component>>,
    interval: Duration,
    origin: Instant,
    first: Start,
    (stop, joining): (&AtomicBool, &Joining),
) -> MeterReport {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let heap_measured = heap::active();
    let mut series: Vec<ComponentSeries> = components.iter().map(|c| new_series(c)).collect();
    let mut process = ProcessReadings::default();
    let mut t_s = Vec::new();
    let mut last = first.readings;
    let mut last_proc = first.process_cpu_ns;
    let host_start = first.host;
    let start = first.at;
    let mut last_t = start;
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
        for (c, r) in joining.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            series.push(late_series(&c, t_s.len(), heap_measured));
            last.push(r);
            components.push(c);
        }
        let now = Instant::now();
        let dt = now.duration_since(last_t).as_secs_f64();
        // A last interval shorter than a tenth of the period is noise, not a sample.
        if dt >= interval.as_secs_f64() / 10.0 {
            for ((c, s), prev) in components
                .iter()
                .zip(series.iter_mut())
                .zip(last.iter_mut())
            {
                let r = read(c);
                push_interval(s, c, r, *prev, dt);
                *prev = r;
            }
            if !heap_measured {
                series.iter_mut().for_each(|s| s.heap_mib.clear());
            }
            sums.push(series.iter().filter_map(|s| s.vcpu.last()).sum::<f64>());
            let p = process_cpu_ns();
            process
                .vcpu
                .push(p.saturating_sub(last_proc) as f64 / 1e9 / dt);
            let (rss, fds, threads) = process_readings();
            process.rss_mib.push(rss);
            process.fds.push(fds);
            process.threads.push(threads);
            t_s.push(now.saturating_duration_since(origin).as_secs_f64());
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
        process,
        heap_measured,
        meter_vcpu: thread_cpu_s() / start.elapsed().as_secs_f64().max(1e-9),
        saturation_warning: saturation_warning(&sums, cores),
        host_steal_share: host_start
            .zip(HostTicks::read())
            .and_then(|(a, b)| b.steal_share_since(&a)),
    }
}

/// The whole process: resident MiB, open file descriptors, threads.
fn process_readings() -> (f64, u64, u64) {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as f64;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |pages| pages * page / MIB);
    let count = |dir: &str| std::fs::read_dir(dir).map_or(0, |d| d.count() as u64);
    (rss, count("/proc/self/fd"), count("/proc/self/task"))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_read_from_proc_stat() {
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
        // No steal column (old kernels) or no work between readings: no figure.
        assert!(HostTicks::parse("cpu  1 2 3 4\n").is_none());
        assert!(a.steal_share_since(&a).is_none());
    }

    #[test]
    fn the_process_readings_see_this_process() {
        let (rss, fds, threads) = process_readings();
        assert!(rss > 1.0, "a test process holds more than 1 MiB: {rss}");
        assert!(fds >= 3, "stdin, stdout and stderr at least: {fds}");
        assert!(threads >= 1);
        // Other tests of this binary open and close descriptors too: a wide margin.
        let files: Vec<std::fs::File> = (0..200)
            .map(|_| std::fs::File::open("/dev/null").expect("open"))
            .collect();
        let more = process_readings().1.saturating_sub(fds);
        assert!(
            (150..=250).contains(&more),
            "200 more open files read as {more} more"
        );
        drop(files);
    }
}

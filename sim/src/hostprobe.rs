//! How fast the host runs the kernel work every model leans on, measured before each mode.
//!
//! On a shared VM the same build measures very differently from one day to the next: one
//! 1 KiB round trip over veth took 71–75 µs on one day and 151 µs on another, and a proxy
//! whose CPU is mostly kernel network work and wake-ups (ztunnel) follows it. A nightly
//! comparison must be able to tell "meshsim got slower" from "the host got slower", so every
//! mode starts with a short probe of the host itself, with no mesh, no cluster and no load
//! running: 1 KiB round trips over loopback TCP between two threads,
//!
//! - both on one CPU: system calls, the TCP stack and a thread switch each way, i.e. the
//!   host's raw speed, steady from one second to the next (17–21 µs on the project's VM);
//! - on two CPUs: the same plus waking a thread on the other CPU each way, which on a VM
//!   means an inter-processor interrupt and, when that vCPU was idle, the hypervisor
//!   scheduling it again. This is what a proxy pays twice per request at moderate load, and
//!   what swings on a shared host (73–112 µs, and 53–186 µs of CPU per round trip, in eight
//!   probes half a second apart).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// Round trips timed (after [`WARMUP`] untimed ones): the median is stable to a few percent
/// and the probe takes 0.1–0.4 s.
pub const ROUND_TRIPS: usize = 2000;
const WARMUP: usize = 200;
const MESSAGE: usize = 1024;
/// A host that stops answering its own loopback fails the probe instead of hanging the run.
const STALL: Duration = Duration::from_secs(5);

/// Runs whose probes differ by more than this share are noted by `compare`: figures of that
/// order may have moved with the host, not with meshsim.
pub const DRIFT_NOTE: f64 = 0.20;

/// What one probe measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostProbe {
    /// Both threads on one CPU.
    pub one_cpu: PingPong,
    /// The threads on two CPUs; `None` on a single-CPU machine (or where pinning failed).
    pub two_cpus: Option<PingPong>,
}

/// 1 KiB round trips between two threads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PingPong {
    /// Median time of one round trip, µs.
    pub round_trip_us: f64,
    /// CPU both threads spent per round trip (user and kernel, softirq included), µs.
    pub cpu_per_round_trip_us: f64,
}

/// Probes the host over loopback (no traffic leaves it), in the calling thread's network
/// namespace: about 0.3 s.
pub fn probe() -> io::Result<HostProbe> {
    let cpus = allowed_cpus();
    let first = cpus.first().copied();
    let one_cpu = ping_pong(first, first)?;
    let two_cpus = match cpus.get(1) {
        Some(&second) => Some(ping_pong(first, Some(second))?),
        None => None,
    };
    Ok(HostProbe { one_cpu, two_cpus })
}

/// Round trips between a client thread on `client_cpu` and an echo thread on `echo_cpu` (each
/// unpinned when `None`).
fn ping_pong(client_cpu: Option<usize>, echo_cpu: Option<usize>) -> io::Result<PingPong> {
    let pin = move |cpu: Option<usize>| {
        if let Some(c) = cpu {
            let mut set = CpuSet::new();
            // Best effort: unpinned, the probe still measures, only less steadily.
            if set.set(c).is_ok() {
                let _ = sched_setaffinity(Pid::from_raw(0), &set);
            }
        }
    };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    let echo = thread::Builder::new()
        .name("host-probe-echo".into())
        .spawn(move || -> io::Result<u64> {
            pin(echo_cpu);
            let (mut s, _) = listener.accept()?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(STALL))?;
            let cpu0 = thread_cpu_ns();
            let mut buf = [0u8; MESSAGE];
            loop {
                match s.read_exact(&mut buf) {
                    Ok(()) => s.write_all(&buf)?,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            Ok(thread_cpu_ns().saturating_sub(cpu0))
        })?;
    let client = thread::Builder::new().name("host-probe".into()).spawn(
        move || -> io::Result<(Vec<u64>, u64)> {
            pin(client_cpu);
            let mut s = TcpStream::connect(addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(STALL))?;
            let msg = [0x5au8; MESSAGE];
            let mut back = [0u8; MESSAGE];
            let mut times = Vec::with_capacity(ROUND_TRIPS);
            let cpu0 = thread_cpu_ns();
            for i in 0..WARMUP + ROUND_TRIPS {
                let t = Instant::now();
                s.write_all(&msg)?;
                s.read_exact(&mut back)?;
                if i >= WARMUP {
                    times.push(t.elapsed().as_nanos() as u64);
                }
            }
            Ok((times, thread_cpu_ns().saturating_sub(cpu0)))
        },
    )?;
    let client = joined(client.join());
    // The client's socket is closed by now, so the echo thread sees EOF; a client that never
    // connected leaves it in accept(), woken by this connection instead.
    if client.is_err() {
        let _ = TcpStream::connect_timeout(&addr, STALL);
    }
    let echo_cpu = joined(echo.join());
    let (mut times, client_cpu) = client?;
    let echo_cpu = echo_cpu?;
    let mid = times.len() / 2;
    let median = *times.select_nth_unstable(mid).1;
    Ok(PingPong {
        round_trip_us: median as f64 / 1e3,
        cpu_per_round_trip_us: (client_cpu + echo_cpu) as f64 / 1e3 / (WARMUP + ROUND_TRIPS) as f64,
    })
}

fn joined<T>(r: thread::Result<io::Result<T>>) -> io::Result<T> {
    r.unwrap_or_else(|_| Err(io::Error::other("a host probe thread panicked")))
}

/// The CPUs this process may run on, lowest first.
fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The calling thread's CPU time (user and kernel), ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// How much slower (positive) or faster (negative) `new` ran than `base`, as a share, when
/// that is beyond [`DRIFT_NOTE`].
pub fn drift(base: f64, new: f64) -> Option<f64> {
    if !(base > 0.0 && new > 0.0) {
        return None;
    }
    let change = new / base - 1.0;
    (change.abs() > DRIFT_NOTE).then_some(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_measures_round_trips_and_their_cpu() {
        let p = probe().expect("loopback probe");
        let mut measured = vec![p.one_cpu];
        if allowed_cpus().len() > 1 {
            measured.push(p.two_cpus.expect("two CPUs to probe across"));
        } else {
            assert!(p.two_cpus.is_none());
        }
        for m in measured {
            // A round trip costs two system calls on each side at the very least and is over
            // long before the stall limit; the two threads spend CPU on it.
            assert!(
                m.round_trip_us > 1.0 && m.round_trip_us < 1e6,
                "round trip {} µs",
                m.round_trip_us
            );
            assert!(
                m.cpu_per_round_trip_us > 0.5,
                "cpu {} µs",
                m.cpu_per_round_trip_us
            );
        }
    }

    #[test]
    fn drift_is_noted_only_beyond_the_threshold() {
        assert_eq!(drift(100.0, 110.0), None);
        assert_eq!(drift(100.0, 80.0), None);
        let slower = drift(75.0, 151.0).expect("twice as slow");
        assert!((slower - 1.0133).abs() < 1e-3, "{slower}");
        let faster = drift(150.0, 75.0).expect("twice as fast");
        assert!((faster + 0.5).abs() < 1e-9, "{faster}");
        assert_eq!(drift(0.0, 75.0), None);
    }
}

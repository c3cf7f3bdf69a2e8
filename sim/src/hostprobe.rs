//! How fast the host runs the kernel work every model leans on, measured before each mode.
//!
//! On a shared VM the same build measures very differently from one day to the next: one
//! 1 KiB round trip over veth took 71–75 µs on one day and 151 µs on another, and a proxy
//! whose CPU is mostly kernel network work and wake-ups (ztunnel) follows it. A nightly
//! comparison must be able to tell "meshsim got slower" from "the host got slower", so every
//! mode starts with a short probe of the host itself, with no mesh, no cluster and no load
//! running: 1 KiB round trips over loopback TCP between two threads on one CPU,
//!
//! - **back to back**: system calls, the TCP stack and a thread switch each way with warm
//!   caches, the host's raw speed (17–21 µs on the project's VM);
//! - **paced**, one round trip per millisecond with the CPU idle in between, as a proxy sees
//!   requests at moderate load: each round trip then starts from an idle, and on a shared
//!   host cache-cold, CPU, woken by the timer that paces it, and costs about three times the
//!   CPU (53–79 µs on the project's VM, the timer's wake-up included). This is why a proxy's
//!   CPU per request at 1000 rps is higher than in a closed-loop benchmark (ztunnel's: about
//!   twice), and what a busier host makes worse.
//!
//! Both threads share one CPU: across two vCPUs the figure mostly measures how the guest
//! idles (with `cpuidle-haltpoll` polling off, 71 µs per round trip; on, 15 µs), which moved
//! no proxy's CPU per request when tried.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use crate::os::current_thread_cpu_ns;

const BACK_TO_BACK: usize = 2000;
const PACED: usize = 400;
const WARMUP: usize = 100;
/// The pause between paced round trips: 1000 round trips a second.
const PACE: Duration = Duration::from_millis(1);
const MESSAGE: usize = 1024;
/// A host that stops answering its own loopback fails the probe instead of hanging the run.
const STALL: Duration = Duration::from_secs(5);

pub use results::run::{HostProbe, PingPong};

/// Probes the host over loopback (no traffic leaves it), in the calling thread's network
/// namespace: about 0.6 s.
pub fn probe() -> io::Result<HostProbe> {
    let cpu = allowed_cpus().first().copied();
    Ok(HostProbe {
        back_to_back: ping_pong(cpu, None, WARMUP, BACK_TO_BACK)?,
        paced: ping_pong(cpu, Some(PACE), WARMUP / 4, PACED)?,
    })
}

/// `warmup` then `timed` round trips between a client and an echo thread, both on `cpu` when
/// given, the client pausing `gap` after each.
fn ping_pong(
    cpu: Option<usize>,
    gap: Option<Duration>,
    warmup: usize,
    timed: usize,
) -> io::Result<PingPong> {
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
            pin(cpu);
            let (mut s, _) = listener.accept()?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(STALL))?;
            let cpu0 = current_thread_cpu_ns();
            let mut buf = [0u8; MESSAGE];
            loop {
                match s.read_exact(&mut buf) {
                    Ok(()) => s.write_all(&buf)?,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            Ok(current_thread_cpu_ns().saturating_sub(cpu0))
        })?;
    let client = thread::Builder::new().name("host-probe".into()).spawn(
        move || -> io::Result<(Vec<u64>, u64)> {
            pin(cpu);
            let mut s = TcpStream::connect(addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(STALL))?;
            let msg = [0x5au8; MESSAGE];
            let mut back = [0u8; MESSAGE];
            let mut times = Vec::with_capacity(timed);
            let cpu0 = current_thread_cpu_ns();
            for i in 0..warmup + timed {
                let t = Instant::now();
                s.write_all(&msg)?;
                s.read_exact(&mut back)?;
                if i >= warmup {
                    times.push(t.elapsed().as_nanos() as u64);
                }
                if let Some(g) = gap {
                    thread::sleep(g);
                }
            }
            Ok((times, current_thread_cpu_ns().saturating_sub(cpu0)))
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
        cpu_per_round_trip_us: (client_cpu + echo_cpu) as f64 / 1e3 / (warmup + timed) as f64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_measures_round_trips_and_their_cpu() {
        let t0 = std::time::Instant::now();
        let p = probe().expect("loopback probe");
        // Paced round trips are at least the pause apart, so the probe took its time: one
        // pause per paced round trip, warmup included.
        let paced_at_least = PACE * (PACED + WARMUP / 4) as u32;
        assert!(
            t0.elapsed() >= paced_at_least,
            "the paced part took {:?}, less than its {paced_at_least:?} of pauses",
            t0.elapsed()
        );
        let measured = [p.back_to_back, p.paced];
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
}

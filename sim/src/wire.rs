//! A link fault's wire: delay, jitter and a bandwidth cap on the traffic from one node to
//! another's pods, where the kernel has no netem.
//!
//! While the fault lasts, the node routes the other node's pod CIDR into a TUN device
//! (`mwN-in`); a thread reads each packet, holds it until it is due, and writes it into a
//! second TUN device (`mwN-out`), from where a policy route (`iif mwN-out`) forwards it on the
//! node's real link, as before. The bandwidth cap is a `tbf` qdisc on `mwN-in`: the kernel's
//! token bucket, before the delay. Nothing is in the path outside the fault: the route is
//! restored when it ends, and packets still held are delivered first.
//!
//! Packets keep their order: a jittered packet is never sent before the one ahead of it
//! (netem reorders under jitter; this wire does not). The wire's own cost, measured by
//! `benches/link-delay.sh`, is stated in benches/README.md.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::netns::NetNs;
use crate::topology::addr;

/// What the wire adds to each packet.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    pub delay: Duration,
    pub jitter: Duration,
    /// Bits per second; `None`: no cap.
    pub bandwidth: Option<u64>,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error(
        "cannot open /dev/net/tun in {ns}: {source}; a link-delay or link-bandwidth fault needs the tun driver (modprobe tun)"
    )]
    Tun { ns: String, source: io::Error },
    #[error(
        "`{command}` failed in {ns}: {message}; the `ip` and `tc` programs come with the iproute2 package"
    )]
    Command {
        ns: String,
        command: String,
        message: String,
    },
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
}

/// Checks, before anything starts, that a scenario whose faults need the wire has its tools:
/// `ip` and `tc` (iproute2) and the tun device.
pub fn check_installed(faults: &[scenario::Fault]) -> Result<(), WireError> {
    use scenario::FaultKind::{LinkBandwidth, LinkDelay};
    if !faults
        .iter()
        .any(|f| matches!(f.kind, LinkDelay | LinkBandwidth))
    {
        return Ok(());
    }
    for program in ["ip", "tc"] {
        let ok = Command::new(program)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Err(WireError::Command {
                ns: "the host".into(),
                command: format!("{program} -V"),
                message: format!(
                    "`{program}` is not installed (Debian/Ubuntu: apt-get install iproute2)"
                ),
            });
        }
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Err(WireError::Tun {
            ns: "the host".into(),
            source: io::Error::new(io::ErrorKind::NotFound, "/dev/net/tun does not exist"),
        });
    }
    Ok(())
}

/// What the wire did, for its cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct WireStats {
    pub packets: u64,
    pub bytes: u64,
    /// CPU time of the wire's thread.
    pub cpu_ns: u64,
}

/// A wire in place on one node, towards one other node.
pub struct Wire {
    node: Arc<NetNs>,
    to: usize,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<WireStats>>,
}

const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// A TUN device named `name` in the calling thread's network namespace, non-blocking.
fn open_tun(name: &str) -> io::Result<OwnedFd> {
    // SAFETY: plain open(2) of a device node with a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned here.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = IFF_TUN | IFF_NO_PI;
    // SAFETY: TUNSETIFF reads an ifreq, which `req` is, for the fd's lifetime.
    if unsafe { libc::ioctl(owned.as_raw_fd(), TUNSETIFF as _, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned)
}

fn run(ns: &NetNs, program: &str, args: &[&str]) -> Result<(), WireError> {
    let out = ns.run(|| Command::new(program).args(args).output())?;
    let command = format!("{program} {}", args.join(" "));
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(WireError::Command {
            ns: ns.name().to_string(),
            command,
            message: String::from_utf8_lossy(&o.stderr).trim().to_string(),
        }),
        Err(e) => Err(WireError::Command {
            ns: ns.name().to_string(),
            command,
            message: e.to_string(),
        }),
    }
}

/// The policy-routing table a wire's output is forwarded by.
fn table(to: usize) -> String {
    (1000 + to).to_string()
}

impl Wire {
    /// Puts a wire on `node` (index `from`) for everything it forwards to node `to`'s pods.
    pub fn start(
        node: Arc<NetNs>,
        from: usize,
        to: usize,
        shape: Shape,
    ) -> Result<Wire, WireError> {
        let (net, len) = addr::pod_cidr(to);
        let cidr = format!("{net}/{len}");
        let via = addr::node_ip(to).to_string();
        let (din, dout) = (format!("mw{to}-in"), format!("mw{to}-out"));
        let tun_err = |source| WireError::Tun {
            ns: node.name().to_string(),
            source,
        };
        let fds = node.run(|| -> io::Result<(OwnedFd, OwnedFd)> {
            Ok((open_tun(&din)?, open_tun(&dout)?))
        })?;
        let (fin, fout) = fds.map_err(tun_err)?;
        let t = table(to);
        let ns = &node;
        run(ns, "ip", &["link", "set", &din, "up"])?;
        run(ns, "ip", &["link", "set", &dout, "up"])?;
        // The output carries the other pods' sources: no reverse-path check on it.
        ns.run(|| {
            let _ = crate::netns::sysctl(&format!("net.ipv4.conf.{dout}.rp_filter"), "0");
            let _ = crate::netns::sysctl("net.ipv4.conf.all.rp_filter", "0");
        })?;
        // The packet comes back through the node a second time, already forwarded once:
        // conntrack would take it for a clashing new connection and drop it.
        crate::nft::apply(
            ns,
            &format!(
                "table ip meshsim-wire-{to} {{\n  chain pre {{\n    type filter hook prerouting priority raw; policy accept;\n    iifname \"{dout}\" notrack\n  }}\n}}\n"
            ),
        )
        .map_err(|e| WireError::Command {
            ns: node.name().to_string(),
            command: "nft (notrack)".into(),
            message: e.to_string(),
        })?;
        run(
            ns,
            "ip",
            &[
                "route", "replace", &cidr, "via", &via, "dev", "eth0", "table", &t,
            ],
        )?;
        run(
            ns,
            "ip",
            &["rule", "add", "iif", &dout, "lookup", &t, "priority", &t],
        )?;
        if let Some(bits) = shape.bandwidth {
            // A burst of 10 ms at the rate (at least a few full frames), a queue of 100 ms.
            let burst = (bits / 8 / 100).max(4 * 1514).to_string();
            let rate = format!("{bits}bit");
            run(
                ns,
                "tc",
                &[
                    "qdisc", "add", "dev", &din, "root", "tbf", "rate", &rate, "burst", &burst,
                    "latency", "100ms",
                ],
            )?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("wire-{from}-{to}"))
            .spawn(move || pump(&fin, &fout, shape, &flag))
            .map_err(|source| WireError::Tun {
                ns: node.name().to_string(),
                source,
            })?;
        // Last: traffic enters the wire only once it is ready.
        run(ns, "ip", &["route", "replace", &cidr, "dev", &din])?;
        Ok(Wire {
            node,
            to,
            stop,
            thread: Some(thread),
        })
    }

    /// Restores the node's route, delivers what the wire still holds, and removes it.
    pub fn stop(mut self) -> Result<WireStats, WireError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<WireStats, WireError> {
        let Some(thread) = self.thread.take() else {
            return Ok(WireStats::default());
        };
        let (net, len) = addr::pod_cidr(self.to);
        let cidr = format!("{net}/{len}");
        let via = addr::node_ip(self.to).to_string();
        let restored = run(
            &self.node,
            "ip",
            &["route", "replace", &cidr, "via", &via, "dev", "eth0"],
        );
        self.stop.store(true, Ordering::Relaxed);
        let stats = thread.join().unwrap_or_default();
        let t = table(self.to);
        let dout = format!("mw{}-out", self.to);
        let _ = run(
            &self.node,
            "ip",
            &["rule", "del", "iif", &dout, "lookup", &t],
        );
        let _ = run(&self.node, "ip", &["route", "flush", "table", &t]);
        let _ = crate::nft::apply(
            &self.node,
            &format!("delete table ip meshsim-wire-{}\n", self.to),
        );
        restored.map(|()| stats)
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Moves packets from `fin` to `fout`, each once it is due; after `stop`, delivers the rest
/// and returns.
fn pump(fin: &OwnedFd, fout: &OwnedFd, shape: Shape, stop: &AtomicBool) -> WireStats {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(shape.seed);
    let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut stats = WireStats::default();
    let mut last_due = Instant::now();
    let mut buf = vec![0u8; 65_536];
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let cpu0 = crate::os::current_thread_cpu_ns();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping && held.is_empty() {
            break;
        }
        let now = Instant::now();
        let wait = held
            .front()
            .map_or(Duration::from_millis(20), |(due, _)| {
                due.saturating_duration_since(now)
            })
            .min(Duration::from_millis(20));
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        let mut pfd = libc::pollfd {
            fd: fin.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, a valid timespec, no signal mask.
        unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        loop {
            // SAFETY: reads into `buf`, which is valid for its length.
            let n = unsafe { libc::read(fin.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            let n = n as usize;
            let now = Instant::now();
            let j = shape.jitter.as_nanos() as i64;
            let offset = if j > 0 { rng.random_range(-j..=j) } else { 0 };
            let d = (shape.delay.as_nanos() as i64 + offset).max(0) as u64;
            let due = (now + Duration::from_nanos(d)).max(last_due);
            last_due = due;
            stats.packets += 1;
            stats.bytes += n as u64;
            // Buffers are recycled: no allocation a packet once the wire is warm.
            let mut p = spare.pop().unwrap_or_default();
            p.clear();
            p.extend_from_slice(&buf[..n]);
            held.push_back((due, p));
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, p)) = held.pop_front() {
                // SAFETY: writes `p`, valid for its length. A full queue drops the packet, as
                // a link would.
                unsafe { libc::write(fout.as_raw_fd(), p.as_ptr().cast(), p.len()) };
                spare.push(p);
            }
        }
    }
    stats.cpu_ns = crate::os::current_thread_cpu_ns().saturating_sub(cpu0);
    stats
}

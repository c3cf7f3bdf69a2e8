//! Cost floors in action. A proxy model that is cheaper than its profile's floor burns real CPU
//! on the thread that did the work, until the component's total CPU reaches the sum of floors
//! owed — so CPU quotas, queueing and the meters all see Envoy-like cost, not a sleep.
//!
//! Memory floors are not allocated (that would only slow the machine): the difference between
//! the profile's memory and what the model measurably holds is reported as *modeled*.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::component::{Component, Counters};
use crate::mesh::H2Stream;
use crate::mesh::hbone::{self, Direction};
use scenario::profile::Floors;

/// Longest a single charge burns inline; a larger deficit is paid over the next events, so
/// one request never stalls for long.
const MAX_BURN_NS: u64 = 2_000_000;

#[derive(Debug)]
pub struct Burner {
    component: Arc<Component>,
    floors: Floors,
    /// Floor CPU owed since start, plus the component's CPU at start.
    owed_ns: AtomicU64,
    /// Set while one of the component's threads is burning.
    burning: AtomicBool,
    /// The component's CPU when the burner started: `owed_ns` minus this is the floor owed.
    start_ns: u64,
    /// The component's own counts, which the burner keeps for the proxy (requests,
    /// connections, burned CPU, the profile's memory).
    counters: Arc<Counters>,
    /// The proxy is gone (a sidecar removed by a restart): it holds no memory any more, even
    /// while its last connections close.
    stopped: AtomicBool,
    /// Modeled memory of the configuration istiod pushed it (the profile's cost model at the
    /// proxy's scope): Envoy's clusters and endpoints, ztunnel's workloads.
    config_bytes: AtomicU64,
}

impl Burner {
    pub fn new(component: Arc<Component>, floors: Floors) -> Arc<Burner> {
        let start = component.cpu_ns();
        let counters = component.counters.clone();
        // A proxy holds its base memory idle too.
        counters
            .profile_memory_bytes
            .store(floors.memory_base.0, Ordering::Relaxed);
        Arc::new(Burner {
            component,
            floors,
            owed_ns: AtomicU64::new(start),
            start_ns: start,
            burning: AtomicBool::new(false),
            counters,
            stopped: AtomicBool::new(false),
            config_bytes: AtomicU64::new(0),
        })
    }

    /// The proxy stopped: its modeled memory is gone.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.counters
            .profile_memory_bytes
            .store(0, Ordering::Relaxed);
    }

    fn charge(&self, ns: u64) {
        if ns == 0 {
            return;
        }
        let owed = self.owed_ns.fetch_add(ns, Ordering::Relaxed) + ns;
        // One thread pays the deficit at a time: two workers seeing the same deficit at once
        // would both burn it, and the proxy would cost more than its floor. A thread that
        // finds another paying leaves its share to a later event.
        if self
            .burning
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let used = self.component.cpu_ns();
        if owed > used {
            let burned = burn((owed - used).min(MAX_BURN_NS));
            self.counters
                .floor_burned_ns
                .fetch_add(burned, Ordering::Relaxed);
        }
        self.burning.store(false, Ordering::Release);
    }

    /// A request arrived: pays the profile's on-path share of its CPU now, before it goes on.
    /// The rest is paid when the returned guard drops — hold it until the response is handed
    /// back (early returns included).
    pub fn request_started(self: &Arc<Self>) -> RequestCost {
        self.counters.request();
        let (on_path, after) = self.request_split();
        self.charge(on_path);
        RequestCost {
            burner: self.clone(),
            after,
        }
    }

    /// `cpuPerRequest` split into (before forwarding, after the response), ns.
    fn request_split(&self) -> (u64, u64) {
        let total = self.floors.cpu_per_request.0.as_nanos() as u64;
        let on_path = (total as f64 * self.floors.on_path_share()).round() as u64;
        let on_path = on_path.min(total);
        (on_path, total - on_path)
    }

    /// Where the proxy's TLS configs count their handshakes.
    pub fn handshakes(&self) -> crate::mesh::tls::Handshakes {
        self.counters.tls_handshakes.clone()
    }

    pub fn connection_opened(&self) {
        self.counters
            .connections_opened
            .fetch_add(1, Ordering::Relaxed);
        let n = self
            .counters
            .connections_active
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        self.set_memory(n);
        self.charge(self.floors.cpu_per_connection.0.as_nanos() as u64);
    }

    pub fn connection_closed(&self) {
        let n = self
            .counters
            .connections_active
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        self.set_memory(n);
    }

    /// A request/response exchange relayed at L4 (a reply followed a request).
    pub fn exchange(&self) {
        self.counters.request();
    }

    fn set_memory(&self, connections: u64) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        self.counters.profile_memory_bytes.store(
            self.floors.memory_base.0
                + self.floors.memory_per_connection.0 * connections
                + self.config_bytes.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    /// istiod pushed the proxy a configuration the cost model sizes at `bytes`.
    pub fn set_config_bytes(&self, bytes: u64) {
        self.config_bytes.store(bytes, Ordering::Relaxed);
        self.set_memory(self.counters.connections_active.load(Ordering::Relaxed));
    }

    pub fn bytes(&self, n: u64) {
        let per_kib = self.floors.cpu_per_kib.0.as_nanos() as u64;
        self.charge(per_kib * n / 1024);
    }

    /// CPU the profile's floors have charged so far, ns: what the proxy would have cost had
    /// its model been free.
    pub fn floor_owed_ns(&self) -> u64 {
        self.owed_ns
            .load(Ordering::Relaxed)
            .saturating_sub(self.start_ns)
    }

    pub fn component(&self) -> &Arc<Component> {
        &self.component
    }
}

/// The part of a request's CPU floor paid after its response: on drop, on the same worker
/// once the current task yields (after the response is written), so it delays later work on
/// that worker — queueing and CPU quotas still see it — but not this response.
#[must_use = "the request's after-response CPU is paid when this drops"]
pub struct RequestCost {
    burner: Arc<Burner>,
    after: u64,
}

impl Drop for RequestCost {
    fn drop(&mut self) {
        if self.after == 0 {
            return;
        }
        // Outside a runtime (a proxy shutting down) there is no later to pay it in.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (burner, after) = (self.burner.clone(), self.after);
            rt.spawn(async move { burner.charge(after) });
        }
    }
}

/// Spins for `ns` of this thread's CPU time doing work the optimizer cannot drop; returns the
/// CPU it spent.
fn burn(ns: u64) -> u64 {
    let start = thread_cpu_now_or_zero();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    loop {
        for _ in 0..256 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        std::hint::black_box(x);
        let spent = thread_cpu_now_or_zero().saturating_sub(start);
        if spent >= ns {
            return spent;
        }
    }
}

fn thread_cpu_now_or_zero() -> u64 {
    crate::os::current_thread_cpu_ns()
}

/// Counts the request/response exchanges of one relayed connection, as an L4 proxy can see
/// them: the side that sends first asks (HTTP/1.1 and request/response TCP alike), and each
/// time data turns from that direction to the other, one reply followed one request.
#[derive(Debug, Default)]
pub struct Exchanges {
    /// The direction data first moved in (0: none yet, else 1 or 2).
    first: AtomicU8,
    /// The direction data last moved in.
    last: AtomicU8,
}

impl Exchanges {
    /// Data moved one way (`forward`: the way named first); true when this completes an
    /// exchange. Reads of both directions run on different tasks, hence the atomics.
    pub fn saw(&self, forward: bool) -> bool {
        let d = if forward { 1 } else { 2 };
        let _ = self
            .first
            .compare_exchange(0, d, Ordering::Relaxed, Ordering::Relaxed);
        let prev = self.last.swap(d, Ordering::Relaxed);
        prev != d && prev == self.first.load(Ordering::Relaxed)
    }
}

/// What a relayed connection reports to its proxy's burner as bytes pass.
struct Charge {
    burner: Arc<Burner>,
    exchanges: Exchanges,
    /// The profile charges per KiB (otherwise only exchanges are counted).
    per_kib: bool,
}

impl Charge {
    fn new(burner: Arc<Burner>) -> Arc<Charge> {
        Arc::new(Charge {
            per_kib: !burner.floors.cpu_per_kib.0.is_zero(),
            burner,
            exchanges: Exchanges::default(),
        })
    }

    fn passed(&self, forward: bool, n: usize) {
        if self.exchanges.saw(forward) {
            self.burner.exchange();
        }
        if self.per_kib {
            self.burner.bytes(n as u64);
        }
    }
}

/// Copies both ways between `a` and `b` until both directions end, counting the exchanges
/// it relays and charging `burner` per KiB as the bytes pass (so a long-lived connection pays
/// as it goes, not at the end). Returns `(a→b, b→a)` byte counts.
pub async fn splice_charged<A, B>(a: A, b: B, burner: Option<Arc<Burner>>) -> (u64, u64)
where
    A: AsyncRead + AsyncWrite + Send + 'static,
    B: AsyncRead + AsyncWrite + Send + 'static,
{
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let charge = burner.map(Charge::new);
    let up = tokio::spawn(pump(ar, bw, charge.clone(), true));
    let down = pump(br, aw, charge, false).await;
    let up = up.await.unwrap_or(0);
    (up, down)
}

/// [`splice_charged`] for an HBONE tunnel: the tunnel's payload moves without user-space
/// copies ([`hbone::splice_bytes`]), charged per KiB as it passes. Returns `(tunnel→other,
/// other→tunnel)` byte counts.
pub async fn splice_tunnel_charged<T>(
    tunnel: H2Stream,
    other: T,
    burner: Option<Arc<Burner>>,
) -> (u64, u64)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let charge = burner.map(Charge::new);
    let t = hbone::splice_bytes(tunnel, other, move |dir, n| {
        if let Some(c) = &charge {
            c.passed(dir == Direction::FromTunnel, n);
        }
    })
    .await;
    (t.from_tunnel, t.to_tunnel)
}

async fn pump<R, W>(mut r: R, mut w: W, charge: Option<Arc<Charge>>, forward: bool) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        total += n as u64;
        if let Some(c) = &charge {
            c.passed(forward, n);
        }
    }
    let _ = w.shutdown().await;
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::ComponentKind;
    use crate::netns::NetNs;
    use scenario::Dur;

    fn burner(share: Option<f64>) -> Arc<Burner> {
        let ns = Arc::new(NetNs::current("host").expect("this thread's netns"));
        let floors = Floors {
            cpu_per_request: Dur(std::time::Duration::from_micros(200)),
            request_cpu_on_path: share,
            ..Floors::default()
        };
        Burner::new(
            Component::new("sidecar", ComponentKind::Sidecar, ns),
            floors,
        )
    }

    #[test]
    fn exchanges_count_a_reply_after_each_request_whichever_side_speaks_first() {
        // Requests go `forward` first: three request/response turns, the second request and
        // the third reply in two reads each.
        let e = Exchanges::default();
        let turns = [true, false, true, true, false, true, false, false];
        let n = turns.iter().filter(|&&f| e.saw(f)).count();
        assert_eq!(n, 3);
        // The same traffic seen from the other end of the proxy: directions swapped.
        let e = Exchanges::default();
        let n = turns.iter().filter(|&&f| e.saw(!f)).count();
        assert_eq!(n, 3);
        // A one-way stream (a bulk upload) is no exchange until something comes back.
        let e = Exchanges::default();
        assert_eq!((0..100).filter(|_| e.saw(true)).count(), 0);
        assert!(e.saw(false));
    }

    #[tokio::test]
    async fn the_after_response_share_is_paid_once_the_response_is_out() {
        let b = burner(Some(0.25));
        let cost = b.request_started();
        assert_eq!(b.floor_owed_ns(), 50_000, "a quarter before forwarding");
        drop(cost);
        assert_eq!(
            b.floor_owed_ns(),
            50_000,
            "the rest waits for the task to yield"
        );
        tokio::task::yield_now().await;
        assert_eq!(b.floor_owed_ns(), 200_000, "and is paid after it");

        let all_inline = burner(None);
        let cost = all_inline.request_started();
        assert_eq!(
            all_inline.floor_owed_ns(),
            200_000,
            "default: all on the path"
        );
        drop(cost);
        tokio::task::yield_now().await;
        assert_eq!(all_inline.floor_owed_ns(), 200_000, "and nothing twice");
    }
}

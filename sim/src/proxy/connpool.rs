//! Envoy's HTTP/1.1 upstream connection pool, with a cluster's circuit breakers as a
//! DestinationRule's `connectionPool` sets them.
//!
//! The order of checks is Envoy's (`ConnPoolImplBase::newStreamImpl` and
//! `attachStreamToClient`, source/common/conn_pool/conn_pool_base.cc):
//! - an idle connection takes the request at once;
//! - otherwise the request is pending, and overflows (503, `UO`) when max_pending_requests are
//!   already pending; a new connection opens while the cluster has fewer than max_connections,
//!   or when this host has none at all (Envoy opens one past the limit rather than strand a
//!   host's requests); otherwise it waits for a connection to come free;
//! - once on a connection, it overflows when max_requests are already active.
//!
//! On HTTP/1.1 a connection carries one request at a time, so a request is active from when it
//! is sent until its response head is in (hyper then holds the connection until the body is
//! done). Without a rule every threshold is istiod's `MaxUint32` and nothing overflows.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use scenario::destrule::PoolLimits;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;

/// Idle upstream connections per key; more than this are closed after use.
const MAX_IDLE: usize = 64;

struct Pooled<B> {
    send: SendRequest<B>,
    /// Requests it has carried, for `maxRequestsPerConnection`.
    served: u32,
}

/// Pooled HTTP/1.1 client connections, keyed by destination, sending bodies of type `B` (the
/// proxies forward what they received).
pub struct UpstreamPool<K, B = Incoming> {
    idle: Mutex<HashMap<K, Vec<Pooled<B>>>>,
}

impl<K: Eq + Hash + Clone, B> Default for UpstreamPool<K, B> {
    fn default() -> Self {
        UpstreamPool {
            idle: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, B> UpstreamPool<K, B> {
    /// A ready connection to `key`, if one is idle.
    fn take(&self, key: &K) -> Option<Pooled<B>> {
        let mut idle = lock(&self.idle);
        let list = idle.get_mut(key)?;
        while let Some(p) = list.pop() {
            if p.send.is_ready() {
                return Some(p);
            }
            // Closed since it came back: drop it.
        }
        None
    }

    /// Returns a connection for reuse, unless it has carried `max_per_conn` requests (0: no
    /// limit); dropping it closes the connection once its response is done.
    fn put(&self, key: K, p: Pooled<B>, max_per_conn: u32) {
        if p.send.is_closed() || (max_per_conn > 0 && p.served >= max_per_conn) {
            return;
        }
        let mut idle = lock(&self.idle);
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE {
            list.push(p);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a request was not sent on.
#[derive(Debug)]
pub enum SendError {
    /// A circuit breaker overflowed (Envoy's `UO`).
    Overflow,
    /// The upstream could not be reached or broke (Envoy's `UF`).
    Failed(String),
}

/// One cluster's circuit breakers (a service port, as Envoy's cluster is), shared by every
/// request a proxy sends to it.
pub struct Breaker<K> {
    limits: PoolLimits,
    state: Mutex<Counts<K>>,
    changed: Notify,
    overflows: AtomicU64,
}

struct Counts<K> {
    connections: u32,
    per_host: HashMap<K, u32>,
    pending: u32,
    active: u32,
}

impl<K: Eq + Hash + Clone + Send + 'static> Breaker<K> {
    pub fn new(limits: PoolLimits) -> Arc<Breaker<K>> {
        Arc::new(Breaker {
            limits,
            state: Mutex::new(Counts {
                connections: 0,
                per_host: HashMap::new(),
                pending: 0,
                active: 0,
            }),
            changed: Notify::new(),
            overflows: AtomicU64::new(0),
        })
    }

    /// Requests refused by a threshold (Envoy's `upstream_rq_pending_overflow`).
    pub fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }

    fn overflow(&self) -> SendError {
        self.overflows.fetch_add(1, Ordering::Relaxed);
        SendError::Overflow
    }

    /// A new connection to `key`, if the cluster may open one.
    fn try_connect(self: &Arc<Self>, key: &K) -> Option<OnClose> {
        let mut s = lock(&self.state);
        let host = s.per_host.get(key).copied().unwrap_or(0);
        if s.connections >= self.limits.max_connections && host > 0 {
            return None;
        }
        s.connections += 1;
        *s.per_host.entry(key.clone()).or_default() += 1;
        let (b, key) = (self.clone(), key.clone());
        Some(OnClose(Some(Box::new(move || {
            let mut s = lock(&b.state);
            s.connections -= 1;
            if let Some(n) = s.per_host.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    s.per_host.remove(&key);
                }
            }
            drop(s);
            b.changed.notify_waiters();
        }))))
    }
}

/// Run when an upstream connection's task ends (it closed): frees its place in the cluster.
#[derive(Default)]
pub struct OnClose(Option<Box<dyn FnOnce() + Send>>);

impl Drop for OnClose {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Decrements a count of the breaker's when dropped, and wakes the waiters.
struct Held<K: Eq + Hash + Clone + Send + 'static> {
    b: Arc<Breaker<K>>,
    which: fn(&mut Counts<K>) -> &mut u32,
}

impl<K: Eq + Hash + Clone + Send + 'static> Drop for Held<K> {
    fn drop(&mut self) {
        *(self.which)(&mut lock(&self.b.state)) -= 1;
        self.b.changed.notify_waiters();
    }
}

/// Counts one more in `which` if it is under `limit`.
fn hold<K: Eq + Hash + Clone + Send + 'static>(
    b: &Arc<Breaker<K>>,
    which: fn(&mut Counts<K>) -> &mut u32,
    limit: u32,
) -> Option<Held<K>> {
    let mut s = lock(&b.state);
    let n = which(&mut s);
    if *n >= limit {
        return None;
    }
    *n += 1;
    Some(Held {
        b: b.clone(),
        which,
    })
}

/// Starts an HTTP/1.1 client connection on `io`; its task runs on the runtime and runs
/// `on_close` when the connection ends.
pub async fn handshake<S, B>(io: S, on_close: OnClose) -> Result<SendRequest<B>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
        drop(on_close);
    });
    Ok(send)
}

/// Sends `req` on a pooled connection to `key`, opening one with `open` (given what to run
/// when it closes) under the cluster's `breaker`; without one, nothing is limited. The
/// request stays active, and its connection out of the pool, until the response body is
/// done (hyper's `ready`).
pub async fn send<K, B, F, Fut>(
    pool: &Arc<UpstreamPool<K, B>>,
    breaker: Option<&Arc<Breaker<K>>>,
    key: K,
    req: Request<B>,
    open: F,
) -> Result<Response<Incoming>, SendError>
where
    K: Eq + Hash + Clone + Send + 'static,
    B: Body + Send + 'static,
    F: FnOnce(OnClose) -> Fut,
    Fut: Future<Output = Result<SendRequest<B>, String>>,
{
    let Some(b) = breaker else {
        let conn = match pool.take(&key) {
            Some(p) => p,
            None => Pooled {
                send: open(OnClose::default()).await.map_err(SendError::Failed)?,
                served: 0,
            },
        };
        return exchange(pool, key, conn, req, (0, None)).await;
    };
    let mut pending = None;
    let mut open = Some(open);
    let conn = loop {
        // Registered before looking, so a connection freed in between still wakes us.
        let changed = b.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if let Some(p) = pool.take(&key) {
            break p;
        }
        if pending.is_none() {
            let max = b.limits.max_pending_requests;
            pending = Some(hold(b, |c| &mut c.pending, max).ok_or_else(|| b.overflow())?);
        }
        if let Some(on_close) = b.try_connect(&key)
            && let Some(open) = open.take()
        {
            break Pooled {
                send: open(on_close).await.map_err(SendError::Failed)?,
                served: 0,
            };
        }
        changed.await;
    };
    drop(pending);
    let per_conn = b.limits.max_requests_per_connection;
    let Some(active) = hold(b, |c| &mut c.active, b.limits.max_requests) else {
        pool.put(key, conn, per_conn);
        b.changed.notify_waiters();
        return Err(b.overflow());
    };
    exchange(pool, key, conn, req, (per_conn, Some(active))).await
}

/// A TCP proxy's place for one upstream connection under the cluster's `breaker`: Envoy's
/// TCP pool (`tcp_proxy`) gives each downstream connection its own upstream one, in the same
/// order as for requests: a connection while the cluster has fewer than max_connections (or
/// the host none), else waiting while fewer than max_pending_requests wait, else `Overflow`
/// (the downstream connection is closed, response flag `UO`). Holding the returned value
/// holds the place; dropping it frees it.
pub async fn tcp_slot<K: Eq + Hash + Clone + Send + 'static>(
    b: &Arc<Breaker<K>>,
    key: &K,
) -> Result<OnClose, SendError> {
    let mut pending = None;
    loop {
        let changed = b.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if let Some(place) = b.try_connect(key) {
            return Ok(place);
        }
        if pending.is_none() {
            let max = b.limits.max_pending_requests;
            pending = Some(hold(b, |c| &mut c.pending, max).ok_or_else(|| b.overflow())?);
        }
        changed.await;
    }
}

/// The active request's hold, released once the connection is free again.
type Active<K> = Option<Held<K>>;

async fn exchange<K: Eq + Hash + Clone + Send + 'static, B: Body + Send + 'static>(
    pool: &Arc<UpstreamPool<K, B>>,
    key: K,
    mut conn: Pooled<B>,
    req: Request<B>,
    (max_per_conn, active): (u32, Active<K>),
) -> Result<Response<Incoming>, SendError> {
    let resp = conn
        .send
        .send_request(req)
        .await
        .map_err(|e| SendError::Failed(format!("upstream request failed: {e}")))?;
    conn.served += 1;
    let pool = pool.clone();
    tokio::spawn(async move {
        // Back in the pool once the body is through, and only then free for the next request.
        if conn.send.ready().await.is_ok() {
            pool.put(key, conn, max_per_conn);
        }
        drop(active);
    });
    Ok(resp)
}

/// A proxy's breakers by cluster (service index, service port), made on first use. A
/// cluster whose rule leaves every threshold at istiod's default gets none: nothing there
/// can overflow.
pub struct Breakers<K> {
    map: Mutex<HashMap<Cluster, Option<Arc<Breaker<K>>>>>,
}

/// Envoy's cluster: a service (its index) and one of its ports.
pub type Cluster = (usize, u16);

impl<K> Default for Breakers<K> {
    fn default() -> Self {
        Breakers {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone + Send + 'static> Breakers<K> {
    /// The breaker of service `svc`'s `port` at the proxy of workload `proxy`: its
    /// DestinationRule's connection pool, as istiod picks the rule.
    pub fn for_service(
        &self,
        plan: &crate::mesh::control::MeshPlan,
        proxy: usize,
        (svc, port): Cluster,
    ) -> Option<Arc<Breaker<K>>> {
        lock(&self.map)
            .entry((svc, port))
            .or_insert_with(|| {
                plan.destination_rule(proxy, svc, port)
                    .map(|r| r.1)
                    .filter(|l| !l.is_default())
                    .map(Breaker::new)
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;
    use tokio::sync::{Semaphore, mpsc};

    /// An HTTP/1.1 server that answers only as the test releases `gate`, tells `arrived` of
    /// each request as it comes, and counts the connections it accepted.
    struct Gated {
        addr: SocketAddr,
        gate: Arc<Semaphore>,
        arrived: mpsc::UnboundedReceiver<()>,
        accepted: Arc<AtomicUsize>,
    }

    async fn gated() -> Gated {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let gate = Arc::new(Semaphore::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, arrived) = mpsc::unbounded_channel();
        let (g, n) = (gate.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                let (g, tx) = (g.clone(), tx.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_r: Request<Incoming>| {
                        let (g, tx) = (g.clone(), tx.clone());
                        async move {
                            let _ = tx.send(());
                            g.acquire().await.expect("gate").forget();
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Gated {
            addr,
            gate,
            arrived,
            accepted,
        }
    }

    impl Gated {
        async fn wait_arrival(&mut self) {
            tokio::time::timeout(Duration::from_secs(5), self.arrived.recv())
                .await
                .expect("a request arrives")
                .expect("server runs");
        }
    }

    type Pool = Arc<UpstreamPool<SocketAddr, Empty<Bytes>>>;

    /// Sends one GET to `addr` through `pool` and `breaker` on its own task; the status and
    /// body once done, or the error.
    fn get(
        pool: &Pool,
        breaker: Option<&Arc<Breaker<SocketAddr>>>,
        addr: SocketAddr,
    ) -> tokio::task::JoinHandle<Result<u16, String>> {
        let (pool, breaker) = (pool.clone(), breaker.cloned());
        tokio::spawn(async move {
            let req = Request::get("/")
                .header("host", "t")
                .body(Empty::<Bytes>::new())
                .expect("request");
            let r = send(&pool, breaker.as_ref(), addr, req, |c| async move {
                let io = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| e.to_string())?;
                handshake(io, c).await
            })
            .await;
            match r {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    resp.into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(status)
                }
                Err(SendError::Overflow) => Err("overflow".into()),
                Err(SendError::Failed(e)) => Err(e),
            }
        })
    }

    fn limits(conns: u32, pending: u32, requests: u32, per_conn: u32) -> PoolLimits {
        PoolLimits {
            max_connections: conns,
            max_pending_requests: pending,
            max_requests: requests,
            max_requests_per_connection: per_conn,
        }
    }

    async fn done(h: tokio::task::JoinHandle<Result<u16, String>>) -> Result<u16, String> {
        tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .expect("finishes")
            .expect("task")
    }

    /// Envoy's order: two connections carry two requests, the third waits for one of them,
    /// the fourth finds the pending queue full and is shed; the waiting one then reuses a
    /// connection that came free, so no third connection opens.
    #[tokio::test]
    async fn connections_then_pending_then_overflow() {
        let mut s = gated().await;
        let pool = Pool::default();
        let b = Breaker::new(limits(2, 1, u32::MAX, 0));
        let first = get(&pool, Some(&b), s.addr);
        s.wait_arrival().await;
        let second = get(&pool, Some(&b), s.addr);
        s.wait_arrival().await;
        let third = get(&pool, Some(&b), s.addr);
        while lock(&b.state).pending == 0 {
            tokio::task::yield_now().await;
        }
        let fourth = get(&pool, Some(&b), s.addr);
        assert_eq!(done(fourth).await, Err("overflow".into()));
        s.gate.add_permits(3);
        for h in [first, second, third] {
            assert_eq!(done(h).await, Ok(200));
        }
        assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
        assert_eq!(b.overflows(), 1);
        let c = lock(&b.state);
        assert_eq!((c.pending, c.active), (0, 0), "all released");
    }

    /// `http2MaxRequests` caps requests in flight whatever the connections.
    #[tokio::test]
    async fn max_requests_sheds_past_the_requests_in_flight() {
        let mut s = gated().await;
        let pool = Pool::default();
        let b = Breaker::new(limits(u32::MAX, u32::MAX, 1, 0));
        let first = get(&pool, Some(&b), s.addr);
        s.wait_arrival().await;
        assert_eq!(
            done(get(&pool, Some(&b), s.addr)).await,
            Err("overflow".into())
        );
        s.gate.add_permits(1);
        assert_eq!(done(first).await, Ok(200));
        assert_eq!(b.overflows(), 1);
    }

    /// A host with no connection gets one even when the cluster is at its limit (Envoy opens
    /// it rather than strand the host's requests).
    #[tokio::test]
    async fn a_host_without_a_connection_gets_one_past_the_limit() {
        let (mut a, mut c) = (gated().await, gated().await);
        let pool = Pool::default();
        let b = Breaker::new(limits(1, 1, u32::MAX, 0));
        let one = get(&pool, Some(&b), a.addr);
        a.wait_arrival().await;
        let other = get(&pool, Some(&b), c.addr);
        c.wait_arrival().await;
        a.gate.add_permits(1);
        c.gate.add_permits(1);
        assert_eq!(done(one).await, Ok(200));
        assert_eq!(done(other).await, Ok(200));
        assert_eq!(b.overflows(), 0);
    }

    /// TCP: one upstream connection per downstream one; the next waits for a place, the one
    /// after is shed; a freed place goes to the one waiting.
    #[tokio::test]
    async fn tcp_connections_wait_for_a_place_then_overflow() {
        let b: Arc<Breaker<u16>> = Breaker::new(limits(1, 1, u32::MAX, 0));
        let first = tcp_slot(&b, &1).await.map_err(|_| ()).expect("a place");
        let (b2, (tx, mut rx)) = (b.clone(), mpsc::unbounded_channel());
        let waiting = tokio::spawn(async move {
            let place = tcp_slot(&b2, &1).await;
            let _ = tx.send(());
            place.is_ok()
        });
        while lock(&b.state).pending == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(tcp_slot(&b, &1).await, Err(SendError::Overflow)));
        assert!(rx.try_recv().is_err(), "still waiting");
        drop(first);
        assert!(done_bool(waiting).await, "the freed place");
        assert_eq!(b.overflows(), 1);
    }

    async fn done_bool(h: tokio::task::JoinHandle<bool>) -> bool {
        tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .expect("finishes")
            .expect("task")
    }

    /// Connections come back to the pool once their response is through and carry the next
    /// request; `maxRequestsPerConnection: 1` closes each after one.
    #[tokio::test]
    async fn connections_are_reused_unless_capped_per_connection() {
        for (per_conn, expect) in [(0, 1), (1, 3)] {
            let s = gated().await;
            s.gate.add_permits(3);
            let pool = Pool::default();
            let b = Breaker::new(limits(u32::MAX, u32::MAX, u32::MAX, per_conn));
            for _ in 0..3 {
                assert_eq!(done(get(&pool, Some(&b), s.addr)).await, Ok(200));
                // Back in the pool only once ready: wait for the task that returns it.
                while lock(&b.state).active > 0 {
                    tokio::task::yield_now().await;
                }
            }
            assert_eq!(
                s.accepted.load(Ordering::SeqCst),
                expect,
                "per_conn {per_conn}"
            );
        }
    }
}

//! ztunnel, one per node, on its own threads in the node's namespace. Like the real one in
//! in-pod mode, it opens its listeners *inside each pod's namespace* on its node: 15001
//! (captured outbound), 15006 (captured plaintext inbound) and 15008 (HBONE inbound).
//!
//! Outbound traffic goes in an HBONE tunnel (HTTP/2 CONNECT over mTLS, presenting the source
//! workload's certificate) to the destination pod's 15008 — or to the service's waypoint when
//! it has one. Inbound, ztunnel enforces the L4 parts of the workload's AuthorizationPolicies
//! and connects to the pod. L4 only: it never parses HTTP.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use http::StatusCode;
use tokio::net::{TcpListener, TcpStream};

use crate::accept;
use crate::component::{Component, ComponentRuntime};
use crate::mesh::control::{Live, MeshPlan, ServiceInfo, WorkloadInfo};
use crate::mesh::hbone::{self, Baggage, Connector, HbonePool};
use crate::mesh::policy::{self, Attrs, Decision, Layer};
use crate::mesh::{ConnectRequest, HboneAccept, Identity, tls};
use crate::netns::NetNsRef;
use crate::proxy::Reconfigure;
use crate::proxy::access_log::{self, AccessLog};
use crate::proxy::capture::{HBONE_PORT, INBOUND_PORT, OUTBOUND_PORT};
use crate::proxy::cost::{Burner, splice_charged, splice_tunnel_charged};
use crate::proxy::http::{Peer, labels};
use crate::proxy::sock;
use crate::proxy::telemetry::ProxyMetrics;
use scenario::manifest::AuthorizationPolicy;

/// ztunnel's worker threads (its default is 2).
pub const ZTUNNEL_WORKERS: usize = 2;

pub struct Ztunnel {
    plan: Arc<MeshPlan>,
    burner: Arc<Burner>,
    metrics: Arc<ProxyMetrics>,
    /// Its access log ("connection complete" lines, on by default as in ztunnel).
    log: Arc<AccessLog>,
    node_ns: NetNsRef,
    /// The pods it serves, by workload index.
    pods: BTreeMap<usize, Arc<PodCtx>>,
}

/// One pod ztunnel serves.
struct PodCtx {
    w: usize,
    ns: NetNsRef,
    pool: HbonePool,
    policies: Vec<AuthorizationPolicy>,
}

impl PodCtx {
    fn new(
        plan: &MeshPlan,
        w: usize,
        (ns, home): (NetNsRef, &NetNsRef),
        handshakes: crate::mesh::tls::Handshakes,
    ) -> PodCtx {
        let connector: Connector = {
            let (pod_ns, home) = (ns.clone(), home.clone());
            Arc::new(move |addr| {
                let (pod_ns, home) = (pod_ns.clone(), home.clone());
                Box::pin(async move { sock::connect_in(&pod_ns, &home, addr).await })
            })
        };
        PodCtx {
            w,
            ns,
            pool: HbonePool::counting(&plan.ca, connector, handshakes),
            policies: plan.workload_policies(w).into_iter().cloned().collect(),
        }
    }
}

/// A running ztunnel: takes new plans, and new pods as they are enrolled (istio-cni hands a
/// pod's namespace to the node's ztunnel without restarting the pod).
pub struct ZtunnelHandle {
    live: Arc<Live<Ztunnel>>,
    rt: tokio::runtime::Handle,
    counters: Arc<crate::component::Counters>,
}

/// Starts the ztunnel of a node on `component`'s threads, serving `pods` (workload indices
/// and their namespaces).
pub fn start(
    component: &Arc<Component>,
    plan: Arc<MeshPlan>,
    pods: Vec<(usize, NetNsRef)>,
    workers: usize,
    (metrics, log): (Arc<ProxyMetrics>, Arc<AccessLog>),
) -> std::io::Result<(ComponentRuntime, Arc<Burner>, Arc<ZtunnelHandle>)> {
    let burner = Burner::new(component.clone(), plan.floors("ztunnel"));
    let zt = Ztunnel {
        plan,
        burner: burner.clone(),
        metrics,
        log,
        node_ns: component.netns.clone(),
        pods: BTreeMap::new(),
    };
    let rt = component.start_runtime(workers, None)?;
    let handle = Arc::new(ZtunnelHandle {
        live: Arc::new(Live::new(Arc::new(zt))),
        rt: rt.handle().clone(),
        counters: component.counters.clone(),
    });
    for (w, ns) in pods {
        handle.serve_pod(w, ns)?;
    }
    Ok((rt, burner, handle))
}

impl Reconfigure for ZtunnelHandle {
    fn reconfigure(&self, plan: &Arc<MeshPlan>) {
        let cur = self.live.get();
        let pods = cur
            .pods
            .iter()
            .map(|(&w, c)| {
                (
                    w,
                    Arc::new(PodCtx::new(
                        plan,
                        w,
                        (c.ns.clone(), &cur.node_ns),
                        cur.burner.handshakes(),
                    )),
                )
            })
            .collect();
        self.live.set(Arc::new(cur.with(plan.clone(), pods)));
    }
}

impl ZtunnelHandle {
    /// Opens ztunnel's listeners inside pod `w`'s namespace (in-pod mode) and serves it.
    pub fn serve_pod(&self, w: usize, ns: NetNsRef) -> std::io::Result<()> {
        let cur = self.live.get();
        if cur.pods.contains_key(&w) {
            return Ok(());
        }
        let plan = cur.plan.clone();
        let wl = &plan.workloads[w];
        let bind =
            |port: u16| sock::listen_in(&ns, SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
        let (out_l, in_l, hbone_l) = (bind(OUTBOUND_PORT)?, bind(INBOUND_PORT)?, bind(HBONE_PORT)?);
        let server = tls::server_config(
            &wl.cert,
            &plan.ca,
            &[hbone::ALPN_H2],
            &self.counters.tls_handshakes,
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        // Listeners are registered with the runtime on its own threads (the std sockets were
        // made in the pod's namespace); one that cannot be is an error now, not a silent hole.
        let registered = self.rt.block_on(self.rt.spawn(async move {
            Ok::<_, std::io::Error>((
                TcpListener::from_std(out_l)?,
                TcpListener::from_std(in_l)?,
                TcpListener::from_std(hbone_l)?,
            ))
        }));
        let (out_l, in_l, hbone_l) = registered.map_err(std::io::Error::other)??;
        let mut pods = cur.pods.clone();
        let ctx = PodCtx::new(&plan, w, (ns, &cur.node_ns), cur.burner.handshakes());
        pods.insert(w, Arc::new(ctx));
        self.live.set(Arc::new(cur.with(plan, pods)));
        // Each connection takes the ztunnel's configuration of the moment, and its pod's part.
        let at = move |live: &Live<Ztunnel>| {
            let z = live.get();
            let c = z.pods.get(&w).cloned();
            c.map(|c| (z, c))
        };
        let live = self.live.clone();
        let counters = self.counters.clone();
        self.rt.spawn(async move {
            loop {
                let (conn, _) =
                    accept::next(&out_l, "ztunnel outbound", Some(&counters.accept_errors)).await;
                if let Some((z, c)) = at(&live) {
                    tokio::spawn(async move { z.outbound(&c, conn).await });
                }
            }
        });
        let live = self.live.clone();
        let counters = self.counters.clone();
        self.rt.spawn(async move {
            loop {
                let (conn, peer) =
                    accept::next(&in_l, "ztunnel inbound", Some(&counters.accept_errors)).await;
                if let Some((z, c)) = at(&live) {
                    tokio::spawn(async move { z.plaintext_inbound(&c, conn, peer).await });
                }
            }
        });
        let live = self.live.clone();
        let errors = self.counters.clone();
        self.rt.spawn(async move {
            hbone::serve_listener(hbone_l, server, Some(errors), move |req| {
                let found = at(&live);
                async move {
                    let (z, c) = found.ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
                    z.hbone_inbound(&c, req)
                }
            })
            .await;
        });
        Ok(())
    }
}

fn reset(conn: TcpStream) {
    // A zero linger makes close send RST: a denied connection is reset, as ztunnel does.
    let _ = socket2::SockRef::from(&conn).set_linger(Some(std::time::Duration::ZERO));
    drop(conn);
}

/// ztunnel's L4 authorization of one connection: the policies that select the destination,
/// against the peer's identity and addresses. The per-connection path the deterministic
/// benches count (`sim/benches/deterministic.rs`).
pub fn l4_verdict(
    policies: &[AuthorizationPolicy],
    peer: Option<&Identity>,
    src_ip: Option<std::net::IpAddr>,
    dst_ip: std::net::IpAddr,
    port: u16,
) -> policy::Verdict {
    let refs: Vec<&AuthorizationPolicy> = policies.iter().collect();
    let attrs = Attrs {
        principal: peer.map(|p| p.principal()),
        namespace: peer.map(|p| p.namespace.clone()),
        source_ip: src_ip,
        dest_port: port,
        dest_ip: Some(dst_ip),
        http: None,
        ..Attrs::default()
    };
    bench_knob::extra_work(|| policy::evaluate(&refs, &attrs, Layer::L4));
    policy::evaluate(&refs, &attrs, Layer::L4)
}

/// A test-only slowdown: with feature `bench-knob-5pct`, one connection in twenty is
/// authorized twice, 5% more work on ztunnel's per-connection path, for checking that the
/// deterministic benches catch a regression that size. Without it, nothing.
mod bench_knob {
    #[cfg(feature = "bench-knob-5pct")]
    pub fn extra_work<T>(f: impl FnOnce() -> T) {
        use std::sync::atomic::{AtomicU64, Ordering};
        static CALLS: AtomicU64 = AtomicU64::new(0);
        if CALLS.fetch_add(1, Ordering::Relaxed) % 20 == 19 {
            std::hint::black_box(f());
        }
    }

    #[cfg(not(feature = "bench-knob-5pct"))]
    #[inline(always)]
    pub fn extra_work<T>(_: impl FnOnce() -> T) {}
}

impl Ztunnel {
    fn with(&self, plan: Arc<MeshPlan>, pods: BTreeMap<usize, Arc<PodCtx>>) -> Ztunnel {
        Ztunnel {
            plan,
            burner: self.burner.clone(),
            metrics: self.metrics.clone(),
            log: self.log.clone(),
            node_ns: self.node_ns.clone(),
            pods,
        }
    }

    async fn outbound(&self, ctx: &PodCtx, conn: TcpStream) {
        let _ = conn.set_nodelay(true);
        let Ok(SocketAddr::V4(dst)) = sock::original_dst(&conn) else {
            return;
        };
        let plan = &self.plan;
        let src = &plan.workloads[ctx.w];
        let Some(Next {
            server,
            authority,
            svc,
            dst: dst_wl,
        }) = self.next_hop(ctx, dst)
        else {
            return;
        };
        let Some(server) = server else {
            // Out of the mesh (no HBONE there): straight through, plaintext, from the pod's
            // namespace, as ztunnel's passthrough does.
            if let Ok(up) = sock::connect_in(&ctx.ns, &self.node_ns, authority).await {
                splice_charged(conn, up, Some(self.burner.clone())).await;
            }
            return;
        };
        let dst_wl = dst_wl.unwrap_or(server);
        let baggage = Baggage {
            cluster: "Kubernetes".into(),
            namespace: src.namespace.clone(),
            workload_kind: "deployment".into(),
            workload_name: src.workload.clone(),
            service_name: src.workload.clone(),
            service_version: "latest".into(),
        };
        let headers = hbone::tunnel_headers(src.ip.into(), Some(&baggage));
        let opened = std::time::Instant::now();
        self.burner.connection_opened();
        let tunnel = ctx
            .pool
            .connect(
                &src.cert,
                plan.hbone_addr(server),
                &server.identity,
                authority,
                headers,
            )
            .await;
        // ztunnel reports mutual_tls on both ends of an HBONE tunnel.
        let l = crate::proxy::http::with_security(
            labels("source", &Peer::of(src), &Peer::of(dst_wl), svc, None),
            Some(true),
        );
        let peer = conn.peer_addr().ok();
        let (sent, recv, error) = match tunnel {
            Ok(t) => {
                self.metrics.tcp_opened.get_or_create(&l).inc();
                let (down, up) = splice_tunnel_charged(t, conn, Some(self.burner.clone())).await;
                self.metrics.tcp_received.get_or_create(&l).inc_by(up);
                self.metrics.tcp_sent.get_or_create(&l).inc_by(down);
                self.metrics.tcp_closed.get_or_create(&l).inc();
                (up, down, None)
            }
            Err(e) => {
                tracing::debug!(error = %e, "tunnel refused or failed");
                reset(conn);
                (0, 0, Some(e.to_string()))
            }
        };
        self.burner.connection_closed();
        let line = access_log::ztunnel_line(
            &access_log::ZtConnection {
                src: access_log::ZtEnd {
                    addr: peer.unwrap_or(SocketAddr::from((src.ip, 0))),
                    workload: Some(&src.pod),
                    namespace: Some(&src.namespace),
                    identity: Some(src.identity.to_string()),
                },
                dst: access_log::ZtEnd {
                    addr: plan.hbone_addr(server),
                    workload: Some(&dst_wl.pod),
                    namespace: Some(&dst_wl.namespace),
                    identity: Some(server.identity.to_string()),
                },
                hbone_addr: Some(authority),
                service: svc.map(|s| s.fqdn()),
                direction: "outbound",
                bytes_sent: sent,
                bytes_recv: recv,
                duration: opened.elapsed(),
                error,
            },
            std::time::SystemTime::now(),
        );
        self.log.write(line);
    }

    /// Where captured outbound traffic to `dst` goes. A service with a waypoint goes to the
    /// waypoint; otherwise an endpoint is picked. A pod with a workload waypoint goes to that
    /// waypoint. A destination that takes HBONE (ambient, sidecar or waypoint pod) gets a
    /// tunnel; anything else (out of the mesh, or unknown) plaintext. `None`: refuse.
    fn next_hop(&self, ctx: &PodCtx, dst: std::net::SocketAddrV4) -> Option<Next<'_>> {
        let plan = &self.plan;
        let via_waypoint = |wp: usize| {
            let wl = &plan.workloads[plan.waypoints[wp].workload];
            (plan.waypoints[wp].workload != ctx.w).then_some(wl)
        };
        match plan.service_by_vip(*dst.ip()) {
            Some((svc, info)) => {
                let (target, _) = info.port(dst.port())?;
                if let Some(wl) = info.waypoint.and_then(via_waypoint) {
                    return Some(Next {
                        server: Some(wl),
                        authority: SocketAddr::V4(dst),
                        svc: Some(info),
                        dst: None,
                    });
                }
                let ep = plan.pick_endpoint(svc)?;
                Some(Next {
                    server: takes_hbone(ep),
                    authority: SocketAddr::from((ep.ip, target)),
                    svc: Some(info),
                    dst: Some(ep),
                })
            }
            None => {
                let Some(w) = plan.workload_by_ip(*dst.ip()) else {
                    return Some(Next {
                        server: None,
                        authority: SocketAddr::V4(dst),
                        svc: None,
                        dst: None,
                    });
                };
                let server = match w.waypoint.and_then(via_waypoint) {
                    Some(wp) => Some(wp),
                    None => takes_hbone(w),
                };
                Some(Next {
                    server,
                    authority: SocketAddr::V4(dst),
                    svc: None,
                    dst: Some(w),
                })
            }
        }
    }

    /// The L4 authorization of a connection to workload `w` from `peer`. Every policy that
    /// selects the workload applies to every peer, a waypoint included: traffic that came
    /// through a waypoint carries the waypoint's identity, and an ALLOW naming only the
    /// original client refuses it (istio.io "Use waypoint proxies to enforce L7 policy":
    /// policies at the destination ztunnel see the waypoint as the source; pilot grants
    /// waypoints nothing unless `PILOT_AUTO_ALLOW_WAYPOINT_POLICY`, off by default,
    /// `pilot/pkg/features/ambient.go`).
    fn authorize(
        &self,
        ctx: &PodCtx,
        peer: Option<&Identity>,
        src_ip: Option<std::net::IpAddr>,
        port: u16,
    ) -> bool {
        let me = &self.plan.workloads[ctx.w];
        let v = l4_verdict(&ctx.policies, peer, src_ip, me.ip.into(), port);
        let allowed = v.decision == Decision::Allow;
        self.plan
            .decisions
            .record(|| crate::mesh::decisions::Record {
                proxy: format!("ztunnel for {}", me.pod),
                src_ip,
                port,
                request: None,
                allowed,
                by: crate::mesh::decisions::describe(&v),
                mtls: peer.is_some(),
            });
        allowed
    }

    fn hbone_inbound(
        self: &Arc<Self>,
        ctx: &Arc<PodCtx>,
        req: ConnectRequest,
    ) -> Result<HboneAccept, StatusCode> {
        let me = &self.plan.workloads[ctx.w];
        if req.authority.ip() != std::net::IpAddr::V4(me.ip) {
            return Err(StatusCode::BAD_REQUEST);
        }
        let src_ip = hbone::forwarded_for(&req.headers).or(req.peer_addr.map(|a| a.ip()));
        if !self.authorize(ctx, Some(&req.peer), src_ip, req.authority.port()) {
            // ztunnel answers a CONNECT its policy refuses with 401
            // (istio/ztunnel `src/proxy/inbound.rs`, the RBAC rejection).
            return Err(StatusCode::UNAUTHORIZED);
        }
        let src = Peer::lookup(&self.plan, src_ip, Some(&req.peer));
        let svc = self
            .plan
            .services_of(ctx.w)
            .find(|s| s.ports.iter().any(|p| p.1 == req.authority.port()));
        let l = crate::proxy::http::with_security(
            labels("destination", &src, &Peer::of(me), svc, None),
            Some(true),
        );
        let (z, c) = (self.clone(), ctx.clone());
        let target = req.authority;
        let (peer, peer_id) = (req.peer_addr, req.peer.to_string());
        let src_name = self
            .plan
            .workload_by_ip(match src_ip {
                Some(std::net::IpAddr::V4(ip)) => ip,
                _ => Ipv4Addr::UNSPECIFIED,
            })
            .map(|w| (w.pod.clone(), w.namespace.clone()));
        let service = svc.map(|s| s.fqdn());
        Ok(HboneAccept::new(move |tunnel| async move {
            let opened = std::time::Instant::now();
            let (received, sent, error) = match sock::connect_in(&c.ns, &z.node_ns, target).await {
                Ok(up) => {
                    z.burner.connection_opened();
                    z.metrics.tcp_opened.get_or_create(&l).inc();
                    let (received, sent) =
                        splice_tunnel_charged(tunnel, up, Some(z.burner.clone())).await;
                    z.metrics.tcp_received.get_or_create(&l).inc_by(received);
                    z.metrics.tcp_sent.get_or_create(&l).inc_by(sent);
                    z.metrics.tcp_closed.get_or_create(&l).inc();
                    z.burner.connection_closed();
                    (received, sent, None)
                }
                Err(e) => (0, 0, Some(format!("connection to the pod failed: {e}"))),
            };
            let me = &z.plan.workloads[c.w];
            let line = access_log::ztunnel_line(
                &access_log::ZtConnection {
                    src: access_log::ZtEnd {
                        addr: peer.unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
                        workload: src_name.as_ref().map(|n| n.0.as_str()),
                        namespace: src_name.as_ref().map(|n| n.1.as_str()),
                        identity: Some(peer_id),
                    },
                    dst: access_log::ZtEnd {
                        addr: z.plan.hbone_addr(me),
                        workload: Some(&me.pod),
                        namespace: Some(&me.namespace),
                        identity: Some(me.identity.to_string()),
                    },
                    hbone_addr: Some(target),
                    service,
                    direction: "inbound",
                    bytes_sent: sent,
                    bytes_recv: received,
                    duration: opened.elapsed(),
                    error,
                },
                std::time::SystemTime::now(),
            );
            z.log.write(line);
        }))
    }

    async fn plaintext_inbound(&self, ctx: &PodCtx, conn: TcpStream, peer: SocketAddr) {
        let Ok(dst) = sock::original_dst(&conn) else {
            return;
        };
        let strict = self.plan.strict_mtls(ctx.w, dst.port());
        if strict {
            self.plan
                .decisions
                .record(|| crate::mesh::decisions::Record {
                    proxy: format!("ztunnel for {}", self.plan.workloads[ctx.w].pod),
                    src_ip: Some(peer.ip()),
                    port: dst.port(),
                    request: None,
                    allowed: false,
                    by: "PeerAuthentication STRICT (plaintext refused)".into(),
                    mtls: false,
                });
        }
        if strict || !self.authorize(ctx, None, Some(peer.ip()), dst.port()) {
            // Reset once the client has spoken (or after a second): an RST racing the
            // client's own connect shows as "failed to connect", where Istio's users see
            // "connection reset by peer" on their request.
            let mut b = [0u8; 1];
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(1), conn.peek(&mut b)).await;
            return reset(conn);
        }
        if let Ok(up) = sock::connect_in(&ctx.ns, &self.node_ns, dst).await {
            splice_charged(conn, up, Some(self.burner.clone())).await;
        }
    }
}

fn takes_hbone(w: &WorkloadInfo) -> Option<&WorkloadInfo> {
    w.takes_hbone().then_some(w)
}

/// Where one outbound connection goes: `server` is the HBONE peer (none: plaintext to
/// `authority`), `dst` the destination workload when known.
struct Next<'a> {
    server: Option<&'a WorkloadInfo>,
    authority: SocketAddr,
    svc: Option<&'a ServiceInfo>,
    dst: Option<&'a WorkloadInfo>,
}

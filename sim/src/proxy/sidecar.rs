//! The sidecar (Envoy model), one per meshed pod, on its own `concurrency` worker threads in
//! the pod's namespace.
//!
//! Outbound (15001, captured): HTTP/1.1 is parsed, an endpoint picked, and the request sent
//! over a pooled mTLS connection (TLS 1.3, SPIFFE identities) to the endpoint's port, where the
//! destination pod's capture hands it to its sidecar's 15006. Inbound (15006): TLS is
//! terminated (plaintext only where PeerAuthentication allows), the request authenticated
//! (JWT) and authorized (full L7), and forwarded to the app on localhost. Non-HTTP ports pass
//! through as TCP over mTLS, authorized at L4 attributes.
//!
//! In a mixed mesh the sidecar speaks each destination's language, as Istio's does with the
//! ambient profile: legacy mTLS to another sidecar, HBONE to a pod captured by ztunnel (and
//! it takes HBONE itself on 15008, from ztunnels and waypoints), plaintext to a pod out of the
//! mesh or one whose PeerAuthentication is DISABLE. It never sends to a service's waypoint:
//! Istio treats a sidecar's traffic as workload traffic
//! (`pilot/pkg/xds/endpoints/endpoint_builder.go`, the comment on service waypoints).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::accept;
use crate::component::{Component, ComponentRuntime};
use crate::mesh::control::{Live, MeshPlan, ServiceInfo, WorkloadInfo};
use crate::mesh::hbone::{self, HbonePool};
use crate::mesh::policy::{self, Attrs, Decision, Layer};
use crate::mesh::tls;
use crate::mesh::{ConnectRequest, HboneAccept};
use crate::proxy::Reconfigure;
use crate::proxy::access_log::AccessLog;
use crate::proxy::capture::{HBONE_PORT, INBOUND_PORT, OUTBOUND_PORT};
use crate::proxy::connpool::{self, Breakers, UpstreamPool};
use crate::proxy::cost::{Burner, splice_charged, splice_tunnel_charged};
use crate::proxy::http::{self, Body, Peer};
use crate::proxy::sock;
use crate::proxy::telemetry::ProxyMetrics;
use scenario::jwt::Issuer;
use scenario::manifest::AuthorizationPolicy;

const ALPN_HTTP1: &[u8] = b"http/1.1";

pub struct Sidecar {
    plan: Arc<MeshPlan>,
    me: usize,
    burner: Arc<Burner>,
    metrics: Arc<ProxyMetrics>,
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    /// Upstream HTTP connections (mTLS, HBONE or plaintext), by endpoint address.
    outbound: Arc<UpstreamPool<SocketAddr>>,
    /// The outbound clusters' circuit breakers (a DestinationRule's connection pool).
    breakers: Breakers<SocketAddr>,
    /// HBONE tunnels to ambient pods, by destination.
    hbone: HbonePool,
    /// Connections to the local app, by port.
    inbound: Arc<UpstreamPool<u16>>,
    policies: Vec<AuthorizationPolicy>,
    issuers: Vec<Issuer>,
    /// Envoy's access log, when the mesh config turns it on.
    log: Option<Arc<AccessLog>>,
}

/// How the sidecar reaches one destination (Istio's auto mTLS and HBONE choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// Istio's legacy mTLS to another sidecar.
    Mtls,
    /// An HBONE tunnel to the pod's 15008.
    Hbone,
    Plain,
}

/// Starts the sidecar of workload `me` on `component`'s threads (inside its pod).
pub fn start(
    component: &Arc<Component>,
    plan: Arc<MeshPlan>,
    me: usize,
    concurrency: usize,
    (metrics, log): (Arc<ProxyMetrics>, Option<Arc<AccessLog>>),
) -> std::io::Result<(ComponentRuntime, Arc<Burner>, Arc<dyn Reconfigure>)> {
    let w = &plan.workloads[me];
    let err = |e: tls::TlsError| std::io::Error::other(e.to_string());
    let shakes = &component.counters.tls_handshakes;
    let client = tls::client_config(&w.cert, &plan.ca, &[ALPN_HTTP1], true, shakes).map_err(err)?;
    let server = tls::server_config(&w.cert, &plan.ca, &[ALPN_HTTP1], shakes).map_err(err)?;
    let burner = Burner::new(component.clone(), plan.floors("sidecar"));
    let live = Arc::new(Live::new(Arc::new(Sidecar::configure(
        &plan,
        me,
        (burner.clone(), metrics, log),
        (client, server),
    ))));
    let rt = component.start_runtime(concurrency, None)?;
    let (out_l, in_l, hbone_l) = rt.run(async {
        let o = TcpListener::bind((Ipv4Addr::UNSPECIFIED, OUTBOUND_PORT)).await?;
        let i = TcpListener::bind((Ipv4Addr::UNSPECIFIED, INBOUND_PORT)).await?;
        let h = TcpListener::bind((Ipv4Addr::UNSPECIFIED, HBONE_PORT)).await?;
        Ok::<_, std::io::Error>((o, i, h))
    })?;
    let hbone_server =
        tls::server_config(&w.cert, &plan.ca, &[hbone::ALPN_H2], shakes).map_err(err)?;
    let (l, counters) = (live.clone(), component.counters.clone());
    rt.spawn(async move {
        hbone::serve_listener(hbone_l, hbone_server, Some(counters), move |req| {
            let s = l.get();
            async move { s.hbone_inbound(req) }
        })
        .await;
    });
    let l = live.clone();
    let counters = component.counters.clone();
    rt.spawn(async move {
        loop {
            let (conn, _) =
                accept::next(&out_l, "sidecar outbound", Some(&counters.accept_errors)).await;
            let (s, l) = (l.get(), l.clone());
            tokio::spawn(async move { s.outbound(conn, l).await });
        }
    });
    let l = live.clone();
    let counters = component.counters.clone();
    rt.spawn(async move {
        loop {
            let (conn, peer) =
                accept::next(&in_l, "sidecar inbound", Some(&counters.accept_errors)).await;
            let s = l.get();
            tokio::spawn(async move { s.inbound(conn, peer).await });
        }
    });
    Ok((rt, burner, live))
}

impl Reconfigure for Live<Sidecar> {
    fn reconfigure(&self, plan: &Arc<MeshPlan>) {
        let cur = self.get();
        self.set(Arc::new(Sidecar::configure(
            plan,
            cur.me,
            (cur.burner.clone(), cur.metrics.clone(), cur.log.clone()),
            (cur.client.clone(), cur.server.clone()),
        )));
    }
}

impl Sidecar {
    /// The sidecar's state for one plan. Its connection pools start empty, as Envoy drains a
    /// cluster's pools when an update changes it.
    fn configure(
        plan: &Arc<MeshPlan>,
        me: usize,
        (burner, metrics, log): (Arc<Burner>, Arc<ProxyMetrics>, Option<Arc<AccessLog>>),
        (client, server): (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>),
    ) -> Sidecar {
        Sidecar {
            log,
            policies: plan.workload_policies(me).into_iter().cloned().collect(),
            issuers: plan.workload_issuers(me),
            hbone: HbonePool::counting(
                &plan.ca,
                Arc::new(|addr| Box::pin(sock::connect_marked(addr))),
                burner.handshakes(),
            ),
            plan: plan.clone(),
            me,
            burner,
            metrics,
            client,
            server,
            outbound: Default::default(),
            breakers: Breakers::default(),
            inbound: Default::default(),
        }
    }

    /// A captured outbound connection, on the configuration of its start; an HTTP one takes
    /// the configuration current at each request from `live`, as Envoy routes each request to
    /// the cluster's endpoints of the moment (an EDS update reaches requests on connections
    /// already open).
    async fn outbound(self: Arc<Self>, conn: TcpStream, live: Arc<Live<Sidecar>>) {
        let _ = conn.set_nodelay(true);
        let Ok(SocketAddr::V4(dst)) = sock::original_dst(&conn) else {
            return;
        };
        self.burner.connection_opened();
        match self.plan.service_by_vip(*dst.ip()) {
            Some((svc, info)) => match info.port(dst.port()) {
                Some((target, true)) => Self::outbound_http(live, conn, svc, target).await,
                Some((target, false)) => {
                    if let Some(ep) = self.plan.pick_endpoint(svc) {
                        // The service's DestinationRule limits its TCP connections too.
                        let breaker = info.service_port(target).and_then(|port| {
                            self.breakers.for_service(&self.plan, self.me, (svc, port))
                        });
                        let key = SocketAddr::from((ep.ip, target));
                        let place = match &breaker {
                            Some(b) => match connpool::tcp_slot(b, &key).await {
                                Ok(p) => Some(p),
                                // Overflow: Envoy's tcp_proxy closes the connection (UO).
                                Err(_) => {
                                    self.burner.connection_closed();
                                    return;
                                }
                            },
                            None => None,
                        };
                        self.outbound_tcp(conn, ep, target).await;
                        drop(place);
                    }
                }
                None => passthrough(conn, SocketAddr::V4(dst), &self.burner).await,
            },
            None => match self.plan.workload_by_ip(*dst.ip()) {
                Some(w) => self.outbound_tcp(conn, w, dst.port()).await,
                None => passthrough(conn, SocketAddr::V4(dst), &self.burner).await,
            },
        }
        self.burner.connection_closed();
    }

    /// How to reach port `port` of `ep`: mTLS to a sidecar unless its PeerAuthentication for
    /// the port is DISABLE (auto mTLS then sends plaintext: endpoint_builder.go drops the
    /// endpoint's tlsMode when mTLS is off), HBONE to an ambient pod or a waypoint (Istio's
    /// `PILOT_ENABLE_SENDING_HBONE`, on with ambient; sidecars keep legacy mTLS to each other
    /// since `PILOT_PREFER_SENDING_HBONE` is off), plaintext out of the mesh.
    fn transport(&self, ep: &WorkloadInfo, port: u16) -> Transport {
        use scenario::DataPlane;
        let w = self.plan.workload_index(ep.ip).unwrap_or(usize::MAX);
        match ep.dataplane() {
            _ if ep.is_waypoint.is_some() => Transport::Hbone,
            DataPlane::Sidecar
                if self.plan.mtls_mode(w, port) == scenario::manifest::MtlsMode::Disable =>
            {
                Transport::Plain
            }
            DataPlane::Sidecar => Transport::Mtls,
            DataPlane::Ambient => Transport::Hbone,
            DataPlane::None => Transport::Plain,
        }
    }

    /// Opens a byte stream to `port` of `ep` the way [`Sidecar::transport`] says.
    async fn open(&self, ep: &WorkloadInfo, port: u16) -> Result<Upstream, String> {
        let addr = SocketAddr::from((ep.ip, port));
        match self.transport(ep, port) {
            Transport::Plain => Ok(Upstream::Plain(
                sock::connect_marked(addr)
                    .await
                    .map_err(|e| format!("connect {addr}: {e}"))?,
            )),
            Transport::Mtls => {
                let tcp = sock::connect_marked(addr)
                    .await
                    .map_err(|e| format!("connect {addr}: {e}"))?;
                let (tls, _) =
                    tls::connect(tcp, self.client.clone(), std::slice::from_ref(&ep.identity))
                        .await
                        .map_err(|e| e.to_string())?;
                Ok(Upstream::Mtls(Box::new(tls)))
            }
            Transport::Hbone => {
                let me = &self.plan.workloads[self.me];
                let t = self.plan.tunnel(&self.hbone, me, ep, addr).await?;
                Ok(Upstream::Hbone(t))
            }
        }
    }

    async fn outbound_tcp(&self, conn: TcpStream, ep: &WorkloadInfo, port: u16) {
        match self.open(ep, port).await {
            Ok(Upstream::Plain(up)) => {
                splice_charged(conn, up, Some(self.burner.clone())).await;
            }
            Ok(Upstream::Mtls(up)) => {
                splice_charged(conn, *up, Some(self.burner.clone())).await;
            }
            Ok(Upstream::Hbone(up)) => {
                splice_tunnel_charged(up, conn, Some(self.burner.clone())).await;
            }
            Err(e) => tracing::debug!(error = %e, "sidecar upstream failed"),
        }
    }

    async fn outbound_http(live: Arc<Live<Sidecar>>, conn: TcpStream, svc: usize, target: u16) {
        let service = service_fn(move |req: Request<Incoming>| {
            let s = live.get();
            async move { Ok::<_, std::convert::Infallible>(s.forward_out(req, svc, target).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(conn), service)
            .await;
    }

    async fn forward_out(&self, req: Request<Incoming>, svc: usize, target: u16) -> Response<Body> {
        let started = Instant::now();
        let cost = self.burner.request_started();
        let info: &ServiceInfo = &self.plan.services[svc];
        let me = Peer::of(&self.plan.workloads[self.me]);
        let meta = self.log.as_ref().map(|_| http::RequestMeta::of(&req));
        let port = info.service_port(target).unwrap_or(target);
        let cluster = || format!("outbound|{port}||{}", info.fqdn());
        let Some(ep) = self.plan.pick_endpoint(svc) else {
            let resp = http::no_healthy_upstream();
            if let (Some(log), Some(meta)) = (&self.log, &meta) {
                http::log_request(
                    meta,
                    &resp,
                    http::Upstream {
                        host: None,
                        cluster: cluster(),
                        local: None,
                        remote: None,
                        started,
                        log,
                    },
                );
            }
            return resp;
        };
        let addr = SocketAddr::from((ep.ip, target));
        // The client's sidecar applies the DestinationRule of the service it sends to.
        let breaker = self.breakers.for_service(&self.plan, self.me, (svc, port));
        let resp = connpool::send(
            &self.outbound,
            breaker.as_ref(),
            addr,
            req,
            |c| async move {
                match self.open(ep, target).await? {
                    Upstream::Plain(io) => connpool::handshake(io, c).await,
                    Upstream::Mtls(io) => connpool::handshake(*io, c).await,
                    Upstream::Hbone(io) => connpool::handshake(io, c).await,
                }
            },
        )
        .await;
        let resp = match resp {
            Ok(r) => http::boxed(r),
            Err(e) => http::send_failed(&e),
        };
        let l = http::labels("source", &me, &Peer::of(ep), Some(info), Some(&resp));
        let l = http::with_security(l, None);
        http::record_request(&self.metrics, &l, started);
        if let (Some(log), Some(meta)) = (&self.log, &meta) {
            http::log_request(
                meta,
                &resp,
                http::Upstream {
                    host: Some(addr),
                    cluster: cluster(),
                    local: None,
                    remote: None,
                    started,
                    log,
                },
            );
        }
        http::pay_after_body(resp, cost)
    }

    async fn inbound(self: Arc<Self>, conn: TcpStream, peer: SocketAddr) {
        let _ = conn.set_nodelay(true);
        let Ok(dst) = sock::original_dst(&conn) else {
            return;
        };
        let port = dst.port();
        let mut first = [0u8; 1];
        let is_tls = matches!(conn.peek(&mut first).await, Ok(1) if first[0] == 0x16);
        self.burner.connection_opened();
        if is_tls {
            if let Ok((tls, id)) = tls::accept(conn, self.server.clone()).await {
                self.inbound_stream(tls, peer.ip(), Some(id), port).await;
            }
        } else if self.plan.strict_mtls(self.me, port) {
            self.plan
                .decisions
                .record(|| crate::mesh::decisions::Record {
                    proxy: format!("sidecar {}", self.plan.workloads[self.me].pod),
                    src_ip: Some(peer.ip()),
                    port,
                    request: None,
                    allowed: false,
                    by: "PeerAuthentication STRICT (plaintext refused)".into(),
                    mtls: false,
                });
            // PeerAuthentication STRICT: plaintext is refused with a reset.
            let _ = socket2::SockRef::from(&conn).set_linger(Some(std::time::Duration::ZERO));
        } else {
            self.inbound_stream(conn, peer.ip(), None, port).await;
        }
        self.burner.connection_closed();
    }

    /// HBONE from a ztunnel or a waypoint (or another sidecar): the peer's identity is the
    /// tunnel's mTLS certificate, its address the `Forwarded` header when a ztunnel tunnels
    /// for a pod. Then as any inbound stream.
    fn hbone_inbound(
        self: &Arc<Self>,
        req: ConnectRequest,
    ) -> Result<HboneAccept, ::http::StatusCode> {
        let me = &self.plan.workloads[self.me];
        if req.authority.ip() != IpAddr::V4(me.ip) {
            return Err(::http::StatusCode::BAD_REQUEST);
        }
        let src_ip = hbone::forwarded_for(&req.headers)
            .or(req.peer_addr.map(|a| a.ip()))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let port = req.authority.port();
        let s = self.clone();
        Ok(HboneAccept::new(move |tunnel| async move {
            s.burner.connection_opened();
            s.inbound_stream(tunnel, src_ip, Some(req.peer), port).await;
            s.burner.connection_closed();
        }))
    }

    async fn inbound_stream<S>(
        self: &Arc<Self>,
        io: S,
        peer_ip: IpAddr,
        id: Option<crate::mesh::Identity>,
        port: u16,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let base = Attrs {
            principal: id.as_ref().map(|i| i.principal()),
            namespace: id.as_ref().map(|i| i.namespace.clone()),
            source_ip: Some(peer_ip),
            dest_port: port,
            http: None,
            ..Attrs::default()
        };
        let src = Peer::lookup(&self.plan, Some(peer_ip), id.as_ref());
        if self.plan.is_http_target(self.me, port) {
            let s = self.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let s = s.clone();
                let base = base.clone();
                let src = src.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(s.forward_in(req, base, src, port).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(io), service)
                .await;
        } else {
            // A non-HTTP port: Envoy's network RBAC filter (Layer::Tcp semantics).
            let refs: Vec<&AuthorizationPolicy> = self.policies.iter().collect();
            let mut base = base;
            base.dest_ip = Some(self.plan.workloads[self.me].ip.into());
            let v = policy::evaluate(&refs, &base, Layer::Tcp);
            self.plan
                .decisions
                .record(|| crate::mesh::decisions::Record {
                    proxy: format!("sidecar {}", self.plan.workloads[self.me].pod),
                    src_ip: base.source_ip,
                    port,
                    request: None,
                    allowed: v.decision == Decision::Allow,
                    by: crate::mesh::decisions::describe(&v),
                    mtls: base.principal.is_some(),
                });
            if v.decision != Decision::Allow {
                return;
            }
            if let Ok(app) =
                sock::connect_marked(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await
            {
                splice_charged(io, app, Some(self.burner.clone())).await;
            }
        }
    }

    async fn forward_in(
        &self,
        req: Request<Incoming>,
        mut attrs: Attrs,
        src: Peer,
        port: u16,
    ) -> Response<Body> {
        let started = Instant::now();
        let cost = self.burner.request_started();
        let me = &self.plan.workloads[self.me];
        let svc = self
            .plan
            .services_of(self.me)
            .find(|s| s.ports.iter().any(|p| p.1 == port));
        let mut req = req;
        let meta = self.log.as_ref().map(|_| http::RequestMeta::of(&req));
        let checked = http::normalize(&mut req).and_then(|()| {
            let mut h = http::http_attrs(&req);
            http::check_jwt(&mut req, &self.issuers, &mut h).map(|()| h)
        });
        let resp = match checked {
            Err(r) => {
                // jwt_authn (or path normalization) answered before any policy.
                self.plan
                    .decisions
                    .record(|| crate::mesh::decisions::Record {
                        proxy: format!("sidecar {}", me.pod),
                        src_ip: attrs.source_ip,
                        port: attrs.dest_port,
                        request: None,
                        allowed: false,
                        by: format!("RequestAuthentication / jwt_authn ({})", r.status()),
                        mtls: attrs.principal.is_some(),
                    });
                *r
            }
            Ok(h) => {
                attrs.http = Some(h);
                attrs.dest_ip = Some(me.ip.into());
                let refs: Vec<&AuthorizationPolicy> = self.policies.iter().collect();
                let who = || format!("sidecar {}", me.pod);
                match http::authorize(&self.plan, &who, &refs, &attrs, req).await {
                    Err(r) => r,
                    Ok(req) => {
                        let r = connpool::send(&self.inbound, None, port, req, |c| async move {
                            let tcp =
                                sock::connect_marked(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
                                    .await
                                    .map_err(|e| e.to_string())?;
                            connpool::handshake(tcp, c).await
                        })
                        .await;
                        match r {
                            Ok(r) => http::boxed(r),
                            Err(_) => http::unavailable(),
                        }
                    }
                }
            }
        };
        let l = http::labels("destination", &src, &Peer::of(me), svc, Some(&resp));
        let l = http::with_security(l, Some(attrs.principal.is_some()));
        http::record_request(&self.metrics, &l, started);
        if let (Some(log), Some(meta)) = (&self.log, &meta) {
            http::log_request(
                meta,
                &resp,
                http::Upstream {
                    host: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
                    cluster: format!("inbound|{port}||"),
                    local: Some(SocketAddr::from((me.ip, port))),
                    remote: attrs.source_ip.map(|ip| SocketAddr::new(ip, 0)),
                    started,
                    log,
                },
            );
        }
        http::pay_after_body(resp, cost)
    }
}

/// An upstream byte stream of any of the sidecar's transports.
enum Upstream {
    Plain(TcpStream),
    Mtls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Hbone(hbone::H2Stream),
}

/// Traffic to something outside the mesh goes out unchanged (Istio's PassthroughCluster).
pub async fn passthrough(conn: TcpStream, dst: SocketAddr, burner: &Arc<Burner>) {
    if let Ok(up) = sock::connect_marked(dst).await {
        splice_charged(conn, up, Some(burner.clone())).await;
    }
}

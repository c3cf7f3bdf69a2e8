//! The waypoint (Envoy model for ambient L7), one per `Gateway` of class `istio-waypoint`, in
//! its own pod on `concurrency` worker threads. It terminates HBONE on 15008, serves HTTP/1.1
//! inside the tunnel (routing and balancing over the service's endpoints, JWT, L7
//! AuthorizationPolicy, telemetry with `reporter="waypoint"`), and opens a second HBONE tunnel
//! to the chosen endpoint's ztunnel. Non-HTTP ports are authorized at L4 and spliced.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use ::http::StatusCode;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::component::{Component, ComponentRuntime};
use crate::mesh::control::{Live, ServiceInfo, WorkloadInfo};
use crate::mesh::hbone::{self, Baggage, Connector, HbonePool};
use crate::mesh::policy::{self, Attrs, Decision, Layer};
use crate::mesh::{ConnectRequest, HboneAccept, tls};
use crate::proxy::Reconfigure;
use crate::proxy::access_log::AccessLog;
use crate::proxy::capture::HBONE_PORT;
use crate::proxy::connpool::{self, Breakers, UpstreamPool};
use crate::proxy::cost::{Burner, splice_charged, splice_tunnel_charged};
use crate::proxy::http::{self, Body, Peer};
use crate::proxy::sock;
use crate::proxy::telemetry::ProxyMetrics;
use scenario::manifest::AuthorizationPolicy;

pub struct Waypoint {
    plan: Arc<crate::mesh::control::MeshPlan>,
    wp: usize,
    me: usize,
    burner: Arc<Burner>,
    metrics: Arc<ProxyMetrics>,
    pool: HbonePool,
    upstream: Arc<UpstreamPool<SocketAddr>>,
    /// Its services' circuit breakers (a DestinationRule's connection pool).
    breakers: Breakers<SocketAddr>,
    /// Envoy's access log, when the mesh config turns it on.
    log: Option<Arc<AccessLog>>,
}

pub fn start(
    component: &Arc<Component>,
    plan: Arc<crate::mesh::control::MeshPlan>,
    wp: usize,
    (metrics, log): (Arc<ProxyMetrics>, Option<Arc<AccessLog>>),
) -> std::io::Result<(ComponentRuntime, Arc<Burner>, Arc<dyn Reconfigure>)> {
    let me = plan.waypoints[wp].workload;
    let concurrency = plan.waypoints[wp].decl.concurrency as usize;
    let cert = plan.workloads[me].cert.clone();
    let shakes = &component.counters.tls_handshakes;
    let server = tls::server_config(&cert, &plan.ca, &[hbone::ALPN_H2], shakes)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let burner = Burner::new(component.clone(), plan.floors("waypoint"));
    let live = Arc::new(Live::new(Arc::new(Waypoint::configure(
        plan,
        wp,
        burner.clone(),
        (metrics, log),
    ))));
    let rt = component.start_runtime(concurrency, None)?;
    let listener =
        rt.run(async { TcpListener::bind((Ipv4Addr::UNSPECIFIED, HBONE_PORT)).await })?;
    let counters = component.counters.clone();
    let l = live.clone();
    rt.spawn(async move {
        hbone::serve_listener(listener, server, Some(counters), move |req| {
            let w = l.get();
            async move { w.accept(req) }
        })
        .await;
    });
    Ok((rt, burner, live))
}

impl Reconfigure for Live<Waypoint> {
    fn reconfigure(&self, plan: &Arc<crate::mesh::control::MeshPlan>) {
        let cur = self.get();
        self.set(Arc::new(Waypoint::configure(
            plan.clone(),
            cur.wp,
            cur.burner.clone(),
            (cur.metrics.clone(), cur.log.clone()),
        )));
    }
}

/// What a tunnel to the waypoint is addressed to: a service it serves (by VIP), or a pod it
/// is the workload waypoint of (by pod IP, `istio.io/waypoint-for: workload|all`).
#[derive(Debug, Clone, Copy)]
enum Target {
    Service(usize),
    Workload(usize),
}

impl Waypoint {
    fn configure(
        plan: Arc<crate::mesh::control::MeshPlan>,
        wp: usize,
        burner: Arc<Burner>,
        (metrics, log): (Arc<ProxyMetrics>, Option<Arc<AccessLog>>),
    ) -> Waypoint {
        let connector: Connector = Arc::new(|addr| Box::pin(sock::connect_marked(addr)));
        Waypoint {
            log,
            pool: HbonePool::counting(&plan.ca, connector, burner.handshakes()),
            me: plan.waypoints[wp].workload,
            plan,
            wp,
            burner,
            metrics,
            upstream: Default::default(),
            breakers: Breakers::default(),
        }
    }

    /// What `addr` names, if this waypoint serves it, with the target port and whether it
    /// speaks HTTP.
    fn target(&self, addr: SocketAddr) -> Result<(Target, u16, bool), StatusCode> {
        let std::net::IpAddr::V4(ip) = addr.ip() else {
            return Err(StatusCode::BAD_REQUEST);
        };
        if let Some((svc, info)) = self.plan.service_by_vip(ip) {
            if info.waypoint != Some(self.wp) {
                return Err(StatusCode::NOT_FOUND);
            }
            let (target, is_http) = info.port(addr.port()).ok_or(StatusCode::NOT_FOUND)?;
            return Ok((Target::Service(svc), target, is_http));
        }
        let w = self.plan.workload_index(ip).ok_or(StatusCode::NOT_FOUND)?;
        if self.plan.workloads[w].waypoint != Some(self.wp) {
            return Err(StatusCode::NOT_FOUND);
        }
        let is_http = self.plan.is_http_target(w, addr.port());
        Ok((Target::Workload(w), addr.port(), is_http))
    }

    fn service(&self, t: Target) -> Option<&ServiceInfo> {
        match t {
            Target::Service(s) => Some(&self.plan.services[s]),
            Target::Workload(_) => None,
        }
    }

    fn endpoint(&self, t: Target) -> Option<&WorkloadInfo> {
        match t {
            Target::Service(s) => self.plan.pick_endpoint(s),
            Target::Workload(w) => Some(&self.plan.workloads[w]),
        }
    }

    /// Policies bound to the target: the service's `targetRefs` and the waypoint's own for
    /// service traffic; for workload traffic only the waypoint's (a Service targetRef binds
    /// to the service's traffic).
    fn policies(&self, t: Target) -> Vec<&AuthorizationPolicy> {
        match self.service(t) {
            Some(info) => self.plan.waypoint_policies(self.wp, info),
            None => self.plan.waypoint_own_policies(self.wp),
        }
    }

    fn issuers(&self, t: Target) -> Vec<scenario::jwt::Issuer> {
        match self.service(t) {
            Some(info) => self.plan.waypoint_issuers(self.wp, info),
            None => self.plan.waypoint_own_issuers(self.wp),
        }
    }

    /// The breaker of the service cluster for `target`: the waypoint applies the service's
    /// DestinationRule to its `inbound-vip` cluster (`buildWaypointInboundVIPCluster`,
    /// pilot/pkg/networking/core/cluster_waypoint.go). Workload-addressed traffic has none.
    fn breaker(&self, t: Target, target: u16) -> Option<Arc<connpool::Breaker<SocketAddr>>> {
        let Target::Service(svc) = t else {
            return None;
        };
        let port = self.plan.services[svc].service_port(target)?;
        self.breakers.for_service(&self.plan, self.me, (svc, port))
    }

    /// Opens a stream to `ep`: HBONE where it takes it (an ambient pod's ztunnel, a sidecar),
    /// plaintext to a pod out of the mesh.
    async fn open(&self, ep: &WorkloadInfo, addr: SocketAddr) -> Result<Upstream, String> {
        if !ep.takes_hbone() {
            return sock::connect_marked(addr)
                .await
                .map(Upstream::Plain)
                .map_err(|e| format!("connect {addr}: {e}"));
        }
        let me = &self.plan.workloads[self.me];
        self.plan
            .tunnel(&self.pool, me, ep, addr)
            .await
            .map(Upstream::Hbone)
    }

    fn accept(self: &Arc<Self>, req: ConnectRequest) -> Result<HboneAccept, StatusCode> {
        let (t, target, is_http) = self.target(req.authority)?;
        let attrs = Attrs {
            principal: Some(req.peer.principal()),
            namespace: Some(req.peer.namespace.clone()),
            source_ip: req.peer_addr.map(|a| a.ip()),
            dest_port: req.authority.port(),
            http: None,
            ..Attrs::default()
        };
        let src = Peer::lookup(&self.plan, None, Some(&req.peer));
        let src = match req
            .headers
            .get("baggage")
            .and_then(|b| b.to_str().ok())
            .map(Baggage::parse)
        {
            Some(b) if !b.workload_name.is_empty() => Peer {
                workload: b.workload_name,
                ..src
            },
            _ => src,
        };
        let w = self.clone();
        if is_http {
            return Ok(HboneAccept::new(move |tunnel| async move {
                w.burner.connection_opened();
                let w2 = w.clone();
                let service = service_fn(move |r: Request<Incoming>| {
                    let w = w2.clone();
                    let (attrs, src) = (attrs.clone(), src.clone());
                    async move {
                        Ok::<_, std::convert::Infallible>(w.route(r, t, target, attrs, src).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tunnel), service)
                    .await;
                w.burner.connection_closed();
            }));
        }
        // A non-HTTP port: Envoy's network RBAC filter (Layer::Tcp semantics).
        let v = policy::evaluate(&self.policies(t), &attrs, Layer::Tcp);
        self.plan
            .decisions
            .record(|| crate::mesh::decisions::Record {
                proxy: format!("waypoint {}", self.plan.waypoints[self.wp].decl.name),
                src_ip: attrs.source_ip,
                port: attrs.dest_port,
                request: None,
                allowed: v.decision == Decision::Allow,
                by: crate::mesh::decisions::describe(&v),
                mtls: true,
            });
        if v.decision != Decision::Allow {
            return Err(StatusCode::FORBIDDEN);
        }
        Ok(HboneAccept::new(move |tunnel| async move {
            let Some(ep) = w.endpoint(t) else {
                return;
            };
            let addr = SocketAddr::from((ep.ip, target));
            // The service's DestinationRule limits its TCP connections too; past them the
            // tunnel is closed (tcp_proxy's UO).
            let _place = match w.breaker(t, target) {
                Some(b) => match connpool::tcp_slot(&b, &addr).await {
                    Ok(p) => Some(p),
                    Err(_) => return,
                },
                None => None,
            };
            let Ok(up) = w.open(ep, addr).await else {
                return;
            };
            w.burner.connection_opened();
            match up {
                Upstream::Plain(up) => {
                    splice_tunnel_charged(tunnel, up, Some(w.burner.clone())).await;
                }
                Upstream::Hbone(up) => {
                    splice_charged(tunnel, up, Some(w.burner.clone())).await;
                }
            }
            w.burner.connection_closed();
        }))
    }

    async fn route(
        &self,
        req: Request<Incoming>,
        t: Target,
        target: u16,
        mut attrs: Attrs,
        src: Peer,
    ) -> Response<Body> {
        let started = Instant::now();
        let cost = self.burner.request_started();
        let info = self.service(t);
        let ep = self.endpoint(t);
        let issuers = self.issuers(t);
        let mut req = req;
        let meta = self.log.as_ref().map(|_| http::RequestMeta::of(&req));
        let checked = http::normalize(&mut req).and_then(|()| {
            let mut h = http::http_attrs(&req);
            http::check_jwt(&mut req, &issuers, &mut h).map(|()| h)
        });
        let resp = match checked {
            Err(r) => {
                // jwt_authn (or path normalization) answered before any policy.
                self.plan
                    .decisions
                    .record(|| crate::mesh::decisions::Record {
                        proxy: format!("waypoint {}", self.plan.waypoints[self.wp].decl.name),
                        src_ip: attrs.source_ip,
                        port: attrs.dest_port,
                        request: None,
                        allowed: false,
                        by: format!("RequestAuthentication / jwt_authn ({})", r.status()),
                        mtls: true,
                    });
                *r
            }
            Ok(h) => {
                attrs.http = Some(h);
                attrs.dest_ip = ep.map(|e| e.ip.into());
                let policies = self.policies(t);
                let who = || format!("waypoint {}", self.plan.waypoints[self.wp].decl.name);
                let authorized = http::authorize(&self.plan, &who, &policies, &attrs, req).await;
                if let Err(r) = authorized {
                    r
                } else if let (Ok(req), Some(ep)) = (authorized, ep) {
                    let addr = SocketAddr::from((ep.ip, target));
                    let breaker = self.breaker(t, target);
                    let up = &self.upstream;
                    let r = connpool::send(up, breaker.as_ref(), addr, req, |c| async move {
                        match self.open(ep, addr).await? {
                            Upstream::Plain(io) => connpool::handshake(io, c).await,
                            Upstream::Hbone(io) => connpool::handshake(io, c).await,
                        }
                    })
                    .await;
                    match r {
                        Ok(r) => http::boxed(r),
                        Err(e) => http::send_failed(&e),
                    }
                } else {
                    http::unavailable()
                }
            }
        };
        let dst = ep.map(Peer::of).unwrap_or_default();
        let l = http::labels("waypoint", &src, &dst, info, Some(&resp));
        let l = http::with_security(l, Some(true));
        http::record_request(&self.metrics, &l, started);
        if let (Some(log), Some(meta)) = (&self.log, &meta) {
            // Istio names a waypoint's service cluster `inbound-vip|<port>|http|<fqdn>`.
            let cluster = info.map_or_else(
                || format!("inbound|{target}||"),
                |s| {
                    let port = s.service_port(target).unwrap_or(target);
                    format!("inbound-vip|{port}|http|{}", s.fqdn())
                },
            );
            http::log_request(
                meta,
                &resp,
                http::Upstream {
                    host: ep.map(|e| SocketAddr::from((e.ip, target))),
                    cluster,
                    local: None,
                    remote: attrs.source_ip.map(|ip| SocketAddr::new(ip, 0)),
                    started,
                    log,
                },
            );
        }
        http::pay_after_body(resp, cost)
    }
}

/// A waypoint's upstream stream.
enum Upstream {
    Plain(tokio::net::TcpStream),
    Hbone(hbone::H2Stream),
}

//! The control plane (istiod's model): from a loaded scenario and a mode, which waypoints
//! exist, every workload's certificate, and what each proxy must know — services, endpoints,
//! which waypoint serves a service, and which policies apply where.
//!
//! Config scope follows Istio: a sidecar holds every service of the mesh, ztunnel every
//! workload, a waypoint the services it serves. [`MeshPlan::model_scope`] reports that size.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::mesh::policy;
use crate::mesh::{Ca, Identity, WorkloadCert};
use crate::topology::{ClusterSpec, PodSpec, Topology};
use scenario::destrule::{DestinationRule, PoolLimits};
use scenario::enrollment::{DataPlane, Enrollment, enroll};
use scenario::jwt::{Issuer, Jwks};
use scenario::manifest::{
    self, AuthorizationPolicy, MtlsMode, Object, PeerAuthentication, RequestAuthentication,
    WaypointFor,
};
use scenario::profile::{Floors, Profile};
use scenario::{Loaded, Mode};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot issue workload certificates")]
    Ca(#[source] crate::mesh::CaError),
    #[error("the JWKS for issuer {issuer} is not usable")]
    Jwks {
        issuer: String,
        #[source]
        source: scenario::jwt::JwtError,
    },
}

/// A waypoint the mode deploys.
#[derive(Debug, Clone)]
pub struct WaypointDecl {
    /// The Gateway's name.
    pub name: String,
    pub namespace: String,
    pub pod: String,
    pub waypoint_for: WaypointFor,
    pub for_service_account: Option<String>,
    pub concurrency: u32,
    pub cpu_limit_millis: Option<u32>,
}

/// The waypoints a mode deploys: the manifests' in `ambient`, plus one per namespace with a
/// server (`<ns>-waypoint`) in `ambient-waypoint`; none otherwise.
pub fn waypoints(loaded: &Loaded, mode: Mode) -> Vec<WaypointDecl> {
    if !mode.is_ambient() {
        return Vec::new();
    }
    let defaults = &loaded.scenario.proxies.waypoint;
    let default_cpu = defaults
        .cpu_limit
        .as_deref()
        .and_then(|c| manifest::parse_cpu(c).ok());
    let mut out = Vec::new();
    for o in loaded.objects() {
        if let Object::Gateway(g) = &o.object {
            let pc = manifest::proxy_config(g).unwrap_or_default();
            let limits = pc.resources.as_ref().and_then(|r| r.limits.as_ref());
            out.push(WaypointDecl {
                name: g.metadata.name.clone(),
                namespace: g.metadata.ns().to_string(),
                pod: format!("{}-0", g.metadata.name),
                waypoint_for: manifest::waypoint_for(g),
                for_service_account: g
                    .metadata
                    .annotations
                    .get(manifest::FOR_SERVICE_ACCOUNT)
                    .cloned(),
                concurrency: pc.concurrency.unwrap_or_else(|| defaults.concurrency()),
                cpu_limit_millis: limits.and_then(|l| l.cpu).map(|c| c.0).or(default_cpu),
            });
        }
    }
    if mode == Mode::AmbientWaypoint {
        let mut server_ns: Vec<&str> = loaded
            .scenario
            .workloads
            .iter()
            .filter(|w| w.app.is_some())
            .map(|w| w.namespace.as_str())
            .collect();
        server_ns.sort();
        server_ns.dedup();
        for ns in server_ns {
            let name = format!("{ns}-waypoint");
            // A manifest may already declare it: that one serves.
            if out.iter().any(|d| d.name == name && d.namespace == ns) {
                continue;
            }
            out.push(WaypointDecl {
                pod: format!("{name}-0"),
                name,
                namespace: ns.to_string(),
                waypoint_for: WaypointFor::Service,
                for_service_account: None,
                concurrency: defaults.concurrency(),
                cpu_limit_millis: default_cpu,
            });
        }
    }
    out
}

/// Adds the waypoints' pods to the cluster (on the last node, away from the usual client).
pub fn add_waypoint_pods(spec: &mut ClusterSpec, decls: &[WaypointDecl]) {
    for d in decls {
        let mut labels = BTreeMap::new();
        labels.insert(
            "gateway.networking.k8s.io/gateway-name".into(),
            d.name.clone(),
        );
        spec.pods.push(PodSpec {
            name: d.pod.clone(),
            workload: d.name.clone(),
            namespace: d.namespace.clone(),
            service_account: d.name.clone(),
            node: spec.nodes.len().saturating_sub(1),
            labels,
            app: crate::apps::AppSpec::None,
        });
    }
}

/// One pod as the mesh sees it.
#[derive(Debug, Clone)]
pub struct WorkloadInfo {
    pub pod: String,
    pub workload: String,
    pub namespace: String,
    pub service_account: String,
    pub node: usize,
    pub ip: Ipv4Addr,
    pub labels: BTreeMap<String, String>,
    pub identity: Identity,
    pub cert: WorkloadCert,
    /// Index into `waypoints` when this pod *is* a waypoint.
    pub is_waypoint: Option<usize>,
    /// Its data plane, and the label (or mode) that decided it. A waypoint pod's is `None`:
    /// it is a proxy itself, not captured.
    pub enrollment: Enrollment,
    /// Index into `waypoints` of the workload waypoint that traffic addressed to this pod goes
    /// through (`istio.io/use-waypoint` on the pod or its namespace, a waypoint for
    /// `workload` or `all`).
    pub waypoint: Option<usize>,
}

impl WorkloadInfo {
    pub fn dataplane(&self) -> DataPlane {
        self.enrollment.dataplane
    }

    /// Whether it takes HBONE on 15008: ztunnel's in-pod listener, a waypoint, or a sidecar —
    /// Istio's ambient profile sets `ISTIO_META_ENABLE_HBONE` on sidecars, and the injection
    /// template then labels the pod `networking.istio.io/tunnel: http`
    /// (`manifests/helm-profiles/ambient.yaml`, `injection-template.yaml`), so ztunnels and
    /// waypoints tunnel to it (`pilot/pkg/serviceregistry/ambient/workloads.go`
    /// `setTunnelProtocol`).
    pub fn takes_hbone(&self) -> bool {
        self.is_waypoint.is_some() || self.dataplane() != DataPlane::None
    }
}

#[derive(Debug, Clone)]
pub struct ServiceInfo {
    pub name: String,
    pub namespace: String,
    pub vip: Ipv4Addr,
    /// `(port, target port, is http)`.
    pub ports: Vec<(u16, u16, bool)>,
    /// Indices into `workloads`.
    pub endpoints: Vec<usize>,
    /// Index into `waypoints` of the waypoint that serves it (ambient modes).
    pub waypoint: Option<usize>,
}

impl ServiceInfo {
    pub fn fqdn(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.namespace)
    }
    /// The service port that sends to `target` (a target port): what names Envoy's cluster
    /// and what a DestinationRule's `portLevelSettings` match.
    pub fn service_port(&self, target: u16) -> Option<u16> {
        self.ports.iter().find(|p| p.1 == target).map(|p| p.0)
    }
    pub fn port(&self, port: u16) -> Option<(u16, bool)> {
        self.ports
            .iter()
            .find(|p| p.0 == port)
            .map(|&(_, t, http)| (t, http))
    }
}

#[derive(Debug, Clone)]
pub struct WaypointInfo {
    pub decl: WaypointDecl,
    /// Index into `workloads` of its pod.
    pub workload: usize,
    /// Its Gateway exists at this point of a migration: traffic is sent to it. A waypoint a
    /// later stage deploys has its pod (and index) from the start, so a running proxy's index
    /// stays valid across stages, but nothing routes to it before its stage.
    pub deployed: bool,
}

/// A value the control plane replaces while proxies run (a migration stage's new plan):
/// readers take the current one per connection or request and keep it to the end of it,
/// as Envoy and ztunnel finish in-flight work on the configuration it started with.
pub struct Live<T>(std::sync::RwLock<Arc<T>>);

impl<T> Live<T> {
    pub fn new(v: Arc<T>) -> Live<T> {
        Live(std::sync::RwLock::new(v))
    }

    pub fn get(&self) -> Arc<T> {
        // A writer that panicked left a whole Arc behind; it is still a valid value.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, v: Arc<T>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = v;
    }
}

/// Everything the proxies of one cluster share.
pub struct MeshPlan {
    pub mode: Mode,
    pub ca: Ca,
    pub workloads: Vec<WorkloadInfo>,
    pub services: Vec<ServiceInfo>,
    pub waypoints: Vec<WaypointInfo>,
    pub authz: Vec<AuthorizationPolicy>,
    pub request_authn: Vec<(RequestAuthentication, Vec<Issuer>)>,
    pub peer_authn: Vec<PeerAuthentication>,
    /// DestinationRules in manifest order (istiod: the oldest first).
    pub destination_rules: Vec<DestinationRule>,
    /// CUSTOM policies' authorizers by provider name: their settings and service index.
    pub providers: BTreeMap<String, (scenario::ExtAuthzHttp, usize)>,
    /// Which policy decided what (kept only once enabled).
    pub decisions: crate::mesh::decisions::DecisionLog,
    pub profile: Profile,
    by_ip: HashMap<Ipv4Addr, usize>,
    by_vip: HashMap<Ipv4Addr, usize>,
    /// Load balancing, shared by the plans of a migration's stages.
    pub balancer: Arc<Balancer>,
}

/// What a stage's plan keeps of the one before: the CA, the certificates by (namespace,
/// service account), and the load balancer.
type Kept = (
    Ca,
    HashMap<(String, String), WorkloadCert>,
    Option<Arc<Balancer>>,
);

/// Round robin per service from a cursor the run's seed starts (the k-th pick of a service is
/// the same endpoint in every run of the scenario), and the picks each endpoint got.
pub struct Balancer {
    cursors: Vec<AtomicUsize>,
    picks: Vec<Vec<std::sync::atomic::AtomicU64>>,
}

impl Balancer {
    fn new(seed: u64, services: &[ServiceInfo]) -> Balancer {
        let seed = seed as usize;
        Balancer {
            cursors: (0..services.len())
                .map(|i| AtomicUsize::new(seed.wrapping_mul(31).wrapping_add(i)))
                .collect(),
            picks: services
                .iter()
                .map(|s| s.endpoints.iter().map(|_| Default::default()).collect())
                .collect(),
        }
    }

    /// Picks of service `svc`, by endpoint position.
    pub fn picks(&self, svc: usize) -> Vec<u64> {
        self.picks
            .get(svc)
            .map(|v| v.iter().map(|p| p.load(Ordering::Relaxed)).collect())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for MeshPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshPlan")
            .field("mode", &self.mode)
            .field("workloads", &self.workloads.len())
            .field("services", &self.services.len())
            .finish()
    }
}

/// The policies the manifests declare, with each RequestAuthentication's issuers and keys.
type Policies = (
    Vec<AuthorizationPolicy>,
    Vec<(RequestAuthentication, Vec<Issuer>)>,
    Vec<PeerAuthentication>,
);

fn policies(loaded: &Loaded) -> Result<Policies, ControlError> {
    let mut authz = Vec::new();
    let mut request_authn = Vec::new();
    let mut peer_authn = Vec::new();
    for o in loaded.objects() {
        match &o.object {
            Object::AuthorizationPolicy(p) => authz.push(p.clone()),
            Object::RequestAuthentication(r) => {
                let mut issuers = Vec::new();
                for rule in &r.spec.jwt_rules {
                    let text = match (&rule.jwks, &rule.jwks_uri) {
                        (Some(t), _) => t.clone(),
                        (None, Some(uri)) => loaded.jwks.get(uri).cloned().unwrap_or_default(),
                        (None, None) => String::new(),
                    };
                    let jwks = Jwks::parse(&text).map_err(|source| ControlError::Jwks {
                        issuer: rule.issuer.clone(),
                        source,
                    })?;
                    issuers.push(Issuer::from_rule(rule, jwks));
                }
                request_authn.push((r.clone(), issuers));
            }
            Object::PeerAuthentication(p) => peer_authn.push(p.clone()),
            _ => {}
        }
    }
    Ok((authz, request_authn, peer_authn))
}

impl MeshPlan {
    /// Computes the plan for a built topology (`spec` already holds the waypoint pods); of
    /// `decls`, the `deployed` ones take traffic.
    pub fn build(
        loaded: &Loaded,
        mode: Mode,
        profile: &Profile,
        spec: &ClusterSpec,
        topology: &Topology,
        decls: &[WaypointDecl],
        deployed: &[bool],
    ) -> Result<Arc<MeshPlan>, ControlError> {
        let ca = Ca::new().map_err(ControlError::Ca)?;
        Self::assemble(
            loaded,
            mode,
            profile,
            (spec, topology),
            (decls, deployed),
            (ca, HashMap::new(), None),
        )
    }

    /// The plan after a migration stage, for the proxies already running on this one: the
    /// same CA and certificates (a running proxy's TLS must keep trusting its peers), the same
    /// workload and waypoint indices. `loaded` is the scenario at that stage, `spec` its
    /// cluster spec (same pods, new labels), `decls` every waypoint any stage deploys and
    /// `deployed` the ones this stage has.
    pub fn next_stage(
        &self,
        loaded: &Loaded,
        spec: &ClusterSpec,
        topology: &Topology,
        decls: &[WaypointDecl],
        deployed: &[bool],
    ) -> Result<Arc<MeshPlan>, ControlError> {
        let certs = self
            .workloads
            .iter()
            .map(|w| {
                (
                    (w.namespace.clone(), w.service_account.clone()),
                    w.cert.clone(),
                )
            })
            .collect();
        Self::assemble(
            loaded,
            self.mode,
            &self.profile,
            (spec, topology),
            (decls, deployed),
            (self.ca.clone(), certs, Some(self.balancer.clone())),
        )
    }

    fn assemble(
        loaded: &Loaded,
        mode: Mode,
        profile: &Profile,
        (spec, topology): (&ClusterSpec, &Topology),
        (decls, deployed): (&[WaypointDecl], &[bool]),
        (ca, mut certs, balancer): Kept,
    ) -> Result<Arc<MeshPlan>, ControlError> {
        let cert_ttl = loaded
            .scenario
            .mesh_config
            .workload_cert_ttl
            .map_or(crate::mesh::WORKLOAD_CERT_TTL, |d| d.0);
        let mut workloads = Vec::new();
        for (p, built) in spec.pods.iter().zip(&topology.pods) {
            let key = (p.namespace.clone(), p.service_account.clone());
            let cert = match certs.get(&key) {
                Some(c) => c.clone(),
                None => {
                    let id = Identity::new(&p.namespace, &p.service_account);
                    let c = ca.issue(&id, cert_ttl).map_err(ControlError::Ca)?;
                    certs.insert(key, c.clone());
                    c
                }
            };
            workloads.push(WorkloadInfo {
                pod: p.name.clone(),
                workload: p.workload.clone(),
                namespace: p.namespace.clone(),
                service_account: p.service_account.clone(),
                node: p.node,
                ip: built.ip,
                labels: p.labels.clone(),
                identity: cert.identity().clone(),
                cert,
                is_waypoint: decls.iter().position(|d| d.pod == p.name),
                enrollment: pod_enrollment(loaded, mode, p, decls),
                waypoint: None,
            });
        }
        let waypoints: Vec<WaypointInfo> = decls
            .iter()
            .zip(deployed)
            .map(|(d, &deployed)| WaypointInfo {
                decl: d.clone(),
                workload: workloads.iter().position(|w| w.pod == d.pod).unwrap_or(0),
                deployed,
            })
            .collect();
        let find_wp = |name: &str, ns: &str| {
            waypoints
                .iter()
                .position(|w| w.deployed && w.decl.name == name && w.decl.namespace == ns)
        };
        for w in workloads.iter_mut() {
            w.waypoint = workload_waypoint(loaded, mode, w, &waypoints);
        }
        let mut services = Vec::new();
        for (s, built) in spec.services.iter().zip(&topology.services) {
            let waypoint = if mode.is_ambient() {
                service_waypoint(loaded, mode, &s.namespace, &s.name)
                    .and_then(|(n, ns)| find_wp(&n, &ns))
                    .filter(|&w| {
                        matches!(
                            waypoints[w].decl.waypoint_for,
                            WaypointFor::Service | WaypointFor::All
                        )
                    })
            } else {
                None
            };
            services.push(ServiceInfo {
                name: s.name.clone(),
                namespace: s.namespace.clone(),
                vip: built.vip,
                ports: s
                    .ports
                    .iter()
                    .map(|p| (p.port, p.target_port, p.protocol == "http"))
                    .collect(),
                endpoints: s.endpoints.clone(),
                waypoint,
            });
        }
        let (authz, request_authn, peer_authn) = policies(loaded)?;
        let providers = loaded
            .scenario
            .mesh_config
            .extension_providers
            .iter()
            .filter_map(|p| {
                let h = &p.envoy_ext_authz_http;
                let (ns, name) = h.service_ref()?;
                let svc = services
                    .iter()
                    .position(|s: &ServiceInfo| s.name == name && s.namespace == ns)?;
                Some((p.name.clone(), (h.clone(), svc)))
            })
            .collect();
        let by_ip = workloads
            .iter()
            .enumerate()
            .map(|(i, w)| (w.ip, i))
            .collect();
        let by_vip = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.vip, i))
            .collect();
        let balancer =
            balancer.unwrap_or_else(|| Arc::new(Balancer::new(loaded.scenario.seed, &services)));
        Ok(Arc::new(MeshPlan {
            mode,
            ca,
            workloads,
            services,
            waypoints,
            authz,
            request_authn,
            peer_authn,
            destination_rules: loaded
                .objects()
                .filter_map(|o| match &o.object {
                    Object::DestinationRule(r) => Some(r.as_ref().clone()),
                    _ => None,
                })
                .collect(),
            providers,
            decisions: Default::default(),
            profile: profile.clone(),
            by_ip,
            by_vip,
            balancer,
        }))
    }

    /// The plan after pod `i` came back on a new address (a replacement pod): everything as
    /// in this one, the pod found at `ip`. What istiod pushes once the new pod is ready.
    pub fn with_pod_ip(&self, i: usize, ip: Ipv4Addr) -> Arc<MeshPlan> {
        let mut workloads = self.workloads.clone();
        let mut by_ip = self.by_ip.clone();
        if let Some(w) = workloads.get_mut(i) {
            by_ip.remove(&w.ip);
            w.ip = ip;
            by_ip.insert(ip, i);
        }
        self.with(workloads, self.services.clone(), by_ip)
    }

    /// The plan once pod `i` is deleted: no service sends to it. What istiod pushes (EDS to
    /// sidecars, WDS to ztunnel) when a pod terminates.
    pub fn without_endpoint(&self, i: usize) -> Arc<MeshPlan> {
        let mut services = self.services.clone();
        for s in &mut services {
            s.endpoints.retain(|&e| e != i);
        }
        self.with(self.workloads.clone(), services, self.by_ip.clone())
    }

    fn with(
        &self,
        workloads: Vec<WorkloadInfo>,
        services: Vec<ServiceInfo>,
        by_ip: HashMap<Ipv4Addr, usize>,
    ) -> Arc<MeshPlan> {
        Arc::new(MeshPlan {
            mode: self.mode,
            ca: self.ca.clone(),
            workloads,
            services,
            waypoints: self.waypoints.clone(),
            authz: self.authz.clone(),
            request_authn: self.request_authn.clone(),
            peer_authn: self.peer_authn.clone(),
            destination_rules: self.destination_rules.clone(),
            providers: self.providers.clone(),
            decisions: Default::default(),
            profile: self.profile.clone(),
            by_ip,
            by_vip: self.by_vip.clone(),
            balancer: self.balancer.clone(),
        })
    }

    /// An ext_authz provider's settings and the address of one of its pods (the service
    /// port's target, round robin).
    pub fn ext_authz(&self, name: &str) -> Option<(&scenario::ExtAuthzHttp, SocketAddr)> {
        let (cfg, svc) = self.providers.get(name)?;
        let (target, _) = self.services[*svc].port(cfg.port)?;
        let ep = self.pick_endpoint(*svc)?;
        Some((cfg, SocketAddr::from((ep.ip, target))))
    }

    pub fn workload_by_ip(&self, ip: Ipv4Addr) -> Option<&WorkloadInfo> {
        self.by_ip.get(&ip).map(|&i| &self.workloads[i])
    }

    pub fn workload_index(&self, ip: Ipv4Addr) -> Option<usize> {
        self.by_ip.get(&ip).copied()
    }

    pub fn service_by_vip(&self, ip: Ipv4Addr) -> Option<(usize, &ServiceInfo)> {
        self.by_vip.get(&ip).map(|&i| (i, &self.services[i]))
    }

    /// The next endpoint of a service (round robin, as Envoy's default and ztunnel's random
    /// pick both spread evenly).
    pub fn pick_endpoint(&self, svc: usize) -> Option<&WorkloadInfo> {
        let s = &self.services[svc];
        if s.endpoints.is_empty() {
            return None;
        }
        let b = &self.balancer;
        let k = b.cursors[svc].fetch_add(1, Ordering::Relaxed) % s.endpoints.len();
        if let Some(p) = b.picks.get(svc).and_then(|v| v.get(k)) {
            p.fetch_add(1, Ordering::Relaxed);
        }
        Some(&self.workloads[s.endpoints[k]])
    }

    /// Services a pod is an endpoint of.
    pub fn services_of(&self, workload: usize) -> impl Iterator<Item = &ServiceInfo> {
        self.services
            .iter()
            .filter(move |s| s.endpoints.contains(&workload))
    }

    /// Whether the service behind `target` on this pod speaks HTTP (by the service port).
    pub fn is_http_target(&self, workload: usize, target_port: u16) -> bool {
        self.services_of(workload)
            .any(|s| s.ports.iter().any(|p| p.1 == target_port && p.2))
    }

    /// Policies a workload's own proxy (its sidecar, or its ztunnel) enforces: selector,
    /// namespace and mesh-wide ones. A policy with `targetRefs` binds to a waypoint or
    /// gateway only: sidecars and ztunnel ignore it, whatever it targets (istio.io, reference
    /// "Authorization Policy", `targetRefs`: "…the policy is applied to the targets";
    /// pilot's `WorkloadPolicyMatcher` skips policies with targetRefs for sidecars).
    pub fn workload_policies(&self, w: usize) -> Vec<&AuthorizationPolicy> {
        let wl = &self.workloads[w];
        self.authz
            .iter()
            .filter(|p| policy::selects_workload(p, &wl.namespace, &wl.labels))
            .collect()
    }

    /// RequestAuthentication issuers a workload's sidecar checks (selector ones only, as
    /// [`MeshPlan::workload_policies`]).
    pub fn workload_issuers(&self, w: usize) -> Vec<Issuer> {
        let wl = &self.workloads[w];
        self.request_authn
            .iter()
            .filter(|(r, _)| policy::selects_workload_ra(r, &wl.namespace, &wl.labels))
            .flat_map(|(_, i)| i.iter().cloned())
            .collect()
    }

    /// Policies a waypoint enforces for one service it serves.
    pub fn waypoint_policies(&self, wp: usize, svc: &ServiceInfo) -> Vec<&AuthorizationPolicy> {
        let d = &self.waypoints[wp].decl;
        self.authz
            .iter()
            .filter(|p| {
                policy::targets_service(p, &svc.namespace, &svc.name)
                    || policy::targets_gateway(p, &d.namespace, &d.name)
                    || policy::targets_waypoint_class(p)
            })
            .collect()
    }

    /// Policies bound to the waypoint itself (a `Gateway` targetRef), for workload traffic.
    pub fn waypoint_own_policies(&self, wp: usize) -> Vec<&AuthorizationPolicy> {
        let d = &self.waypoints[wp].decl;
        self.authz
            .iter()
            .filter(|p| {
                policy::targets_gateway(p, &d.namespace, &d.name)
                    || policy::targets_waypoint_class(p)
            })
            .collect()
    }

    pub fn waypoint_own_issuers(&self, wp: usize) -> Vec<Issuer> {
        let d = &self.waypoints[wp].decl;
        self.request_authn
            .iter()
            .filter(|(r, _)| {
                policy::targets_gateway_ra(r, &d.namespace, &d.name)
                    || policy::targets_waypoint_class_ra(r)
            })
            .flat_map(|(_, i)| i.iter().cloned())
            .collect()
    }

    pub fn waypoint_issuers(&self, wp: usize, svc: &ServiceInfo) -> Vec<Issuer> {
        let d = &self.waypoints[wp].decl;
        self.request_authn
            .iter()
            .filter(|(r, _)| {
                policy::targets_service_ra(r, &svc.namespace, &svc.name)
                    || policy::targets_gateway_ra(r, &d.namespace, &d.name)
                    || policy::targets_waypoint_class_ra(r)
            })
            .flat_map(|(_, i)| i.iter().cloned())
            .collect()
    }

    /// The PeerAuthentication mode for inbound traffic to `port` (a target port) of workload
    /// `w`, composed as pilot's `ComposePeerAuthentication` does
    /// (`pilot/pkg/security/authn/policy_applier.go`): PERMISSIVE by default, then the mesh
    /// (root namespace) policy, the namespace one and the workload (selector) one, each
    /// overriding unless UNSET; then the workload policy's `portLevelMtls` for the port (UNSET
    /// inherits). Of several at one level the first in the manifests wins (Istio: the oldest).
    pub fn mtls_mode(&self, w: usize, port: u16) -> MtlsMode {
        let wl = &self.workloads[w];
        mtls_mode(&self.peer_authn, &wl.namespace, &wl.labels, port)
    }

    /// The DestinationRule the proxy of workload `proxy` applies to service `svc`'s `port`,
    /// and the connection pool limits it sets there (`scenario::destrule::lookup`, as istiod
    /// picks it).
    pub fn destination_rule(
        &self,
        proxy: usize,
        svc: usize,
        port: u16,
    ) -> Option<(&DestinationRule, PoolLimits)> {
        let wl = &self.workloads[proxy];
        let info = &self.services[svc];
        let rules: Vec<&DestinationRule> = self.destination_rules.iter().collect();
        scenario::destrule::lookup(
            &rules,
            &scenario::destrule::Proxy {
                namespace: &wl.namespace,
                labels: &wl.labels,
            },
            &scenario::destrule::Target {
                fqdn: &info.fqdn(),
                namespace: &info.namespace,
                port,
            },
        )
    }

    /// Whether plaintext to `port` of workload `w` is refused (STRICT).
    pub fn strict_mtls(&self, w: usize, port: u16) -> bool {
        self.mtls_mode(w, port) == MtlsMode::Strict
    }

    /// Whether any pod of the plan is captured by ztunnel (then every node runs one, as the
    /// DaemonSet does).
    pub fn runs_ztunnel(&self) -> bool {
        self.workloads
            .iter()
            .any(|w| w.dataplane() == DataPlane::Ambient)
    }

    /// Cost floors of one proxy kind in this run's profile.
    pub fn floors(&self, kind: &str) -> Floors {
        self.profile.floors(kind)
    }

    /// The configuration a proxy holds as the cost model counts it (see
    /// [`scenario::costmodel::ProxyModel`]): for Envoy (sidecars, waypoints) a service once
    /// per port and its endpoints once per port, as Istio builds an Envoy cluster per service
    /// port; for ztunnel every service and workload of the mesh (WDS); a waypoint only the
    /// services it serves.
    pub fn model_scope(
        &self,
        kind: crate::component::ComponentKind,
        pod: Option<usize>,
    ) -> Option<scenario::costmodel::ProxyScope> {
        use crate::component::ComponentKind;
        let envoy = |svcs: &mut dyn Iterator<Item = &ServiceInfo>| {
            let (mut services, mut endpoints) = (0, 0);
            for s in svcs {
                services += s.ports.len();
                endpoints += s.ports.len() * s.endpoints.len();
            }
            scenario::costmodel::ProxyScope {
                services,
                endpoints,
                workloads: 0,
            }
        };
        match kind {
            ComponentKind::Sidecar => Some(envoy(&mut self.services.iter())),
            ComponentKind::Ztunnel => Some(scenario::costmodel::ProxyScope {
                services: self.services.len(),
                endpoints: 0,
                workloads: self.workloads.len(),
            }),
            ComponentKind::Waypoint => {
                let k = pod.and_then(|p| self.workloads.get(p)?.is_waypoint)?;
                Some(envoy(
                    &mut self.services.iter().filter(|s| s.waypoint == Some(k)),
                ))
            }
            _ => None,
        }
    }

    /// An HBONE tunnel from workload `from` (its certificate, its address in `forwarded`) to
    /// `authority` at `to`'s 15008, through `pool`: what a sidecar or a waypoint opens toward
    /// a pod that takes HBONE.
    pub async fn tunnel(
        &self,
        pool: &crate::mesh::HbonePool,
        from: &WorkloadInfo,
        to: &WorkloadInfo,
        authority: SocketAddr,
    ) -> Result<crate::mesh::H2Stream, String> {
        pool.connect(
            &from.cert,
            self.hbone_addr(to),
            &to.identity,
            authority,
            crate::mesh::hbone::tunnel_headers(from.ip.into(), None),
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// The address of a workload's HBONE listener (its in-pod ztunnel or the waypoint).
    pub fn hbone_addr(&self, w: &WorkloadInfo) -> SocketAddr {
        SocketAddr::from((w.ip, crate::mesh::hbone::HBONE_PORT))
    }
}

/// The waypoint an object's labels ask for: `istio.io/use-waypoint` on the object, else on its
/// namespace, with `istio.io/use-waypoint-namespace` (beside it) naming another namespace.
/// Returns (gateway name, gateway namespace).
fn use_waypoint(
    own: &BTreeMap<String, String>,
    ns_labels: &BTreeMap<String, String>,
    ns: &str,
) -> Option<(String, String)> {
    let from = |l: &BTreeMap<String, String>| {
        l.get(manifest::USE_WAYPOINT).map(|name| {
            let wns = l
                .get(manifest::USE_WAYPOINT_NAMESPACE)
                .cloned()
                .unwrap_or_else(|| ns.to_string());
            (name.clone(), wns)
        })
    };
    from(own).or_else(|| from(ns_labels))
}

/// The workload waypoint of a pod: its own or its namespace's `istio.io/use-waypoint`,
/// kept only when that waypoint serves workloads (`istio.io/waypoint-for: workload|all`;
/// the default `service` does not). Only ambient pods are routed through one.
fn workload_waypoint(
    loaded: &Loaded,
    mode: Mode,
    w: &WorkloadInfo,
    waypoints: &[WaypointInfo],
) -> Option<usize> {
    if !mode.is_ambient() || w.is_waypoint.is_some() || w.dataplane() != DataPlane::Ambient {
        return None;
    }
    let ns_labels = loaded.namespace_labels(&w.namespace);
    let (name, ns) = use_waypoint(&w.labels, &ns_labels, &w.namespace)?;
    waypoints
        .iter()
        .position(|x| x.deployed && x.decl.name == name && x.decl.namespace == ns)
        .filter(|&i| {
            matches!(
                waypoints[i].decl.waypoint_for,
                WaypointFor::Workload | WaypointFor::All
            )
        })
}

/// A pod's data plane in `mode`: the mode's override, or its labels in `declared`.
fn pod_enrollment(loaded: &Loaded, mode: Mode, p: &PodSpec, decls: &[WaypointDecl]) -> Enrollment {
    if decls.iter().any(|d| d.pod == p.name) {
        return Enrollment {
            dataplane: DataPlane::None,
            why: "waypoint proxy".into(),
        };
    }
    match mode.dataplane_override() {
        Some(dataplane) => Enrollment {
            dataplane,
            why: format!("mode {mode}"),
        },
        None => enroll(&loaded.namespace_labels(&p.namespace), &p.labels),
    }
}

/// The PeerAuthentication mode for inbound traffic to `port` of a pod in namespace `ns` with
/// `labels`; see [`MeshPlan::mtls_mode`].
pub fn mtls_mode(
    peer_authn: &[PeerAuthentication],
    ns: &str,
    labels: &BTreeMap<String, String>,
    port: u16,
) -> MtlsMode {
    let first = |want: &dyn Fn(&PeerAuthentication) -> bool| peer_authn.iter().find(|p| want(p));
    let has_selector = |p: &PeerAuthentication| {
        p.spec
            .selector
            .as_ref()
            .is_some_and(|s| !s.match_labels.is_empty())
    };
    let mesh = first(&|p| !has_selector(p) && p.metadata.ns() == manifest::ROOT_NAMESPACE);
    let namespace = first(&|p| {
        !has_selector(p) && p.metadata.ns() != manifest::ROOT_NAMESPACE && p.metadata.ns() == ns
    });
    let workload = first(&|p| {
        has_selector(p)
            && p.metadata.ns() != manifest::ROOT_NAMESPACE
            && p.metadata.ns() == ns
            && p.spec
                .selector
                .as_ref()
                .is_some_and(|s| s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
    });
    let mut mode = MtlsMode::Permissive;
    for p in [mesh, namespace, workload].into_iter().flatten() {
        let m = p.spec.mtls.as_ref().map(|m| m.mode).unwrap_or_default();
        if m != MtlsMode::Unset {
            mode = m;
        }
    }
    if let Some(m) = workload
        .and_then(|p| p.spec.port_level_mtls.get(&port.to_string()))
        .map(|m| m.mode)
        .filter(|m| *m != MtlsMode::Unset)
    {
        mode = m;
    }
    mode
}

/// The waypoint (Gateway name, namespace) a service's traffic is sent to in `mode`: its
/// `istio.io/use-waypoint` label, else its namespace's (`none` opts out), else in
/// `ambient-waypoint` the namespace's own. Whether that waypoint exists and serves services is
/// the caller's check.
pub fn service_waypoint(
    loaded: &Loaded,
    mode: Mode,
    ns: &str,
    name: &str,
) -> Option<(String, String)> {
    if !mode.is_ambient() {
        return None;
    }
    let svc_labels = loaded
        .scenario
        .services
        .iter()
        .find(|x| x.name == name && x.namespace == ns)
        .map(|x| x.labels.clone())
        .unwrap_or_default();
    match use_waypoint(&svc_labels, &loaded.namespace_labels(ns), ns) {
        Some((n, _)) if n == "none" => None,
        Some(w) => Some(w),
        None if mode == Mode::AmbientWaypoint => Some((format!("{ns}-waypoint"), ns.to_string())),
        None => None,
    }
}

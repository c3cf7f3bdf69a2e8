//! The scenario format v1: what a user writes to describe a cluster, its load and its goals.
//! Types only; [`crate::load`] reads them from YAML and [`crate::validate`] checks them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::units::{Dur, Fraction, Rate, Size};

/// The scenario format version this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// A meshsim scenario (format v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "meshsim scenario v1")]
pub struct Scenario {
    /// Format version; this build reads `1`.
    pub version: u32,
    /// Names the scenario, its cluster (`exec --cluster`) and its run directory.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seed of every random choice in a run (endpoint picks, jitter); same seed, same choices.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The data-plane modes to compare, in order. When left out: `declared` if the scenario
    /// writes enrollment labels (`istio.io/dataplane-mode`, `istio-injection`,
    /// `sidecar.istio.io/inject`, `istio.io/rev`), else no-mesh, sidecar, ambient and
    /// ambient-waypoint.
    #[serde(default = "default_modes")]
    pub modes: Vec<Mode>,
    /// Cost profile: `native` (the models' own cost), `istio-1.24` (Istio's published costs
    /// as floors; see `scenario/profiles/`), or a profile file of your own (`.yaml`, relative
    /// to this file).
    #[serde(default = "default_profile")]
    pub profile: String,
    /// The cluster's nodes.
    pub nodes: Vec<Node>,
    /// Namespaces and their labels. `default` exists without being listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<NamespaceDef>,
    pub workloads: Vec<Workload>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// Proxy settings for the modes that have them.
    #[serde(default)]
    pub proxies: Proxies,
    /// The parts of Istio's MeshConfig meshsim models: `extensionProviders` for CUSTOM
    /// AuthorizationPolicies.
    #[serde(default, skip_serializing_if = "MeshConfig::is_empty")]
    pub mesh_config: MeshConfig,
    /// Load flows, run side by side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flows: Vec<Flow>,
    /// Objectives a run checks; a failed one makes `meshsim run` exit 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slos: Vec<Slo>,
    /// Istio / Gateway API manifest files to apply, relative to this file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<String>,
    /// A migration rehearsed stage by stage (`meshsim reach` probes each stage and reports
    /// what breaks and what opens between them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<Migration>,
    /// Your alert and recording rules and Grafana dashboards: at every migration stage a real
    /// Prometheus scrapes the cluster and evaluates each expression, to show which of them go
    /// silent (`meshsim run` on a migration scenario).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,
    /// Faults on each step's time line (an incident replayed): `at` counts from the start of
    /// the step's measured window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
    /// Local files standing in for `jwksUri`s of RequestAuthentication rules (no network):
    /// URI → path relative to this file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub jwks: BTreeMap<String, String>,
}

fn default_seed() -> u64 {
    1
}
fn default_modes() -> Vec<Mode> {
    Mode::ALL.to_vec()
}
fn default_profile() -> String {
    "istio-1.24".to_string()
}

/// A data-plane mode.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Pod → service VIP (nftables DNAT) → pod; no proxies.
    NoMesh,
    /// A sidecar proxy in every pod, mTLS between them.
    Sidecar,
    /// ztunnel per node (HBONE), plus the waypoints the manifests declare.
    Ambient,
    /// ambient, plus a waypoint for every namespace with a server (L4 + L7 everywhere).
    AmbientWaypoint,
    /// Each pod as its namespace's and its own labels declare it: sidecar, ambient or out of
    /// the mesh, side by side, with the manifests' waypoints.
    Declared,
}

impl Mode {
    /// The "what if everything were X" modes, a scenario's default when it declares no
    /// enrollment.
    pub const ALL: [Mode; 4] = [
        Mode::NoMesh,
        Mode::Sidecar,
        Mode::Ambient,
        Mode::AmbientWaypoint,
    ];
    /// Every mode, for parsing.
    pub const EVERY: [Mode; 5] = [
        Mode::NoMesh,
        Mode::Sidecar,
        Mode::Ambient,
        Mode::AmbientWaypoint,
        Mode::Declared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::NoMesh => "no-mesh",
            Mode::Sidecar => "sidecar",
            Mode::Ambient => "ambient",
            Mode::AmbientWaypoint => "ambient-waypoint",
            Mode::Declared => "declared",
        }
    }

    /// Whether the mode deploys the manifests' waypoints (every mode where ztunnel may run).
    pub fn is_ambient(self) -> bool {
        matches!(self, Mode::Ambient | Mode::AmbientWaypoint | Mode::Declared)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        Mode::EVERY
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a mode; use no-mesh, sidecar, ambient, ambient-waypoint or declared"
                )
            })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceDef {
    pub name: String,
    /// e.g. `istio.io/use-waypoint: <gateway>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    /// Pods are named `<name>-<index>`.
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default = "one")]
    pub replicas: u32,
    /// Defaults to the workload's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Pod labels (policies select on them); `app: <name>` is always added.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Nodes the replicas are spread over, in turn; all nodes when left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// What the pods serve; none for a pure client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<App>,
}

impl Workload {
    pub fn service_account(&self) -> &str {
        self.service_account.as_deref().unwrap_or(&self.name)
    }
}

fn default_namespace() -> String {
    "default".to_string()
}
fn one() -> u32 {
    1
}

/// A workload's server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum App {
    /// HTTP/1.1 echo: answers every request with `responseBytes` of body.
    Http(HttpApp),
    /// Echoes every byte back (target of `tcp-rr`).
    TcpEcho(TcpApp),
    /// Reads and discards (target of `tcp-stream`).
    TcpSink(TcpApp),
}

impl App {
    pub fn port(&self) -> u16 {
        match self {
            App::Http(h) => h.port,
            App::TcpEcho(t) | App::TcpSink(t) => t.port,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpApp {
    pub port: u16,
    /// Body size of each response (a request's `x-echo-bytes` header overrides it).
    #[serde(default = "default_response")]
    pub response_bytes: Size,
    #[serde(default = "default_status")]
    pub status: u16,
    /// Time the app takes before answering (its own work).
    #[serde(default)]
    pub service_time: Dur,
}

fn default_response() -> Size {
    Size(1024)
}
fn default_status() -> u16 {
    200
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpApp {
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The workload (in the same namespace) whose pods are the endpoints.
    pub workload: String,
    pub ports: Vec<ServicePort>,
    /// e.g. `istio.io/use-waypoint: <gateway>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    pub port: u16,
    /// The pods' port; defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u16>,
    /// What the proxies may parse; defaults to `http` for an HTTP app, else `tcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<PortProtocol>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    Http,
    Tcp,
}

/// One fault, in every step of every mode where its target exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    /// What happens.
    pub kind: FaultKind,
    /// When, from the start of the step's measured window.
    pub at: Dur,
    /// How long: the time a restarted or crashed component stays down before it starts again
    /// (default 1s), or how long loss or a CPU hog lasts (required for those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    /// The node of a `ztunnel-restart` or a `cpu-hog`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The two nodes of a `link-loss` (both directions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// The pod of a `sidecar-crash` or a `pod-restart`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The waypoint (Gateway name) of a `waypoint-restart`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waypoint: Option<String>,
    /// `link-loss`: the share of packets dropped, in percent (0-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// `cpu-hog`: busy cores of the noisy neighbour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
    /// `link-delay`: the one-way delay added in each direction (the round trip grows by twice
    /// this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Dur>,
    /// `link-delay`: each packet's delay varies uniformly by up to this much either way
    /// (order is kept: a packet never overtakes the one before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Dur>,
    /// `cpu-limit`: the CPU the node's pods and proxies share while it lasts, e.g. `500m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// `link-bandwidth`: the rate each direction is limited to (a token bucket, tbf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<crate::units::Bandwidth>,
    /// `pod-restart`: the pod is replaced and comes back on a new IP (a Deployment's new pod),
    /// instead of restarting in place on the same one (its containers restarting).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub new_ip: bool,
    /// The flow of a `load-surge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// `load-surge`: requests per second the flow sends while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The node's ztunnel stops (its in-pod listeners close, its connections reset) and comes
    /// back after `duration`.
    ZtunnelRestart,
    /// A waypoint's proxy stops and comes back after `duration`.
    WaypointRestart,
    /// A pod's sidecar crashes (its pod's traffic with it) and restarts after `duration`.
    SidecarCrash,
    /// A pod is killed (app and proxy) and restarts after `duration`: in place on the same IP,
    /// as its containers restarting, or with `newIp` replaced by a pod on a new one.
    PodRestart,
    /// Packets between two nodes are dropped at random (nftables `numgen random`).
    LinkLoss,
    /// Packets between two nodes are delayed (with jitter) by a userspace wire.
    LinkDelay,
    /// Traffic between two nodes is limited to a bandwidth (tbf).
    LinkBandwidth,
    /// A noisy neighbour burns `cores` cores on the node.
    CpuHog,
    /// The node's pods and proxies share a CPU quota (`cpu`), as a node whose cores were
    /// taken away: a cgroup with a CFS quota, real root only.
    CpuLimit,
    /// istiod is down: running proxies keep their configuration and certificates and traffic
    /// goes on, but a proxy that (re)starts meanwhile gets neither and serves only once istiod
    /// is back.
    IstiodUnavailable,
    /// A traffic surge: the `flow`'s load client sends `rate` requests per second while it
    /// lasts (open loop, each request on its own schedule), then the flow's rate again.
    LoadSurge,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::ZtunnelRestart => "ztunnel-restart",
            FaultKind::WaypointRestart => "waypoint-restart",
            FaultKind::SidecarCrash => "sidecar-crash",
            FaultKind::PodRestart => "pod-restart",
            FaultKind::LinkLoss => "link-loss",
            FaultKind::LinkDelay => "link-delay",
            FaultKind::LinkBandwidth => "link-bandwidth",
            FaultKind::CpuHog => "cpu-hog",
            FaultKind::CpuLimit => "cpu-limit",
            FaultKind::IstiodUnavailable => "istiod-unavailable",
            FaultKind::LoadSurge => "load-surge",
        }
    }
}

impl Fault {
    /// Down time of a restart (default 1 s), or the fault's length.
    pub fn length(&self) -> std::time::Duration {
        self.duration
            .map_or(std::time::Duration::from_secs(1), |d| d.0)
    }

    /// `ztunnel-restart node-2 at 10s for 1s`, for logs and reports.
    pub fn label(&self) -> String {
        let target = match self.kind {
            FaultKind::ZtunnelRestart | FaultKind::CpuHog | FaultKind::CpuLimit => {
                self.node.clone().unwrap_or_default()
            }
            FaultKind::WaypointRestart => self.waypoint.clone().unwrap_or_default(),
            FaultKind::SidecarCrash | FaultKind::PodRestart => self.pod.clone().unwrap_or_default(),
            FaultKind::LinkLoss | FaultKind::LinkDelay | FaultKind::LinkBandwidth => {
                self.nodes.join("↔")
            }
            FaultKind::IstiodUnavailable => "istiod".into(),
            FaultKind::LoadSurge => self.flow.clone().unwrap_or_default(),
        };
        let what = match (self.kind, self.percent, self.cores) {
            (FaultKind::LinkLoss, Some(p), _) => format!(" {p}%"),
            (FaultKind::CpuHog, _, Some(c)) => format!(" {c} core(s)"),
            (FaultKind::CpuLimit, _, _) => format!(" {}", self.cpu.clone().unwrap_or_default()),
            (FaultKind::LinkDelay, _, _) => format!(
                " {}{}",
                self.delay.map(|d| d.to_string()).unwrap_or_default(),
                self.jitter.map(|j| format!(" ±{j}")).unwrap_or_default()
            ),
            (FaultKind::PodRestart, _, _) if self.new_ip => " (new IP)".into(),
            (FaultKind::LoadSurge, _, _) => {
                format!(
                    " {} rps",
                    self.rate.map(|r| r.to_string()).unwrap_or_default()
                )
            }
            (FaultKind::LinkBandwidth, _, _) => format!(
                " {}",
                self.bandwidth.map(|b| b.to_string()).unwrap_or_default()
            ),
            _ => String::new(),
        };
        format!(
            "{} {target}{what} at {} for {}",
            self.kind.as_str(),
            humantime::format_duration(self.at.0),
            humantime::format_duration(self.length())
        )
    }
}

/// Files holding the queries a team watches, relative to the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Monitoring {
    /// Prometheus rule files (alerting and recording rules), plain or as `PrometheusRule`
    /// objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Grafana dashboards as exported JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dashboards: Vec<String>,
}

/// Ordered migration stages; each applies to the cluster as the stages before it left it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Migration {
    pub stages: Vec<Stage>,
}

/// One step of a migration: relabel namespaces and workloads, apply and remove manifests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    /// Label changes; a `null` value removes the label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabel: Vec<Relabel>,
    /// Manifest files to apply (relative to the scenario), as `kubectl apply`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apply: Vec<String>,
    /// Objects to delete: `Kind/namespace/name` (before the stage's `apply`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Workloads restarted after the changes (`<workload>` or `<namespace>/*`): only a restart
    /// adds or removes a sidecar, as injection happens when a pod is created; ambient capture
    /// follows the labels without one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart: Vec<String>,
    /// Changes this stage is expected to make; any other break or opening fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<ExpectedChange>,
}

impl Stage {
    /// Whether the stage restarts `w`'s pods (`restart:` names it, or its namespace with `/*`).
    pub fn restarts(&self, w: &Workload) -> bool {
        self.restart
            .iter()
            .any(|r| *r == w.name || *r == format!("{}/*", w.namespace))
    }
}

/// Labels to change on one namespace or one workload (its pods).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Relabel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    pub labels: BTreeMap<String, Option<String>>,
}

/// A break or opening a stage is expected to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpectedChange {
    /// The client workload.
    pub from: String,
    /// `service.namespace:port`.
    pub to: String,
    /// `METHOD /path` or `tcp`; any request of the pair when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    pub change: ChangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Break,
    Opening,
}

/// Istio MeshConfig, as far as meshsim models it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshConfig {
    /// External authorizers a CUSTOM AuthorizationPolicy names (`provider.name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension_providers: Vec<ExtensionProvider>,
    /// Envoy's access log, as Istio's MeshConfig turns it on (`/dev/stdout`): sidecars and
    /// waypoints then write a line per request (Istio's text format) to their log, which a run
    /// keeps under `logs/`. Off when left out, as in Istio's default profile; ztunnel logs
    /// every connection regardless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_file: Option<String>,
    /// How long workload certificates live (default 24h, at most 90d). Not a MeshConfig field
    /// in Istio but the proxies' `SECRET_TTL` (`proxyMetadata`, istio.io's certificate
    /// lifetime FAQ); kept with the mesh-wide settings. Proxies renew at half of it; while istiod is unavailable renewals
    /// fail, and a certificate that runs out fails every new mTLS handshake that presents it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_cert_ttl: Option<Dur>,
}

impl MeshConfig {
    pub fn is_empty(&self) -> bool {
        self.extension_providers.is_empty()
            && self.access_log_file.is_none()
            && self.workload_cert_ttl.is_none()
    }

    /// Whether Envoy-based proxies write access logs.
    pub fn envoy_access_log(&self) -> bool {
        self.access_log_file
            .as_deref()
            .is_some_and(|f| !f.is_empty())
    }
}

/// One `meshConfig.extensionProviders` entry (only `envoyExtAuthzHttp` is modeled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtensionProvider {
    pub name: String,
    pub envoy_ext_authz_http: ExtAuthzHttp,
}

/// Envoy's HTTP ext_authz check, as Istio's MeshConfig writes it: the proxy sends each request's
/// method, path (after `pathPrefix`) and chosen headers to the service; a 200 allows, anything
/// else is the answer to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthzHttp {
    /// The authorizer's service: `<name>.<ns>.svc.cluster.local`, `<name>.<ns>` or `<ns>/<name>`
    /// of a scenario service.
    pub service: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// How long the check may take (Istio's default: 600s); a timeout is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Allow when the authorizer cannot be reached (default: deny).
    #[serde(default)]
    pub fail_open: bool,
    /// The status when the check fails and `failOpen` is false (default 403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_on_error: Option<String>,
    /// Request headers sent in the check, beside Host, Method, Path, Content-Length and
    /// Authorization (always sent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_request_headers_in_check: Vec<String>,
    /// The authorizer's response headers added to the request when it allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_upstream_on_allow: Vec<String>,
    /// The authorizer's response headers sent to the client when it denies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_downstream_on_deny: Vec<String>,
}

impl ExtAuthzHttp {
    /// The (namespace, name) of the service this names, if the form is one meshsim reads.
    pub fn service_ref(&self) -> Option<(String, String)> {
        if let Some((ns, name)) = self.service.split_once('/') {
            return Some((ns.to_string(), name.to_string()));
        }
        let host = self.service.trim_end_matches(".svc.cluster.local");
        let host = host.trim_end_matches(".svc");
        let (name, ns) = host.split_once('.')?;
        (!ns.contains('.')).then(|| (ns.to_string(), name.to_string()))
    }
}

/// Proxy settings. Waypoints declared by manifests take theirs from `proxy.istio.io/config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Proxies {
    #[serde(default)]
    pub sidecar: ProxySettings,
    #[serde(default)]
    pub ztunnel: ProxySettings,
    #[serde(default)]
    pub waypoint: ProxySettings,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxySettings {
    /// Worker threads (Envoy's `concurrency`); default 2, as in Istio's benchmarks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// CPU limit, e.g. `500m`; enforced with a cgroup quota when run as root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<String>,
}

impl ProxySettings {
    pub fn concurrency(&self) -> u32 {
        self.concurrency.unwrap_or(2)
    }
}

/// A load flow: a client workload driving a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Flow {
    pub name: String,
    /// The workload whose first pod runs the load client.
    pub from: String,
    /// `service:port` or `service.namespace:port`.
    pub to: String,
    #[serde(default)]
    pub protocol: FlowProtocol,
    /// Requests per second (`200`), rate steps (`[500, 1000]`) or `max` (closed loop).
    pub rate: Rate,
    #[serde(default = "default_connections")]
    pub connections: u32,
    /// Keep connections open across requests (`false`: a new connection per request).
    #[serde(default = "yes")]
    pub reuse: bool,
    /// Request body (HTTP) or message (tcp-rr) size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_bytes: Option<Size>,
    /// Response body size asked of the echo app; defaults to the app's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_bytes: Option<Size>,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_path")]
    pub path: String,
    /// Extra request headers (e.g. `authorization`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Measured time per rate step.
    #[serde(default = "default_duration")]
    pub duration: Dur,
    /// Load before each step that is not measured.
    #[serde(default = "default_warmup")]
    pub warmup: Dur,
}

fn default_connections() -> u32 {
    4
}
fn yes() -> bool {
    true
}
fn default_method() -> String {
    "GET".to_string()
}
fn default_path() -> String {
    "/".to_string()
}
fn default_duration() -> Dur {
    Dur(std::time::Duration::from_secs(30))
}
fn default_warmup() -> Dur {
    Dur(std::time::Duration::from_secs(5))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FlowProtocol {
    /// HTTP/1.1 requests.
    #[default]
    Http1,
    /// TCP request/response ping-pong of fixed size (netperf TCP_RR).
    TcpRr,
    /// TCP bulk stream (iperf).
    TcpStream,
}

/// A service level objective, checked per mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Slo {
    pub name: String,
    pub flow: String,
    /// Modes it applies to; all when left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modes: Vec<Mode>,
    /// Latency ceilings (coordinated-omission corrected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999: Option<Dur>,
    /// Ceiling on p99 added over `no-mesh` (needs `no-mesh` among the modes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_p99: Option<Dur>,
    /// Ceiling on errors / requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<Fraction>,
    /// Floor on achieved / target rate (open loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_achieved_rate: Option<Fraction>,
}

fn default_flow_request(p: FlowProtocol) -> u64 {
    match p {
        FlowProtocol::Http1 => 0,
        FlowProtocol::TcpRr => 1024,
        FlowProtocol::TcpStream => 128 * 1024,
    }
}

impl Flow {
    /// Request size, with the protocol's default.
    pub fn request_bytes(&self) -> u64 {
        self.request_bytes
            .map(|s| s.0)
            .unwrap_or_else(|| default_flow_request(self.protocol))
    }

    /// `(service, namespace or None, port)` from `to`.
    pub fn target(&self) -> Option<(&str, Option<&str>, u16)> {
        let (host, port) = self.to.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        match host.split_once('.') {
            Some((svc, ns)) => Some((svc, Some(ns), port)),
            None => Some((host, None, port)),
        }
    }
}

//! One mode of a scenario as Kubernetes objects, and the files they are written to.
//!
//! Enrollment is Istio's own: a namespace labelled `istio-injection: enabled` gets sidecars
//! (istio.io "Installing the sidecar"), `istio.io/dataplane-mode: ambient` puts its pods on
//! ztunnel (istio.io "Add workloads to the mesh"), and a waypoint is a Gateway of class
//! `istio-waypoint` listening for HBONE on 15008 that `istio.io/use-waypoint` points at
//! (istio.io "Configure waypoint proxies").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EnvVar, EnvVarSource, Namespace, NodeAffinity,
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Service, ServiceAccount, ServicePort,
    ServiceSpec, TCPSocketAction, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use scenario::enrollment::{DATAPLANE_MODE, ISTIO_INJECTION, REVISION, SIDECAR_INJECT};
use scenario::{App, Flow, FlowProtocol, Loaded, Mode, PortProtocol, Rate};
use serde::Serialize;

/// The node label the exported pods are placed by: label a real node
/// `meshsim.io/node=<scenario node>` for each of the scenario's nodes.
pub const NODE_LABEL: &str = "meshsim.io/node";
/// The label naming the flow a load Job drives.
pub const FLOW_LABEL: &str = "meshsim.io/flow";
/// Istio's per-pod switch to a native sidecar (a Kubernetes sidecar container), so a Job's
/// pod completes when its load does instead of waiting on its proxy (istio/api annotation
/// `sidecar.istio.io/nativeSidecar`, which takes precedence over `ENABLE_NATIVE_SIDECARS`).
pub const NATIVE_SIDECAR: &str = "sidecar.istio.io/nativeSidecar";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot render {what} as YAML: {message}")]
    Yaml { what: String, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The files of an export, by path relative to its directory, and what the user should know
/// about what was left out.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub files: BTreeMap<String, String>,
    pub notes: Vec<String>,
}

impl Bundle {
    /// Writes every file under `dir`, which must not exist yet: nothing is half-written over
    /// an earlier export.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, ExportError> {
        let werr = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ExportError::Write { path, source }
        };
        let tmp = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        let mut written = Vec::new();
        for (rel, text) in &self.files {
            let p = tmp.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(werr(parent))?;
            }
            std::fs::write(&p, text).map_err(werr(&p))?;
            written.push(dir.join(rel));
        }
        std::fs::rename(&tmp, dir).map_err(werr(dir))?;
        Ok(written)
    }
}

/// A labelled object of a kind `k8s-openapi` has no type for (a Gateway API Gateway).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Custom {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: serde_json::Value,
}

/// Whether `w`'s pods get a sidecar in `mode`.
fn has_sidecar(loaded: &Loaded, w: &scenario::Workload, mode: Mode) -> bool {
    match mode {
        Mode::Sidecar => true,
        Mode::Declared => {
            loaded.enrollment(w, Mode::Declared).dataplane == scenario::DataPlane::Sidecar
        }
        _ => false,
    }
}

/// The scenario's sidecar settings as Istio's per-pod annotations (istio.io "Resource
/// Annotations": `sidecar.istio.io/proxyCPULimit`, and `proxy.istio.io/config` for
/// ProxyConfig's `concurrency`), on pods that get a sidecar in `mode`.
fn sidecar_annotations(
    loaded: &Loaded,
    w: &scenario::Workload,
    mode: Mode,
) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    if !has_sidecar(loaded, w, mode) {
        return a;
    }
    let s = &loaded.scenario.proxies.sidecar;
    if let Some(c) = s.concurrency {
        a.insert(
            "proxy.istio.io/config".into(),
            format!("{{\"concurrency\": {c}}}"),
        );
    }
    if let Some(l) = &s.cpu_limit {
        a.insert("sidecar.istio.io/proxyCPULimit".into(), l.clone());
    }
    a
}

/// The objects of `loaded` in `mode`, for pods running `image` (with `meshsim` on its path).
pub fn export(loaded: &Loaded, mode: Mode, image: &str) -> Result<Bundle, ExportError> {
    refuse_what_cannot_run(loaded, mode)?;
    let sc = &loaded.scenario;
    let mut b = Bundle::default();
    if !sc.faults.is_empty() {
        b.notes.push(format!(
            "the scenario's {} fault(s) are not exported: a real cluster's are yours to cause",
            sc.faults.len()
        ));
    }
    let (zt, wp) = (&sc.proxies.ztunnel, &sc.proxies.waypoint);
    if zt.concurrency.is_some()
        || zt.cpu_limit.is_some()
        || wp.concurrency.is_some()
        || wp.cpu_limit.is_some()
    {
        b.notes.push(
            "the scenario's ztunnel and waypoint settings (`proxies:`) are not exported: set them in Istio's install values (ztunnel's chart, the waypoint's deployment)"
                .into(),
        );
    }
    if sc.migration.is_some() {
        b.notes.push(
            "the migration is not exported: this is its starting point; apply each stage's changes yourself"
                .into(),
        );
    }
    let mut base: Vec<String> = Vec::new();
    let mut add = |b: &mut Bundle, file: &str, docs: Vec<String>| {
        if !docs.is_empty() {
            b.files.insert(file.to_string(), docs.join("---\n"));
            base.push(file.to_string());
        }
    };
    let declared_ns: Vec<String> = loaded
        .objects()
        .filter_map(|o| match &o.object {
            scenario::manifest::Object::Namespace(n) => Some(n.metadata.name.clone()),
            _ => None,
        })
        .collect();
    let namespaces: Vec<String> = loaded
        .namespace_names()
        .into_iter()
        .filter(|n| !declared_ns.contains(n))
        .collect();
    add(
        &mut b,
        "namespaces.yaml",
        namespaces
            .iter()
            .map(|n| yaml(&namespace(loaded, mode, n), n))
            .collect::<Result<_, _>>()?,
    );
    let mut accounts: BTreeMap<(String, String), ()> = BTreeMap::new();
    for w in &sc.workloads {
        accounts.insert((w.namespace.clone(), w.service_account().to_string()), ());
    }
    add(
        &mut b,
        "serviceaccounts.yaml",
        accounts
            .keys()
            .map(|(ns, name)| {
                let sa = ServiceAccount {
                    metadata: meta(name, ns, BTreeMap::new()),
                    ..Default::default()
                };
                yaml(&sa, name)
            })
            .collect::<Result<_, _>>()?,
    );
    let apps: Vec<String> = sc
        .workloads
        .iter()
        .filter(|w| w.app.is_some())
        .map(|w| {
            let mut d = deployment(w, mode, image);
            let a = sidecar_annotations(loaded, w, mode);
            if let Some(m) = d.spec.as_mut().and_then(|s| s.template.metadata.as_mut()) {
                m.annotations = (!a.is_empty()).then_some(a);
            }
            yaml(&d, &w.name)
        })
        .collect::<Result<_, _>>()?;
    let clients: Vec<&str> = sc
        .workloads
        .iter()
        .filter(|w| w.app.is_none())
        .map(|w| w.name.as_str())
        .collect();
    if !clients.is_empty() {
        b.notes.push(format!(
            "workloads without an app get no Deployment ({}): their flows' load Jobs run as them, with their service account and labels",
            clients.join(", ")
        ));
    }
    add(&mut b, "deployments.yaml", apps);
    add(
        &mut b,
        "services.yaml",
        sc.services
            .iter()
            .map(|s| yaml(&service(loaded, s), &s.name))
            .collect::<Result<_, _>>()?,
    );
    if mode == Mode::AmbientWaypoint {
        add(
            &mut b,
            "waypoints.yaml",
            waypoint_namespaces(loaded)
                .iter()
                .map(|ns| yaml(&waypoint(ns), ns))
                .collect::<Result<_, _>>()?,
        );
    }
    // The scenario's manifests, byte for byte, as `kubectl apply -f` would take them.
    for m in &sc.manifests {
        let Some(text) = loaded.sources.get(m) else {
            continue;
        };
        let file = format!(
            "istio/{}",
            Path::new(m)
                .file_name()
                .map_or_else(|| m.clone(), |f| f.to_string_lossy().into_owned())
        );
        b.files.insert(file.clone(), text.clone());
        base.push(file);
    }
    b.files.insert(
        "kustomization.yaml".into(),
        kustomization(
            &base,
            "the cluster: namespaces, apps, services, Istio objects",
        ),
    );
    let mut jobs = Vec::new();
    for f in &sc.flows {
        let file = format!("load-{}.yaml", f.name);
        b.files.insert(
            format!("jobs/{file}"),
            yaml(&job(loaded, f, mode, image)?, &f.name)?,
        );
        jobs.push(file);
    }
    if !jobs.is_empty() {
        b.files.insert(
            "jobs/kustomization.yaml".into(),
            kustomization(
                &jobs,
                "the load: one Job per flow, applied once the apps are ready",
            ),
        );
    }
    Ok(b)
}

/// What a real cluster cannot be given as the scenario says it, each with what to do.
fn refuse_what_cannot_run(loaded: &Loaded, mode: Mode) -> Result<(), ExportError> {
    let sc = &loaded.scenario;
    let mut problems = Vec::new();
    if let Some((uri, _)) = sc.jwks.iter().next() {
        problems.push(format!(
            "{}: `jwks` serves {uri}'s keys from a local file, which a real cluster's proxies cannot fetch; host the JWKS at that URI (or set `jwks` inline in the RequestAuthentication) and drop `jwks:`",
            loaded.path.display()
        ));
    }
    for f in &sc.flows {
        if matches!(f.rate, Rate::Search { .. }) {
            problems.push(format!(
                "{}: flow {}: `rate: search` is meshsim's own loop between runs; give the rates to export (e.g. `rate: [100, 200, 400]`)",
                loaded.path.display(),
                f.name
            ));
        }
    }
    if mode != Mode::Declared {
        for o in loaded.objects() {
            if let scenario::manifest::Object::Namespace(n) = &o.object {
                problems.push(format!(
                    "{}:{}: a manifest declares Namespace {}, but mode {mode} writes the namespaces with its own enrollment labels; move it to the scenario's `namespaces:`, or export --mode declared",
                    o.origin.file.display(),
                    o.origin.line(),
                    n.metadata.name
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ExportError::Unsupported(problems.join("\n")))
    }
}

fn yaml<T: Serialize>(o: &T, what: &str) -> Result<String, ExportError> {
    let mut text = serde_saphyr::to_string(o).map_err(|e| ExportError::Yaml {
        what: what.to_string(),
        message: e.to_string(),
    })?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

fn meta(name: &str, ns: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(ns.to_string()),
        labels: (!labels.is_empty()).then_some(labels),
        ..Default::default()
    }
}

/// Labels that decide a pod's data plane: in any mode but `declared`, the mode decides.
const DATAPLANE_LABELS: [&str; 4] = [DATAPLANE_MODE, ISTIO_INJECTION, SIDECAR_INJECT, REVISION];

fn without_dataplane(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| !DATAPLANE_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Namespaces that serve something: the ones `ambient-waypoint` gives a waypoint.
fn waypoint_namespaces(loaded: &Loaded) -> Vec<String> {
    let mut ns: Vec<String> = loaded
        .scenario
        .workloads
        .iter()
        .filter(|w| w.app.is_some())
        .map(|w| w.namespace.clone())
        .collect();
    ns.sort();
    ns.dedup();
    ns
}

/// The namespace's labels in `mode`: the scenario's as written in `declared`; otherwise its
/// others plus the mode's enrollment.
fn namespace_labels(loaded: &Loaded, mode: Mode, ns: &str) -> BTreeMap<String, String> {
    let own = loaded.namespace_labels(ns);
    if mode == Mode::Declared {
        return own;
    }
    let mut l = without_dataplane(&own);
    let mut set = |k: &str, v: &str| l.insert(k.to_string(), v.to_string());
    match mode {
        Mode::Sidecar => {
            set(ISTIO_INJECTION, "enabled");
        }
        Mode::Ambient => {
            set(DATAPLANE_MODE, "ambient");
        }
        Mode::AmbientWaypoint => {
            set(DATAPLANE_MODE, "ambient");
            if waypoint_namespaces(loaded).iter().any(|n| n == ns) {
                set(scenario::manifest::USE_WAYPOINT, &waypoint_name(ns));
            }
        }
        Mode::NoMesh | Mode::Declared => {}
    }
    l
}

fn namespace(loaded: &Loaded, mode: Mode, ns: &str) -> Namespace {
    let labels = namespace_labels(loaded, mode, ns);
    Namespace {
        metadata: ObjectMeta {
            name: Some(ns.to_string()),
            labels: (!labels.is_empty()).then_some(labels),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn waypoint_name(ns: &str) -> String {
    format!("{ns}-waypoint")
}

/// `ambient-waypoint`'s waypoint for a namespace, as `istioctl waypoint generate` writes it.
fn waypoint(ns: &str) -> Custom {
    let name = waypoint_name(ns);
    Custom {
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "Gateway".into(),
        metadata: meta(
            &name,
            ns,
            BTreeMap::from([("istio.io/waypoint-for".to_string(), "service".to_string())]),
        ),
        spec: serde_json::json!({
            "gatewayClassName": scenario::manifest::WAYPOINT_CLASS,
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
        }),
    }
}

/// A workload's pod labels in `mode`: `app: <name>` and its own, less the data-plane ones
/// unless `declared`.
fn pod_labels(w: &scenario::Workload, mode: Mode) -> BTreeMap<String, String> {
    let mut l = if mode == Mode::Declared {
        w.labels.clone()
    } else {
        without_dataplane(&w.labels)
    };
    l.insert("app".into(), w.name.clone());
    l
}

/// Where the scenario puts a workload's pods: one node by selector; several spread evenly
/// over them (one replica each in turn, as the simulator places them).
fn placement(w: &scenario::Workload, spec: &mut PodSpec, selector: &BTreeMap<String, String>) {
    match w.nodes.as_slice() {
        [] => {}
        [one] => {
            spec.node_selector = Some(BTreeMap::from([(NODE_LABEL.to_string(), one.clone())]));
        }
        many => {
            spec.affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: NODE_LABEL.into(),
                                operator: "In".into(),
                                values: Some(many.to_vec()),
                            }]),
                            ..Default::default()
                        }],
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
            spec.topology_spread_constraints = Some(vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: NODE_LABEL.into(),
                when_unsatisfiable: "DoNotSchedule".into(),
                label_selector: Some(LabelSelector {
                    match_labels: Some(selector.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }]);
        }
    }
}

/// The downward API's pod name and namespace: what `meshsim serve` names itself by.
fn pod_env() -> Vec<EnvVar> {
    let field = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    vec![
        field("POD_NAME", "metadata.name"),
        field("POD_NAMESPACE", "metadata.namespace"),
    ]
}

/// A small request, so the apps schedule on any node; the apps' own cost is not the subject.
fn app_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("100m".into())),
            ("memory".to_string(), Quantity("32Mi".into())),
        ])),
        ..Default::default()
    }
}

/// `meshsim serve`'s arguments for an app, its settings as flags.
pub fn serve_args(app: &App) -> Vec<String> {
    let mut a = vec!["serve".to_string()];
    match app {
        App::Http(h) => a.extend([
            "http".into(),
            "--port".into(),
            h.port.to_string(),
            "--response-bytes".into(),
            h.response_bytes.0.to_string(),
            "--status".into(),
            h.status.to_string(),
            "--service-time".into(),
            format!("{}us", h.service_time.0.as_micros()),
        ]),
        App::TcpEcho(t) => a.extend(["tcp-echo".into(), "--port".into(), t.port.to_string()]),
        App::TcpSink(t) => a.extend(["tcp-sink".into(), "--port".into(), t.port.to_string()]),
    }
    a
}

fn deployment(w: &scenario::Workload, mode: Mode, image: &str) -> Deployment {
    let selector = BTreeMap::from([("app".to_string(), w.name.clone())]);
    let port = w.app.as_ref().map_or(0, App::port);
    let mut pod = PodSpec {
        service_account_name: Some(w.service_account().to_string()),
        containers: vec![Container {
            name: "app".into(),
            image: Some(image.into()),
            args: w.app.as_ref().map(serve_args),
            env: Some(pod_env()),
            ports: Some(vec![ContainerPort {
                container_port: i32::from(port),
                ..Default::default()
            }]),
            readiness_probe: Some(Probe {
                tcp_socket: Some(TCPSocketAction {
                    port: IntOrString::Int(i32::from(port)),
                    ..Default::default()
                }),
                period_seconds: Some(2),
                ..Default::default()
            }),
            resources: Some(app_resources()),
            ..Default::default()
        }],
        ..Default::default()
    };
    placement(w, &mut pod, &selector);
    Deployment {
        metadata: meta(&w.name, &w.namespace, selector.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(w.replicas as i32),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels(w, mode)),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A service with its ports named for Istio's protocol selection (`http-…`, `tcp-…`, and
/// `appProtocol`; istio.io "Protocol Selection").
fn service(loaded: &Loaded, s: &scenario::Service) -> Service {
    let http_app = loaded
        .scenario
        .workloads
        .iter()
        .find(|w| w.name == s.workload && w.namespace == s.namespace)
        .is_some_and(|w| matches!(w.app, Some(App::Http(_))));
    let selector = BTreeMap::from([("app".to_string(), s.workload.clone())]);
    Service {
        metadata: meta(&s.name, &s.namespace, s.labels.clone()),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(
                s.ports
                    .iter()
                    .map(|p| {
                        let http = match p.protocol {
                            Some(PortProtocol::Http) => true,
                            Some(PortProtocol::Tcp) => false,
                            None => http_app,
                        };
                        let proto = if http { "http" } else { "tcp" };
                        ServicePort {
                            name: Some(format!("{proto}-{}", p.port)),
                            port: i32::from(p.port),
                            target_port: Some(IntOrString::Int(i32::from(
                                p.target_port.unwrap_or(p.port),
                            ))),
                            app_protocol: Some(proto.into()),
                            ..Default::default()
                        }
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn millis(d: std::time::Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// `meshsim load`'s arguments for a flow from `from`'s namespace: what its Job runs.
pub fn load_args(loaded: &Loaded, f: &Flow) -> Result<Vec<String>, ExportError> {
    let from_ns = loaded
        .scenario
        .workloads
        .iter()
        .find(|w| w.name == f.from)
        .map_or("default", |w| w.namespace.as_str());
    let Some((svc, ns, port)) = f.target() else {
        return Err(ExportError::Unsupported(format!(
            "flow {}: `to: {}` is not `service[.namespace]:port`",
            f.name, f.to
        )));
    };
    let host = format!("{svc}.{}:{port}", ns.unwrap_or(from_ns));
    let (url, protocol) = match f.protocol {
        FlowProtocol::Http1 => (
            format!("http://{host}{}", f.path),
            if f.reuse { "http1" } else { "http1-churn" },
        ),
        FlowProtocol::TcpRr => (format!("tcp://{host}"), "tcp-rr"),
        FlowProtocol::TcpStream => (format!("tcp://{host}"), "tcp-stream"),
    };
    let mut a = vec![
        "load".to_string(),
        url,
        "--protocol".into(),
        protocol.into(),
        "-c".into(),
        f.connections.to_string(),
        "-d".into(),
        millis(f.duration.0),
        "--warmup".into(),
        millis(f.warmup.0),
    ];
    match &f.rate {
        Rate::Max => a.extend(["--loop".into(), "closed".into()]),
        r => a.extend([
            "--rate".into(),
            r.steps()
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ]),
    }
    if f.protocol == FlowProtocol::Http1 {
        a.extend(["-X".into(), f.method.clone()]);
        for (k, v) in &f.headers {
            a.extend(["-H".into(), format!("{k}: {v}")]);
        }
    }
    if let Some(b) = f.request_bytes {
        a.extend(["--request-bytes".into(), b.0.to_string()]);
    }
    if let Some(b) = f.response_bytes {
        a.extend(["--response-bytes".into(), b.0.to_string()]);
    }
    a.extend(["--json".into(), "-".into()]);
    Ok(a)
}

/// A flow's load as a Job: in its source's namespace, as its source (service account and
/// labels, so policies see the same identity), on its source's first node.
fn job(loaded: &Loaded, f: &Flow, mode: Mode, image: &str) -> Result<Job, ExportError> {
    let Some(from) = loaded.scenario.workloads.iter().find(|w| w.name == f.from) else {
        return Err(ExportError::Unsupported(format!(
            "flow {}: no workload {}",
            f.name, f.from
        )));
    };
    // Not `app`: the source's Services must not send traffic to its load.
    let mut labels = pod_labels(from, mode);
    labels.remove("app");
    labels.insert(FLOW_LABEL.into(), f.name.clone());
    let mut annotations = sidecar_annotations(loaded, from, mode);
    if has_sidecar(loaded, from, mode) {
        annotations.insert(NATIVE_SIDECAR.to_string(), "true".to_string());
    }
    let mut pod = PodSpec {
        service_account_name: Some(from.service_account().to_string()),
        restart_policy: Some("Never".into()),
        containers: vec![Container {
            name: "load".into(),
            image: Some(image.into()),
            args: Some(load_args(loaded, f)?),
            ..Default::default()
        }],
        ..Default::default()
    };
    if let Some(node) = from.nodes.first() {
        pod.node_selector = Some(BTreeMap::from([(NODE_LABEL.to_string(), node.clone())]));
    }
    Ok(Job {
        metadata: meta(
            &format!("load-{}", f.name),
            &from.namespace,
            BTreeMap::from([(FLOW_LABEL.to_string(), f.name.clone())]),
        ),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn kustomization(resources: &[String], what: &str) -> String {
    let mut s = format!(
        "# meshsim export: {what}.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
    );
    for r in resources {
        s.push_str(&format!("  - {r}\n"));
    }
    s
}

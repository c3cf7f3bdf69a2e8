//! An inventory from where a platform team has its cluster: `kubectl get ns,pods,svc -A -o
//! json`, the Istio resources as YAML, and the traffic as a Prometheus query result.
//!
//! - Pods become workloads by their owner (a ReplicaSet's Deployment, a StatefulSet, a
//!   DaemonSet, a Job; a bare pod stands alone), with the labels all their pods share, their
//!   service account, and the nodes they run on (each node a pool of one, so the plan keeps
//!   the real placement and its hot nodes). Finished pods (Succeeded, Failed) are left out.
//! - A pod running an `istio-proxy` container is marked as having had a sidecar injected when
//!   it started (injection happens at creation only), so `declared` plans what runs today.
//! - Gateways of class `istio-waypoint` become waypoints; a `Sidecar` without a workload
//!   selector scopes its namespace (or, in istio-system, every namespace without its own).
//! - Traffic: `sum(rate(istio_requests_total[5m])) by (source_workload,
//!   source_workload_namespace, destination_service_name, destination_service_namespace,
//!   reporter)`, one entry per source and destination service; an unknown source is traffic
//!   from outside the mesh.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use scenario::enrollment::SIDECAR_AT_START;
use serde_json::Value;

use crate::PlanError;
use crate::inventory::{
    Inventory, Labels, Namespace, NodePool, Service, Traffic, Waypoint, Workload,
};

/// Pod labels that differ from pod to pod of one workload, or name the pod: not the
/// workload's.
const PER_POD_LABELS: [&str; 9] = [
    "pod-template-hash",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "controller-uid",
    "job-name",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "pod-template-generation",
];

/// An imported inventory and what the import left out or assumed, for the user to read.
#[derive(Debug, Clone)]
pub struct Imported {
    pub inventory: Inventory,
    pub notes: Vec<String>,
}

fn bad(path: &Path, message: impl Into<String>) -> PlanError {
    PlanError::Import {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

fn labels_at(v: &Value, path: &[&str]) -> Labels {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads `kubectl get … -o json` files (a `List`, or single objects), the Istio resources
/// (multi-document YAML) and a Prometheus `/api/v1/query` result.
pub fn from_kubectl(
    name: &str,
    cluster: &[PathBuf],
    istio: &[PathBuf],
    traffic: Option<&Path>,
) -> Result<Imported, PlanError> {
    let mut items: Vec<(PathBuf, Value)> = Vec::new();
    for path in cluster {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.clone(),
            source,
        })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            bad(
                path,
                format!("not JSON ({e}); give the output of `kubectl get ns,pods,svc -A -o json`"),
            )
        })?;
        match v.get("items").and_then(Value::as_array) {
            Some(list) => items.extend(list.iter().map(|i| (path.clone(), i.clone()))),
            None if v.get("kind").is_some() => items.push((path.clone(), v)),
            None => {
                return Err(bad(
                    path,
                    "neither a `List` with `items` nor a Kubernetes object",
                ));
            }
        }
    }
    let mut notes = Vec::new();
    let kind_of = |v: &Value| str_at(v, &["kind"]).unwrap_or_default().to_string();
    let mut namespaces: BTreeMap<String, Namespace> = BTreeMap::new();
    for (_, v) in items.iter().filter(|(_, v)| kind_of(v) == "Namespace") {
        if let Some(n) = str_at(v, &["metadata", "name"]) {
            namespaces.insert(
                n.to_string(),
                Namespace {
                    name: n.to_string(),
                    labels: labels_at(v, &["metadata", "labels"]),
                    sidecar_egress_hosts: None,
                },
            );
        }
    }
    // Pods grouped by their workload.
    struct Group {
        kind: String,
        labels: Option<Labels>,
        service_account: String,
        nodes: Vec<String>,
        sidecars: usize,
        pods: usize,
    }
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    let mut finished = 0;
    for (path, v) in items.iter().filter(|(_, v)| kind_of(v) == "Pod") {
        let Some(pod) = str_at(v, &["metadata", "name"]) else {
            return Err(bad(path, "a Pod without metadata.name"));
        };
        let ns = str_at(v, &["metadata", "namespace"]).unwrap_or("default");
        if matches!(
            str_at(v, &["status", "phase"]),
            Some("Succeeded" | "Failed")
        ) {
            finished += 1;
            continue;
        }
        let mut labels = labels_at(v, &["metadata", "labels"]);
        let (kind, workload) = owner(v, pod, &labels);
        for l in PER_POD_LABELS {
            labels.remove(l);
        }
        let has_sidecar = v
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| str_at(c, &["name"]) == Some("istio-proxy"))
            })
            || v.pointer("/spec/initContainers")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| str_at(c, &["name"]) == Some("istio-proxy"))
                });
        let g = groups
            .entry((ns.to_string(), workload))
            .or_insert_with(|| Group {
                kind,
                labels: None,
                service_account: str_at(v, &["spec", "serviceAccountName"])
                    .unwrap_or("default")
                    .to_string(),
                nodes: Vec::new(),
                sidecars: 0,
                pods: 0,
            });
        g.labels = Some(match g.labels.take() {
            None => labels,
            Some(common) => common
                .into_iter()
                .filter(|(k, val)| labels.get(k) == Some(val))
                .collect(),
        });
        if let Some(n) = str_at(v, &["spec", "nodeName"]) {
            g.nodes.push(n.to_string());
        }
        g.pods += 1;
        g.sidecars += usize::from(has_sidecar);
        namespaces
            .entry(ns.to_string())
            .or_insert_with(|| Namespace {
                name: ns.to_string(),
                labels: Labels::new(),
                sidecar_egress_hosts: None,
            });
    }
    if finished > 0 {
        notes.push(format!(
            "{finished} finished pod(s) (Succeeded or Failed) left out"
        ));
    }
    let mut nodes: BTreeSet<String> = BTreeSet::new();
    let mut workloads = Vec::new();
    for ((ns, name), mut g) in groups {
        let mut labels = g.labels.take().unwrap_or_default();
        if g.sidecars == g.pods {
            labels.insert(SIDECAR_AT_START.into(), "true".into());
        } else if g.sidecars == 0 {
            labels.insert(SIDECAR_AT_START.into(), "false".into());
        } else {
            notes.push(format!(
                "{ns}/{name}: {} of {} pods run a sidecar; planned as if all did (a rollout half done)",
                g.sidecars, g.pods
            ));
            labels.insert(SIDECAR_AT_START.into(), "true".into());
        }
        g.nodes.sort();
        nodes.extend(g.nodes.iter().cloned());
        workloads.push(Workload {
            name,
            namespace: ns,
            kind: Some(g.kind),
            replicas: g.pods as u32,
            service_account: Some(g.service_account),
            labels,
            pools: g.nodes,
        });
    }
    let mut services = Vec::new();
    for (_, v) in items.iter().filter(|(_, v)| kind_of(v) == "Service") {
        let (Some(name), ns) = (
            str_at(v, &["metadata", "name"]),
            str_at(v, &["metadata", "namespace"]).unwrap_or("default"),
        ) else {
            continue;
        };
        let selector = labels_at(v, &["spec", "selector"]);
        if selector.is_empty() {
            notes.push(format!(
                "service {ns}/{name} has no selector (external or hand-made endpoints): left out"
            ));
            continue;
        }
        let ports = v
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p.get("port")?.as_u64())
                    .filter_map(|p| u16::try_from(p).ok())
                    .collect()
            })
            .unwrap_or_default();
        services.push(Service {
            name: name.to_string(),
            namespace: ns.to_string(),
            selector: Some(selector),
            workload: None,
            ports,
            labels: labels_at(v, &["metadata", "labels"]),
        });
        namespaces
            .entry(ns.to_string())
            .or_insert_with(|| Namespace {
                name: ns.to_string(),
                labels: Labels::new(),
                sidecar_egress_hosts: None,
            });
    }
    let mut waypoints = Vec::new();
    let mut mesh_sidecar: Option<Vec<String>> = None;
    for path in istio {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.clone(),
            source,
        })?;
        for doc in scenario::yaml::split_documents(&text) {
            if doc.text.trim().is_empty() {
                continue;
            }
            let v: Value = serde_saphyr::from_str(doc.text)
                .map_err(|e| bad(path, format!("line {}: not YAML: {e}", doc.line_offset + 1)))?;
            let ns = str_at(&v, &["metadata", "namespace"]).unwrap_or("default");
            let name = str_at(&v, &["metadata", "name"]).unwrap_or_default();
            match str_at(&v, &["kind"]) {
                Some("Gateway")
                    if str_at(&v, &["spec", "gatewayClassName"]) == Some("istio-waypoint") =>
                {
                    waypoints.push(Waypoint {
                        name: name.to_string(),
                        namespace: ns.to_string(),
                        concurrency: 2,
                        cpu_limit: 2.0,
                    });
                }
                Some("Sidecar") if v.pointer("/spec/workloadSelector").is_none() => {
                    let hosts: Vec<String> = v
                        .pointer("/spec/egress")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .flat_map(|e| {
                            e.get("hosts")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect::<Vec<_>>()
                        })
                        .collect();
                    let (kept, dropped): (Vec<String>, Vec<String>) = hosts
                        .into_iter()
                        .partition(|h| crate::inventory::egress_namespace(h).is_some());
                    if !dropped.is_empty() {
                        notes.push(format!(
                            "Sidecar {ns}/{name}: egress hosts {} name single hosts; their namespaces are counted whole",
                            dropped.join(", ")
                        ));
                    }
                    let mut kept = kept;
                    for h in dropped {
                        if let Some((n, _)) = h.split_once('/') {
                            kept.push(format!("{n}/*"));
                        }
                    }
                    if ns == "istio-system" {
                        mesh_sidecar = Some(kept);
                    } else if let Some(n) = namespaces.get_mut(ns) {
                        n.sidecar_egress_hosts = Some(kept);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(hosts) = mesh_sidecar {
        for n in namespaces.values_mut() {
            if n.sidecar_egress_hosts.is_none() {
                n.sidecar_egress_hosts = Some(hosts.clone());
            }
        }
    }
    // A waypoint a label names but no Gateway declares is added with Istio's defaults: the
    // plan sizes it rather than failing on it.
    let named: Vec<(String, String)> = namespaces
        .values()
        .map(|n| (&n.labels, n.name.as_str()))
        .chain(services.iter().map(|s| (&s.labels, s.namespace.as_str())))
        .filter_map(|(labels, ns)| {
            let w = labels.get(crate::inventory::USE_WAYPOINT)?;
            (w != "none").then(|| {
                let ns = labels
                    .get(crate::inventory::USE_WAYPOINT_NAMESPACE)
                    .map_or(ns, String::as_str);
                (ns.to_string(), w.clone())
            })
        })
        .collect();
    for (ns, w) in named {
        if !waypoints.iter().any(|x| x.name == w && x.namespace == ns) {
            notes.push(format!(
                "waypoint {ns}/{w} is named by an istio.io/use-waypoint label but no Gateway was given; added with Istio's defaults (2 workers, 2 cores)"
            ));
            waypoints.push(Waypoint {
                name: w,
                namespace: ns.clone(),
                concurrency: 2,
                cpu_limit: 2.0,
            });
            namespaces.entry(ns.clone()).or_insert_with(|| Namespace {
                name: ns,
                labels: Labels::new(),
                sidecar_egress_hosts: None,
            });
        }
    }
    let traffic = match traffic {
        Some(p) => prometheus_traffic(p, &workloads, &services, &mut notes)?,
        None => {
            notes.push(
                "no traffic given (--traffic PROM.json): the plan has idle proxies only".into(),
            );
            Vec::new()
        }
    };
    if nodes.is_empty() {
        nodes.insert("node".into());
        notes.push("no pod names its node: one node assumed".into());
    }
    let inventory = Inventory {
        version: 1,
        name: name.to_string(),
        description: format!(
            "Imported from {}",
            cluster
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        nodes: nodes
            .into_iter()
            .map(|n| NodePool {
                pool: n,
                count: 1,
                cpu: None,
                memory: None,
            })
            .collect(),
        namespaces: namespaces.into_values().collect(),
        workloads,
        services,
        waypoints,
        traffic,
        migration: None,
    };
    Ok(Imported { inventory, notes })
}

/// A pod's workload: its controller's kind and name.
fn owner(pod: &Value, name: &str, labels: &Labels) -> (String, String) {
    let owner = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|os| {
            os.iter()
                .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
                .or_else(|| os.first())
        });
    let Some(o) = owner else {
        return ("Pod".into(), name.to_string());
    };
    let kind = str_at(o, &["kind"]).unwrap_or("Pod");
    let oname = str_at(o, &["name"]).unwrap_or(name);
    match kind {
        // A Deployment's ReplicaSet is `<deployment>-<pod-template-hash>`.
        "ReplicaSet" => {
            let deployment = labels
                .get("pod-template-hash")
                .and_then(|h| oname.strip_suffix(&format!("-{h}")))
                .or_else(|| oname.rsplit_once('-').map(|(d, _)| d))
                .unwrap_or(oname);
            ("Deployment".into(), deployment.to_string())
        }
        k => (k.to_string(), oname.to_string()),
    }
}

/// Traffic from a Prometheus instant-query result of `istio_requests_total` rates.
fn prometheus_traffic(
    path: &Path,
    workloads: &[Workload],
    services: &[Service],
    notes: &mut Vec<String>,
) -> Result<Vec<Traffic>, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        bad(
            path,
            format!("not JSON ({e}); give the body of Prometheus's /api/v1/query"),
        )
    })?;
    if str_at(&v, &["status"]) != Some("success") {
        return Err(bad(
            path,
            "not a successful Prometheus query result (`status` is not `success`)",
        ));
    }
    let results = v
        .pointer("/data/result")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            bad(
                path,
                "no `data.result` list (a vector result of /api/v1/query)",
            )
        })?;
    // With both reporters, the destination's counts (Istio's dashboards do the same).
    let has_destination = results
        .iter()
        .any(|r| str_at(r, &["metric", "reporter"]) == Some("destination"));
    let mut sums: BTreeMap<(Option<String>, String), f64> = BTreeMap::new();
    let mut unknown_dest = BTreeSet::new();
    for (i, r) in results.iter().enumerate() {
        let m = |k: &str| str_at(r, &["metric", k]);
        if has_destination && m("reporter").is_some_and(|x| x != "destination") {
            continue;
        }
        let rate: f64 = r
            .pointer("/value/1")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                bad(
                    path,
                    format!("data.result[{i}].value: not [time, \"rate\"]"),
                )
            })?;
        if !rate.is_finite() || rate <= 0.0 {
            continue;
        }
        let (svc, svc_ns) = match (
            m("destination_service_name"),
            m("destination_service_namespace"),
        ) {
            (Some(n), Some(ns)) => (n.to_string(), ns.to_string()),
            _ => match m("destination_service").and_then(|d| {
                let mut parts = d.split('.');
                Some((parts.next()?.to_string(), parts.next()?.to_string()))
            }) {
                Some(p) => p,
                None => {
                    return Err(bad(
                        path,
                        format!(
                            "data.result[{i}].metric: no destination_service_name/destination_service_namespace (or destination_service); group the query by them"
                        ),
                    ));
                }
            },
        };
        if !services
            .iter()
            .any(|s| s.name == svc && s.namespace == svc_ns)
        {
            unknown_dest.insert(format!("{svc_ns}/{svc}"));
            continue;
        }
        let from = match (m("source_workload"), m("source_workload_namespace")) {
            (Some(w), Some(ns)) if workloads.iter().any(|x| x.name == w && x.namespace == ns) => {
                Some(format!("{ns}/{w}"))
            }
            _ => None,
        };
        *sums.entry((from, format!("{svc_ns}/{svc}"))).or_default() += rate;
    }
    if !unknown_dest.is_empty() {
        notes.push(format!(
            "traffic to services not in the cluster files left out: {}",
            unknown_dest.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    notes.push(
        "request and response sizes are not in the query: 1 KiB each assumed, 100 requests per connection".into(),
    );
    Ok(sums
        .into_iter()
        .map(|((from, to), rps)| Traffic {
            from,
            to,
            rps: (rps * 1000.0).round() / 1000.0,
            peak_rps: None,
            request_size: scenario::units::Size(1024),
            response_size: scenario::units::Size(1024),
            requests_per_connection: 100.0,
            connections: None,
        })
        .collect())
}

/// The inventory as YAML, with the import's notes as comments on top.
pub fn to_yaml(imported: &Imported) -> Result<String, PlanError> {
    let body = serde_saphyr::to_string(&imported.inventory).map_err(|e| PlanError::Import {
        path: PathBuf::from("inventory"),
        message: format!("cannot write it as YAML: {e}"),
    })?;
    let mut out = String::from(
        "# An inventory imported by `meshsim import kubectl`; plan it with `meshsim plan`.\n",
    );
    for n in &imported.notes {
        out.push_str(&format!("# - {n}\n"));
    }
    out.push_str(&body);
    Ok(out)
}

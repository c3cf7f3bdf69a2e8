//! A representative scenario of an inventory that fits on one machine: its busiest paths, one
//! for each kind of proxy the cluster runs (a sidecar, an ambient and a waypoint-served
//! destination), at rates scaled to a budget, between two nodes. `meshsim run` of it measures
//! on this machine what the plan projects, so the projection can be checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use scenario::enrollment::{self, DataPlane};

use crate::inventory::{Inventory, Labels, USE_WAYPOINT, split_ref};

/// Flows a downscaled scenario keeps at most.
pub const MAX_FLOWS: usize = 4;

/// The scenario (YAML), its manifests (waypoint Gateways, if any) and what was chosen.
#[derive(Debug, Clone)]
pub struct Downscaled {
    pub scenario: String,
    pub manifests: Option<String>,
    pub notes: Vec<String>,
}

/// Downscales `inv` to at most [`MAX_FLOWS`] flows carrying `budget_rps` in all; the
/// manifests, when any, are to be written beside the scenario as `manifests_file`.
pub fn downscale(inv: &Inventory, budget_rps: f64, manifests_file: &str) -> Downscaled {
    let ns_labels: BTreeMap<&str, &Labels> = inv
        .namespaces
        .iter()
        .map(|n| (n.name.as_str(), &n.labels))
        .collect();
    let none = Labels::new();
    let backing = |svc_ns: &str, svc: &str| {
        let s = inv
            .services
            .iter()
            .find(|s| s.namespace == svc_ns && s.name == svc)?;
        inv.workloads
            .iter()
            .find(|w| {
                w.namespace == s.namespace
                    && match (&s.workload, &s.selector) {
                        (Some(n), _) => &w.name == n,
                        (None, Some(sel)) => {
                            !sel.is_empty() && sel.iter().all(|(k, v)| w.labels.get(k) == Some(v))
                        }
                        _ => false,
                    }
            })
            .map(|w| (s, w))
    };
    // What kind of path each traffic entry exercises, as the labels declare it.
    let kind_of = |to: &str| -> Option<&'static str> {
        let (ns, name) = split_ref(to)?;
        let (s, w) = backing(ns, name)?;
        let nsl = ns_labels.get(ns).copied().unwrap_or(&none);
        let waypoint = s
            .labels
            .get(USE_WAYPOINT)
            .or_else(|| nsl.get(USE_WAYPOINT))
            .is_some_and(|v| v != "none");
        Some(match enrollment::enroll(nsl, &w.labels).dataplane {
            DataPlane::Sidecar => "sidecar",
            DataPlane::Ambient if waypoint => "waypoint",
            DataPlane::Ambient => "ambient",
            DataPlane::None => "none",
        })
    };
    let mut by_rps: Vec<usize> = (0..inv.traffic.len()).collect();
    by_rps.sort_by(|&a, &b| inv.traffic[b].rps.total_cmp(&inv.traffic[a].rps));
    let mut chosen: Vec<usize> = Vec::new();
    let mut covered = BTreeSet::new();
    // The busiest path of each kind first, then the busiest of the rest.
    for kind in ["sidecar", "ambient", "waypoint"] {
        if let Some(&i) = by_rps
            .iter()
            .find(|&&i| kind_of(&inv.traffic[i].to) == Some(kind))
        {
            chosen.push(i);
            covered.insert(kind);
        }
    }
    for &i in &by_rps {
        if chosen.len() >= MAX_FLOWS {
            break;
        }
        if !chosen.contains(&i) && kind_of(&inv.traffic[i].to).is_some() {
            chosen.push(i);
        }
    }
    chosen.sort_unstable();
    let total: f64 = chosen.iter().map(|&i| inv.traffic[i].rps).sum();
    let k = if total > budget_rps && total > 0.0 {
        budget_rps / total
    } else {
        1.0
    };
    let mut notes = vec![format!(
        "{} of {} traffic entries kept (the busiest of each proxy kind: {}), rates × {:.4}",
        chosen.len(),
        inv.traffic.len(),
        covered.into_iter().collect::<Vec<_>>().join(", "),
        k
    )];

    // Workloads, each once; a name used in two namespaces gets its namespace appended.
    let mut workloads: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut names = BTreeSet::new();
    let mut name_of = |ns: &str, w: &str| -> String {
        workloads
            .entry((ns.to_string(), w.to_string()))
            .or_insert_with(|| {
                let n = if names.contains(w) {
                    format!("{w}-{ns}")
                } else {
                    w.to_string()
                };
                names.insert(n.clone());
                n
            })
            .clone()
    };
    let mut wl_yaml = String::new();
    let mut svc_yaml = String::new();
    let mut flow_yaml = String::new();
    let mut used_ns: BTreeSet<String> = BTreeSet::new();
    let mut servers: BTreeSet<(String, String)> = BTreeSet::new();
    let mut clients: BTreeSet<(String, String)> = BTreeSet::new();
    let mut waypoints: BTreeSet<(String, String)> = BTreeSet::new();
    let paths: Vec<_> = chosen
        .iter()
        .filter_map(|&i| {
            let t = &inv.traffic[i];
            let (ns, svc) = split_ref(&t.to)?;
            let (s, w) = backing(ns, svc)?;
            Some((i, t, ns, s, w))
        })
        .collect();
    // Servers first: a workload that is both (a client of one path, the server of another)
    // is written once, as a server.
    for &(_, t, _, s, w) in &paths {
        let port = s.ports.first().copied().unwrap_or(8080);
        let server = name_of(&w.namespace, &w.name);
        if servers.insert((w.namespace.clone(), w.name.clone())) {
            let labels = yaml_map(&w.labels);
            let _ = writeln!(
                wl_yaml,
                "  - {{name: {server}, namespace: {}, replicas: {}, nodes: [node-2]{labels}, app: {{http: {{port: {port}, responseBytes: {}}}}}}}",
                w.namespace,
                w.replicas.min(2),
                t.response_size
            );
            let _ = writeln!(
                svc_yaml,
                "  - {{name: {}, namespace: {}, workload: {server}, ports: [{{port: {port}}}]{}}}",
                s.name,
                s.namespace,
                yaml_map(&s.labels)
            );
            used_ns.insert(w.namespace.clone());
        }
    }
    for &(i, t, ns, s, _) in &paths {
        let port = s.ports.first().copied().unwrap_or(8080);
        let (client_ns, client) = match t.from.as_deref().and_then(split_ref) {
            Some((cns, cw)) => (cns.to_string(), cw.to_string()),
            None => ("outside".to_string(), "outside-client".to_string()),
        };
        let client_name = name_of(&client_ns, &client);
        if clients.insert((client_ns.clone(), client.clone()))
            && !servers.contains(&(client_ns.clone(), client.clone()))
        {
            let labels = inv
                .workloads
                .iter()
                .find(|x| x.namespace == client_ns && x.name == client)
                .map(|x| yaml_map(&x.labels))
                .unwrap_or_default();
            let _ = writeln!(
                wl_yaml,
                "  - {{name: {client_name}, namespace: {client_ns}, nodes: [node-1]{labels}}}"
            );
            used_ns.insert(client_ns.clone());
        }
        let nsl = ns_labels.get(ns).copied().unwrap_or(&none);
        if let Some(wp) = s
            .labels
            .get(USE_WAYPOINT)
            .or_else(|| nsl.get(USE_WAYPOINT))
            .filter(|v| *v != "none")
        {
            waypoints.insert((ns.to_string(), wp.clone()));
        }
        let rate = ((t.rps * k) * 10.0).round().max(10.0) / 10.0;
        let conns = t.connections.unwrap_or(2).clamp(1, 8);
        let _ = writeln!(
            flow_yaml,
            "  - {{name: flow-{i}, from: {client_name}, to: \"{}.{}:{port}\", rate: {rate}, connections: {conns}, requestBytes: {}, responseBytes: {}, duration: 10s, warmup: 2s}}",
            s.name, s.namespace, t.request_size, t.response_size
        );
    }
    let mut ns_yaml = String::new();
    for ns in &used_ns {
        let labels = ns_labels.get(ns.as_str()).copied().unwrap_or(&none);
        let _ = writeln!(ns_yaml, "  - {{name: {ns}{}}}", yaml_map(labels));
    }
    let manifests = (!waypoints.is_empty()).then(|| {
        waypoints
            .iter()
            .map(|(ns, name)| {
                format!(
                    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    istio.io/waypoint-for: service\nspec:\n  gatewayClassName: istio-waypoint\n  listeners:\n  - name: mesh\n    port: 15008\n    protocol: HBONE\n"
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    });
    if chosen.is_empty() {
        notes.push("no traffic to downscale: the scenario has no flows".into());
    }
    let mut sc = format!(
        "# A one-machine scenario of inventory `{0}`, written by `meshsim import`: its busiest\n# paths of each proxy kind, rates scaled to fit. `meshsim run` measures what `plan` projects.\nversion: 1\nname: {0}-downscaled\ndescription: The busiest paths of inventory {0}, scaled to one machine.\nseed: 1\nprofile: istio-1.24\nmodes: [no-mesh, sidecar, ambient, declared]\nnodes:\n  - name: node-1\n  - name: node-2\nnamespaces:\n{ns_yaml}workloads:\n{wl_yaml}services:\n{svc_yaml}",
        inv.name
    );
    if manifests.is_some() {
        let _ = writeln!(sc, "manifests:\n  - {manifests_file}");
    }
    if !flow_yaml.is_empty() {
        let _ = write!(sc, "flows:\n{flow_yaml}");
    }
    Downscaled {
        scenario: sc,
        manifests,
        notes,
    }
}

/// `, labels: {k: "v", …}` (values quoted: YAML would read `true` or `1.0` as other types).
fn yaml_map(m: &Labels) -> String {
    if m.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}: {}", serde_json::Value::String(v.clone())))
        .collect();
    format!(", labels: {{{}}}", inner.join(", "))
}

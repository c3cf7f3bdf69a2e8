//! Introspection of a running cluster with the columns and wording of `istioctl`:
//! `ztunnel-config workloads|services|policies|certificates` (istioctl's
//! `pkg/writer/ztunnel/configdump`) and `waypoint list|status` (`pkg/waypoint`), computed from
//! the mesh plan the proxies run on.

use std::fmt::Write as _;

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::mesh::control::MeshPlan;
use scenario::DataPlane;
use scenario::manifest::{Action, WaypointFor};

/// A table printed as istioctl's tabwriter prints it: columns padded to their widest cell,
/// separated by one space.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn render(&self) -> String {
        let mut width: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (c, w)) in r.iter().zip(&width).enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    let _ = write!(line, "{c:<w$} ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The node names of the cluster, by index, to name a workload's node.
pub struct Nodes<'a>(pub &'a [String]);

/// `istioctl ztunnel-config workloads`: every pod ztunnel knows (all of them; with a node,
/// that node's), its waypoint and whether it takes HBONE.
pub fn workloads(plan: &MeshPlan, nodes: &Nodes<'_>, node: Option<&str>) -> Table {
    let mut t = Table::new(&[
        "NAMESPACE",
        "POD NAME",
        "ADDRESS",
        "NODE",
        "WAYPOINT",
        "PROTOCOL",
    ]);
    let mut rows: Vec<Vec<String>> = plan
        .workloads
        .iter()
        .filter(|w| node.is_none_or(|n| nodes.0.get(w.node).is_some_and(|x| x == n)))
        .map(|w| {
            let waypoint = w.waypoint.map_or_else(
                || "None".to_string(),
                |k| plan.waypoints[k].decl.name.clone(),
            );
            // A pod that takes HBONE (ambient, or a sidecar with the ambient profile's tunnel)
            // is HBONE to ztunnel; a waypoint's or an out-of-mesh pod is TCP.
            let hbone = w.is_waypoint.is_none() && w.dataplane() != DataPlane::None;
            vec![
                w.namespace.clone(),
                w.pod.clone(),
                w.ip.to_string(),
                nodes.0.get(w.node).cloned().unwrap_or_default(),
                waypoint,
                if hbone { "HBONE" } else { "TCP" }.to_string(),
            ]
        })
        .collect();
    rows.sort();
    t.rows = rows;
    t
}

/// `istioctl ztunnel-config services`: each service's VIP, waypoint and endpoints.
pub fn services(plan: &MeshPlan) -> Table {
    let mut t = Table::new(&[
        "NAMESPACE",
        "SERVICE NAME",
        "SERVICE VIP",
        "WAYPOINT",
        "ENDPOINTS",
    ]);
    let mut rows: Vec<Vec<String>> = plan
        .services
        .iter()
        .map(|s| {
            let n = s.endpoints.len();
            vec![
                s.namespace.clone(),
                s.name.clone(),
                s.vip.to_string(),
                s.waypoint.map_or_else(
                    || "None".to_string(),
                    |k| plan.waypoints[k].decl.name.clone(),
                ),
                // Every endpoint of a running cluster is up: healthy/total as istioctl counts.
                format!("{n}/{n}"),
            ]
        })
        .collect();
    rows.sort();
    t.rows = rows;
    t
}

/// `istioctl ztunnel-config policies`: the AuthorizationPolicies ztunnel receives (bound by
/// selector or namespace; a `targetRefs` one goes to waypoints only), with ztunnel's scope.
pub fn policies(plan: &MeshPlan) -> Table {
    let mut t = Table::new(&["NAMESPACE", "POLICY NAME", "ACTION", "SCOPE"]);
    let mut rows: Vec<Vec<String>> = plan
        .authz
        .iter()
        .filter(|p| p.spec.target_refs.is_empty() && p.spec.target_ref.is_none())
        .map(|p| {
            let ns = p.metadata.ns().to_string();
            let scope = if p.spec.selector.is_some() {
                "WorkloadSelector"
            } else if ns == "istio-system" {
                "Global"
            } else {
                "Namespace"
            };
            let action = match p.spec.action {
                Action::Allow => "Allow",
                Action::Deny => "Deny",
                Action::Audit => "Audit",
                Action::Custom => "Custom",
            };
            vec![ns, p.metadata.name.clone(), action.into(), scope.into()]
        })
        .collect();
    rows.sort();
    t.rows = rows;
    t
}

/// `istioctl ztunnel-config certificates`: the certificates a node's ztunnel holds, one per
/// identity of its ambient pods, leaf then root.
pub fn certificates(plan: &MeshPlan, nodes: &Nodes<'_>, node: Option<&str>) -> Table {
    let mut t = Table::new(&[
        "CERTIFICATE NAME",
        "TYPE",
        "STATUS",
        "VALID CERT",
        "SERIAL NUMBER",
        "NOT AFTER",
        "NOT BEFORE",
    ]);
    let mut seen = std::collections::BTreeSet::new();
    let root = X509Certificate::from_der(plan.ca.root_der())
        .ok()
        .map(|(_, c)| c);
    for w in plan.workloads.iter().filter(|w| {
        w.dataplane() == DataPlane::Ambient
            && node.is_none_or(|n| nodes.0.get(w.node).is_some_and(|x| x == n))
    }) {
        let name = w.identity.to_string();
        if !seen.insert(name.clone()) {
            continue;
        }
        let chain = w.cert.chain();
        let leaf = chain
            .first()
            .and_then(|d| X509Certificate::from_der(d).ok())
            .map(|(_, c)| c);
        for (kind, c) in [("Leaf", leaf.as_ref()), ("Root", root.as_ref())] {
            let Some(c) = c else { continue };
            let v = c.validity();
            t.rows.push(vec![
                name.clone(),
                kind.into(),
                // ztunnel's state for a certificate that ran out unrenewed
                // (istio/ztunnel src/identity/manager.rs, `CertState::Unavailable`).
                if v.is_valid() {
                    "Available"
                } else {
                    "Unavailable"
                }
                .into(),
                v.is_valid().to_string(),
                c.raw_serial_as_string().replace(':', ""),
                rfc3339(v.not_after.timestamp()),
                rfc3339(v.not_before.timestamp()),
            ]);
        }
    }
    t
}

fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `istioctl waypoint list -A`: the Gateways of class istio-waypoint, their traffic type and
/// whether they are programmed (running).
pub fn waypoint_list(plan: &MeshPlan) -> Table {
    let mut t = Table::new(&[
        "NAMESPACE",
        "NAME",
        "REVISION",
        "TRAFFIC TYPE",
        "PROGRAMMED",
    ]);
    for w in &plan.waypoints {
        t.rows.push(vec![
            w.decl.namespace.clone(),
            w.decl.name.clone(),
            "default".into(),
            traffic(w.decl.waypoint_for).into(),
            if w.deployed { "True" } else { "False" }.into(),
        ]);
    }
    t.rows.sort();
    t
}

/// `istioctl waypoint status -A`: each waypoint's Programmed condition.
pub fn waypoint_status(plan: &MeshPlan) -> Table {
    let mut t = Table::new(&["NAMESPACE", "NAME", "STATUS", "TYPE", "REASON", "MESSAGE"]);
    for w in &plan.waypoints {
        let (status, reason, message) = if w.deployed {
            (
                "True",
                "Programmed",
                format!(
                    "Resource programmed, assigned to service(s) {}",
                    served(plan, w)
                ),
            )
        } else {
            (
                "False",
                "Pending",
                "Waiting for a later migration stage to deploy it".to_string(),
            )
        };
        t.rows.push(vec![
            w.decl.namespace.clone(),
            w.decl.name.clone(),
            status.into(),
            "Programmed".into(),
            reason.into(),
            message,
        ]);
    }
    t.rows.sort();
    t
}

fn served(plan: &MeshPlan, w: &crate::mesh::control::WaypointInfo) -> String {
    let k = plan.waypoints.iter().position(|x| x.decl.pod == w.decl.pod);
    let names: Vec<String> = plan
        .services
        .iter()
        .filter(|s| s.waypoint.is_some() && s.waypoint == k)
        .map(|s| format!("{}.{}.svc.cluster.local", s.name, s.namespace))
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn traffic(f: WaypointFor) -> &'static str {
    match f {
        WaypointFor::Service => "service",
        WaypointFor::Workload => "workload",
        WaypointFor::All => "all",
        WaypointFor::None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns_as_tabwriter_does() {
        let mut t = Table::new(&["NAMESPACE", "POLICY NAME", "ACTION", "SCOPE"]);
        t.rows.push(vec![
            "default".into(),
            "allow-nothing".into(),
            "Allow".into(),
            "Namespace".into(),
        ]);
        t.rows.push(vec![
            "default".into(),
            "allow-waypoint".into(),
            "Allow".into(),
            "WorkloadSelector".into(),
        ]);
        // istioctl's testdata/policies.txt, the same rows.
        assert_eq!(
            t.render(),
            "NAMESPACE POLICY NAME    ACTION SCOPE\n\
             default   allow-nothing  Allow  Namespace\n\
             default   allow-waypoint Allow  WorkloadSelector\n"
        );
    }
}

//! A mode's structure: the paths each flow's requests take and what each proxy holds, from
//! the mesh's plan alone (the same scenario gives the same structure on any machine). The
//! paths come from `explain`'s prediction, which runs the proxies' own policy engine.

use std::collections::{BTreeMap, BTreeSet};

use results::run::{HopChecks, PathStructure, ProxyScope, Structure};
use scenario::{FlowProtocol, Loaded};

use crate::component::ComponentKind;
use crate::explain::{Ask, Path};
use crate::mesh::control::MeshPlan;

/// The structure of `plan` for the scenario's flows, with the scope of each running proxy
/// given as (component name, kind, its pod, its node).
pub fn of(
    loaded: &Loaded,
    plan: &MeshPlan,
    proxies: &[(String, ComponentKind, Option<usize>, Option<usize>)],
) -> Structure {
    let mut out = Structure::default();
    for f in &loaded.scenario.flows {
        let Some(paths) = flow_paths(loaded, plan, f) else {
            continue;
        };
        out.flows.insert(f.name.clone(), paths);
    }
    let endpoints = |svcs: &mut dyn Iterator<Item = &crate::mesh::control::ServiceInfo>| {
        svcs.map(|s| s.endpoints.len()).sum::<usize>()
    };
    for (name, kind, pod, node) in proxies {
        let scope = match kind {
            // Without a `Sidecar` resource a sidecar holds the whole mesh: every service and
            // endpoint (istio.io, "Sidecar" reference: by default every proxy can reach every
            // service).
            ComponentKind::Sidecar => ProxyScope {
                services: plan.services.len(),
                endpoints: endpoints(&mut plan.services.iter()),
                workloads: 0,
                policies: pod.map_or(0, |p| plan.workload_policies(p).len()),
            },
            // ztunnel subscribes to every workload and service of the mesh (WDS); it enforces
            // the policies of its node's pods.
            ComponentKind::Ztunnel => {
                let on_node: BTreeSet<String> = plan
                    .workloads
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| Some(w.node) == *node)
                    .flat_map(|(i, _)| plan.workload_policies(i))
                    .map(policy_key)
                    .collect();
                ProxyScope {
                    services: plan.services.len(),
                    endpoints: endpoints(&mut plan.services.iter()),
                    workloads: plan.workloads.len(),
                    policies: on_node.len(),
                }
            }
            // A waypoint holds the services and workloads it serves.
            ComponentKind::Waypoint => {
                let k = pod.and_then(|p| plan.workloads[p].is_waypoint);
                let served = || {
                    plan.services
                        .iter()
                        .filter(move |s| k.is_some() && s.waypoint == k)
                };
                ProxyScope {
                    services: served().count(),
                    endpoints: endpoints(&mut served()),
                    workloads: plan
                        .workloads
                        .iter()
                        .filter(|w| k.is_some() && w.waypoint == k)
                        .count(),
                    policies: k.map_or(0, |k| {
                        let mut all: BTreeSet<String> = plan
                            .waypoint_own_policies(k)
                            .into_iter()
                            .map(policy_key)
                            .collect();
                        for s in served() {
                            all.extend(plan.waypoint_policies(k, s).into_iter().map(policy_key));
                        }
                        all.len()
                    }),
                }
            }
            _ => continue,
        };
        out.proxies.insert(name.clone(), scope);
    }
    out
}

fn policy_key(p: &scenario::manifest::AuthorizationPolicy) -> String {
    let ns = p.metadata.namespace.as_deref().unwrap_or("default");
    format!("{ns}/{}", p.metadata.name)
}

/// A flow's request as `explain` takes it, from the flow's client pod.
fn flow_paths(loaded: &Loaded, plan: &MeshPlan, f: &scenario::Flow) -> Option<Vec<PathStructure>> {
    let from = loaded
        .scenario
        .workloads
        .iter()
        .find(|w| w.name == f.from)?;
    let pod = plan
        .workloads
        .iter()
        .find(|w| w.workload == from.name && w.namespace == from.namespace)?;
    let (svc, ns, port) = f.target()?;
    let ns = ns.unwrap_or(&from.namespace);
    let url = match f.protocol {
        FlowProtocol::Http1 => format!("http://{svc}.{ns}:{port}{}", f.path),
        FlowProtocol::TcpRr | FlowProtocol::TcpStream => format!("tcp://{svc}.{ns}:{port}"),
    };
    let ask = Ask {
        from: pod.pod.clone(),
        method: f.method.clone(),
        url,
        headers: f
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let (paths, _) = crate::explain::predict(plan, &ask).ok()?;
    let mut by_shape: BTreeMap<PathStructure, usize> = BTreeMap::new();
    for p in &paths {
        *by_shape.entry(shape(plan, p)).or_default() += 1;
    }
    Some(
        by_shape
            .into_iter()
            .map(|(mut s, n)| {
                s.endpoints = n;
                s
            })
            .collect(),
    )
}

/// A path with its endpoint pod named by its workload, so replicas' paths read the same.
fn shape(plan: &MeshPlan, p: &Path) -> PathStructure {
    let workload = plan
        .workloads
        .iter()
        .find(|w| w.pod == p.endpoint)
        .map_or(p.endpoint.as_str(), |w| w.workload.as_str());
    let name = |s: &str| {
        s.split(' ')
            .map(|t| if t == p.endpoint { workload } else { t })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let route: Vec<String> = p.route.iter().map(|r| name(r)).collect();
    let is_proxy = |r: &&String| {
        r.starts_with("sidecar ") || r.starts_with("ztunnel ") || r.starts_with("waypoint ")
    };
    PathStructure {
        hops: route.iter().filter(is_proxy).count(),
        checks: p
            .hops
            .iter()
            .map(|h| HopChecks {
                proxy: name(&h.proxy),
                policies: h.policies.len(),
                rules: h.policies.iter().map(|v| v.rules.len()).sum(),
            })
            .collect(),
        outcome: p.outcome.clone(),
        endpoints: 0,
        route,
    }
}

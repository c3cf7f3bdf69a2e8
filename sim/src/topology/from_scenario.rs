//! A validated scenario → the cluster to build. Placement: a workload's replicas go to its
//! nodes in turn (all nodes when it names none), so `echo` ×2 on `[node-2]` puts both on
//! node-2 and a workload without `nodes` spreads like a default scheduler would.

use std::collections::BTreeMap;

use scenario::{App, Loaded, PortProtocol};

use crate::apps::{AppSpec, HttpEchoSpec};
use crate::topology::{ClusterSpec, NodeSpec, PodSpec, ServicePortSpec, ServiceSpec};

/// The nodes, pods and services of a scenario (apps and services only; the mesh's own pods,
/// such as waypoints, are added by the mode that needs them).
pub fn cluster_spec(loaded: &Loaded) -> ClusterSpec {
    let s = &loaded.scenario;
    let nodes: Vec<NodeSpec> = s
        .nodes
        .iter()
        .map(|n| NodeSpec {
            name: n.name.clone(),
        })
        .collect();
    let node_index: BTreeMap<&str, usize> = s
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut pods = Vec::new();
    let mut first_pod: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for w in &s.workloads {
        let placement: Vec<usize> = if w.nodes.is_empty() {
            (0..nodes.len()).collect()
        } else {
            w.nodes
                .iter()
                .filter_map(|n| node_index.get(n.as_str()).copied())
                .collect()
        };
        let mut labels = w.labels.clone();
        labels.insert("app".into(), w.name.clone());
        let app = match &w.app {
            None => AppSpec::None,
            Some(App::Http(h)) => AppSpec::Http(HttpEchoSpec {
                port: h.port,
                response_bytes: h.response_bytes.0,
                status: h.status,
                service_time: h.service_time.0,
            }),
            Some(App::TcpEcho(t)) => AppSpec::TcpEcho { port: t.port },
            Some(App::TcpSink(t)) => AppSpec::TcpSink { port: t.port },
        };
        first_pod.insert(&w.name, (pods.len(), w.replicas as usize));
        for r in 0..w.replicas as usize {
            pods.push(PodSpec {
                name: format!("{}-{r}", w.name),
                workload: w.name.clone(),
                namespace: w.namespace.clone(),
                service_account: w.service_account().to_string(),
                node: placement[r % placement.len().max(1)],
                labels: labels.clone(),
                app: app.clone(),
            });
        }
    }
    let services = s
        .services
        .iter()
        .map(|svc| {
            let (first, n) = first_pod
                .get(svc.workload.as_str())
                .copied()
                .unwrap_or((0, 0));
            let is_http = s
                .workloads
                .iter()
                .find(|w| w.name == svc.workload)
                .is_some_and(|w| matches!(w.app, Some(App::Http(_))));
            ServiceSpec {
                name: svc.name.clone(),
                namespace: svc.namespace.clone(),
                ports: svc
                    .ports
                    .iter()
                    .map(|p| ServicePortSpec {
                        port: p.port,
                        target_port: p.target_port.unwrap_or(p.port),
                        protocol: match p.protocol {
                            Some(PortProtocol::Http) => "http",
                            Some(PortProtocol::Tcp) => "tcp",
                            None if is_http => "http",
                            None => "tcp",
                        }
                        .to_string(),
                    })
                    .collect(),
                endpoints: (first..first + n).collect(),
            }
        })
        .collect();
    ClusterSpec {
        name: s.name.clone(),
        nodes,
        pods,
        services,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quickstart_places_client_and_echo_on_different_nodes() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/quickstart.yaml");
        let l = scenario::load(&path).expect("the bundled quickstart loads");
        let spec = cluster_spec(&l);
        let names: Vec<_> = spec
            .pods
            .iter()
            .map(|p| (p.name.as_str(), p.node))
            .collect();
        assert_eq!(names, [("client-0", 0), ("echo-0", 1), ("echo-1", 1)]);
        assert_eq!(spec.services[0].endpoints, [1, 2]);
        assert_eq!(spec.services[0].ports[0].protocol, "http");
    }
}

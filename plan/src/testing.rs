//! Inventories made to measure, for tests and benches (feature `testing`).

use crate::inventory::{Inventory, Namespace, NodePool, Service, Traffic, Workload};
use scenario::units::Size;

/// A cluster of `nodes` nodes, `namespaces` ambient-labelled namespaces, and `services`
/// services each backed by one workload, with `pods` pods in all; each service calls the next
/// one in its namespace at 100 rps.
pub fn synthetic(nodes: u32, namespaces: usize, services: usize, pods: u32) -> Inventory {
    let per = (pods / services.max(1) as u32).max(1);
    let ns_name = |i: usize| format!("ns-{i}");
    let mut inv = Inventory {
        version: 1,
        name: format!("synthetic-{pods}"),
        description: String::new(),
        nodes: vec![NodePool {
            pool: "node".into(),
            count: nodes,
            cpu: Some(16.0),
            memory: None,
        }],
        namespaces: (0..namespaces)
            .map(|i| Namespace {
                name: ns_name(i),
                labels: [("istio.io/dataplane-mode".to_string(), "ambient".to_string())]
                    .into_iter()
                    .collect(),
                sidecar_egress_hosts: None,
            })
            .collect(),
        workloads: Vec::new(),
        services: Vec::new(),
        waypoints: Vec::new(),
        traffic: Vec::new(),
        migration: None,
    };
    for s in 0..services {
        let ns = ns_name(s % namespaces.max(1));
        let name = format!("svc-{s}");
        inv.workloads.push(Workload {
            name: name.clone(),
            namespace: ns.clone(),
            kind: None,
            replicas: per,
            service_account: None,
            labels: Default::default(),
            pools: Vec::new(),
        });
        inv.services.push(Service {
            name: name.clone(),
            namespace: ns.clone(),
            selector: None,
            workload: Some(name.clone()),
            ports: vec![8080],
            labels: Default::default(),
        });
        let next = s + namespaces.max(1);
        if next < services {
            inv.traffic.push(Traffic {
                from: Some(format!("{ns}/{name}")),
                to: format!("{ns}/svc-{next}"),
                rps: 100.0,
                peak_rps: Some(300.0),
                request_size: Size(1024),
                response_size: Size(1024),
                requests_per_connection: 100.0,
                connections: None,
            });
        }
    }
    inv
}

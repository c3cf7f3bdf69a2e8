//! What to build: the resolved, validated shape of a cluster. Produced from a scenario by
//! `Scenario::cluster_spec`; everything here is already checked, so building never has to
//! report a user error about it.

use std::collections::BTreeMap;

use crate::apps::AppSpec;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterSpec {
    /// Scenario name; the default cluster name for `exec --cluster`.
    pub name: String,
    pub nodes: Vec<NodeSpec>,
    /// Pods in a stable order (by workload in scenario order, then replica index).
    pub pods: Vec<PodSpec>,
    pub services: Vec<ServiceSpec>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeSpec {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PodSpec {
    /// `<workload>-<index>`, e.g. `client-0`. Unique in the cluster.
    pub name: String,
    pub workload: String,
    pub namespace: String,
    pub service_account: String,
    /// Index into `ClusterSpec::nodes`.
    pub node: usize,
    pub labels: BTreeMap<String, String>,
    pub app: AppSpec,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceSpec {
    pub name: String,
    pub namespace: String,
    pub ports: Vec<ServicePortSpec>,
    /// Indices into `ClusterSpec::pods` of the endpoints, in pod order.
    pub endpoints: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServicePortSpec {
    pub port: u16,
    pub target_port: u16,
    /// `http` or `tcp` (Istio's protocol selection: what the proxies may parse).
    pub protocol: String,
}

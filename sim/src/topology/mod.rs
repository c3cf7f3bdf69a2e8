//! The cluster's shape and how it is built.
//!
//! - [`spec`]: what to build (nodes, pods, services), resolved from a scenario
//! - addresses: deterministic addressing (node n, pod p → 10.n.p-style)
//! - build: creating the namespaces, links, routes and rules

pub mod spec;

pub use spec::{ClusterSpec, NodeSpec, PodSpec, ServicePortSpec, ServiceSpec};

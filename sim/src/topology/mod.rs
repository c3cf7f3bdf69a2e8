//! The cluster's shape and how it is built.
//!
//! - [`spec`]: what to build (nodes, pods, services), resolved from a scenario
//! - [`from_scenario`]: a loaded scenario → the [`ClusterSpec`] to build
//! - [`addr`]: deterministic addressing (node n, pod p → 10.n.p-style)
//! - [`build`]: creating the namespaces, links, routes, service DNAT and hosts files

pub mod addr;
pub mod build;
pub mod from_scenario;
pub mod spec;

pub use build::{BuildOptions, Node, Pod, Service, Topology, TopologyError, build};
pub use from_scenario::cluster_spec;
pub use spec::{ClusterSpec, NodeSpec, PodSpec, ServicePortSpec, ServiceSpec};

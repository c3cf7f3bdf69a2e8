//! The proxy models and what they share.
//!
//! - [`sidecar`], [`ztunnel`], [`waypoint`]: the three proxy models
//! - [`http`]: what the L7 proxies share (hyper serving, local replies, JWT, telemetry)
//! - [`connpool`]: Envoy's HTTP/1.1 upstream pool with a DestinationRule's circuit breakers
//! - [`cost`]: cost floors burned as real CPU; charged splicing
//! - [`ext_authz`]: the HTTP ext_authz check of CUSTOM AuthorizationPolicies
//! - [`access_log`]: ztunnel's "connection complete" lines and Envoy's text access log
//! - [`admin`]: the 15020/15021 admin ports and the merged metrics endpoint
//! - [`capture`]: the in-pod nftables capture rules (15001 outbound, 15006 inbound)
//! - [`sock`]: marked sockets, sockets made inside a pod's namespace, `SO_ORIGINAL_DST`
//! - [`telemetry`]: Istio's standard metrics and their Prometheus text
//!
//! Each proxy holds its configuration in a [`Live`](crate::mesh::control::Live) cell and
//! takes a new mesh plan while it runs ([`Reconfigure`]), as a migration stage changes it.

pub mod access_log;
pub mod admin;
pub mod capture;
pub mod connpool;
pub mod cost;
pub mod ext_authz;
pub mod http;
pub mod sidecar;
pub mod sock;
pub mod telemetry;
pub mod waypoint;
pub mod ztunnel;

use std::sync::Arc;

use crate::mesh::control::MeshPlan;

/// A running proxy that takes a new mesh plan without restarting (istiod's push): new
/// connections and requests use it, those in flight finish on the one they started with.
pub trait Reconfigure: Send + Sync {
    fn reconfigure(&self, plan: &Arc<MeshPlan>);
}

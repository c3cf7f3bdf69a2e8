//! The proxy models and what they share.
//!
//! - [`sidecar`], [`ztunnel`], [`waypoint`]: the three proxy models
//! - [`http`]: what the L7 proxies share (hyper serving, upstream pools, local replies, JWT)
//! - [`cost`]: cost floors burned as real CPU; charged splicing
//! - [`ext_authz`]: the HTTP ext_authz check of CUSTOM AuthorizationPolicies
//! - [`admin`]: the 15020/15021 admin ports and the merged metrics endpoint
//! - [`capture`]: the in-pod nftables capture rules (15001 outbound, 15006 inbound)
//! - [`sock`]: marked sockets, sockets made inside a pod's namespace, `SO_ORIGINAL_DST`
//! - [`telemetry`]: Istio's standard metrics and their Prometheus text

pub mod admin;
pub mod capture;
pub mod cost;
pub mod ext_authz;
pub mod http;
pub mod sidecar;
pub mod sock;
pub mod telemetry;
pub mod waypoint;
pub mod ztunnel;

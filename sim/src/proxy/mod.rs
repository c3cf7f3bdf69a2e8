//! The proxy models and what they share.
//!
//! - [`capture`]: the in-pod nftables capture rules (15001 outbound, 15006 inbound)
//! - [`sock`]: marked sockets, sockets made inside a pod's namespace, `SO_ORIGINAL_DST`
//! - [`jwt`]: JWT validation against a JWKS (RequestAuthentication)
//! - [`telemetry`]: Istio's standard metrics and their Prometheus text

pub mod capture;
pub mod jwt;
pub mod sock;
pub mod telemetry;

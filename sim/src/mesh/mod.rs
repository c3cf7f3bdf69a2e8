//! Mesh security and transport: the building blocks the sidecar, ztunnel and waypoint
//! models share.
//!
//! Map:
//! - [`identity`]: SPIFFE workload identities (`spiffe://cluster.local/ns/N/sa/S`) and the
//!   AuthorizationPolicy principal form
//! - [`ca`]: the mesh CA (istiod's role), issuing workload certificates
//! - [`rotation`]: renewal of workload certificates at half-life, failing while istiod is down
//! - [`tls`]: TLS 1.3 mTLS configs that authenticate peers by SPIFFE URI SAN; plain mTLS
//!   `accept`/`connect` for the sidecar model
//! - [`policy`]: AuthorizationPolicy evaluation (L4 at ztunnel, L7 at sidecars and waypoints),
//!   and which policies select or target a workload, service or gateway
//! - [`control`]: the control plane (istiod's model): certificates and what each proxy knows
//! - [`decisions`]: which policy decided each connection or request (for `meshsim reach`)
//! - [`hbone`]: HTTP/2 CONNECT tunnels over mTLS (port 15008): the server, the pooled
//!   client, the tunnel stream, and the `forwarded`/`baggage` headers
//!
//! Typical use: one [`Ca`] per cluster; [`Ca::issue`] a [`WorkloadCert`] per service account;
//! a proxy serving 15008 builds [`tls::server_config`] with ALPN [`hbone::ALPN_H2`] and
//! runs [`hbone::serve_listener`]; a proxy sending opens tunnels with [`HbonePool::connect`].

pub mod ca;
pub mod control;
pub mod decisions;
pub mod hbone;
pub mod identity;
pub mod policy;
pub mod rotation;
pub mod tls;

pub use ca::{Ca, CaError, Issued, WORKLOAD_CERT_TTL, WorkloadCert};
pub use hbone::{ConnectRequest, H2Stream, HboneAccept, HboneError, HbonePool, Transferred};
pub use identity::{Identity, IdentityError};
pub use tls::TlsError;

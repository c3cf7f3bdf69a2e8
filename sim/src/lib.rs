//! meshsim's simulation crate.
//!
//! Map of the modules:
//! - [`scenario`]: the scenario format v1 (YAML), units, loading with file:line:column errors,
//!   validation, the JSON Schema, and the conversion into a [`topology::ClusterSpec`]
//! - [`manifest`]: the Istio / Gateway API kinds meshsim models (Namespace, Gateway, policies)
//! - [`sandbox`]: the private mount (+ user) namespace every cluster lives in
//! - [`netns`]: creating, entering and naming network namespaces
//! - [`topology`]: the cluster's shape (nodes, pods, services, addresses) and building it
//! - [`nft`]: nftables rule sets (service DNAT) applied inside a namespace
//! - [`component`]: a component instance (app replica, proxy, load client) on its own threads
//! - [`meter`]: CPU and heap per component, sampled into time series; the saturation guard
//! - [`hostprobe`]: how fast the host runs loopback round trips, measured before each mode
//! - [`cgroup`]: CPU quotas (`resources.limits.cpu`) with cgroups, when root
//! - [`profile`]: cost profiles (per-proxy cost floors from published Istio figures)
//! - [`mesh`]: mesh security and transport: SPIFFE identities, the CA, mTLS, HBONE tunnels
//! - [`proxy`]: the proxy models (sidecar, ztunnel, waypoint), capture, telemetry, cost profiles
//! - [`apps`]: the HTTP/1.1 echo, TCP echo and TCP sink servers
//! - [`cluster`]: a running cluster: bring-up, the control socket, and `exec` into its pods
//! - [`runner`]: `meshsim run`: every mode in turn (interleaved repeats), a metered load client
//!   per flow in its source pod, meter series, stop on request keeping what was measured

pub mod apps;
pub mod cgroup;
pub mod cluster;
pub mod component;
pub mod hostprobe;
pub mod manifest;
pub mod mesh;
pub mod meter;
pub mod netns;
pub mod nft;
pub mod profile;
pub mod proxy;
pub mod runner;
pub mod sandbox;
pub mod scenario;
pub mod topology;

#[cfg(feature = "testing")]
pub mod testing;

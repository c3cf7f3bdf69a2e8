//! meshsim's simulation crate. What a user writes (scenario, manifests, profiles) is the
//! `meshsim-scenario` crate's; this one builds and runs it.
//!
//! Map of the modules:
//! - [`sandbox`]: the private mount (+ user) namespace every cluster lives in
//! - [`netns`]: creating, entering and naming network namespaces
//! - [`topology`]: the cluster's shape (nodes, pods, services, addresses) and building it
//! - [`nft`]: nftables rule sets (service DNAT) applied inside a namespace
//! - [`wire`]: a link fault's delay, jitter and bandwidth cap, through TUN devices (no netem)
//! - [`netpol`]: NetworkPolicy and Cilium's L3/L4 policies enforced on the nodes, as a CNI does
//! - [`accept`]: accept loops that log, count and wait out errors instead of ending or spinning
//! - [`os`]: thread and process CPU clocks, thread ids, jemalloc heap statistics (a leaf)
//! - [`component`]: a component instance (app replica, proxy, load client) on its own threads
//! - [`meter`]: CPU and heap per component, sampled into time series; the saturation guard
//! - [`hostprobe`]: how fast the host runs loopback round trips, measured before each mode
//! - [`explain`]: `meshsim explain`, a request's path and every hop's checks, predicted with
//!   the proxies' own code and compared with the real outcome
//! - [`structure`]: each flow's path and each proxy's configuration scope, for exact comparison
//! - [`introspect`]: `istioctl`'s ztunnel-config and waypoint tables of a running cluster
//! - [`monitor`]: the user's alert rules and dashboards evaluated by a real Prometheus
//! - [`check`]: `meshsim check`, the static migration checklist (no cluster)
//! - [`cgroup`]: CPU quotas (`resources.limits.cpu`) with cgroups, when root
//! - [`mesh`]: mesh security and transport: SPIFFE identities, the CA, mTLS, HBONE tunnels
//! - [`proxy`]: the proxy models (sidecar, ztunnel, waypoint), capture, telemetry, cost profiles
//! - [`apps`]: the HTTP/1.1 echo, TCP echo and TCP sink servers
//! - [`cluster`]: a running cluster: bring-up, the control socket, and `exec` into its pods
//! - [`reach`]: `meshsim reach`, the reachability matrix probed for real, and its diff
//! - [`runner`]: `meshsim run`: every mode in turn (interleaved repeats), a metered load client
//!   per flow in its source pod, meter series, stop on request keeping what was measured

pub mod accept;
pub mod apps;
pub mod cgroup;
pub mod check;
pub mod cluster;
pub mod component;
pub mod explain;
pub mod hostprobe;
pub mod introspect;
pub mod mesh;
pub mod meter;
pub mod monitor;
pub mod netns;
pub mod netpol;
pub mod nft;
pub mod os;
pub mod proxy;
pub mod reach;
pub mod runner;
pub mod sandbox;
pub mod structure;
pub mod topology;
pub mod wire;

#[cfg(feature = "testing")]
pub mod testing;

//! What a meshsim user writes, parsed and checked: the scenario format, the Istio manifests it
//! includes, cost profiles and JWKS documents. A leaf: no sockets, namespaces or threads, so
//! everything that reads a scenario (the simulator, reports, `validate`, future exporters)
//! shares these types without pulling the simulator in.
//!
//! Map of the modules:
//! - [`units`]: durations, sizes, fractions and rates as people write them
//! - [`yaml`]: YAML with places: field paths ↔ line and column, multi-document files
//! - [`format`]: the scenario format v1 (types, defaults, the JSON Schema)
//! - [`enrollment`]: which data plane each pod gets from its labels, as Istio decides it
//! - [`meta`]: the metadata every Kubernetes object carries
//! - [`manifest`]: the Istio / Gateway API kinds meshsim models (Namespace, Gateway, policies)
//! - [`destrule`]: DestinationRule: which rule a proxy applies, and its connection pool limits
//! - [`netpol`]: Kubernetes NetworkPolicy and Cilium's L3/L4 policies, in one enforceable form
//! - [`monitoring`]: the user's alert rules and Grafana dashboards, their PromQL parsed
//! - [`profile`]: cost profiles (per-proxy cost floors from published Istio figures)
//! - [`costmodel`]: the capacity plan's cost model in a profile, each parameter sourced
//! - [`jwt`]: JWKS documents and JWT verification (RequestAuthentication), minting for tests
//! - [`loaded`]: a scenario with everything it names read in ([`Loaded`])
//! - [`load`]: reading a scenario file and its manifests, with file:line:column errors
//! - [`validate`]: the checks after parsing (references, ranges, what can be built)
//! - [`unmodelled`]: warnings for manifest objects and fields a run does not reflect

pub mod costmodel;
pub mod destrule;
pub mod enrollment;
pub mod format;
pub mod jwt;
pub mod load;
pub mod loaded;
pub mod manifest;
pub mod meta;
pub mod monitoring;
pub mod netpol;
pub mod profile;
pub mod units;
pub mod unmodelled;
pub mod validate;
pub mod yaml;

pub use enrollment::{DataPlane, Enrollment};
pub use format::*;
pub use load::{ScenarioError, json_schema, load, load_str};
pub use loaded::{Loaded, LoadedManifest, Resolved, ResolvedManifest};
pub use units::{Dur, Fraction, Rate, Size};
pub use yaml::Diagnostic;

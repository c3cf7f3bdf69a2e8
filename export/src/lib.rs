//! meshsim beyond one machine: a scenario as the plain Kubernetes objects that run it on a
//! real cluster with Istio, built from the `k8s-openapi` types so each is well-formed by
//! construction. Map:
//!
//! - [`k8s`]: the objects of one mode — Namespaces with its enrollment labels,
//!   ServiceAccounts, a Deployment per workload running `meshsim serve`, Services, the
//!   scenario's Istio manifests unchanged, the mode's waypoints, and a load Job per flow
//!   running `meshsim load` — with the `kustomization.yaml`s that apply them.

pub mod k8s;

pub use k8s::{Bundle, ExportError, export};

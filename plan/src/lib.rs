//! meshsim's capacity plans: what sidecars, ztunnels, waypoints and istiod would cost on a real
//! cluster, projected from an inventory of it with a cost model whose every parameter names
//! its source. Pure computation: no namespace, socket or thread. Map:
//!
//! - [`calibrate`]: a cost model from the user's own cluster (Prometheus), by regression
//!   across its proxies.
//! - [`downscale`]: a one-machine scenario of an inventory's busiest paths, to check a plan
//!   by a run.
//! - [`fit`]: a cost model's CPU fitted to a run's rate steps, with confidence bands.
//! - [`import`]: an inventory from `kubectl get ns,pods,svc -A -o json`, Istio YAML and a
//!   Prometheus traffic query.
//! - [`inventory`]: the cluster as its team knows it (node pools, namespaces and labels,
//!   workloads, services, waypoints, traffic), read from YAML with placed errors.
//! - [`project`]: pods placed on nodes, traffic spread over pods, each proxy's cost per mode,
//!   node and namespace, ztunnel's DaemonSet request and waypoint replicas; every figure a
//!   low/mid/high [`project::Band`].
//! - [`render`]: the plan as `plan.json`, `plan.md` and `plan.html`.
//! - `testing` (feature): inventories made to measure, for tests and benches.

pub mod calibrate;
pub mod downscale;
pub mod fit;
pub mod import;
pub mod inventory;
pub mod project;
pub mod render;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::PathBuf;

use scenario::costmodel::CostModel;
use scenario::yaml::Diagnostic;
use serde::{Deserialize, Serialize};

pub use inventory::Inventory;
pub use project::{ModePlan, PlanMode};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    #[error("{path}: {message}")]
    Import { path: PathBuf, message: String },
    #[error(
        "cost profile `{0}` has no cost model (`model:`) to plan with; use `istio-1.24`, or a profile file of your own with a `model:` section"
    )]
    NoModel(String),
}

/// A plan: the inventory's figures per mode, with the model and its sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub inventory: String,
    /// Where the costs come from (a profile's name, or a run it was fitted from).
    pub costs: String,
    pub nodes: usize,
    pub pods: usize,
    pub services: usize,
    pub meshed_namespaces: Vec<String>,
    pub model: CostModel,
    pub modes: Vec<ModePlan>,
}

/// Projects `inv` in each of `modes` with `model`.
pub fn plan(inv: &Inventory, model: &CostModel, costs: &str, modes: &[PlanMode]) -> Plan {
    let r = project::Resolved::new(inv);
    Plan {
        inventory: inv.name.clone(),
        costs: costs.to_string(),
        nodes: r.nodes.len(),
        pods: r.pods(),
        services: inv.services.len(),
        meshed_namespaces: r.meshed_namespaces().iter().cloned().collect(),
        model: model.clone(),
        modes: modes
            .iter()
            .map(|&m| r.project(model, m))
            .chain(stages(inv, model, modes))
            .collect(),
    }
}

/// With `declared` asked for, the declared data plane after each of the inventory's
/// migration stages.
fn stages<'a>(
    inv: &'a Inventory,
    model: &'a CostModel,
    modes: &[PlanMode],
) -> impl Iterator<Item = ModePlan> + 'a {
    let stages = match (&inv.migration, modes.contains(&PlanMode::Declared)) {
        (Some(m), true) => &m.stages[..],
        _ => &[],
    };
    stages.iter().enumerate().map(move |(k, st)| {
        let staged = inv.at_stage(k);
        let mut mp = project::Resolved::new(&staged).project(model, PlanMode::Declared);
        mp.stage = Some(st.name.clone());
        mp
    })
}

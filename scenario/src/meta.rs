//! The metadata every Kubernetes object carries, shared by the kinds meshsim reads, and what
//! Istio's kinds share beside it (workload selectors, the root namespace).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    // Fields a manifest exported from a live cluster carries; read and not used.
    #[serde(default, skip_serializing)]
    pub uid: Option<String>,
    #[serde(default, skip_serializing)]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing)]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing)]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing)]
    pub managed_fields: Option<serde_json::Value>,
}

impl ObjectMeta {
    /// The object's namespace; `default` when the manifest leaves it out, as `kubectl apply`
    /// does with the default context.
    pub fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

/// Istio's root namespace: policies here apply to the whole mesh.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// Which pods an Istio object selects (`selector` / `workloadSelector`): every label given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

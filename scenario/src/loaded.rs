//! A scenario read from disk, with the manifests and JWKS files it names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::format::Scenario;
use crate::manifest::{Ignored, Located, Object};
use crate::yaml::LocIndex;

/// A scenario read from disk with everything it refers to.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub scenario: Scenario,
    /// The manifests, in the order the scenario lists them.
    pub manifests: Vec<LoadedManifest>,
    /// JWKS documents by `jwksUri` (from the scenario's `jwks:` map).
    pub jwks: BTreeMap<String, String>,
    /// Kinds read and not modeled, to tell the user.
    pub ignored: Vec<Ignored>,
    pub(crate) index: Arc<LocIndex>,
}

#[derive(Debug, Clone)]
pub struct LoadedManifest {
    pub path: PathBuf,
    pub objects: Vec<Located>,
}

/// A scenario as a run ran it: defaults filled in, with the manifest objects it applied and
/// the ones it ignored. Written into every result, so a run says exactly what it measured and
/// a resumed run can check it is finishing the same scenario.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolved {
    pub scenario: Scenario,
    pub manifests: Vec<ResolvedManifest>,
    #[serde(default)]
    pub ignored: Vec<Ignored>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolvedManifest {
    pub path: String,
    /// The objects as meshsim read them (its own types, serialized).
    pub objects: Vec<serde_json::Value>,
}

impl Loaded {
    /// The cost profile the scenario names; a file is taken relative to the scenario file.
    pub fn profile(&self) -> Result<crate::profile::Profile, crate::profile::ProfileError> {
        let base = self.path.parent().unwrap_or(std::path::Path::new("."));
        crate::profile::Profile::load_relative(&self.scenario.profile, base)
    }

    /// Every modeled manifest object, in file order.
    pub fn objects(&self) -> impl Iterator<Item = &Located> {
        self.manifests.iter().flat_map(|m| m.objects.iter())
    }

    /// The resolved scenario and manifests, as written into every result.
    pub fn resolved(&self) -> Resolved {
        Resolved {
            scenario: self.scenario.clone(),
            manifests: self
                .manifests
                .iter()
                .map(|m| ResolvedManifest {
                    path: m.path.display().to_string(),
                    objects: m.objects.iter().map(|o| o.object.to_json()).collect(),
                })
                .collect(),
            ignored: self.ignored.clone(),
        }
    }

    /// [`Loaded::resolved`] as JSON.
    pub fn resolved_json(&self) -> serde_json::Value {
        serde_json::to_value(self.resolved()).unwrap_or_default()
    }

    /// Labels of a namespace: the scenario's, then a manifest `Namespace` of the same name.
    pub fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .scenario
            .namespaces
            .iter()
            .find(|n| n.name == ns)
            .map(|n| n.labels.clone())
            .unwrap_or_default();
        for o in self.objects() {
            if let Object::Namespace(n) = &o.object
                && n.metadata.name == ns
            {
                labels.extend(n.metadata.labels.clone());
            }
        }
        labels
    }

    /// Namespaces the cluster has: `default`, the scenario's, and manifest `Namespace`s.
    pub fn namespace_names(&self) -> Vec<String> {
        let mut names = vec!["default".to_string()];
        names.extend(self.scenario.namespaces.iter().map(|n| n.name.clone()));
        for o in self.objects() {
            if let Object::Namespace(n) = &o.object {
                names.push(n.metadata.name.clone());
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }
}

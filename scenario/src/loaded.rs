//! A scenario read from disk, with the manifests and JWKS files it names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::enrollment::{ENROLLMENT_LABELS, Enrollment, enroll};
use crate::format::{Mode, Scenario};
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
    /// The manifests each migration stage applies (`migration.stages[i].apply`), read and
    /// parsed at load like the scenario's own.
    pub stage_manifests: Vec<Vec<LoadedManifest>>,
    /// Every file read, by its path as the scenario names it (the scenario file by its name):
    /// what `meshsim replay` writes back to run it again.
    pub sources: BTreeMap<String, String>,
    /// The expressions of `monitoring.rules` and `monitoring.dashboards`, parsed.
    pub monitoring: Vec<crate::monitoring::Query>,
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
    /// The text of every file the scenario was read from (the scenario itself, manifests,
    /// JWKS, a profile file), by the path the scenario names it by: `meshsim replay` runs it
    /// again from these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, String>,
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

    /// Where a field of the scenario file is (`migration.stages[0].relabel[1]`), as line and
    /// column: for errors another tool finds in what the scenario says.
    pub fn locate(&self, path: &str) -> crate::yaml::Loc {
        self.index.value_loc(path)
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
            sources: self.sources.clone(),
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

impl Loaded {
    /// The scenario as it stands after migration stage `stage` (0-based), every stage before
    /// it applied in order: labels changed, manifests applied, objects removed. `None`: the
    /// scenario as written.
    pub fn at_stage(&self, stage: Option<usize>) -> Loaded {
        let mut l = self.clone();
        let Some(last) = stage else {
            return l;
        };
        let stages = self
            .scenario
            .migration
            .as_ref()
            .map(|m| m.stages.clone())
            .unwrap_or_default();
        for (i, st) in stages.iter().enumerate().take(last + 1) {
            let had_sidecar: Vec<bool> = l
                .scenario
                .workloads
                .iter()
                .map(|w| {
                    crate::enrollment::enroll(&l.namespace_labels(&w.namespace), &w.labels)
                        .dataplane
                        == crate::enrollment::DataPlane::Sidecar
                })
                .collect();
            for r in &st.relabel {
                apply_labels(&mut l, r);
            }
            // A sidecar comes or goes only with a restart.
            for (w, had) in l.scenario.workloads.iter_mut().zip(had_sidecar) {
                if st.restarts(w) {
                    w.labels.remove(crate::enrollment::SIDECAR_AT_START);
                } else {
                    w.labels.insert(
                        crate::enrollment::SIDECAR_AT_START.to_string(),
                        had.to_string(),
                    );
                }
            }
            // `remove` takes what was there before the stage; `apply` then works as `kubectl
            // apply`: an object of the same kind, namespace and name is replaced.
            let applied = self.stage_manifests.get(i).cloned().unwrap_or_default();
            let mut gone: Vec<String> = st.remove.clone();
            gone.extend(
                applied
                    .iter()
                    .flat_map(|m| m.objects.iter().map(|o| object_key(&o.object))),
            );
            for m in &mut l.manifests {
                m.objects.retain(|o| !gone.contains(&object_key(&o.object)));
            }
            l.manifests.extend(applied);
        }
        l
    }
}

/// `Kind/namespace/name` of an object, as `migration.stages[].remove` names it.
pub fn object_key(o: &Object) -> String {
    format!("{}/{}/{}", o.kind(), o.meta().ns(), o.meta().name)
}

fn set(labels: &mut BTreeMap<String, String>, changes: &BTreeMap<String, Option<String>>) {
    for (k, v) in changes {
        match v {
            Some(v) => {
                labels.insert(k.clone(), v.clone());
            }
            None => {
                labels.remove(k);
            }
        }
    }
}

fn apply_labels(l: &mut Loaded, r: &crate::format::Relabel) {
    if let Some(ns) = &r.namespace {
        // The namespace's labels live in the scenario, or in a Namespace manifest: change both
        // so the merged view (`namespace_labels`) says what the stage says.
        let s = &mut l.scenario;
        match s.namespaces.iter_mut().find(|n| &n.name == ns) {
            Some(n) => set(&mut n.labels, &r.labels),
            None => {
                let mut labels = BTreeMap::new();
                set(&mut labels, &r.labels);
                s.namespaces.push(crate::format::NamespaceDef {
                    name: ns.clone(),
                    labels,
                });
            }
        }
        for m in &mut l.manifests {
            for o in &mut m.objects {
                if let Object::Namespace(n) = &mut o.object
                    && &n.metadata.name == ns
                {
                    set(&mut n.metadata.labels, &r.labels);
                }
            }
        }
    }
    if let Some(w) = &r.workload
        && let Some(w) = l.scenario.workloads.iter_mut().find(|x| &x.name == w)
    {
        set(&mut w.labels, &r.labels);
    }
}

// Enrollment as the scenario declares it (the rules are in `enrollment`).
impl Loaded {
    /// Whether the scenario or its manifests write any enrollment label (on a namespace or a
    /// workload): then `declared` is its default mode.
    pub fn declares_enrollment(&self) -> bool {
        let has =
            |l: &BTreeMap<String, String>| ENROLLMENT_LABELS.iter().any(|k| l.contains_key(*k));
        self.namespace_names()
            .iter()
            .any(|n| has(&self.namespace_labels(n)))
            || self.scenario.workloads.iter().any(|w| has(&w.labels))
    }

    /// The mode a command works in when none is given: the scenario's first (`declared` for
    /// one that writes enrollment labels and lists no modes).
    pub fn first_mode(&self) -> Mode {
        self.scenario
            .modes
            .first()
            .copied()
            .unwrap_or(Mode::Declared)
    }

    /// The data plane of a workload's pods in `mode`.
    pub fn enrollment(&self, workload: &crate::format::Workload, mode: Mode) -> Enrollment {
        match mode.dataplane_override() {
            Some(dataplane) => Enrollment {
                dataplane,
                why: format!("mode {mode}"),
            },
            None => enroll(
                &self.namespace_labels(&workload.namespace),
                &workload.labels,
            ),
        }
    }
}

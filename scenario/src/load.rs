//! Loading: the scenario file and every manifest and JWKS file it names are read, parsed with
//! unknown fields refused, then validated as a whole. Every problem found is reported (file,
//! line, column, field path), not only the first; nothing is started by loading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::Scenario;
use crate::loaded::{Loaded, LoadedManifest};
use crate::manifest;
use crate::yaml::{self, Diagnostic, LocIndex, split_documents};

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {}: {source}; check the path", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render_problems(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render_problems(d: &[Diagnostic]) -> String {
    let mut s = format!(
        "{} problem{} found:",
        d.len(),
        if d.len() == 1 { "" } else { "s" }
    );
    for x in d {
        s.push_str("\n  ");
        s.push_str(&x.to_string());
    }
    s
}

impl ScenarioError {
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ScenarioError::Invalid(d) => d,
            ScenarioError::Read { .. } => &[],
        }
    }
}

/// Reads, parses and validates a scenario and everything it names.
pub fn load(path: &Path) -> Result<Loaded, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(path, &text)
}

/// Like [`load`], with the scenario's text given (the path still locates manifests).
pub fn load_str(path: &Path, text: &str) -> Result<Loaded, ScenarioError> {
    let docs = split_documents(text);
    let doc = match docs.as_slice() {
        [d] => d.clone(),
        [] => {
            return Err(ScenarioError::Invalid(vec![Diagnostic {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
                path: String::new(),
                message: "the file is empty; a scenario needs at least `version`, `name`, `nodes` and `workloads`".into(),
            }]));
        }
        [_, second, ..] => {
            return Err(ScenarioError::Invalid(vec![Diagnostic {
                file: path.to_path_buf(),
                line: second.line_offset,
                column: 1,
                path: String::new(),
                message: "a scenario is one YAML document; put Istio objects in a manifest file listed under `manifests:`".into(),
            }]));
        }
    };
    let index = Arc::new(LocIndex::build(doc.text, doc.line_offset));
    let scenario: Scenario =
        yaml::parse_doc(path, &doc, &index).map_err(|d| ScenarioError::Invalid(vec![d]))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let at = |p: &str, m: String| {
        let l = index.value_loc(p);
        Diagnostic {
            file: path.to_path_buf(),
            line: l.line,
            column: l.column,
            path: p.to_string(),
            message: m,
        }
    };

    let mut problems = Vec::new();
    let mut manifests = Vec::new();
    let mut ignored = Vec::new();
    // Every file the scenario is made of, as read: a run keeps them, and `replay` runs them
    // again byte for byte.
    let mut sources = BTreeMap::new();
    let own = path.file_name().map_or_else(
        || "scenario.yaml".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    sources.insert(own, text.to_string());
    if (scenario.profile.ends_with(".yaml") || scenario.profile.ends_with(".yml"))
        && let Ok(t) = std::fs::read_to_string(base.join(&scenario.profile))
    {
        sources.insert(scenario.profile.clone(), t);
    }
    for (i, m) in scenario.manifests.iter().enumerate() {
        let mpath = base.join(m);
        match std::fs::read_to_string(&mpath) {
            Err(e) => problems.push(at(
                &format!("manifests[{i}]"),
                format!("cannot read manifest {}: {e}", mpath.display()),
            )),
            Ok(mtext) => {
                sources.insert(m.clone(), mtext.clone());
                let (file, errs) = manifest::parse_file(&mpath, &mtext);
                problems.extend(errs);
                ignored.extend(file.ignored);
                manifests.push(LoadedManifest {
                    path: mpath,
                    objects: file.objects,
                });
            }
        }
    }
    let mut stage_manifests = Vec::new();
    for (i, st) in scenario
        .migration
        .iter()
        .flat_map(|m| m.stages.iter())
        .enumerate()
    {
        let mut read = Vec::new();
        for (k, m) in st.apply.iter().enumerate() {
            let mpath = base.join(m);
            match std::fs::read_to_string(&mpath) {
                Err(e) => problems.push(at(
                    &format!("migration.stages[{i}].apply[{k}]"),
                    format!("cannot read manifest {}: {e}", mpath.display()),
                )),
                Ok(mtext) => {
                    sources.insert(m.clone(), mtext.clone());
                    let (file, errs) = manifest::parse_file(&mpath, &mtext);
                    problems.extend(errs);
                    ignored.extend(file.ignored);
                    read.push(LoadedManifest {
                        path: mpath,
                        objects: file.objects,
                    });
                }
            }
        }
        stage_manifests.push(read);
    }
    let mut jwks = BTreeMap::new();
    for (uri, p) in &scenario.jwks {
        let jpath = base.join(p);
        let field = format!("jwks[{uri:?}]");
        match std::fs::read_to_string(&jpath) {
            Err(e) => problems.push(at(
                &field,
                format!("cannot read JWKS file {}: {e}", jpath.display()),
            )),
            Ok(t) => match crate::jwt::Jwks::parse(&t) {
                Ok(_) => {
                    sources.insert(p.clone(), t.clone());
                    jwks.insert(uri.clone(), t);
                }
                Err(e) => problems.push(at(
                    &field,
                    format!("{} is not a usable JWKS: {e}", jpath.display()),
                )),
            },
        }
    }
    let mut monitoring = Vec::new();
    if let Some(m) = &scenario.monitoring {
        let files = m
            .rules
            .iter()
            .map(|f| (f, "rules", true))
            .chain(m.dashboards.iter().map(|f| (f, "dashboards", false)));
        for (k, (f, field, is_rules)) in files.enumerate() {
            let k = if is_rules { k } else { k - m.rules.len() };
            let fpath = base.join(f);
            match std::fs::read_to_string(&fpath) {
                Err(e) => problems.push(at(
                    &format!("monitoring.{field}[{k}]"),
                    format!(
                        "cannot read {} file {}: {e}",
                        &field[..field.len() - 1],
                        fpath.display()
                    ),
                )),
                Ok(t) => {
                    let (q, errs) = if is_rules {
                        crate::monitoring::read_rules(&fpath, f, &t)
                    } else {
                        crate::monitoring::read_dashboard(&fpath, f, &t)
                    };
                    problems.extend(errs);
                    monitoring.extend(q);
                    sources.insert(f.clone(), t);
                }
            }
        }
    }
    let mut loaded = Loaded {
        monitoring,
        path: path.to_path_buf(),
        scenario,
        manifests,
        jwks,
        ignored,
        stage_manifests,
        sources,
        index,
    };
    if !loaded.index.has("modes") && loaded.declares_enrollment() {
        loaded.scenario.modes = vec![crate::Mode::Declared];
    }
    problems.extend(crate::validate::validate(&loaded));
    if problems.is_empty() {
        Ok(loaded)
    } else {
        problems.sort();
        problems.dedup();
        Err(ScenarioError::Invalid(problems))
    }
}

/// The JSON Schema of the scenario format, generated from the types.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Scenario);
    serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
}

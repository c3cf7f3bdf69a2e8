//! `meshsim replay RUN.json`: runs a run again exactly — the scenario files it was read from
//! (kept in run.json byte for byte), its seed, profile, faults, modes, repeats and times — then
//! compares the new run with the original and links the two in the report.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

#[derive(clap::Args)]
pub struct Args {
    /// The run to replay: its run.json, or its directory.
    pub run: PathBuf,
    /// Where to write the replay. Default: runs/<scenario>-<date>-<time>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The threshold of the comparison with the original, as `compare --threshold`.
    #[arg(long, default_value_t = 5.0)]
    pub threshold: f64,
}

/// The scenario file among the sources: the one no other names.
fn scenario_key(r: &scenario::Resolved) -> Option<String> {
    let s = &r.scenario;
    let mut named: BTreeSet<&str> = s.manifests.iter().map(String::as_str).collect();
    named.extend(s.jwks.values().map(String::as_str));
    named.extend(s.migration.iter().flat_map(|m| {
        m.stages
            .iter()
            .flat_map(|st| st.apply.iter().map(String::as_str))
    }));
    named.insert(s.profile.as_str());
    r.sources
        .keys()
        .find(|k| !named.contains(k.as_str()))
        .cloned()
}

/// Writes the sources under `root`, the scenario deep enough that every `../` it names stays
/// inside; returns the scenario file's path.
fn materialize(r: &scenario::Resolved, root: &Path) -> anyhow::Result<PathBuf> {
    let key = scenario_key(r).context("run.json's sources do not hold the scenario file")?;
    let mut depth = 0;
    for k in r.sources.keys() {
        let p = Path::new(k);
        if p.is_absolute() {
            anyhow::bail!(
                "the scenario names {k} by an absolute path; replay only writes files relative to the scenario (run it again from its own files)"
            );
        }
        depth = depth.max(
            p.components()
                .filter(|c| *c == Component::ParentDir)
                .count(),
        );
    }
    let mut dir = root.to_path_buf();
    for i in 0..depth {
        dir.push(format!("d{i}"));
    }
    for (k, text) in &r.sources {
        let p = dir.join(k);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(dir.join(key))
}

fn mode_arg(m: scenario::Mode) -> super::DataPlane {
    match m {
        scenario::Mode::NoMesh => super::DataPlane::NoMesh,
        scenario::Mode::Sidecar => super::DataPlane::Sidecar,
        scenario::Mode::Ambient => super::DataPlane::Ambient,
        scenario::Mode::AmbientWaypoint => super::DataPlane::AmbientWaypoint,
        scenario::Mode::Declared => super::DataPlane::Declared,
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = if args.run.is_dir() {
        args.run.join("run.json")
    } else {
        args.run.clone()
    };
    let original = results::RunResult::load(&path)
        .with_context(|| format!("cannot replay {}", path.display()))?;
    let r = &original.scenario;
    if r.sources.is_empty() {
        anyhow::bail!(
            "{} does not keep the files its scenario was read from (a run made before meshsim kept them); run the scenario again to get a run that can be replayed",
            path.display()
        );
    }
    let work = std::env::temp_dir().join(format!("meshsim-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let scenario_path = materialize(r, &work)?;
    // The overrides the original ran with (--duration, --warmup, --mode) are in its resolved
    // scenario: give them again.
    let mut loaded = super::load_scenario(&scenario_path)?;
    let first = r.scenario.flows.first();
    let mut run_args = super::run::Args {
        scenario: scenario_path.clone(),
        modes: r.scenario.modes.iter().map(|&m| mode_arg(m)).collect(),
        profile: None,
        out: args.out.clone(),
        repeat: super::run::Repeat::Times(original.repeats),
        detect: None,
        budget: None,
        // A --find-max run keeps its searches in its resolved scenario, not in the files.
        find_max: r.scenario.flows.iter().any(|f| f.rate.is_search()),
        duration: first
            .filter(|f| {
                loaded
                    .scenario
                    .flows
                    .first()
                    .is_some_and(|g| g.duration != f.duration)
            })
            .map(|f| f.duration.0),
        warmup: first
            .filter(|f| {
                loaded
                    .scenario
                    .flows
                    .first()
                    .is_some_and(|g| g.warmup != f.warmup)
            })
            .map(|f| f.warmup.0),
        resume: None,
    };
    super::run::apply_overrides(&mut loaded, &run_args);
    if loaded.resolved().scenario != r.scenario {
        anyhow::bail!(
            "cannot reproduce {}: the scenario read back from its sources differs from the one it ran (a run whose flows had different --duration overrides?)",
            path.display()
        );
    }
    let out_dir = run_args
        .out
        .get_or_insert_with(|| super::run::default_out_dir(&r.scenario.name))
        .clone();
    eprintln!(
        "replaying {} (seed {}, profile {}, {} repeat(s)) into {}",
        path.display(),
        r.scenario.seed,
        r.scenario.profile,
        original.repeats,
        out_dir.display()
    );
    let code = super::run::run(run_args);
    let _ = std::fs::remove_dir_all(&work);
    let code = code?;
    let new_path = out_dir.join("run.json");
    let mut new = results::RunResult::load(&new_path)
        .with_context(|| format!("the replay wrote no {}", new_path.display()))?;
    new.replay_of = Some(path.display().to_string());
    new.save(&new_path)?;
    super::run::render(&new, &out_dir)?;
    match reports::compare(&original, &new, args.threshold) {
        Ok(c) => {
            let md = c.markdown();
            std::fs::write(out_dir.join("compare.md"), &md).with_context(|| {
                format!("cannot write {}", out_dir.join("compare.md").display())
            })?;
            println!(
                "\nreplay against the original ({}):\n\n{md}",
                path.display()
            );
        }
        Err(e) => eprintln!("cannot compare the replay with the original: {e}"),
    }
    Ok(code)
}

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sim::cluster::Cluster;
use sim::reach::{self, Cell, Diff};

#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (YAML), e.g. scenarios/migration-mixed.yaml.
    pub scenario: PathBuf,
    /// Mode to probe (repeatable, in order; each is compared with the one before). Default:
    /// the scenario's modes.
    #[arg(long = "mode", value_enum)]
    pub modes: Vec<super::DataPlane>,
    /// Probe the scenario's migration stages (in mode declared), from the scenario as written
    /// through each stage; the default when it has `migration:` and no `--mode` is given.
    #[arg(long, conflicts_with = "modes")]
    pub stages: bool,
    /// Print every probe's outcome, not only the changes.
    #[arg(long)]
    pub all: bool,
    /// Also write the matrices and their diffs as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// One probed column: a mode, or a migration stage.
struct Matrix {
    label: String,
    cells: Vec<Cell>,
}

struct Step {
    from: String,
    to: String,
    diff: Diff,
    /// The changes the stage's `expect:` lists (by index into breaks / openings).
    expected: Vec<bool>,
}

/// What to probe: (label, scenario at that point, mode, the changes it is expected to make).
type Column = (
    String,
    scenario::Loaded,
    scenario::Mode,
    Vec<scenario::ExpectedChange>,
);

fn columns(args: &Args, loaded: &scenario::Loaded) -> Vec<Column> {
    let staged = loaded
        .scenario
        .migration
        .as_ref()
        .is_some_and(|m| !m.stages.is_empty());
    if args.stages || (args.modes.is_empty() && staged) {
        return reach::stage_columns(loaded)
            .into_iter()
            .map(|(label, l, expect)| (label, l, scenario::Mode::Declared, expect))
            .collect();
    }
    let modes: Vec<scenario::Mode> = if args.modes.is_empty() {
        loaded.scenario.modes.clone()
    } else {
        args.modes
            .iter()
            .map(|&m| scenario::Mode::from(m))
            .collect()
    };
    modes
        .into_iter()
        .map(|m| (m.to_string(), loaded.clone(), m, Vec::new()))
        .collect()
}

/// Probes the reachability matrix in each mode (or at each migration stage); exit 1 when a
/// later one breaks (allowed → refused) or opens (refused → allowed) anything its stage does
/// not `expect`, 0 otherwise, 2 on an error.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = super::load_scenario(&args.scenario)?;
    let columns = columns(&args, &loaded);
    let profile = loaded.profile()?;
    sim::nft::check_installed()?;
    // Entered while this process has one thread, as every command that builds a cluster.
    let sandbox = sim::sandbox::enter().context("cannot set up the sandbox")?;
    // One probe set for every column, so each probe compares with itself.
    let mut probes = Vec::new();
    for (_, l, _, _) in &columns {
        probes.extend(reach::probes(l));
    }
    probes.sort();
    probes.dedup_by(|a, b| (&a.from, &a.to, &a.request) == (&b.from, &b.to, &b.request));
    let mut matrices = Vec::new();
    for (label, l, mode, _) in &columns {
        let t0 = std::time::Instant::now();
        let cluster = Cluster::up_scenario(l, *mode, &profile, sandbox)
            .with_context(|| format!("cannot bring the cluster up for {label}"))?;
        let t1 = std::time::Instant::now();
        let cells = reach::run(&cluster, &probes);
        let t2 = std::time::Instant::now();
        drop(cluster);
        let refused = cells.iter().filter(|c| !c.outcome.allowed()).count();
        println!(
            "{label} ({mode}): {} probes, {} allowed, {refused} refused (cluster up {:.1} s, probes {:.1} s, down {:.1} s)",
            cells.len(),
            cells.len() - refused,
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            t2.elapsed().as_secs_f64()
        );
        if args.all {
            for c in &cells {
                println!("  {}", line(c));
            }
        }
        let m = reach::mtls(&cells);
        let pairs = |v: &[reach::Probe]| {
            let mut p: Vec<String> = v.iter().map(|p| format!("{} → {}", p.from, p.to)).collect();
            p.dedup();
            p.join(", ")
        };
        if !m.meshed_plaintext.is_empty() {
            println!(
                "  mTLS: {} request(s) between meshed workloads went in plaintext: {}",
                m.meshed_plaintext.len(),
                pairs(&m.meshed_plaintext)
            );
        }
        println!(
            "  plaintext from outside the mesh: {} accepted, {} reset by STRICT",
            m.outside_accepted.len(),
            m.outside_refused_strict.len()
        );
        matrices.push(Matrix {
            label: label.clone(),
            cells,
        });
    }
    let mut steps = Vec::new();
    for (k, w) in matrices.windows(2).enumerate() {
        let d = reach::diff(&w[0].cells, &w[1].cells);
        let expect = &columns[k + 1].3;
        let expected: Vec<bool> = d
            .breaks
            .iter()
            .map(|c| reach::is_expected(c, scenario::ChangeKind::Break, expect))
            .chain(
                d.openings
                    .iter()
                    .map(|c| reach::is_expected(c, scenario::ChangeKind::Opening, expect)),
            )
            .collect();
        let unexpected = expected.iter().filter(|e| !**e).count();
        println!(
            "{} → {}: {} break(s), {} opening(s), {unexpected} not expected",
            w[0].label,
            w[1].label,
            d.breaks.len(),
            d.openings.len()
        );
        let (eb, eo) = expected.split_at(d.breaks.len());
        print_changes("BREAK  ", &d.breaks, eb, args.all);
        print_changes("OPENING", &d.openings, eo, args.all);
        steps.push(Step {
            from: w[0].label.clone(),
            to: w[1].label.clone(),
            diff: d,
            expected,
        });
    }
    if let Some(path) = &args.json {
        let modes: Vec<serde_json::Value> = matrices
            .iter()
            .map(|m| serde_json::json!({ "at": m.label, "cells": m.cells }))
            .collect();
        let diffs: Vec<serde_json::Value> = steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "from": s.from,
                    "to": s.to,
                    "breaks": s.diff.breaks,
                    "openings": s.diff.openings,
                    "expected": s.expected,
                })
            })
            .collect();
        let doc = serde_json::json!({ "modes": modes, "diffs": diffs });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let changed = steps.iter().any(|s| s.expected.iter().any(|e| !e));
    Ok(if changed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Changes of one (source, destination) that went the same way, decided the same way, print
/// as one line (unless `all`), with their requests.
fn print_changes(tag: &str, list: &[reach::Change], expected: &[bool], all: bool) {
    let mut i = 0;
    while i < list.len() {
        let c = &list[i];
        let by = c.decided_by.as_ref().map(|r| (&r.proxy, &r.by));
        let mut j = i + 1;
        while !all
            && j < list.len()
            && list[j].probe.from == c.probe.from
            && list[j].probe.to == c.probe.to
            && (list[j].before, list[j].after) == (c.before, c.after)
            && list[j].decided_by.as_ref().map(|r| (&r.proxy, &r.by)) == by
            && expected[j] == expected[i]
        {
            j += 1;
        }
        let requests: Vec<&str> = list[i..j]
            .iter()
            .map(|c| c.probe.request.as_str())
            .collect();
        let shown = if requests.len() > 3 {
            format!(
                "{} and {} more",
                requests[..3].join(", "),
                requests.len() - 3
            )
        } else {
            requests.join(", ")
        };
        let note = if expected[i] { " (expected)" } else { "" };
        println!(
            "  {tag}{note} {} → {} ({shown}): {} → {}{}",
            c.probe.from,
            c.probe.to,
            c.before,
            c.after,
            decided(c.decided_by.as_ref())
        );
        i = j;
    }
}

fn decided(r: Option<&sim::mesh::decisions::Record>) -> String {
    match r {
        Some(r) => format!("  [{}: {}]", r.proxy, r.by),
        None => String::new(),
    }
}

fn line(c: &Cell) -> String {
    format!(
        "{} → {} {}: {}{}",
        c.probe.from,
        c.probe.to,
        c.probe.request,
        c.outcome,
        decided(c.decided_by.as_ref())
    )
}

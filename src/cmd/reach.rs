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
    /// Print every probe's outcome, not only the changes.
    #[arg(long)]
    pub all: bool,
    /// Also write the matrices and their diffs as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

struct Matrix {
    mode: scenario::Mode,
    cells: Vec<Cell>,
}

struct Step {
    from: scenario::Mode,
    to: scenario::Mode,
    diff: Diff,
}

/// Probes the reachability matrix in each mode; exit 1 when a later mode breaks (allowed →
/// refused) or opens (refused → allowed) anything, 0 otherwise, 2 on an error.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = super::load_scenario(&args.scenario)?;
    let modes: Vec<scenario::Mode> = if args.modes.is_empty() {
        loaded.scenario.modes.clone()
    } else {
        args.modes
            .iter()
            .map(|&m| scenario::Mode::from(m))
            .collect()
    };
    let profile = loaded.profile()?;
    sim::nft::check_installed()?;
    // Entered while this process has one thread, as every command that builds a cluster.
    let sandbox = sim::sandbox::enter().context("cannot set up the sandbox")?;
    let probes = reach::probes(&loaded);
    let mut matrices = Vec::new();
    for &mode in &modes {
        let cluster = Cluster::up_scenario(&loaded, mode, &profile, sandbox)
            .with_context(|| format!("cannot bring the cluster up in mode {mode}"))?;
        let cells = reach::run(&cluster, &probes);
        drop(cluster);
        let refused = cells.iter().filter(|c| !c.outcome.allowed()).count();
        println!(
            "mode {mode}: {} probes, {} allowed, {refused} refused",
            cells.len(),
            cells.len() - refused
        );
        if args.all {
            for c in &cells {
                println!("  {}", line(c));
            }
        }
        matrices.push(Matrix { mode, cells });
    }
    let mut steps = Vec::new();
    for w in matrices.windows(2) {
        let d = reach::diff(&w[0].cells, &w[1].cells);
        println!(
            "{} → {}: {} break(s), {} opening(s)",
            w[0].mode,
            w[1].mode,
            d.breaks.len(),
            d.openings.len()
        );
        for (tag, list) in [("BREAK  ", &d.breaks), ("OPENING", &d.openings)] {
            print_changes(tag, list, args.all);
        }
        steps.push(Step {
            from: w[0].mode,
            to: w[1].mode,
            diff: d,
        });
    }
    if let Some(path) = &args.json {
        let modes: Vec<serde_json::Value> = matrices
            .iter()
            .map(|m| serde_json::json!({ "mode": m.mode.as_str(), "cells": m.cells }))
            .collect();
        let diffs: Vec<serde_json::Value> = steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "from": s.from.as_str(),
                    "to": s.to.as_str(),
                    "breaks": s.diff.breaks,
                    "openings": s.diff.openings,
                })
            })
            .collect();
        let doc = serde_json::json!({ "modes": modes, "diffs": diffs });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let changed = steps
        .iter()
        .any(|s| !s.diff.breaks.is_empty() || !s.diff.openings.is_empty());
    Ok(if changed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Changes of one (source, destination) that went the same way, decided the same way, print
/// as one line (unless `all`), with their requests.
fn print_changes(tag: &str, list: &[reach::Change], all: bool) {
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
        println!(
            "  {tag} {} → {} ({shown}): {} → {}{}",
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

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sim::reach::{self, Cell};

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

fn columns(args: &Args, loaded: &scenario::Loaded) -> Vec<reach::Column> {
    let staged = loaded
        .scenario
        .migration
        .as_ref()
        .is_some_and(|m| !m.stages.is_empty());
    if args.stages || (args.modes.is_empty() && staged) {
        return reach::stage_columns(loaded);
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
        .map(|mode| reach::Column {
            label: mode.to_string(),
            loaded: loaded.clone(),
            mode,
            expect: Vec::new(),
        })
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
    let modes: Vec<scenario::Mode> = columns.iter().map(|c| c.mode).collect();
    let mut k = 0;
    let (probed, monitoring) =
        reach::probe_columns(&columns, &loaded.monitoring, &profile, sandbox, |p| {
            print_column(p, modes[k], args.all);
            k += 1;
        })
        .context("cannot bring a cluster up to probe")?;
    let steps = reach::steps(&columns, &probed);
    for s in &steps {
        let unexpected = s.expected.iter().filter(|e| !**e).count();
        println!(
            "{} → {}: {} break(s), {} opening(s), {unexpected} not expected",
            s.from,
            s.to,
            s.diff.breaks.len(),
            s.diff.openings.len()
        );
        let (eb, eo) = s.expected.split_at(s.diff.breaks.len());
        print_changes("BREAK  ", &s.diff.breaks, eb, args.all);
        print_changes("OPENING", &s.diff.openings, eo, args.all);
    }
    if let Some(m) = &monitoring {
        print!("{}", reports::render::monitoring_markdown(m));
    }
    if let Some(path) = &args.json {
        let modes: Vec<serde_json::Value> = probed
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
        let doc = serde_json::json!({ "modes": modes, "diffs": diffs, "monitoring": monitoring });
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

/// A column's counts and timings, its mTLS findings, and with `all` every probe.
fn print_column(p: &reach::Probed, mode: scenario::Mode, all: bool) {
    let cells = &p.cells;
    let refused = cells.iter().filter(|c| !c.outcome.allowed()).count();
    println!(
        "{} ({mode}): {} probes, {} allowed, {refused} refused (cluster up {:.1} s, probes {:.1} s, down {:.1} s)",
        p.label,
        cells.len(),
        cells.len() - refused,
        p.up.as_secs_f64(),
        p.probing.as_secs_f64(),
        p.down.as_secs_f64()
    );
    if all {
        for c in cells {
            println!("  {}", line(c));
        }
    }
    let m = reach::mtls(cells);
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

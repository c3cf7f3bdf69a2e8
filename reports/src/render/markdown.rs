//! `summary.md`: what a CI job summary shows: the verdicts first, then the headline table.

use std::fmt::Write as _;

use super::{HEADLINE_HEADER, headline_cells};
use crate::run::RunResult;

/// Markdown cells cannot hold `|` or newlines.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn summary_markdown(run: &RunResult) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## meshsim: {}\n", run.scenario_name());
    let _ = writeln!(
        s,
        "Profile `{}`, seed {}, {} repeat(s), started {}, meshsim {}{}.\n",
        run.profile.name,
        run.seed,
        run.repeats,
        run.environment.started_at,
        run.environment.meshsim_version,
        run.environment
            .commit
            .as_deref()
            .map(|c| format!(" ({})", &c[..c.len().min(12)]))
            .unwrap_or_default()
    );
    if run.incomplete {
        s.push_str("> **Incomplete run**: interrupted part-way; some modes or steps are missing or short.\n\n");
    }

    let failed = run.failed_slos();
    let total: usize = run.modes.iter().map(|m| m.slo.len()).sum();
    if total > 0 {
        if failed.is_empty() {
            let _ = writeln!(s, "**SLOs: all {total} passed.**\n");
        } else {
            let _ = writeln!(s, "**SLOs: {} of {total} FAILED.**\n", failed.len());
        }
        s.push_str("| mode | SLO | observed | limit | verdict |\n|---|---|---:|---:|---|\n");
        for m in run.sorted_modes() {
            for v in &m.slo {
                let _ = writeln!(
                    s,
                    "| {}{} | {} ({}) | {} | {} | {} |",
                    m.mode,
                    repeat_suffix(run, m.repeat),
                    cell(&v.name),
                    cell(&v.description),
                    trim_num(v.observed),
                    trim_num(v.limit),
                    if v.passed { "pass" } else { "**FAIL**" }
                );
            }
        }
        s.push('\n');
    }

    if let Some(of) = &run.replay_of {
        let _ = writeln!(s, "A replay of `{of}`; `compare.md` compares the two.\n");
    }
    let warnings: Vec<String> = run
        .sorted_modes()
        .into_iter()
        .flat_map(|m| {
            m.saturation_warnings
                .iter()
                .map(move |w| format!("{}{}: {w}", m.mode, repeat_suffix(run, m.repeat)))
        })
        .collect();
    if !warnings.is_empty() {
        s.push_str(
            "**Contention warnings** (figures there measure contention on this machine or its host, not the mesh):\n\n",
        );
        for w in warnings {
            let _ = writeln!(s, "- {}", cell(&w));
        }
        s.push('\n');
    }

    let planes: Vec<String> = run
        .sorted_modes()
        .into_iter()
        .filter(|m| m.repeat == 0 && !m.pods.is_empty())
        .map(|m| format!("- {}: {}", m.mode, super::dataplane_counts(m)))
        .collect();
    if !planes.is_empty() {
        let _ = writeln!(s, "**Data planes** (pods):\n\n{}\n", planes.join("\n"));
    }
    for m in run
        .sorted_modes()
        .into_iter()
        .filter(|m| m.repeat == 0 && !m.stages.is_empty())
    {
        let _ = writeln!(
            s,
            "**Migration, stage by stage** ({}; applied live under load):\n\n| stage | changes | p50 / p99 per flow | proxies vCPU | proxies MiB (measured + modeled) | transition |\n|---|---|---|---|---:|---|",
            m.mode
        );
        for r in super::stage_rows(m) {
            let multi = |v: &[String]| v.iter().map(|x| cell(x)).collect::<Vec<_>>().join("<br>");
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&r.name),
                multi(&r.changes),
                multi(&r.flows),
                multi(&r.cpu),
                cell(&r.mib),
                cell(&r.transition)
            );
        }
        s.push('\n');
    }
    let faults: Vec<String> = run
        .sorted_modes()
        .into_iter()
        .filter(|m| m.repeat == 0)
        .flat_map(|m| {
            super::fault_lines(m)
                .into_iter()
                .map(move |l| format!("- {}: {}", m.mode, cell(&l)))
        })
        .collect();
    if !faults.is_empty() {
        let _ = writeln!(s, "**Faults**:\n\n{}\n", faults.join("\n"));
    }
    if let Some(r) = &run.reach {
        let cols: Vec<String> = r
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{}: {} allowed, {} refused, {} meshed plaintext, {} reset by STRICT",
                    c.at,
                    c.allowed,
                    c.refused,
                    c.meshed_plaintext.len(),
                    c.outside_refused_strict.len()
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "**Reachability** ({} probes per stage): {}\n",
            r.columns.first().map_or(0, |c| c.probes),
            cols.join("; ")
        );
        for c in &r.changes {
            let _ = writeln!(
                s,
                "- {}{} at {}: {} → {} {} ({} → {}){}",
                c.kind.to_uppercase(),
                if c.expected { " (expected)" } else { "" },
                cell(&c.to_stage),
                cell(&c.from),
                cell(&c.to),
                cell(&c.request),
                cell(&c.before),
                cell(&c.after),
                c.decided_by
                    .as_deref()
                    .map(|d| format!(" [{}]", cell(d)))
                    .unwrap_or_default()
            );
        }
        if !r.changes.is_empty() {
            s.push('\n');
        }
        if let Some(m) = &r.monitoring {
            s.push_str(&monitoring_markdown(m));
            s.push('\n');
        }
    }
    let failed: Vec<&str> = run
        .checklist
        .iter()
        .filter(|i| i.status == "failed")
        .map(|i| i.title.as_str())
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(
            s,
            "**Migration checklist: {} failed** (`meshsim check` for the evidence): {}\n",
            failed.len(),
            failed.join("; ")
        );
    }

    let searches = super::search_rows(run);
    if !searches.is_empty() {
        s.push_str("### Highest rate meeting the SLOs\n\n| flow | mode | highest passing | lowest failing | steps (✓ met, ✗ not) | criteria |\n|---|---|---:|---:|---|---|\n");
        for r in &searches {
            let _ = writeln!(
                s,
                "| {} | {}{} | {} | {} | {} | {} |",
                cell(&r.flow),
                r.mode,
                repeat_suffix(run, r.repeat),
                r.max,
                r.first_failing,
                r.steps,
                cell(&r.criteria)
            );
        }
        s.push('\n');
    }
    s.push_str("### Headline\n\n");
    let _ = writeln!(s, "| {} |", HEADLINE_HEADER.join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(HEADLINE_HEADER.len() - 1));
    for r in headline_cells(run) {
        let multi = |v: &[String]| v.iter().map(|x| cell(x)).collect::<Vec<_>>().join("<br>");
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&r.mode),
            r.added[0],
            r.added[1],
            r.added[2],
            r.achieved_rps,
            multi(&r.proxies),
            multi(&r.vcpu_per_proxy),
            multi(&r.mib_per_proxy),
            r.total_vcpu,
            r.total_mib
        );
    }
    s.push_str(
        "\nAdded latency is over no-mesh on the headline step of the first flow. \
         vCPU per 1000 rps divides each proxy's CPU by the requests it counted itself over the \
         same window (ztunnel counts request/response exchanges, being L4); the total divides \
         all proxies' CPU by the requests the load clients counted. `model + floor`: the \
         models' own CPU, and what was burned to reach the cost profile's floor. Modeled MiB is \
         what the cost profile adds beyond what the lean models allocate (not measured).\n",
    );
    let rows = super::projection_rows(run);
    if !rows.is_empty() {
        s.push_str("\n### Measured here against projected with the profile\n\n| mode | proxy | proxies | rps per proxy | vCPU per proxy measured | projected | measured / projected | MiB per proxy measured | projected |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.mode,
                r.kind,
                r.count,
                r.rps_per_proxy,
                r.vcpu_measured,
                r.vcpu_projected,
                r.vcpu_ratio,
                r.mib_measured,
                r.mib_projected
            );
        }
        let _ = writeln!(s, "\n{}", super::PROJECTION_NOTE);
    }
    // CPU per request follows the host's speed: a reader comparing with another day's run
    // needs this line to tell the host's drift from meshsim's.
    if let (Some((mid, ..)), Some((paced, ..))) = (
        run.host_probe_range(|p| Some(p.back_to_back.round_trip_us)),
        run.host_probe_range(|p| Some(p.paced.cpu_per_round_trip_us)),
    ) {
        let _ = writeln!(
            s,
            "Host speed: a 1 KiB loopback round trip took {mid:.0} µs back to back, and \
             {paced:.0} µs of CPU at one per millisecond (medians of the probes before each mode)."
        );
    }
    s
}

pub(crate) fn repeat_suffix(run: &RunResult, repeat: u32) -> String {
    if run.repeats > 1 {
        // People count repeats from 1, as the progress lines and `compare` do.
        format!(" #{}", repeat + 1)
    } else {
        String::new()
    }
}

pub(crate) use results::trim_num;

/// One stage's cell of the monitoring table: the series a query returned.
pub fn monitoring_cell(a: &crate::run::QueryAt) -> String {
    match (&a.error, a.series) {
        (Some(_), _) => "error".to_string(),
        (None, 0) => "—".to_string(),
        (None, n) => match a.value {
            Some(v) => format!("{n} series: {}", short(v)),
            None => format!("{n} series"),
        },
    }
}

/// A sample value in a few characters: rates and ratios keep three significant digits.
fn short(v: f64) -> String {
    if !v.is_finite() || v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// The monitoring check as Markdown: each query's series per stage, then what to fix.
pub fn monitoring_markdown(m: &crate::run::MonitoringResult) -> String {
    let mut s = String::new();
    if let Some(why) = &m.skipped {
        let _ = writeln!(s, "**Monitoring check skipped**: {}", cell(why));
        return s;
    }
    let flagged = m.flagged().count();
    let _ = writeln!(
        s,
        "**Monitoring** ({} queries evaluated by Prometheus {} at each stage; {flagged} to fix; values are of the reachability probes' traffic on each stage's own cluster, not of the load):\n",
        m.queries.len(),
        m.prometheus.as_deref().unwrap_or("?")
    );
    let _ = writeln!(
        s,
        "| query | {} |",
        m.stages
            .iter()
            .map(|x| cell(x))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(s, "|---|{}", "---:|".repeat(m.stages.len()));
    for q in &m.queries {
        let cells: Vec<String> = q.at.iter().map(monitoring_cell).collect();
        let _ = writeln!(
            s,
            "| {} ({}:{}) | {} |",
            cell(&q.name),
            cell(&q.file),
            q.line,
            cells.join(" | ")
        );
    }
    s.push('\n');
    for q in m.flagged() {
        for f in &q.flags {
            let _ = writeln!(s, "- {}: {}", cell(&q.name), cell(f));
        }
    }
    s
}

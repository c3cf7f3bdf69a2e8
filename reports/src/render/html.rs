//! `report.html`: one self-contained file. No network: charts are inline SVG, the style is
//! inline, the font is embedded as base64 so the SVG text renders as it was laid out.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::markdown::{repeat_suffix, trim_num};
use super::{Chart, FONT_FAMILY, FONT_TTF, HEADLINE_HEADER, fmt, headline_cells, rate_label};
use crate::run::{ModeResult, RunResult};

pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = r#"
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#ffffff; --soft:#f6f8fa;
  --bad:#b42318; --bad-bg:#fef3f2; --warn:#8a5a00; --warn-bg:#fff8e6; --ok:#1a7f37; --ok-bg:#eefbf1; }
* { box-sizing: border-box; }
body { font-family: "FONT", sans-serif; color: var(--fg); background: var(--bg); margin: 0;
  font-size: 15px; line-height: 1.45; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 8px; }
.meta { color: var(--muted); margin: 0 0 16px; }
.banner { border-radius: 6px; padding: 10px 14px; margin: 10px 0; border: 1px solid; }
.banner.bad { color: var(--bad); background: var(--bad-bg); border-color: #fda29b; }
.banner.warn { color: var(--warn); background: var(--warn-bg); border-color: #f5c46b; }
.banner.ok { color: var(--ok); background: var(--ok-bg); border-color: #9be3b0; }
.banner ul { margin: 4px 0 0; padding-left: 20px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 4px; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 6px 10px; text-align: right; vertical-align: top; }
th { background: var(--soft); font-weight: bold; font-size: 13px; }
th:first-child, td:first-child { text-align: left; }
td.l, th.l { text-align: left; }
tr.fail td { background: var(--bad-bg); }
table.headline td { white-space: nowrap; }
table.headline td:first-child { font-weight: bold; }
.pill { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: bold; }
.pill.fail { background: var(--bad); color: #fff; }
.pill.pass { background: var(--ok); color: #fff; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.note { color: var(--muted); font-size: 13px; }
figure { margin: 18px 0 28px; }
figure svg { width: 100%; height: auto; display: block; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 12px;
  overflow-x: auto; font-size: 12.5px; line-height: 1.35; }
details { margin: 8px 0; }
summary { cursor: pointer; font-weight: bold; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; }
dt { color: var(--muted); } dd { margin: 0; }
"#;

/// The opening of a self-contained meshsim page (its style and the charts' font), up to
/// `<main>`; close it with `</main></body></html>`.
pub fn page_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n@font-face {{ font-family: \"{FONT_FAMILY}\"; \
         src: url(data:font/ttf;base64,{}) format(\"truetype\"); }}\n{}</style>\n</head>\n<body>\n<main>\n",
        esc(title),
        STANDARD.encode(FONT_TTF),
        STYLE.replace("FONT", FONT_FAMILY)
    )
}

pub fn report_html(run: &RunResult, charts: &[Chart]) -> String {
    let name = run.scenario_name();
    let mut h = page_head(&format!("meshsim report: {name}"));
    let env = &run.environment;
    let _ = writeln!(h, "<h1>meshsim report: {}</h1>", esc(name));
    let _ = writeln!(
        h,
        "<p class=\"meta\">Cost profile <b>{}</b> · seed {} · {} repeat(s) · started {} · meshsim {}{} · {} cores</p>",
        esc(&run.profile.name),
        run.seed,
        run.repeats,
        esc(&env.started_at),
        esc(&env.meshsim_version),
        env.commit
            .as_deref()
            .map(|c| format!(" ({})", esc(&c[..c.len().min(12)])))
            .unwrap_or_default(),
        env.cores
    );
    if let Some(of) = &run.replay_of {
        let _ = writeln!(
            h,
            "<p class=\"note\">A replay of <a href=\"{0}\">{0}</a> (same scenario files, seed, profile, faults, modes); <code>compare.md</code> beside this report compares the two.</p>",
            esc(of)
        );
    }
    status_banners(&mut h, run);
    headline(&mut h, run);
    projections(&mut h, run);
    verdicts(&mut h, run);
    dataplanes(&mut h, run);
    stages(&mut h, run);
    reachability(&mut h, run);
    monitoring(&mut h, run);
    faults(&mut h, run);
    searches(&mut h, run);

    h.push_str("<h2 id=\"charts\">Charts</h2>\n");
    for c in charts {
        let _ = writeln!(
            h,
            "<figure id=\"{}\">\n{}\n<figcaption><b>{}</b>. {} <span class=\"note\">(PNG: {}.png)</span></figcaption>\n</figure>",
            esc(&c.id),
            strip_xml_decl(&c.svg),
            esc(&c.title),
            esc(&c.caption),
            esc(&c.id)
        );
    }

    details(&mut h, run);

    scenario_section(&mut h, run);
    checklist(&mut h, run);

    h.push_str("<h2 id=\"environment\">Environment</h2>\n<dl>\n");
    let mut dl = |k: &str, v: String| {
        let _ = writeln!(h, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    };
    if let Some(p) = &env.platform {
        dl(
            "platform",
            format!("{p}: measured by the cluster (its load Jobs and Prometheus), not simulated"),
        );
    }
    dl("meshsim", env.meshsim_version.clone());
    dl(
        "commit",
        env.commit.clone().unwrap_or_else(|| "unknown".into()),
    );
    dl("kernel", env.kernel.clone());
    dl("CPU", format!("{} ({} cores)", env.cpu_model, env.cores));
    dl(
        "user",
        format!(
            "{}{}",
            env.user,
            if env.root {
                " (root: CPU limits enforced through cgroups)"
            } else {
                " (not root: CPU limits are not enforced)"
            }
        ),
    );
    if let Some(host) = &env.hostname {
        dl("host", host.clone());
    }
    dl("started", env.started_at.clone());
    dl("seed", run.seed.to_string());
    let steal: Vec<f64> = run
        .modes
        .iter()
        .filter_map(|m| m.host_steal_share)
        .collect();
    if let (Some(lo), Some(hi)) = (
        steal.iter().copied().reduce(f64::min),
        steal.iter().copied().reduce(f64::max),
    ) {
        dl(
            "host steal",
            format!(
                "{:.1}% to {:.1}% of the busy CPU time, across modes (CPU the hypervisor gave to \
                 other tenants; above {:.0}% the figures come from a contended host)",
                lo * 100.0,
                hi * 100.0,
                results::host::STEAL_WARNING * 100.0
            ),
        );
    }
    if let Some((mid, lo, hi)) = run.host_probe_range(|p| Some(p.back_to_back.round_trip_us)) {
        let mut text = format!(
            "1 KiB loopback round trip in {mid:.0} µs back to back ({lo:.0} to {hi:.0} µs across \
             modes)"
        );
        let paced = run.host_probe_range(|p| Some(p.paced.cpu_per_round_trip_us));
        if let (Some((c, ..)), Some((pc, plo, phi))) = (
            run.host_probe_range(|p| Some(p.back_to_back.cpu_per_round_trip_us)),
            paced,
        ) {
            let _ = write!(
                text,
                ", {c:.0} µs of CPU each; one per millisecond, as a proxy at moderate load sees \
                 requests, {pc:.0} µs of CPU each ({plo:.0} to {phi:.0} µs)"
            );
        }
        text.push_str("; medians of probes made before each mode with nothing else running");
        // Single probes jitter by up to ±15% on a shared VM (compare judges medians, which are
        // steadier): only a wider spread says the host changed under the run.
        let spread = |(_, lo, hi): (f64, f64, f64)| hi > lo * WITHIN_RUN_DRIFT;
        if spread((mid, lo, hi)) || paced.is_some_and(spread) {
            text.push_str(
                ". The host's speed drifted during the run, so compare modes across repeats \
                 (--repeat)",
            );
        }
        dl("host speed", text);
    }
    h.push_str("</dl>\n");

    let _ = writeln!(
        h,
        "<h2 id=\"profile\">Cost profile: {}</h2>\n<p>CPU and memory figures include this profile's floors: a proxy model cheaper than its floor burns CPU to reach it, and memory beyond what it allocates is reported as <i>modeled</i>.</p>",
        esc(&run.profile.name)
    );
    if !run.profile.sources.is_empty() {
        h.push_str("<h3>Sources</h3>\n<ul>\n");
        for s in &run.profile.sources {
            // Sources may be URLs; shown as text, never linked, so the file makes no requests.
            let _ = writeln!(h, "<li>{}</li>", esc(s));
        }
        h.push_str("</ul>\n");
    }
    let floors = serde_json::to_string_pretty(&run.profile.floors).unwrap_or_default();
    let _ = writeln!(h, "<h3>Floors</h3>\n<pre>{}</pre>", esc(&floors));
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

/// The scenario as the run ran it, and the manifests it used.
fn scenario_section(h: &mut String, run: &RunResult) {
    h.push_str("<h2 id=\"scenario\">Scenario</h2>\n");
    let scenario = serde_json::to_string_pretty(&run.scenario).unwrap_or_default();
    let _ = writeln!(h, "<pre>{}</pre>", esc(&scenario));
    if !run.manifests.is_empty() {
        h.push_str("<h3>Manifests</h3>\n<table><tr><th>file</th><th class=\"l\">kinds used</th><th class=\"l\">ignored (not modeled)</th></tr>\n");
        for m in &run.manifests {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                esc(&m.path),
                esc(&m.kinds.join(", ")),
                esc(&m.ignored.join(", "))
            );
        }
        h.push_str("</table>\n");
    }
}

/// Probes before the modes of one run further apart than this factor mean the host's speed
/// changed during the run.
const WITHIN_RUN_DRIFT: f64 = 1.5;

fn strip_xml_decl(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

fn status_banners(h: &mut String, run: &RunResult) {
    if run.incomplete {
        h.push_str("<div class=\"banner warn\"><b>Incomplete run.</b> It was interrupted part-way: what was measured is shown, but some modes, steps or repeats are missing or short.</div>\n");
    }
    let failed = run.failed_slos();
    let total: usize = run.modes.iter().map(|m| m.slo.len()).sum();
    if !failed.is_empty() {
        let _ = write!(
            h,
            "<div class=\"banner bad\"><b>{} of {total} SLO verdicts failed:</b><ul>",
            failed.len()
        );
        for (m, v) in &failed {
            let _ = write!(
                h,
                "<li><b>{}</b> in {}{}: {} (observed {}, limit {})</li>",
                esc(&v.name),
                m.mode,
                repeat_suffix(run, m.repeat),
                esc(&v.description),
                trim_num(v.observed),
                trim_num(v.limit)
            );
        }
        h.push_str("</ul></div>\n");
    } else if total > 0 {
        let _ = writeln!(
            h,
            "<div class=\"banner ok\"><b>All {total} SLO verdicts passed.</b></div>"
        );
    }
    let warnings: Vec<(&ModeResult, &String)> = run
        .sorted_modes()
        .into_iter()
        .flat_map(|m| m.saturation_warnings.iter().map(move |w| (m, w)))
        .collect();
    if !warnings.is_empty() {
        h.push_str("<div class=\"banner warn\"><b>Contention</b>: where this happened, the figures measure contention on this machine or its host rather than the mesh.<ul>");
        for (m, w) in warnings {
            let _ = write!(
                h,
                "<li>{}{}: {}</li>",
                m.mode,
                repeat_suffix(run, m.repeat),
                esc(w)
            );
        }
        h.push_str("</ul></div>\n");
    }
}

fn swatch(mode: crate::run::Mode) -> String {
    let c = super::mode_color(mode);
    format!(
        "<span class=\"swatch\" style=\"background:#{:02x}{:02x}{:02x}\"></span>",
        c.0, c.1, c.2
    )
}

fn headline(h: &mut String, run: &RunResult) {
    h.push_str("<h2 id=\"headline\">Headline</h2>\n<table class=\"headline\">\n<tr>");
    for col in HEADLINE_HEADER {
        let _ = write!(h, "<th>{}</th>", esc(col));
    }
    h.push_str("</tr>\n");
    let modes = run.mode_names();
    for (r, mode) in headline_cells(run).into_iter().zip(modes) {
        let multi = |v: &[String]| v.iter().map(|x| esc(x)).collect::<Vec<_>>().join("<br>");
        let _ = writeln!(
            h,
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            swatch(mode),
            esc(&r.mode),
            esc(&r.added[0]),
            esc(&r.added[1]),
            esc(&r.added[2]),
            esc(&r.achieved_rps),
            multi(&r.proxies),
            multi(&r.vcpu_per_proxy),
            multi(&r.mib_per_proxy),
            esc(&r.total_vcpu),
            esc(&r.total_mib)
        );
    }
    h.push_str("</table>\n");
    let hl = run
        .sorted_modes()
        .first()
        .and_then(|m| m.flows.first())
        .and_then(|f| {
            f.headline_step().and_then(|i| f.steps.get(i)).map(|s| {
                format!(
                    "flow <b>{}</b> at {}",
                    esc(&f.name),
                    rate_label(s.target_rps)
                )
            })
        })
        .unwrap_or_else(|| "the first flow".into());
    let _ = writeln!(
        h,
        "<p class=\"note\">Added latency: over no-mesh, {hl}. vCPU per 1000 rps: per proxy instance, for the traffic through it. MiB: measured heap + what the cost profile models beyond it. \"All proxies\": the data plane's whole cost (apps and load clients excluded). Istio 1.24's published figures at 1000 rps: sidecar ≈ 0.20 vCPU / 60 MB, waypoint ≈ 0.25 vCPU / 60 MB, ztunnel ≈ 0.06 vCPU / 12 MB.</p>"
    );
}

/// Each pod's data plane: one line per override mode, the whole table where labels decided
/// (a mixed mesh), so a reader sees which pods were sidecar, ambient or out of the mesh.
fn dataplanes(h: &mut String, run: &RunResult) {
    let modes: Vec<&ModeResult> = run
        .sorted_modes()
        .into_iter()
        .filter(|m| m.repeat == 0 && !m.pods.is_empty())
        .collect();
    if modes.is_empty() {
        return;
    }
    h.push_str("<h2 id=\"dataplanes\">Data planes</h2>\n<ul>\n");
    for m in &modes {
        let _ = writeln!(
            h,
            "<li>{}<b>{}</b>: {}</li>",
            swatch(m.mode),
            m.mode,
            esc(&super::dataplane_counts(m))
        );
    }
    h.push_str("</ul>\n");
    for m in modes
        .iter()
        .filter(|m| m.mode.dataplane_override().is_none())
    {
        let _ = writeln!(
            h,
            "<h3>{} — as the labels declare</h3>\n<table>\n<tr><th class=\"l\">pod</th><th class=\"l\">namespace</th><th class=\"l\">node</th><th class=\"l\">data plane</th><th class=\"l\">why</th></tr>",
            m.mode
        );
        for p in &m.pods {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                esc(&p.pod),
                esc(&p.namespace),
                esc(&p.node),
                p.dataplane,
                esc(&p.why)
            );
        }
        h.push_str("</table>\n");
    }
}

/// A migration applied live: a row per stage.
fn stages(h: &mut String, run: &RunResult) {
    for m in run
        .sorted_modes()
        .into_iter()
        .filter(|m| m.repeat == 0 && !m.stages.is_empty())
    {
        let _ = writeln!(
            h,
            "<h2 id=\"stages\">Migration, stage by stage ({})</h2>\n<p class=\"note\">Each stage was applied to the running cluster at the start of a step, the load running across it; latency and cost are over the step's measured window, the transition from the change until every flow ran a second without an error. vCPU measured; MiB measured heap + modeled (the cost profile's memory beyond it).</p>\n<table>\n<tr><th class=\"l\">stage</th><th class=\"l\">changes</th><th class=\"l\">p50 / p99 per flow</th><th class=\"l\">proxies vCPU</th><th>proxies MiB</th><th class=\"l\">transition</th></tr>",
            m.mode
        );
        for r in super::stage_rows(m) {
            let join = |v: &[String]| v.iter().map(|x| esc(x)).collect::<Vec<_>>().join("<br>");
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                esc(&r.name),
                join(&r.changes),
                join(&r.flows),
                join(&r.cpu),
                esc(&r.mib),
                esc(&r.transition)
            );
        }
        h.push_str("</table>\n");
    }
}

/// Each proxy kind measured here beside the profile's projection at the same load.
fn projections(h: &mut String, run: &RunResult) {
    let rows = super::projection_rows(run);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h2 id=\"projected\">Measured here against projected with the profile</h2>\n<p class=\"note\">{}</p>\n<table>\n<tr><th>mode</th><th>proxy</th><th>proxies</th><th>rps per proxy</th><th>vCPU per proxy measured</th><th>projected</th><th>measured / projected</th><th>MiB per proxy measured</th><th>projected</th></tr>",
        esc(super::PROJECTION_NOTE)
    );
    for r in rows {
        let _ = writeln!(
            h,
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            swatch(r.mode),
            r.mode,
            esc(&r.kind),
            r.count,
            esc(&r.rps_per_proxy),
            esc(&r.vcpu_measured),
            esc(&r.vcpu_projected),
            esc(&r.vcpu_ratio),
            esc(&r.mib_measured),
            esc(&r.mib_projected)
        );
    }
    h.push_str("</table>\n");
}

/// `rate: search` flows: the highest rate that met their SLOs, per mode.
fn searches(h: &mut String, run: &RunResult) {
    let rows = super::search_rows(run);
    if rows.is_empty() {
        return;
    }
    h.push_str("<h2 id=\"search\">Highest rate meeting the SLOs</h2>\n<p class=\"note\">Steps doubled from the first rate until one failed, then bisected to within 5% (as Nighthawk's adaptive load controller searches); the latency-against-rate chart shows every step.</p>\n<table>\n<tr><th>flow</th><th>mode</th><th>highest passing</th><th>lowest failing</th><th>steps (✓ met, ✗ not)</th><th>criteria</th></tr>\n");
    for r in rows {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.flow),
            swatch(r.mode),
            r.mode,
            super::markdown::repeat_suffix(run, r.repeat),
            esc(&r.max),
            esc(&r.first_failing),
            esc(&r.steps),
            esc(&r.criteria)
        );
    }
    h.push_str("</table>\n");
}

/// The scenario's faults, per mode: what each did to the load (their bands shade the charts).
fn faults(h: &mut String, run: &RunResult) {
    let modes: Vec<&ModeResult> = run
        .sorted_modes()
        .into_iter()
        .filter(|m| m.repeat == 0 && !m.faults.is_empty())
        .collect();
    if modes.is_empty() {
        return;
    }
    h.push_str("<h2 id=\"faults\">Faults</h2>\n<p class=\"note\">Measured from the flows' per-second series (1 s resolution): requests failed from the fault's start to the first error-free second after it ended, the time to that second, and the time until p99 was back within 10% of its median before the fault.</p>\n<ul>\n");
    for m in modes {
        for l in super::fault_lines(m) {
            let _ = writeln!(
                h,
                "<li>{}<b>{}</b>: {}</li>",
                swatch(m.mode),
                m.mode,
                esc(&l)
            );
        }
    }
    h.push_str("</ul>\n");
}

/// A migration's reachability: each stage's matrix in numbers, its mTLS findings, and every
/// break and opening with the policy that decided.
fn reachability(h: &mut String, run: &RunResult) {
    let Some(r) = &run.reach else {
        return;
    };
    h.push_str("<h2 id=\"reach\">Reachability and mTLS, stage by stage</h2>\n<p class=\"note\">Every probe (each source workload to each service port, the flows' requests, the methods and paths the policies name) sent for real on a cluster of each stage. Plaintext between meshed workloads is read from what the destination proxy saw on the wire (Istio's <code>connection_security_policy</code>).</p>\n<table>\n<tr><th class=\"l\">stage</th><th>probes</th><th>allowed</th><th>refused</th><th class=\"l\">plaintext between meshed workloads</th><th class=\"l\">plaintext from outside the mesh</th></tr>\n");
    for c in &r.columns {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter().map(|x| esc(x)).collect::<Vec<_>>().join("<br>")
            }
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{} accepted, {} reset by STRICT</td></tr>",
            esc(&c.at),
            c.probes,
            c.allowed,
            c.refused,
            list(&c.meshed_plaintext),
            c.outside_accepted.len(),
            c.outside_refused_strict.len()
        );
    }
    h.push_str("</table>\n");
    if r.changes.is_empty() {
        h.push_str("<p>No stage broke or opened anything.</p>\n");
        return;
    }
    h.push_str("<table>\n<tr><th class=\"l\">stage</th><th class=\"l\">change</th><th class=\"l\">probe</th><th class=\"l\">before → after</th><th class=\"l\">decided by</th></tr>\n");
    for c in &r.changes {
        let kind = if c.expected {
            format!("{} (expected)", c.kind)
        } else {
            format!("<span class=\"pill fail\">{}</span>", esc(&c.kind))
        };
        let _ = writeln!(
            h,
            "<tr{}><td>{}</td><td class=\"l\">{kind}</td><td class=\"l\">{} → {} {}</td><td class=\"l\">{} → {}</td><td class=\"l\">{}</td></tr>",
            if c.expected { "" } else { " class=\"fail\"" },
            esc(&c.to_stage),
            esc(&c.from),
            esc(&c.to),
            esc(&c.request),
            esc(&c.before),
            esc(&c.after),
            esc(c.decided_by.as_deref().unwrap_or("–"))
        );
    }
    h.push_str("</table>\n");
}

/// The monitoring check: the user's queries at each stage, the cell's title holding a sample
/// series, then what goes silent and what matches nothing.
fn monitoring(h: &mut String, run: &RunResult) {
    let Some(m) = run.reach.as_ref().and_then(|r| r.monitoring.as_ref()) else {
        return;
    };
    h.push_str("<h2 id=\"monitoring\">Monitoring: your queries, stage by stage</h2>\n");
    if let Some(why) = &m.skipped {
        let _ = writeln!(h, "<p>Skipped: {}</p>", esc(why));
        return;
    }
    let _ = writeln!(
        h,
        "<p class=\"note\">Each alert, recording rule and dashboard query evaluated by a real Prometheus {} scraping every proxy's metrics on a cluster of each stage, after the reachability probes. A cell is the number of series returned and the first one's value (hover for its labels): the values measure the probes' traffic on each stage's own cluster, not the load, so read them for presence, not size.</p>",
        esc(m.prometheus.as_deref().unwrap_or("?"))
    );
    h.push_str("<table>\n<tr><th class=\"l\">query</th>");
    for st in &m.stages {
        let _ = write!(h, "<th>{}</th>", esc(st));
    }
    h.push_str("</tr>\n");
    for q in &m.queries {
        let _ = write!(
            h,
            "<tr{}><td class=\"l\" title=\"{}\">{} <span class=\"note\">{}:{}</span></td>",
            if q.flags.is_empty() {
                ""
            } else {
                " class=\"fail\""
            },
            esc(&q.expr),
            esc(&q.name),
            esc(&q.file),
            q.line
        );
        for a in &q.at {
            let title = a.error.as_deref().or(a.sample.as_deref()).unwrap_or("");
            let _ = write!(
                h,
                "<td title=\"{}\">{}</td>",
                esc(title),
                esc(&super::markdown::monitoring_cell(a))
            );
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    let flags: Vec<String> = m
        .flagged()
        .flat_map(|q| {
            q.flags
                .iter()
                .map(move |f| format!("<li><b>{}</b>: {}</li>", esc(&q.name), esc(f)))
        })
        .collect();
    if !flags.is_empty() {
        let _ = writeln!(h, "<ul>{}</ul>", flags.join(""));
    }
    let notes: Vec<String> = m
        .queries
        .iter()
        .filter_map(|q| {
            q.note
                .as_ref()
                .map(|n| format!("{}: {}", esc(&q.name), esc(n)))
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", notes.join("<br>"));
    }
}

/// The migration checklist (`meshsim check`) closes the report: each item with its evidence
/// and the Istio source it applies.
fn checklist(h: &mut String, run: &RunResult) {
    if run.checklist.is_empty() {
        return;
    }
    h.push_str("<h2 id=\"checklist\">Migration checklist</h2>\n<table>\n<tr><th class=\"l\">item</th><th class=\"l\">status</th><th class=\"l\">evidence</th><th class=\"l\">source</th></tr>\n");
    for i in &run.checklist {
        let pill = match i.status.as_str() {
            "failed" => "<span class=\"pill fail\">failed</span>".to_string(),
            "verified" => "<span class=\"pill pass\">verified</span>".to_string(),
            s => esc(s),
        };
        let evidence: Vec<String> = i.evidence.iter().map(|e| esc(e)).collect();
        let _ = writeln!(
            h,
            "<tr{}><td>{}</td><td class=\"l\">{pill}</td><td class=\"l\">{}</td><td class=\"l note\">{}</td></tr>",
            if i.status == "failed" {
                " class=\"fail\""
            } else {
                ""
            },
            esc(&i.title),
            evidence.join("<br>"),
            esc(&i.source)
        );
    }
    h.push_str("</table>\n");
}

fn verdicts(h: &mut String, run: &RunResult) {
    let total: usize = run.modes.iter().map(|m| m.slo.len()).sum();
    if total == 0 {
        return;
    }
    h.push_str("<h2 id=\"slo\">SLO verdicts</h2>\n<table>\n<tr><th>mode</th><th class=\"l\">SLO</th><th class=\"l\">description</th><th>observed</th><th>limit</th><th>verdict</th></tr>\n");
    for m in run.sorted_modes() {
        for v in &m.slo {
            let _ = writeln!(
                h,
                "<tr{}><td>{}{}{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if v.passed { "" } else { " class=\"fail\"" },
                swatch(m.mode),
                m.mode,
                repeat_suffix(run, m.repeat),
                esc(&v.name),
                esc(&v.description),
                trim_num(v.observed),
                trim_num(v.limit),
                if v.passed {
                    "<span class=\"pill pass\">pass</span>"
                } else {
                    "<span class=\"pill fail\">FAIL</span>"
                }
            );
        }
    }
    h.push_str("</table>\n");
}

fn details(h: &mut String, run: &RunResult) {
    h.push_str("<h2 id=\"details\">Details per mode</h2>\n");
    for m in run.sorted_modes() {
        let _ = writeln!(
            h,
            "<details><summary>{}{}{} — process {} vCPU, components {} vCPU{}</summary>",
            swatch(m.mode),
            m.mode,
            repeat_suffix(run, m.repeat),
            fmt::vcpu(m.process_vcpu_avg),
            fmt::vcpu(m.components_vcpu_sum),
            m.host_steal_share
                .map(|s| format!(", host steal {:.1}%", s * 100.0))
                .unwrap_or_default()
                + &m.host_probe
                    .map(|p| format!(
                        ", host round trip {:.0} µs ({:.0} µs of CPU paced)",
                        p.back_to_back.round_trip_us, p.paced.cpu_per_round_trip_us
                    ))
                    .unwrap_or_default()
        );
        h.push_str("<h3>Flows</h3>\n<table><tr><th>flow</th><th>rate</th><th>achieved</th><th>requests</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>p99.99</th><th>max</th><th class=\"l\">errors</th></tr>\n");
        for f in &m.flows {
            for s in &f.steps {
                let errors = if s.errors.is_empty() {
                    "none".to_string()
                } else {
                    s.errors
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let l = &s.latency;
                let _ = writeln!(
                    h,
                    "<tr><td>{} <span class=\"note\">{} → {}, {}</span></td><td>{}</td><td>{:.1} rps</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                    esc(&f.name),
                    esc(&f.from),
                    esc(&f.to),
                    esc(&f.protocol),
                    rate_label(s.target_rps),
                    s.achieved_rps,
                    s.requests,
                    fmt::ms(l.p50_us),
                    fmt::ms(l.p90_us),
                    fmt::ms(l.p99_us),
                    fmt::ms(l.p999_us),
                    fmt::ms(l.p9999_us),
                    fmt::ms(l.max_us),
                    esc(&errors)
                );
            }
        }
        h.push_str("</table>\n<h3>Components</h3>\n<table><tr><th>component</th><th class=\"l\">kind</th><th>vCPU avg</th><th>of which floor</th><th>rps counted</th><th>vCPU / 1000 rps</th><th>MiB avg</th><th>MiB peak</th><th>MiB modeled</th><th>CPU limit</th></tr>\n");
        for c in &m.components {
            let limit = match c.cpu_limit_millis {
                None => "none".to_string(),
                Some(l) if c.cpu_limit_enforced => format!("{l}m"),
                Some(l) => format!("{l}m (not enforced)"),
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td title=\"{}\">{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.name),
                c.kind,
                fmt::vcpu(c.vcpu_avg),
                fmt::opt(c.vcpu_floor_avg, fmt::vcpu),
                esc(&c.requests_are),
                c.rps_avg,
                fmt::opt(c.vcpu_per_1000rps, fmt::vcpu),
                fmt::mib(c.heap_mib_avg),
                fmt::mib(c.heap_mib_peak),
                fmt::opt(c.modeled_mib, fmt::mib),
                esc(&limit)
            );
        }
        h.push_str("</table>\n</details>\n");
    }
}

//! Everything a person reads after a run: charts (SVG inline in the HTML, and PNG), the
//! self-contained `report.html`, and `summary.md` for a CI job summary.
//!
//! Output depends only on the `RunResult`: the same result gives byte-identical files (no
//! timestamps, no hash-map order, fonts vendored rather than taken from the system).

mod charts;
mod html;
pub use html::{esc, page_head, report_html};
mod markdown;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

pub use charts::{
    BandPanel, ChartData, FONT_FAMILY, Line, ResourceBar, TimePanel, mode_color, percentile_label,
};
pub use markdown::{monitoring_markdown, summary_markdown};

use crate::hist::HistogramError;
use crate::run::{ComponentKind, Mode, ModeResult, RunResult, median};

/// DejaVu Sans, vendored so rendering needs no system fonts (licence in assets/fonts/LICENSE).
pub const FONT_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot create the output directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mode {mode}, flow {flow}: {source}")]
    Histogram {
        mode: Mode,
        flow: String,
        source: HistogramError,
    },
    #[error("drawing chart {chart} failed: {message}")]
    Draw { chart: String, message: String },
    #[error("the vendored font could not be loaded; the meshsim build is broken")]
    Font,
}

/// A rendered chart: the SVG text for inline HTML, and where its PNG was written.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File-name-safe identifier, also the PNG's stem.
    pub id: String,
    pub title: String,
    /// One sentence saying what to read from it.
    pub caption: String,
    pub svg: String,
    pub png: PathBuf,
}

fn register_fonts() -> Result<(), RenderError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = DONE.get_or_init(|| {
        // "sans-serif" too: plotters falls back to it for any text style not set explicitly.
        [FONT_FAMILY, "sans-serif"]
            .into_iter()
            .all(|name| plotters::style::register_font(name, FontStyle::Normal, FONT_TTF).is_ok())
    });
    if *ok { Ok(()) } else { Err(RenderError::Font) }
}

/// Write the charts (PNG), `report.html` and `summary.md` into `out_dir` (normally the run's
/// directory, next to `run.json`); returns the files written.
pub fn render_all(run: &RunResult, out_dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, RenderError> {
    let out_dir = out_dir.as_ref();
    std::fs::create_dir_all(out_dir).map_err(|source| RenderError::CreateDir {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let charts = render_charts(run, out_dir)?;
    let mut written: Vec<PathBuf> = charts.iter().map(|c| c.png.clone()).collect();
    let write = |name: &str, text: String| -> Result<PathBuf, RenderError> {
        let path = out_dir.join(name);
        std::fs::write(&path, text).map_err(|source| RenderError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };
    written.push(write("report.html", html::report_html(run, &charts))?);
    written.push(write("summary.md", summary_markdown(run))?);
    Ok(written)
}

/// One chart drawn to SVG (for a page of another tool, e.g. a capacity plan).
pub fn svg_of(id: &str, data: &ChartData) -> Result<String, RenderError> {
    register_fonts()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, data.size()).into_drawing_area();
        data.draw(&root).map_err(|e| RenderError::Draw {
            chart: id.to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(svg)
}

/// Draw every chart to SVG and write its PNG into `out_dir`.
pub fn render_charts(run: &RunResult, out_dir: &Path) -> Result<Vec<Chart>, RenderError> {
    register_fonts()?;
    let mut out = Vec::new();
    for (id, title, caption, data) in chart_data(run)? {
        let size = data.size();
        let draw_err = |e: &dyn std::fmt::Display| RenderError::Draw {
            chart: id.clone(),
            message: e.to_string(),
        };
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            data.draw(&root).map_err(|e| draw_err(&e))?;
        }
        let png = out_dir.join(format!("{id}.png"));
        {
            let root = BitMapBackend::new(&png, size).into_drawing_area();
            data.draw(&root).map_err(|e| draw_err(&e))?;
        }
        out.push(Chart {
            id,
            title,
            caption,
            svg,
            png,
        });
    }
    Ok(out)
}

fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

pub(crate) fn rate_label(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{r} rps"),
        None => "max rate".into(),
    }
}

type ChartSpec = (String, String, String, ChartData);

/// What each chart shows, from the run. Flows are taken from the first mode (every mode runs
/// the same flows); repeats are merged (histograms) or reduced to their median.
pub fn chart_data(run: &RunResult) -> Result<Vec<ChartSpec>, RenderError> {
    let modes = run.mode_names();
    let Some(first) = run.sorted_modes().into_iter().next() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for flow in &first.flows {
        let Some(hl) = flow.headline_step() else {
            continue;
        };
        let rate = flow.steps.get(hl).and_then(|s| s.target_rps);
        out.push(spectrum(run, &modes, &flow.name, hl, rate)?);
    }
    for flow in first.flows.iter().filter(|f| f.steps.len() >= 2) {
        out.push(rates(run, &modes, &flow.name));
    }
    out.extend(cpu_vs_rate(run, &modes));
    out.push(resources(run, &modes));
    for flow in &first.flows {
        out.push(time_series(run, &modes, &flow.name));
    }
    Ok(out)
}

fn flow_of<'a>(m: &'a ModeResult, name: &str) -> Option<&'a crate::run::FlowResult> {
    m.flows.iter().find(|f| f.name == name)
}

fn spectrum(
    run: &RunResult,
    modes: &[Mode],
    flow: &str,
    step: usize,
    rate: Option<f64>,
) -> Result<ChartSpec, RenderError> {
    let mut hists = Vec::new();
    for &mode in modes {
        let mut merged: Option<hdrhistogram::Histogram<u64>> = None;
        for m in run.repeats_of(mode) {
            let Some(s) = flow_of(m, flow).and_then(|f| f.steps.get(step)) else {
                continue;
            };
            let h = s
                .latency
                .decode_histogram()
                .map_err(|source| RenderError::Histogram {
                    mode,
                    flow: flow.to_string(),
                    source,
                })?;
            match merged.as_mut() {
                None => merged = Some(h),
                // Histograms of one run share bounds, so adding cannot fail; if a hand-edited
                // file breaks that, the repeat is left out rather than failing the report.
                Some(acc) => {
                    let _ = acc.add(&h);
                }
            }
        }
        if let Some(h) = merged.filter(|h| !h.is_empty()) {
            hists.push((mode, h));
        }
    }
    let x_max = hists
        .iter()
        .map(|(_, h)| (h.len() as f64).log10())
        .fold(1.0, f64::max)
        .min(5.0);
    const N: usize = 240;
    let lines = hists
        .iter()
        .map(|(mode, h)| Line {
            mode: *mode,
            points: (0..=N)
                .map(|i| {
                    let x = x_max * i as f64 / N as f64;
                    let q = 1.0 - 10f64.powf(-x);
                    (x, h.value_at_quantile(q) as f64 / 1000.0)
                })
                .collect(),
        })
        .collect();
    let title = format!("Latency by percentile: flow {flow} @ {}", rate_label(rate));
    Ok((
        format!("latency-spectrum-{}", file_safe(flow)),
        title.clone(),
        "Latency from the intended send time (coordinated-omission corrected), whole histogram; the gap between a mode's line and no-mesh is the latency it adds at that percentile.".into(),
        ChartData::Spectrum {
            title,
            x_max,
            lines,
        },
    ))
}

fn rates(run: &RunResult, modes: &[Mode], flow: &str) -> ChartSpec {
    type Pick = fn(&crate::run::LatencySummary) -> f64;
    let picks: [(&str, Pick); 3] = [
        ("p50", |l| l.p50_us),
        ("p90", |l| l.p90_us),
        ("p99", |l| l.p99_us),
    ];
    let all_targeted = run
        .modes
        .iter()
        .filter_map(|m| flow_of(m, flow))
        .all(|f| f.steps.iter().all(|s| s.target_rps.is_some()));
    let panels = picks
        .iter()
        .map(|(name, pick)| {
            let lines = modes
                .iter()
                .map(|&mode| {
                    let reps = run.repeats_of(mode);
                    let n_steps = reps
                        .iter()
                        .filter_map(|m| flow_of(m, flow))
                        .map(|f| f.steps.len())
                        .max()
                        .unwrap_or(0);
                    // Steps at one target rate are one point, whatever their order: a rate
                    // search runs its steps out of order, and differently in each repeat.
                    let all: Vec<(usize, &crate::run::StepResult)> = reps
                        .iter()
                        .filter_map(|m| flow_of(m, flow))
                        .flat_map(|f| f.steps.iter().enumerate())
                        .filter(|(_, s)| s.latency.count > 0)
                        .collect();
                    let mut groups: BTreeMap<u64, Vec<&crate::run::StepResult>> = BTreeMap::new();
                    for (si, s) in all.iter().filter(|(si, _)| *si < n_steps) {
                        let key = match (all_targeted, s.target_rps) {
                            (true, Some(r)) => r.to_bits(),
                            _ => *si as u64,
                        };
                        groups.entry(key).or_default().push(s);
                    }
                    let mut points: Vec<(f64, f64)> = groups
                        .values()
                        .filter_map(|steps| {
                            let x = if all_targeted {
                                steps.first().and_then(|s| s.target_rps)
                            } else {
                                median(steps.iter().map(|s| s.achieved_rps).collect())
                            }?;
                            let y =
                                median(steps.iter().map(|s| pick(&s.latency) / 1000.0).collect())?;
                            Some((x, y))
                        })
                        .collect();
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Line { mode, points }
                })
                .collect();
            (name.to_string(), lines)
        })
        .collect();
    let title = format!("Latency against rate: flow {flow}");
    (
        format!("latency-vs-rate-{}", file_safe(flow)),
        title.clone(),
        "Where a line bends upwards the mode is running out of CPU; compare at equal rates.".into(),
        ChartData::Rates {
            title,
            x_label: if all_targeted {
                "target rate (rps)".into()
            } else {
                "achieved rate (rps)".into()
            },
            y_label: "latency (ms)".into(),
            panels,
        },
    )
}

/// Each proxy kind's CPU against its own request rate over the steps: one point per mode and
/// step, the mean proxy of that kind (over its proxies and repeats). Measured on this machine, under
/// the run's cost profile; a capacity plan fits its model to these points.
fn cpu_vs_rate(run: &RunResult, modes: &[Mode]) -> Option<ChartSpec> {
    let points = results::costfit::cpu_points(run);
    let panels: Vec<(String, Vec<Line>)> = ComponentKind::ALL
        .into_iter()
        .filter(|k| k.is_proxy() && points.iter().any(|p| p.kind == *k))
        .map(|kind| {
            let lines = modes
                .iter()
                .filter_map(|&mode| {
                    let of = |step: usize, repeat_points: &[&results::costfit::CpuPoint]| {
                        let ps: Vec<_> = repeat_points.iter().filter(|p| p.step == step).collect();
                        (!ps.is_empty()).then(|| {
                            let n = ps.len() as f64;
                            (
                                ps.iter().map(|p| p.rps).sum::<f64>() / n,
                                ps.iter().map(|p| p.vcpu).sum::<f64>() / n,
                            )
                        })
                    };
                    let mine: Vec<_> = points
                        .iter()
                        .filter(|p| p.kind == kind && p.mode == mode)
                        .collect();
                    let steps = mine.iter().map(|p| p.step).max()? + 1;
                    let mut points: Vec<(f64, f64)> =
                        (0..steps).filter_map(|s| of(s, &mine)).collect();
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    (points.len() >= 2).then_some(Line { mode, points })
                })
                .collect::<Vec<_>>();
            (format!("{kind}: vCPU per proxy"), lines)
        })
        .filter(|(_, lines)| !lines.is_empty())
        .collect();
    if panels.is_empty() {
        return None;
    }
    let title =
        "Proxy CPU against the rate each proxy handled (measured on this machine)".to_string();
    Some((
        "cpu-vs-rate".into(),
        title.clone(),
        format!(
            "Each point is one step: the mean proxy of a kind, its own request count per second against its CPU, under cost profile {}. The slope is the CPU per request a capacity plan fits (`meshsim plan --costs run.json`).",
            run.profile.name
        ),
        ChartData::Rates {
            title,
            x_label: "requests per second through one proxy".into(),
            y_label: "vCPU per proxy".into(),
            panels,
        },
    ))
}

fn resources(run: &RunResult, modes: &[Mode]) -> ChartSpec {
    let kinds: Vec<ComponentKind> = ComponentKind::ALL
        .into_iter()
        .filter(|k| {
            run.modes
                .iter()
                .any(|m| m.components.iter().any(|c| c.kind == *k))
        })
        .collect();
    let mut bars = Vec::new();
    for &mode in modes {
        let reps = run.repeats_of(mode);
        let n = reps.len().max(1) as f64;
        for &kind in &kinds {
            let cs = || {
                reps.iter()
                    .flat_map(|m| m.components.iter())
                    .filter(move |c| c.kind == kind)
            };
            if cs().next().is_none() {
                continue;
            }
            let floors: Vec<f64> = cs().filter_map(|c| c.vcpu_floor_avg).collect();
            bars.push(ResourceBar {
                kind,
                mode,
                vcpu: cs().map(|c| c.vcpu_avg).sum::<f64>() / n,
                vcpu_floor: (!floors.is_empty()).then(|| floors.iter().sum::<f64>() / n),
                mib_measured: cs().map(|c| c.heap_mib_avg).sum::<f64>() / n,
                mib_modeled: cs().filter_map(|c| c.modeled_mib).sum::<f64>() / n,
            });
        }
    }
    let title = format!(
        "CPU and memory by component, per mode (profile {})",
        run.profile.name
    );
    (
        "resources".into(),
        title.clone(),
        "Averages over the whole mode run, summed over all instances of a kind.".into(),
        ChartData::Resources {
            title,
            kinds,
            modes: modes.to_vec(),
            bars,
        },
    )
}

fn time_series(run: &RunResult, modes: &[Mode], flow: &str) -> ChartSpec {
    let (mut rate, mut failed, mut p99, mut cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bands = Vec::new();
    let mut faults: Vec<String> = Vec::new();
    for &mode in modes {
        // One repeat: averaging time lines of different runs would blur the events in them.
        let Some(first) = run.repeats_of(mode).first().copied() else {
            continue;
        };
        for fr in first.faults.iter().filter(|f| f.not_applied.is_none()) {
            bands.push((fr.start_s, fr.end_s));
            if !faults.contains(&fr.label) {
                faults.push(fr.label.clone());
            }
        }
        let Some(f) = flow_of(first, flow) else {
            continue;
        };
        let (mut r, mut e, mut p) = (Vec::new(), Vec::new(), Vec::new());
        for step in &f.steps {
            // A step's first sample is a whole second (its warmup came before it).
            let mut prev = step.series.first().map_or(0.0, |s| s.t_s - 1.0);
            for s in &step.series {
                let dt = s.t_s - prev;
                let dt = if dt > 0.0 { dt } else { 1.0 };
                prev = s.t_s;
                r.push((s.t_s, s.requests as f64 / dt));
                e.push((s.t_s, s.errors as f64 / dt));
                // A second with no answer has no latency (not a latency of zero).
                if s.requests > 0 {
                    p.push((s.t_s, s.p99_us / 1000.0));
                }
            }
        }
        rate.push(Line { mode, points: r });
        failed.push(Line { mode, points: e });
        p99.push(Line { mode, points: p });
        let proxy_cpu = proxies_cpu(first);
        if !proxy_cpu.is_empty() {
            cpu.push(Line {
                mode,
                points: proxy_cpu,
            });
        }
    }
    let panel = |y_desc: &str, decimals, lines| TimePanel {
        y_desc: y_desc.to_string(),
        decimals,
        lines,
    };
    let mut panels = vec![
        panel("achieved rate (rps)", 0, rate),
        panel("failed (per s)", 0, failed),
        panel("p99 latency (ms)", 2, p99),
    ];
    if !cpu.is_empty() {
        panels.push(panel("all proxies (vCPU)", 2, cpu));
    }
    let title = format!("Over time: flow {flow}");
    (
        format!("timeseries-{}", file_safe(flow)),
        title.clone(),
        format!(
            "Per second (first repeat): the flow's achieved rate, its failed requests (every kind), its p99, and the CPU of all the mode's proxies together (measured, the floor included). Modes that kept up with the target rate overlap in the top panel; a spike in one mode only points at that mode, spikes in all at the machine.{}",
            if faults.is_empty() {
                String::new()
            } else {
                format!(
                    " Shaded: faults ({}), from their start until the component was back or the fault removed.",
                    faults.join("; ")
                )
            }
        ),
        ChartData::TimeSeries {
            title,
            panels,
            bands,
        },
    )
}

/// Every proxy's vCPU summed per meter interval, at the interval's end.
fn proxies_cpu(m: &ModeResult) -> Vec<(f64, f64)> {
    let mut sum: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for c in m.components.iter().filter(|c| c.kind.is_proxy()) {
        for (t, v) in c.series.t_s.iter().zip(&c.series.vcpu) {
            // The meter samples every component at once: same instants, keyed to the ms.
            let e = sum.entry((t * 1000.0).round() as u64).or_insert((*t, 0.0));
            e.1 += v;
        }
    }
    sum.into_values().collect()
}

/// Formatting shared by the HTML and Markdown outputs.
pub(crate) mod fmt {
    pub fn ms_delta(us: f64) -> String {
        format!("{:+.3} ms", us / 1000.0)
    }
    pub fn ms(us: f64) -> String {
        format!("{:.3} ms", us / 1000.0)
    }
    pub fn vcpu(v: f64) -> String {
        format!("{v:.3}")
    }
    /// `(model, floor)` vCPU as `0.200 = 0.041 model + 0.159 floor`; the model's alone when
    /// the profile burned no floor.
    pub fn vcpu_split((model, floor): (f64, f64)) -> String {
        if floor > 0.0 {
            format!(
                "{} = {} model + {} floor",
                vcpu(model + floor),
                vcpu(model),
                vcpu(floor)
            )
        } else {
            vcpu(model)
        }
    }
    pub fn mib(v: f64) -> String {
        format!("{v:.1}")
    }
    pub fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
        v.map_or_else(|| "–".to_string(), f)
    }
}

/// The headline table as text cells, shared by HTML and Markdown; a cell with several lines
/// (one per proxy kind) is a Vec.
pub(crate) struct HeadlineCells {
    pub mode: String,
    pub added: [String; 3],
    pub achieved_rps: String,
    pub proxies: Vec<String>,
    pub vcpu_per_proxy: Vec<String>,
    pub mib_per_proxy: Vec<String>,
    pub total_vcpu: String,
    pub total_mib: String,
}

pub(crate) const HEADLINE_HEADER: [&str; 10] = [
    "mode",
    "added p50",
    "added p90",
    "added p99",
    "achieved",
    "proxies",
    "vCPU / 1000 rps per proxy (model + floor)",
    "MiB per proxy (measured + modeled)",
    "all proxies: vCPU / 1000 rps of load (model + floor)",
    "all proxies: MiB (measured + modeled)",
];

pub(crate) fn headline_cells(run: &RunResult) -> Vec<HeadlineCells> {
    run.headline()
        .into_iter()
        .map(|r| {
            let added = match (r.mode, r.added_latency_us) {
                (Mode::NoMesh, _) => ["baseline".to_string(), "baseline".into(), "baseline".into()],
                (_, Some(a)) => [
                    fmt::ms_delta(a.p50),
                    fmt::ms_delta(a.p90),
                    fmt::ms_delta(a.p99),
                ],
                (_, None) => ["–".to_string(), "–".into(), "–".into()],
            };
            let none = |v: Vec<String>| {
                if v.is_empty() {
                    vec!["–".to_string()]
                } else {
                    v
                }
            };
            HeadlineCells {
                mode: if r.repeats > 1 {
                    format!("{} (median of {})", r.mode, r.repeats)
                } else {
                    r.mode.to_string()
                },
                added,
                achieved_rps: format!("{:.0} rps", r.achieved_rps),
                proxies: none(
                    r.proxies
                        .iter()
                        .map(|(k, p)| format!("{} {k}", p.count))
                        .collect(),
                ),
                vcpu_per_proxy: none(
                    r.proxies
                        .iter()
                        .map(|(k, p)| match p.vcpu_per_1000rps_split() {
                            Some(split) => format!("{k} {}", fmt::vcpu_split(split)),
                            None => format!("{k} idle"),
                        })
                        .collect(),
                ),
                mib_per_proxy: none(
                    r.proxies
                        .iter()
                        .map(|(k, p)| match p.mib_modeled_per_proxy {
                            Some(m) => format!(
                                "{k} {} + {} = {}",
                                fmt::mib(p.mib_per_proxy),
                                fmt::mib(m),
                                fmt::mib(p.mib_planned_per_proxy())
                            ),
                            None => format!("{k} {}", fmt::mib(p.mib_per_proxy)),
                        })
                        .collect(),
                ),
                total_vcpu: match (r.proxies.is_empty(), r.total_vcpu_per_1000rps) {
                    (false, Some(all)) => {
                        let floor = r.total_vcpu_floor_per_1000rps.unwrap_or(0.0).min(all);
                        fmt::vcpu_split((all - floor, floor))
                    }
                    _ => "–".into(),
                },
                total_mib: if r.proxies.is_empty() {
                    "–".into()
                } else if r.total_mib_modeled > 0.0 {
                    format!(
                        "{} + {} = {}",
                        fmt::mib(r.total_mib_measured),
                        fmt::mib(r.total_mib_modeled),
                        fmt::mib(r.total_mib_measured + r.total_mib_modeled)
                    )
                } else {
                    fmt::mib(r.total_mib_measured)
                },
            }
        })
        .collect()
}

/// One proxy kind in one mode, measured on this machine beside the cost profile's projection
/// at the same load.
pub struct ProjectionRow {
    pub mode: Mode,
    pub kind: String,
    pub count: u32,
    pub rps_per_proxy: String,
    pub vcpu_measured: String,
    pub vcpu_projected: String,
    /// Measured over projected, `×1.12`.
    pub vcpu_ratio: String,
    /// Measured heap, and what the profile models beyond it (its floor, not measured).
    pub mib_measured: String,
    pub mib_projected: String,
}

/// Measured against projected, per mode and proxy kind (medians over repeats); empty when the
/// profile has no cost model.
pub fn projection_rows(run: &RunResult) -> Vec<ProjectionRow> {
    let ratio = |m: f64, p: f64| {
        if p > 0.0 {
            format!("×{:.2}", m / p)
        } else {
            "–".into()
        }
    };
    run.headline()
        .into_iter()
        .flat_map(|r| {
            r.proxies.into_iter().filter_map(move |(k, p)| {
                let pr = p.projected?;
                Some(ProjectionRow {
                    mode: r.mode,
                    kind: k.to_string(),
                    count: p.count,
                    rps_per_proxy: format!("{:.0}", p.rps_per_proxy),
                    vcpu_measured: fmt::vcpu(p.vcpu_per_proxy),
                    vcpu_projected: fmt::vcpu(pr.vcpu_per_proxy),
                    vcpu_ratio: ratio(p.vcpu_per_proxy, pr.vcpu_per_proxy),
                    mib_measured: match p.mib_modeled_per_proxy {
                        Some(m) => format!(
                            "{} heap + {} modeled",
                            fmt::mib(p.mib_per_proxy),
                            fmt::mib(m)
                        ),
                        None => format!("{} heap", fmt::mib(p.mib_per_proxy)),
                    },
                    mib_projected: fmt::mib(pr.mib_per_proxy),
                })
            })
        })
        .collect()
}

/// What the projection columns mean, for both outputs.
pub const PROJECTION_NOTE: &str = "Measured: on this machine, per proxy, over the measured steps (MiB: the heap measured, and what the profile's memory floor adds beyond it, which is modeled and so mostly agrees with the projection by construction). Projected: the profile's cost model (its sourced `model:`, the one `meshsim plan` uses) at the load these proxies counted themselves (requests, bytes at the mode's mean per request, new and peak connections) and their configuration scope. A ratio far from 1 says this machine's proxies cost differently from the published figures the model holds.";

/// "3 sidecar, 2 ambient, 1 out of the mesh" for one mode's pods.
pub fn dataplane_counts(m: &crate::run::ModeResult) -> String {
    use crate::run::DataPlane;
    let mut counts: std::collections::BTreeMap<DataPlane, usize> = Default::default();
    for p in &m.pods {
        *counts.entry(p.dataplane).or_default() += 1;
    }
    counts
        .iter()
        .map(|(d, n)| match d {
            DataPlane::None => format!("{n} out of the mesh"),
            d => format!("{n} {d}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row of the migration's stage table: what the stage changed, what the load saw, what
/// the proxies cost over its measured window, and its transition.
pub struct StageRow {
    pub name: String,
    pub changes: Vec<String>,
    /// Per flow: `name p50 / p99 ms`, with its errors in the window.
    pub flows: Vec<String>,
    /// Per proxy kind that ran: `3 sidecar 0.255 vCPU`.
    pub cpu: Vec<String>,
    /// All proxies: `measured + modeled = total MiB`.
    pub mib: String,
    /// `none`, or the failed requests, their kinds and the time to clear.
    pub transition: String,
}

/// The stage table of a mode that applied a migration live (repeat 0).
pub fn stage_rows(m: &crate::run::ModeResult) -> Vec<StageRow> {
    let ms = |us: f64| us / 1000.0;
    m.stages
        .iter()
        .map(|st| {
            let flows = m
                .flows
                .iter()
                .filter_map(|f| {
                    let s = f.steps.get(st.step)?;
                    let errors: u64 = s.errors.values().sum();
                    // No request answered: no latency to show.
                    let lat = if s.latency.count == 0 {
                        "– / –".to_string()
                    } else {
                        format!("{:.2} / {:.2}", ms(s.latency.p50_us), ms(s.latency.p99_us))
                    };
                    Some(format!(
                        "{} {lat} ms{}",
                        f.name,
                        if errors > 0 {
                            format!(
                                ", {errors} errors ({})",
                                s.errors
                                    .iter()
                                    .map(|(k, n)| format!("{n} {k}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        } else {
                            String::new()
                        }
                    ))
                })
                .collect();
            let cpu = st
                .totals
                .iter()
                .filter(|t| {
                    t.running > 0 && matches!(t.kind.as_str(), "sidecar" | "ztunnel" | "waypoint")
                })
                .map(|t| format!("{} {} {:.3} vCPU", t.running, t.kind, t.vcpu))
                .collect();
            let mib = st
                .totals
                .iter()
                .find(|t| t.kind == "proxies")
                .map(|t| {
                    format!(
                        "{:.1} + {:.1} = {:.1}",
                        t.heap_mib,
                        t.modeled_mib,
                        t.heap_mib + t.modeled_mib
                    )
                })
                .unwrap_or_else(|| "–".into());
            let transition = match &st.transition {
                None => "–".to_string(),
                Some(t) if t.failed == 0 => "no errors".to_string(),
                Some(t) => {
                    let kinds: Vec<String> =
                        t.errors.iter().map(|(k, n)| format!("{n} {k}")).collect();
                    let clear = match t.cleared_after_s {
                        Some(c) => format!("clear after {c:.1} s"),
                        None => {
                            let stuck: Vec<&str> = t
                                .flows
                                .iter()
                                .filter(|f| f.cleared_after_s.is_none())
                                .map(|f| f.flow.as_str())
                                .collect();
                            format!("never clear in the stage ({})", stuck.join(", "))
                        }
                    };
                    format!(
                        "{} failed{}; {clear}",
                        t.failed,
                        if kinds.is_empty() {
                            String::new()
                        } else {
                            format!(" (warmup: {})", kinds.join(", "))
                        }
                    )
                }
            };
            StageRow {
                name: st.name.clone(),
                changes: st.changes.clone(),
                flows,
                cpu,
                mib,
                transition,
            }
        })
        .collect()
}

/// One line per fault of a mode (first repeat): what it did to the load.
pub fn fault_lines(m: &crate::run::ModeResult) -> Vec<String> {
    let secs =
        |v: Option<f64>, never: &str| v.map_or_else(|| never.to_string(), |s| format!("{s:.1} s"));
    m.faults
        .iter()
        .map(|f| match &f.not_applied {
            Some(why) => format!("{} (step {}): not applied: {why}", f.label, f.step + 1),
            None => format!(
                "{} (step {}, {:.1}–{:.1} s): {} request(s) failed{}; first error-free second after {}; p99 back within 10% after {}{}",
                f.label,
                f.step + 1,
                f.start_s,
                f.end_s,
                f.failed,
                if f.errors.is_empty() {
                    String::new()
                } else {
                    let kinds: Vec<String> =
                        f.errors.iter().map(|(k, n)| format!("{n} {k}")).collect();
                    format!(" ({})", kinds.join(", "))
                },
                secs(f.clean_after_s, "never (in the step)"),
                secs(f.p99_recovered_after_s, "never (in the step)"),
                f.note.as_ref().map(|c| format!("; {c}")).unwrap_or_default()
            ),
        })
        .collect()
}

/// One flow's rate search in one mode (repeat), for the report and summary.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRow {
    pub flow: String,
    pub mode: Mode,
    pub repeat: u32,
    /// `3150 rps`, or what stopped it.
    pub max: String,
    pub first_failing: String,
    /// The steps in the order they ran, each `rate ✓` or `rate ✗`.
    pub steps: String,
    pub criteria: String,
}

/// Every flow's `rate: search` result, per mode and repeat.
pub fn search_rows(run: &RunResult) -> Vec<SearchRow> {
    let mut out = Vec::new();
    for m in run.sorted_modes() {
        for f in &m.flows {
            let Some(s) = &f.search else { continue };
            let rps =
                |v: Option<f64>, none: &str| v.map_or(none.to_string(), |r| format!("{r:.0} rps"));
            out.push(SearchRow {
                flow: f.name.clone(),
                mode: m.mode,
                repeat: m.repeat,
                max: rps(s.max_rps, "none: the lowest step failed"),
                first_failing: rps(s.first_failing_rps, "none: stopped at the ceiling"),
                steps: f
                    .steps
                    .iter()
                    .zip(&s.passed)
                    .filter_map(|(st, ok)| {
                        Some(format!(
                            "{:.0} {}",
                            st.target_rps?,
                            if *ok { "✓" } else { "✗" }
                        ))
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                criteria: s.criteria.join(", "),
            });
        }
    }
    out
}

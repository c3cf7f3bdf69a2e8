//! The charts, drawn once per backend (SVG for the HTML, bitmap for PNG) from plain data, so
//! both files show exactly the same thing.

use plotters::coord::Shift;
use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::run::{ComponentKind, Mode};

/// Family the vendored font is registered under; the HTML's @font-face uses the same name so
/// SVG text renders with the font its layout was measured with.
pub const FONT_FAMILY: &str = "meshsim-sans";

pub type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

const GRID: RGBColor = RGBColor(232, 232, 232);
const AXIS: RGBColor = RGBColor(90, 90, 90);
const TEXT: RGBColor = RGBColor(40, 40, 40);

/// Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
pub fn mode_color(mode: Mode) -> RGBColor {
    match mode {
        Mode::NoMesh => RGBColor(85, 85, 85),
        Mode::Sidecar => RGBColor(0, 114, 178),
        Mode::Ambient => RGBColor(0, 158, 115),
        Mode::AmbientWaypoint => RGBColor(230, 159, 0),
        Mode::Declared => RGBColor(204, 121, 167),
    }
}

fn font(size: u32) -> TextStyle<'static> {
    (FONT_FAMILY, size).into_font().color(&TEXT)
}

/// A linear f64 axis whose ticks are exactly the given values. plotters' own `WithKeyPoints`
/// over f64 cannot take a label formatter in 0.3.7, hence this.
struct KeyedAxis {
    range: Range<f64>,
    keys: Vec<f64>,
}

impl Ranged for KeyedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        let frac = if span > 0.0 {
            (v - self.range.start) / span
        } else {
            0.0
        };
        limit.0 + (frac * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Line {
    pub mode: Mode,
    pub points: Vec<(f64, f64)>,
}

/// A chart ready to draw: what it shows is fixed here, how it is drawn is in `draw`.
#[derive(Debug, Clone)]
pub enum ChartData {
    /// Latency against percentile on HdrHistogram's log scale, x = log10(1 / (1 - p)).
    Spectrum {
        title: String,
        x_max: f64,
        lines: Vec<Line>,
    },
    /// p50 / p90 / p99 against rate, one panel each.
    Rates {
        title: String,
        x_label: String,
        y_label: String,
        panels: Vec<(String, Vec<Line>)>,
    },
    /// vCPU and MiB per component kind, grouped by kind, one bar per mode.
    Resources {
        title: String,
        kinds: Vec<ComponentKind>,
        modes: Vec<Mode>,
        bars: Vec<ResourceBar>,
    },
    /// Bars with whiskers (low, middle, high) per labelled category, one panel per figure:
    /// a projection's band.
    Bands {
        title: String,
        panels: Vec<BandPanel>,
    },
    /// Panels over one time axis (achieved rate, failures, p99, the proxies' CPU), faults
    /// shaded (start, end in seconds).
    TimeSeries {
        title: String,
        panels: Vec<TimePanel>,
        bands: Vec<(f64, f64)>,
    },
}

/// One panel of [`ChartData::TimeSeries`]: its y axis, decimals on it, and a line per mode.
#[derive(Debug, Clone)]
pub struct TimePanel {
    pub y_desc: String,
    pub decimals: usize,
    pub lines: Vec<Line>,
}

/// One panel of [`ChartData::Bands`]: its title, y axis, and (label, low, middle, high) bars.
#[derive(Debug, Clone)]
pub struct BandPanel {
    pub title: String,
    pub y_desc: String,
    pub bars: Vec<(String, f64, f64, f64)>,
}

#[derive(Debug, Clone)]
pub struct ResourceBar {
    pub kind: ComponentKind,
    pub mode: Mode,
    pub vcpu: f64,
    pub vcpu_floor: Option<f64>,
    pub mib_measured: f64,
    pub mib_modeled: f64,
}

impl ChartData {
    pub fn size(&self) -> (u32, u32) {
        match self {
            ChartData::Spectrum { .. } => (1000, 500),
            ChartData::Rates { .. } => (1200, 440),
            ChartData::Resources { .. } => (1200, 480),
            ChartData::TimeSeries { panels, .. } => (1000, 60 + 250 * panels.len() as u32),
            ChartData::Bands { panels, .. } => (520 * panels.len().max(1) as u32, 440),
        }
    }

    fn title(&self) -> &str {
        match self {
            ChartData::Spectrum { title, .. }
            | ChartData::Rates { title, .. }
            | ChartData::Resources { title, .. }
            | ChartData::Bands { title, .. }
            | ChartData::TimeSeries { title, .. } => title,
        }
    }

    /// Modes shown, in legend order.
    fn modes(&self) -> Vec<Mode> {
        let mut v: Vec<Mode> = match self {
            ChartData::Spectrum { lines, .. } => lines.iter().map(|l| l.mode).collect(),
            ChartData::Rates { panels, .. } => panels
                .iter()
                .flat_map(|(_, ls)| ls.iter().map(|l| l.mode))
                .collect(),
            ChartData::Resources { modes, .. } => modes.clone(),
            ChartData::TimeSeries { panels, .. } => panels
                .iter()
                .flat_map(|p| p.lines.iter().map(|l| l.mode))
                .collect(),
            ChartData::Bands { .. } => Vec::new(),
        };
        v.sort();
        v.dedup();
        v
    }

    pub fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let area = root.titled(self.title(), font(19))?;
        // The legend is a strip of its own: inside the plot it always ends up over some line.
        let (strip, body) = area.split_vertically(30);
        draw_mode_legend(
            &strip,
            &self.modes(),
            matches!(self, ChartData::Resources { .. }),
        )?;
        match self {
            ChartData::Spectrum { x_max, lines, .. } => draw_spectrum(&body, *x_max, lines),
            ChartData::Rates {
                x_label,
                y_label,
                panels,
                ..
            } => draw_rates(&body, (x_label, y_label), panels),
            ChartData::Resources {
                kinds, modes, bars, ..
            } => draw_resources(&body, kinds, modes, bars),
            ChartData::TimeSeries { panels, bands, .. } => draw_time_series(&body, panels, bands),
            ChartData::Bands { panels, .. } => draw_bands(&body, panels),
        }?;
        root.present()
    }
}

fn draw_bands<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[BandPanel],
) -> DrawResult<DB> {
    const BAR: RGBColor = RGBColor(0, 114, 178);
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (p, area) in panels.iter().zip(areas.iter()) {
        let n = p.bars.len().max(1);
        let y_max = p.bars.iter().map(|b| b.3.max(b.2)).fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, font(15))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..n as f64, 0f64..nice_max(y_max))?;
        let labels: Vec<String> = p.bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(p.y_desc.as_str())
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x| {
                // Labels sit at the bars' centres (i + 0.5).
                let i = (x - 0.5).round();
                if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_labels(6)
            .y_label_formatter(&|y| format!("{y:.1}"))
            .label_style(font(12))
            .axis_desc_style(font(13))
            .axis_style(AXIS)
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()?;
        for (i, (_, low, mid, high)) in p.bars.iter().enumerate() {
            let x = i as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x + 0.2, 0.0), (x + 0.8, *mid)],
                BAR.mix(0.8).filled(),
            )))?;
            if high > low {
                let c = x + 0.5;
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(c, *low), (c, *high)],
                    AXIS.stroke_width(2),
                )))?;
                for y in [*low, *high] {
                    chart.draw_series(std::iter::once(PathElement::new(
                        vec![(c - 0.1, y), (c + 0.1, y)],
                        AXIS.stroke_width(2),
                    )))?;
                }
            }
        }
    }
    Ok(())
}

/// Upper bound for an axis: a little headroom, never an empty range.
fn nice_max(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v * 1.08
    } else {
        1.0
    }
}

fn lines_max_y(lines: &[Line]) -> f64 {
    lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0, f64::max)
}

/// Label of a percentile tick at x = log10(1 / (1 - p)).
pub fn percentile_label(x: f64) -> String {
    const TICKS: [(f64, &str); 7] = [
        (0.0, "0%"),
        (std::f64::consts::LOG10_2, "50%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ];
    TICKS
        .iter()
        .find(|(t, _)| (t - x).abs() < 1e-9)
        .map(|(_, l)| (*l).to_string())
        .unwrap_or_else(|| format!("{:.3}%", 100.0 * (1.0 - 10f64.powf(-x))))
}

/// A centred row of swatches and mode names; bars get square swatches, lines short strokes.
fn draw_mode_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    modes: &[Mode],
    squares: bool,
) -> DrawResult<DB> {
    let style = font(14);
    let (w, h) = area.dim_in_pixel();
    let widths: Vec<i32> = modes
        .iter()
        .map(|m| {
            area.estimate_text_size(m.as_str(), &style)
                .map(|(tw, _)| tw as i32)
                .unwrap_or(8 * m.as_str().len() as i32)
        })
        .collect();
    const SWATCH: i32 = 24;
    const GAP: i32 = 28;
    let total: i32 = widths.iter().map(|tw| SWATCH + 6 + tw).sum::<i32>()
        + GAP * (modes.len() as i32 - 1).max(0);
    let mut x = (w as i32 - total).max(0) / 2;
    let y = h as i32 / 2;
    for (m, tw) in modes.iter().zip(widths) {
        let c = mode_color(*m);
        if squares {
            area.draw(&Rectangle::new(
                [(x + 6, y - 6), (x + 18, y + 6)],
                c.filled(),
            ))?;
        } else {
            area.draw(&PathElement::new(
                vec![(x, y), (x + SWATCH, y)],
                c.stroke_width(3),
            ))?;
        }
        area.draw(&Text::new(
            m.as_str().to_string(),
            (x + SWATCH + 6, y),
            style.pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        x += SWATCH + 6 + tw + GAP;
    }
    Ok(())
}

fn draw_lines<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<
        'a,
        DB,
        Cartesian2d<impl Ranged<ValueType = f64>, impl Ranged<ValueType = f64>>,
    >,
    lines: &[Line],
    markers: bool,
) -> DrawResult<DB> {
    for line in lines {
        let color = mode_color(line.mode);
        chart.draw_series(LineSeries::new(
            line.points.iter().copied(),
            color.stroke_width(2),
        ))?;
        if markers {
            chart.draw_series(
                line.points
                    .iter()
                    .map(|&p| Circle::new(p, 4, color.filled())),
            )?;
        }
    }
    Ok(())
}

fn draw_spectrum<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    x_max: f64,
    lines: &[Line],
) -> DrawResult<DB> {
    let keys: Vec<f64> = [0.0, std::f64::consts::LOG10_2, 1.0, 2.0, 3.0, 4.0, 5.0]
        .into_iter()
        .filter(|k| *k <= x_max + 1e-9)
        .collect();
    let mut chart = ChartBuilder::on(root)
        .margin(18)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d(
            KeyedAxis {
                range: 0f64..x_max,
                keys,
            },
            0f64..nice_max(lines_max_y(lines)),
        )?;
    chart
        .configure_mesh()
        .x_desc("percentile (log scale: each tick is a tenfold rarer tail)")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .label_style(font(13))
        .axis_desc_style(font(14))
        .axis_style(AXIS)
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .draw()?;
    draw_lines(&mut chart, lines, false)
}

fn draw_rates<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (x_label, y_label): (&str, &str),
    panels: &[(String, Vec<Line>)],
) -> DrawResult<DB> {
    let areas = root.split_evenly((1, panels.len().max(1)));
    let x_max = panels
        .iter()
        .flat_map(|(_, ls)| ls.iter().flat_map(|l| l.points.iter().map(|p| p.0)))
        .fold(0.0, f64::max);
    for ((name, lines), area) in panels.iter().zip(areas.iter()) {
        let y_max = nice_max(lines_max_y(lines));
        // Small figures (a ztunnel's vCPU) need a third decimal to tell ticks apart.
        let digits = if y_max < 0.2 { 3 } else { 2 };
        let mut chart = ChartBuilder::on(area)
            .caption(name, font(15))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(58)
            .build_cartesian_2d(0f64..nice_max(x_max), 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.digits$}"))
            .label_style(font(12))
            .axis_desc_style(font(13))
            .axis_style(AXIS)
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()?;
        draw_lines(&mut chart, lines, true)?;
    }
    Ok(())
}

fn draw_resources<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    kinds: &[ComponentKind],
    modes: &[Mode],
    bars: &[ResourceBar],
) -> DrawResult<DB> {
    let (body, foot) = root.split_vertically(root.dim_in_pixel().1.saturating_sub(34));
    let halves = body.split_evenly((1, 2));
    let n_modes = modes.len().max(1) as f64;
    // Each kind is one unit wide; its bars share 80% of it, centred.
    let bar_x = |kind_i: usize, mode_i: usize| {
        let w = 0.8 / n_modes;
        let x0 = kind_i as f64 + 0.1 + w * mode_i as f64;
        (x0 + w * 0.08, x0 + w * 0.92)
    };
    let n_kinds = kinds.len().max(1);
    let keys: Vec<f64> = (0..kinds.len()).map(|i| i as f64 + 0.5).collect();
    let kind_label = |x: &f64| {
        let i = x.floor();
        if i >= 0.0 && (i as usize) < kinds.len() {
            kinds[i as usize].as_str().to_string()
        } else {
            String::new()
        }
    };
    let panels: [(&str, &str, bool); 2] = [
        ("CPU per component kind (all instances)", "vCPU", true),
        ("Memory per component kind (all instances)", "MiB", false),
    ];
    for ((name, unit, cpu), area) in panels.into_iter().zip(halves.iter()) {
        let y_max = bars
            .iter()
            .map(|b| {
                if cpu {
                    b.vcpu.max(b.vcpu_floor.unwrap_or(0.0))
                } else {
                    b.mib_measured + b.mib_modeled
                }
            })
            .fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(name, font(15))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(58)
            .build_cartesian_2d(
                KeyedAxis {
                    range: 0f64..n_kinds as f64,
                    keys: keys.clone(),
                },
                0f64..nice_max(y_max),
            )?;
        chart
            .configure_mesh()
            .y_desc(unit)
            .x_label_formatter(&kind_label)
            .y_label_formatter(&|y| {
                if cpu {
                    format!("{y:.2}")
                } else {
                    format!("{y:.0}")
                }
            })
            .disable_x_mesh()
            .label_style(font(13))
            .axis_desc_style(font(13))
            .axis_style(AXIS)
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()?;
        for (mi, &mode) in modes.iter().enumerate() {
            let color = mode_color(mode);
            let mine: Vec<(usize, &ResourceBar)> = bars
                .iter()
                .filter(|b| b.mode == mode)
                .filter_map(|b| kinds.iter().position(|k| *k == b.kind).map(|ki| (ki, b)))
                .collect();
            let mut rects = Vec::new();
            let mut outlines = Vec::new();
            let mut ticks = Vec::new();
            for (ki, b) in &mine {
                let (x0, x1) = bar_x(*ki, mi);
                let measured = if cpu { b.vcpu } else { b.mib_measured };
                rects.push(Rectangle::new([(x0, 0.0), (x1, measured)], color.filled()));
                if !cpu && b.mib_modeled > 0.0 {
                    let top = measured + b.mib_modeled;
                    rects.push(Rectangle::new(
                        [(x0, measured), (x1, top)],
                        color.mix(0.28).filled(),
                    ));
                    outlines.push(Rectangle::new(
                        [(x0, measured), (x1, top)],
                        color.stroke_width(1),
                    ));
                }
                if cpu && let Some(f) = b.vcpu_floor {
                    ticks.push(PathElement::new(
                        vec![(x0 - 0.01, f), (x1 + 0.01, f)],
                        BLACK.stroke_width(2),
                    ));
                }
            }
            chart
                .draw_series(rects)?
                .label(mode.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                });
            chart.draw_series(outlines)?;
            chart.draw_series(ticks)?;
        }
    }
    foot.draw(&Text::new(
        "Solid: measured. Light, outlined: memory the cost profile models beyond what was measured. Black tick: the profile's CPU floor (burnt for real, so inside the bar).",
        (18, 8),
        font(13),
    ))?;
    Ok(())
}

fn draw_time_series<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[TimePanel],
    bands: &[(f64, f64)],
) -> DrawResult<DB> {
    let t_max = panels
        .iter()
        .flat_map(|p| p.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)))
        .fold(0.0, f64::max);
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (k, (p, area)) in panels.iter().zip(areas.iter()).enumerate() {
        let last = k + 1 == panels.len();
        let y_top = nice_max(lines_max_y(&p.lines));
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(if last { 40 } else { 20 })
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..nice_max(t_max), 0f64..y_top)?;
        let y_fmt = |y: &f64| format!("{y:.*}", p.decimals);
        let mut mesh = chart.configure_mesh();
        mesh.y_desc(p.y_desc.as_str())
            .x_labels(10)
            .y_labels(5)
            .x_label_formatter(&|x| format!("{x:.0}s"))
            .y_label_formatter(&y_fmt)
            .label_style(font(12))
            .axis_desc_style(font(13))
            .axis_style(AXIS)
            .bold_line_style(GRID)
            .light_line_style(WHITE);
        if last {
            mesh.x_desc("time since the mode's load started");
        }
        mesh.draw()?;
        // A fault's band under the lines: when it began until its component was back.
        chart.draw_series(bands.iter().map(|&(a, b)| {
            Rectangle::new(
                [(a, 0.0), (b.max(a + 0.1), y_top)],
                RGBColor(214, 39, 40).mix(0.15).filled(),
            )
        }))?;
        draw_lines(&mut chart, &p.lines, false)?;
    }
    Ok(())
}

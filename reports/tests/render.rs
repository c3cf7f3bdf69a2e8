//! render_all: the files a person reads after a run.

use reports::render_all;
use results::testing::{sample_run, sample_run_with_repeats};

#[test]
fn writes_report_pngs_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = sample_run(11, 1.0);
    run.modes[1].host_steal_share = Some(0.12);
    let files = render_all(&run, dir.path()).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "report.html",
        "summary.md",
        "latency-spectrum-web.png",
        "latency-spectrum-orders.png",
        "latency-vs-rate-web.png",
        "cpu-vs-rate.png",
        "resources.png",
        "timeseries-web.png",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        if f.extension().is_some_and(|e| e == "png") {
            assert_eq!(&bytes[1..4], b"PNG", "{}", f.display());
        }
    }

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let pngs = names.iter().filter(|n| n.ends_with(".png")).count();
    assert_eq!(
        html.matches("<svg").count(),
        pngs,
        "one inline SVG per chart"
    );
    // Self-contained: nothing is loaded from elsewhere (the cost profile's sources are named
    // as text, which is no resource).
    for fetch in ["src=\"http", "href=\"http", "url(http", "<link", "<script"] {
        assert!(!html.contains(fetch), "no external resources: {fetch}");
    }
    assert!(only_svg_namespace_or_text(&html), "no http:// resource");
    assert!(html.contains("@font-face") && html.contains("data:font/ttf;base64,"));
    // Headline table first, with every mode.
    let headline = html.find("id=\"headline\"").unwrap();
    assert!(headline < html.find("id=\"charts\"").unwrap());
    for mode in ["no-mesh", "sidecar", "ambient", "ambient-waypoint"] {
        assert!(html[headline..].contains(mode));
    }
    // The failing SLO is named in the banner above the headline.
    let banner = html.find("SLO verdicts failed").unwrap();
    assert!(banner < headline && html[banner..headline].contains("web-errors"));
    // The headline splits each proxy's CPU into the model's own and the profile's burned
    // floor, and memory into measured and modeled: the sample's sidecars carry a 0.16 floor
    // per 1000 rps and 57.2 MiB of profile memory.
    let table = &html[headline..html.find("id=\"charts\"").unwrap()];
    assert!(
        table.contains(" model + ") && table.contains(" floor"),
        "{table}"
    );
    assert!(table.contains("(model + floor)") && table.contains("(measured + modeled)"));
    assert!(
        table.contains("model + 0.160 floor") && table.contains("= 57.2"),
        "the sidecar's floor and its profile's 57.2 MiB: {table}"
    );

    // How contended the host was shows in the environment and beside the mode it hit.
    assert!(html.contains("1.0% to 12.0% of the busy CPU time"));
    assert!(html.contains("host steal 12.0%"));
    // So does the host's speed: the sample's probes took 18 µs back to back, and 66 µs of CPU
    // per round trip paced.
    assert!(html.contains("1 KiB loopback round trip in 18 µs back to back (18 to 18 µs"));
    assert!(html.contains("as a proxy at moderate load sees requests, 66 µs of CPU each"));
    assert!(!html.contains("speed drifted"));
    assert!(html.contains("host round trip 18 µs (66 µs of CPU paced)"));

    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(md.contains("| mode | added p50 |"));
    assert!(md.contains("**FAIL**") && md.contains("web-errors"));
    assert!(
        md.contains("counted itself over the same window"),
        "the figures say how they were made"
    );
    assert!(md.contains(
        "Host speed: a 1 KiB loopback round trip took 18 µs back to back, and 66 µs of CPU at \
         one per millisecond"
    ));
}

#[test]
fn a_host_whose_speed_drifted_during_the_run_is_said_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = sample_run(11, 1.0);
    if let Some(p) = run.modes[3].host_probe.as_mut() {
        p.back_to_back.round_trip_us = 36.0;
    }
    render_all(&run, dir.path()).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("18 to 36 µs across modes"), "range");
    assert!(html.contains("speed drifted during the run, so compare modes across repeats"));
}

/// plotters' SVG carries the SVG namespace URI, an identifier rather than a resource; any
/// other `http://` is in text (escaped, e.g. a profile's source).
fn only_svg_namespace_or_text(html: &str) -> bool {
    let rest = html.replace("http://www.w3.org/2000/svg", "");
    rest.match_indices("http://")
        .all(|(i, _)| !rest[..i].ends_with('"') && !rest[..i].ends_with('('))
}

#[test]
fn output_is_deterministic() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run = sample_run(5, 1.2);
    let fa = render_all(&run, a.path()).unwrap();
    render_all(&run, b.path()).unwrap();
    for f in fa {
        let name = f.file_name().unwrap();
        assert_eq!(
            std::fs::read(&f).unwrap(),
            std::fs::read(b.path().join(name)).unwrap(),
            "{name:?} differs between two renders"
        );
    }
}

#[test]
fn renders_repeats_and_single_step_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = sample_run_with_repeats(2, 1.0, 3);
    render_all(&run, dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(md.contains("median of 3"), "{md}");

    // One step per flow: no latency-vs-rate chart.
    for m in &mut run.modes {
        for f in &mut m.flows {
            f.steps.truncate(1);
        }
    }
    run.derive_summaries();
    let dir = tempfile::tempdir().unwrap();
    let files = render_all(&run, dir.path()).unwrap();
    assert!(
        !files
            .iter()
            .any(|f| f.to_string_lossy().contains("latency-vs-rate")
                || f.to_string_lossy().contains("cpu-vs-rate"))
    );
}

#[test]
fn a_corrupt_histogram_names_mode_and_flow() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = sample_run(1, 1.0);
    for s in &mut run.modes[1].flows[0].steps {
        s.latency.histogram = "HISTFAAA!!!".into();
    }
    let msg = render_all(&run, dir.path()).unwrap_err().to_string();
    assert!(msg.contains("mode sidecar, flow web"), "{msg}");
}

/// The profile's cost model is projected at the load each proxy kind measured and shown
/// beside the measurement: a build of the proxies twice as costly per request shows about
/// twice the projection. The sample's proxies cost what Istio 1.24 publishes (sidecar
/// 0.20 vCPU, ztunnel 0.06 vCPU per 1000 rps; istio.io "Performance and scalability").
#[test]
fn proxies_are_shown_against_the_profiles_projection_at_their_own_load() {
    let ratio = |slowdown: f64, kind: &str| -> f64 {
        let run = results::testing::sample_run(7, slowdown);
        let md = reports::render::summary_markdown(&run);
        assert!(
            md.contains("### Measured here against projected with the profile"),
            "{md}"
        );
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| sidecar | {kind} |")))
            .unwrap_or_else(|| panic!("a sidecar-mode {kind} row in\n{md}"));
        let cell = row.split('|').nth(7).expect("ratio cell").trim();
        cell.trim_start_matches('×').parse().expect("a ratio")
    };
    let same = ratio(1.0, "sidecar");
    assert!(
        (0.8..1.25).contains(&same),
        "sample at the published cost: ×{same}"
    );
    let twice = ratio(2.0, "sidecar");
    assert!(
        (1.7..2.3).contains(&(twice / same)),
        "twice the cost shows twice the ratio: ×{same} then ×{twice}"
    );
    let html_run = results::testing::sample_run(7, 1.0);
    let html = reports::render::report_html(&html_run, &[]);
    assert!(
        html.contains("id=\"projected\""),
        "the HTML report has the table"
    );
}

/// The time-series chart puts a fault's effect on one time axis: the rate, the failures per
/// second, p99, and the proxies' CPU (every proxy of the mode summed per interval).
#[test]
fn the_time_series_shows_failures_and_the_proxies_cpu_per_second() {
    let mut run = sample_run(11, 1.0);
    let m = &mut run.modes[1];
    m.flows[0].steps[0].series[2].errors = 7;
    let expect_cpu: f64 = m
        .components
        .iter()
        .filter(|c| c.kind.is_proxy())
        .map(|c| c.series.vcpu[0])
        .sum();
    let t0 = m.components[0].series.t_s[0];
    let mode = m.mode;
    let specs = reports::render::chart_data(&run).unwrap();
    let (_, _, caption, data) = specs
        .iter()
        .find(|s| s.0 == "timeseries-web")
        .expect("the flow's time series");
    let reports::render::ChartData::TimeSeries { panels, .. } = data else {
        panic!("a time series");
    };
    let axes: Vec<&str> = panels.iter().map(|p| p.y_desc.as_str()).collect();
    assert_eq!(
        axes,
        [
            "achieved rate (rps)",
            "failed (per s)",
            "p99 latency (ms)",
            "all proxies (vCPU)"
        ]
    );
    let line = |k: usize| {
        panels[k]
            .lines
            .iter()
            .find(|l| l.mode == mode)
            .expect("the mode's line")
    };
    assert!(line(1).points.iter().any(|p| p.1 == 7.0), "{:?}", line(1));
    let first = line(3).points[0];
    assert_eq!(first.0, t0);
    assert!(
        (first.1 - expect_cpu).abs() < 1e-9,
        "{first:?} against {expect_cpu}"
    );
    assert!(
        caption.contains("CPU of all the mode's proxies"),
        "{caption}"
    );
}

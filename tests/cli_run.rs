//! `meshsim run`, `report` and `compare` as a user and a CI job meet them: real clusters in
//! every mode, the files a run leaves, exit codes for SLOs and regressions, Ctrl-C keeping
//! what was measured.
//!
//! Needs root or unprivileged user namespaces and nft; under `CI` a missing privilege is a
//! failure. Runs are shortened with `--duration`/`--warmup` so the file stays within minutes.

mod common;

use common::meshsim;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs bring whole clusters up; one at a time keeps their figures clean and the machine calm.
static SERIAL: Mutex<()> = Mutex::new(());

/// True when these tests can run here; otherwise says the test is skipped, and why (under CI
/// that is a failure).
fn can_run(test: &str) -> bool {
    sim::testing::can_run_namespaces(test, &["nft"])
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn load(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("run.json is written"))
        .expect("run.json is JSON")
}

fn modes(run: &Value) -> &Vec<Value> {
    run["modes"].as_array().expect("modes")
}

fn mode<'a>(run: &'a Value, name: &str) -> &'a Value {
    modes(run)
        .iter()
        .find(|m| m["mode"] == name)
        .unwrap_or_else(|| panic!("mode {name} in run.json"))
}

/// A two-node scenario like quickstart, with a flow and SLOs a test can choose.
fn scenario(dir: &Path, name: &str, slos: &str) -> PathBuf {
    let text = format!(
        r#"version: 1
name: {name}
seed: 7
profile: istio-1.24
modes: [no-mesh, sidecar]
nodes: [{{name: node-1}}, {{name: node-2}}]
workloads:
  - {{name: client, nodes: [node-1]}}
  - {{name: echo, nodes: [node-2], app: {{http: {{port: 8080, responseBytes: 1KiB}}}}}}
services:
  - {{name: echo, workload: echo, ports: [{{port: 8080}}]}}
flows:
  - {{name: web, from: client, to: "echo:8080", rate: 200, duration: 2s, warmup: 1s}}
{slos}
"#
    );
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, text).expect("write scenario");
    p
}

#[test]
fn quickstart_runs_every_mode_and_leaves_the_report() {
    if !can_run("quickstart_runs_every_mode_and_leaves_the_report") {
        return;
    }
    let _g = lock();
    let tmp = tempfile::tempdir().expect("tmp");
    let out_dir = tmp.path().join("run");
    let out = common::run(&[
        "run",
        "scenarios/quickstart.yaml",
        "--duration",
        "3s",
        "--warmup",
        "1s",
        "--out",
        out_dir.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "quickstart passes its SLOs");

    for f in ["run.json", "report.html", "summary.md"] {
        assert!(out_dir.join(f).is_file(), "{f} is written");
    }
    let pngs = std::fs::read_dir(&out_dir)
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
        })
        .count();
    assert!(pngs >= 3, "a PNG per chart, found {pngs}");

    // run.json reads back through the versioned loader, and holds what a user checks.
    let typed = reports::RunResult::load(out_dir.join("run.json")).expect("valid run.json");
    assert!(!typed.incomplete);
    assert_eq!(typed.scenario_name(), "quickstart");
    let run = load(&out_dir.join("run.json"));
    let names: Vec<&str> = modes(&run)
        .iter()
        .map(|m| m["mode"].as_str().expect("mode"))
        .collect();
    assert_eq!(
        names,
        ["no-mesh", "sidecar", "ambient", "ambient-waypoint"],
        "every mode of the scenario, in order"
    );
    for m in modes(&run) {
        let step = &m["flows"][0]["steps"][0];
        let achieved = step["achieved_rps"].as_f64().expect("rps");
        assert!(
            (180.0..=220.0).contains(&achieved),
            "{}: 200 rps asked, {achieved} achieved",
            m["mode"]
        );
        assert_eq!(
            step["errors"],
            serde_json::json!({}),
            "{}: no errors",
            m["mode"]
        );
        assert!(
            step["latency"]["histogram"]
                .as_str()
                .is_some_and(|h| h.starts_with("HISTF"))
        );
        // Every second is sampled for every component.
        let client = m["components"]
            .as_array()
            .expect("components")
            .iter()
            .find(|c| c["kind"] == "load-client")
            .expect("the load client is metered");
        assert!(client["series"]["vcpu"].as_array().expect("series").len() >= 3);
        assert!(!m["slo"].as_array().expect("slo").is_empty());
        // The host's speed was probed before the mode, so another day's run can be read
        // against this one.
        for probe in ["back_to_back", "paced"] {
            let rtt = m["host_probe"][probe]["round_trip_us"]
                .as_f64()
                .unwrap_or_else(|| panic!("{}: host probe {probe}", m["mode"]));
            assert!(
                rtt > 0.0 && rtt < 100_000.0,
                "{}: {probe} {rtt} µs",
                m["mode"]
            );
        }
    }
    // Each mode has its own proxies, and the profile's floors show in their costs.
    let kinds = |m: &str| -> Vec<String> {
        let mut k: Vec<String> = mode(&run, m)["components"]
            .as_array()
            .expect("components")
            .iter()
            .map(|c| c["kind"].as_str().expect("kind").to_string())
            .filter(|k| k != "app" && k != "load-client")
            .collect();
        k.sort();
        k.dedup();
        k
    };
    assert!(kinds("no-mesh").is_empty());
    assert_eq!(kinds("sidecar"), ["sidecar"]);
    assert_eq!(kinds("ambient"), ["ztunnel"]);
    assert_eq!(kinds("ambient-waypoint"), ["waypoint", "ztunnel"]);
    let sidecar = &mode(&run, "sidecar")["summary"]["proxies"]["sidecar"];
    let per_1000 = sidecar["vcpu_per_1000rps"].as_f64().expect("figure");
    // The floor is a minimum: a debug build's model may cost more on its own.
    assert!(
        per_1000 >= 0.18,
        "istio-1.24 makes a sidecar cost at least 0.2 vCPU per 1000 rps, got {per_1000}"
    );
    proxies_counted_their_own_work(&run);
    assert!(sidecar["mib_modeled_per_proxy"].as_f64().expect("modeled") > 50.0);
    assert_eq!(
        run["environment"]["cores"].as_u64().map(|c| c > 0),
        Some(true)
    );
    assert!(run["scenario"]["scenario"]["flows"].is_array());

    let md = std::fs::read_to_string(out_dir.join("summary.md")).expect("summary");
    assert!(
        md.contains("ambient-waypoint") && md.contains("SLOs: all"),
        "{md}"
    );
    let html = std::fs::read_to_string(out_dir.join("report.html")).expect("html");
    assert!(html.contains("<svg"), "charts are inline SVG");
    assert!(
        !html.contains("src=\"http"),
        "self-contained: nothing fetched"
    );

    // `report` re-renders from the saved result alone.
    let again = tmp.path().join("again");
    let out = common::run(&[
        "report",
        out_dir.join("run.json").to_str().expect("utf8"),
        "--out",
        again.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(again.join("report.html").is_file() && again.join("summary.md").is_file());
}

/// Each proxy's rate and CPU per request come from its own counts (quickstart: 200 rps from
/// client-0 to two echo replicas on the other node).
fn proxies_counted_their_own_work(run: &Value) {
    // Each proxy counted the requests it handled itself: the client's sidecar all 200 rps
    // (outbound), each echo's sidecar its half (inbound); ztunnel counted the exchanges it
    // relayed on each side. The window includes warmups and the edges, hence the margins.
    let by_name = |m: &str, name: &str| -> serde_json::Value {
        mode(run, m)["components"]
            .as_array()
            .expect("components")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{m}: no component {name}"))
            .clone()
    };
    let rps = |c: &serde_json::Value| c["rps_avg"].as_f64().expect("rps");
    for (m, name, want) in [
        ("sidecar", "sidecar-client-0", 200.0),
        ("sidecar", "sidecar-echo-0", 100.0),
        ("sidecar", "sidecar-echo-1", 100.0),
        ("ambient", "ztunnel-node-1", 200.0),
        ("ambient", "ztunnel-node-2", 200.0),
    ] {
        let c = by_name(m, name);
        let got = rps(&c);
        assert!(
            (0.7 * want..=1.05 * want).contains(&got),
            "{m}: {name} counted {got} rps, about {want} expected"
        );
        // CPU per 1000 rps divides the proxy's CPU by its own count over the same window.
        let per = c["vcpu_per_1000rps"].as_f64().expect("per 1000");
        let vcpu = c["vcpu_avg"].as_f64().expect("vcpu");
        assert!((per - vcpu / got * 1000.0).abs() < 1e-9, "{name}");
        // Every proxy here speaks mTLS to another, on connections it keeps: at least one full
        // handshake, and never more than the connections it opened or accepted.
        let shakes = c["tls_handshakes"].as_u64().expect("handshakes");
        let opened = c["connections_opened"].as_u64().expect("opened");
        assert!(
            (1..=opened).contains(&shakes),
            "{m}: {name} made {shakes} TLS handshakes on {opened} connections"
        );
    }
    for c in mode(run, "sidecar")["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter(|c| c["kind"] == "sidecar")
    {
        // The profile charges 200 µs per request: a sidecar costs at least that per request
        // it counted, and what was burned to reach it is part of its measured CPU (a debug
        // build's model may cost more on its own and burn nothing).
        let per = c["vcpu_per_1000rps"].as_f64().expect("per 1000");
        assert!(per >= 0.19, "{}: {per} vCPU per 1000 rps", c["name"]);
        if let Some(floor) = c["vcpu_floor_avg"].as_f64() {
            assert!(floor > 0.0 && floor <= c["vcpu_avg"].as_f64().expect("vcpu"));
        }
    }
}

#[test]
fn an_slo_that_cannot_hold_fails_the_run_and_the_report_names_it() {
    if !can_run("an_slo_that_cannot_hold_fails_the_run_and_the_report_names_it") {
        return;
    }
    let _g = lock();
    let tmp = tempfile::tempdir().expect("tmp");
    let slos = r#"slos:
  - {name: impossible-p50, flow: web, p50: 1us}
  - {name: errors-ok, flow: web, maxErrorRate: 1%}"#;
    let sc = scenario(tmp.path(), "tight", slos);
    let out_dir = tmp.path().join("run");
    let out = common::run(&[
        "run",
        sc.to_str().expect("utf8"),
        "--mode",
        "sidecar",
        "--out",
        out_dir.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "a failed SLO exits 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SLO impossible-p50 failed in sidecar"),
        "{stderr}"
    );
    assert!(!stderr.contains("errors-ok failed"));
    let html = std::fs::read_to_string(out_dir.join("report.html")).expect("html");
    assert!(html.contains("impossible-p50") && html.contains("FAIL"));
    let md = std::fs::read_to_string(out_dir.join("summary.md")).expect("md");
    assert!(md.contains("1 of 2 FAILED"), "{md}");
}

#[test]
fn compare_tells_noise_from_a_slower_profile() {
    if !can_run("compare_tells_noise_from_a_slower_profile") {
        return;
    }
    let _g = lock();
    let tmp = tempfile::tempdir().expect("tmp");
    let sc = scenario(tmp.path(), "cmp", "");
    // 50 rps, so a costly profile stays far from the machine's two cores.
    let text = std::fs::read_to_string(&sc)
        .expect("scenario")
        .replace("rate: 200", "rate: 50");
    std::fs::write(&sc, text).expect("write scenario");
    let sc = sc.to_str().expect("utf8");
    let dir = |n: &str| tmp.path().join(n).to_str().expect("utf8").to_string();
    let (fast, slow) = (dir("fast"), dir("slow"));
    // A profile of one's own where a sidecar request costs 5 ms of CPU on its path: several
    // times what the model costs even in a debug build on a busy machine (about 1 ms), so the
    // slowdown is the profile's, not noise.
    let slow_profile = tmp.path().join("slow-profile.yaml");
    std::fs::write(
        &slow_profile,
        "name: slow-sidecar\ndescription: a sidecar 25 times Istio 1.24's\nproxies:\n  sidecar:\n    cpuPerRequest: 5ms\n",
    )
    .expect("write profile");
    let out = common::run(&[
        "run",
        sc,
        "--mode",
        "sidecar",
        "--profile",
        "native",
        "--out",
        &fast,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = common::run(&[
        "run",
        sc,
        "--mode",
        "sidecar",
        "--profile",
        slow_profile.to_str().expect("utf8"),
        "--out",
        &slow,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let fast_json = format!("{fast}/run.json");
    let slow_json = format!("{slow}/run.json");

    let same = common::run(&["compare", &fast_json, &fast_json]);
    assert_eq!(same.status.code(), Some(0), "a run against itself");
    let text = String::from_utf8_lossy(&same.stdout);
    assert!(!text.contains("regressed |"), "{text}");

    // The slow profile burns 5 ms per request per sidecar that the native profile does not.
    let worse = common::run(&["compare", &fast_json, &slow_json, "--threshold", "5%"]);
    assert_eq!(
        worse.status.code(),
        Some(1),
        "the slower profile is flagged"
    );
    let text = String::from_utf8_lossy(&worse.stdout);
    assert!(text.contains("regressed"), "{text}");
    assert!(text.contains("sidecar"), "{text}");

    // Runs of different scenarios cannot be compared: an error, not a verdict.
    let other = tmp.path().join("other.json");
    let mut v = load(Path::new(&fast_json));
    v["scenario"]["scenario"]["name"] = "another".into();
    std::fs::write(&other, serde_json::to_string(&v).expect("json")).expect("write");
    let differ = common::run(&["compare", &fast_json, other.to_str().expect("utf8")]);
    assert_eq!(differ.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&differ.stderr).contains("not of the same scenario"));
}

#[test]
fn ctrl_c_keeps_what_was_measured_marked_incomplete() {
    if !can_run("ctrl_c_keeps_what_was_measured_marked_incomplete") {
        return;
    }
    let _g = lock();
    let tmp = tempfile::tempdir().expect("tmp");
    let sc = scenario(tmp.path(), "interrupted", "");
    let out_dir = tmp.path().join("run");
    let child = Command::new(meshsim())
        .args([
            "run",
            sc.to_str().expect("utf8"),
            "--duration",
            "20s",
            "--warmup",
            "1s",
            "--out",
            out_dir.to_str().expect("utf8"),
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // no-mesh's 21 s of load are well under way after 8 s.
    std::thread::sleep(Duration::from_secs(8));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("signal");
    let t = Instant::now();
    let out = child.wait_with_output().expect("wait");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(t.elapsed() < Duration::from_secs(5), "stops promptly");
    assert_eq!(out.status.code(), Some(130), "interrupted");
    let run = load(&out_dir.join("run.json"));
    assert_eq!(run["incomplete"], true);
    let m = modes(&run);
    assert_eq!(m.len(), 1, "only no-mesh had started");
    assert_eq!(m[0]["mode"], "no-mesh");
    // The step in flight is dropped, not kept short; the meters' seconds are kept.
    assert!(
        m[0]["flows"][0]["steps"]
            .as_array()
            .expect("steps")
            .is_empty()
    );
    assert!(
        m[0]["components"][0]["series"]["vcpu"]
            .as_array()
            .expect("v")
            .len()
            >= 5
    );
    let html = std::fs::read_to_string(out_dir.join("report.html")).expect("html");
    assert!(html.contains("Incomplete run"));
}

#[test]
fn a_killed_run_keeps_its_finished_modes_and_resume_finishes_it() {
    if !can_run("a_killed_run_keeps_its_finished_modes_and_resume_finishes_it") {
        return;
    }
    let _g = lock();
    let tmp = tempfile::tempdir().expect("tmp");
    let sc = scenario(tmp.path(), "killed", "");
    let out_dir = tmp.path().join("run");
    let run_json = out_dir.join("run.json");
    let mut child = Command::new(meshsim())
        .args(["run", sc.to_str().expect("utf8"), "--out"])
        .arg(&out_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // As soon as no-mesh is on disk, the process dies without a word (as on OOM or a lost
    // machine): nothing of it can run after this.
    let t = Instant::now();
    while !run_json.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no-mesh never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let killed = load(&run_json);
    assert_eq!(killed["incomplete"], true);
    assert_eq!(modes(&killed).len(), 1);
    assert_eq!(modes(&killed)[0]["mode"], "no-mesh");
    assert_eq!(modes(&killed)[0]["complete"], true);

    // `report DIR` renders what was kept, saying it is incomplete.
    let out = common::run(&["report", out_dir.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(0));
    let html = std::fs::read_to_string(out_dir.join("report.html")).expect("html");
    assert!(html.contains("Incomplete run"));

    // A changed scenario is not resumed into the old run.
    let changed = std::fs::read_to_string(&sc)
        .expect("scenario")
        .replace("rate: 200", "rate: 300");
    let other = tmp.path().join("changed.yaml");
    std::fs::write(&other, changed).expect("write");
    let out = common::run(&[
        "run",
        other.to_str().expect("utf8"),
        "--resume",
        out_dir.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("changed"));

    // Resume runs sidecar only, and keeps no-mesh as it was measured.
    let out = common::run(&[
        "run",
        sc.to_str().expect("utf8"),
        "--resume",
        out_dir.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let done = load(&run_json);
    assert_eq!(done["incomplete"], false);
    let names: Vec<&str> = modes(&done)
        .iter()
        .map(|m| m["mode"].as_str().expect("mode"))
        .collect();
    assert_eq!(names, ["no-mesh", "sidecar"]);
    assert_eq!(
        modes(&done)[0]["flows"],
        modes(&killed)[0]["flows"],
        "no-mesh's measurements are the ones made before the kill"
    );
    assert!(mode(&done, "sidecar")["summary"]["added_latency_us"].is_object());
}

#[test]
fn bad_input_is_one_clear_error_and_starts_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out_dir = tmp.path().join("never");
    let out = common::run(&[
        "run",
        "scenarios/quickstart.yaml",
        "--mode",
        "mesh-of-dreams",
        "--out",
        out_dir.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("mesh-of-dreams") && e.contains("ambient-waypoint"),
        "{e}"
    );
    assert!(!out_dir.exists(), "nothing was started or written");

    let out = common::run(&["run", "scenarios/quickstart.yaml", "--repeat", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--repeat"));

    let out = common::run(&["run", "scenarios/quickstart.yaml", "--detect", "5%"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--repeat auto"));

    let out = common::run(&["run", "scenarios/quickstart.yaml", "--profile", "istio-0.1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("istio-1.24"));

    let not_a_run = tmp.path().join("x.json");
    std::fs::write(&not_a_run, "{\"hello\": 1}").expect("write");
    for args in [
        vec!["report", not_a_run.to_str().expect("utf8")],
        vec![
            "compare",
            not_a_run.to_str().expect("utf8"),
            "/nonexistent.json",
        ],
    ] {
        let out = common::run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = common::run(&["compare", "a.json", "b.json", "--threshold", "lots"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The bundled half-migrated mesh runs in `declared` (its default: it writes enrollment
/// labels), every flow across the sidecar / ambient / out-of-mesh boundaries passes its SLO,
/// and run.json and the report say which data plane each pod had and why.
#[test]
fn migration_mixed_runs_declared_and_reports_each_pods_data_plane() {
    if !can_run("migration_mixed_runs_declared_and_reports_each_pods_data_plane") {
        return;
    }
    let _g = lock();
    let tmp = tempfile::tempdir().expect("tmp");
    let out_dir = tmp.path().join("run");
    let out = common::run(&[
        "run",
        "scenarios/migration-mixed.yaml",
        "--duration",
        "2s",
        "--warmup",
        "1s",
        "--out",
        out_dir.to_str().expect("utf8"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "every SLO of migration-mixed holds"
    );
    let run = load(&out_dir.join("run.json"));
    assert_eq!(modes(&run).len(), 1);
    let m = mode(&run, "declared");
    let plane = |pod: &str| {
        let p = m["pods"]
            .as_array()
            .expect("pods")
            .iter()
            .find(|p| p["pod"] == pod)
            .unwrap_or_else(|| panic!("pod {pod} in run.json"));
        (
            p["dataplane"].as_str().unwrap_or_default().to_string(),
            p["why"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert_eq!(plane("web-0").0, "sidecar");
    assert!(plane("web-0").1.contains("istio-injection=enabled"));
    assert_eq!(plane("checkout-0").0, "ambient");
    assert_eq!(plane("batch-0").0, "none");
    // The waypoint is a proxy, not an enrolled pod.
    assert!(
        m["pods"]
            .as_array()
            .expect("pods")
            .iter()
            .all(|p| p["pod"] != "payments-waypoint-0")
    );
    let kinds: Vec<&str> = m["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    for k in ["sidecar", "ztunnel", "waypoint"] {
        assert!(kinds.contains(&k), "a {k} ran: {kinds:?}");
    }
    let html = std::fs::read_to_string(out_dir.join("report.html")).expect("report");
    assert!(
        html.contains("id=\"dataplanes\""),
        "the report has a data plane section"
    );
    assert!(html.contains("<td>web-0</td>"), "and lists the pods");
    // It closes with the static migration checklist, every item verified for this scenario.
    assert!(
        html.contains("id=\"checklist\""),
        "the report has the checklist"
    );
    let items = run["checklist"].as_array().expect("checklist in run.json");
    assert!(items.len() >= 8, "{items:?}");
    assert!(
        items.iter().all(|i| i["status"] == "verified"),
        "{items:#?}"
    );
    let md = std::fs::read_to_string(out_dir.join("summary.md")).expect("summary");
    assert!(
        md.contains("- declared: 2 out of the mesh, 2 sidecar, 2 ambient"),
        "{md}"
    );
}

/// `--repeat auto` adds interleaved rounds until every proxy's CPU and every flow's p50 reach
/// the detection limit, or the budget is spent, and says which did not.
#[test]
fn repeat_auto_stops_at_the_detection_limit_or_the_budget() {
    if !can_run("repeat_auto_stops_at_the_detection_limit_or_the_budget") {
        return;
    }
    let _g = lock();
    let tmp = tempfile::tempdir().expect("tmp");
    let s = scenario(tmp.path(), "auto", "");
    let s = s.to_str().expect("utf8");
    // A limit anything reaches: two rounds (the fewest that give a spread), then it stops.
    // `--repeat auto` of the sidecar mode with 1 s steps, to `out`, with `extra` flags.
    let auto = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "run",
            s,
            "--mode",
            "sidecar",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--repeat",
            "auto",
        ];
        args.extend_from_slice(extra);
        args.extend(["--out", out.to_str().expect("utf8")]);
        common::run(&args)
    };
    let easy = tmp.path().join("easy");
    let out = auto(&easy, &["--detect", "100000%"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("every figure reached the 100000% detection limit"),
        "{text}"
    );
    let run = load(&easy.join("run.json"));
    assert_eq!(run["repeats"], 2, "{}", run["repeats"]);
    assert_eq!(modes(&run).len(), 2);
    // A limit nothing reaches, and a budget that allows no third round: it stops and names
    // the figures.
    let hard = tmp.path().join("hard");
    let out = auto(&hard, &["--detect", "0.0001%", "--budget", "1s"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("did not reach the 0.0001% detection limit within 1s"),
        "{text}"
    );
    assert!(
        text.contains("- sidecar: sidecar vCPU/1000 rps per proxy: a regression smaller than"),
        "{text}"
    );
    assert!(
        text.contains("- sidecar: web p50 @200 rps: a regression smaller than"),
        "{text}"
    );
    assert_eq!(load(&hard.join("run.json"))["repeats"], 2);
}

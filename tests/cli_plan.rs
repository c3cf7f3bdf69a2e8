//! `meshsim plan`: the bundled example inventory planned in every mode into plan.json,
//! plan.md and plan.html; a bad inventory gets one placed error and nothing is written.

mod common;

use std::process::Command;

fn plan(args: &[&str]) -> std::process::Output {
    Command::new(common::meshsim())
        .arg("plan")
        .args(args)
        .current_dir(common::repo())
        .output()
        .expect("meshsim runs")
}

#[test]
fn the_example_inventory_is_planned_in_every_mode() {
    let dir = tempfile::tempdir().expect("tmp");
    let out_dir = dir.path().join("plan");
    let out = plan(&[
        "inventories/example.yaml",
        "--out",
        out_dir.to_str().expect("utf8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The totals table, one row per mode, then the files.
    for m in [
        "| sidecar |",
        "| ambient |",
        "| ambient-waypoints |",
        "| declared |",
    ] {
        assert!(stdout.contains(m), "{stdout}");
    }
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("plan.json")).expect("plan.json"),
    )
    .expect("JSON");
    // The four modes, then `declared` after each of the example's two migration stages.
    assert_eq!(json["modes"].as_array().map(Vec::len), Some(6));
    assert!(
        stdout.contains("| after stage payments-waypoint |"),
        "{stdout}"
    );
    assert_eq!(json["costs"], "profile istio-1.24");
    // Every parameter of the model names its source.
    let sources = json["model"]["sidecar"]["memoryPerService"]["source"]
        .as_str()
        .unwrap_or_default();
    assert!(sources.contains("istio-bench"), "{sources}");
    let md = std::fs::read_to_string(out_dir.join("plan.md")).expect("plan.md");
    assert!(md.contains("ztunnel DaemonSet request") && md.contains("## The cost model"));
    assert!(
        md.contains("shop/shop-waypoint"),
        "the example's waypoint is sized"
    );
    let html = std::fs::read_to_string(out_dir.join("plan.html")).expect("plan.html");
    assert!(html.contains("<svg") && html.contains("<table>") && html.contains("</html>"));
    // The README shows this plan's totals: they must be what `plan` prints today.
    let readme = std::fs::read_to_string(common::repo().join("README.md")).expect("README");
    for row in stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| mode"))
    {
        assert!(
            readme.contains(row),
            "README's example plan is stale; this row is not in it:\n{row}"
        );
    }
}

#[test]
fn a_bad_inventory_names_file_line_and_field_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let inv = dir.path().join("inv.yaml");
    std::fs::write(
        &inv,
        "version: 1\nname: bad\nnodes: [{pool: n}]\nnamespaces: [{name: a}]\nworkloads: [{name: w, namespace: a}]\ntraffic: [{from: a/w, to: a/nope, rps: 10}]\n",
    )
    .expect("write");
    let out_dir = dir.path().join("out");
    let out = plan(&[
        inv.to_str().expect("utf8"),
        "--out",
        out_dir.to_str().expect("utf8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("inv.yaml:6:")
            && err.contains("traffic[0].to: service `a/nope` is not in `services`"),
        "{err}"
    );
    assert!(!out_dir.exists(), "nothing written");
    // A profile without a model is refused before anything is written.
    let out = plan(&[
        "inventories/example.yaml",
        "--costs",
        "native",
        "--out",
        out_dir.to_str().expect("utf8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("has no cost model"), "{err}");
    assert!(!out_dir.exists(), "nothing written");
}

/// A cost model fitted to a run's proxies at three rates predicts their CPU at a fourth,
/// measured rate within ±15% (issue: capacity plan fidelity). The run uses istio-1.24's
/// floors, as a user's run would. The held-out rate is measured second, between the fitted
/// ones, so a host drifting over the run (a shared VM) skews it no more than them, and the
/// modes run three times interleaved: the line is fitted over all three, and the median
/// repeat's prediction is judged (the ±15% is the issue's; one 4 s run per rate missed it one
/// time in three on a shared VM, and the sum over three repeats once in CI).
#[test]
fn a_cost_model_fitted_at_three_rates_predicts_a_fourth() {
    if !common::can_run("a_cost_model_fitted_at_three_rates_predicts_a_fourth") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let sc = dir.path().join("rates.yaml");
    std::fs::write(
        &sc,
        r#"version: 1
name: rates
seed: 5
profile: istio-1.24
modes: [sidecar, ambient]
nodes: [{name: node-1}, {name: node-2}]
workloads:
  - {name: client, nodes: [node-1]}
  - {name: echo, nodes: [node-2], app: {http: {port: 8080}}}
services:
  - {name: echo, workload: echo, ports: [{port: 8080}]}
flows:
  - {name: web, from: client, to: "echo:8080", rate: [100, 300, 200, 400], connections: 4, duration: 4s, warmup: 1s}
"#,
    )
    .expect("write");
    let out_dir = dir.path().join("run");
    let out = Command::new(common::meshsim())
        .args(["run", sc.to_str().expect("utf8"), "--repeat", "3", "--out"])
        .arg(&out_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("meshsim runs");
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = reports::RunResult::load(out_dir.join("run.json")).expect("run.json");
    let base = scenario::profile::Profile::load("istio-1.24")
        .ok()
        .and_then(|p| p.model)
        .expect("model");
    let (_, fitted) = plan::fit::fit_model(&run, &base, "rates", Some(&[0, 2, 3]));
    let kinds: Vec<_> = fitted.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["sidecar", "ztunnel"]);
    let points = results::costfit::cpu_points(&run);
    for f in &fitted {
        // Per repeat: the proxies' CPU at 300 rps, measured and predicted; the median of the
        // repeats' errors is judged, so one repeat on a host hiccup does not decide.
        let mut errors: Vec<f64> = (0..3)
            .map(|r| {
                let at4: Vec<_> = points
                    .iter()
                    .filter(|p| p.kind == f.kind && p.step == 1 && p.repeat == r)
                    .collect();
                assert!(!at4.is_empty(), "repeat {r}");
                let measured: f64 = at4.iter().map(|p| p.vcpu).sum();
                let predicted: f64 = at4.iter().map(|p| f.line.at(p.rps)).sum();
                eprintln!(
                    "{} repeat {r}: measured {measured:.4} vCPU at 300 rps, predicted {predicted:.4} ({:+.1}%)",
                    f.kind,
                    (predicted / measured - 1.0) * 100.0,
                );
                predicted / measured - 1.0
            })
            .collect();
        errors.sort_by(f64::total_cmp);
        eprintln!("{}: {:?}", f.kind, f.line);
        assert!(
            errors[1].abs() <= 0.15,
            "{}: the median repeat's prediction is off by {:+.1}%",
            f.kind,
            errors[1] * 100.0
        );
    }
}

/// `import kubectl` writes an inventory `plan` takes; its notes say what was left out.
#[test]
fn import_kubectl_writes_an_inventory_that_plans() {
    let dir = tempfile::tempdir().expect("tmp");
    let inv = dir.path().join("cluster.yaml");
    let data = |f: &str| common::repo().join("plan/tests/data").join(f);
    let out = Command::new(common::meshsim())
        .args(["import", "kubectl"])
        .arg(data("kubectl-cluster.json"))
        .arg("--istio")
        .arg(data("istio.yaml"))
        .arg("--traffic")
        .arg(data("prometheus-traffic.json"))
        .arg("--out")
        .arg(&inv)
        .arg("--scenario")
        .arg(dir.path().join("small"))
        .output()
        .expect("meshsim runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("13 workloads (28 pods)"), "{stdout}");
    assert!(stdout.contains("note: 1 finished pod"), "{stdout}");
    // The downscaled scenario validates as `meshsim validate` checks a scenario.
    let sc = dir.path().join("small/kubectl-cluster-downscaled.yaml");
    let out = Command::new(common::meshsim())
        .arg("validate")
        .arg(&sc)
        .output()
        .expect("meshsim runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = plan(&[
        inv.to_str().expect("utf8"),
        "--mode",
        "declared",
        "--out",
        dir.path().join("plan").to_str().expect("utf8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("| declared | 5 | 3 | 1 |"), "{stdout}");
}

/// `--migration SCENARIO` plans a scenario's stages on an inventory of the same cluster:
/// the bundled migration's relabels and waypoint Gateways (istio.io "Migrate to ambient":
/// label the namespace `istio.io/dataplane-mode=ambient`, restart to drop sidecars, deploy the
/// waypoints). Stages naming what the inventory lacks get errors placed in the scenario.
#[test]
fn a_scenarios_migration_is_planned_on_an_inventory() {
    let dir = tempfile::tempdir().expect("tmp");
    let inv = dir.path().join("shop.yaml");
    std::fs::write(
        &inv,
        "version: 1\nname: shop\nnodes: [{pool: n, count: 3}]\nnamespaces:\n  - {name: production, labels: {istio-injection: enabled}}\n  - {name: legacy}\nwaypoints: [{name: payment-waypoint, namespace: production}]\nworkloads:\n  - {name: order-service, namespace: production, replicas: 4}\n  - {name: payment-service, namespace: production, replicas: 4}\n  - {name: api-gateway, namespace: production, replicas: 2}\n  - {name: legacy-batch, namespace: legacy}\nservices:\n  - {name: payment-service, namespace: production, workload: payment-service, ports: [8080], labels: {istio.io/use-waypoint: payment-waypoint}}\n  - {name: api-gateway, namespace: production, workload: api-gateway, ports: [8080]}\ntraffic:\n  - {from: production/order-service, to: production/payment-service, rps: 400}\n",
    )
    .expect("write");
    let out_dir = dir.path().join("out");
    let path = |p: &std::path::Path| p.to_str().expect("utf8").to_string();
    let out = plan(&[
        &path(&inv),
        "--migration",
        "scenarios/migration.yaml",
        "--out",
        &path(&out_dir),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("plan.json")).expect("plan.json"),
    )
    .expect("JSON");
    let stage = |name: &str| {
        json["modes"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["stage"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("stage {name} in {stdout}"))
    };
    // Before the ambient stage the production pods keep their sidecars (which ignore
    // `istio.io/use-waypoint`); after it none do, and payment-service's waypoint serves it.
    assert_eq!(stage("add-waypoints")["sidecars"], 10);
    let ambient = stage("ambient");
    assert_eq!(ambient["sidecars"], 0);
    assert!(ambient["ztunnels"].as_u64().unwrap_or(0) > 0);
    let served: Vec<&str> = ambient["waypoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["waypoint"].as_str())
        .collect();
    assert!(
        served.contains(&"production/payment-waypoint"),
        "{served:?}"
    );
    // The example inventory has no `production` namespace: the stage's relabel says so, at
    // its line in the scenario.
    let out = plan(&[
        "inventories/example.yaml",
        "--migration",
        "scenarios/migration.yaml",
        "--out",
        &path(&dir.path().join("bad")),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("scenarios/migration.yaml:")
            && stderr.contains("migration.stages[1].relabel[0].namespace: namespace `production` is not in `namespaces`"),
        "{stderr}"
    );
    assert!(!dir.path().join("bad").exists(), "nothing written");
}

//! `meshsim replay`: a run run again from what its run.json keeps — the scenario's files byte
//! for byte, its seed, profile, faults, modes, repeats and times — compared with the original.
//! The proxies balance round robin from a cursor the seed starts, so the replay's k-th request
//! to a service goes to the same endpoint: each endpoint's picks are the same.
//!
//! Needs root or unprivileged user namespaces and nft; under `CI` a missing privilege is a
//! failure.

mod common;

use serde_json::Value;

const SCENARIO: &str = r#"version: 1
name: replayed
seed: 17
profile: native
modes: [sidecar]
nodes: [{name: node-1}, {name: node-2}]
workloads:
  - {name: client, nodes: [node-1]}
  - {name: echo, replicas: 3, nodes: [node-2], app: {http: {port: 8080}}}
services:
  - {name: echo, workload: echo, ports: [{port: 8080}]}
manifests: [allow.yaml]
flows:
  - {name: web, from: client, to: "echo:8080", rate: 50, connections: 2, duration: 3s, warmup: 1s}
faults:
  - {kind: sidecar-crash, pod: echo-1, at: 1s, duration: 1s}
"#;

const ALLOW: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  rules: [{}]
"#;

fn load(p: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("run.json")).expect("JSON")
}

#[test]
fn a_replay_runs_the_same_scenario_and_picks_the_same_endpoints() {
    if !common::can_run("a_replay_runs_the_same_scenario_and_picks_the_same_endpoints") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("replayed.yaml"), SCENARIO).expect("write");
    std::fs::write(dir.path().join("allow.yaml"), ALLOW).expect("write");
    let first = dir.path().join("first");
    let again = dir.path().join("again");
    let s = dir.path().join("replayed.yaml");
    // A --duration override is part of what the run ran: the replay gives it again.
    let out = common::run(&[
        "run",
        s.to_str().expect("utf8"),
        "--duration",
        "2s",
        "--out",
        first.to_str().expect("utf8"),
    ]);
    assert!(out.status.success());
    // The original's files may change or go: the replay reads them from run.json.
    std::fs::remove_file(dir.path().join("allow.yaml")).expect("rm");
    let out = common::run(&[
        "replay",
        first.to_str().expect("utf8"),
        "--out",
        again.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "replay exits 0");
    let (a, b) = (load(&first.join("run.json")), load(&again.join("run.json")));
    // The same resolved scenario and files; only where the files were read from differs.
    for k in ["scenario", "sources", "ignored"] {
        assert_eq!(a["scenario"][k], b["scenario"][k], "{k}");
    }
    assert_eq!(
        a["scenario"]["manifests"][0]["objects"],
        b["scenario"]["manifests"][0]["objects"]
    );
    assert_eq!(b["replay_of"], first.join("run.json").display().to_string());
    assert_eq!(
        b["modes"][0]["flows"][0]["steps"][0]["duration_s"]
            .as_f64()
            .map(|d| d >= 2.0),
        Some(true)
    );
    let lb = |r: &Value| r["modes"][0]["lb"].clone();
    assert!(
        lb(&a).as_array().is_some_and(|v| !v.is_empty()),
        "{}",
        lb(&a)
    );
    assert_eq!(lb(&a), lb(&b), "each endpoint got the same picks");
    assert!(
        b["modes"][0]["faults"][0]["label"]
            .as_str()
            .is_some_and(|l| l.starts_with("sidecar-crash echo-1"))
    );
    let cmp = std::fs::read_to_string(again.join("compare.md")).expect("compare.md");
    assert!(cmp.contains("web p50"), "{cmp}");
    let html = std::fs::read_to_string(again.join("report.html")).expect("report");
    assert!(html.contains("A replay of"));
}

#[test]
fn a_run_without_its_sources_cannot_be_replayed_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut run = results::testing::sample_run(1, 1.0);
    run.scenario.sources.clear();
    let p = dir.path().join("run.json");
    run.save(&p).expect("save");
    let out = common::run(&["replay", p.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not keep the files its scenario was read from"),
        "{err}"
    );
}

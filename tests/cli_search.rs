//! `rate: search`: the highest rate a flow's path holds while meeting its SLOs, found by
//! bracketing and bisecting steps (Nighthawk's adaptive load controller does the same with its
//! binary-search step controller). The echo answers after 20 ms and the client keeps 4
//! connections (HTTP/1.1, one request in flight each), so the path holds at most 200 rps
//! whatever the machine: the search must land below that and fail above it.

mod common;

use std::process::Command;

#[test]
fn a_search_finds_the_rate_the_path_holds() {
    if !common::can_run("a_search_finds_the_rate_the_path_holds") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let sc = dir.path().join("search.yaml");
    std::fs::write(
        &sc,
        r#"version: 1
name: search
seed: 2
profile: native
modes: [ambient]
nodes: [{name: node-1}, {name: node-2}]
workloads:
  - {name: client, nodes: [node-1]}
  - {name: echo, nodes: [node-2], app: {http: {port: 8080, serviceTime: 20ms}}}
services:
  - {name: echo, workload: echo, ports: [{port: 8080}]}
flows:
  - {name: web, from: client, to: "echo:8080", rate: search from 50, connections: 4, duration: 1s, warmup: 500ms}
slos:
  - {name: keeps-up, flow: web, minAchievedRate: 95%, maxErrorRate: 1%}
"#,
    )
    .expect("write");
    let out_dir = dir.path().join("run");
    let out = Command::new(common::meshsim())
        .args(["run", sc.to_str().expect("utf8"), "--out"])
        .arg(&out_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("meshsim runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = reports::RunResult::load(out_dir.join("run.json")).expect("run.json");
    let flow = &run.modes[0].flows[0];
    let s = flow.search.as_ref().expect("a search result");
    assert_eq!(s.passed.len(), flow.steps.len());
    let max = s.max_rps.expect("50 rps passes");
    let failing = s.first_failing_rps.expect("400 rps cannot pass");
    assert!((90.0..=210.0).contains(&max), "{max} rps: {s:?}");
    assert!(failing > max && failing <= 400.0, "{failing}: {s:?}");
    assert!(
        (failing - max) / failing <= 0.05 || flow.steps.len() == 12,
        "{s:?}"
    );
    assert!(
        s.criteria.iter().any(|c| c.contains("achieved ≥ 95%")),
        "{:?}",
        s.criteria
    );
    assert!(
        stdout.contains("### Highest rate meeting the SLOs"),
        "{stdout}"
    );
}

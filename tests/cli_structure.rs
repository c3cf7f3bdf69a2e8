//! The mesh's structure in run.json, compared exactly: a waypoint added between two runs of
//! one scenario is named by `compare`, which exits 1 for it unless told the change is
//! expected.
//!
//! Needs root or unprivileged user namespaces and nft; under `CI` a missing privilege is a
//! failure.

mod common;

use serde_json::Value;

const SCENARIO: &str = r#"version: 1
name: structure
seed: 5
profile: native
modes: [ambient]
nodes: [{name: node-1}, {name: node-2}]
workloads:
  - {name: client, nodes: [node-1]}
  - {name: echo, replicas: 2, nodes: [node-2], app: {http: {port: 8080}}}
services:
  - {name: echo, workload: echo, ports: [{port: 8080}]SERVICE_LABELS}
manifests: [MANIFESTS]
flows:
  - {name: web, from: client, to: "echo:8080", rate: 50, connections: 2, duration: 2s, warmup: 1s}
"#;

const ALLOW: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-client, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  rules: [{from: [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]}]
"#;

/// A waypoint for the echo service (istio.io, "Configure waypoint proxies": a Gateway of class
/// `istio-waypoint`, and the service labelled `istio.io/use-waypoint`).
const WAYPOINT: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: echo-waypoint
  namespace: default
  labels: {istio.io/waypoint-for: service}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
"#;

#[test]
fn a_waypoint_added_between_two_runs_is_a_named_structure_change() {
    if !common::can_run("a_waypoint_added_between_two_runs_is_a_named_structure_change") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("allow.yaml"), ALLOW).expect("write");
    std::fs::write(d.join("waypoint.yaml"), WAYPOINT).expect("write");
    let before = SCENARIO
        .replace("SERVICE_LABELS", "")
        .replace("MANIFESTS", "allow.yaml");
    let after = SCENARIO
        .replace(
            "SERVICE_LABELS",
            ", labels: {istio.io/use-waypoint: echo-waypoint}",
        )
        .replace("MANIFESTS", "allow.yaml, waypoint.yaml");
    std::fs::write(d.join("before.yaml"), before).expect("write");
    std::fs::write(d.join("after.yaml"), after).expect("write");
    for (s, out) in [("before.yaml", "base"), ("after.yaml", "new")] {
        let o = common::run(&[
            "run",
            d.join(s).to_str().expect("utf8"),
            "--out",
            d.join(out).to_str().expect("utf8"),
        ]);
        assert!(o.status.success() || o.status.code() == Some(1));
    }
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("new/run.json")).expect("run.json"))
            .expect("JSON");
    let paths = &run["modes"][0]["structure"]["flows"]["web"];
    assert_eq!(paths.as_array().map(Vec::len), Some(1), "{paths}");
    assert_eq!(
        paths[0]["endpoints"], 2,
        "both replicas take one path: {paths}"
    );
    assert!(
        paths[0]["route"]
            .as_array()
            .expect("route")
            .iter()
            .any(|h| h == "waypoint echo-waypoint"),
        "{paths}"
    );
    let (base, new) = (d.join("base/run.json"), d.join("new/run.json"));
    let (base, new) = (base.to_str().expect("utf8"), new.to_str().expect("utf8"));
    // A threshold no latency change reaches: only the structure decides.
    let o = common::run(&["compare", base, new, "--threshold", "100000%"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("**structure changed**"), "{text}");
    assert!(
        text.contains("- ambient: flow web gained a waypoint hop (echo-waypoint)"),
        "{text}"
    );
    assert!(
        text.contains(
            "- ambient: proxy echo-waypoint-0 is new (holds 1 services, 2 endpoints, 0 workloads, 0 policies)"
        ),
        "the new waypoint's configuration: {text}"
    );
    // The policy allows the client's identity only; behind a waypoint the destination's
    // ztunnel enforces it on the connection from the waypoint, whose identity it sees
    // (istio.io, "Use Layer 4 security policy", ambient/usage/l4-policy, on policy enforced in
    // two places), so every request is refused.
    assert!(
        text.contains(
            "- ambient: flow web: predicted outcome per endpoint 503 ×2, was allowed (200) ×2"
        ),
        "{text}"
    );
    let o = common::run(&[
        "compare",
        base,
        new,
        "--threshold",
        "100000%",
        "--allow-structure-change",
    ]);
    assert_eq!(o.status.code(), Some(0));
    // The same run against itself: nothing changed.
    let o = common::run(&["compare", base, base]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!text.contains("structure changed"), "{text}");
}

//! `meshsim reach`: the reachability matrix probed for real in two modes, and what a migration
//! from sidecars to ambient breaks and opens, each change with the proxy and policy that
//! decided it. Needs root or unprivileged user namespaces; under `CI` a missing privilege is a
//! failure.

mod common;

use std::process::Command;

use common::*;

const SCENARIO: &str = "version: 1
name: reach
profile: native
modes: [sidecar, ambient]
nodes: [{name: node-1}, {name: node-2}]
namespaces: [{name: shop}]
workloads:
  - {name: client, namespace: shop, nodes: [node-1]}
  - {name: api, namespace: shop, nodes: [node-2], app: {http: {port: 8080}}}
  - {name: admin, namespace: shop, nodes: [node-2], app: {http: {port: 8080}}}
services:
  - {name: api, namespace: shop, workload: api, ports: [{port: 8080}], labels: {istio.io/use-waypoint: wp}}
  - {name: admin, namespace: shop, workload: admin, ports: [{port: 8080}]}
manifests: [m.yaml]
";

/// `api` admits only `client` at L4 (a waypoint breaks that); `admin` is closed to everyone by
/// a DENY on remoteIpBlocks, which only an Envoy can see (ztunnel skips it: an opening).
const MANIFESTS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp, namespace: shop}
spec: {gatewayClassName: istio-waypoint}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api-l4, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admin-closed, namespace: shop}
spec:
  selector: {matchLabels: {app: admin}}
  action: DENY
  rules: [{from: [{source: {remoteIpBlocks: [0.0.0.0/0]}}]}]
";

#[test]
fn sidecar_to_ambient_names_each_break_and_opening() {
    if !can_run("sidecar_to_ambient_names_each_break_and_opening") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), SCENARIO).unwrap();
    std::fs::write(dir.path().join("m.yaml"), MANIFESTS).unwrap();
    let json = dir.path().join("reach.json");
    let out = Command::new(meshsim())
        .arg("reach")
        .arg(dir.path().join("s.yaml"))
        .arg("--json")
        .arg(&json)
        .output()
        .expect("meshsim reach runs");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "a change exits 1");
    // The classic break: through the waypoint, api's ztunnel sees the waypoint's identity.
    let brk = text
        .lines()
        .find(|l| l.contains("BREAK") && l.contains("client-0 → api.shop:8080"))
        .expect("client → api breaks");
    assert!(brk.contains("allowed (200) → 503"), "{brk}");
    assert!(
        brk.contains("ztunnel for api-0: no ALLOW rule matched"),
        "{brk}"
    );
    // The opening: the remoteIpBlocks DENY held at admin's sidecar, ztunnel cannot see it.
    let open = text
        .lines()
        .find(|l| l.contains("OPENING") && l.contains("client-0 → admin.shop:8080"))
        .expect("client → admin opens");
    assert!(open.contains("denied 403 → allowed (200)"), "{open}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let sidecar = &doc["modes"][0]["cells"];
    let denied = sidecar
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["probe"]["from"] == "client-0" && c["probe"]["to"] == "admin.shop:8080")
        .unwrap();
    assert_eq!(denied["decided_by"]["by"], "DENY shop/admin-closed rule 0");
    assert_eq!(denied["decided_by"]["proxy"], "sidecar admin-0");
    assert_eq!(doc["diffs"][0]["from"], "sidecar");
    assert!(!doc["diffs"][0]["breaks"].as_array().unwrap().is_empty());
}

/// A two-stage migration of the same cluster: stage `ambient` makes namespace `shop` ambient
/// and restarts it (the waypoint breaks `api`), stage `relabel-only` changes a label without a
/// restart (nothing changes: a sidecar goes only with a restart). An undeclared break exits 1
/// and is named; declared, the same run exits 0; an opening is caught the same way.
#[test]
fn migration_stages_fail_on_what_they_do_not_expect() {
    if !can_run("migration_stages_fail_on_what_they_do_not_expect") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stages = |expect: &str| {
        format!(
            "{}migration:
  stages:
    - name: relabel-only
      relabel: [{{namespace: shop, labels: {{istio-injection: null, istio.io/dataplane-mode: ambient}}}}]
    - name: ambient
      restart: [shop/*]
{expect}",
            SCENARIO
                .replace("modes: [sidecar, ambient]\n", "")
                .replace("namespaces: [{name: shop}]", "namespaces: [{name: shop, labels: {istio-injection: enabled}}]")
        )
    };
    std::fs::write(dir.path().join("m.yaml"), MANIFESTS).unwrap();
    let reach = |text: &str| {
        std::fs::write(dir.path().join("s.yaml"), text).unwrap();
        let out = Command::new(meshsim())
            .arg("reach")
            .arg(dir.path().join("s.yaml"))
            .output()
            .expect("meshsim reach runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    };
    let (code, text) = reach(&stages(""));
    assert_eq!(code, Some(1), "undeclared changes fail");
    assert!(
        text.contains("before → relabel-only: 0 break(s), 0 opening(s)"),
        "{text}"
    );
    let brk = text
        .lines()
        .find(|l| l.contains("BREAK") && l.contains("client-0 → api.shop:8080"))
        .expect("the break is named");
    assert!(!brk.contains("(expected)"), "{brk}");
    assert!(brk.contains("ztunnel for api-0"), "{brk}");
    assert!(
        text.lines()
            .any(|l| l.contains("OPENING") && l.contains("client-0 → admin.shop:8080")),
        "the opening is named: {text}"
    );
    let declared = stages(
        "      expect:
        - {from: client, to: api.shop:8080, change: break}
        - {from: client, to: admin.shop:8080, change: opening}
        - {from: api, to: admin.shop:8080, change: opening}
",
    );
    let (code, text) = reach(&declared);
    assert_eq!(code, Some(0), "declared changes pass: {text}");
    assert!(text.contains("(expected)"), "{text}");
}

/// NetworkPolicy as the CNI enforces it, across a migration. `pay` admits TCP 8080 from
/// `client` only, as a sidecar mesh needs. Once the namespace is ambient, pod-to-pod traffic
/// arrives over HBONE on 15008, so the policy drops it: "a NetworkPolicy that only allows port
/// 8080 ... must also allow port 15008" (https://istio.io/latest/docs/ambient/usage/networkpolicy/).
/// The break is named with the policy and the port. Admitting 15008 (stage `admit-hbone`,
/// applied as `kubectl apply` would: the same name replaces the policy; beside the Cilium one
/// it adds to it, as policies do) opens it again, for `client` only.
#[test]
fn a_network_policy_admitting_only_the_app_port_breaks_ambient() {
    if !can_run("a_network_policy_admitting_only_the_app_port_breaks_ambient") {
        return;
    }
    let scenario = "version: 1
name: netpol
profile: native
nodes: [{name: node-1}, {name: node-2}]
namespaces: [{name: shop, labels: {istio-injection: enabled}}]
workloads:
  - {name: client, namespace: shop, nodes: [node-1]}
  - {name: other, namespace: shop, nodes: [node-1]}
  - {name: pay, namespace: shop, nodes: [node-2], app: {http: {port: 8080}}}
services:
  - {name: pay, namespace: shop, workload: pay, ports: [{port: 8080}]}
manifests: [np.yaml]
migration:
  stages:
    - name: ambient
      relabel: [{namespace: shop, labels: {istio-injection: null, istio.io/dataplane-mode: ambient}}]
      restart: [shop/*]
    - name: admit-hbone
      apply: [np-hbone.yaml]
";
    let policy = |ports: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: pay-app-port, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: pay}}}}
  ingress:
  - from: [{{podSelector: {{matchLabels: {{app: client}}}}}}]
    ports: [{ports}]
"
        )
    };
    let cilium = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: pay-app-port, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: pay}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]
";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("np-hbone.yaml"),
        policy("{port: 8080}, {port: 15008}"),
    )
    .unwrap();
    for (kind, first) in [
        ("NetworkPolicy", policy("{port: 8080}")),
        ("CiliumNetworkPolicy", cilium.to_string()),
    ] {
        std::fs::write(dir.path().join("np.yaml"), &first).unwrap();
        std::fs::write(dir.path().join("s.yaml"), scenario).unwrap();
        let out = Command::new(meshsim())
            .arg("reach")
            .arg(dir.path().join("s.yaml"))
            .output()
            .expect("meshsim reach runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{kind}: undeclared changes fail"
        );
        // As written (sidecars), the policy holds: client reaches pay, other does not.
        let line = |mark: &str, from: &str| {
            text.lines()
                .find(|l| l.contains(mark) && l.contains(&format!("{from}-0 → pay.shop:8080")))
                .map(str::to_string)
        };
        let brk = line("BREAK", "client").unwrap_or_else(|| panic!("{kind}: client → pay breaks"));
        assert!(
            brk.contains(
                "NetworkPolicy (CNI) on node-2: ingress of pay-0 dropped TCP 15008 (HBONE"
            ) && brk.contains(&format!("{kind} shop/pay-app-port admits TCP 8080")),
            "{kind}: {brk}"
        );
        let open =
            line("OPENING", "client").unwrap_or_else(|| panic!("{kind}: admitting 15008 opens"));
        assert!(open.contains("→ allowed (200)"), "{open}");
        assert!(
            line("OPENING", "other").is_none(),
            "{kind}: `other` stays out\n{text}"
        );
        assert!(
            line("BREAK", "other").is_none(),
            "{kind}: `other` was never in\n{text}"
        );
    }
}

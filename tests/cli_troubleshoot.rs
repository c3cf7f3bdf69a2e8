//! What an SRE reads from a running cluster: `meshsim logs` (the proxies' access logs in the
//! form Istio's proxies write them) and `meshsim ztunnel-config` / `meshsim waypoint` (the
//! configuration with istioctl's columns: `istioctl/pkg/writer/ztunnel/configdump` and
//! `istioctl/pkg/waypoint/waypoint.go`).
//!
//! Sources: ztunnel's access log ("connection complete", the `access` target; istio/ztunnel
//! README "Logging" and `src/proxy/metrics.rs` `ConnectionResult`), on by default; Envoy's
//! text format for sidecars and waypoints (Istio's `EnvoyTextLogFormat`,
//! `pilot/pkg/model/telemetry_logging.go`), on when `meshConfig.accessLogFile` is set, with
//! `%RESPONSE_FLAGS%` (UF, UH, …) and `%RESPONSE_CODE_DETAILS%` (`via_upstream`,
//! `rbac_access_denied_matched_policy[…]`).
//!
//! Needs root or unprivileged user namespaces, nft and curl; under `CI` a missing privilege is
//! a failure.

mod common;

use std::process::Command;

const SCENARIO: &str = r#"version: 1
name: logs
seed: 1
profile: native
meshConfig:
  accessLogFile: /dev/stdout
nodes: [{name: node-1}, {name: node-2}]
workloads:
  - {name: client, nodes: [node-1]}
  - {name: echo, nodes: [node-2], app: {http: {port: 8080}}}
services:
  - {name: echo, workload: echo, ports: [{port: 8080}]}
manifests: [deny.yaml]
flows:
  - {name: web, from: client, to: "echo:8080", rate: 10, duration: 1s, warmup: 1s}
"#;

const DENY: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  action: DENY
  rules:
    - to: [{operation: {paths: ["/admin"]}}]
"#;

fn logs(up: &common::Up, component: &str) -> String {
    let out = Command::new(common::meshsim())
        .args(["logs", "--cluster", &up.name, component, "--tail", "50"])
        .output()
        .expect("meshsim logs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "meshsim logs {component}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn scenario_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("logs.yaml"), SCENARIO).expect("write");
    std::fs::write(dir.path().join("deny.yaml"), DENY).expect("write");
    dir
}

#[test]
fn sidecars_write_envoys_access_log_with_flags_and_details() {
    if !common::can_run("sidecars_write_envoys_access_log_with_flags_and_details") {
        return;
    }
    let dir = scenario_dir();
    let up = common::up_path(&dir.path().join("logs.yaml"), "sidecar");
    assert_eq!(
        common::curl(&up, "client-0", &["http://echo:8080/hello"]).0,
        200
    );
    assert_eq!(
        common::curl(&up, "client-0", &["http://echo:8080/admin"]).0,
        403
    );
    let client = logs(&up, "sidecar-client-0");
    assert!(
        client.contains("\"GET /hello HTTP/1.1\" 200 - via_upstream")
            && client.contains("outbound|8080||echo.default.svc.cluster.local")
            && client.contains("\"echo:8080\""),
        "{client}"
    );
    let echo = logs(&up, "sidecar-echo-0");
    assert!(
        echo.contains(
            "\"GET /admin HTTP/1.1\" 403 - rbac_access_denied_matched_policy[ns[default]-policy[no-admin]-rule[0]]"
        ),
        "{echo}"
    );
    assert!(echo.contains("inbound|8080||"), "{echo}");
    // Unknown proxies are named with what exists.
    let out = Command::new(common::meshsim())
        .args(["logs", "--cluster", &up.name, "nope"])
        .output()
        .expect("meshsim logs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sidecar-client-0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ztunnels_log_every_connection_complete() {
    if !common::can_run("ztunnels_log_every_connection_complete") {
        return;
    }
    let dir = scenario_dir();
    let up = common::up_path(&dir.path().join("logs.yaml"), "ambient");
    for _ in 0..3 {
        assert_eq!(common::curl(&up, "client-0", &["http://echo:8080/"]).0, 200);
    }
    // Every node's ztunnel, as `kubectl logs -l app=ztunnel`: each line tagged with its pod.
    let all = logs(&up, "ztunnel");
    let out: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("[ztunnel-node-1]") && l.contains("direction=\"outbound\""))
        .collect();
    assert!(out.len() >= 3, "{all}");
    assert!(
        out[0].contains("INFO access: connection complete src.addr=")
            && out[0].contains("src.workload=\"client-0\"")
            && out[0].contains("src.identity=\"spiffe://cluster.local/ns/default/sa/client\"")
            && out[0].contains("dst.hbone_addr=")
            && out[0].contains("dst.service=\"echo.default.svc.cluster.local\""),
        "{}",
        out[0]
    );
    assert!(
        all.lines()
            .any(|l| l.starts_with("[ztunnel-node-2]") && l.contains("direction=\"inbound\"")),
        "{all}"
    );
}

fn meshsim_out(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::meshsim())
        .args(args)
        .output()
        .expect("meshsim");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ztunnel_config_and_waypoint_tables_read_like_istioctl() {
    if !common::can_run("ztunnel_config_and_waypoint_tables_read_like_istioctl") {
        return;
    }
    let up = common::up("payment.yaml", "ambient");
    let c = up.name.as_str();
    let (ok, w, _) = meshsim_out(&["ztunnel-config", "workloads", "--cluster", c]);
    assert!(ok);
    let mut lines = w.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")),
        Some("NAMESPACE POD NAME ADDRESS NODE WAYPOINT PROTOCOL".into())
    );
    let pay = w
        .lines()
        .find(|l| l.contains("payment-service-0"))
        .expect("payment-service-0 listed");
    let cols: Vec<&str> = pay.split_whitespace().collect();
    assert_eq!(
        (cols[0], cols[3], cols[5]),
        ("production", "node-2", "HBONE"),
        "{pay}"
    );
    // A waypoint's own pod is plain TCP to ztunnel.
    assert!(
        w.lines()
            .any(|l| l.contains("payment-waypoint-0") && l.ends_with("TCP"))
    );
    let (_, only, _) = meshsim_out(&[
        "ztunnel-config",
        "workloads",
        "--cluster",
        c,
        "--node",
        "node-1",
    ]);
    assert!(
        !only.contains("payment-service-0") && only.contains("order-service-0"),
        "{only}"
    );

    let (_, s, _) = meshsim_out(&["ztunnel-config", "services", "--cluster", c]);
    let svc = s
        .lines()
        .find(|l| l.contains(" payment-service "))
        .expect("service");
    assert!(
        svc.contains("payment-waypoint") && svc.ends_with("1/1"),
        "{svc}"
    );

    // ztunnel gets the selector-bound policies; the targetRefs ones are the waypoints'.
    let (_, p, _) = meshsim_out(&["ztunnel-config", "policies", "--cluster", c]);
    assert!(p.starts_with("NAMESPACE"), "{p}");
    assert!(p.contains("WorkloadSelector"), "{p}");

    let (_, certs, _) = meshsim_out(&[
        "ztunnel-config",
        "certificates",
        "--cluster",
        c,
        "--node",
        "node-2",
    ]);
    assert!(
        certs.lines().any(|l| l
            .starts_with("spiffe://cluster.local/ns/production/sa/payment-service")
            && l.contains(" Leaf ")
            && l.contains(" true ")),
        "{certs}"
    );

    let (_, list, _) = meshsim_out(&["waypoint", "list", "--cluster", c]);
    assert!(
        list.lines().any(|l| l.starts_with("production")
            && l.contains("payment-waypoint")
            && l.ends_with("True")),
        "{list}"
    );
    let (ok, _, err) = meshsim_out(&[
        "ztunnel-config",
        "workloads",
        "--cluster",
        c,
        "--node",
        "nope",
    ]);
    assert!(
        !ok && err.contains("no node \"nope\"; the nodes are: node-1, node-2"),
        "{err}"
    );
}

#[test]
fn explain_names_the_rule_that_refused_and_checks_the_prediction_for_real() {
    if !common::can_run("explain_names_the_rule_that_refused_and_checks_the_prediction_for_real") {
        return;
    }
    let up = common::up("payment.yaml", "ambient");
    let url = "http://payment-service.production:8080/api/v1/payments";
    // payment-authz admits POST only (istio.io "Use waypoint proxies to enforce L7 policy").
    let (ok, text, err) = meshsim_out(&["explain", "--cluster", &up.name, "order-service-0", url]);
    assert!(ok, "{text}{err}");
    for want in [
        "path: order-service-0 (ambient) → ztunnel for order-service-0 (outbound) → waypoint payment-waypoint",
        "policy production/payment-authz (ALLOW)",
        "rule 0: does not match: to does not",
        "predicted: denied 403",
        "sent for real: denied 403",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    let (ok, text, _) = meshsim_out(&[
        "explain",
        "--cluster",
        &up.name,
        "order-service-0",
        url,
        "-X",
        "POST",
    ]);
    assert!(
        ok && text.contains("rule 0: matches") && text.contains("sent for real: allowed (200)"),
        "{text}"
    );
    // Through the waypoint, the destination ztunnel sees the waypoint's identity.
    assert!(
        text.contains("HBONE (mTLS) from cluster.local/ns/production/sa/payment-waypoint"),
        "{text}"
    );
    let (ok, _, err) = meshsim_out(&["explain", "--cluster", &up.name, "nobody-0", url]);
    assert!(!ok && err.contains("no pod \"nobody-0\""), "{err}");
}

/// A request NetworkPolicy drops: the proxies would pass it, the CNI drops the HBONE packets
/// on the destination's node (https://istio.io/latest/docs/ambient/usage/networkpolicy/), and
/// `explain` names that drop, read from the node's counters, instead of calling it a bug.
#[test]
fn explain_names_a_network_policy_drop() {
    if !common::can_run("explain_names_a_network_policy_drop") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("s.yaml"),
        "version: 1
name: np-explain
profile: native
nodes: [{name: node-1}, {name: node-2}]
namespaces: [{name: shop}]
workloads:
  - {name: client, namespace: shop, nodes: [node-1]}
  - {name: pay, namespace: shop, nodes: [node-2], app: {http: {port: 8080}}}
services:
  - {name: pay, namespace: shop, workload: pay, ports: [{port: 8080}]}
manifests: [np.yaml]
",
    )
    .expect("scenario");
    std::fs::write(
        dir.path().join("np.yaml"),
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: pay-app-port, namespace: shop}
spec:
  podSelector: {matchLabels: {app: pay}}
  ingress: [{ports: [{port: 8080}]}]
",
    )
    .expect("policy");
    let up = common::up_path(&dir.path().join("s.yaml"), "ambient");
    let (ok, text, err) = meshsim_out(&[
        "explain",
        "--cluster",
        &up.name,
        "client-0",
        "http://pay.shop:8080/",
    ]);
    assert!(ok, "{text}{err}");
    assert!(text.contains("sent for real: timeout"), "{text}");
    assert!(
        text.contains("NetworkPolicy (CNI) on node-2: ingress of pay-0 dropped TCP 15008"),
        "{text}"
    );
    assert!(!text.contains("DISAGREE"), "{text}");
}

/// `explain` names the DestinationRule connection pool a hop applies: the waypoint in
/// ambient (istiod builds its `inbound-vip` cluster with the service's rule,
/// pilot/pkg/networking/core/cluster_waypoint.go), the client's sidecar in sidecar mode; a
/// single request cannot overflow it, so it is named, not predicted.
#[test]
fn explain_names_the_connection_pool_a_hop_applies() {
    if !common::can_run("explain_names_the_connection_pool_a_hop_applies") {
        return;
    }
    let url = "http://api-gateway.production:8080/";
    let pool = "DestinationRule production/api-gateway-pool: connection pool maxConnections 32, http1MaxPendingRequests 16, http2MaxRequests 32";
    for (mode, hop) in [
        ("ambient", "waypoint high-traffic-waypoint"),
        ("sidecar", "sidecar web-0 (outbound)"),
    ] {
        let up = common::up("waypoint-overload.yaml", mode);
        let (ok, text, err) = meshsim_out(&["explain", "--cluster", &up.name, "web-0", url]);
        assert!(ok, "{text}{err}");
        let at = text
            .find(hop)
            .unwrap_or_else(|| panic!("{hop} in:\n{text}"));
        assert!(text[at..].contains(pool), "{pool:?} at {hop} in:\n{text}");
        assert!(text.contains("sent for real: allowed (200)"), "{text}");
    }
}

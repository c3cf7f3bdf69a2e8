//! `meshsim validate`: exit 0 on the bundled scenarios, and on a broken file every problem as
//! `file:line:column: field: message` with exit 1; nothing is started either way.

use std::path::{Path, PathBuf};
use std::process::Command;

fn meshsim() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_meshsim"))
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn bundled_scenarios_validate() {
    let out = Command::new(meshsim())
        .arg("validate")
        .args(
            [
                "quickstart",
                "payment",
                "istio-reference",
                "connection-churn",
            ]
            .map(|n| repo().join("scenarios").join(format!("{n}.yaml"))),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches(": ok").count(), 4, "{stdout}");
    assert!(stdout.contains("6 manifest objects"), "{stdout}");
}

#[test]
fn broken_scenario_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.yaml");
    std::fs::write(
        &p,
        "version: 1\nname: b\nnodes: [{name: n1}]\nworkloads:\n  - name: c\n    nodes: [n9]\nflows:\n  - name: f\n    from: c\n    to: nope:80\n    rate: 10\n",
    )
    .unwrap();
    let out = Command::new(meshsim())
        .arg("validate")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let f = p.display();
    assert!(
        err.contains(&format!(
            "{f}:6:13: workloads[0].nodes[0]: node `n9` does not exist"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{f}:10:9: flows[0].to: service `nope` does not exist"
        )),
        "{err}"
    );
    assert!(err.contains("2 problems"), "{err}");
}

/// A scenario whose manifest holds an EnvoyFilter (line 1) and a VirtualService (line 8).
fn scenario_with_unmodelled_objects(dir: &Path) -> (PathBuf, PathBuf) {
    let m = dir.join("extras.yaml");
    std::fs::write(
        &m,
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata:\n  name: lua\n  namespace: prod\nspec: {}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [reviews]\n",
    )
    .unwrap();
    let p = dir.join("s.yaml");
    std::fs::write(
        &p,
        "version: 1\nname: w\nnodes: [{name: n1}]\nmanifests: [extras.yaml]\nworkloads:\n  - name: c\n    nodes: [n1]\n  - name: s\n    nodes: [n1]\n    app: {http: {port: 8080}}\nservices:\n  - name: s\n    workload: s\n    ports: [{port: 8080}]\nflows:\n  - name: f\n    from: c\n    to: s:8080\n    rate: 10\n",
    )
    .unwrap();
    (p, m)
}

#[test]
fn unmodelled_objects_are_warnings_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (p, m) = scenario_with_unmodelled_objects(dir.path());
    let out = Command::new(meshsim())
        .arg("validate")
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
    let m = m.display();
    let envoy_filter =
        format!("{m}:1: warning: EnvoyFilter prod/lua (Envoy config patch) is not modelled: ");
    let virtual_service = format!(
        "{m}:8: warning: VirtualService reviews (routing rules) is not modelled: the run sends traffic by round robin and ignores its routes, retries, timeouts and faults"
    );
    assert!(err.contains(&envoy_filter), "{err}");
    assert!(err.contains(&virtual_service), "{err}");

    let out = Command::new(meshsim())
        .args(["validate", "--strict"])
        .arg(&p)
        .output()
        .unwrap();
    let strict = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{strict}");
    assert!(strict.contains(&envoy_filter), "{strict}");
    assert!(strict.contains(&virtual_service), "{strict}");
    assert!(
        strict.contains("2 warnings (errors under --strict)"),
        "{strict}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(": ok"));
}

#[test]
fn bundled_scenarios_pass_strict() {
    let out = Command::new(meshsim())
        .args(["validate", "--strict"])
        .arg(repo().join("scenarios/payment.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn missing_file_is_an_error_not_a_verdict() {
    let out = Command::new(meshsim())
        .args(["validate", "/nonexistent/s.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read scenario /nonexistent/s.yaml")
    );
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let out = Command::new(meshsim()).arg("schema").output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read_to_string(repo().join("scenarios/scenario.schema.json")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}

/// `meshsim check` finds an L7 policy that no waypoint serves: bound by selector to an ambient
/// pod, ztunnel drops its HTTP rules and it refuses everything (pilot's ambient
/// `authorization.go` `handleRule`); it names the policy with file and line and exits 1. Once
/// the policy is bound to a waypoint with targetRefs, the check passes.
#[test]
fn check_finds_an_l7_policy_without_a_waypoint() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = "version: 1
name: l7
profile: istio-1.24
nodes: [{name: node-1}]
namespaces: [{name: shop, labels: {istio.io/dataplane-mode: ambient}}]
workloads:
  - {name: client, namespace: shop}
  - {name: api, namespace: shop, app: {http: {port: 8080}}}
services:
  - {name: api, namespace: shop, workload: api, ports: [{port: 8080}], labels: {istio.io/use-waypoint: wp}}
manifests: [m.yaml]
";
    let waypoint = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp, namespace: shop}
spec: {gatewayClassName: istio-waypoint}
---
";
    let by_selector = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api-get, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  rules: [{to: [{operation: {methods: [GET]}}]}]
";
    std::fs::write(dir.path().join("s.yaml"), scenario).unwrap();
    std::fs::write(
        dir.path().join("m.yaml"),
        format!("{waypoint}{by_selector}"),
    )
    .unwrap();
    let out = Command::new(meshsim())
        .args(["check"])
        .arg(dir.path().join("s.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("(mode declared): pods 2 ambient"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("shop/api-get"))
        .unwrap_or_else(|| panic!("the policy is named: {text}"));
    assert!(
        line.contains("m.yaml:8"),
        "with file and line (its name): {line}"
    );
    assert!(line.contains("api-0"), "and the pod: {line}");
    let bound = by_selector.replace(
        "  selector: {matchLabels: {app: api}}",
        "  targetRefs: [{kind: Service, group: \"\", name: api}]",
    );
    std::fs::write(dir.path().join("m.yaml"), format!("{waypoint}{bound}")).unwrap();
    let out = Command::new(meshsim())
        .args(["check", "--json"])
        .arg(dir.path().join("s.yaml"))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(0), "{json:#}");
    let item = json[0]["report"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "l7-at-ztunnel")
        .unwrap();
    assert_eq!(item["status"], "verified");
}

#[test]
fn bad_monitoring_inputs_name_their_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.yaml");
    std::fs::write(
        &p,
        "version: 1\nname: m\nnodes: [{name: n1}]\nworkloads:\n  - name: c\n    nodes: [n1]\nmonitoring:\n  rules: [alerts.yaml]\n  dashboards: [gone.json]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("alerts.yaml"),
        "groups:\n- name: g\n  rules:\n  - alert: Broken\n    expr: sum(rate(istio_requests_total{reporter=\"destination\"[1m]))\n",
    )
    .unwrap();
    let out = Command::new(meshsim())
        .arg("validate")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // The PromQL syntax error at the rule's line in the rules file, and the missing dashboard
    // at its place in the scenario.
    assert!(
        err.contains(&format!("{}:5:", dir.path().join("alerts.yaml").display()))
            && err.contains("expr"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}:9:", p.display()))
            && err.contains("monitoring.dashboards[0]")
            && err.contains("gone.json"),
        "{err}"
    );
}

/// `check` before an ambient migration: a NetworkPolicy that admits only the app's port drops
/// HBONE (15008) once the pod is ambient (https://istio.io/latest/docs/ambient/usage/networkpolicy/);
/// as written (sidecars) it is fine. Admitting 15008 passes, leaving the kubelet-probe warning.
#[test]
fn check_finds_a_network_policy_that_drops_hbone() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = "version: 1
name: np
profile: istio-1.24
nodes: [{name: node-1}, {name: node-2}]
namespaces: [{name: shop, labels: {istio-injection: enabled}}]
workloads:
  - {name: client, namespace: shop, nodes: [node-1]}
  - {name: pay, namespace: shop, nodes: [node-2], app: {http: {port: 8080}}}
services:
  - {name: pay, namespace: shop, workload: pay, ports: [{port: 8080}]}
manifests: [np.yaml]
migration:
  stages:
    - name: ambient
      relabel: [{namespace: shop, labels: {istio-injection: null, istio.io/dataplane-mode: ambient}}]
      restart: [shop/*]
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
    std::fs::write(dir.path().join("s.yaml"), scenario).unwrap();
    let check = |ports: &str| {
        std::fs::write(dir.path().join("np.yaml"), policy(ports)).unwrap();
        let out = Command::new(meshsim())
            .arg("check")
            .arg(dir.path().join("s.yaml"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = check("{port: 8080}");
    assert_eq!(code, Some(1), "{text}");
    let (written, after) = text
        .split_once("== after stage ambient")
        .expect("two points");
    assert!(
        written.contains("[ok     ] NetworkPolicies admit HBONE (TCP 15008)"),
        "{written}"
    );
    assert!(
        after.contains("[FAILED ] NetworkPolicies admit HBONE (TCP 15008)")
            && after.contains("NetworkPolicy shop/pay-app-port (")
            && after.contains(
                "np.yaml:3) limits ingress of pay-0 (ambient) to TCP 8080, without TCP 15008"
            ),
        "{after}"
    );
    let (code, text) = check("{port: 8080}, {port: 15008}");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("169.254.7.127"), "{text}");
}

/// A DestinationRule's connection pool applies at the client's sidecar or at the service's
/// waypoint; ztunnel does not read it (istio.io "Migrate policies": DestinationRule traffic
/// policies are supported by waypoints). Moving the client to ambient without a waypoint
/// drops the limits, which `check` warns of; a waypoint for the service keeps them.
#[test]
fn check_warns_of_a_connection_pool_nothing_applies_after_the_move() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = |extra: &str| {
        format!(
            "version: 1
name: dr
profile: istio-1.24
nodes: [{{name: node-1}}, {{name: node-2}}]
namespaces: [{{name: shop, labels: {{istio-injection: enabled}}}}]
workloads:
  - {{name: client, namespace: shop, nodes: [node-1]}}
  - {{name: pay, namespace: shop, nodes: [node-2], app: {{http: {{port: 8080}}}}}}
services:
  - {{name: pay, namespace: shop, workload: pay, ports: [{{port: 8080}}]{extra}}}
flows:
  - {{name: web, from: client, to: pay:8080, rate: 10}}
manifests: [dr.yaml]
migration:
  stages:
    - name: ambient
      relabel: [{{namespace: shop, labels: {{istio-injection: null, istio.io/dataplane-mode: ambient}}}}]
      restart: [shop/*]
"
        )
    };
    let rules = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pay-pool, namespace: shop}
spec:
  host: pay
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 10}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: shop-waypoint, namespace: shop, labels: {istio.io/waypoint-for: service}}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
";
    std::fs::write(dir.path().join("dr.yaml"), rules).unwrap();
    let check = |extra: &str| {
        std::fs::write(dir.path().join("s.yaml"), scenario(extra)).unwrap();
        let out = Command::new(meshsim())
            .arg("check")
            .arg(dir.path().join("s.yaml"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = check("");
    let (written, after) = text
        .split_once("== after stage ambient")
        .expect("two points");
    let title = "every DestinationRule connection pool has a proxy to apply it";
    assert!(written.contains(&format!("[ok     ] {title}")), "{written}");
    assert!(
        after.contains(&format!("[warning] {title}"))
            && after.contains("DestinationRule shop/pay-pool (")
            && after.contains("dr.yaml:5) sets a connection pool for pay.shop.svc.cluster.local, but client-0 send to it without a sidecar"),
        "{after}"
    );
    let text = check(", labels: {istio.io/use-waypoint: shop-waypoint}");
    let (_, after) = text
        .split_once("== after stage ambient")
        .expect("two points");
    assert!(after.contains(&format!("[ok     ] {title}")), "{after}");
}

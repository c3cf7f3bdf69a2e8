//! Scenario loading and validation: the bundled scenarios load, and each kind of user error
//! is reported once with file, line, column and field path.

use std::path::{Path, PathBuf};

use scenario::{self, Diagnostic, Mode, ScenarioError};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scenarios() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// Writes `files` into a temp dir and loads `main`.
fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<scenario::Loaded, ScenarioError>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let r = scenario::load(&dir.path().join(files[0].0));
    (dir, r)
}

fn errors(files: &[(&str, &str)]) -> Vec<Diagnostic> {
    match load(files).1 {
        Ok(_) => panic!("expected errors"),
        Err(ScenarioError::Invalid(d)) => d,
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn one(files: &[(&str, &str)]) -> Diagnostic {
    let d = errors(files);
    assert_eq!(d.len(), 1, "expected one problem, got {d:#?}");
    d.into_iter().next().unwrap()
}

const BASE: &str = "\
version: 1
name: t
nodes:
  - name: node-1
  - name: node-2
workloads:
  - name: client
    nodes: [node-1]
  - name: echo
    replicas: 2
    nodes: [node-2]
    app:
      http: {port: 8080}
services:
  - name: echo
    workload: echo
    ports: [{port: 8080}]
flows:
  - name: web
    from: client
    to: echo:8080
    rate: 100
";

#[test]
fn every_bundled_scenario_is_valid() {
    let files = scenarios();
    assert!(files.len() >= 4, "bundled scenarios: {files:?}");
    for f in files {
        if let Err(e) = scenario::load(&f) {
            panic!("{}: {e}", f.display());
        }
    }
}

#[test]
fn the_resolved_scenario_carries_the_defaults_a_user_left_out() {
    let l = scenario::load(&repo().join("scenarios/quickstart.yaml")).unwrap();
    assert_eq!(l.scenario.modes, Mode::ALL);
    let j = l.resolved_json();
    assert_eq!(j["scenario"]["flows"][0]["connections"], 4);
}

#[test]
fn the_guides_manifests_parse_and_resolve() {
    let l = scenario::load(&repo().join("scenarios/payment.yaml")).unwrap();
    let kinds: Vec<_> = l.objects().map(|o| o.object.kind()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "Gateway",
            "Gateway",
            "AuthorizationPolicy",
            "RequestAuthentication",
            "AuthorizationPolicy"
        ]
    );
    let gw = l
        .objects()
        .find_map(|o| match &o.object {
            scenario::manifest::Object::Gateway(g)
                if g.metadata.name == "high-traffic-waypoint" =>
            {
                Some(g.clone())
            }
            _ => None,
        })
        .unwrap();
    let pc = scenario::manifest::proxy_config(&gw).unwrap();
    assert_eq!(pc.concurrency, Some(4));
    let limits = pc.resources.unwrap().limits.unwrap();
    assert_eq!(limits.cpu.unwrap().0, 1000);
    assert_eq!(limits.memory.unwrap().0, 1 << 30);
    assert!(
        l.jwks
            .contains_key("https://auth.example.com/.well-known/jwks.json")
    );
    assert_eq!(
        l.namespace_labels("production")["istio.io/dataplane-mode"],
        "ambient"
    );
}

#[test]
fn unknown_field_names_line_column_and_path() {
    let text = BASE.replace("    replicas: 2\n", "    replica: 2\n");
    let d = one(&[("s.yaml", &text)]);
    assert_eq!((d.line, d.column), (10, 5), "{d}");
    assert_eq!(d.path, "workloads[1].replica");
    assert!(d.message.contains("unknown field `replica`"), "{d}");
    assert!(
        d.to_string()
            .starts_with(&format!("{}:10:5: workloads[1].replica:", d.file.display()))
    );
}

#[test]
fn bad_values_name_the_field() {
    let d = one(&[("s.yaml", &BASE.replace("rate: 100", "rate: fast"))]);
    assert_eq!(d.path, "flows[0].rate", "{d}");
    assert_eq!(d.line, 22);
    assert!(d.message.contains("not a rate"), "{d}");

    let d = one(&[("s.yaml", &format!("{BASE}    duration: 10\n"))]);
    assert_eq!(d.path, "flows[0].duration", "{d}");
    assert!(d.message.contains("no unit"), "{d}");

    let d = one(&[("s.yaml", &BASE.replace("{port: 8080}]", "{port: 80800}]"))]);
    assert_eq!(d.path, "services[0].ports[0].port", "{d}");

    let d = one(&[("s.yaml", &BASE.replace("rate: 100", "rate: -5"))]);
    assert_eq!(d.path, "flows[0].rate", "{d}");
    assert!(d.message.contains("out of range"), "{d}");

    let d = one(&[("s.yaml", &BASE.replace("version: 1", "version: 2"))]);
    assert_eq!((d.path.as_str(), d.line), ("version", 1), "{d}");
}

#[test]
fn missing_references_are_each_reported() {
    let text = BASE
        .replace("nodes: [node-1]", "nodes: [node-9]")
        .replace("workload: echo", "workload: ech")
        .replace("from: client", "from: clien")
        .replace("to: echo:8080", "to: echo:9090")
        + "    \nslos:\n  - name: s\n    flow: nope\n    p99: 10ms\n";
    let d = errors(&[("s.yaml", &text)]);
    let got: Vec<_> = d.iter().map(|d| (d.line, d.path.as_str())).collect();
    assert_eq!(
        got,
        [
            (8, "workloads[0].nodes[0]"),
            (16, "services[0].workload"),
            (20, "flows[0].from"),
            (21, "flows[0].to"),
            (26, "slos[0].flow"),
        ],
        "{d:#?}"
    );
    assert!(d[0].message.contains("node `node-9` does not exist"));
    assert!(d[3].message.contains("has no port 9090"), "{}", d[3]);
}

#[test]
fn missing_namespace_is_reported() {
    let text = BASE.replace(
        "  - name: echo\n    replicas",
        "  - name: echo\n    namespace: prod\n    replicas",
    );
    let d = errors(&[("s.yaml", &text)]);
    assert!(
        d.iter()
            .any(|d| d.path == "workloads[1].namespace"
                && d.message.contains("`prod` does not exist")),
        "{d:#?}"
    );
}

const POLICY_MISSING_TARGET: &str = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: p
spec:
  targetRefs:
  - kind: Service
    group: \"\"
    name: payments
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs
spec: {}
";

#[test]
fn policy_naming_a_missing_target_points_into_the_manifest() {
    let text = format!("{BASE}manifests: [m/policies.yaml]\n");
    let d = one(&[
        ("s.yaml", &text),
        ("m/policies.yaml", POLICY_MISSING_TARGET),
    ]);
    assert!(d.file.ends_with("m/policies.yaml"), "{d}");
    assert_eq!((d.line, d.column), (9, 11), "{d}");
    assert_eq!(d.path, "spec.targetRefs[0].name");
    assert!(
        d.message.contains("Service `payments` does not exist"),
        "{d}"
    );
}

#[test]
fn unmodeled_kinds_are_listed_as_ignored() {
    let policy = POLICY_MISSING_TARGET.replace("name: payments", "name: echo");
    let text = format!("{BASE}manifests: [m.yaml]\n");
    let (_dir, r) = load(&[("s.yaml", &text), ("m.yaml", &policy)]);
    let l = r.unwrap();
    assert_eq!(l.ignored.len(), 1);
    assert_eq!(l.ignored[0].kind, "VirtualService");
    assert_eq!(l.ignored[0].line, 11);
}

#[test]
fn manifest_errors_keep_their_document_line() {
    let bad = POLICY_MISSING_TARGET.replace("    group: \"\"\n", "    group: \"\"\n    port: 80\n");
    let text = format!("{BASE}manifests: [m.yaml]\n");
    let d = one(&[("s.yaml", &text), ("m.yaml", &bad)]);
    assert_eq!(
        (d.line, d.path.as_str()),
        (9, "spec.targetRefs[0].port"),
        "{d}"
    );
    assert!(d.message.contains("unknown field `port`"), "{d}");

    let bad = POLICY_MISSING_TARGET.replace("security.istio.io/v1", "security.istio.io/v2");
    let d = one(&[("s.yaml", &text), ("m.yaml", &bad)]);
    assert_eq!((d.line, d.path.as_str()), (1, "apiVersion"), "{d}");
}

#[test]
fn unreadable_manifest_and_unmapped_jwks_uri() {
    let text = format!("{BASE}manifests: [gone.yaml]\n");
    let d = one(&[("s.yaml", &text)]);
    assert_eq!((d.line, d.path.as_str()), (23, "manifests[0]"), "{d}");
    assert!(d.message.contains("cannot read manifest"), "{d}");

    let ra = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: j\nspec:\n  jwtRules:\n  - issuer: x\n    jwksUri: https://x/jwks\n";
    let text = format!("{BASE}manifests: [m.yaml]\n");
    let d = one(&[("s.yaml", &text), ("m.yaml", ra)]);
    assert_eq!(
        (d.line, d.path.as_str()),
        (8, "spec.jwtRules[0].jwksUri"),
        "{d}"
    );
    assert!(d.message.contains("jwks:"), "{d}");
}

#[test]
fn waypoint_references_must_exist() {
    let text = BASE.replace(
        "    workload: echo\n",
        "    workload: echo\n    labels: {istio.io/use-waypoint: wp}\n",
    );
    let d = one(&[("s.yaml", &text)]);
    assert!(d.path.starts_with("services[0].labels"), "{d}");
    assert!(d.message.contains("waypoint `wp` is not declared"), "{d}");
}

#[test]
fn the_committed_json_schema_is_current() {
    let path = repo().join("scenarios/scenario.schema.json");
    let generated = serde_json::to_string_pretty(&scenario::json_schema()).unwrap() + "\n";
    if std::env::var_os("MESHSIM_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "scenarios/scenario.schema.json is out of date with the scenario types; regenerate it with \
         `MESHSIM_BLESS=1 cargo test -p meshsim-scenario --test scenario`"
    );
}

#[test]
fn a_profile_file_is_found_beside_the_scenario_and_a_broken_one_says_why() {
    let text = format!("{BASE}profile: costs/slow.yaml\n");
    let good =
        "name: slow\ndescription: twice istio\nproxies:\n  sidecar:\n    cpuPerRequest: 400us\n";
    // The loader runs from the test's working directory, not the scenario's: the profile is
    // still found, relative to the scenario file (as manifests are).
    let (_dir, r) = load(&[("sub/s.yaml", &text), ("sub/costs/slow.yaml", good)]);
    let l = r.expect("valid");
    let p = l.profile().expect("the profile loads");
    assert_eq!(p.floors("sidecar").cpu_per_request.0.as_micros(), 400);

    let broken = "name: slow\ndescription: x\nproxies:\n  sidecar:\n    cpuPerReqest: 1us\n";
    let d = one(&[("sub/s.yaml", &text), ("sub/costs/slow.yaml", broken)]);
    assert_eq!(d.path, "profile");
    assert!(
        d.message.contains("costs/slow.yaml") && d.message.contains("cpuPerReqest"),
        "the parse error, not 'unknown profile': {d}"
    );
    let d = one(&[("s.yaml", &format!("{BASE}profile: istio-9.99\n"))]);
    assert!(
        d.message.contains("unknown cost profile `istio-9.99`") && d.message.contains("native"),
        "{d}"
    );
}

#[test]
fn enrollment_labels_make_declared_the_default_mode() {
    let labelled = BASE.replace(
        "  - name: client\n",
        "  - name: client\n    labels: {sidecar.istio.io/inject: \"true\"}\n",
    );
    let (_d, l) = load(&[("s.yaml", &labelled)]);
    assert_eq!(l.unwrap().scenario.modes, vec![Mode::Declared]);
    let (_d, l) = load(&[("s.yaml", BASE)]);
    assert_eq!(l.unwrap().scenario.modes, Mode::ALL.to_vec());
    // Modes written out win over the default.
    let listed = labelled.replace(
        "nodes:\n  - name: node-1",
        "modes: [sidecar]\nnodes:\n  - name: node-1",
    );
    let (_d, l) = load(&[("s.yaml", &listed)]);
    assert_eq!(l.unwrap().scenario.modes, vec![Mode::Sidecar]);
}

const CUSTOM_POLICY: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: default}
spec:
  action: CUSTOM
  provider: {name: my-authz}
  rules: [{to: [{operation: {paths: [\"/admin/*\"]}}]}]
";

#[test]
fn a_custom_policy_needs_a_defined_provider() {
    let text = format!("{BASE}manifests: [m.yaml]\n");
    let d = one(&[("s.yaml", &text), ("m.yaml", CUSTOM_POLICY)]);
    assert!(d.file.ends_with("m.yaml"), "{d}");
    assert_eq!(d.path, "spec.provider.name", "{d}");
    assert!(
        d.message
            .contains("extension provider `my-authz` is not defined"),
        "{d}"
    );
    assert!(d.message.contains("meshConfig.extensionProviders"), "{d}");
}

#[test]
fn an_extension_provider_must_name_a_service_and_its_port() {
    let text = format!(
        "{BASE}manifests: [m.yaml]\nmeshConfig:\n  extensionProviders:\n  - name: my-authz\n    envoyExtAuthzHttp: {{service: authz.default.svc.cluster.local, port: 9000}}\n"
    );
    let d = one(&[("s.yaml", &text), ("m.yaml", CUSTOM_POLICY)]);
    assert_eq!(
        d.path, "meshConfig.extensionProviders[0].envoyExtAuthzHttp.service",
        "{d}"
    );
    assert!(d.message.contains("service `authz` does not exist"), "{d}");
    let text = text.replace("authz.default", "echo.default");
    let d = one(&[("s.yaml", &text), ("m.yaml", CUSTOM_POLICY)]);
    assert_eq!(
        d.path, "meshConfig.extensionProviders[0].envoyExtAuthzHttp.port",
        "{d}"
    );
    let ok = text.replace("port: 9000", "port: 8080");
    assert!(
        load(&[("s.yaml", &ok), ("m.yaml", CUSTOM_POLICY)])
            .1
            .is_ok()
    );
}

#[test]
fn migration_stages_name_what_exists() {
    let text = format!(
        "{BASE}migration:
  stages:
    - name: one
      relabel: [{{workload: nope, labels: {{a: b}}}}]
      remove: [AuthorizationPolicy/default/missing]
      restart: [ghost/*]
      expect: [{{from: client, to: echo.default:9999, change: break}}]
"
    );
    let d = errors(&[("s.yaml", &text)]);
    let paths: Vec<&str> = d.iter().map(|x| x.path.as_str()).collect();
    for want in [
        "migration.stages[0].relabel[0].workload",
        "migration.stages[0].remove[0]",
        "migration.stages[0].restart[0]",
        "migration.stages[0].expect[0].to",
    ] {
        assert!(paths.contains(&want), "{want} in {paths:?}");
    }
}

#[test]
fn a_stage_changes_labels_but_a_sidecar_goes_only_with_a_restart() {
    let text = format!(
        "{}migration:
  stages:
    - name: relabel
      relabel: [{{namespace: default, labels: {{istio-injection: null, istio.io/dataplane-mode: ambient}}}}]
    - name: restart
      restart: [default/*]
",
        BASE.replace("nodes:\n  - name: node-1", "namespaces: [{name: default, labels: {istio-injection: enabled}}]\nnodes:\n  - name: node-1")
    );
    let (_d, l) = load(&[("s.yaml", &text)]);
    let l = l.unwrap();
    let plane = |stage: Option<usize>| {
        let s = l.at_stage(stage);
        let w = s
            .scenario
            .workloads
            .iter()
            .find(|w| w.name == "echo")
            .unwrap()
            .clone();
        s.enrollment(&w, Mode::Declared).dataplane
    };
    assert_eq!(plane(None), scenario::DataPlane::Sidecar);
    assert_eq!(
        plane(Some(0)),
        scenario::DataPlane::Sidecar,
        "no restart, the sidecar stays"
    );
    assert_eq!(
        plane(Some(1)),
        scenario::DataPlane::Ambient,
        "restarted: ambient"
    );
}

#[test]
fn faults_name_what_exists_with_the_fields_their_kind_needs() {
    let text = format!(
        "{BASE}faults:
  - {{kind: ztunnel-restart, node: node-9, at: 1s}}
  - {{kind: sidecar-crash, pod: echo-7, at: 1s}}
  - {{kind: link-loss, nodes: [node-1], percent: 150, at: 1s}}
  - {{kind: cpu-hog, node: node-1, at: 1s}}
  - {{kind: waypoint-restart, waypoint: nope, at: 1s}}
  - {{kind: pod-restart, pod: echo-0, at: 9m}}
"
    );
    let d = errors(&[("s.yaml", &text)]);
    let got: Vec<(&str, usize)> = d.iter().map(|x| (x.path.as_str(), x.line)).collect();
    for want in [
        "faults[0].node",
        "faults[1].pod",
        "faults[2]",
        "faults[2].percent",
        "faults[3]",
        "faults[4].waypoint",
        "faults[5].at",
    ] {
        assert!(got.iter().any(|g| g.0 == want), "{want} in {got:?}");
    }
    // Each names its own line of the file.
    let line = |p: &str| got.iter().find(|g| g.0 == p).map(|g| g.1);
    assert!(line("faults[1].pod") > line("faults[0].node"));
    // Link delay and bandwidth: their own fields, two different nodes, a jitter the delay
    // can absorb, a bandwidth as tc writes it.
    let links = format!(
        "{BASE}faults:
  - {{kind: link-delay, nodes: [node-1, node-1], at: 1s, duration: 1s}}
  - {{kind: link-delay, nodes: [node-1, node-2], delay: 5ms, jitter: 9ms, at: 1s, duration: 1s}}
  - {{kind: link-bandwidth, nodes: [node-1, node-2], at: 1s}}
"
    );
    let d = errors(&[("s.yaml", &links)]);
    let msgs: Vec<String> = d
        .iter()
        .map(|x| format!("{}: {}", x.path, x.message))
        .collect();
    for want in [
        "faults[0]: a `link-delay` fault needs `nodes: [a, b]`, two different nodes",
        "faults[0]: a `link-delay` fault needs `delay`",
        "faults[1].jitter: jitter 9ms is larger than the delay 5ms",
        "faults[2]: a `link-bandwidth` fault needs `bandwidth`",
        "faults[2]: a `link-bandwidth` fault needs `duration`",
    ] {
        assert!(
            msgs.iter().any(|m| m.starts_with(want)),
            "{want} in {msgs:?}"
        );
    }
    let bad = format!(
        "{BASE}faults:\n  - {{kind: link-bandwidth, nodes: [node-1, node-2], bandwidth: 10MB, at: 1s, duration: 1s}}\n"
    );
    let e = one(&[("s.yaml", &bad)]);
    assert!(
        e.message.contains("`10MB` is not a bandwidth"),
        "{}",
        e.message
    );
    let unknown = format!("{BASE}faults:\n  - {{kind: meteor, at: 1s}}\n");
    let e = one(&[("s.yaml", &unknown)]);
    assert!(e.message.contains("meteor"), "{}", e.message);
}

/// Istio's workload certificates live 24 h by default, set per proxy with `SECRET_TTL`, and
/// "values over 90 days will not be accepted" (istio.io, FAQ "How to configure the lifetime
/// for Istio certificates?"); meshsim also needs at least 2 s.
#[test]
fn a_workload_cert_ttl_out_of_range_names_its_field() {
    for ttl in ["1s", "91d"] {
        let text = format!("{BASE}meshConfig: {{workloadCertTtl: {ttl}}}\n");
        let d = one(&[("s.yaml", &text)]);
        assert_eq!(d.path, "meshConfig.workloadCertTtl", "{d}");
        assert!(d.message.contains("2s..90d"), "{d}");
        assert!(d.line > 0, "{d}");
    }
}

#[test]
fn new_ip_belongs_to_a_pod_restart_only() {
    let text =
        format!("{BASE}faults:\n  - {{kind: sidecar-crash, pod: echo-0, at: 1s, newIp: true}}\n");
    let d = one(&[("s.yaml", &text)]);
    assert_eq!(d.path, "faults[0].newIp", "{d}");
    assert!(d.message.contains("applies to a `pod-restart`"), "{d}");
    let ok = text.replace("sidecar-crash", "pod-restart");
    let (_dir, r) = load(&[("s.yaml", &ok)]);
    assert!(r.is_ok(), "a pod-restart takes newIp: {r:?}");
}

/// `rate: search` (from 100 rps) or `search from N`; a search cannot share a run with faults
/// or migration stages, which are placed on fixed steps.
#[test]
fn a_rate_search_reads_and_refuses_what_it_cannot_run_with() {
    use scenario::Rate;
    let (_d, r) = load(&[("s.yaml", &BASE.replace("rate: 100", "rate: search"))]);
    let l = r.expect("valid");
    assert_eq!(l.scenario.flows[0].rate, Rate::Search { start: 100.0 });
    let (_d, r) = load(&[(
        "s.yaml",
        &BASE.replace("rate: 100", "rate: search from 500"),
    )]);
    assert_eq!(
        r.expect("valid").scenario.flows[0].rate,
        Rate::Search { start: 500.0 }
    );
    let d = one(&[("s.yaml", &BASE.replace("rate: 100", "rate: search from 0"))]);
    assert_eq!((d.path.as_str(), d.line), ("flows[0].rate", 22), "{d}");
    let d = one(&[(
        "s.yaml",
        &format!(
            "{}faults:\n  - {{kind: ztunnel-restart, node: node-2, at: 1s}}\n",
            BASE.replace("rate: 100", "rate: search")
        ),
    )]);
    assert_eq!(d.path, "flows[0].rate", "{d}");
    assert!(d.message.contains("faults and migration stages"), "{d}");
}

/// A load surge names an open-loop flow and a positive rate, lasts a while, and does not
/// overlap another surge of the same flow; its fields belong to it alone.
#[test]
fn a_load_surge_names_a_flow_with_a_rate_and_its_own_fields() {
    let text = format!(
        "{BASE}faults:
  - {{kind: load-surge, flow: nope, rate: 100, at: 1s, duration: 1s}}
  - {{kind: load-surge, flow: web, rate: -3, at: 1s, duration: 1s}}
  - {{kind: load-surge, flow: web, at: 1s}}
  - {{kind: load-surge, flow: web, rate: 100, at: 1500ms, duration: 1s}}
  - {{kind: ztunnel-restart, node: node-1, rate: 100, at: 1s}}
"
    );
    let d = errors(&[("s.yaml", &text)]);
    let msgs: Vec<String> = d
        .iter()
        .map(|x| format!("{}: {}", x.path, x.message))
        .collect();
    for want in [
        "faults[0].flow: no flow `nope`; flows: web",
        "faults[1].rate: -3 is not a positive number of requests per second",
        "faults[2]: a `load-surge` fault needs `rate`",
        "faults[2]: a `load-surge` fault needs `duration`",
        "faults[3].at: flow `web` already surges then",
        "faults[4].rate: `rate` applies to a `load-surge`, not a `ztunnel-restart`",
    ] {
        assert!(
            msgs.iter().any(|m| m.starts_with(want)),
            "{want} in {msgs:?}"
        );
    }
    let ok = format!(
        "{BASE}faults:\n  - {{kind: load-surge, flow: web, rate: 900, at: 1s, duration: 2s}}\n"
    );
    let (_d, l) = load(&[("s.yaml", &ok)]);
    let l = l.expect("a surge loads");
    assert_eq!(
        l.scenario.faults[0].label(),
        "load-surge web 900 rps at 1s for 2s"
    );
}

/// A DestinationRule's connection pool is checked as Istio's validation checks it, each
/// problem at its field in the manifest.
#[test]
fn a_destination_rule_with_a_negative_limit_is_refused_at_its_line() {
    let text = format!("{BASE}manifests: [m.yaml]\n");
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo
  trafficPolicy:
    connectionPool:
      http:
        http2MaxRequests: -5
";
    let d = one(&[("s.yaml", &text), ("m.yaml", dr)]);
    assert!(d.file.ends_with("m.yaml"), "{d}");
    assert_eq!(
        d.path, "spec.trafficPolicy.connectionPool.http.http2MaxRequests",
        "{d}"
    );
    assert_eq!(d.line, 9, "{d}");
    assert!(d.message.contains("-5 is negative"), "{d}");
    let typo = dr.replace("http2MaxRequests: -5", "http2MaxRequest: 5");
    let d = one(&[("s.yaml", &text), ("m.yaml", &typo)]);
    assert!(d.message.contains("http2MaxRequest"), "{d}");
}

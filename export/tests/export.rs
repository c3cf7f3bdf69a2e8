//! `export k8s`: every object reads back as its Kubernetes API type, each mode enrolls the
//! namespaces as Istio documents, and what cannot run on a real cluster is one clear error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use scenario::Mode;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(name: &str) -> scenario::Loaded {
    scenario::load(&repo().join("scenarios").join(name)).expect("bundled scenario loads")
}

fn load_text(dir: &Path, text: &str) -> scenario::Loaded {
    let p = dir.join("s.yaml");
    std::fs::write(&p, text).expect("write");
    scenario::load(&p).expect("scenario loads")
}

/// Each YAML document of the export's own files (not the copied Istio manifests).
fn docs(b: &export::Bundle) -> Vec<(String, String)> {
    b.files
        .iter()
        .filter(|(f, _)| !f.starts_with("istio/") && !f.ends_with("kustomization.yaml"))
        .flat_map(|(f, text)| {
            text.split("---\n")
                .map(|d| (f.clone(), d.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn kind(doc: &str) -> String {
    let v: serde_json::Value = serde_saphyr::from_str(doc).expect("YAML");
    v["kind"].as_str().unwrap_or_default().to_string()
}

fn namespace_labels(b: &export::Bundle, ns: &str) -> BTreeMap<String, String> {
    docs(b)
        .into_iter()
        .filter(|(_, d)| kind(d) == "Namespace")
        .map(|(_, d)| serde_saphyr::from_str::<Namespace>(&d).expect("a Namespace"))
        .find(|n| n.metadata.name.as_deref() == Some(ns))
        .unwrap_or_else(|| panic!("namespace {ns} exported"))
        .metadata
        .labels
        .unwrap_or_default()
}

#[test]
fn every_exported_object_reads_back_as_its_api_type() {
    for (scenario, mode) in [
        ("quickstart.yaml", Mode::Ambient),
        ("istio-reference.yaml", Mode::Sidecar),
        ("connection-churn.yaml", Mode::AmbientWaypoint),
    ] {
        let b = export::export(&load(scenario), mode, "meshsim:test").expect("exports");
        let mut kinds = BTreeMap::<String, usize>::new();
        for (file, d) in docs(&b) {
            let k = kind(&d);
            let ok = match k.as_str() {
                "Namespace" => serde_saphyr::from_str::<Namespace>(&d).is_ok(),
                "ServiceAccount" => serde_saphyr::from_str::<ServiceAccount>(&d).is_ok(),
                "Deployment" => serde_saphyr::from_str::<Deployment>(&d).is_ok(),
                "Service" => serde_saphyr::from_str::<Service>(&d).is_ok(),
                "Job" => serde_saphyr::from_str::<Job>(&d).is_ok(),
                // Gateway API has no k8s-openapi type: its fields are checked by name.
                "Gateway" => {
                    let v: serde_json::Value = serde_saphyr::from_str(&d).expect("YAML");
                    v["apiVersion"] == "gateway.networking.k8s.io/v1"
                        && v["spec"]["gatewayClassName"] == "istio-waypoint"
                }
                _ => false,
            };
            assert!(
                ok,
                "{scenario} {file}: a {k:?} that does not read back:\n{d}"
            );
            *kinds.entry(k).or_default() += 1;
        }
        let sc = load(scenario).scenario;
        assert_eq!(kinds.get("Job").copied(), Some(sc.flows.len()), "{kinds:?}");
        assert_eq!(kinds.get("Service").copied(), Some(sc.services.len()));
        // kustomize lists every file it applies.
        let k = &b.files["kustomization.yaml"];
        for f in b
            .files
            .keys()
            .filter(|f| !f.starts_with("jobs/") && *f != "kustomization.yaml")
        {
            assert!(k.contains(&format!("  - {f}\n")), "{f} not in\n{k}");
        }
    }
}

/// The enrollment labels Istio reads: `istio-injection: enabled` for sidecars (istio.io
/// "Installing the sidecar": automatic injection), `istio.io/dataplane-mode: ambient` for
/// ambient (istio.io "Add workloads to the mesh"), plus `istio.io/use-waypoint` and a
/// Gateway of class `istio-waypoint` with an HBONE listener on 15008 and
/// `istio.io/waypoint-for: service` for a waypoint (istio.io "Configure waypoint proxies");
/// none without a mesh; the scenario's own in `declared`.
#[test]
fn each_mode_enrolls_the_namespaces_as_istio_documents() {
    let dir = tempfile::tempdir().expect("tmp");
    let loaded = load_text(
        dir.path(),
        "version: 1\nname: e\nnodes: [{name: n1}, {name: n2}]\nnamespaces:\n  - {name: shop, labels: {team: web, istio-injection: enabled}}\nworkloads:\n  - {name: client, namespace: shop, nodes: [n1]}\n  - {name: echo, namespace: shop, replicas: 2, nodes: [n1, n2], labels: {sidecar.istio.io/inject: \"false\", tier: back}, app: {http: {port: 8080}}}\nservices:\n  - {name: echo, namespace: shop, workload: echo, ports: [{port: 80, targetPort: 8080}]}\nflows:\n  - {name: web, from: client, to: \"echo.shop:80\", rate: [10, 20], method: POST, headers: {x-a: b}}\nproxies: {sidecar: {concurrency: 4, cpuLimit: 500m}}\n",
    );
    let labels = |mode| {
        namespace_labels(
            &export::export(&loaded, mode, "i").expect("exports"),
            "shop",
        )
    };
    let l = labels(Mode::Sidecar);
    assert_eq!(
        l.get("istio-injection").map(String::as_str),
        Some("enabled")
    );
    assert_eq!(
        l.get("team").map(String::as_str),
        Some("web"),
        "own labels kept"
    );
    let l = labels(Mode::Ambient);
    assert_eq!(
        l.get("istio.io/dataplane-mode").map(String::as_str),
        Some("ambient")
    );
    assert!(!l.contains_key("istio-injection"), "{l:?}");
    let l = labels(Mode::NoMesh);
    assert!(!l.contains_key("istio-injection") && !l.contains_key("istio.io/dataplane-mode"));
    let l = labels(Mode::Declared);
    assert_eq!(
        l.get("istio-injection").map(String::as_str),
        Some("enabled")
    );
    let b = export::export(&loaded, Mode::AmbientWaypoint, "i").expect("exports");
    assert_eq!(
        namespace_labels(&b, "shop")
            .get("istio.io/use-waypoint")
            .map(String::as_str),
        Some("shop-waypoint")
    );
    let gw: serde_json::Value = serde_saphyr::from_str(&b.files["waypoints.yaml"]).expect("gw");
    assert_eq!(gw["metadata"]["name"], "shop-waypoint");
    assert_eq!(gw["metadata"]["labels"]["istio.io/waypoint-for"], "service");
    assert_eq!(gw["spec"]["listeners"][0]["port"], 15008);
    assert_eq!(gw["spec"]["listeners"][0]["protocol"], "HBONE");
    // A pod-level opt-out is the scenario's only in `declared`; the mode decides otherwise.
    let pod_labels = |mode| {
        let b = export::export(&loaded, mode, "i").expect("exports");
        let d: Deployment = serde_saphyr::from_str(&b.files["deployments.yaml"]).expect("deploy");
        d.spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.labels)
            .unwrap_or_default()
    };
    assert!(!pod_labels(Mode::Sidecar).contains_key("sidecar.istio.io/inject"));
    assert_eq!(
        pod_labels(Mode::Declared)
            .get("sidecar.istio.io/inject")
            .map(String::as_str),
        Some("false")
    );
    assert_eq!(
        pod_labels(Mode::Sidecar).get("tier").map(String::as_str),
        Some("back")
    );
    // The scenario's sidecar settings as Istio's per-pod annotations (istio.io "Resource
    // Annotations"), only where a sidecar is injected.
    let annotations = |mode| {
        let b = export::export(&loaded, mode, "i").expect("exports");
        let d: Deployment = serde_saphyr::from_str(&b.files["deployments.yaml"]).expect("deploy");
        d.spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.annotations)
            .unwrap_or_default()
    };
    let a = annotations(Mode::Sidecar);
    assert_eq!(
        a.get("sidecar.istio.io/proxyCPULimit").map(String::as_str),
        Some("500m")
    );
    assert_eq!(
        a.get("proxy.istio.io/config").map(String::as_str),
        Some("{\"concurrency\": 4}")
    );
    assert!(annotations(Mode::Ambient).is_empty());
    // Spread over its two nodes, one replica each, as the simulator places them.
    let d: Deployment = serde_saphyr::from_str(&b.files["deployments.yaml"]).expect("deploy");
    let spec = d.spec.and_then(|s| s.template.spec).expect("pod spec");
    let spread = spec.topology_spread_constraints.expect("spread");
    assert_eq!(spread[0].topology_key, export::k8s::NODE_LABEL);
    assert_eq!(spread[0].max_skew, 1);
    // The Service names its ports for Istio's protocol selection.
    let s: Service = serde_saphyr::from_str(&b.files["services.yaml"]).expect("svc");
    let p = &s.spec.and_then(|s| s.ports).expect("ports")[0];
    assert_eq!(p.name.as_deref(), Some("http-80"));
    assert_eq!(p.app_protocol.as_deref(), Some("http"));
    // The Job runs as its source, with the flow's method, headers and rate steps, and in a
    // sidecar namespace its proxy is a native sidecar so the Job can complete.
    let b = export::export(&loaded, Mode::Sidecar, "i").expect("exports");
    let j: Job = serde_saphyr::from_str(&b.files["jobs/load-web.yaml"]).expect("job");
    let t = j.spec.expect("spec").template;
    let pod = t.spec.expect("pod");
    assert_eq!(pod.service_account_name.as_deref(), Some("client"));
    let args = pod.containers[0].args.clone().unwrap_or_default().join(" ");
    assert!(
        args.starts_with("load http://echo.shop:80/ --protocol http1")
            && args.contains("--rate 10,20")
            && args.contains("-X POST")
            && args.contains("-H x-a: b")
            && args.ends_with("--json -"),
        "{args}"
    );
    assert_eq!(
        t.metadata
            .and_then(|m| m.annotations)
            .and_then(|a| a.get(export::k8s::NATIVE_SIDECAR).cloned())
            .as_deref(),
        Some("true")
    );
}

/// What a real cluster cannot take as the scenario says it gets one error naming the file
/// (and line) and what to do: a Namespace in the manifests outside `declared` (the export
/// writes the namespaces with the mode's labels), local JWKS files, `rate: search`.
#[test]
fn what_cannot_run_on_a_cluster_is_one_clear_error() {
    let err = |loaded: &scenario::Loaded, mode| match export::export(loaded, mode, "i") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("expected an error"),
    };
    let payment = load("payment.yaml");
    let e = err(&payment, Mode::Sidecar);
    assert!(
        e.contains("`jwks` serves") && e.contains("payment.yaml"),
        "{e}"
    );
    assert!(
        e.contains("manifests/payment.yaml:") && e.contains("a manifest declares Namespace"),
        "{e}"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let loaded = load_text(
        dir.path(),
        "version: 1\nname: s\nnodes: [{name: n1}]\nworkloads:\n  - {name: c}\n  - {name: e, app: {http: {port: 80}}}\nservices: [{name: e, workload: e, ports: [{port: 80}]}]\nflows: [{name: f, from: c, to: \"e:80\", rate: search}]\n",
    );
    let e = err(&loaded, Mode::Ambient);
    assert!(
        e.contains("flow f: `rate: search`") && e.contains("s.yaml"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}

/// A bundle is written whole or not at all, into a directory of its own.
#[test]
fn a_bundle_is_written_whole() {
    let dir = tempfile::tempdir().expect("tmp");
    let b = export::export(&load("quickstart.yaml"), Mode::Ambient, "i").expect("exports");
    let out = dir.path().join("out");
    let files = b.write(&out).expect("written");
    assert_eq!(files.len(), b.files.len());
    for f in &files {
        assert!(f.exists(), "{}", f.display());
    }
    assert!(!dir.path().join("out.partial").exists());
}

/// The README's examples, `exports/`, are what `meshsim export k8s` writes today for the
/// bundled quickstart (ambient) and istio-reference (sidecar) scenarios. `MESHSIM_BLESS=1`
/// rewrites them.
#[test]
fn the_bundled_exports_are_current() {
    for (scenario, mode, dir) in [
        ("quickstart.yaml", Mode::Ambient, "quickstart-ambient"),
        (
            "istio-reference.yaml",
            Mode::Sidecar,
            "istio-reference-sidecar",
        ),
    ] {
        let image = concat!("meshsim:", env!("CARGO_PKG_VERSION"));
        let b = export::export(&load(scenario), mode, image).expect("exports");
        let root = repo().join("exports").join(dir);
        if std::env::var_os("MESHSIM_BLESS").is_some() {
            let _ = std::fs::remove_dir_all(&root);
            b.write(&root).expect("bless");
        }
        for (f, text) in &b.files {
            let on_disk = std::fs::read_to_string(root.join(f)).unwrap_or_default();
            assert_eq!(
                &on_disk, text,
                "exports/{dir}/{f} is stale; rerun with MESHSIM_BLESS=1"
            );
        }
        let listed = walk(&root);
        assert_eq!(
            listed.len(),
            b.files.len(),
            "exports/{dir} holds other files: {listed:?}"
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

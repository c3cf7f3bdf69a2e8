//! `import kubectl` of a fixture cluster: `kubectl get ns,pods,svc -A -o json` of a cluster
//! half-way to ambient (Deployments, StatefulSets, DaemonSets, a running and a finished Job, a
//! bare pod, unmeshed system namespaces), its Istio resources, and a Prometheus query of
//! `istio_requests_total` rates.

use std::path::{Path, PathBuf};

use plan::import::{from_kubectl, to_yaml};
use plan::{Inventory, PlanError, PlanMode};

fn data(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(f)
}

fn imported() -> plan::import::Imported {
    from_kubectl(
        "fixture",
        &[data("kubectl-cluster.json")],
        &[data("istio.yaml")],
        Some(&data("prometheus-traffic.json")),
    )
    .expect("import")
}

#[test]
fn a_fixture_cluster_gives_the_expected_inventory() {
    let im = imported();
    let inv = &im.inventory;
    let ns: Vec<&str> = inv.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        ns,
        [
            "batch",
            "default",
            "istio-system",
            "kube-public",
            "kube-system",
            "payments",
            "shop"
        ]
    );
    let w: Vec<(String, &str, u32, Option<&str>)> = inv
        .workloads
        .iter()
        .map(|w| {
            (
                format!("{}/{}", w.namespace, w.name),
                w.kind.as_deref().unwrap_or_default(),
                w.replicas,
                w.labels
                    .get("meshsim.io/sidecar-at-start")
                    .map(String::as_str),
            )
        })
        .collect();
    let want: Vec<(String, &str, u32, Option<&str>)> = [
        ("batch/reindex-28714620", "Job", 1, "false"),
        ("default/debug-shell", "Pod", 1, "false"),
        ("istio-system/istiod", "Deployment", 2, "false"),
        ("istio-system/ztunnel", "DaemonSet", 3, "false"),
        ("kube-system/aws-node", "DaemonSet", 3, "false"),
        ("kube-system/coredns", "Deployment", 2, "false"),
        ("kube-system/kube-proxy", "DaemonSet", 3, "false"),
        ("payments/fraud-check", "Deployment", 2, "false"),
        ("payments/ledger", "StatefulSet", 2, "true"),
        ("payments/payment-api", "Deployment", 3, "true"),
        ("shop/cart", "Deployment", 2, "false"),
        ("shop/frontend", "Deployment", 3, "false"),
        ("shop/redis", "StatefulSet", 1, "false"),
    ]
    .into_iter()
    .map(|(n, k, r, s)| (n.to_string(), k, r, Some(s)))
    .collect();
    assert_eq!(w, want, "the finished Job's pod is left out");
    let frontend = inv
        .workloads
        .iter()
        .find(|w| w.name == "frontend")
        .expect("frontend");
    assert_eq!(
        frontend.labels.get("app").map(String::as_str),
        Some("frontend")
    );
    assert!(!frontend.labels.contains_key("pod-template-hash"));
    assert_eq!(frontend.service_account.as_deref(), Some("frontend"));
    assert_eq!(
        frontend.pools.len(),
        3,
        "one pod on each node, as scheduled"
    );
    assert_eq!(inv.nodes.len(), 3);
    let ledger = inv
        .workloads
        .iter()
        .find(|w| w.name == "ledger")
        .expect("ledger");
    assert!(
        !ledger
            .labels
            .contains_key("statefulset.kubernetes.io/pod-name")
    );

    // Services with a selector; `kubernetes` and an ExternalName have none and are left out.
    let svcs: Vec<String> = inv
        .services
        .iter()
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect();
    assert_eq!(svcs.len(), 8, "{svcs:?}");
    assert!(!svcs.contains(&"default/kubernetes".to_string()));
    let ledger_svc = inv
        .services
        .iter()
        .find(|s| s.name == "ledger")
        .expect("ledger");
    assert_eq!(ledger_svc.ports, [8080, 9090]);

    // Istio resources: the waypoint Gateway, the namespace's Sidecar (a single host counted
    // as its namespace).
    assert_eq!(inv.waypoints.len(), 1);
    assert_eq!(
        (
            inv.waypoints[0].namespace.as_str(),
            inv.waypoints[0].name.as_str()
        ),
        ("shop", "waypoint")
    );
    let payments = inv
        .namespaces
        .iter()
        .find(|n| n.name == "payments")
        .expect("payments");
    assert_eq!(
        payments.sidecar_egress_hosts.as_deref(),
        Some(&["./*".to_string(), "istio-system/*".into(), "shop/*".into()][..])
    );

    // Traffic: the destination reporter's rates; an unknown source, or one that is not a pod
    // of these files (the ingress gateway), is traffic from outside.
    let t: Vec<(Option<&str>, &str, f64)> = inv
        .traffic
        .iter()
        .map(|t| (t.from.as_deref(), t.to.as_str(), t.rps))
        .collect();
    assert_eq!(
        t,
        [
            (None, "shop/frontend", 1000.0),
            (Some("payments/payment-api"), "payments/fraud-check", 38.1),
            (Some("payments/payment-api"), "payments/ledger", 36.0),
            (Some("shop/cart"), "payments/payment-api", 38.2),
            (Some("shop/frontend"), "shop/cart", 412.5),
        ]
    );
    let notes = im.notes.join("\n");
    assert!(notes.contains("1 finished pod"), "{notes}");
    assert!(notes.contains("shop/recommendations"), "{notes}");
    assert!(notes.contains("1 KiB each assumed"), "{notes}");
}

/// The YAML written reads back as the same, valid inventory, and plans: `declared` keeps the
/// sidecars the pods run today (a pod of an injection namespace that started before the
/// label has none).
#[test]
fn the_imported_inventory_reads_back_and_plans_what_runs_today() {
    let im = imported();
    let yaml = to_yaml(&im).expect("yaml");
    assert!(yaml.starts_with("# An inventory imported"));
    let back = Inventory::parse(Path::new("imported.yaml"), &yaml).expect("valid");
    assert_eq!(back, im.inventory);
    let model = scenario::profile::Profile::load("istio-1.24")
        .ok()
        .and_then(|p| p.model)
        .expect("model");
    let p = plan::plan(&back, &model, "x", &[PlanMode::Declared, PlanMode::Sidecar]);
    let declared = &p.modes[0];
    assert_eq!(declared.sidecars, 5, "payment-api ×3 and ledger ×2");
    assert_eq!(declared.ztunnels, 3);
    assert_eq!(declared.waypoint_replicas, 1, "shop's waypoint");
    let sidecar = &p.modes[1];
    // Every pod of the meshed namespaces (shop, payments), not the system ones.
    assert_eq!(sidecar.sidecars, 13);
}

#[test]
fn what_is_not_a_cluster_dump_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("x.json");
    std::fs::write(&f, "{\"hello\": 1}").expect("write");
    let e = from_kubectl("x", std::slice::from_ref(&f), &[], None).unwrap_err();
    assert!(matches!(e, PlanError::Import { .. }), "{e}");
    assert!(
        e.to_string().contains("x.json") && e.to_string().contains("List"),
        "{e}"
    );
    std::fs::write(&f, "{\"status\": \"error\"}").expect("write");
    let e = from_kubectl("x", &[data("kubectl-cluster.json")], &[], Some(&f)).unwrap_err();
    assert!(
        e.to_string()
            .contains("not a successful Prometheus query result"),
        "{e}"
    );
}

//! Capacity plans against what Istio publishes, and the sizing rules a platform team relies
//! on: waypoint replicas at a peak, ztunnel's one DaemonSet size, sidecar scoping, enrollment
//! as the labels declare it.

use std::path::{Path, PathBuf};

use plan::project::{Band, ModePlan};
use plan::{Inventory, PlanError, PlanMode};
use scenario::costmodel::CostModel;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model() -> CostModel {
    scenario::profile::Profile::load("istio-1.24")
        .expect("bundled profile")
        .model
        .expect("istio-1.24 has a cost model")
}

fn inventory(text: &str) -> Inventory {
    Inventory::parse(Path::new("inline.yaml"), text).expect("a valid inventory")
}

fn mode(inv: &Inventory, m: PlanMode) -> ModePlan {
    let p = plan::plan(inv, &model(), "profile istio-1.24", &[m]);
    p.modes.into_iter().next().expect("the mode")
}

const MB: f64 = 1e6 / (1024.0 * 1024.0);

fn near(got: f64, want: f64, tolerance: f64) -> bool {
    (got - want).abs() <= want * tolerance
}

/// Istio 1.24's published per-proxy figures at its reference load (1000 rps, 1 KiB each way,
/// 2 workers): a sidecar ~0.20 vCPU and 60 MB, ztunnel ~0.06 vCPU and 12 MB, a waypoint ~0.25
/// vCPU and 60 MB (istio.io/v1.24/docs/ops/deployment/performance-and-scalability). The plan
/// of the bundled reference inventory gives them back.
#[test]
fn the_istio_reference_inventory_gives_back_istio_124s_published_figures() {
    let inv = Inventory::load(&repo().join("inventories/istio-reference.yaml")).expect("load");
    let sc = mode(&inv, PlanMode::Sidecar);
    assert_eq!(sc.sidecars, 2);
    for n in &sc.nodes {
        assert!(near(n.sidecars.vcpu.mid, 0.20, 0.05), "{n:?}");
        assert!(near(n.sidecars.mib.mid, 60.0 * MB, 0.05), "{n:?}");
    }
    let amb = mode(&inv, PlanMode::Ambient);
    assert_eq!(
        (amb.ztunnels, amb.sidecars, amb.waypoint_replicas),
        (2, 0, 0)
    );
    for n in &amb.nodes {
        let z = n.ztunnel.expect("a ztunnel per node");
        assert!(near(z.vcpu.mid, 0.06, 0.05), "{n:?}");
        assert!(near(z.mib.mid, 12.0 * MB, 0.05), "{n:?}");
    }
    let wp = mode(&inv, PlanMode::AmbientWaypoints);
    let [w] = wp.waypoints.as_slice() else {
        panic!("one waypoint: {:?}", wp.waypoints)
    };
    assert_eq!(w.replicas, 1);
    assert!(near(w.cost.vcpu.mid, 0.25, 0.05), "{w:?}");
    assert!(near(w.cost.mib.mid, 60.0 * MB, 0.05), "{w:?}");
}

/// A waypoint gets the replicas its peak needs at 70% of min(concurrency, CPU limit) each
/// (Istio's waypoint template: limit 2 cores, istio/istio
/// manifests/charts/istio-control/istio-discovery/files/waypoint.yaml); each replica requests
/// its share of the peak.
#[test]
fn waypoint_replicas_cover_the_peak_with_headroom() {
    let text = |cpu_limit: &str| {
        format!(
            r#"version: 1
name: wp
nodes: [{{pool: n, count: 2}}]
namespaces:
  - {{name: pay, labels: {{istio.io/dataplane-mode: ambient, istio.io/use-waypoint: pay-wp}}}}
waypoints: [{{name: pay-wp, namespace: pay, cpuLimit: {cpu_limit}}}]
workloads: [{{name: api, namespace: pay, replicas: 4}}, {{name: web, namespace: pay, replicas: 2}}]
services: [{{name: api, namespace: pay, workload: api}}]
traffic: [{{from: pay/web, to: pay/api, rps: 2000, peakRps: 10000}}]
"#
        )
    };
    // 10 000 rps × 250 µs = 2.5 vCPU at the peak; 1.4 vCPU usable per replica → 2.
    let two = mode(&inventory(&text("2")), PlanMode::AmbientWaypoints);
    let [w] = two.waypoints.as_slice() else {
        panic!("{:?}", two.waypoints)
    };
    assert_eq!((w.replicas, w.rps, w.peak_rps), (2, 2000.0, 10000.0));
    assert!(near(w.request.vcpu.mid, 1.25, 1e-9), "{w:?}");
    assert!(near(w.cost.vcpu.mid, 0.5, 1e-9), "{w:?}");
    // One core each: 0.7 usable → 4 replicas.
    let four = mode(&inventory(&text("1")), PlanMode::AmbientWaypoints);
    assert_eq!(four.waypoints[0].replicas, 4);
    // Without waypoints, none is planned.
    assert!(
        mode(&inventory(&text("2")), PlanMode::Ambient)
            .waypoints
            .is_empty()
    );
}

/// ztunnel is a DaemonSet: one request size on every node, the hottest node's peak, and what
/// that reserves beyond each other node's own peak is over-provisioning (istio/ztunnel#1288:
/// "hot nodes force over-provisioning the whole DaemonSet").
#[test]
fn ztunnel_is_sized_for_the_hottest_node_and_the_rest_is_over_provisioned() {
    let inv = inventory(
        r#"version: 1
name: hot
nodes: [{pool: hot, count: 1}, {pool: cold, count: 3}]
namespaces: [{name: app, labels: {istio.io/dataplane-mode: ambient}}]
workloads:
  - {name: server, namespace: app, pools: [hot]}
  - {name: client, namespace: app, pools: [hot]}
  - {name: idle, namespace: app, replicas: 3, pools: [cold]}
services: [{name: server, namespace: app, workload: server}]
traffic: [{from: app/client, to: app/server, rps: 1000, peakRps: 4000}]
"#,
    );
    let m = mode(&inv, PlanMode::Ambient);
    let z = m.ztunnel_request.as_ref().expect("ambient has ztunnels");
    assert_eq!((z.hottest_node.as_str(), z.nodes), ("hot-0", 4));
    let hot = m.nodes.iter().find(|n| n.node == "hot-0").expect("hot-0");
    let peak = hot.ztunnel_peak.expect("its ztunnel");
    assert_eq!(z.request.vcpu, peak.vcpu);
    // Both ends of 4000 rps on one ztunnel: 8000 exchanges, 2 KiB each, a new connection
    // every 100 requests.
    let m_zt = &model().ztunnel;
    let want = 8000.0
        * (m_zt.cpu_per_request.value.as_secs_f64()
            + 2.0 * m_zt.cpu_per_kib.value.as_secs_f64()
            + m_zt.cpu_per_connection.value.as_secs_f64() / 100.0);
    assert!(near(peak.vcpu.mid, want, 1e-9), "{peak:?} vs {want}");
    let cold_peaks: f64 = m
        .nodes
        .iter()
        .filter(|n| n.node != "hot-0")
        .map(|n| n.ztunnel_peak.expect("a ztunnel on every node").vcpu.mid)
        .sum();
    assert!(near(
        z.over_provisioned.vcpu.mid,
        3.0 * peak.vcpu.mid - cold_peaks,
        1e-9
    ));
    assert!(z.over_provisioned.vcpu.mid > 0.0);
}

/// A `Sidecar` resource's egress hosts keep a sidecar's configuration to the namespaces it
/// names (istio.io docs, "Sidecar" reference: `egress.hosts` "./*" is the Sidecar's own
/// namespace); without one, every service of the cluster is pushed to every sidecar.
#[test]
fn sidecar_scoping_shrinks_each_sidecars_memory() {
    let text = |scoped: bool| {
        let hosts = if scoped {
            r#", sidecarEgressHosts: ["./*"]"#
        } else {
            ""
        };
        let mut t = format!(
            "version: 1\nname: scope\nnodes: [{{pool: n}}]\nnamespaces:\n  - {{name: a, labels: {{istio-injection: enabled}}{hosts}}}\n  - {{name: b, labels: {{istio-injection: enabled}}}}\nworkloads:\n"
        );
        let mut svcs = String::from("services:\n");
        for i in 0..100 {
            let ns = if i < 10 { "a" } else { "b" };
            t.push_str(&format!(
                "  - {{name: w{i}, namespace: {ns}, replicas: 2}}\n"
            ));
            svcs.push_str(&format!(
                "  - {{name: w{i}, namespace: {ns}, workload: w{i}}}\n"
            ));
        }
        t + &svcs
    };
    let per_sidecar = |scoped: bool| {
        let m = mode(&inventory(&text(scoped)), PlanMode::Sidecar);
        let a = m.namespaces.iter().find(|n| n.namespace == "a").expect("a");
        a.sidecars.mib.mid / a.meshed_pods as f64
    };
    let (all, own) = (per_sidecar(false), per_sidecar(true));
    let m = &model().sidecar;
    let entry = |services: f64| {
        (services * m.memory_per_service.value.0 as f64
            + 2.0 * services * m.memory_per_endpoint.value.0 as f64)
            / (1024.0 * 1024.0)
    };
    assert!(
        near(all - own, entry(100.0) - entry(10.0), 1e-9),
        "{all} vs {own}"
    );
}

/// `declared` reads each pod's data plane from the labels as Istio does (the injector for
/// sidecars, istio-cni for ambient; a pod's `sidecar.istio.io/inject: "false"` opts it out),
/// and system namespaces stay out of the mesh in every mode.
#[test]
fn declared_follows_the_labels_and_system_namespaces_stay_out() {
    let inv = inventory(
        r#"version: 1
name: half
nodes: [{pool: n, count: 2}]
namespaces:
  - {name: kube-system}
  - {name: old, labels: {istio-injection: enabled}}
  - {name: new, labels: {istio.io/dataplane-mode: ambient}}
workloads:
  - {name: coredns, namespace: kube-system, replicas: 2}
  - {name: a, namespace: old, replicas: 3}
  - {name: batch, namespace: old, replicas: 1, labels: {sidecar.istio.io/inject: "false"}}
  - {name: b, namespace: new, replicas: 5}
"#,
    );
    let d = mode(&inv, PlanMode::Declared);
    assert_eq!((d.sidecars, d.ztunnels), (3, 2));
    let meshed = |m: &ModePlan, ns: &str| {
        m.namespaces
            .iter()
            .find(|n| n.namespace == ns)
            .expect("ns")
            .meshed_pods
    };
    assert_eq!(
        (
            meshed(&d, "kube-system"),
            meshed(&d, "old"),
            meshed(&d, "new")
        ),
        (0, 3, 5)
    );
    let s = mode(&inv, PlanMode::Sidecar);
    assert_eq!(s.sidecars, 9, "every pod of the meshed namespaces");
    assert_eq!(meshed(&s, "kube-system"), 0);
}

/// Memory against configuration size, as published, within ±20%:
/// - sidecars: Hitachi/istio-bench `output_sample/istioproxy-*svc.csv` (Istio 1.6.2, one
///   HTTP port and one pod per service): 57.4, 103.4 and 162.3 MiB at 100, 500 and 1000
///   services;
/// - ztunnel: istio/ztunnel#667, 1M pods and 66k services in 3 GB; istio/istio's ztunnel
///   chart (values.yaml, 1.23–1.25), a 512Mi request "enough for ~200k pod cluster".
#[test]
fn memory_scales_with_configuration_as_published() {
    use plan::project::{Load, Scope, proxy_mib};
    let m = model();
    let idle = Load::default();
    for (services, mib) in [(100, 57.4), (500, 103.4), (1000, 162.3)] {
        let scope = Scope {
            services,
            endpoints: services,
            workloads: 0,
        };
        let got = proxy_mib(&m.sidecar, &idle, &scope).mid;
        assert!(
            near(got, mib, 0.20),
            "{services} services: {got} MiB, {mib} published"
        );
    }
    for (pods, services, mib) in [
        (1_000_000, 66_000, 3e9 / 1048576.0),
        (200_000, 10_000, 512.0),
    ] {
        let scope = Scope {
            services,
            endpoints: 0,
            workloads: pods,
        };
        let got = proxy_mib(&m.ztunnel, &idle, &scope).mid;
        assert!(
            near(got, mib, 0.20),
            "{pods} pods: {got} MiB, {mib} published"
        );
    }
}

/// The same through a whole plan: 1000 single-port services in one sidecar's scope.
#[test]
fn sidecar_memory_scales_with_services_as_published() {
    let mut t = String::from(
        "version: 1\nname: many\nnodes: [{pool: n}]\nnamespaces: [{name: a, labels: {istio-injection: enabled}}]\nworkloads:\n",
    );
    let mut svcs = String::from("services:\n");
    for i in 0..1000 {
        t.push_str(&format!("  - {{name: w{i}, namespace: a}}\n"));
        svcs.push_str(&format!(
            "  - {{name: w{i}, namespace: a, workload: w{i}}}\n"
        ));
    }
    let m = mode(&inventory(&(t + &svcs)), PlanMode::Sidecar);
    let per = m.by_kind["sidecar"].mib.mid / m.sidecars as f64;
    assert!(near(per, 162.0 * MB, 0.20), "{per} MiB per sidecar");
}

/// Every figure is a band, ordered low ≤ mid ≤ high, and the totals add up.
#[test]
fn bands_are_ordered_and_totals_add_up() {
    let inv = Inventory::load(&repo().join("inventories/example.yaml")).expect("example");
    let p = plan::plan(&inv, &model(), "profile istio-1.24", &PlanMode::ALL);
    let ordered = |b: Band| b.low <= b.mid + 1e-9 && b.mid <= b.high + 1e-9;
    for m in &p.modes {
        for c in [m.data_plane, m.control_plane, m.total, m.requested] {
            assert!(ordered(c.vcpu) && ordered(c.mib), "{}: {c:?}", m.mode);
        }
        let kinds: f64 = m.by_kind.values().map(|c| c.vcpu.mid).sum();
        assert!(near(m.data_plane.vcpu.mid, kinds, 1e-9), "{}", m.mode);
        let nodes: f64 = m.nodes.iter().map(|n| n.total.vcpu.mid).sum::<f64>()
            + m.waypoints.iter().map(|w| w.cost.vcpu.mid).sum::<f64>();
        assert!(near(m.data_plane.vcpu.mid, nodes, 1e-6), "{}", m.mode);
        let namespaces: f64 = m.namespaces.iter().map(|n| n.total.vcpu.mid).sum();
        assert!(near(m.data_plane.vcpu.mid, namespaces, 1e-6), "{}", m.mode);
    }
    // The example is half-migrated: its declared mode has every proxy kind.
    let declared = p
        .modes
        .iter()
        .find(|m| m.mode == PlanMode::Declared)
        .expect("declared");
    assert!(declared.sidecars > 0 && declared.ztunnels > 0 && declared.waypoint_replicas > 0);
}

/// A migration's stages are projected as Istio would run the cluster after each: the
/// example's payments namespace relabelled from `istio-injection: enabled` to
/// `istio.io/dataplane-mode: ambient` (its pods restarted: sidecars gone, ztunnel captures
/// them; istio.io "Migrate to ambient") leaves a cluster where every meshed namespace is
/// ambient, so it costs what `ambient-waypoints` costs; the next stage's
/// `istio.io/use-waypoint` on payments adds that waypoint's replicas and cost.
#[test]
fn migration_stages_are_projected_after_each_stage() {
    let inv = Inventory::load(&repo().join("inventories/example.yaml")).expect("example");
    let p = plan::plan(&inv, &model(), "profile istio-1.24", &PlanMode::ALL);
    let labels: Vec<String> = p.modes.iter().map(ModePlan::label).collect();
    assert_eq!(
        labels,
        [
            "sidecar",
            "ambient",
            "ambient-waypoints",
            "declared",
            "after stage payments-ambient",
            "after stage payments-waypoint"
        ]
    );
    let (all_ambient, declared, first, second) =
        (&p.modes[2], &p.modes[3], &p.modes[4], &p.modes[5]);
    assert!(declared.sidecars > 0);
    assert_eq!(first.sidecars, 0, "payments' sidecars are gone");
    assert!(near(
        first.data_plane.vcpu.mid,
        all_ambient.data_plane.vcpu.mid,
        1e-9
    ));
    assert!(near(first.total.mib.mid, all_ambient.total.mib.mid, 1e-9));
    assert!(
        first.total.mib.mid < declared.total.mib.mid / 5.0,
        "sidecar memory goes"
    );
    let payments = second
        .waypoints
        .iter()
        .find(|w| w.waypoint == "payments/payments-waypoint")
        .unwrap_or_else(|| panic!("the stage's waypoint: {:?}", second.waypoints));
    assert!(payments.replicas >= 1 && !payments.services.is_empty());
    assert!(second.waypoint_replicas == first.waypoint_replicas + payments.replicas);
    assert!(second.data_plane.vcpu.mid > first.data_plane.vcpu.mid);
    // Without `declared`, no stage is projected: stages are declared data planes.
    let only = plan::plan(&inv, &model(), "x", &[PlanMode::Sidecar]);
    assert_eq!(only.modes.len(), 1);
}

/// A synthetic cluster's pods all land on nodes, and a plan of 10 000 pods holds them all.
#[test]
fn every_pod_lands_on_a_node() {
    let inv = plan::testing::synthetic(200, 10, 500, 10_000);
    let p = plan::plan(&inv, &model(), "x", &[PlanMode::Ambient]);
    assert_eq!(p.pods, 10_000);
    let on_nodes: usize = p.modes[0].nodes.iter().map(|n| n.pods).sum();
    assert_eq!(on_nodes, 10_000);
    let max = p.modes[0].nodes.iter().map(|n| n.pods).max().unwrap_or(0);
    assert_eq!(max, 50, "spread evenly");
}

fn invalid(text: &str) -> String {
    match Inventory::parse(Path::new("inv.yaml"), text) {
        Err(PlanError::Invalid(d)) => d
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        other => panic!("expected an invalid inventory, got {other:?}"),
    }
}

/// Each mistake a user can make in an inventory gets one error naming file, line and field.
#[test]
fn bad_inventories_name_file_line_and_field() {
    let base = "version: 1\nname: bad\nnodes: [{pool: n}]\nnamespaces: [{name: a}]\n";
    let cases = [
        (
            "workloads: [{name: w, namespace: nope}]\n",
            "inv.yaml:5:",
            "workloads[0].namespace: namespace `nope` is not in `namespaces`",
        ),
        (
            "workloads: [{name: w, namespace: a}]\ntraffic: [{from: a/w, to: a/missing, rps: 1}]\n",
            "inv.yaml:6:",
            "traffic[0].to: service `a/missing` is not in `services`",
        ),
        (
            "workloads: [{name: w, namespace: a}]\nservices: [{name: s, namespace: a, workload: w}]\ntraffic: [{from: a/w, to: a/s, rps: 5, peakRps: 1}]\n",
            "inv.yaml:7:",
            "traffic[0].peakRps: the peak cannot be below `rps` (5)",
        ),
        (
            "workloads: [{name: w, namespace: a, replica: 3}]\n",
            "inv.yaml:5:",
            "unknown field `replica`",
        ),
        (
            "workloads: [{name: w, namespace: a, pools: [gpu]}]\n",
            "inv.yaml:5:",
            "workloads[0].pools[0]: node pool `gpu` is not in `nodes`",
        ),
        (
            "workloads: []\nmigration:\n  stages:\n    - name: s\n      relabel: [{namespace: b, labels: {istio.io/dataplane-mode: ambient}}]\n",
            "inv.yaml:9:",
            "migration.stages[0].relabel[0].namespace: namespace `b` is not in `namespaces`",
        ),
        (
            "workloads: []\nmigration:\n  stages:\n    - name: s\n      relabel: [{namespace: a, labels: {istio.io/use-waypoint: wp}}]\n",
            "inv.yaml:8:",
            "after stage `s`, istio.io/use-waypoint names waypoint `a/wp`, which no stage deploys",
        ),
        (
            "workloads: []\nmigration:\n  stages:\n    - name: s\n      removeWaypoints: [a/wp]\n",
            "inv.yaml:9:",
            "migration.stages[0].removeWaypoints[0]: waypoint `a/wp` is not deployed before this stage",
        ),
    ];
    for (tail, place, message) in cases {
        let e = invalid(&format!("{base}{tail}"));
        assert!(e.contains(place) && e.contains(message), "{tail}: {e}");
        assert_eq!(e.lines().count(), 1, "one error: {e}");
    }
    let e = invalid(
        "version: 1\nname: bad\nnodes: [{pool: n}]\nnamespaces:\n  - {name: a, labels: {istio.io/use-waypoint: wp}}\nworkloads: []\n",
    );
    assert!(
        e.contains("inv.yaml:5:") && e.contains("waypoint `a/wp` is not in `waypoints`"),
        "{e}"
    );
}

/// A profile without a cost model cannot plan, and says which can.
#[test]
fn a_profile_without_a_model_says_so() {
    let p = scenario::profile::Profile::load("native").expect("native");
    assert!(p.model.is_none());
    let e = PlanError::NoModel(p.name).to_string();
    assert!(e.contains("istio-1.24") && e.contains("model:"), "{e}");
}

/// A run whose sidecars opened connections out of proportion to their requests (some
/// churning, some reusing, as `scenarios/connection-churn.yaml` runs them) gives the CPU per
/// new connection apart from the CPU per request, each fitted with its band; the
/// per-connection figure is what a TLS handshake costs (Istio publishes none for sidecars).
#[test]
fn a_run_with_churn_and_reuse_fits_connection_cpu_apart() {
    let mut run = results::testing::sample_run(3, 1.0);
    for m in &mut run.modes {
        let mut k = 0.0;
        for c in m.components.iter_mut().filter(|c| c.kind.is_proxy()) {
            // Each proxy its own share of new connections: 0, 1/4, 1/2 … of its requests.
            let share = k / 4.0;
            k += 1.0;
            let s = &mut c.series;
            s.connections_opened = s.rps.iter().map(|r| r * share).collect();
            s.vcpu = s
                .rps
                .iter()
                .zip(&s.connections_opened)
                .map(|(r, n)| 0.004 + r * 150e-6 + n * 1.2e-3)
                .collect();
        }
    }
    let (m, fitted) = plan::fit::fit_model(&run, &model(), "churn", None);
    let f = fitted
        .iter()
        .find(|f| f.kind == reports::run::ComponentKind::Sidecar)
        .expect("sidecars fitted");
    let plane = f.plane.expect("connections told apart");
    assert!((plane.coef[2] / 1.2e-3 - 1.0).abs() < 0.02, "{plane:?}");
    let per_conn = m.sidecar.cpu_per_connection.value.0.as_secs_f64();
    let per_req = m.sidecar.cpu_per_request.value.0.as_secs_f64();
    assert!((per_conn / 1.2e-3 - 1.0).abs() < 0.02, "{per_conn}");
    assert!((per_req / 150e-6 - 1.0).abs() < 0.02, "{per_req}");
    assert!(
        m.sidecar
            .cpu_per_connection
            .source
            .contains("new connections/s × cpuPerConnection"),
        "{}",
        m.sidecar.cpu_per_connection.source
    );
    // The sample as it comes (connections only in its first second) cannot tell them apart:
    // the per-request line alone, connections folded in and said so.
    let (m, fitted) =
        plan::fit::fit_model(&results::testing::sample_run(3, 1.0), &model(), "x", None);
    assert!(fitted.iter().all(|f| f.plane.is_none()));
    assert!(m.sidecar.cpu_per_connection.source.contains("folded"));
}

//! `calibrate`: a cost model fitted to a cluster's own Prometheus figures finds again the
//! costs the figures were made with, and writes a profile `plan` and `run` load.

use plan::calibrate::{calibrate, read};
use serde_json::{Value, json};

/// Deterministic ±`pct` wobble, so the fit works through noise as on a real cluster.
fn wobble(i: usize, pct: f64) -> f64 {
    1.0 + pct * (((i * 7919) % 201) as f64 / 100.0 - 1.0)
}

fn vector(samples: &[(&str, String, f64)]) -> Value {
    json!({"status": "success", "data": {"resultType": "vector", "result":
        samples.iter().map(|(ns, pod, v)| json!({
            "metric": {"namespace": ns, "pod": pod},
            "value": [1764870000.0, v.to_string()],
        })).collect::<Vec<_>>()
    }})
}

/// 40 sidecars at 10–1000 rps costing 4 m + 210 µs per request; 8 ztunnels costing 2 µs per
/// KiB and 1.5 ms per new connection; working sets around 70 MB and 20 MB; ±3% noise.
fn cluster() -> Value {
    let mut cpu = Vec::new();
    let mut mem = Vec::new();
    let mut req = Vec::new();
    let mut bytes = Vec::new();
    let mut conns = Vec::new();
    for i in 0..40 {
        let pod = format!("api-{i}-7d9f8");
        let rps = 10.0 + 25.0 * i as f64;
        cpu.push((
            "shop",
            pod.clone(),
            (0.004 + rps * 210e-6) * wobble(i, 0.03),
        ));
        mem.push(("shop", pod.clone(), 70e6 * wobble(i + 3, 0.05)));
        req.push(("shop", pod, rps));
    }
    for i in 0..8 {
        let pod = format!("ztunnel-{i}x");
        let kib = 2000.0 + 3000.0 * i as f64;
        let c = 5.0 + 40.0 * ((i * 3) % 8) as f64;
        cpu.push((
            "istio-system",
            pod.clone(),
            (kib * 2e-6 + c * 1.5e-3) * wobble(i + 11, 0.03),
        ));
        mem.push(("istio-system", pod.clone(), 20e6));
        bytes.push(("istio-system", pod.clone(), kib * 1024.0));
        conns.push(("istio-system", pod, c));
    }
    json!({
        "cpu": vector(&cpu), "memory": vector(&mem), "requests": vector(&req),
        "bytes": vector(&bytes), "connections": vector(&conns),
    })
}

fn near(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= want * tol
}

#[test]
fn calibration_finds_the_costs_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("prom.json");
    std::fs::write(&f, cluster().to_string()).expect("write");
    let samples = read(&f, &[]).expect("read");
    assert_eq!(samples["sidecar"].len(), 40);
    assert_eq!(samples["ztunnel"].len(), 8);
    let base = scenario::profile::Profile::load("istio-1.24")
        .ok()
        .and_then(|p| p.model)
        .expect("model");
    let (m, notes) = calibrate(&samples, &base, "prom.json");
    assert!(notes.is_empty(), "{notes:?}");
    let per_req = m.sidecar.cpu_per_request.value.as_secs_f64();
    assert!(near(per_req, 210e-6, 0.05), "{per_req}");
    assert!(
        m.sidecar
            .cpu_per_request
            .source
            .starts_with("calibrated: prom.json")
    );
    assert!(near(m.ztunnel.cpu_per_kib.value.as_secs_f64(), 2e-6, 0.10));
    assert!(near(
        m.ztunnel.cpu_per_connection.value.as_secs_f64(),
        1.5e-3,
        0.10
    ));
    assert!(near(m.sidecar.memory_base.value.0 as f64, 70e6, 0.06));
    assert_eq!(
        m.sidecar.memory_per_service.value.0, 0,
        "folded into the base"
    );
    // Waypoints were not in the figures: the base profile's model stays, sources and all.
    assert_eq!(m.waypoint, base.waypoint);
}

#[test]
fn figures_without_pods_or_cpu_say_what_is_missing() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("prom.json");
    std::fs::write(&f, json!({"memory": vector(&[])}).to_string()).expect("write");
    let e = read(&f, &[]).unwrap_err().to_string();
    assert!(
        e.contains("prom.json") && e.contains("no `cpu` samples"),
        "{e}"
    );
    let no_labels = json!({"cpu": {"status": "success", "data": {"result": [{"metric": {}, "value": [0, "1"]}]}}});
    std::fs::write(&f, no_labels.to_string()).expect("write");
    let e = read(&f, &[]).unwrap_err().to_string();
    assert!(e.contains("by (namespace, pod)"), "{e}");
}

/// The CLI writes a profile that `plan --costs` takes.
#[test]
fn the_written_profile_plans() {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("prom.json");
    std::fs::write(&f, cluster().to_string()).expect("write");
    let samples = read(&f, &[]).expect("read");
    let mut profile = scenario::profile::Profile::load("istio-1.24").expect("base");
    let (m, _) = calibrate(
        &samples,
        profile.model.as_ref().expect("model"),
        "prom.json",
    );
    profile.name = "mine".into();
    profile.model = Some(m.clone());
    let out = dir.path().join("mine.yaml");
    let text = plan::calibrate::profile_yaml(&profile, &out).expect("yaml");
    std::fs::write(&out, text).expect("write");
    let back = scenario::profile::Profile::load_file(&out).expect("loads as a profile");
    assert_eq!(back.model, Some(m));
    assert_eq!(
        back.proxies, profile.proxies,
        "the floors stay, for run --profile"
    );
}

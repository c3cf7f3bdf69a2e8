//! A one-machine scenario of an inventory: its busiest paths of each proxy kind, scaled, that
//! loads as a scenario meshsim runs.

use std::path::Path;

use plan::Inventory;
use plan::downscale::{MAX_FLOWS, downscale};

#[test]
fn the_example_downscales_to_a_scenario_with_each_proxy_kind() {
    let inv =
        Inventory::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../inventories/example.yaml"))
            .expect("example");
    let d = downscale(&inv, 600.0, "example-waypoints.yaml");
    let dir = tempfile::tempdir().expect("tmp");
    let sc = dir.path().join("example-downscaled.yaml");
    std::fs::write(&sc, &d.scenario).expect("write");
    std::fs::write(
        dir.path().join("example-waypoints.yaml"),
        d.manifests.as_deref().expect("the shop waypoint's Gateway"),
    )
    .expect("write");
    let loaded = scenario::load(&sc).unwrap_or_else(|e| panic!("{e}\n{}", d.scenario));
    let s = &loaded.scenario;
    assert!(
        !s.flows.is_empty() && s.flows.len() <= MAX_FLOWS,
        "{}",
        d.scenario
    );
    // One destination of each kind the example runs: payments (sidecars), catalog (ambient),
    // shop (behind its waypoint).
    for ns in ["payments", "catalog", "shop"] {
        assert!(
            s.flows.iter().any(|f| f.to.contains(&format!(".{ns}:"))),
            "no flow into {ns}:\n{}",
            d.scenario
        );
    }
    let total: f64 = s.flows.iter().flat_map(|f| f.rate.steps()).sum();
    assert!(total <= 600.0 * 1.01, "scaled to the budget: {total}");
    assert!(d.notes[0].contains("rates ×"), "{:?}", d.notes);
}

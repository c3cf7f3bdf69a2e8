//! `plan` of a 10 000-pod inventory (200 nodes, 10 namespaces, 500 services, every mode):
//! the target is under 2 s; it takes milliseconds.
//!
//!     cargo bench -p meshsim-plan --bench plan

use criterion::{Criterion, criterion_group, criterion_main};
use plan::PlanMode;

fn bench(c: &mut Criterion) {
    let inv = plan::testing::synthetic(200, 10, 500, 10_000);
    let model = scenario::profile::Profile::load("istio-1.24")
        .ok()
        .and_then(|p| p.model)
        .expect("istio-1.24 has a cost model");
    c.bench_function("plan 10k pods, 4 modes", |b| {
        b.iter(|| plan::plan(&inv, &model, "bench", &PlanMode::ALL))
    });
    let dir = std::env::temp_dir().join("meshsim-plan-bench");
    let _ = std::fs::create_dir_all(&dir);
    let p = plan::plan(&inv, &model, "bench", &PlanMode::ALL);
    c.bench_function("plan 10k pods, render json+md+html", |b| {
        b.iter(|| plan::render::write_all(&p, &dir).expect("write"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);

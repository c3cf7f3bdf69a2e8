//! What metering costs: `cargo bench -p meshsim-sim --bench meter [-- COMPONENTS SECONDS]`.
//!
//! Starts COMPONENTS components (default 200) of two threads each, meters them once a second
//! for SECONDS (default 10), and prints the meter thread's own CPU as a share of one core.

use std::sync::Arc;
use std::time::Duration;

use sim::component::{Component, ComponentKind};
use sim::meter::Meter;
use sim::netns::NetNs;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(200);
    let secs = args.get(1).copied().unwrap_or(10);
    let host = Arc::new(NetNs::current("host").expect("this thread's namespace"));
    let comps: Vec<_> = (0..n)
        .map(|i| Component::new(format!("c{i}"), ComponentKind::App, host.clone()))
        .collect();
    let rts: Vec<_> = comps
        .iter()
        .map(|c| c.start_runtime(2, None).expect("runtime"))
        .collect();
    let meter = Meter::start(
        comps.clone(),
        Duration::from_secs(1),
        std::time::Instant::now(),
    )
    .expect("meter");
    std::thread::sleep(Duration::from_secs(secs as u64));
    let report = meter.finish();
    println!(
        "metering {n} components ({} threads) every 1 s for {secs} s: meter used {:.4}% of one core \
         ({} samples, heap measured: {})",
        n * 2,
        report.meter_vcpu * 100.0,
        report.t_s.len(),
        report.heap_measured
    );
    drop(rts);
}

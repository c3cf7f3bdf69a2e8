//! The two long open-loop properties (10 s each; they run in parallel): latency is measured
//! from the intended send time, and the engine holds its rate.

use std::sync::Arc;
use std::time::Duration;

use loadgen::testing::Server;
use loadgen::{LoadSpec, Mode, Target};

fn spec(server: &Server, rate: f64) -> LoadSpec {
    let target = Target::Http {
        host: server.addr.ip().to_string(),
        port: server.addr.port(),
        path: "/".into(),
        host_header: None,
    };
    let mut s = LoadSpec::new(target, Mode::Open { rates: vec![rate] });
    s.warmup = Duration::ZERO;
    s.duration = Duration::from_secs(10);
    s
}

/// The target stops answering for 1 s on every connection: the requests that should have
/// been sent meanwhile wait, and the corrected latency shows it while service time does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_corrected_latency_only() {
    let server = Arc::new(Server::http().expect("server starts"));
    let s = spec(&server, 1000.0);
    let staller = server.clone();
    let stall = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(5));
        staller.stall(Duration::from_secs(1));
    });
    let r = loadgen::run(&s, loadgen::Hooks::default())
        .await
        .expect("runs");
    stall.join().expect("stall thread");
    let step = &r.steps[0];
    assert!(step.errors.is_empty(), "{:?}", step.errors);
    assert_eq!(step.requests, 10_000);
    assert!(
        step.latency.p99_us >= 500_000,
        "corrected p99 {} µs",
        step.latency.p99_us
    );
    assert!(
        step.service_time.p99_us < 50_000,
        "service time p99 {} µs",
        step.service_time.p99_us
    );
    assert!(
        step.service_time.max_us >= 900_000,
        "the stalled requests themselves"
    );
    // The stall is visible in the second it ended, in the series.
    let worst = step.series.iter().map(|s| s.max_us).max().unwrap_or(0);
    assert!(worst >= 900_000, "{:?}", step.series);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_holds_its_rate() {
    let server = Server::http().expect("server starts");
    let s = spec(&server, 5000.0);
    let r = loadgen::run(&s, loadgen::Hooks::default())
        .await
        .expect("runs");
    let step = &r.steps[0];
    assert!(step.errors.is_empty(), "{:?}", step.errors);
    // Every intended request was sent and answered...
    assert_eq!(step.requests, 50_000);
    // ...within the step's time.
    let off = (step.achieved_rps - 5000.0).abs() / 5000.0;
    assert!(off < 0.01, "achieved {} rps", step.achieved_rps);
    assert!(step.duration_s < 10.1, "{}", step.duration_s);
    // Seconds are on schedule: the median one holds the rate. (A busy machine can stall a
    // second, and the open loop then sends what was due late: single seconds may stray.)
    let mut full: Vec<u64> = step.series.iter().take(10).map(|s| s.requests).collect();
    full.sort_unstable();
    let median = full[full.len() / 2];
    assert!(
        (4900..=5100).contains(&median),
        "per second, sorted: {full:?}"
    );
}

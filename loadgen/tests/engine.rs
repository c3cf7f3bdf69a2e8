//! The engines against real sockets on 127.0.0.1: errors by kind, warmup, rate steps, the
//! closed loop, churn, chunked bodies, TCP request/response and stream, timeouts, hooks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use loadgen::testing::{Server, refused_addr};
use loadgen::{Connector, LoadError, LoadSpec, Mode, ProgressFn, Protocol, StepResult, Target};

fn http(addr: std::net::SocketAddr, mode: Mode) -> LoadSpec {
    let target = Target::Http {
        host: addr.ip().to_string(),
        port: addr.port(),
        path: "/x".into(),
        host_header: None,
    };
    let mut s = LoadSpec::new(target, mode);
    s.warmup = Duration::ZERO;
    s.duration = Duration::from_secs(1);
    s.connections = 2;
    s
}

fn tcp(addr: std::net::SocketAddr, protocol: Protocol, mode: Mode) -> LoadSpec {
    let target = Target::Tcp {
        host: addr.ip().to_string(),
        port: addr.port(),
    };
    let mut s = LoadSpec::new(target, mode);
    s.protocol = protocol;
    s.warmup = Duration::ZERO;
    s.duration = Duration::from_secs(1);
    s.connections = 2;
    s
}

fn open(rate: f64) -> Mode {
    Mode::Open { rates: vec![rate] }
}

async fn one_step(s: &LoadSpec) -> StepResult {
    let mut r = loadgen::run(s, loadgen::Hooks::default())
        .await
        .expect("runs");
    assert_eq!(r.steps.len(), 1);
    r.steps.remove(0)
}

fn only_error(step: &StepResult, kind: &str, n: u64) {
    assert_eq!(
        step.errors
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect::<Vec<_>>(),
        vec![(kind, n)]
    );
    assert_eq!(step.requests, 0);
    assert_eq!(step.latency.count, 0, "an error is never a latency");
    assert_eq!(step.service_time.count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_counted() {
    let addr = refused_addr().expect("port");
    let step = one_step(&http(addr, open(200.0))).await;
    only_error(&step, "connect_refused", 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_are_counted_by_class() {
    let server = Server::http().expect("server");
    server.set_status(503);
    let step = one_step(&http(server.addr, open(200.0))).await;
    only_error(&step, "http_5xx", 200);
    server.set_status(404);
    let step = one_step(&http(server.addr, Mode::Closed)).await;
    let n = step.errors.get("http_4xx").copied().unwrap_or(0);
    assert!(n > 100 && step.errors.len() == 1, "{:?}", step.errors);
    assert_eq!(step.latency.count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_is_not_in_the_results() {
    let server = Server::http().expect("server");
    let mut s = http(server.addr, open(500.0));
    s.warmup = Duration::from_secs(1);
    let step = one_step(&s).await;
    assert_eq!(step.requests, 500);
    assert_eq!(step.latency.count, 500);
    assert!(server.requests() >= 1000, "{}", server.requests());
    assert!(
        step.duration_s >= 1.0 && step.duration_s < 1.05,
        "{}",
        step.duration_s
    );
    assert!(step.series.len() <= 2, "{:?}", step.series);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rate_step_has_its_result() {
    let server = Server::http().expect("server");
    let mut s = http(
        server.addr,
        Mode::Open {
            rates: vec![200.0, 400.0],
        },
    );
    s.warmup = Duration::from_millis(200);
    let r = loadgen::run(&s, loadgen::Hooks::default())
        .await
        .expect("runs");
    assert_eq!(r.mode, "open");
    let got: Vec<(Option<f64>, u64)> = r.steps.iter().map(|s| (s.target_rps, s.requests)).collect();
    assert_eq!(got, vec![(Some(200.0), 200), (Some(400.0), 400)]);
    assert!(r.steps.iter().all(|s| s.errors.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_saturates() {
    let server = Server::http().expect("server");
    let step = one_step(&http(server.addr, Mode::Closed)).await;
    assert!(step.errors.is_empty(), "{:?}", step.errors);
    assert!(step.requests > 1000, "{}", step.requests);
    assert_eq!(step.target_rps, None);
    assert_eq!(step.latency.p99_us, step.service_time.p99_us);
    assert!(step.achieved_rps > 1000.0);
    // Every counted response was really served.
    assert!(
        server.requests() >= step.requests,
        "{} served",
        server.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_opens_a_connection_per_request() {
    let server = Server::http().expect("server");
    let mut s = http(server.addr, open(200.0));
    s.protocol = Protocol::Http1Churn;
    let step = one_step(&s).await;
    assert!(step.errors.is_empty(), "{:?}", step.errors);
    assert_eq!(step.requests, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_sized_and_chunked() {
    let server = Server::http().expect("server");
    server.set_chunked(true);
    let mut s = http(server.addr, open(100.0));
    s.response_bytes = Some(100_000);
    s.request_bytes = 1000;
    let step = one_step(&s).await;
    assert!(step.errors.is_empty(), "{:?}", step.errors);
    assert_eq!(step.requests, 100);
    assert!(
        step.bytes_received > 100 * 100_000,
        "{}",
        step.bytes_received
    );
    assert!(step.bytes_sent > 100 * 1000, "{}", step.bytes_sent);
    server.set_chunked(false);
    let step = one_step(&s).await;
    assert!(step.errors.is_empty(), "{:?}", step.errors);
    assert!(
        step.bytes_received > 100 * 100_000,
        "{}",
        step.bytes_received
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_request_response() {
    let server = Server::tcp_echo().expect("server");
    let mut s = tcp(server.addr, Protocol::TcpRr, open(500.0));
    s.request_bytes = 100;
    let step = one_step(&s).await;
    assert!(step.errors.is_empty(), "{:?}", step.errors);
    assert_eq!(step.requests, 500);
    assert_eq!(step.bytes_sent, 500 * 100);
    assert_eq!(step.bytes_received, 500 * 100);
    assert!(step.latency.p50_us < 10_000, "{}", step.latency.p50_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_stream_throughput() {
    let server = Server::tcp_sink().expect("server");
    let mut s = tcp(server.addr, Protocol::TcpStream, Mode::Closed);
    s.request_bytes = 64 * 1024;
    s.warmup = Duration::from_millis(200);
    let step = one_step(&s).await;
    assert!(step.errors.is_empty(), "{:?}", step.errors);
    let bps = step.throughput_bps.expect("stream has a throughput");
    assert!(bps > 10e6, "{bps} bytes/s");
    assert!(
        server.bytes() >= step.bytes_sent,
        "the sink read all that was counted"
    );
    assert_eq!(step.latency.count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_errors_not_latencies() {
    let server = Server::http().expect("server");
    server.stall(Duration::from_secs(3));
    let mut s = http(server.addr, open(100.0));
    s.timeout = Duration::from_millis(200);
    let step = one_step(&s).await;
    only_error(&step, "timeout", 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_and_progress_hooks_are_used() {
    let server = Server::http().expect("server");
    let connects = Arc::new(AtomicU64::new(0));
    let c = connects.clone();
    let connector: Connector = Arc::new(move |addr| {
        c.fetch_add(1, Ordering::Relaxed);
        Box::pin(tokio::net::TcpStream::connect(addr))
    });
    let ticks = Arc::new(AtomicU64::new(0));
    let t = ticks.clone();
    let progress: ProgressFn = Arc::new(move |p| {
        assert_eq!((p.step, p.steps), (0, 1));
        t.fetch_add(1, Ordering::Relaxed);
    });
    let mut s = http(server.addr, open(200.0));
    s.duration = Duration::from_millis(2100);
    let r = loadgen::run(
        &s,
        loadgen::Hooks {
            connector: Some(connector),
            progress: Some(progress),
            ..Default::default()
        },
    )
    .await
    .expect("runs");
    assert_eq!(r.steps[0].requests, 420);
    assert_eq!(
        connects.load(Ordering::Relaxed),
        2,
        "one per connection, kept alive"
    );
    assert_eq!(ticks.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn bad_names_and_specs_fail_before_starting() {
    let s = http(refused_addr().expect("port"), open(10.0));
    let mut bad = s.clone();
    bad.target = Target::parse("http://no-such-host.invalid:80/").expect("parses");
    assert!(matches!(
        loadgen::run(&bad, loadgen::Hooks::default()).await,
        Err(LoadError::Resolve { .. })
    ));
    let mut bad = s.clone();
    bad.connections = 0;
    let e = loadgen::run(&bad, loadgen::Hooks::default())
        .await
        .err()
        .map(|e| e.to_string());
    assert_eq!(e.as_deref(), Some("connections must be at least 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_keeps_its_finished_steps_and_stops_sending() {
    let server = Server::http().expect("server");
    let mut s = http(
        server.addr,
        Mode::Open {
            rates: vec![200.0, 200.0, 200.0],
        },
    );
    s.duration = Duration::from_millis(500);
    let cancel = tokio_util::sync::CancellationToken::new();
    let completed = Arc::new(AtomicU64::new(0));
    let hooks = loadgen::Hooks {
        cancel: Some(cancel.clone()),
        completed: Some(completed.clone()),
        ..Default::default()
    };
    // Cancel in the middle of the second step.
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(750)).await;
        c.cancel();
    });
    let r = loadgen::run(&s, hooks).await.expect("runs");
    assert!(r.cancelled, "the result says it was cancelled");
    assert_eq!(
        r.steps.len(),
        1,
        "the finished step is kept, the one in flight dropped"
    );
    assert_eq!(r.steps[0].requests, 100);
    // The counter saw the first step and part of the second: more than one step, less than two.
    let seen = completed.load(Ordering::Relaxed);
    assert!((101..200).contains(&seen), "completed {seen}");
    // Nothing is sent once cancelled: the server's count stops moving.
    let at_cancel = server.requests();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.requests() <= at_cancel + 1,
        "{} > {at_cancel}",
        server.requests()
    );
}

/// `next_rate` adds steps after the spec's own, until it says stop: a rate search driven by
/// a verdict on each finished step (here: rates up to 300 pass).
#[tokio::test]
async fn next_rate_drives_a_search_until_it_stops() {
    let server = Server::http().expect("server");
    let mut spec = http(server.addr, open(100.0));
    spec.duration = Duration::from_millis(300);
    let search = std::sync::Mutex::new(loadgen::search::RateSearch::new());
    let next: loadgen::NextRateFn = Arc::new(move |s: &StepResult| {
        let rate = s.target_rps?;
        search
            .lock()
            .expect("lock")
            .after(rate, rate <= 300.0 && s.requests > 0)
    });
    let r = loadgen::run(
        &spec,
        loadgen::Hooks {
            next_rate: Some(next),
            ..Default::default()
        },
    )
    .await
    .expect("run");
    let rates: Vec<f64> = r.steps.iter().filter_map(|s| s.target_rps).collect();
    assert_eq!(
        &rates[..3],
        [100.0, 200.0, 400.0],
        "doubled until a failure"
    );
    assert_eq!(rates[3], 300.0, "then bisected");
    assert!(!r.cancelled);
    assert!(rates.len() <= 12, "{rates:?}");
}

/// A surge window sends its own rate and the step's rate around it; the extra requests are
/// in the step's count and in the seconds the surge covered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_sends_its_rate_in_its_window() {
    let server = Server::http().expect("server starts");
    let mut s = http(server.addr, open(100.0));
    s.warmup = Duration::from_secs(1);
    s.duration = Duration::from_secs(3);
    s.surges = vec![loadgen::Surge {
        at: Duration::from_secs(2),
        duration: Duration::from_secs(1),
        rate: 600.0,
    }];
    let step = one_step(&s).await;
    assert!(step.errors.is_empty(), "{:?}", step.errors);
    // Measured: 1 s at 100, 1 s at 600, 1 s at 100.
    assert_eq!(step.requests, 800);
    let per_s: Vec<u64> = step.series.iter().map(|x| x.requests).collect();
    assert!(
        per_s.len() >= 3 && per_s[1] > 500 && per_s[0] < 150 && per_s[2] < 150,
        "{per_s:?}"
    );
    // An overlap, a bad rate and a surge in a closed loop are refused before anything runs.
    let mut bad = s.clone();
    bad.surges.push(loadgen::Surge {
        at: Duration::from_millis(2500),
        duration: Duration::from_secs(1),
        rate: 10.0,
    });
    assert!(bad.validate().is_err());
    let mut bad = s.clone();
    bad.surges[0].rate = 0.0;
    assert!(bad.validate().is_err());
    let mut bad = s.clone();
    bad.mode = Mode::Closed;
    assert!(bad.validate().is_err());
}

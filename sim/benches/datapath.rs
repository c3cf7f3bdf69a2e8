//! The data path over veth, between real network namespaces:
//! `cargo bench -p meshsim-sim --bench datapath --features testing [-- --quick]` (as root).
//!
//! One process brings up the cluster of `benches/datapath.yaml` (client pod on node-1, TCP sink
//! and TCP echo pods on node-2) three times, one mode after another, with the cost profile
//! `native` (no floors: the models' own cost), and measures from a thread inside the client
//! pod's namespace, so the pod's capture rules send its traffic through the mesh:
//!
//! - `direct` (no-mesh): client pod → service VIP (DNAT) → server pod;
//! - `ztunnel_hbone` (ambient): client → ztunnel on node-1 (captured, in-pod 15001) → HBONE
//!   (HTTP/2 CONNECT over mTLS) → ztunnel on node-2 (in-pod 15008) → server pod;
//! - `sidecar` (sidecar): client → its sidecar (15001) → mTLS → the server's sidecar (15006)
//!   → server app on localhost.
//!
//! Benchmarks, per path: `bulk_64MiB/*`, 64 MiB one way to the sink on a new connection (the
//! client half-closes and waits for the close that the sink's EOF sends back, so the time
//! covers delivery, not just buffering); `rr_1k/*`, a 1 KiB message echoed back on an open
//! connection. At the end the medians are printed side by side with their ratio to `direct`,
//! with the process's CPU per GiB (bulk) and per round trip (rr): what a path's proxies add to
//! the CPU of a round trip is the second's difference to `direct`.
//!
//! Not root: prints why and exits 0 (1 under `CI`), like the sandboxed tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use scenario::Mode;
use scenario::profile::Profile;
use sim::cluster::Cluster;
use sim::component::{Component, ComponentKind, ComponentRuntime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// As the `meshsim` binary runs (one arena per component): allocation is part of the data path.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const BULK: usize = 64 * 1024 * 1024;
const CHUNK: usize = 256 * 1024;
const MSG: usize = 1024;
const BULK_GROUP: &str = "bulk_64MiB";
const RR_GROUP: &str = "rr_1k";

/// The paths, in the order they run: (mode, benchmark name).
const PATHS: [(Mode, &str); 3] = [
    (Mode::NoMesh, "direct"),
    (Mode::Ambient, "ztunnel_hbone"),
    (Mode::Sidecar, "sidecar"),
];

fn main() {
    // Before anything else: the sandbox can only be entered while the process has one thread.
    if !nix::unistd::geteuid().is_root() {
        println!("datapath bench skipped: it must run as root (veth, nftables capture, netns)");
        std::process::exit(if sim::testing::required() { 1 } else { 0 });
    }
    let sandbox = match sim::sandbox::enter() {
        Ok(sb) => sb,
        Err(e) => {
            println!("datapath bench skipped: cannot enter the sandbox: {e}");
            std::process::exit(if sim::testing::required() { 1 } else { 0 });
        }
    };
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/datapath.yaml");
    let loaded = scenario::load(&scenario).expect("datapath scenario");
    let profile = Profile::load("native").expect("profile native");
    let out_dir = criterion_dir();
    let mut c = Criterion::default()
        .output_directory(&out_dir)
        .configure_from_args();

    let mut bulk_cpu = Vec::new();
    let mut rr_cpu = Vec::new();
    for (mode, name) in PATHS {
        let cluster = Cluster::up_scenario(&loaded, mode, &profile, sandbox).expect("cluster up");
        let vip = |svc: &str| {
            cluster
                .info
                .services
                .iter()
                .find(|s| s.name == svc)
                .map(|s| s.vip)
                .expect("service in the scenario")
        };
        let (sink, echo) = (
            SocketAddr::from((vip("sink"), 9000)),
            SocketAddr::from((vip("echo"), 9001)),
        );
        let client = client_runtime(&cluster);
        // One exchange first: the mesh's first connection pays its TLS handshakes here.
        client.run(async move {
            let mut s = TcpStream::connect(echo).await.expect("first connect");
            round_trips(&mut s, 1).await;
        });

        let mut g = c.benchmark_group(BULK_GROUP);
        g.throughput(Throughput::Bytes(BULK as u64))
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(10));
        let mut cpu = CpuUse::default();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let cpu0 = sim::os::process_cpu_ns();
                let took = client.run(async move {
                    let chunk = vec![0x5au8; CHUNK];
                    let t = Instant::now();
                    for _ in 0..iters {
                        push_bulk(sink, &chunk).await;
                    }
                    t.elapsed()
                });
                cpu.ns += sim::os::process_cpu_ns() - cpu0;
                cpu.iters += iters;
                took
            })
        });
        bulk_cpu.push((name, cpu));
        g.finish();

        let mut g = c.benchmark_group(RR_GROUP);
        g.sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        let conn = Arc::new(tokio::sync::Mutex::new(client.run(async move {
            let s = TcpStream::connect(echo).await.expect("connect echo");
            s.set_nodelay(true).expect("nodelay");
            s
        })));
        let mut cpu = CpuUse::default();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let conn = conn.clone();
                let cpu0 = sim::os::process_cpu_ns();
                let took =
                    client.run(async move { round_trips(&mut *conn.lock().await, iters).await });
                cpu.ns += sim::os::process_cpu_ns() - cpu0;
                cpu.iters += iters;
                took
            })
        });
        rr_cpu.push((name, cpu));
        g.finish();
        // Components stop before their namespaces go; the next mode builds the same names.
        drop(conn);
        drop(client);
        drop(cluster);
    }
    c.final_summary();
    summary(&out_dir, &bulk_cpu, &rr_cpu);
}

/// CPU the whole process (every component, and the kernel's network work done on their
/// threads) used for one path's iterations, warm-up included.
#[derive(Debug, Default, Clone, Copy)]
struct CpuUse {
    ns: u64,
    iters: u64,
}

impl CpuUse {
    /// CPU milliseconds per GiB moved.
    fn ms_per_gib(self) -> Option<f64> {
        let gib = self.iters as f64 * BULK as f64 / (1u64 << 30) as f64;
        (self.iters > 0).then(|| self.ns as f64 / 1e6 / gib)
    }

    /// CPU microseconds per iteration (per round trip in `rr_1k`).
    fn us_per_iter(self) -> Option<f64> {
        (self.iters > 0).then(|| self.ns as f64 / 1e3 / self.iters as f64)
    }
}

/// A load-client component in the client pod: its thread is inside the pod's namespace, so
/// the capture rules there apply to its connections.
fn client_runtime(cluster: &Cluster) -> ComponentRuntime {
    let ns = cluster.pod_netns("client-0").expect("client pod");
    Component::new("bench-client", ComponentKind::LoadClient, ns)
        .start_runtime(1, None)
        .expect("client runtime")
}

async fn push_bulk(to: SocketAddr, chunk: &[u8]) {
    let mut s = TcpStream::connect(to).await.expect("connect sink");
    let mut left = BULK;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n]).await.expect("write");
        left -= n;
    }
    s.shutdown().await.expect("shutdown");
    // The sink closes once it has read everything; its close comes back through the path.
    let mut rest = [0u8; 64];
    let n = s.read(&mut rest).await.expect("read the close");
    assert_eq!(n, 0, "the sink sends nothing");
}

async fn round_trips(s: &mut TcpStream, iters: u64) -> Duration {
    let msg = [7u8; MSG];
    let mut back = [0u8; MSG];
    let t = Instant::now();
    for _ in 0..iters {
        s.write_all(&msg).await.expect("write");
        s.read_exact(&mut back).await.expect("read");
    }
    t.elapsed()
}

/// Where criterion writes (as it picks by default: `$CRITERION_HOME`, else the cargo target
/// directory's `criterion`), set explicitly so the summary can read the estimates back.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    // The bench binary is `<target>/<profile>/deps/datapath-<hash>`.
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// The median of a benchmark's last run, in ns per iteration, from criterion's estimates.
fn median_ns(dir: &Path, group: &str, name: &str) -> Option<f64> {
    let text =
        std::fs::read_to_string(dir.join(group).join(name).join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// Prints the medians side by side, with each path's ratio to `direct`; `rr CPU` is the
/// process's CPU per round trip (client, proxies, server and the kernel's work on their
/// threads), and `+ proxies` what the path's proxies added to it over `direct`.
fn summary(dir: &Path, bulk_cpu: &[(&str, CpuUse)], rr_cpu: &[(&str, CpuUse)]) {
    println!("\ndata path over veth (medians of this run's estimates)");
    println!(
        "{:<15} {:>14} {:>10} {:>16} {:>10} {:>14} {:>10} {:>11}",
        "path", "bulk", "vs direct", "rr 1 KiB", "vs direct", "bulk CPU/GiB", "rr CPU", "+ proxies"
    );
    let direct_bulk = median_ns(dir, BULK_GROUP, "direct");
    let direct_rr = median_ns(dir, RR_GROUP, "direct");
    let per_rr = |name: &str| {
        rr_cpu
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, c)| c.us_per_iter())
    };
    let direct_rr_cpu = per_rr("direct");
    for (_, name) in PATHS {
        let cpu = bulk_cpu
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, c)| c.ms_per_gib());
        let rr_cpu = per_rr(name);
        let bulk = median_ns(dir, BULK_GROUP, name);
        let rr = median_ns(dir, RR_GROUP, name);
        let mib_s = |ns: f64| BULK as f64 / (1 << 20) as f64 / (ns / 1e9);
        let cell = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        println!(
            "{:<15} {:>14} {:>10} {:>16} {:>10} {:>14} {:>10} {:>11}",
            name,
            cell(bulk.map(|b| format!("{:.0} MiB/s", mib_s(b)))),
            // Throughput ratio: direct's time over this path's.
            cell(
                bulk.zip(direct_bulk)
                    .map(|(b, d)| format!("{:.0} %", 100.0 * d / b))
            ),
            cell(rr.map(|r| format!("{:.1} µs", r / 1e3))),
            cell(rr.zip(direct_rr).map(|(r, d)| format!("{:.2}x", r / d))),
            cell(cpu.map(|c| format!("{c:.0} ms"))),
            cell(rr_cpu.map(|c| format!("{c:.1} µs"))),
            cell(
                rr_cpu
                    .zip(direct_rr_cpu)
                    .filter(|_| name != "direct")
                    .map(|(c, d)| format!("{:+.1} µs", c - d))
            ),
        );
    }
}

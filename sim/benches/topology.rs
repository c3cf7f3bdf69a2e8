//! Topology setup and teardown time: `cargo bench -p meshsim-sim --bench topology`.
//!
//! Brings up grids of HTTP echo pods in the sandbox (`NODES`x`PODS` per case), checks that the
//! first pod reaches the last across the fabric, tears the cluster down, and prints the median
//! and spread of each phase. Not criterion: one 1000-pod case takes seconds, and the figure
//! that matters is the wall time a user waits for `up`.
//!
//! Arguments (optional): `--reps N` (default 5) and cases like `4x25 20x50`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sim::cluster::{Cluster, UpOptions};
use sim::testing;
use sim::topology::BuildOptions;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut reps = 5usize;
    let mut cases: Vec<(usize, usize)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--reps" {
            reps = args.next().and_then(|v| v.parse().ok()).unwrap_or(reps);
        } else if let Some((n, p)) = a.split_once('x')
            && let (Ok(n), Ok(p)) = (n.parse(), p.parse())
        {
            cases.push((n, p));
        }
    }
    if cases.is_empty() {
        cases = vec![(4, 25), (20, 50)];
    }
    let sb = match sim::sandbox::enter() {
        Ok(sb) => sb,
        Err(e) => {
            eprintln!("cannot enter the sandbox: {e}");
            std::process::exit(2);
        }
    };
    let opts = UpOptions {
        mode: "no-mesh".into(),
        build: BuildOptions { service_dnat: true },
    };
    println!(
        "case        pods  reps  up median (min..max)      of which netns / links / rules   down median"
    );
    for (nodes, ppn) in cases {
        let spec = testing::grid_spec(nodes, ppn);
        let (mut ups, mut downs, mut ns, mut links, mut rules) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            let t = Instant::now();
            let cluster = match Cluster::up(&spec, sb, &opts) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("up failed: {e}");
                    std::process::exit(1);
                }
            };
            ups.push(t.elapsed().as_secs_f64());
            let tm = &cluster.topology.timings;
            ns.push(tm.namespaces.as_secs_f64());
            links.push(tm.links.as_secs_f64());
            rules.push(tm.rules.as_secs_f64());
            check(&cluster);
            let t = Instant::now();
            drop(cluster);
            downs.push(t.elapsed().as_secs_f64());
        }
        let (lo, hi) = (
            ups.iter().copied().fold(f64::MAX, f64::min),
            ups.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "{:10}  {:4}  {:4}  {:6.2} s ({:.2}..{:.2})        {:.2} / {:.2} / {:.2} s          {:.2} s",
            format!("{nodes}x{ppn}"),
            nodes * ppn,
            reps,
            median(&mut ups),
            lo,
            hi,
            median(&mut ns),
            median(&mut links),
            median(&mut rules),
            median(&mut downs)
        );
    }
}

/// The first pod reaches the last one (across the fabric when there are several nodes).
fn check(cluster: &Cluster) {
    let first = &cluster.topology.pods[0];
    let last = cluster
        .topology
        .pods
        .last()
        .map(|p| p.ip)
        .unwrap_or(first.ip);
    let ok = first
        .ns
        .run(|| -> std::io::Result<bool> {
            let mut s = TcpStream::connect_timeout(
                &SocketAddr::from((last, 8080)),
                Duration::from_secs(5),
            )?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out.starts_with("HTTP/1.1 200"))
        })
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false);
    if !ok {
        eprintln!("the first pod could not reach the last one");
        std::process::exit(1);
    }
}

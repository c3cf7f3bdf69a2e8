//! Test helpers shared by tests, benches and other crates (feature `testing`).
//!
//! - cluster specs made in code (no scenario file), from tiny to 1000 pods;
//! - a harness for tests that need the sandbox: they must run in a process that entered it
//!   while single-threaded, which the standard test harness never is.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::apps::{AppSpec, HttpEchoSpec};
use crate::sandbox::{self, Sandbox};
use crate::topology::{ClusterSpec, NodeSpec, PodSpec, ServicePortSpec, ServiceSpec};

fn pod(name: &str, workload: &str, node: usize, app: AppSpec) -> PodSpec {
    PodSpec {
        name: name.to_string(),
        workload: workload.to_string(),
        namespace: "default".into(),
        service_account: workload.to_string(),
        node,
        labels: BTreeMap::from([("app".to_string(), workload.to_string())]),
        app,
    }
}

pub fn http_echo(port: u16, response_bytes: u64) -> AppSpec {
    AppSpec::Http(HttpEchoSpec {
        port,
        response_bytes,
        status: 200,
        service_time: Duration::ZERO,
    })
}

/// The shape of the bundled quickstart: `client-0` on node-1, `echo-0`/`echo-1` (HTTP 8080)
/// on node-2 behind service `echo`, plus a TCP echo `tcpecho-0` behind `tcpecho:9000`.
pub fn quickstart_spec(name: &str) -> ClusterSpec {
    ClusterSpec {
        name: name.to_string(),
        nodes: vec![
            NodeSpec {
                name: "node-1".into(),
            },
            NodeSpec {
                name: "node-2".into(),
            },
        ],
        pods: vec![
            pod("client-0", "client", 0, AppSpec::None),
            pod("echo-0", "echo", 1, http_echo(8080, 64)),
            pod("echo-1", "echo", 1, http_echo(8080, 64)),
            pod("tcpecho-0", "tcpecho", 0, AppSpec::TcpEcho { port: 9000 }),
        ],
        services: vec![
            ServiceSpec {
                name: "echo".into(),
                namespace: "default".into(),
                ports: vec![ServicePortSpec {
                    port: 8080,
                    target_port: 8080,
                    protocol: "http".into(),
                }],
                endpoints: vec![1, 2],
            },
            ServiceSpec {
                name: "tcpecho".into(),
                namespace: "default".into(),
                ports: vec![ServicePortSpec {
                    port: 9000,
                    target_port: 9000,
                    protocol: "tcp".into(),
                }],
                endpoints: vec![3],
            },
        ],
    }
}

/// `nodes` × `pods_per_node` HTTP echo pods (one workload per node), one service per node.
pub fn grid_spec(nodes: usize, pods_per_node: usize) -> ClusterSpec {
    let mut spec = ClusterSpec {
        name: format!("grid-{nodes}x{pods_per_node}"),
        nodes: (1..=nodes)
            .map(|n| NodeSpec {
                name: format!("node-{n}"),
            })
            .collect(),
        pods: Vec::new(),
        services: Vec::new(),
    };
    for n in 0..nodes {
        let workload = format!("w{}", n + 1);
        let first = spec.pods.len();
        for k in 0..pods_per_node {
            spec.pods.push(pod(
                &format!("{workload}-{k}"),
                &workload,
                n,
                http_echo(8080, 0),
            ));
        }
        spec.services.push(ServiceSpec {
            name: workload.clone(),
            namespace: "default".into(),
            ports: vec![ServicePortSpec {
                port: 8080,
                target_port: 8080,
                protocol: "http".into(),
            }],
            endpoints: (first..spec.pods.len()).collect(),
        });
    }
    spec
}

/// Whether namespace tests must run (CI) rather than be skipped when privileges are missing.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

static SKIPPED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Writes to the terminal past the test harness's output capture (which only takes the print
/// macros), so a skip shows in a plain `cargo test` run.
fn say(line: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

extern "C" fn say_skipped() {
    let names = SKIPPED.lock().map(|v| v.clone()).unwrap_or_default();
    if !names.is_empty() {
        say(&format!(
            "\n{} test{} skipped here (not run, not passed): {}\n",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ));
    }
}

/// A test that cannot run on this machine: one visible line naming it and why, and a count of
/// the skipped tests when the test binary ends. Under `CI` it panics instead: there a missing
/// privilege or tool is a failure, never a pass. Call it and return from the test.
pub fn skip(test: &str, reason: &str) {
    assert!(
        !required(),
        "CI must run {test}, but it cannot run here: {reason}"
    );
    say(&format!("SKIPPED {test}: {reason}\n"));
    if let Ok(mut v) = SKIPPED.lock() {
        if v.is_empty() {
            // SAFETY: registers a plain `extern "C" fn()` that only reads a static.
            unsafe {
                libc::atexit(say_skipped);
            }
        }
        v.push(test.to_string());
    }
}

/// Why namespace tests cannot run here (no root and no user namespaces, or a missing tool),
/// or `None` when they can.
pub fn namespaces_unavailable(tools: &[&str]) -> Option<String> {
    use std::process::{Command, Stdio};
    let root = nix::unistd::geteuid().is_root();
    let userns = Command::new("unshare")
        .args(["--user", "--map-root-user", "--net", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !root && !userns {
        return Some("needs root or unprivileged user namespaces".into());
    }
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new(t)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    (!missing.is_empty()).then(|| format!("needs {} installed", missing.join(" and ")))
}

/// True when a namespace test can run; otherwise [`skip`]s it (a failure under CI).
pub fn can_run_namespaces(test: &str, tools: &[&str]) -> bool {
    match namespaces_unavailable(tools) {
        None => true,
        Some(reason) => {
            skip(test, &reason);
            false
        }
    }
}

pub type SandboxTest = (&'static str, fn(&Sandbox) -> Result<(), String>);

/// Entry point of a `harness = false` test binary whose tests need the sandbox. Enters it
/// first (while single-threaded), runs each test in turn, prints a cargo-style summary and
/// exits non-zero on any failure. Without the privileges for a sandbox the tests are skipped,
/// except under `CI`, where that is a failure.
pub fn run_sandboxed(tests: &[SandboxTest]) -> ! {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let sb = match sandbox::enter() {
        Ok(sb) => sb,
        Err(e) if !required() => {
            for (name, _) in tests {
                println!("test {name} ... SKIPPED: {e}");
            }
            println!(
                "\ntest result: ok. 0 passed; 0 failed; {} ignored (skipped here: the sandbox needs root or user namespaces)",
                tests.len()
            );
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("sandbox unavailable under CI: {e}");
            println!("\ntest result: FAILED. 0 passed; {} failed", tests.len());
            std::process::exit(1);
        }
    };
    let mut passed = 0;
    let mut failed = Vec::new();
    let mut filtered = 0;
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
            filtered += 1;
            continue;
        }
        let r = std::panic::catch_unwind(|| f(&sb));
        match r {
            Ok(Ok(())) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Ok(Err(e)) => {
                println!("test {name} ... FAILED\n  {e}");
                failed.push(*name);
            }
            Err(_) => {
                println!("test {name} ... FAILED (panicked)");
                failed.push(*name);
            }
        }
    }
    let status = if failed.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {status}. {passed} passed; {} failed; 0 ignored; 0 measured; {filtered} filtered out",
        failed.len()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 1 })
}

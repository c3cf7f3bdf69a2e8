//! Helpers the CLI tests share: `meshsim up` as a child process, `exec` and curl in a pod,
//! metrics scrapes. Each test binary uses what it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn meshsim() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_meshsim"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `meshsim ARGS` from the repository, to its end; what it printed is echoed for a failing
/// test's log.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(meshsim())
        .args(args)
        .current_dir(repo())
        .env("RUST_LOG", "warn")
        .output()
        .expect("meshsim runs");
    eprintln!(
        "meshsim {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// True when these tests can run here; otherwise says the test is skipped, and why (under CI
/// that is a failure).
pub fn can_run(test: &str) -> bool {
    sim::testing::can_run_namespaces(test, &["curl", "nft"])
}

pub struct Up {
    child: Child,
    pub name: String,
    pub metrics: Option<String>,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `meshsim up` on a scenario under `scenarios/`, in `mode`, until it says it is ready.
pub fn up(scenario: &str, mode: &str) -> Up {
    up_path(&repo().join("scenarios").join(scenario), mode)
}

/// `meshsim up` on any scenario file.
pub fn up_path(scenario: &std::path::Path, mode: &str) -> Up {
    up_with(scenario, mode, &[])
}

/// `meshsim up` on any scenario file, with more of `up`'s flags.
pub fn up_with(scenario: &std::path::Path, mode: &str, extra: &[&str]) -> Up {
    let mut child = Command::new(meshsim())
        .arg("up")
        .arg(scenario)
        .args(["--mode", mode])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start meshsim up");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            panic!(
                "meshsim up --mode {mode} did not come up:\n{}",
                lines.join("\n")
            );
        };
        lines.push(line.clone());
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    std::thread::spawn(move || while rx.recv().is_ok() {});
    let name = lines
        .iter()
        .find_map(|l| l.strip_prefix("cluster "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    let metrics = lines.iter().find_map(|l| {
        l.split("http://")
            .nth(1)
            .filter(|_| l.starts_with("Metrics"))
            .map(|u| format!("http://{u}"))
    });
    Up {
        child,
        name,
        metrics,
    }
}

pub fn exec(up: &Up, pod: &str, cmd: &[&str]) -> Output {
    Command::new(meshsim())
        .args(["exec", "--cluster", &up.name, pod, "--"])
        .args(cmd)
        .output()
        .expect("run meshsim exec")
}

/// `curl` from a pod; returns (HTTP status or 0, curl's exit code, body).
pub fn curl(up: &Up, pod: &str, args: &[&str]) -> (u16, i32, String) {
    let mut cmd = vec![
        "curl",
        "-sS",
        "--max-time",
        "5",
        "-o",
        "/dev/stdout",
        "-w",
        "\n%{http_code}",
    ];
    cmd.extend_from_slice(args);
    let out = exec(up, pod, &cmd);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, "0"));
    (
        code.trim().parse().unwrap_or(0),
        out.status.code().unwrap_or(-1),
        body.to_string(),
    )
}

/// Sum of a metric's samples whose labels contain every `want` pair.
pub fn metric_sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            want.iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn scrape(up: &Up) -> String {
    let url = up.metrics.as_ref().expect("up printed a metrics address");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", url.as_str()])
        .output()
        .expect("curl metrics");
    assert!(out.status.success(), "scrape {url} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Counters settle once connections close; poll briefly.
pub fn eventually(up: &Up, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let t = scrape(up);
        if f(&t) || Instant::now() > deadline {
            return t;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

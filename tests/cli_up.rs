//! `meshsim up` and `meshsim exec` as a user runs them: the bundled quickstart comes up, a real
//! curl inside a pod reaches the echo service through its name and every replica answers, and
//! whatever way `up` ends (Ctrl-C or SIGKILL), the host is left exactly as it was.
//!
//! Needs root or unprivileged user namespaces; under `CI` a missing privilege is a failure.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// These tests start clusters and compare the host before and after: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn meshsim() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_meshsim"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True when these tests can run here; otherwise says the test is skipped, and why (under CI
/// that is a failure).
fn can_run(test: &str) -> bool {
    sim::testing::can_run_namespaces(test, &["curl", "nft"])
}

/// What of the host a cluster must never change.
#[derive(Debug, PartialEq)]
struct HostState {
    netns: String,
    links: String,
    mounts: Vec<String>,
    nft: String,
    run_netns_exists: bool,
    etc_netns_exists: bool,
}

fn host_state() -> HostState {
    let run = |cmd: &[&str]| {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    // Mount IDs and the order are stable; the whole line is compared.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    // Link statistics and flags that the kernel changes by itself are left out.
    let links = run(&["ip", "-o", "link", "show"])
        .lines()
        .map(|l| l.split(" qdisc").next().unwrap_or(l).to_string())
        .collect::<Vec<_>>()
        .join("\n");
    HostState {
        netns: run(&["ip", "netns", "list"]),
        links,
        mounts,
        nft: run(&["nft", "list", "ruleset"]),
        run_netns_exists: Path::new("/run/netns").exists(),
        etc_netns_exists: Path::new("/etc/netns").exists(),
    }
}

struct Up {
    child: Child,
    name: String,
    output: Vec<String>,
}

/// Starts `meshsim up` and waits until it says the cluster is up.
fn up(prefix: &[&str], scenario: &Path) -> Up {
    let mut cmd = Command::new(prefix.first().map(PathBuf::from).unwrap_or_else(meshsim));
    if !prefix.is_empty() {
        cmd.args(&prefix[1..]).arg(meshsim());
    }
    let mut child = cmd
        .arg("up")
        .arg(scenario)
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
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut output = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                output.push(line.clone());
                // `up` ends its greeting with how to stop it.
                if line.starts_with("Press Ctrl-C") {
                    let name = output
                        .iter()
                        .find_map(|l| l.strip_prefix("cluster "))
                        .and_then(|rest| rest.split_whitespace().next())
                        .unwrap_or_default()
                        .to_string();
                    // Keep draining stdout so `up` never blocks on a full pipe.
                    std::thread::spawn(move || while rx.recv().is_ok() {});
                    return Up {
                        child,
                        name,
                        output,
                    };
                }
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "meshsim up did not come up: {status:?}\n{}",
                    output.join("\n")
                );
            }
        }
    }
}

fn exec(prefix: &[&str], cluster: Option<&str>, pod: &str, cmd: &[&str]) -> Output {
    let mut c = Command::new(prefix.first().map(PathBuf::from).unwrap_or_else(meshsim));
    if !prefix.is_empty() {
        c.args(&prefix[1..]).arg(meshsim());
    }
    c.arg("exec");
    if let Some(name) = cluster {
        c.args(["--cluster", name]);
    }
    c.arg(pod)
        .arg("--")
        .args(cmd)
        .output()
        .expect("run meshsim exec")
}

fn curl_echo(prefix: &[&str], cluster: &str) -> BTreeSet<String> {
    let mut answered = BTreeSet::new();
    for _ in 0..6 {
        let out = exec(
            prefix,
            Some(cluster),
            "client-0",
            &["curl", "-sS", "--max-time", "5", "http://echo:8080/"],
        );
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "curl failed: {}\n{body}",
            String::from_utf8_lossy(&out.stderr)
        );
        let first = body.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("hello from echo-"),
            "unexpected body: {first:?}"
        );
        answered.insert(
            first
                .split_whitespace()
                .nth(2)
                .unwrap_or_default()
                .to_string(),
        );
    }
    answered
}

fn quickstart() -> PathBuf {
    repo().join("scenarios/quickstart.yaml")
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn curl_through_a_service_name_reaches_every_replica_and_ctrl_c_leaves_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("curl_through_a_service_name_reaches_every_replica_and_ctrl_c_leaves_nothing") {
        return;
    }
    let before = host_state();
    let mut cluster = up(&[], &quickstart());
    assert!(
        cluster.output.iter().any(|l| l.contains("meshsim exec")),
        "up should say how to reach the cluster:\n{}",
        cluster.output.join("\n")
    );
    let answered = curl_echo(&[], &cluster.name);
    assert_eq!(
        answered,
        BTreeSet::from(["echo-0".to_string(), "echo-1".to_string()]),
        "every replica should answer"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(cluster.child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("send SIGINT");
    let status = wait_exit(&mut cluster.child, Duration::from_secs(2))
        .expect("up should exit within 2 s of Ctrl-C");
    assert!(status.success(), "up exited with {status}");
    assert_eq!(host_state(), before, "the host changed");
}

#[test]
fn kill_9_leaves_the_host_as_it_was() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("kill_9_leaves_the_host_as_it_was") {
        return;
    }
    let before = host_state();
    let mut cluster = up(&[], &quickstart());
    let during = host_state();
    assert_eq!(
        during, before,
        "a running cluster must not show on the host"
    );
    cluster.child.kill().expect("SIGKILL");
    let _ = cluster.child.wait();
    assert_eq!(host_state(), before, "the host changed after kill -9");
    let out = exec(&[], Some(&cluster.name), "client-0", &["true"]);
    assert!(!out.status.success(), "a killed cluster must be gone");
}

#[test]
fn two_clusters_of_one_scenario_run_side_by_side() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("two_clusters_of_one_scenario_run_side_by_side") {
        return;
    }
    let mut a = up(&[], &quickstart());
    let mut b = up(&[], &quickstart());
    assert_ne!(a.name, b.name);
    for c in [&a, &b] {
        assert_eq!(curl_echo(&[], &c.name).len(), 2);
    }
    let out = exec(&[], None, "client-0", &["true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cluster"),
        "ambiguous exec should ask for --cluster: {err}"
    );
    let out = exec(&[], Some(&a.name), "no-such-pod", &["true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("client-0"),
        "unknown pod should list the pods: {err}"
    );
    for c in [&mut a, &mut b] {
        let _ = c.child.kill();
        let _ = c.child.wait();
    }
}

#[test]
fn an_unprivileged_user_can_bring_a_cluster_up() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("an_unprivileged_user_can_bring_a_cluster_up") {
        return;
    }
    // As root, `nobody` runs it (setpriv); a user who is not root already is the
    // unprivileged user, and runs it as themselves. Either way it runs, or it is a skip that
    // says so (and fails under CI).
    let nobody: &[&str] = if nix::unistd::geteuid().is_root() {
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]
    } else {
        &[]
    };
    let userns_ok = Command::new(nobody.first().copied().unwrap_or("unshare"))
        .args(nobody.iter().skip(1))
        .args(if nobody.is_empty() {
            &[][..]
        } else {
            &["unshare"][..]
        })
        .args(["--user", "--map-root-user", "--net", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !userns_ok {
        sim::testing::skip(
            "an_unprivileged_user_can_bring_a_cluster_up",
            "this kernel does not allow unprivileged user namespaces",
        );
        return;
    }
    // Runs `program args…` as the unprivileged user.
    let as_nobody = |program: &Path| {
        let mut c = Command::new(nobody.first().map_or(program.as_os_str(), |p| p.as_ref()));
        if !nobody.is_empty() {
            c.args(&nobody[1..]).arg(program);
        }
        c
    };
    // The binary and the scenario must be readable by `nobody`.
    let dir = tempfile::tempdir().expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = dir.path().join("meshsim");
    std::fs::copy(meshsim(), &bin).expect("copy meshsim");
    let scen = dir.path().join("scenarios");
    copy_dir(&repo().join("scenarios"), &scen);
    let before = host_state();
    let mut c = as_nobody(&bin);
    c.arg("up")
        .arg(scen.join("quickstart.yaml"))
        .stdout(Stdio::piped());
    let mut child = c.spawn().expect("spawn up as nobody");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(
        first.starts_with("cluster "),
        "up as nobody said: {first:?}"
    );
    std::thread::spawn(move || for _ in lines {});
    let name = first
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let out = as_nobody(&bin)
        .args(["exec", "--cluster", &name, "client-0", "--"])
        .args(["curl", "-sS", "--max-time", "5", "http://echo:8080/"])
        .output()
        .expect("exec as nobody");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("hello from echo-"),
        "curl as nobody: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    // setpriv execs meshsim, so the child is meshsim itself.
    let status = wait_exit(&mut child, Duration::from_secs(2)).expect("exit within 2 s");
    assert!(status.success());
    assert_eq!(host_state(), before);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

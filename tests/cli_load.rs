//! `meshsim load` as a user runs it: a bad target gets one clear error and nothing runs; a
//! real run prints a summary and writes results that read back.

use std::path::PathBuf;
use std::process::Command;

use loadgen::testing::Server;

fn meshsim() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_meshsim"))
}

fn load(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(meshsim())
        .arg("load")
        .args(args)
        .output()
        .expect("meshsim runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_target_gives_one_clear_error() {
    for (target, says) in [
        ("localhost:8080", "it has no scheme"),
        ("http://localhost:99999/", "is not a number from 1 to 65535"),
        ("ftp://h:1", "unknown scheme"),
    ] {
        let (code, stdout, stderr) = load(&[target, "--duration", "1s"]);
        assert_eq!(code, 2, "{target}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].starts_with("error: cannot use target"), "{stderr}");
        assert!(lines[0].contains(says), "{stderr}");
        assert!(lines[0].contains("http://HOST:PORT/PATH"), "{stderr}");
    }
    let (code, _, stderr) = load(&["http://127.0.0.1:1/", "--loop", "open"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("needs --rate"), "{stderr}");
}

#[test]
fn a_run_prints_a_summary_and_writes_json() {
    let server = Server::http().expect("server");
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("load.json");
    let target = format!("http://{}/", server.addr);
    let (code, stdout, stderr) = load(&[
        &target,
        "--rate",
        "100,200",
        "--duration",
        "1s",
        "--warmup",
        "100ms",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.is_empty(),
        "quiet when stderr is not a terminal: {stderr}"
    );
    assert!(stdout.contains("step 2: rate 200/s"), "{stdout}");
    assert!(stdout.contains("latency (corrected)"), "{stdout}");
    assert!(stdout.contains("service time"), "{stdout}");
    let text = std::fs::read_to_string(&json).expect("json written");
    let r: loadgen::LoadResult = serde_json::from_str(&text).expect("reads back");
    let got: Vec<u64> = r.steps.iter().map(|s| s.requests).collect();
    assert_eq!(got, vec![100, 200]);
    assert!(r.steps[0].latency.decode_histogram().is_ok());
}

#[test]
fn a_dead_target_fails_the_command() {
    let addr = loadgen::testing::refused_addr().expect("port");
    let (code, stdout, stderr) = load(&[
        &format!("tcp://{addr}"),
        "--rate",
        "50",
        "--duration",
        "500ms",
        "--warmup",
        "0s",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.contains("connect_refused 25"), "{stdout}");
    assert!(stderr.contains("no successful request"), "{stderr}");
}

/// `-X` sets the method, as curl's does (the exported load Jobs send the flow's); one that is
/// not an HTTP method is refused before any request.
#[test]
fn a_bad_method_is_refused() {
    let (code, _, stderr) = load(&["http://127.0.0.1:9/", "-X", "post", "--duration", "1s"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("write it in capitals"), "{stderr}");
}

/// `--json -` puts the result on stdout between marker lines, after the summary: what a load
/// Job's `kubectl logs` carries back (`export k8s`).
#[test]
fn json_to_stdout_sits_between_markers() {
    let server = Server::http().expect("server");
    let target = format!("http://{}/", server.addr);
    let (code, stdout, stderr) = load(&[
        &target,
        "--rate",
        "50",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--json",
        "-",
        "-X",
        "POST",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (summary, rest) = stdout
        .split_once("----- meshsim-load-json-begin -----\n")
        .expect("begin marker");
    assert!(summary.contains("latency (corrected)"), "{summary}");
    let (json, after) = rest
        .split_once("\n----- meshsim-load-json-end -----")
        .expect("end marker");
    assert_eq!(after.trim(), "");
    let r: loadgen::LoadResult = serde_json::from_str(json).expect("reads back");
    assert_eq!(r.steps[0].requests, 50);
}

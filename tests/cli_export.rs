//! `meshsim export k8s`: the files written, one clear error for what cannot be exported, and
//! the exported command lines run as they are: an app's `meshsim serve` answers, and a load
//! Job's `meshsim load` drives it and prints its result between the markers `kubectl logs`
//! carries back.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `args:` of the first container of the first document of `yaml`.
fn container_args(yaml: &str) -> Vec<String> {
    let v: serde_json::Value =
        serde_saphyr::from_str(yaml.split("---\n").next().unwrap_or("")).expect("YAML");
    v["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

#[test]
fn exported_command_lines_serve_and_load_as_they_are() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let scenario = dir.path().join("s.yaml");
    std::fs::write(
        &scenario,
        format!(
            "version: 1\nname: s\nnodes: [{{name: n1}}]\nworkloads:\n  - {{name: client}}\n  - {{name: echo, app: {{http: {{port: {port}, responseBytes: 256, status: 202}}}}}}\nservices: [{{name: echo, workload: echo, ports: [{{port: {port}}}]}}]\nflows: [{{name: web, from: client, to: \"echo:{port}\", rate: [40, 80], duration: 1s, warmup: 0s, method: POST}}]\n"
        ),
    )
    .expect("write");
    let out = dir.path().join("k8s");
    let o = common::run(&[
        "export",
        "k8s",
        scenario.to_str().expect("utf8"),
        "--mode",
        "sidecar",
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert!(o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("jobs/load-web.yaml") && stdout.contains("kustomization.yaml"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("note: workloads without an app"));
    // The Deployment's command line, run here.
    let serve = container_args(&std::fs::read_to_string(out.join("deployments.yaml")).expect("d"));
    let mut app = Command::new(common::meshsim())
        .args(&serve)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the exported app never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The Job's, against this host instead of the cluster's service name.
    let load: Vec<String> =
        container_args(&std::fs::read_to_string(out.join("jobs/load-web.yaml")).expect("job"))
            .into_iter()
            .map(|a| a.replace("echo.default", "127.0.0.1"))
            .collect();
    let o = Command::new(common::meshsim())
        .args(&load)
        .output()
        .expect("load runs");
    let _ = app.kill();
    let _ = app.wait();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let json = stdout
        .split_once("----- meshsim-load-json-begin -----\n")
        .and_then(|(_, r)| r.split_once("\n----- meshsim-load-json-end -----"))
        .map(|(j, _)| j)
        .expect("the result between markers");
    let r: serde_json::Value = serde_json::from_str(json).expect("JSON");
    let steps = r["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "both rate steps");
    assert_eq!(steps[1]["requests"], 80);
    assert!(
        steps[1]["errors"].as_object().is_none_or(|e| e.is_empty()),
        "{json}"
    );
    // Back as a run: the Job's log as `kubectl logs` keeps it, and the cluster's Prometheus
    // (the sidecars' CPU and working set, the requests they counted).
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    std::fs::write(logs.join("load-web.log"), stdout.as_bytes()).expect("log");
    let prom = dir.path().join("prom.json");
    let vector = |v: &[(&str, f64)]| {
        serde_json::json!({"status": "success", "data": {"resultType": "vector", "result":
            v.iter().map(|(pod, x)| serde_json::json!({"metric": {"namespace": "default", "pod": pod}, "value": [0, x.to_string()]})).collect::<Vec<_>>()}})
    };
    std::fs::write(
        &prom,
        serde_json::json!({
            "cpu": vector(&[("echo-5d9c-x2k4q", 0.012), ("load-web-7xk2p", 0.011)]),
            "memory": vector(&[("echo-5d9c-x2k4q", 58e6), ("load-web-7xk2p", 57e6)]),
            "requests": vector(&[("echo-5d9c-x2k4q", 60.0), ("load-web-7xk2p", 60.0)]),
        })
        .to_string(),
    )
    .expect("prom");
    let run_dir = dir.path().join("real");
    let o = common::run(&[
        "import",
        "k8s",
        "--loads",
        logs.to_str().expect("utf8"),
        "--scenario",
        scenario.to_str().expect("utf8"),
        "--mode",
        "sidecar",
        "--prometheus",
        prom.to_str().expect("utf8"),
        "--out",
        run_dir.to_str().expect("utf8"),
    ]);
    assert!(o.status.success());
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).expect("run.json"))
            .expect("JSON");
    assert_eq!(run["environment"]["platform"], "kubernetes");
    let m = &run["modes"][0];
    assert_eq!(m["mode"], "sidecar");
    let steps = m["flows"][0]["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[1]["requests"], 80);
    let sidecars: Vec<&serde_json::Value> = m["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter(|c| c["kind"] == "sidecar")
        .collect();
    assert_eq!(sidecars.len(), 2, "{sidecars:?}");
    assert!(
        (sidecars[0]["vcpu_avg"].as_f64().unwrap_or(0.0) - 0.012).abs() < 1e-6,
        "{}",
        sidecars[0]
    );
    assert!(run_dir.join("report.html").exists());
    // Beside the simulator's run of the same scenario: every figure with its ratio, the
    // rates within 2% (both sent the flow's open-loop steps), no verdict, exit 0.
    if common::can_run("exported_command_lines_serve_and_load_as_they_are (sim vs real)") {
        let sim_dir = dir.path().join("sim");
        let o = common::run(&[
            "run",
            scenario.to_str().expect("utf8"),
            "--mode",
            "sidecar",
            "--out",
            sim_dir.to_str().expect("utf8"),
        ]);
        assert!(o.status.success());
        let o = common::run(&[
            "compare",
            sim_dir.to_str().expect("utf8"),
            run_dir.to_str().expect("utf8"),
        ]);
        let md = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{md}");
        assert!(
            md.contains("simulated against kubernetes") && md.contains("no verdict"),
            "{md}"
        );
        assert!(md.contains("proxy memory: the simulator's is"), "{md}");
        let achieved: Vec<f64> = md
            .lines()
            .filter(|l| l.contains("achieved"))
            .filter_map(|l| l.rsplit('×').next())
            .filter_map(|r| r.trim_end_matches(" |").trim().parse().ok())
            .collect();
        assert!(!achieved.is_empty(), "{md}");
        assert!(
            achieved.iter().all(|r| (r - 1.0).abs() <= 0.02),
            "{achieved:?}\n{md}"
        );
    }
    // A log without the result is named, with what to do.
    std::fs::write(logs.join("load-web.log"), "summary only\n").expect("log");
    let o = common::run(&[
        "import",
        "k8s",
        "--loads",
        logs.to_str().expect("utf8"),
        "--scenario",
        scenario.to_str().expect("utf8"),
        "--out",
        dir.path().join("bad").to_str().expect("utf8"),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("load-web.log: no `----- meshsim-load-json-begin -----` line")
    );
    // Into a directory that exists: refused, nothing touched.
    let again = common::run(&[
        "export",
        "k8s",
        scenario.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists; export writes a new directory")
    );
}

#[test]
fn a_scenario_that_cannot_be_exported_writes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("k8s");
    let o = common::run(&[
        "export",
        "k8s",
        "scenarios/payment.yaml",
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`jwks` serves"), "{err}");
    assert!(!out.exists());
}

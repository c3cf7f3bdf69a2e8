//! Faults on a step's time line, each doing the real thing in a running cluster, and the
//! figures `run` gives for them: what a troubleshooting replay shows.
//!
//! Istio behaviour: ztunnel in in-pod mode owns listeners inside each pod's network
//! namespace (istio/ztunnel `src/inpod.rs`, "ztunnel … creates its listening sockets inside
//! the pod's network namespace"); when it stops, those sockets close and connections through
//! it reset, and a new ztunnel opens them again for every pod of its node. A sidecar is a
//! container of its pod: when it crashes, the pod's captured traffic has nowhere to go until
//! it restarts.
//!
//! Needs root or unprivileged user namespaces and nft; under `CI` a missing privilege is a
//! failure.

mod common;

use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

/// One cluster at a time: a fault's figures are timing, and two clusters on two cores would
/// blur them.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `mode` of a one-flow scenario (client on node-1, one echo replica on node-2) with
/// `fault`, and returns run.json.
fn run_with(mode: &str, rate: u32, fault: &str) -> Value {
    run_http(mode, rate, "{port: 8080}", fault)
}

/// As [`run_with`], with the echo's `http:` settings given.
fn run_http(mode: &str, rate: u32, http: &str, fault: &str) -> Value {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        r#"version: 1
name: faults
seed: 3
profile: native
modes: [{mode}]
nodes: [{{name: node-1}}, {{name: node-2}}]
workloads:
  - {{name: client, nodes: [node-1]}}
  - {{name: echo, nodes: [node-2], app: {{http: {http}}}}}
services:
  - {{name: echo, workload: echo, ports: [{{port: 8080}}]}}
flows:
  - {{name: web, from: client, to: "echo:8080", rate: {rate}, connections: 4, duration: 7s, warmup: 1s}}
faults:
  - {fault}
"#
    );
    let path = dir.path().join("faults.yaml");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(common::meshsim())
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("out"))
        .current_dir(common::repo())
        .env("RUST_LOG", "warn")
        .output()
        .expect("meshsim runs");
    eprintln!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() || out.status.code() == Some(1));
    serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/run.json")).expect("run.json"),
    )
    .expect("JSON")
}

fn fault(r: &Value) -> &Value {
    let f = &r["modes"][0]["faults"][0];
    assert!(f.is_object(), "a fault in run.json: {r}");
    assert!(f["not_applied"].is_null(), "{f}");
    f
}

/// (end of second, requests, errors) of the flow's only step.
fn seconds(r: &Value) -> Vec<(f64, u64, u64)> {
    r["modes"][0]["flows"][0]["steps"][0]["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|s| {
            (
                s["t_s"].as_f64().expect("t"),
                s["requests"].as_u64().expect("requests"),
                s["errors"].as_u64().expect("errors"),
            )
        })
        .collect()
}

/// Where the step of [`run_http`]'s scenario stops sending (1 s warmup + 7 s). Seconds past
/// it only wait for requests still in flight: one dialled to a replaced pod's old address
/// waits out the connect timeout (10 s, as ztunnel's and Envoy's), sending nothing new.
const SENDING_ENDS_S: f64 = 8.5;

fn recovers(r: &Value) {
    let f = fault(r);
    let end = f["end_s"].as_f64().expect("end");
    let after: Vec<_> = seconds(r)
        .into_iter()
        .filter(|s| s.0 > end + 2.0 && s.0 < SENDING_ENDS_S)
        .collect();
    assert!(
        !after.is_empty(),
        "seconds after the fault: {:?}",
        seconds(r)
    );
    assert!(
        after.iter().all(|s| s.1 > 0 && s.2 == 0),
        "traffic runs clean again: {after:?}"
    );
    assert!(f["clean_after_s"].as_f64().expect("clean") <= 3.5, "{f}");
}

#[test]
fn a_ztunnel_restart_resets_live_connections_and_traffic_recovers() {
    if !common::can_run("a_ztunnel_restart_resets_live_connections_and_traffic_recovers") {
        return;
    }
    let r = run_with(
        "ambient",
        200,
        "{kind: ztunnel-restart, node: node-2, at: 2s, duration: 1s}",
    );
    let f = fault(&r);
    assert!(f["failed"].as_u64().expect("failed") > 0, "{f}");
    // The failures by kind, per second and over the fault, add up to what failed.
    let by_kind: u64 = f["errors"]
        .as_object()
        .expect("errors by kind")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(by_kind, f["failed"].as_u64().expect("failed"), "{f}");
    let series = r["modes"][0]["flows"][0]["steps"][0]["series"]
        .as_array()
        .expect("series");
    assert!(
        series.iter().all(|s| s["errors"].as_u64()
            == Some(
                s["errors_by_kind"]
                    .as_object()
                    .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
            )),
        "each second's errors are split by kind"
    );
    let errors = &r["modes"][0]["flows"][0]["steps"][0]["errors"];
    assert!(
        errors["reset"].as_u64().unwrap_or(0) + errors["connect_refused"].as_u64().unwrap_or(0) > 0,
        "the live connections were reset or refused: {errors}"
    );
    recovers(&r);
    // The restarted ztunnel is the same component: one series, not two.
    let names: Vec<&str> = r["modes"][0]["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .filter(|n| *n == "ztunnel-node-2")
        .collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn a_pod_kill_gives_connection_errors_then_recovery() {
    if !common::can_run("a_pod_kill_gives_connection_errors_then_recovery") {
        return;
    }
    let r = run_with(
        "no-mesh",
        200,
        "{kind: pod-restart, pod: echo-0, at: 2s, duration: 1s}",
    );
    let f = fault(&r);
    assert!(f["failed"].as_u64().expect("failed") >= 50, "{f}");
    recovers(&r);
}

#[test]
fn a_sidecar_crash_takes_its_pods_traffic_down_until_it_restarts() {
    if !common::can_run("a_sidecar_crash_takes_its_pods_traffic_down_until_it_restarts") {
        return;
    }
    let r = run_with(
        "sidecar",
        200,
        "{kind: sidecar-crash, pod: echo-0, at: 2s, duration: 1s}",
    );
    let f = fault(&r);
    assert!(f["failed"].as_u64().expect("failed") >= 50, "{f}");
    recovers(&r);
}

#[test]
fn loss_between_nodes_shows_as_latency_tail_not_errors() {
    if !common::can_run("loss_between_nodes_shows_as_latency_tail_not_errors") {
        return;
    }
    let r = run_with(
        "no-mesh",
        200,
        "{kind: link-loss, nodes: [node-1, node-2], percent: 5, at: 1s, duration: 5s}",
    );
    let f = fault(&r);
    // TCP retransmits what was dropped: no request fails, but the tail grows by at least a
    // retransmission timeout (200 ms minimum on Linux) for the unlucky ones.
    let step = &r["modes"][0]["flows"][0]["steps"][0];
    assert_eq!(f["failed"], 0, "{f}");
    assert!(
        step["errors"].as_object().expect("errors").is_empty(),
        "{step}"
    );
    let max_us = step["latency"]["max_us"].as_f64().expect("max");
    assert!(
        max_us >= 150_000.0,
        "a retransmit shows in the tail: max {max_us} µs"
    );
}

/// (end of second, p50 µs) of the flow's only step.
fn p50s(r: &Value) -> Vec<(f64, f64)> {
    r["modes"][0]["flows"][0]["steps"][0]["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter_map(|s| Some((s["t_s"].as_f64()?, s["p50_us"].as_f64()?)))
        .collect()
}

/// The p50s of the seconds inside the fault (from `settle` seconds after its start to its
/// end) and of those clear of it (before it, or from a second after it ended), and all of them.
fn p50s_around(r: &Value, settle: f64) -> (Vec<f64>, Vec<f64>, Vec<(f64, f64)>) {
    let f = fault(r);
    let (start, end) = (
        f["start_s"].as_f64().expect("start"),
        f["end_s"].as_f64().expect("end"),
    );
    let p = p50s(r);
    let pick = |keep: &dyn Fn(f64) -> bool| -> Vec<f64> {
        p.iter().filter(|(t, _)| keep(*t)).map(|s| s.1).collect()
    };
    let during = pick(&|t| t > start + settle && t <= end);
    let outside = pick(&|t| t <= start || t > end + 1.0);
    (during, outside, p)
}

/// No netem here: the delay is a userspace wire between TUN devices on both nodes, so each
/// request and each response waits `delay` once, the round trip twice. Outside the fault
/// nothing is in the path.
#[test]
fn link_delay_adds_twice_the_delay_to_each_round_trip_while_it_lasts() {
    if !common::can_run("link_delay_adds_twice_the_delay_to_each_round_trip_while_it_lasts") {
        return;
    }
    let r = run_with(
        "no-mesh",
        40,
        "{kind: link-delay, nodes: [node-1, node-2], delay: 20ms, jitter: 2ms, at: 2s, duration: 3s}",
    );
    let f = fault(&r);
    let (during, outside, p) = p50s_around(&r, 1.0);
    assert!(!during.is_empty() && !outside.is_empty(), "{p:?}");
    assert!(
        during.iter().all(|&us| (38_000.0..80_000.0).contains(&us)),
        "p50 in the fault is the round trip plus 2 × 20 ms: {p:?}"
    );
    assert!(
        outside.iter().all(|&us| us < 15_000.0),
        "no delay outside the fault: {p:?}"
    );
    assert_eq!(f["failed"], 0, "{f}");
}

/// The cap is tbf on the wire's input: 64 KiB responses at 2 Mbit/s take a quarter second each.
#[test]
fn link_bandwidth_caps_what_crosses_between_the_nodes() {
    if !common::can_run("link_bandwidth_caps_what_crosses_between_the_nodes") {
        return;
    }
    let r = run_http(
        "no-mesh",
        2,
        "{port: 8080, responseBytes: 64KiB}",
        "{kind: link-bandwidth, nodes: [node-1, node-2], bandwidth: 2Mbit, at: 2s, duration: 4s}",
    );
    let f = fault(&r);
    let start = f["start_s"].as_f64().expect("start");
    // At 2 requests a second, a second's p50 is its faster request: skip the first second,
    // whose first request may leave before the cap is in place.
    let (during, _, p) = p50s_around(&r, 1.5);
    assert!(
        !during.is_empty() && during.iter().all(|&us| us >= 200_000.0),
        "64 KiB at 2 Mbit/s takes ≥ 260 ms: {p:?}"
    );
    assert!(
        p.iter()
            .filter(|(t, _)| *t <= start)
            .all(|s| s.1 < 50_000.0),
        "{p:?}"
    );
}

/// A ztunnel restart while istiod is down: running proxies carry on, but the new ztunnel has no
/// configuration or certificate, stays unready (istio/ztunnel src/xds/client.rs: readiness
/// waits for the first xDS push) and serves only once istiod is back. The outage lasts until
/// istiod returns, not the restart's half second.
#[test]
fn a_ztunnel_restarting_while_istiod_is_down_waits_for_istiod() {
    if !common::can_run("a_ztunnel_restarting_while_istiod_is_down_waits_for_istiod") {
        return;
    }
    let r = run_with(
        "ambient",
        100,
        "{kind: istiod-unavailable, at: 1s, duration: 3s}\n  - {kind: ztunnel-restart, node: node-2, at: 2s, duration: 500ms}",
    );
    let faults = r["modes"][0]["faults"].as_array().expect("faults");
    let (istiod, restart) = (&faults[0], &faults[1]);
    assert!(
        istiod["note"]
            .as_str()
            .is_some_and(|c| c.contains("1 proxy start(s) had waited for istiod")),
        "{istiod}"
    );
    // istiod alone breaks nothing that runs.
    let seconds = seconds(&r);
    let before_restart: u64 = seconds
        .iter()
        .filter(|s| s.0 <= restart["start_s"].as_f64().expect("start"))
        .map(|s| s.2)
        .sum();
    assert_eq!(before_restart, 0, "{seconds:?}");
    // Errors run until istiod is back (2 s after the restart began), then clear.
    let clean = restart["clean_after_s"].as_f64().expect("clean after");
    assert!((1.5..=4.0).contains(&clean), "{restart}");
    assert!(
        restart["failed"].as_u64().expect("failed") >= 100,
        "{restart}"
    );
}

/// A node whose pods and proxies must share 50 millicores: the kernel's CFS quota throttles
/// them every period, and the 300 rps the flow asks for no longer get through in time.
#[test]
fn a_cpu_limit_on_a_node_throttles_what_runs_there() {
    if !common::can_run("a_cpu_limit_on_a_node_throttles_what_runs_there") {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        // cgroups need real root; CI runs as root, so there this never skips.
        sim::testing::skip(
            "a_cpu_limit_on_a_node_throttles_what_runs_there",
            "cgroup quotas need real root",
        );
        return;
    }
    let r = run_with(
        "ambient",
        300,
        "{kind: cpu-limit, node: node-2, cpu: 50m, at: 2s, duration: 3s}",
    );
    let f = fault(&r);
    let cost = f["note"].as_str().expect("the throttling, measured");
    let periods: u64 = cost
        .split("throttled the node in ")
        .nth(1)
        .and_then(|x| x.split(' ').next())
        .and_then(|x| x.parse().ok())
        .expect("periods");
    assert!(periods >= 10, "{cost}");
    let start = f["start_s"].as_f64().expect("start");
    let (during, _, p) = p50s_around(&r, 1.0);
    let before = p
        .iter()
        .filter(|(t, _)| *t <= start)
        .map(|s| s.1)
        .fold(0.0, f64::max);
    let worst = during.into_iter().fold(0.0, f64::max);
    assert!(worst > 10.0 * before, "p50 under the quota: {p:?}");
    // Lifted, the node catches up: the last second runs as before.
    let last = p.last().expect("seconds").1;
    assert!(last < 5.0 * before.max(1000.0), "{p:?}");
}

#[test]
fn a_fault_whose_target_is_not_in_the_mode_says_so() {
    if !common::can_run("a_fault_whose_target_is_not_in_the_mode_says_so") {
        return;
    }
    let r = run_with(
        "no-mesh",
        100,
        "{kind: ztunnel-restart, node: node-2, at: 1s, duration: 1s}",
    );
    let f = &r["modes"][0]["faults"][0];
    assert!(
        f["not_applied"]
            .as_str()
            .expect("not applied")
            .contains("no ztunnel"),
        "{f}"
    );
}

/// A link fault needs `ip` and `tc`: without them the run stops before it starts, naming the
/// package, rather than failing in the middle of a step.
#[test]
fn a_link_fault_without_iproute2_says_so_before_starting() {
    if !common::can_run("a_link_fault_without_iproute2_says_so_before_starting") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // A PATH with nft and nothing else.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nft is installed (can_run checked it)");
    std::os::unix::fs::symlink(nft, bin.join("nft")).expect("symlink");
    let path = dir.path().join("s.yaml");
    std::fs::write(
        &path,
        "version: 1
name: lf
profile: native
modes: [no-mesh]
nodes: [{name: node-1}, {name: node-2}]
workloads:
  - {name: client, nodes: [node-1]}
  - {name: echo, nodes: [node-2], app: {http: {port: 8080}}}
services:
  - {name: echo, workload: echo, ports: [{port: 8080}]}
flows:
  - {name: web, from: client, to: \"echo:8080\", rate: 10, duration: 3s, warmup: 1s}
faults:
  - {kind: link-delay, nodes: [node-1, node-2], delay: 5ms, at: 1s, duration: 1s}
",
    )
    .expect("write");
    let out = Command::new(common::meshsim())
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("out"))
        .env("PATH", &bin)
        .output()
        .expect("meshsim runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("apt-get install iproute2"), "{err}");
    assert!(!dir.path().join("out").exists(), "nothing started: {err}");
}

/// A pod replaced on a new IP (a Deployment's new pod, `newIp: true`): its old address
/// answers nothing, and once istiod has pushed the new endpoint (Istio's EDS update for
/// sidecars, ztunnel's workload update over WDS) traffic reaches it there.
#[test]
fn a_pod_replaced_on_a_new_ip_is_found_there_after_istiods_push() {
    if !common::can_run("a_pod_replaced_on_a_new_ip_is_found_there_after_istiods_push") {
        return;
    }
    for mode in ["no-mesh", "sidecar", "ambient"] {
        let r = run_with(
            mode,
            200,
            "{kind: pod-restart, pod: echo-0, at: 2s, duration: 1s, newIp: true}",
        );
        let f = fault(&r);
        let note = f["note"].as_str().unwrap_or_default();
        assert!(
            note.contains("echo-0 came back on 10.2.0.") && !note.contains("on 10.2.0.2 "),
            "{mode}: {f}"
        );
        assert!(
            f["label"].as_str().unwrap_or_default().contains("(new IP)"),
            "{f}"
        );
        // With proxies, istiod's push of the endpoint's removal makes every request in the
        // window fail fast (Envoy's 503 "no healthy upstream", ztunnel's reset). Without a
        // mesh it is kube-proxy's race, as on a real cluster: a client reconnecting after
        // the rules dropped the endpoint is refused (no endpoints: reject), one whose SYN
        // was DNATed to the old address just before waits for a SYN retransmit instead,
        // failing nothing more. Only the live connections' breaks are certain.
        let least = if mode == "no-mesh" { 1 } else { 50 };
        assert!(
            f["failed"].as_u64().expect("failed") >= least,
            "{mode}: {f}"
        );
        recovers(&r);
    }
}

/// `scenarios/waypoint-overload.yaml`: a surge past high-traffic-waypoint's CPU limit queues
/// in the waypoint, then its DestinationRule's circuit breaker sheds what does not fit, with
/// 503 and Envoy's `UO` flag, and traffic runs clean once the backlog is through.
///
/// Istio behaviour: istiod applies a service's DestinationRule `connectionPool` to the
/// waypoint's `inbound-vip` cluster (pilot/pkg/networking/core/cluster_waypoint.go,
/// `buildWaypointInboundVIPCluster`) as Envoy circuit breakers (`applyConnectionPool`,
/// cluster_traffic_policy.go); an overflow is a local 503 with response flag `UO` and
/// `upstream_reset_before_response_started{overflow}` (istio.io "Circuit Breaking" task:
/// `upstream_rq_pending_overflow`). Without a rule the thresholds are `MaxUint32`, so the
/// waypoint would only queue.
#[test]
fn a_surge_past_a_waypoints_capacity_queues_then_sheds_with_503_uo() {
    if !common::can_run("a_surge_past_a_waypoints_capacity_queues_then_sheds_with_503_uo") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = common::run(&[
        "run",
        "scenarios/waypoint-overload.yaml",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).expect("run.json"))
            .expect("JSON");
    let f = fault(&r);
    assert_eq!(f["kind"], "load-surge", "{f}");
    let (start, end) = (
        f["start_s"].as_f64().expect("start"),
        f["end_s"].as_f64().expect("end"),
    );
    let series = r["modes"][0]["flows"][0]["steps"][0]["series"]
        .as_array()
        .expect("series")
        .clone();
    let at = |s: &Value, k: &str| s[k].as_f64().unwrap_or(0.0);
    let before: Vec<&Value> = series.iter().filter(|s| at(s, "t_s") <= start).collect();
    let during: Vec<&Value> = series
        .iter()
        .filter(|s| at(s, "t_s") > start + 1.0 && at(s, "t_s") <= end)
        .collect();
    assert!(!before.is_empty() && !during.is_empty(), "{series:?}");
    // Within capacity: nothing fails.
    assert!(before.iter().all(|s| at(s, "errors") == 0.0), "{before:?}");
    // Past it: requests queue (p99 twenty times the calm seconds' median) and the breaker
    // sheds.
    let mut calm: Vec<f64> = before.iter().map(|s| at(s, "p99_us")).collect();
    calm.sort_by(f64::total_cmp);
    let calm_p99 = calm[calm.len() / 2];
    let surge_p99 = during.iter().map(|s| at(s, "p99_us")).fold(0.0, f64::max);
    assert!(
        surge_p99 > 20.0 * calm_p99,
        "p99 {surge_p99} µs in the surge against a median {calm_p99} µs before"
    );
    let failed = f["failed"].as_u64().expect("failed");
    assert!(failed > 50, "{f}");
    assert_eq!(
        f["errors"]["http_5xx"].as_u64(),
        Some(failed),
        "only 503s: {f}"
    );
    // Every 503 the client saw is one the waypoint shed, as its access log says.
    let logs = out.join("logs/ambient-1");
    let wp = std::fs::read_dir(&logs)
        .expect("logs")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains("waypoint"))
        .expect("a waypoint log");
    let log = std::fs::read_to_string(wp.path()).expect("log");
    let shed = log
        .lines()
        .filter(|l| l.contains(" 503 UO upstream_reset_before_response_started{overflow} "))
        .count() as u64;
    assert!(shed >= failed, "{shed} UO lines for {failed} 503s");
    assert_eq!(
        log.lines().filter(|l| l.contains(" 503 ")).count() as u64,
        shed,
        "no 503 other than UO"
    );
    // Once the backlog is through, traffic runs clean again within the step.
    assert!(f["clean_after_s"].as_f64().is_some(), "{f}");
}

/// A DestinationRule's `tcp.maxConnections` caps a TCP service's connections at the client's
/// sidecar: Envoy's tcp_proxy gives each downstream connection its own upstream one, and
/// past the limit and the pending queue it closes the connection (`UO`;
/// `applyConnectionPool`, pilot/pkg/networking/core/cluster_traffic_policy.go). Four
/// persistent connections against `maxConnections: 2` and one pending: two carry traffic,
/// the others fail.
#[test]
fn a_destination_rule_caps_a_tcp_services_connections_at_the_client_sidecar() {
    if !common::can_run("a_destination_rule_caps_a_tcp_services_connections_at_the_client_sidecar")
    {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = r#"version: 1
name: tcp-pool
seed: 3
profile: native
modes: [sidecar]
nodes: [{name: node-1}, {name: node-2}]
workloads:
  - {name: client, nodes: [node-1]}
  - {name: echo, nodes: [node-2], app: {tcpEcho: {port: 9000}}}
services:
  - {name: echo, workload: echo, ports: [{port: 9000}]}
manifests: [dr.yaml]
flows:
  - {name: rr, from: client, to: "echo:9000", protocol: tcp-rr, rate: 40, connections: 4, duration: 4s, warmup: 1s}
"#;
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo-pool, namespace: default}
spec:
  host: echo
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 2}
      http: {http1MaxPendingRequests: 1}
";
    std::fs::write(dir.path().join("s.yaml"), scenario).expect("write");
    std::fs::write(dir.path().join("dr.yaml"), dr).expect("write");
    let out = dir.path().join("out");
    let o = common::run(&[
        "run",
        dir.path().join("s.yaml").to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(
        o.status.success() || o.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).expect("run.json"))
            .expect("JSON");
    let step = &r["modes"][0]["flows"][0]["steps"][0];
    let requests = step["requests"].as_u64().expect("requests");
    let errors: u64 = step["errors"]
        .as_object()
        .expect("errors")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    // Two of the four connections' share gets through (each sends a quarter of the rate).
    assert!(requests >= 40, "{step}");
    assert!(errors >= 20, "the connections past the limit fail: {step}");
}

//! Clusters in the sandbox: topology, service DNAT, apps. Runs as root or with unprivileged
//! user namespaces; under `CI` a missing privilege fails the run.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use sim::cluster::{Cluster, UpOptions};
use sim::sandbox::Sandbox;
use sim::testing::{self, SandboxTest};
use sim::topology::BuildOptions;

fn no_mesh() -> UpOptions {
    UpOptions {
        mode: "no-mesh".into(),
        build: BuildOptions { service_dnat: true },
    }
}

fn up(sb: &Sandbox, spec: &sim::topology::ClusterSpec) -> Result<Cluster, String> {
    Cluster::up(spec, *sb, &no_mesh()).map_err(|e| e.to_string())
}

/// A cluster of the scenario `text` in `mode`, with its profile.
fn up_text(
    sb: &Sandbox,
    mode: scenario::Mode,
    text: &str,
) -> Result<(scenario::Loaded, Cluster), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let loaded = scenario::load::load(&path).map_err(|e| e.to_string())?;
    let profile = loaded.profile().map_err(|e| e.to_string())?;
    let cluster = Cluster::up_scenario(&loaded, mode, &profile, *sb).map_err(|e| e.to_string())?;
    Ok((loaded, cluster))
}

/// One HTTP/1.1 request from inside `pod`'s namespace; returns (status line, pod header, body).
fn http_get(
    cluster: &Cluster,
    pod: &str,
    target: SocketAddr,
) -> Result<(String, String, String), String> {
    let ns = &cluster.topology.pod(pod).ok_or("no such pod")?.ns;
    get_path(ns, target, "/")
}

/// As [`http_get`], from namespace `ns`, for `path`.
fn get_path(
    ns: &sim::netns::NetNs,
    target: SocketAddr,
    path: &str,
) -> Result<(String, String, String), String> {
    ns.run(|| -> Result<(String, String, String), String> {
        let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(3))
            .map_err(|e| format!("connect {target}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        let (head, body) = out.split_once("\r\n\r\n").ok_or("no header end")?;
        let status = head.lines().next().unwrap_or_default().to_string();
        let podh = head
            .lines()
            .find_map(|l| l.strip_prefix("x-meshsim-pod: "))
            .unwrap_or_default()
            .to_string();
        Ok((status, podh, body.to_string()))
    })
    .map_err(|e| e.to_string())?
}

fn service_reaches_every_replica(sb: &Sandbox) -> Result<(), String> {
    let cluster = up(sb, &testing::quickstart_spec("qs"))?;
    let vip = cluster.info.services[0].vip;
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        let (status, pod, body) = http_get(&cluster, "client-0", SocketAddr::from((vip, 8080)))?;
        if !status.contains("200") {
            return Err(format!("status {status}"));
        }
        if !body.starts_with(&format!("hello from {pod} (default/echo)")) {
            return Err(format!("body {body:?} does not name {pod}"));
        }
        seen.insert(pod);
    }
    let want: BTreeSet<String> = ["echo-0".to_string(), "echo-1".to_string()].into();
    if seen != want {
        return Err(format!("replicas reached: {seen:?}, want {want:?}"));
    }
    Ok(())
}

fn pods_reach_each_other_across_nodes(sb: &Sandbox) -> Result<(), String> {
    let cluster = up(sb, &testing::quickstart_spec("qs"))?;
    let echo1 = cluster.topology.pod("echo-1").ok_or("echo-1")?;
    let (status, pod, _) = http_get(&cluster, "client-0", SocketAddr::from((echo1.ip, 8080)))?;
    if !status.contains("200") || pod != "echo-1" {
        return Err(format!("direct pod request: {status} from {pod:?}"));
    }
    // Deterministic addresses: node-1's first pod, node-2's first and second, node-1's second.
    let ips: Vec<String> = cluster.info.pods.iter().map(|p| p.ip.to_string()).collect();
    if ips != ["10.1.0.2", "10.2.0.2", "10.2.0.3", "10.1.0.3"] {
        return Err(format!("addresses {ips:?}"));
    }
    Ok(())
}

fn tcp_echo_through_service(sb: &Sandbox) -> Result<(), String> {
    let cluster = up(sb, &testing::quickstart_spec("qs"))?;
    let vip = cluster.info.services[1].vip;
    let ns = &cluster.topology.pod("client-0").ok_or("client-0")?.ns;
    ns.run(|| -> Result<(), String> {
        let target = SocketAddr::from((vip, 9000));
        let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(3))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        let msg = b"ping over the fabric";
        s.write_all(msg).map_err(|e| e.to_string())?;
        let mut buf = vec![0; msg.len()];
        s.read_exact(&mut buf).map_err(|e| e.to_string())?;
        if buf != msg {
            return Err(format!("echoed {:?}", String::from_utf8_lossy(&buf)));
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?
}

fn hosts_file_names_services_and_pods(sb: &Sandbox) -> Result<(), String> {
    let _cluster = up(sb, &testing::quickstart_spec("qs"))?;
    let hosts = std::fs::read_to_string("/etc/netns/client-0/hosts").map_err(|e| e.to_string())?;
    for want in [
        "10.96.0.10\techo.default.svc.cluster.local",
        " echo\n",
        "10.2.0.3\techo-1 ",
    ] {
        if !hosts.contains(want) {
            return Err(format!("hosts lacks {want:?}:\n{hosts}"));
        }
    }
    Ok(())
}

fn a_hundred_pods_come_up(sb: &Sandbox) -> Result<(), String> {
    let cluster = up(sb, &testing::grid_spec(4, 25))?;
    // The last pod of the last node answers the first pod of the first, across the fabric.
    let last = cluster.topology.pods.last().ok_or("no pods")?;
    let (status, pod, _) = http_get(&cluster, "w1-0", SocketAddr::from((last.ip, 8080)))?;
    if !status.contains("200") || pod != "w4-24" {
        return Err(format!("{status} from {pod}"));
    }
    Ok(())
}

/// Workload certificates with a 3 s TTL (istiod's `DEFAULT_WORKLOAD_CERT_TTL`), istiod down
/// long enough for them to run out. As in Istio: renewal at half-life fails and retries with
/// ztunnel's backoff (istio/ztunnel src/identity/manager.rs), the old certificate is kept until
/// it expires, connections already open carry on, a new mTLS connection presenting an expired
/// certificate fails its handshake (the peer checks `notAfter`), and once istiod is back a
/// retry renews and new connections work again.
fn workload_certs_expire_while_istiod_is_down_then_renew(sb: &Sandbox) -> Result<(), String> {
    let (loaded, mut cluster) = up_text(
        sb,
        scenario::Mode::Ambient,
        r#"version: 1
name: certs
modes: [ambient]
profile: native
nodes: [{name: node-1}, {name: node-2}]
workloads:
  - {name: a, nodes: [node-1]}
  - {name: b, nodes: [node-1]}
  - {name: echo, nodes: [node-2], app: {http: {port: 8080}}}
services:
  - {name: echo, workload: echo, ports: [{port: 8080}]}
meshConfig: {workloadCertTtl: 3s}
faults:
  - {kind: istiod-unavailable, at: 0s, duration: 10s}
"#,
    )?;
    let vip = cluster
        .info
        .services
        .iter()
        .find(|s| s.name == "echo")
        .ok_or("no echo service")?
        .vip;
    let echo = SocketAddr::from((vip, 8080));
    let ok = |c: &Cluster, pod: &str| http_get(c, pod, echo).is_ok_and(|r| r.0.contains("200"));
    // `a` has an HBONE connection to echo's node before istiod goes; `b` has none.
    if !ok(&cluster, "a-0") {
        return Err("a-0 does not reach echo before the fault".into());
    }
    let fault = loaded.scenario.faults[0].clone();
    let down = cluster.fault_down(&fault).map_err(|e| e.to_string())?;
    // The last renewal was at most 1.5 s (half the TTL) before; X.509's whole seconds add
    // up to one more.
    std::thread::sleep(Duration::from_millis(4200));
    if !ok(&cluster, "a-0") {
        return Err("a-0's open HBONE connection should carry on past expiry".into());
    }
    if ok(&cluster, "b-0") {
        return Err(
            "b-0's new mTLS connection presented an expired certificate and still got through"
                .into(),
        );
    }
    let note = cluster
        .fault_up(down)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    if !note.contains("certificate renewal(s) failed") || note.contains(" 0 certificate(s) expired")
    {
        return Err(format!("the fault's note: {note}"));
    }
    let back = std::time::Instant::now();
    while !ok(&cluster, "b-0") {
        if back.elapsed() > Duration::from_secs(15) {
            return Err("b-0 still fails 15 s after istiod came back".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "renewed {:.1}s after istiod came back ({note})",
        back.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A ztunnel that restarts while istiod is down is not ready until istiod is back: its
/// readiness port answers 500 "not ready, pending: state manager" (istio/ztunnel
/// src/readiness/server.rs answers 500 with the pending tasks; src/app.rs registers the "state
/// manager" task, done at the first xDS push), then 200 "ready".
fn ztunnel_readiness_waits_for_istiod(sb: &Sandbox) -> Result<(), String> {
    let (loaded, mut cluster) = up_text(
        sb,
        scenario::Mode::Ambient,
        r#"version: 1
name: ready
modes: [ambient]
profile: native
nodes: [{name: node-1}, {name: node-2}]
workloads:
  - {name: a, nodes: [node-1]}
  - {name: echo, nodes: [node-2], app: {http: {port: 8080}}}
faults:
  - {kind: istiod-unavailable, at: 0s, duration: 10s}
  - {kind: ztunnel-restart, node: node-1, at: 0s, duration: 1s}
"#,
    )?;
    // As the kubelet probes: from the node, not through a pod's captured traffic.
    let (node_ns, node_ip) = (
        cluster.topology.nodes[0].ns.clone(),
        cluster.topology.nodes[0].ip,
    );
    let ready = SocketAddr::from((node_ip, 15021));
    let probe = |_: &Cluster| {
        get_path(&node_ns, ready, "/healthz/ready").map(|(status, _, body)| (status, body))
    };
    let before = probe(&cluster).map_err(|e| format!("before: {e}"))?;
    if !before.0.contains("200") || before.1 != "ready\n" {
        return Err(format!("before: {before:?}"));
    }
    let f = &loaded.scenario.faults;
    let istiod = cluster.fault_down(&f[0]).map_err(|e| e.to_string())?;
    let ztunnel = cluster.fault_down(&f[1]).map_err(|e| e.to_string())?;
    if probe(&cluster).is_ok() {
        return Err("a stopped ztunnel's readiness port still answers".into());
    }
    cluster.fault_up(ztunnel).map_err(|e| e.to_string())?;
    let waiting = probe(&cluster).map_err(|e| format!("waiting for istiod: {e}"))?;
    if !waiting.0.contains("500") || waiting.1 != "not ready, pending: state manager\n" {
        return Err(format!("waiting for istiod: {waiting:?}"));
    }
    cluster.fault_up(istiod).map_err(|e| e.to_string())?;
    let after = probe(&cluster).map_err(|e| format!("after istiod is back: {e}"))?;
    if !after.0.contains("200") {
        return Err(format!("after istiod is back: {after:?}"));
    }
    Ok(())
}

/// A proxy's modeled memory grows with the configuration istiod gives it: a sidecar holds
/// every service port's cluster and its endpoints (no `Sidecar` resource scopes it), ztunnel
/// every service and workload. Priced by the istio-1.24 profile's cost model: ~115 kB per
/// Envoy cluster and 1.5 kB per endpoint (Hitachi istio-bench; Envoy's stats memory tests,
/// envoyproxy/envoy#15231), 2.5 KiB per workload and 1 KiB per service for ztunnel (its
/// chart's 512Mi for ~200k pods, istio/ztunnel#1174).
fn modeled_memory_grows_with_the_mesh_configuration(sb: &Sandbox) -> Result<(), String> {
    let memory = |mode: scenario::Mode, services: usize| -> Result<f64, String> {
        let mut text = String::from(
            "version: 1\nname: config\nprofile: istio-1.24\nnodes: [{name: node-1}]\nworkloads:\n  - {name: client, nodes: [node-1]}\n",
        );
        let mut svcs = String::from("services:\n");
        for i in 0..services {
            text.push_str(&format!(
                "  - {{name: s{i}, nodes: [node-1], app: {{http: {{port: 8080}}}}}}\n"
            ));
            svcs.push_str(&format!(
                "  - {{name: s{i}, workload: s{i}, ports: [{{port: 8080}}, {{port: 9090, targetPort: 8080}}]}}\n"
            ));
        }
        text.push_str(&svcs);
        let (_, cluster) = up_text(sb, mode, &text)?;
        let kind = match mode {
            scenario::Mode::Sidecar => sim::component::ComponentKind::Sidecar,
            _ => sim::component::ComponentKind::Ztunnel,
        };
        cluster
            .components
            .iter()
            .find(|c| c.kind == kind)
            .map(|c| {
                c.counters
                    .profile_memory_bytes
                    .load(std::sync::atomic::Ordering::Relaxed) as f64
                    / (1024.0 * 1024.0)
            })
            .ok_or(format!("no {kind:?} came up"))
    };
    let check = |mode, want: f64, what: &str| -> Result<(), String> {
        let (small, large) = (memory(mode, 2)?, memory(mode, 12)?);
        if ((large - small) - want).abs() > 0.05 * want {
            return Err(format!(
                "{what} should hold {want:.3} MiB more: {small:.3} -> {large:.3} MiB"
            ));
        }
        Ok(())
    };
    // Ten more services of two ports and one endpoint each: 20 clusters and 20 endpoints.
    check(
        scenario::Mode::Sidecar,
        20.0 * (115_000.0 + 1_500.0) / (1024.0 * 1024.0),
        "a sidecar with 10 more services",
    )?;
    // Ten more workloads and services.
    check(
        scenario::Mode::Ambient,
        10.0 * (2560.0 + 1024.0) / (1024.0 * 1024.0),
        "a ztunnel with 10 more workloads",
    )
}

fn main() {
    let tests: &[SandboxTest] = &[
        (
            "service_reaches_every_replica",
            service_reaches_every_replica,
        ),
        (
            "pods_reach_each_other_across_nodes",
            pods_reach_each_other_across_nodes,
        ),
        ("tcp_echo_through_service", tcp_echo_through_service),
        (
            "hosts_file_names_services_and_pods",
            hosts_file_names_services_and_pods,
        ),
        ("a_hundred_pods_come_up", a_hundred_pods_come_up),
        (
            "workload_certs_expire_while_istiod_is_down_then_renew",
            workload_certs_expire_while_istiod_is_down_then_renew,
        ),
        (
            "modeled_memory_grows_with_the_mesh_configuration",
            modeled_memory_grows_with_the_mesh_configuration,
        ),
        (
            "ztunnel_readiness_waits_for_istiod",
            ztunnel_readiness_waits_for_istiod,
        ),
    ];
    testing::run_sandboxed(tests)
}

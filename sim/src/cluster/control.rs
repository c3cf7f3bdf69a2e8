//! The control socket other meshsim processes find a running cluster by (`exec`): an
//! *abstract* unix socket (`@meshsim/<uid>/<cluster>`) in the host's network namespace. It
//! has no file, and the kernel removes it when the process ends, so a killed `up` leaves
//! nothing behind for the next one to trip over.

use std::io::{self, BufRead, BufReader, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::time::Duration;

use super::{Cluster, ClusterError, ClusterInfo};

const SOCKET_PREFIX: &str = "meshsim/";

impl Cluster {
    /// Registers the cluster under a unique name (the scenario's, or `<name>-2`, …) on the
    /// control socket so `exec` can find it, and answers queries on a thread of its own.
    pub fn publish(&mut self) -> Result<(), ClusterError> {
        let uid = self.sandbox.host_uid;
        let base = self.info.scenario.clone();
        let mut n = 1;
        let listener = loop {
            let name = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            match bind_control(uid, &name) {
                Ok(l) => {
                    self.info.name = name;
                    break l;
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && n < 1000 => n += 1,
                Err(e) => return Err(ClusterError::Control(e)),
            }
        };
        let server = listener.try_clone().map_err(ClusterError::Control)?;
        let info = serde_json::to_string(&self.info).map_err(ClusterError::ControlInfo)?;
        let logs = self.logs.clone();
        let view = View {
            plan: self.mesh.clone(),
            nodes: self.topology.nodes.iter().map(|n| n.name.clone()).collect(),
            pods: self
                .topology
                .pods
                .iter()
                .map(|p| (p.name.clone(), p.ns.clone()))
                .collect(),
            node_netns: self.node_netns(),
            netpol: self.netpol.clone(),
        };
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || serve_control(server, info, logs, view))
            .map_err(ClusterError::Control)?;
        self._control = Some(listener);
        Ok(())
    }
}

fn control_name(uid: u32, cluster: &str) -> String {
    format!("{SOCKET_PREFIX}{uid}/{cluster}")
}

fn bind_control(uid: u32, cluster: &str) -> io::Result<UnixListener> {
    let addr = UnixAddr::from_abstract_name(control_name(uid, cluster).as_bytes())?;
    UnixListener::bind_addr(&addr)
}

/// A `logs` answer: the lines of every proxy whose name starts with the asked prefix (as
/// `kubectl logs -l app=ztunnel` reads every ztunnel), and where to ask from next.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LogsReply {
    /// (component, line), each component's lines in order.
    pub lines: Vec<(String, String)>,
    /// Per component, the sequence number to ask from next (for `--follow`).
    pub next: std::collections::BTreeMap<String, u64>,
    /// Every component that has a log, when none matched.
    pub components: Vec<String>,
}

/// `logs <prefix> <tail> [<component>=<since> ...]`.
fn answer_logs(q: &str, logs: &crate::proxy::access_log::Logs) -> LogsReply {
    let mut parts = q.split_whitespace();
    let prefix = parts.next().unwrap_or_default();
    let tail: usize = parts
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(usize::MAX);
    let since: std::collections::BTreeMap<&str, u64> = parts
        .filter_map(|p| p.split_once('='))
        .filter_map(|(c, n)| Some((c, n.parse().ok()?)))
        .collect();
    let logs = logs.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = LogsReply::default();
    for (name, log) in logs.iter().filter(|(n, _)| n.starts_with(prefix)) {
        let (lines, next) = log.read(since.get(name.as_str()).copied().unwrap_or(0), tail);
        r.lines.extend(lines.into_iter().map(|l| (name.clone(), l)));
        r.next.insert(name.clone(), next);
    }
    if r.next.is_empty() {
        r.components = logs.keys().cloned().collect();
    }
    r
}

/// What the control socket's introspection reads: the mesh plan the proxies run on.
struct View {
    plan: Option<std::sync::Arc<crate::mesh::control::MeshPlan>>,
    nodes: Vec<String>,
    /// Each pod's network namespace, to send `explain`'s request from.
    pods: Vec<(String, crate::netns::NetNsRef)>,
    /// The nodes' namespaces and the NetworkPolicy drop counters in them.
    node_netns: Vec<crate::netns::NetNsRef>,
    netpol: crate::netpol::Enforced,
}

/// `explain <json Ask>`: the prediction and the real outcome.
fn answer_explain(q: &str, view: &View) -> Result<crate::explain::Explanation, String> {
    let ask: crate::explain::Ask = serde_json::from_str(q).map_err(|e| e.to_string())?;
    let Some(plan) = &view.plan else {
        return Err("this cluster runs no mesh (mode no-mesh): no proxy decides anything".into());
    };
    let ns = view
        .pods
        .iter()
        .find(|(n, _)| *n == ask.from)
        .map(|(_, ns)| ns.clone())
        .ok_or_else(|| {
            format!(
                "no pod {:?}; the pods are: {}",
                ask.from,
                view.pods
                    .iter()
                    .map(|p| p.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    crate::explain::explain(plan, &ns, &ask, (&view.node_netns, &view.netpol))
        .map_err(|e| e.to_string())
}

/// The introspection tables: `config <workloads|services|policies|certificates|waypoint-list|
/// waypoint-status> [node]`.
fn answer_config(q: &str, view: &View) -> Result<crate::introspect::Table, String> {
    use crate::introspect as i;
    let mut parts = q.split_whitespace();
    let what = parts.next().unwrap_or_default();
    let node = parts.next();
    if let Some(n) = node
        && !view.nodes.iter().any(|x| x == n)
    {
        return Err(format!(
            "no node {n:?}; the nodes are: {}",
            view.nodes.join(", ")
        ));
    }
    let Some(plan) = &view.plan else {
        return Err("this cluster runs no mesh (mode no-mesh): there is no ztunnel or waypoint configuration".into());
    };
    let nodes = i::Nodes(&view.nodes);
    Ok(match what {
        "workloads" => i::workloads(plan, &nodes, node),
        "services" => i::services(plan),
        "policies" => i::policies(plan),
        "certificates" => i::certificates(plan, &nodes, node),
        "waypoint-list" => i::waypoint_list(plan),
        "waypoint-status" => i::waypoint_status(plan),
        other => return Err(format!("unknown table {other:?}")),
    })
}

fn serve_control(
    listener: UnixListener,
    info: String,
    logs: crate::proxy::access_log::Logs,
    view: View,
) {
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors and the like: wait it out rather than spin.
                tracing::warn!(error = %e, "control socket accept failed; pausing");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_err() {
            continue;
        }
        let line = line.trim();
        if line == "info" {
            let _ = stream.write_all(info.as_bytes());
            let _ = stream.write_all(b"\n");
        } else if let Some(q) = line.strip_prefix("logs ")
            && let Ok(text) = serde_json::to_string(&answer_logs(q, &logs))
        {
            let _ = stream.write_all(text.as_bytes());
            let _ = stream.write_all(b"\n");
        } else if let Some(q) = line.strip_prefix("config ")
            && let Ok(text) = serde_json::to_string(&answer_config(q, &view))
        {
            let _ = stream.write_all(text.as_bytes());
            let _ = stream.write_all(b"\n");
        } else if let Some(q) = line.strip_prefix("explain ")
            && let Ok(text) = serde_json::to_string(&answer_explain(q, &view))
        {
            let _ = stream.write_all(text.as_bytes());
            let _ = stream.write_all(b"\n");
        }
    }
}

/// Names of the clusters this user has up, sorted. Reads the host's abstract unix sockets.
pub fn list_clusters(uid: u32) -> Vec<String> {
    let prefix = format!("@{SOCKET_PREFIX}{uid}/");
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return Vec::new();
    };
    let mut names: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(7))
        .filter_map(|p| p.strip_prefix(&prefix))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Asks a running cluster for its info.
pub fn query(uid: u32, name: &str) -> Result<ClusterInfo, ClusterError> {
    let reach = |source| ClusterError::Reach {
        name: name.to_string(),
        source,
    };
    let addr = UnixAddr::from_abstract_name(control_name(uid, name).as_bytes()).map_err(reach)?;
    let mut stream = UnixStream::connect_addr(&addr).map_err(reach)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(reach)?;
    stream.write_all(b"info\n").map_err(reach)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(reach)?;
    serde_json::from_str(&line).map_err(|e| reach(io::Error::new(io::ErrorKind::InvalidData, e)))
}

/// Asks a running cluster for the access logs of the proxies whose names start with `prefix`:
/// at most the last `tail` lines of each, after the sequence numbers in `since`.
pub fn query_logs(
    uid: u32,
    name: &str,
    prefix: &str,
    tail: usize,
    since: &std::collections::BTreeMap<String, u64>,
) -> Result<LogsReply, ClusterError> {
    let reach = |source| ClusterError::Reach {
        name: name.to_string(),
        source,
    };
    let addr = UnixAddr::from_abstract_name(control_name(uid, name).as_bytes()).map_err(reach)?;
    let mut stream = UnixStream::connect_addr(&addr).map_err(reach)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(reach)?;
    let mut q = format!("logs {prefix} {tail}");
    for (c, n) in since {
        q.push_str(&format!(" {c}={n}"));
    }
    q.push('\n');
    stream.write_all(q.as_bytes()).map_err(reach)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(reach)?;
    serde_json::from_str(&line).map_err(|e| reach(io::Error::new(io::ErrorKind::InvalidData, e)))
}

/// Asks a running cluster for one of its introspection tables (see [`crate::introspect`]).
pub fn query_config(
    uid: u32,
    name: &str,
    what: &str,
    node: Option<&str>,
) -> Result<Result<crate::introspect::Table, String>, ClusterError> {
    let reach = |source| ClusterError::Reach {
        name: name.to_string(),
        source,
    };
    let addr = UnixAddr::from_abstract_name(control_name(uid, name).as_bytes()).map_err(reach)?;
    let mut stream = UnixStream::connect_addr(&addr).map_err(reach)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(reach)?;
    let q = format!("config {what} {}\n", node.unwrap_or_default());
    stream.write_all(q.as_bytes()).map_err(reach)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(reach)?;
    serde_json::from_str(&line).map_err(|e| reach(io::Error::new(io::ErrorKind::InvalidData, e)))
}

/// Asks a running cluster to explain a request (see [`crate::explain`]).
pub fn query_explain(
    uid: u32,
    name: &str,
    ask: &crate::explain::Ask,
) -> Result<Result<crate::explain::Explanation, String>, ClusterError> {
    let reach = |source| ClusterError::Reach {
        name: name.to_string(),
        source,
    };
    let addr = UnixAddr::from_abstract_name(control_name(uid, name).as_bytes()).map_err(reach)?;
    let mut stream = UnixStream::connect_addr(&addr).map_err(reach)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(reach)?;
    let q = serde_json::to_string(ask)
        .map_err(|e| reach(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    stream
        .write_all(format!("explain {q}\n").as_bytes())
        .map_err(reach)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(reach)?;
    serde_json::from_str(&line).map_err(|e| reach(io::Error::new(io::ErrorKind::InvalidData, e)))
}

/// Finds the cluster `exec` should use: the named one, or the only one up.
pub fn find(uid: u32, name: Option<&str>) -> Result<ClusterInfo, ClusterError> {
    let up = list_clusters(uid);
    let name = match name {
        Some(n) if up.iter().any(|u| u == n) => n.to_string(),
        Some(n) => {
            return Err(ClusterError::UnknownCluster {
                name: n.to_string(),
                up,
            });
        }
        None => match up.as_slice() {
            [] => return Err(ClusterError::NoCluster),
            [one] => one.clone(),
            _ => return Err(ClusterError::Ambiguous(up)),
        },
    };
    query(uid, &name)
}

//! Access logs as Istio's proxies write them: ztunnel's "connection complete" lines (its
//! `access` target, on by default; istio/ztunnel `src/proxy/metrics.rs`, README "Logging"), and
//! Envoy's text access log for sidecars and waypoints (Istio's `EnvoyTextLogFormat`,
//! `pilot/pkg/model/telemetry_logging.go`; off unless `meshConfig.accessLogFile` is set, as in
//! Istio's default profile).
//!
//! Each proxy writes its own log: the last lines in memory (what `meshsim logs` reads from a
//! running cluster), and all of them to a file when the cluster has a log directory (a run's).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Lines kept in memory per proxy for `meshsim logs`.
const RING: usize = 5000;

/// One proxy's access log.
pub struct AccessLog {
    inner: Mutex<Inner>,
}

struct Inner {
    ring: VecDeque<String>,
    /// Lines written so far (the sequence number of the next one).
    next: u64,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl AccessLog {
    pub fn new() -> Arc<AccessLog> {
        Arc::new(AccessLog {
            inner: Mutex::new(Inner {
                ring: VecDeque::new(),
                next: 0,
                file: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Also writes every line from now on to `path` (appending).
    pub fn to_file(&self, path: &Path) -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        self.lock().file = Some(std::io::BufWriter::new(f));
        Ok(())
    }

    pub fn write(&self, line: String) {
        let mut i = self.lock();
        if let Some(f) = &mut i.file {
            // A full disk loses log lines, never traffic.
            let _ = writeln!(f, "{line}");
        }
        if i.ring.len() == RING {
            i.ring.pop_front();
        }
        i.ring.push_back(line);
        i.next += 1;
    }

    pub fn flush(&self) {
        if let Some(f) = &mut self.lock().file {
            let _ = f.flush();
        }
    }

    /// Lines with sequence number ≥ `since` still in memory (at most the last `tail`), and the
    /// sequence number to ask from next.
    pub fn read(&self, since: u64, tail: usize) -> (Vec<String>, u64) {
        let i = self.lock();
        let first = i.next - i.ring.len() as u64;
        let skip = since.saturating_sub(first) as usize;
        let lines: Vec<String> = i.ring.iter().skip(skip).cloned().collect();
        let keep = lines.len().saturating_sub(tail);
        (lines[keep..].to_vec(), i.next)
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Every proxy's log by component name, shared with the control socket's thread.
pub type Logs = Arc<Mutex<BTreeMap<String, Arc<AccessLog>>>>;

/// `2024-04-11T15:38:42.182974Z`, as ztunnel's and Envoy's timestamps read.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// Envoy's `%DURATION%`-style milliseconds; ztunnel writes `"13ms"`.
fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// One side of a ztunnel connection.
pub struct ZtEnd<'a> {
    pub addr: SocketAddr,
    pub workload: Option<&'a str>,
    pub namespace: Option<&'a str>,
    /// SPIFFE identity (only when the connection was mTLS, as ztunnel logs it).
    pub identity: Option<String>,
}

/// A ztunnel connection, for its "connection complete" line.
pub struct ZtConnection<'a> {
    pub src: ZtEnd<'a>,
    pub dst: ZtEnd<'a>,
    /// The inner HBONE target (`:authority`) when tunnelled.
    pub hbone_addr: Option<SocketAddr>,
    pub service: Option<String>,
    /// `outbound` (reporter source) or `inbound`.
    pub direction: &'static str,
    pub bytes_sent: u64,
    pub bytes_recv: u64,
    pub duration: Duration,
    /// Set when the connection failed: logged at ERROR with `error=`.
    pub error: Option<String>,
}

/// ztunnel's access line: `<ts>  INFO access: connection complete src.addr=… … duration="13ms"`.
pub fn ztunnel_line(c: &ZtConnection<'_>, at: SystemTime) -> String {
    // tracing's layout: the level right-aligned in five columns.
    let mut s = format!(
        "{} {:>5} access: connection complete",
        timestamp(at),
        if c.error.is_some() { "ERROR" } else { "INFO" }
    );
    let mut field = |k: &str, v: Option<String>, quoted: bool| {
        if let Some(v) = v {
            if quoted {
                let _ = write!(s, " {k}=\"{v}\"");
            } else {
                let _ = write!(s, " {k}={v}");
            }
        }
    };
    field("src.addr", Some(c.src.addr.to_string()), false);
    field("src.workload", c.src.workload.map(str::to_string), true);
    field("src.namespace", c.src.namespace.map(str::to_string), true);
    field("src.identity", c.src.identity.clone(), true);
    field("dst.addr", Some(c.dst.addr.to_string()), false);
    field("dst.hbone_addr", c.hbone_addr.map(|a| a.to_string()), false);
    field("dst.service", c.service.clone(), true);
    field("dst.workload", c.dst.workload.map(str::to_string), true);
    field("dst.namespace", c.dst.namespace.map(str::to_string), true);
    field("dst.identity", c.dst.identity.clone(), true);
    field("direction", Some(c.direction.to_string()), true);
    field("bytes_sent", Some(c.bytes_sent.to_string()), false);
    field("bytes_recv", Some(c.bytes_recv.to_string()), false);
    field("duration", Some(format!("{}ms", ms(c.duration))), true);
    field("error", c.error.clone(), true);
    s
}

/// Why a proxy answered a request itself: Envoy's `%RESPONSE_FLAGS%` and
/// `%RESPONSE_CODE_DETAILS%`. Carried on the response (an extension) to the access log.
#[derive(Debug, Clone)]
pub struct LocalReply {
    pub flags: &'static str,
    pub details: String,
}

/// One HTTP request through a sidecar or waypoint, for Envoy's text format.
pub struct EnvoyRequest<'a> {
    pub start: SystemTime,
    pub method: &'a str,
    pub path: &'a str,
    pub authority: &'a str,
    pub status: u16,
    /// From the response's [`LocalReply`]; `-` and `via_upstream` for an upstream's answer.
    pub flags: &'a str,
    pub details: &'a str,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration: Duration,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub upstream_host: Option<SocketAddr>,
    /// Envoy's cluster name, e.g. `outbound|8080||echo.default.svc.cluster.local`.
    pub upstream_cluster: String,
    pub downstream_local: Option<SocketAddr>,
    pub downstream_remote: Option<SocketAddr>,
}

/// Istio's `EnvoyTextLogFormat` line for one request (fields Envoy would know and meshsim does
/// not model print as `-`, as Envoy prints an absent value).
pub fn envoy_line(r: &EnvoyRequest<'_>) -> String {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    format!(
        "[{}] \"{} {} HTTP/1.1\" {} {} {} - \"-\" {} {} {} - \"-\" \"{}\" \"{}\" \"{}\" \"{}\" {} - {} {} - default",
        humantime::format_rfc3339_millis(r.start),
        r.method,
        r.path,
        r.status,
        r.flags,
        r.details,
        r.bytes_received,
        r.bytes_sent,
        ms(r.duration),
        dash(r.user_agent.map(str::to_string)),
        dash(r.request_id.map(str::to_string)),
        r.authority,
        dash(r.upstream_host.map(|a| a.to_string())),
        r.upstream_cluster,
        dash(r.downstream_local.map(|a| a.to_string())),
        dash(r.downstream_remote.map(|a| a.to_string())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ztunnel_line_has_the_fields_of_the_real_one_in_its_order() {
        // istio/ztunnel README "Logging": src.addr src.workload src.namespace src.identity
        // dst.addr dst.hbone_addr dst.service … direction bytes_sent bytes_recv duration.
        let c = ZtConnection {
            src: ZtEnd {
                addr: "10.1.0.2:46238".parse().expect("addr"),
                workload: Some("client-0"),
                namespace: Some("default"),
                identity: Some("spiffe://cluster.local/ns/default/sa/client".into()),
            },
            dst: ZtEnd {
                addr: "10.2.0.2:15008".parse().expect("addr"),
                workload: Some("echo-0"),
                namespace: Some("default"),
                identity: None,
            },
            hbone_addr: Some("10.2.0.2:8080".parse().expect("addr")),
            service: Some("echo.default.svc.cluster.local".into()),
            direction: "outbound",
            bytes_sent: 67,
            bytes_recv: 490,
            duration: Duration::from_millis(13),
            error: None,
        };
        let l = ztunnel_line(&c, SystemTime::UNIX_EPOCH);
        assert_eq!(
            l,
            "1970-01-01T00:00:00.000000Z  INFO access: connection complete src.addr=10.1.0.2:46238 src.workload=\"client-0\" src.namespace=\"default\" src.identity=\"spiffe://cluster.local/ns/default/sa/client\" dst.addr=10.2.0.2:15008 dst.hbone_addr=10.2.0.2:8080 dst.service=\"echo.default.svc.cluster.local\" dst.workload=\"echo-0\" dst.namespace=\"default\" direction=\"outbound\" bytes_sent=67 bytes_recv=490 duration=\"13ms\""
        );
    }

    #[test]
    fn the_ring_keeps_the_last_lines_and_reads_from_a_sequence_number() {
        let log = AccessLog::new();
        for i in 0..(RING + 10) {
            log.write(format!("line {i}"));
        }
        let (tail, next) = log.read(0, 3);
        assert_eq!(tail, ["line 5007", "line 5008", "line 5009"]);
        assert_eq!(next, (RING + 10) as u64);
        let (new, _) = log.read(next, usize::MAX);
        assert!(new.is_empty());
        log.write("more".into());
        assert_eq!(log.read(next, usize::MAX).0, ["more"]);
    }
}

//! What to run: the target, the protocol, the engine mode and its sizes and times.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::LoadError;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Opens the TCP connections of a run, e.g. to set a socket mark or bind a source address.
/// Without one, connections are plain `TcpStream::connect` from the calling runtime's threads
/// (and so in their network namespace).
pub type Connector =
    Arc<dyn Fn(SocketAddr) -> BoxFuture<'static, io::Result<tokio::net::TcpStream>> + Send + Sync>;

/// Called once a second during a run, from the run's runtime: keep it short.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What a caller hooks into a run; all optional ([`Hooks::default`] is a plain run).
#[derive(Clone, Default)]
pub struct Hooks {
    pub connector: Option<Connector>,
    pub progress: Option<ProgressFn>,
    /// When cancelled, the step in flight ends at once and is dropped (its window would be
    /// short); the steps already finished are returned, with [`crate::LoadResult::cancelled`] set.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
    /// Bumped once per completed request, warmups included, so a meter can sample the
    /// client's own count of the work it did alongside its CPU.
    pub completed: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Called as each step begins (its index, from 0): a caller that changes the target at
    /// step boundaries (a migration stage) does it then.
    pub step_started: Option<Arc<dyn Fn(usize) + Send + Sync>>,
    /// Called after each step once the spec's rates are run: the rate of one more step, or
    /// `None` to stop (a search for the highest rate that meets a criterion).
    pub next_rate: Option<NextRateFn>,
}

/// See [`Hooks::next_rate`].
pub type NextRateFn = Arc<dyn Fn(&crate::StepResult) -> Option<f64> + Send + Sync>;

/// A live view of the run, for a progress line.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Since the start of the current step (warmup included).
    pub elapsed: Duration,
    /// Index of the current step, from 0.
    pub step: usize,
    pub steps: usize,
    pub target_rps: Option<f64>,
    pub in_warmup: bool,
    /// Responses (or stream bytes written, for tcp-stream) in the last second.
    pub achieved_rps: f64,
    pub bytes_per_s: f64,
    /// Errors in the current step so far, warmup included.
    pub errors: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Http {
        host: String,
        port: u16,
        /// Path and query, starting with `/`.
        path: String,
        /// `Host` header; the URL's `host:port` when absent.
        host_header: Option<String>,
    },
    Tcp {
        host: String,
        port: u16,
    },
}

impl Target {
    /// Reads `http://host:port/path` or `tcp://host:port` (the port of http defaults to 80).
    pub fn parse(url: &str) -> Result<Target, LoadError> {
        let bad = |reason: &str| LoadError::BadTarget {
            target: url.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("it has no scheme"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], &rest[i..]),
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("user names in the URL are not supported"));
        }
        let (host, port) = split_host_port(authority).map_err(|r| bad(&r))?;
        match scheme.to_ascii_lowercase().as_str() {
            "http" => {
                let path = if path.is_empty() {
                    "/".to_string()
                } else if path.starts_with('?') {
                    format!("/{path}")
                } else {
                    path.to_string()
                };
                if path.contains('#') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    return Err(bad("the path has spaces, control characters or a fragment"));
                }
                Ok(Target::Http {
                    host,
                    port: port.unwrap_or(80),
                    path,
                    host_header: None,
                })
            }
            "tcp" => {
                if !path.is_empty() && path != "/" {
                    return Err(bad("a tcp target has no path"));
                }
                let port = port.ok_or_else(|| bad("a tcp target needs a port"))?;
                Ok(Target::Tcp { host, port })
            }
            "https" => Err(bad("https is not supported; use http:// or tcp://")),
            other => Err(bad(&format!("unknown scheme {other:?}"))),
        }
    }

    pub fn host(&self) -> &str {
        match self {
            Target::Http { host, .. } | Target::Tcp { host, .. } => host,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Target::Http { port, .. } | Target::Tcp { port, .. } => *port,
        }
    }

    /// The protocol a target's scheme implies.
    pub fn default_protocol(&self) -> Protocol {
        match self {
            Target::Http { .. } => Protocol::Http1,
            Target::Tcp { .. } => Protocol::TcpRr,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = |h: &str| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.to_string()
            }
        };
        match self {
            Target::Http {
                host: h,
                port,
                path,
                ..
            } => write!(f, "http://{}:{port}{path}", host(h)),
            Target::Tcp { host: h, port } => write!(f, "tcp://{}:{port}", host(h)),
        }
    }
}

fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs a closing ]")?;
        match after {
            "" => (h, None),
            p => (
                h,
                Some(p.strip_prefix(':').ok_or("junk after the IPv6 address")?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err("an IPv6 address must be in brackets, as [::1]:8080".into()),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("it has no host".into());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("port {p:?} is not a number from 1 to 65535")),
            Ok(n) => Some(n),
        },
    };
    Ok((host.to_string(), port))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// HTTP/1.1, keep-alive: each connection carries one request at a time.
    Http1,
    /// HTTP/1.1, a new connection per request (`Connection: close`).
    Http1Churn,
    /// TCP request/response: write `request_bytes`, read exactly `response_bytes` (netperf TCP_RR).
    TcpRr,
    /// TCP bulk stream: write for the whole duration; throughput only.
    TcpStream,
}

impl Protocol {
    pub fn parse(s: &str) -> Result<Protocol, LoadError> {
        match s {
            "http1" => Ok(Protocol::Http1),
            "http1-churn" => Ok(Protocol::Http1Churn),
            "tcp-rr" => Ok(Protocol::TcpRr),
            "tcp-stream" => Ok(Protocol::TcpStream),
            other => Err(LoadError::BadSpec(format!(
                "unknown protocol {other:?}; use http1, http1-churn, tcp-rr or tcp-stream"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http1Churn => "http1-churn",
            Protocol::TcpRr => "tcp-rr",
            Protocol::TcpStream => "tcp-stream",
        }
    }

    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http1 | Protocol::Http1Churn)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Fixed request rates (requests per second), one step each, run in order.
    Open { rates: Vec<f64> },
    /// Every connection sends back to back: saturation throughput.
    Closed,
}

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub target: Target,
    pub protocol: Protocol,
    pub mode: Mode,
    pub connections: usize,
    /// Measured time of each step (after its warmup).
    pub duration: Duration,
    /// Run before each step's measured time; its requests are not in the results.
    pub warmup: Duration,
    /// HTTP: request body size (a POST when > 0). tcp-rr: request size. tcp-stream: write size.
    pub request_bytes: usize,
    /// HTTP: asked of the server in `x-echo-bytes` (meshsim's echo answers that many bytes).
    /// tcp-rr: bytes to read per request (default: `request_bytes`, as an echo answers).
    pub response_bytes: Option<usize>,
    /// Per request, from its actual send (connect included when it opens a connection).
    pub timeout: Duration,
    /// Extra HTTP request headers.
    pub headers: Vec<(String, String)>,
    /// HTTP method; `None`: POST when there is a request body, else GET.
    pub method: Option<String>,
    /// Count each step's warmup too ([`crate::StepResult::warmup`]): what happened while a
    /// change at the step's start settled.
    pub record_warmup: bool,
    /// Open loop: windows of each step at another rate (sorted by `at`, not overlapping).
    pub surges: Vec<crate::Surge>,
}

impl LoadSpec {
    /// A spec with the defaults of `meshsim load`: 4 connections, 10 s, 2 s warmup, 10 s timeout.
    pub fn new(target: Target, mode: Mode) -> LoadSpec {
        LoadSpec {
            protocol: target.default_protocol(),
            target,
            mode,
            connections: 4,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            request_bytes: 0,
            response_bytes: None,
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            method: None,
            record_warmup: false,
            surges: Vec::new(),
        }
    }

    /// Bytes a tcp-rr request expects back.
    pub(crate) fn rr_response_bytes(&self) -> usize {
        self.response_bytes.unwrap_or(self.request_bytes.max(1))
    }

    /// Checks everything a user can get wrong, before anything starts.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: String| Err(LoadError::BadSpec(m));
        match (&self.target, self.protocol) {
            (Target::Http { .. }, Protocol::Http1 | Protocol::Http1Churn) => {}
            (Target::Tcp { .. }, Protocol::TcpRr | Protocol::TcpStream) => {}
            (t, p) => {
                return bad(format!(
                    "protocol {} does not fit target {t}; http1 and http1-churn need http://, \
                     tcp-rr and tcp-stream need tcp://",
                    p.as_str()
                ));
            }
        }
        if self.connections == 0 {
            return bad("connections must be at least 1".into());
        }
        if self.connections > 100_000 {
            return bad(format!(
                "{} connections is more than this load generator supports (100000)",
                self.connections
            ));
        }
        if self.duration.is_zero() {
            return bad("duration must be more than 0".into());
        }
        if self.timeout.is_zero() {
            return bad("timeout must be more than 0".into());
        }
        if let Mode::Open { rates } = &self.mode {
            if rates.is_empty() {
                return bad("open loop needs at least one rate".into());
            }
            if let Some(r) = rates.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
                return bad(format!(
                    "rate {r} is not a positive number of requests per second"
                ));
            }
            if self.protocol == Protocol::TcpStream {
                return bad(
                    "tcp-stream has no request rate: run it closed (without a rate)".into(),
                );
            }
        } else if !self.surges.is_empty() {
            return bad("a surge changes a rate: it needs an open loop (a rate)".into());
        }
        let mut end = Duration::ZERO;
        for s in &self.surges {
            if !(s.rate.is_finite() && s.rate > 0.0) {
                return bad(format!(
                    "surge rate {} is not a positive number of requests per second",
                    s.rate
                ));
            }
            if s.at < end {
                return bad(
                    "surges overlap or are out of order: give them one after another".into(),
                );
            }
            end = s.at + s.duration;
        }
        if self.protocol == Protocol::TcpRr && self.request_bytes == 0 {
            return bad("tcp-rr needs request bytes of at least 1".into());
        }
        if self.protocol == Protocol::TcpStream && self.request_bytes == 0 {
            return bad("tcp-stream needs a write size (request bytes) of at least 1".into());
        }
        if let Some(m) = &self.method
            && (m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return bad(format!(
                "method {m:?} is not an HTTP method; write it in capitals, e.g. GET or POST"
            ));
        }
        for (k, v) in &self.headers {
            let token = !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token || v.bytes().any(|b| b == b'\r' || b == b'\n') {
                return bad(format!("header {k:?}: {v:?} is not a valid HTTP header"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            Target::parse("http://127.0.0.1:8080/a?b=1").ok(),
            Some(Target::Http {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/a?b=1".into(),
                host_header: None
            })
        );
        assert_eq!(
            Target::parse("http://echo").ok(),
            Some(Target::Http {
                host: "echo".into(),
                port: 80,
                path: "/".into(),
                host_header: None
            })
        );
        assert_eq!(
            Target::parse("tcp://[::1]:9").ok(),
            Some(Target::Tcp {
                host: "::1".into(),
                port: 9
            })
        );
        for bad in [
            "127.0.0.1:80",
            "tcp://host",
            "http://:80/",
            "http://h:99999/",
            "https://h/",
            "ftp://h:1",
            "http://::1:80/",
            "http://h/a b",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} should not parse");
        }
        let t = Target::parse("tcp://[::1]:9").ok();
        assert_eq!(t.map(|t| t.to_string()).as_deref(), Some("tcp://[::1]:9"));
    }

    #[test]
    fn validates() {
        let t = Target::parse("http://a:1/").ok();
        let Some(t) = t else { panic!() };
        let mut s = LoadSpec::new(t, Mode::Open { rates: vec![10.0] });
        assert!(s.validate().is_ok());
        s.protocol = Protocol::TcpRr;
        assert!(s.validate().is_err());
        s.protocol = Protocol::Http1;
        s.mode = Mode::Open {
            rates: vec![f64::NAN],
        };
        assert!(s.validate().is_err());
        s.mode = Mode::Closed;
        s.headers.push(("x".into(), "a\r\nb".into()));
        assert!(s.validate().is_err());
    }
}

//! The monitoring check: the user's alert rules and dashboard queries evaluated by a real
//! Prometheus (Debian's `prometheus` binary) scraping a cluster's merged metrics, one fresh
//! Prometheus per migration stage so no stage's series leak into the next. What it finds:
//! queries and selectors that have data at one stage and none at the next (a dashboard that
//! goes blank, an alert that can no longer fire), and selectors that match nothing at any
//! stage, with the label values the proxies really emit.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use results::run::{MonitorQueryResult, MonitoringResult, QueryAt};
use scenario::monitoring::Query;

/// Scrape interval: short, so a stage's few seconds of probes give every counter samples.
const SCRAPE: Duration = Duration::from_secs(1);
/// How long Prometheus may take to become ready or to scrape once more.
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(
        "the `prometheus` program is not installed, so the monitoring check is skipped; install \
         Debian's `prometheus` package (`apt-get install prometheus`) to run it"
    )]
    Missing,
    #[error("cannot start prometheus: {0}")]
    Start(String),
    #[error("prometheus did not {what} within {}s; its log:\n{log}", WAIT.as_secs())]
    Timeout { what: &'static str, log: String },
    #[error("asking prometheus {what}: {message}")]
    Api { what: String, message: String },
}

/// The `prometheus` binary and its version, or why the check cannot run.
pub fn find() -> Result<(PathBuf, String), MonitorError> {
    let out = Command::new("prometheus")
        .arg("--version")
        .output()
        .map_err(|_| MonitorError::Missing)?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let version = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or("unknown")
        .to_string();
    Ok((PathBuf::from("prometheus"), version))
}

/// A Prometheus of our own, on a free loopback port with a scratch database; killed and its
/// database removed when dropped.
pub struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    rt: tokio::runtime::Runtime,
}

/// One series of an instant query's result: its labels and value.
pub type Series = (BTreeMap<String, String>, f64);

impl Prometheus {
    /// Starts one scraping `target` (the merged metrics port) every second, and waits until
    /// it is ready.
    pub fn start(bin: &Path, target: SocketAddr) -> Result<Prometheus, MonitorError> {
        let start = |e: std::io::Error| MonitorError::Start(e.to_string());
        let dir = std::env::temp_dir().join(format!(
            "meshsim-prometheus-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).map_err(start)?;
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: {s}s\n  scrape_timeout: {s}s\n  evaluation_interval: {s}s\n\
                 scrape_configs:\n- job_name: meshsim\n  metrics_path: /stats/prometheus\n  \
                 static_configs:\n  - targets: ['{target}']\n",
                s = SCRAPE.as_secs()
            ),
        )
        .map_err(start)?;
        // A free port: bound, read and released; Prometheus binds it a moment later.
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(start)?
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log = std::fs::File::create(dir.join("prometheus.log")).map_err(start)?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(start)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(start)?;
        let p = Prometheus {
            child,
            addr,
            dir,
            rt,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if matches!(p.get("/-/ready"), Ok((200, _))) {
                return Ok(p);
            }
            if Instant::now() > deadline {
                return Err(p.timeout("become ready"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn timeout(&self, what: &'static str) -> MonitorError {
        let log = std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        MonitorError::Timeout {
            what,
            log: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }
    }

    /// Waits until a scrape that started after this call has been stored: everything the
    /// proxies counted before it is then in the database.
    pub fn wait_for_scrape(&self) -> Result<(), MonitorError> {
        let mark = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let deadline = Instant::now() + WAIT;
        loop {
            // `timestamp(up)` is the start of the target's latest scrape.
            if let Ok(v) = self.query("timestamp(up{job=\"meshsim\"})")
                && v.iter().any(|(_, t)| *t > mark)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.timeout("scrape the cluster's metrics"));
            }
            std::thread::sleep(SCRAPE / 4);
        }
    }

    /// An instant query: each series' labels and value (a scalar result is one series
    /// without labels).
    pub fn query(&self, expr: &str) -> Result<Vec<Series>, MonitorError> {
        let api = |message: String| MonitorError::Api {
            what: expr.to_string(),
            message,
        };
        let (status, body) = self.get(&format!("/api/v1/query?query={}", encode(expr)))?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| api(format!("HTTP {status}: {e}")))?;
        if v["status"] != "success" {
            return Err(api(v["error"].as_str().unwrap_or("failed").to_string()));
        }
        let data = &v["data"];
        let value = |x: &serde_json::Value| {
            x[1].as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        Ok(match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let labels = s["metric"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect();
                    (labels, value(&s["value"]))
                })
                .collect(),
            Some("scalar") => vec![(BTreeMap::new(), value(&data["result"]))],
            other => return Err(api(format!("unexpected result type {other:?}"))),
        })
    }

    fn get(&self, path: &str) -> Result<(u16, Bytes), MonitorError> {
        let api = |message: String| MonitorError::Api {
            what: path.to_string(),
            message,
        };
        let addr = self.addr;
        let path = path.to_string();
        self.rt
            .block_on(async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let (mut send, conn) =
                    hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
                        .await
                        .map_err(std::io::Error::other)?;
                tokio::spawn(conn);
                let req = http::Request::get(path)
                    .header("host", addr.to_string())
                    .body(Empty::new())
                    .map_err(std::io::Error::other)?;
                let resp = tokio::time::timeout(WAIT, send.send_request(req))
                    .await
                    .map_err(std::io::Error::other)?
                    .map_err(std::io::Error::other)?;
                let status = resp.status().as_u16();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(std::io::Error::other)?
                    .to_bytes();
                Ok::<_, std::io::Error>((status, body))
            })
            .map_err(|e| api(e.to_string()))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encodes a query parameter (everything but RFC 3986's unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What one stage's Prometheus said about every query.
#[derive(Debug, Clone, Default)]
pub struct StageEval {
    pub at: Vec<QueryAt>,
    /// Series per selector text.
    pub selector_series: BTreeMap<String, usize>,
    /// Per selector text, series of its input: the selector without its matchers on
    /// [`OUTCOME_LABELS`].
    pub input_series: BTreeMap<String, usize>,
    /// For a selector with no series: what the metric does have.
    pub hints: BTreeMap<String, Hint>,
}

/// What a metric had while a selector on it matched nothing.
#[derive(Debug, Clone, Default)]
pub struct Hint {
    /// Series of the metric under any labels.
    pub metric_series: usize,
    /// Per label the selector matches on, the values the metric has with that one matcher
    /// left out.
    pub values: BTreeMap<String, BTreeSet<String>>,
}

/// The labels whose values Istio fixes, and every value it emits for them. A selector that
/// no value admits can never match on any mesh: a typo or a folk value (`reporter="ztunnel"`)
/// rather than a quiet moment. Other labels (response codes, namespaces) are the traffic's
/// own, and a selector on them matching nothing is the healthy state of an error alert.
///
/// - `reporter`: Envoy's stats filter reports `source` or `destination`
///   (https://istio.io/latest/docs/reference/config/metrics/#labels), a waypoint `waypoint`
///   (istio/istio#51313), ztunnel `source` or `destination` (istio/ztunnel
///   src/proxy/metrics.rs, `enum Reporter`).
/// - `connection_security_policy`: `mutual_tls`, `none` or `unknown` (the same istio.io page;
///   ztunnel's `enum SecurityPolicy { unknown, mutual_tls }`).
/// - `request_protocol`: `http`, `grpc` or `tcp` (istio.io; ztunnel's `enum RequestProtocol`).
pub const ISTIO_LABEL_VALUES: &[(&str, &[&str])] = &[
    ("reporter", &["source", "destination", "waypoint"]),
    (
        "connection_security_policy",
        &["mutual_tls", "none", "unknown"],
    ),
    ("request_protocol", &["http", "grpc", "tcp"]),
];

/// Labels that say how a request or connection ended, not who sent it where. A selector on
/// them (`response_code=~"5.."`) finding nothing is a healthy moment, not lost telemetry, so
/// whether a selector's input goes silent is judged with them left out.
pub const OUTCOME_LABELS: &[&str] = &[
    "response_code",
    "response_flags",
    "grpc_response_status",
    "connection_security_policy",
];

/// Evaluates every query, and every selector in it, at this moment.
pub fn evaluate(p: &Prometheus, queries: &[Query]) -> StageEval {
    let mut e = StageEval::default();
    for q in queries {
        e.at.push(match p.query(&q.expr) {
            Ok(series) => QueryAt {
                series: series.len(),
                value: series.first().map(|(_, v)| *v),
                sample: series.first().map(|(labels, v)| sample(labels, *v)),
                error: None,
            },
            Err(err) => QueryAt {
                series: 0,
                value: None,
                sample: None,
                error: Some(err.to_string()),
            },
        });
        for s in &q.selectors {
            if e.selector_series.contains_key(&s.text) {
                continue;
            }
            let count = |expr: &str| p.query(expr).unwrap_or_default();
            let series = |sel: &str| {
                count(&format!("count({sel})"))
                    .first()
                    .map_or(0, |(_, n)| *n as usize)
            };
            let n = series(&s.text);
            e.selector_series.insert(s.text.clone(), n);
            e.input_series
                .insert(s.text.clone(), series(&s.without(OUTCOME_LABELS)));
            let Some(metric) = s.metric.as_deref().filter(|_| n == 0) else {
                continue;
            };
            let mut hint = Hint {
                metric_series: series(&format!("{{__name__={metric:?}}}")),
                values: BTreeMap::new(),
            };
            for m in s.matchers.iter().filter(|_| hint.metric_series > 0) {
                let values: BTreeSet<String> = count(&format!(
                    "count by ({}) ({})",
                    m.label,
                    s.without(&[&m.label])
                ))
                .into_iter()
                .filter_map(|(l, _)| l.get(&m.label).cloned())
                .collect();
                hint.values.insert(m.label.clone(), values);
            }
            e.hints.insert(s.text.clone(), hint);
        }
    }
    e
}

/// `{a="x", b="y"} 1.23`: one series, shortened for a table cell.
fn sample(labels: &BTreeMap<String, String>, v: f64) -> String {
    let l: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .take(3)
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    let more = if labels.len() > 3 { ", …" } else { "" };
    let value = if v.is_finite() && v.fract() != 0.0 {
        format!("{v:.3}")
    } else {
        format!("{v}")
    };
    if l.is_empty() {
        value
    } else {
        format!("{{{}{more}}} {value}", l.join(", "))
    }
}

/// The monitoring table: every query at every stage, and what to fix.
pub fn result(
    version: String,
    stages: Vec<String>,
    queries: &[Query],
    evals: &[StageEval],
) -> MonitoringResult {
    let mut out = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let at: Vec<QueryAt> = evals
            .iter()
            .map(|e| e.at.get(i).cloned().unwrap_or_default())
            .collect();
        let kind = q.name.split(' ').next().unwrap_or_default();
        let mut flags = Vec::new();
        for s in &q.selectors {
            let input = s.without(OUTCOME_LABELS);
            let n: Vec<usize> = evals
                .iter()
                .map(|e| e.input_series.get(&s.text).copied().unwrap_or(0))
                .collect();
            if let Some(k) = (1..n.len()).find(|&k| n[k - 1] > 0 && n[k] == 0) {
                let lost = format!(
                    "`{input}` has no series from {} on ({} at {})",
                    stages[k],
                    n[k - 1],
                    stages[k - 1]
                );
                let flag = match kind {
                    "alert" => format!("can no longer fire from {} on: {lost}", stages[k]),
                    _ if at[k - 1].series > 0 && at[k].series == 0 => format!(
                        "goes silent at {} ({} series at {}, none after): {lost}",
                        stages[k],
                        at[k - 1].series,
                        stages[k - 1]
                    ),
                    _ => format!("loses part of its input: {lost}"),
                };
                // Two selectors (a ratio's numerator and denominator) often share an input.
                if !flags.contains(&flag) {
                    flags.push(flag);
                }
            }
            if evals
                .iter()
                .all(|e| e.selector_series.get(&s.text).copied().unwrap_or(0) == 0)
            {
                flags.extend(nothing_matches(s, evals));
            }
        }
        out.push(MonitorQueryResult {
            file: q.file.clone(),
            line: q.line,
            name: q.name.clone(),
            expr: q.expr.clone(),
            note: q.note.clone(),
            at,
            flags,
        });
    }
    MonitoringResult {
        skipped: None,
        prometheus: Some(version),
        stages,
        queries: out,
    }
}

/// Why a selector matched nothing at any stage, when the reason is the selector's and not the
/// traffic's: the metric never appeared, or a matcher admits no value Istio emits.
fn nothing_matches(s: &scenario::monitoring::Selector, evals: &[StageEval]) -> Option<String> {
    let metric = s.metric.as_deref()?;
    let hints: Vec<&Hint> = evals.iter().filter_map(|e| e.hints.get(&s.text)).collect();
    if hints.is_empty() {
        return None;
    }
    if hints.iter().all(|h| h.metric_series == 0) {
        return Some(format!(
            "`{}` matches nothing at any stage: no component here emitted {metric} at any \
             stage (the proxies emit Istio's standard metrics, \
             https://istio.io/latest/docs/reference/config/metrics/)",
            s.text
        ));
    }
    let wrong: Vec<String> = s
        .matchers
        .iter()
        .filter_map(|m| {
            let (_, vocabulary) = ISTIO_LABEL_VALUES.iter().find(|(l, _)| *l == m.label)?;
            if vocabulary.iter().any(|v| m.admits(v)) {
                return None;
            }
            let seen: BTreeSet<&String> = hints
                .iter()
                .filter_map(|h| h.values.get(&m.label))
                .flatten()
                .collect();
            let list = |v: Vec<String>| v.join(", ");
            Some(format!(
                "{}{}{:?} — Istio emits {} only as {{{}}}; here {metric} had {{{}}}",
                m.label,
                m.op,
                m.value,
                m.label,
                list(vocabulary.iter().map(|v| format!("{v:?}")).collect()),
                list(seen.iter().map(|v| format!("{v:?}")).collect()),
            ))
        })
        .collect();
    (!wrong.is_empty()).then(|| {
        format!(
            "`{}` matches nothing at any stage: {}",
            s.text,
            wrong.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(expr: &str) -> Query {
        let (mut qs, p) = scenario::monitoring::read_rules(
            Path::new("r.yaml"),
            "r.yaml",
            &format!("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: '{expr}'\n"),
        );
        assert!(p.is_empty(), "{p:?}");
        qs.remove(0)
    }

    fn eval(series: usize, sel: &[(&str, usize)]) -> StageEval {
        let counts: BTreeMap<String, usize> =
            sel.iter().map(|(s, n)| (s.to_string(), *n)).collect();
        StageEval {
            at: vec![QueryAt {
                series,
                value: None,
                sample: None,
                error: None,
            }],
            selector_series: counts.clone(),
            input_series: counts,
            hints: BTreeMap::new(),
        }
    }

    #[test]
    fn a_query_with_data_before_and_none_after_is_flagged_silent() {
        let query = q("sum(rate(istio_requests_total{reporter=\"destination\"}[1m]))");
        let sel = "istio_requests_total{reporter=\"destination\"}";
        let r = result(
            "2.42.0".into(),
            vec!["before".into(), "ambient".into()],
            std::slice::from_ref(&query),
            &[eval(1, &[(sel, 4)]), eval(0, &[(sel, 0)])],
        );
        // An alert rule: not firing is normal; its input vanishing is what breaks it.
        assert_eq!(
            r.queries[0].flags,
            vec![
                "can no longer fire from ambient on: `istio_requests_total{reporter=\"destination\"}` \
                 has no series from ambient on (4 at before)"
            ]
        );
        // A recording rule or a panel goes blank.
        let mut record = query.clone();
        record.name = "record svc:rate1m (group g)".into();
        let r = result(
            "2.42.0".into(),
            vec!["before".into(), "ambient".into()],
            &[record],
            &[eval(1, &[(sel, 4)]), eval(0, &[(sel, 0)])],
        );
        assert!(
            r.queries[0].flags[0]
                .starts_with("goes silent at ambient (1 series at before, none after): `"),
            "{:?}",
            r.queries[0].flags
        );
    }

    #[test]
    fn an_error_alert_resolving_is_not_lost_telemetry() {
        // 5xx at one stage and none at the next: the alert resolved, its input is still there.
        let query = q(
            "sum(rate(istio_requests_total{reporter=\"waypoint\",response_code=~\"5..\"}[1m])) > 0",
        );
        let sel = query.selectors[0].text.clone();
        let mut before = eval(1, &[(&sel, 2)]);
        let mut after = eval(0, &[(&sel, 0)]);
        before.input_series.insert(sel.clone(), 9);
        after.input_series.insert(sel.clone(), 9);
        let r = result(
            "v".into(),
            vec!["ambient".into(), "fix".into()],
            &[query],
            &[before, after],
        );
        assert!(r.queries[0].flags.is_empty(), "{:?}", r.queries[0].flags);
    }

    #[test]
    fn a_selector_matching_nothing_names_the_values_istio_emits() {
        // ztunnel reports `reporter` as `source` or `destination`, never `ztunnel`:
        // istio/ztunnel src/proxy/metrics.rs (`enum Reporter { source, destination }`) and
        // https://istio.io/latest/docs/reference/config/metrics/ (the `reporter` label).
        let query = q("sum(rate(istio_tcp_connections_opened_total{reporter=\"ztunnel\"}[1m]))");
        let sel = "istio_tcp_connections_opened_total{reporter=\"ztunnel\"}";
        let mut e = eval(0, &[(sel, 0)]);
        e.hints.insert(
            sel.into(),
            Hint {
                metric_series: 4,
                values: BTreeMap::from([(
                    "reporter".to_string(),
                    BTreeSet::from(["destination".to_string(), "source".to_string()]),
                )]),
            },
        );
        let r = result("v".into(), vec!["before".into()], &[query], &[e]);
        assert_eq!(
            r.queries[0].flags,
            vec![
                "`istio_tcp_connections_opened_total{reporter=\"ztunnel\"}` matches nothing at any stage: \
                 reporter=\"ztunnel\" — Istio emits reporter only as \
                 {\"source\", \"destination\", \"waypoint\"}; here \
                 istio_tcp_connections_opened_total had {\"destination\", \"source\"}"
            ]
        );
    }

    #[test]
    fn an_error_alert_matching_nothing_in_a_healthy_run_is_not_flagged() {
        // No 5xx and no plaintext is what these selectors should find on a healthy mesh; only
        // a missing metric or a value Istio never emits is the selector's fault.
        let query = q(
            "sum(rate(istio_requests_total{reporter=~\"destination|waypoint\",response_code=~\"5..\",connection_security_policy!=\"mutual_tls\"}[1m])) > 0",
        );
        let sel = query.selectors[0].text.clone();
        let mut e = eval(0, &[(&sel, 0)]);
        e.hints.insert(
            sel.clone(),
            Hint {
                metric_series: 9,
                values: BTreeMap::new(),
            },
        );
        let r = result(
            "v".into(),
            vec!["before".into()],
            std::slice::from_ref(&query),
            &[e.clone()],
        );
        assert!(r.queries[0].flags.is_empty(), "{:?}", r.queries[0].flags);
        // The metric itself never seen is flagged.
        e.hints.get_mut(&sel).expect("hint").metric_series = 0;
        let r = result("v".into(), vec!["before".into()], &[query], &[e]);
        assert!(r.queries[0].flags[0].contains("no component here emitted istio_requests_total"));
    }

    #[test]
    fn encodes_promql_for_a_url() {
        assert_eq!(encode("a{b=\"c d\"}[1m]"), "a%7Bb%3D%22c%20d%22%7D%5B1m%5D");
    }
}

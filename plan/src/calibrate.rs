//! A cost model calibrated on the user's own cluster: every proxy's CPU and memory and its
//! load, as Prometheus has them over one window, and a regression across the proxies.
//!
//! The input is one JSON object of named `/api/v1/query` results (each a vector with one
//! sample per pod, grouped `by (namespace, pod)`):
//!
//! | key | query |
//! |---|---|
//! | `cpu` | `sum(rate(container_cpu_usage_seconds_total{container="istio-proxy"}[5m])) by (namespace, pod)` |
//! | `memory` | `sum(container_memory_working_set_bytes{container="istio-proxy"}) by (namespace, pod)` |
//! | `requests` | `sum(rate(istio_requests_total[5m])) by (namespace, pod)` (sidecars and waypoints; both reporters: a sidecar handles its pod's inbound and outbound) |
//! | `bytes` | `sum(rate(istio_tcp_sent_bytes_total[5m]) + rate(istio_tcp_received_bytes_total[5m])) by (namespace, pod)` (ztunnel) |
//! | `connections` | `sum(rate(istio_tcp_connections_opened_total[5m])) by (namespace, pod)` (ztunnel) |
//!
//! A pod named `ztunnel-…` is a ztunnel, one whose name holds `waypoint` (or starts with a
//! waypoint the caller names) a waypoint, any other a sidecar. The ztunnel chart and the
//! waypoint template both name their container `istio-proxy`, so one query covers all three.

use std::collections::BTreeMap;
use std::path::Path;

use scenario::costmodel::{CostModel, Param};
use scenario::units::{Dur, Size};
use serde_json::Value;

use crate::PlanError;

/// One proxy's readings over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxySample {
    pub vcpu: f64,
    pub memory_bytes: Option<f64>,
    pub rps: f64,
    pub bytes_per_s: f64,
    pub connections_per_s: f64,
}

/// The samples by kind (`sidecar`, `ztunnel`, `waypoint`), then by `namespace/pod`.
pub type Samples = BTreeMap<&'static str, BTreeMap<String, ProxySample>>;

fn bad(path: &Path, message: impl Into<String>) -> PlanError {
    PlanError::Import {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads the named query results; `waypoints` are waypoint names whose pods start with them.
pub fn read(path: &Path, waypoints: &[String]) -> Result<Samples, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(path, format!("not JSON ({e})")))?;
    let series = |key: &str| -> Result<BTreeMap<String, f64>, PlanError> {
        let Some(q) = v.get(key) else {
            return Ok(BTreeMap::new());
        };
        if q.get("status").and_then(Value::as_str) != Some("success") {
            return Err(bad(
                path,
                format!("`{key}` is not a successful /api/v1/query result"),
            ));
        }
        let rs = q
            .pointer("/data/result")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(path, format!("`{key}`: no data.result list")))?;
        let mut out = BTreeMap::new();
        for (i, r) in rs.iter().enumerate() {
            let label = |k: &str| r.pointer(&format!("/metric/{k}")).and_then(Value::as_str);
            let (Some(ns), Some(pod)) = (label("namespace"), label("pod")) else {
                return Err(bad(
                    path,
                    format!(
                        "`{key}`.data.result[{i}]: no `namespace` and `pod` labels; group the query `by (namespace, pod)`"
                    ),
                ));
            };
            let value: f64 = r
                .pointer("/value/1")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    bad(
                        path,
                        format!("`{key}`.data.result[{i}].value: not [time, \"number\"]"),
                    )
                })?;
            if value.is_finite() {
                *out.entry(format!("{ns}/{pod}")).or_default() += value;
            }
        }
        Ok(out)
    };
    let cpu = series("cpu")?;
    if cpu.is_empty() {
        return Err(bad(
            path,
            "no `cpu` samples: the file needs at least the `cpu` query (see meshsim calibrate --help)",
        ));
    }
    let (memory, requests, bytes, conns) = (
        series("memory")?,
        series("requests")?,
        series("bytes")?,
        series("connections")?,
    );
    let mut out = Samples::new();
    for (key, vcpu) in cpu {
        let pod = key.split_once('/').map_or(key.as_str(), |(_, p)| p);
        let kind = if pod.starts_with("ztunnel-") {
            "ztunnel"
        } else if pod.contains("waypoint")
            || waypoints.iter().any(|w| pod.starts_with(&format!("{w}-")))
        {
            "waypoint"
        } else {
            "sidecar"
        };
        let s = ProxySample {
            vcpu,
            memory_bytes: memory.get(&key).copied(),
            rps: requests.get(&key).copied().unwrap_or(0.0),
            bytes_per_s: bytes.get(&key).copied().unwrap_or(0.0),
            connections_per_s: conns.get(&key).copied().unwrap_or(0.0),
        };
        out.entry(kind).or_default().insert(key, s);
    }
    Ok(out)
}

/// Least squares for y = b0 + Σ bj·xj (normal equations, Gaussian elimination); none when
/// the regressors do not vary enough to separate (fewer points than unknowns + 1, or a
/// singular system).
pub fn least_squares(xs: &[Vec<f64>], ys: &[f64]) -> Option<Vec<f64>> {
    let k = xs.first().map_or(0, Vec::len) + 1;
    if ys.len() < k + 1 || xs.len() != ys.len() {
        return None;
    }
    let row = |x: &Vec<f64>| {
        std::iter::once(1.0)
            .chain(x.iter().copied())
            .collect::<Vec<f64>>()
    };
    let mut a = vec![vec![0.0; k + 1]; k];
    for (x, y) in xs.iter().zip(ys) {
        let r = row(x);
        for i in 0..k {
            for j in 0..k {
                a[i][j] += r[i] * r[j];
            }
            a[i][k] += r[i] * y;
        }
    }
    for col in 0..k {
        let pivot = (col..k).max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 * a[pivot].iter().map(|v| v.abs()).fold(1.0, f64::max) {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (x, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    Some((0..k).map(|i| a[i][k] / a[i][i]).collect())
}

/// `base` with what `samples` can tell replaced, each parameter's source saying so; and the
/// notes on what could not be fitted.
pub fn calibrate(samples: &Samples, base: &CostModel, label: &str) -> (CostModel, Vec<String>) {
    let mut model = base.clone();
    let mut notes = Vec::new();
    let d = |s: f64| {
        Dur(std::time::Duration::from_nanos(
            (s.max(0.0) * 1e9).round() as u64
        ))
    };
    for (kind, pods) in samples {
        let m = model.proxy_mut(kind).expect("a proxy kind");
        let n = pods.len();
        let src = |what: &str| format!("calibrated: {label}, {n} {kind} proxies, {what}");
        let ys: Vec<f64> = pods.values().map(|s| s.vcpu).collect();
        if *kind == "ztunnel" {
            let xs: Vec<Vec<f64>> = pods
                .values()
                .map(|s| vec![s.bytes_per_s / 1024.0, s.connections_per_s])
                .collect();
            match least_squares(&xs, &ys) {
                Some(b) => {
                    let how = "least squares of CPU on KiB/s and new connections/s across the ztunnels";
                    m.cpu_idle = Param::new(round_vcpu(b[0]), src(how));
                    m.cpu_per_request = Param::new(Dur::default(), src("ztunnel's cost is per byte and per connection"));
                    m.cpu_per_kib = Param::new(d(b[1]), src(how));
                    m.cpu_per_connection = Param::new(d(b[2]), src(how));
                }
                None => notes.push(format!(
                    "ztunnel CPU not fitted: {n} ztunnels whose bytes and connections do not vary enough (need more nodes, or the `bytes` and `connections` queries)"
                )),
            }
        } else {
            let xs: Vec<Vec<f64>> = pods.values().map(|s| vec![s.rps]).collect();
            match least_squares(&xs, &ys) {
                Some(b) => {
                    let how = "least squares of CPU on requests/s across the proxies (bytes and connections folded in)";
                    m.cpu_idle = Param::new(round_vcpu(b[0]), src(how));
                    m.cpu_per_request = Param::new(d(b[1]), src(how));
                    m.cpu_per_kib = Param::new(Dur::default(), src("folded into cpuPerRequest"));
                    m.cpu_per_connection = Param::new(Dur::default(), src("folded into cpuPerRequest"));
                }
                None => notes.push(format!(
                    "{kind} CPU not fitted: {n} proxies whose request rates do not vary enough (or no `requests` query)"
                )),
            }
        }
        let mut mem: Vec<f64> = pods.values().filter_map(|s| s.memory_bytes).collect();
        if !mem.is_empty() {
            mem.sort_by(f64::total_cmp);
            let median = mem[mem.len() / 2];
            // The cluster's configuration is in every proxy's working set: the base absorbs it,
            // and the per-entry terms, which one cluster's size cannot separate, are zeroed so
            // a plan of this cluster does not count it twice.
            m.memory_base = Param {
                value: Size(median as u64),
                low: Some(Size(mem[0] as u64)),
                high: Some(Size(mem[mem.len() - 1] as u64)),
                source: src("median working set (low..high: the least and most)"),
            };
            let folded =
                src("folded into memoryBase at this cluster's size (plan this cluster only)");
            m.memory_per_service = Param::new(Size(0), folded.clone());
            m.memory_per_endpoint = Param::new(Size(0), folded.clone());
            m.memory_per_workload = Param::new(Size(0), folded.clone());
            m.memory_per_connection = Param::new(Size(0), folded);
        }
    }
    (model, notes)
}

/// Idle CPU to 0.1 mvCPU, never below zero: finer digits are noise.
fn round_vcpu(v: f64) -> f64 {
    (v.max(0.0) * 1e4).round() / 1e4
}

/// A profile as YAML, headed by how to use it (it is written to `path`).
pub fn profile_yaml(
    profile: &scenario::profile::Profile,
    path: &Path,
) -> Result<String, PlanError> {
    let yaml = serde_saphyr::to_string(profile)
        .map_err(|e| bad(path, format!("cannot write the profile as YAML: {e}")))?;
    Ok(format!(
        "# A cost profile calibrated by `meshsim calibrate`; use it with `meshsim plan --costs {0}`\n# or `meshsim run --profile {0}`.\n{yaml}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_finds_two_slopes() {
        let xs: Vec<Vec<f64>> = (0..8)
            .map(|i| vec![i as f64 * 10.0, ((i * 7) % 5) as f64])
            .collect();
        let ys: Vec<f64> = xs.iter().map(|x| 0.5 + 0.01 * x[0] + 0.2 * x[1]).collect();
        let b = least_squares(&xs, &ys).expect("fit");
        assert!(
            (b[0] - 0.5).abs() < 1e-9 && (b[1] - 0.01).abs() < 1e-9 && (b[2] - 0.2).abs() < 1e-9
        );
        // Collinear regressors cannot be separated.
        let xs: Vec<Vec<f64>> = (0..8).map(|i| vec![i as f64, 2.0 * i as f64]).collect();
        assert!(least_squares(&xs, &ys).is_none());
    }
}

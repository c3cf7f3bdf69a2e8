//! The capacity plan's cost model: what one proxy of each kind costs as a function of its
//! load and of the configuration in its scope, and what istiod costs for the proxies it
//! serves. Every parameter carries its source (a publication, a run it was fitted from, or
//! the user's own cluster) and, where sources disagree, a low..high range the plan turns into
//! an uncertainty band.
//!
//! It lives in a cost profile's `model:` section, beside the floors the simulator burns to;
//! `meshsim plan` projects it onto an inventory.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::units::{Dur, Size};

/// One parameter: its value, the range the sources span, and where it comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Param<T> {
    pub value: T,
    /// The lowest value the sources support (default: `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<T>,
    /// The highest value the sources support (default: `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<T>,
    /// Where the value comes from: a publication (cite it), `fitted: …` or `calibrated: …`.
    #[serde(default)]
    pub source: String,
}

impl<T: Copy> Param<T> {
    pub fn new(value: T, source: impl Into<String>) -> Param<T> {
        Param {
            value,
            low: None,
            high: None,
            source: source.into(),
        }
    }

    /// The value at one end of the band, or in the middle.
    pub fn at(&self, end: End) -> T {
        match end {
            End::Low => self.low.unwrap_or(self.value),
            End::Mid => self.value,
            End::High => self.high.unwrap_or(self.value),
        }
    }
}

/// Which value of each parameter a projection takes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum End {
    Low,
    Mid,
    High,
}

impl End {
    pub const ALL: [End; 3] = [End::Low, End::Mid, End::High];
}

/// A number of vCPU (1.0 = one core busy all the time), for idle and per-proxy CPU.
pub type Vcpu = f64;

/// What one proxy of a kind costs.
///
/// - CPU (vCPU) = `cpuIdle` + requests/s × `cpuPerRequest` + KiB/s carried × `cpuPerKiB` +
///   new connections/s × `cpuPerConnection`.
/// - Memory = `memoryBase` + open connections × `memoryPerConnection` + the configuration in
///   its scope: services × `memoryPerService` + endpoints × `memoryPerEndpoint` + workloads ×
///   `memoryPerWorkload`. For Envoy (sidecars, waypoints) a service counts once per port and
///   an endpoint once per port of its service: Istio builds an Envoy cluster per service port
///   (istio/istio `pilot/pkg/networking/core/cluster.go`), each holding its endpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyModel {
    #[serde(default)]
    pub cpu_idle: Param<Vcpu>,
    #[serde(default)]
    pub cpu_per_request: Param<Dur>,
    #[serde(default, rename = "cpuPerKiB")]
    pub cpu_per_kib: Param<Dur>,
    #[serde(default)]
    pub cpu_per_connection: Param<Dur>,
    #[serde(default)]
    pub memory_base: Param<Size>,
    #[serde(default)]
    pub memory_per_connection: Param<Size>,
    #[serde(default)]
    pub memory_per_service: Param<Size>,
    #[serde(default)]
    pub memory_per_endpoint: Param<Size>,
    #[serde(default)]
    pub memory_per_workload: Param<Size>,
}

/// A proxy's load: what its CPU depends on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProxyLoad {
    pub rps: f64,
    pub kib_per_s: f64,
    pub connections_per_s: f64,
    pub open_connections: f64,
}

/// The configuration in a proxy's scope: what its memory depends on beyond connections.
/// For Envoy, `services` counts service ports and `endpoints` endpoints per port (see
/// [`ProxyModel`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProxyScope {
    pub services: usize,
    pub endpoints: usize,
    pub workloads: usize,
}

impl ProxyLoad {
    pub fn scale(self, k: f64) -> ProxyLoad {
        ProxyLoad {
            rps: self.rps * k,
            kib_per_s: self.kib_per_s * k,
            connections_per_s: self.connections_per_s * k,
            open_connections: self.open_connections * k,
        }
    }
}

impl std::ops::Add for ProxyLoad {
    type Output = ProxyLoad;
    fn add(self, o: ProxyLoad) -> ProxyLoad {
        ProxyLoad {
            rps: self.rps + o.rps,
            kib_per_s: self.kib_per_s + o.kib_per_s,
            connections_per_s: self.connections_per_s + o.connections_per_s,
            open_connections: self.open_connections + o.open_connections,
        }
    }
}

impl std::ops::AddAssign for ProxyLoad {
    fn add_assign(&mut self, o: ProxyLoad) {
        *self = *self + o;
    }
}

impl ProxyModel {
    /// vCPU of one proxy under `load`, at one end of the band.
    pub fn vcpu(&self, e: End, load: &ProxyLoad) -> f64 {
        self.cpu_idle.at(e)
            + load.rps * self.cpu_per_request.at(e).as_secs_f64()
            + load.kib_per_s * self.cpu_per_kib.at(e).as_secs_f64()
            + load.connections_per_s * self.cpu_per_connection.at(e).as_secs_f64()
    }

    /// Bytes of one proxy with `load`'s open connections and `scope`'s configuration.
    pub fn memory_bytes(&self, e: End, load: &ProxyLoad, scope: &ProxyScope) -> f64 {
        self.memory_base.at(e).0 as f64
            + load.open_connections * self.memory_per_connection.at(e).0 as f64
            + scope.services as f64 * self.memory_per_service.at(e).0 as f64
            + scope.endpoints as f64 * self.memory_per_endpoint.at(e).0 as f64
            + scope.workloads as f64 * self.memory_per_workload.at(e).0 as f64
    }
}

/// What istiod costs: a base, plus per xDS client it serves (sidecars, or ztunnels and
/// waypoints), whose configuration grows with the services it pushes to each.
///
/// - CPU (vCPU) = `cpuBase` + clients × `cpuPerProxy`.
/// - Memory = `memoryBase` + clients × (`memoryPerProxy` + services ×
///   `memoryPerProxyPerService`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstiodModel {
    #[serde(default)]
    pub cpu_base: Param<Vcpu>,
    #[serde(default)]
    pub cpu_per_proxy: Param<Vcpu>,
    #[serde(default)]
    pub memory_base: Param<Size>,
    #[serde(default)]
    pub memory_per_proxy: Param<Size>,
    #[serde(default)]
    pub memory_per_proxy_per_service: Param<Size>,
}

/// A profile's whole cost model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CostModel {
    #[serde(default)]
    pub sidecar: ProxyModel,
    #[serde(default)]
    pub ztunnel: ProxyModel,
    #[serde(default)]
    pub waypoint: ProxyModel,
    #[serde(default)]
    pub istiod: IstiodModel,
}

impl CostModel {
    /// A proxy kind's model by name (`sidecar`, `ztunnel`, `waypoint`).
    pub fn proxy(&self, kind: &str) -> Option<&ProxyModel> {
        match kind {
            "sidecar" => Some(&self.sidecar),
            "ztunnel" => Some(&self.ztunnel),
            "waypoint" => Some(&self.waypoint),
            _ => None,
        }
    }

    pub fn proxy_mut(&mut self, kind: &str) -> Option<&mut ProxyModel> {
        match kind {
            "sidecar" => Some(&mut self.sidecar),
            "ztunnel" => Some(&mut self.ztunnel),
            "waypoint" => Some(&mut self.waypoint),
            _ => None,
        }
    }

    /// What serde cannot check: every range holds its value, nothing is negative. The error
    /// is (field path, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        fn check<T: PartialOrd + Copy + std::fmt::Display>(
            path: String,
            p: &Param<T>,
            zero: T,
        ) -> Result<(), (String, String)> {
            if p.value < zero {
                return Err((format!("{path}.value"), "cannot be negative".into()));
            }
            if p.at(End::Low) > p.value || p.at(End::High) < p.value {
                return Err((
                    path,
                    format!(
                        "the range {}..{} does not hold the value {}; write low ≤ value ≤ high",
                        p.at(End::Low),
                        p.at(End::High),
                        p.value
                    ),
                ));
            }
            Ok(())
        }
        for kind in ["sidecar", "ztunnel", "waypoint"] {
            let m = self.proxy(kind).expect("a proxy kind");
            let at = |f: &str| format!("model.{kind}.{f}");
            check(at("cpuIdle"), &m.cpu_idle, 0.0)?;
            for (f, p) in [
                ("cpuPerRequest", &m.cpu_per_request),
                ("cpuPerKiB", &m.cpu_per_kib),
                ("cpuPerConnection", &m.cpu_per_connection),
            ] {
                check(at(f), &map(p, |d: Dur| d.as_secs_f64()), 0.0)?;
            }
            for (f, p) in [
                ("memoryBase", &m.memory_base),
                ("memoryPerConnection", &m.memory_per_connection),
                ("memoryPerService", &m.memory_per_service),
                ("memoryPerEndpoint", &m.memory_per_endpoint),
                ("memoryPerWorkload", &m.memory_per_workload),
            ] {
                check(at(f), &map(p, |s: Size| s.0), 0)?;
            }
        }
        let i = &self.istiod;
        check("model.istiod.cpuBase".into(), &i.cpu_base, 0.0)?;
        check("model.istiod.cpuPerProxy".into(), &i.cpu_per_proxy, 0.0)?;
        for (f, p) in [
            ("memoryBase", &i.memory_base),
            ("memoryPerProxy", &i.memory_per_proxy),
            ("memoryPerProxyPerService", &i.memory_per_proxy_per_service),
        ] {
            check(format!("model.istiod.{f}"), &map(p, |s: Size| s.0), 0)?;
        }
        Ok(())
    }
}

fn map<T: Copy, U>(p: &Param<T>, f: impl Fn(T) -> U) -> Param<U> {
    Param {
        value: f(p.value),
        low: p.low.map(&f),
        high: p.high.map(&f),
        source: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_that_does_not_hold_its_value_is_refused() {
        let mut m = CostModel::default();
        m.sidecar.memory_base = Param {
            value: Size(60_000_000),
            low: Some(Size(70_000_000)),
            high: None,
            source: "x".into(),
        };
        let (path, msg) = m.validate().unwrap_err();
        assert_eq!(path, "model.sidecar.memoryBase");
        assert!(msg.contains("low ≤ value ≤ high"), "{msg}");
        m.sidecar.memory_base.low = None;
        m.ztunnel.cpu_idle.value = -1.0;
        assert_eq!(m.validate().unwrap_err().0, "model.ztunnel.cpuIdle.value");
    }

    #[test]
    fn params_read_as_written() {
        let p: ProxyModel = serde_saphyr::from_str(
            "cpuPerRequest: {value: 200us, low: 150us, high: 350us, source: istio.io}\nmemoryPerService: {value: 120kB, source: istio/istio#7912}\n",
        )
        .unwrap();
        assert_eq!(p.cpu_per_request.at(End::High).0.as_micros(), 350);
        assert_eq!(p.memory_per_service.at(End::Low).0, 120_000);
        assert_eq!(p.cpu_idle.value, 0.0);
    }
}

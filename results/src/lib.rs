//! meshsim's results: the `run.json` format, and the one place where what the runner measured
//! becomes figures. A leaf beside the scenario crate (no sockets, namespaces or threads): the
//! simulator writes these types, reports and `compare` read them, and neither needs the other.
//!
//! Map of the modules:
//! - [`raw`]: what the runner measured, per interval and per step, before interpretation
//! - [`interpret`]: raw measurements → [`RunResult`]; per component, every figure from its own
//!   readings over one window
//! - [`run`]: the versioned `run.json` types, their JSON Schema (committed as
//!   `results/run.schema.json`), loading and saving
//! - [`summary`]: derived figures per mode (added latency, cost per proxy kind) and the
//!   headline (median over repeats)
//! - [`slo`]: the scenario's SLOs judged per mode and repeat
//! - [`stages`]: a migration measured live: per stage CPU and memory, and each transition
//! - [`host`]: when the machine makes figures suspect (saturation, steal, a drifting host)
//! - [`faults`]: a fault's effect on the load (failed requests, time to clean and to p99
//!   recovered)
//! - [`costfit`]: CPU against rate per proxy kind over the rate steps, and a line through it
//! - [`hist`]: HdrHistogram's base64 V2 interchange encoding, as kept in `run.json`
//! - `testing` (feature `testing`): seeded synthetic runs, built through [`interpret`]

pub mod costfit;
pub mod faults;
pub mod hist;
pub mod host;
pub mod interpret;
pub mod raw;
pub mod run;
pub mod slo;
pub mod stages;
pub mod summary;

#[cfg(feature = "testing")]
pub mod testing;

pub use run::{RUN_SCHEMA_VERSION, RunResult};

/// Up to 3 decimals, without trailing zeros: limits are written by people ("5", "0.18").
pub fn trim_num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

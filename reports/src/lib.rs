//! meshsim's reports: reads `run.json`, renders charts, `report.html`, `summary.md`, and `compare`.
//!
//! This crate never starts a namespace or a proxy: it reads results (and, in [`ingest`], the
//! runner's raw measurements and the scenario's types from `meshsim-sim`). Map:
//!
//! - [`run`]: the versioned `run.json` types ([`run::RunResult`]), their JSON Schema
//!   (committed as `reports/run.schema.json`), loading with clear errors, and the derived
//!   per-mode summaries (added latency over no-mesh, per-proxy costs).
//! - [`ingest`]: the runner's measurements into a [`RunResult`]: unit conversions,
//!   per-component figures, modeled memory, SLO verdicts.
//! - [`hist`]: HdrHistogram's base64 V2 interchange encoding, as kept in `run.json`.
//! - [`render`]: charts (SVG and PNG, plotters with the vendored font), `report.html`,
//!   `summary.md`, all written next to `run.json` by [`render::render_all`].
//! - [`compare`]: two runs of the same scenario, figure by figure, with a noise-aware verdict.
//! - [`stats`]: the small statistics `compare` needs (Welch's t-test).
//! - `testing` (feature `testing`): seeded synthetic runs for tests here and in other crates.

pub mod compare;
pub mod hist;
pub mod ingest;
pub mod render;
pub mod run;
pub mod stats;

pub use compare::{CompareError, Comparison, compare};
pub use render::{RenderError, render_all};
pub use run::{RUN_SCHEMA_VERSION, RunResult};
#[cfg(feature = "testing")]
pub mod testing;

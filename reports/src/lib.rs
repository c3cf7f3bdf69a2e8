//! meshsim's reports: reads `run.json`, renders charts, `report.html`, `summary.md`, and `compare`.
//!
//! This crate never starts a namespace or a proxy, and does not depend on the simulator: it
//! reads the `run.json` types of `meshsim-results`, so reports and comparisons work on any
//! machine. Map:
//!
//! - [`render`]: charts (SVG and PNG, plotters with the vendored font), `report.html`,
//!   `summary.md`, all written next to `run.json` by [`render::render_all`].
//! - [`benches`]: the deterministic benches' instruction counts (gungraun trees), compared.
//! - [`compare`]: two runs of the same scenario, figure by figure, with a noise-aware verdict.
//! - [`structure`]: what changed in the mesh's structure between two runs, named exactly.
//! - [`stats`]: the small statistics `compare` needs (Welch's t-test).

pub mod benches;
pub mod compare;
pub mod render;
pub mod stats;
pub mod structure;

// The run.json types, as this crate renders them (they live in `meshsim-results`).
pub use results::{RunResult, hist, run};

pub use compare::{CompareError, Comparison, compare};
pub use render::{RenderError, render_all};

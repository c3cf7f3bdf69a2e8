//! meshsim's reports: reads `run.json`, renders charts, `report.html`, `summary.md`, and `compare`.
//!
//! This crate never starts a namespace or a proxy; it only reads results.

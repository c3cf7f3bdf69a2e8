//! meshsim's load generator: knows nothing about meshes.
//!
//! Modules (filled in by the loadgen issue):
//! - engines: open loop (fixed rate, rate steps) and closed loop (`max`)
//! - clients: HTTP/1.1 (keep-alive or a connection per request), TCP request/response, TCP stream
//! - record: HDR histograms, per-interval series, the load result types

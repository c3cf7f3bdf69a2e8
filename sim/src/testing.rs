//! Test helpers shared by tests, benches and other crates (feature `testing`).

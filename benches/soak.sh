#!/usr/bin/env bash
# Soak: ambient and sidecar at 1000 rps (plus 50 new connections/s) for 30 minutes each, then
# per-minute heap, threads and connections per component, and the process's RSS, descriptors
# and threads, with a verdict: flat within ±5% after warmup. About 65 minutes.
#   bash benches/soak.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/soak-$(date +%Y%m%d-%H%M%S)}"
cargo build --release -q
./target/release/meshsim run benches/soak.yaml --out "$out"
cargo run --release -q -p meshsim-results --example soak_check -- "$out/run.json"

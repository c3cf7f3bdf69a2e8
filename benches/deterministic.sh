#!/usr/bin/env bash
# The deterministic benches' power: against a saved baseline, identical builds must flag
# nothing and a build with 5% more work on ztunnel's per-connection path (feature
# bench-knob-5pct) must be flagged, every time. Needs valgrind and gungraun-runner 0.20.0:
#   apt-get install valgrind && cargo install gungraun-runner --version 0.20.0
# Usage: benches/deterministic.sh [TRIES]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
tries=${1:-10}
bench=(cargo bench -q -p meshsim-sim --bench deterministic)
"${bench[@]}" -- --save-baseline=main >/dev/null
flagged() { # runs the benches against the baseline; prints 1 if any regressed beyond 1%
  local out rc=0
  out=$("$@" -- --baseline=main --callgrind-limits='ir=1%' 2>&1) || rc=$?
  case $rc in
    0) echo 0 ;;
    3) echo 1 ;;
    *) echo "unexpected exit $rc:" >&2; echo "$out" >&2; exit 1 ;;
  esac
}
same=0; slow=0
for _ in $(seq "$tries"); do same=$((same + $(flagged "${bench[@]}"))); done
"${bench[@]}" --features bench-knob-5pct --no-run
for _ in $(seq "$tries"); do slow=$((slow + $(flagged "${bench[@]}" --features bench-knob-5pct))); done
echo "identical build: flagged in $same of $tries tries"
echo "5% more work on ztunnel's path: flagged in $slow of $tries tries"
# What the knob changes, as gungraun reports it against the baseline:
"${bench[@]}" --features bench-knob-5pct -- --baseline=main 2>&1 \
  | sed 's/\x1b\[[0-9;]*m//g' | grep -E "^deterministic|Instructions" || true

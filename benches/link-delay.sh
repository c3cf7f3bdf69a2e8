#!/usr/bin/env bash
# What the link-delay wire costs by itself: p50/p99 per second with the wire in the path
# (delay 0) against the seconds without it, in the same step, and the wire's CPU per packet.
# Usage: benches/link-delay.sh [runs]   (needs root or user namespaces, nftables, iproute2)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
runs=${1:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq "$runs"); do
  target/release/meshsim run benches/link-delay.yaml --out "$work/$i" > /dev/null
done
python3 - "$work" "$runs" <<'PY'
import json, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
inside, outside, cost = {"p50": [], "p99": []}, {"p50": [], "p99": []}, []
for i in range(1, runs + 1):
    r = json.load(open(f"{work}/{i}/run.json"))
    m = r["modes"][0]
    f = m["faults"][0]
    cost.append(f.get("cost", ""))
    for s in m["flows"][0]["steps"][0]["series"]:
        t = s["t_s"]
        side = inside if f["start_s"] + 1 < t <= f["end_s"] else outside if (t <= f["start_s"] or t > f["end_s"] + 1) else None
        if side is not None and s["requests"]:
            side["p50"].append(s["p50_us"]); side["p99"].append(s["p99_us"])
med = lambda v: statistics.median(v)
for k in ("p50", "p99"):
    a, b = med(outside[k]), med(inside[k])
    print(f"{k}: without the wire {a:.0f} µs, with it {b:.0f} µs: +{b - a:.0f} µs ({b / a:.2f}x), medians of {len(outside[k])} and {len(inside[k])} seconds")
for c in cost:
    print("wire:", c)
PY

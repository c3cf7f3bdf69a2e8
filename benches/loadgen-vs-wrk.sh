#!/usr/bin/env bash
# `meshsim load` against wrk, on the same minimal HTTP server on loopback, side by side.
#
#   benches/loadgen-vs-wrk.sh [RUNS=3] [SECONDS=10]
#
# Each run measures, in this order:
#   closed loop, CONNS connections: wrk -t1 -cCONNS   vs  meshsim load --threads 1 -c CONNS
#   one connection, ~200 rps:       wrk -t1 -c1 -s delay-5ms.lua  vs  meshsim load --rate 200 -c 1
# wrk has no rate flag: a Lua `delay()` of 5 ms before each request paces its one connection
# to ~195 rps, so both tools time a lone request on a connection idle in between (back to
# back, the machine never idles and latencies are lower). The server gets CPU 0 and
# the load generator CPU 1 (when taskset exists), so both tools face the same contention.
# Prints each run and the medians, with meshsim/wrk ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECS=${2:-10}
CONNS=${CONNS:-4}
PORT=${PORT:-18080}

command -v wrk >/dev/null || { echo "error: needs wrk (apt-get install -y wrk)" >&2; exit 2; }
pin_server=() pin_load=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pin_server=(taskset -c 0) pin_load=(taskset -c 1)
fi

cargo build --release -q -p meshsim --bin meshsim
cargo build --release -q -p meshsim-loadgen --features testing --example hello_server
target=${CARGO_TARGET_DIR:-target}/release
"${pin_server[@]}" "$target/examples/hello_server" "127.0.0.1:$PORT" 1 >/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done

url="http://127.0.0.1:$PORT/"
tmp=$(mktemp -d)
printf 'function delay()\n  return 5\nend\n' >"$tmp/delay-5ms.lua"
for run in $(seq "$RUNS"); do
    "${pin_load[@]}" wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$url" >"$tmp/wrk-closed-$run.txt"
    "${pin_load[@]}" "$target/meshsim" load "$url" --threads 1 -c "$CONNS" -d "${SECS}s" \
        --warmup 0s --json "$tmp/ms-closed-$run.json" >/dev/null
    "${pin_load[@]}" wrk -t1 -c1 -d"${SECS}s" --latency -s "$tmp/delay-5ms.lua" "$url" >"$tmp/wrk-one-$run.txt"
    "${pin_load[@]}" "$target/meshsim" load "$url" --threads 1 -c 1 --rate 200 -d "${SECS}s" \
        --warmup 1s --json "$tmp/ms-one-$run.json" >/dev/null
done

python3 - "$tmp" "$RUNS" "$CONNS" <<'PY'
import json, re, statistics, sys
tmp, runs, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3]
unit = {"us": 1.0, "ms": 1e3, "s": 1e6}

def wrk(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    v, u = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)$", text, re.M).groups()
    return rps, float(v) * unit[u]

def ms(path):
    s = json.load(open(path))["steps"][0]
    return s["achieved_rps"], s["latency"]["p50_us"], s["service_time"]["p50_us"]

rows = {k: [] for k in ("wrk_rps", "ms_rps", "wrk_p50", "ms_p50", "ms_svc_p50")}
for r in range(1, runs + 1):
    w_rps, _ = wrk(f"{tmp}/wrk-closed-{r}.txt")
    m_rps, _, _ = ms(f"{tmp}/ms-closed-{r}.json")
    _, w_p50 = wrk(f"{tmp}/wrk-one-{r}.txt")
    _, m_p50, m_svc = ms(f"{tmp}/ms-one-{r}.json")
    for k, v in zip(rows, (w_rps, m_rps, w_p50, m_p50, m_svc)):
        rows[k].append(v)
    print(f"run {r}: closed -c{conns}: wrk {w_rps:.0f} rps, meshsim {m_rps:.0f} rps | "
          f"-c1 ~200 rps p50: wrk {w_p50:.1f} µs, meshsim {m_p50} µs (service {m_svc} µs)")
med = {k: statistics.median(v) for k, v in rows.items()}
print()
print(f"| closed loop, {conns} connections | wrk {med['wrk_rps']:.0f} rps | meshsim {med['ms_rps']:.0f} rps "
      f"| ratio {med['ms_rps'] / med['wrk_rps']:.2f} |")
print(f"| one connection, ~200 rps, p50 | wrk {med['wrk_p50']:.1f} µs | meshsim {med['ms_p50']:.0f} µs "
      f"(service {med['ms_svc_p50']:.0f} µs) | ratio {med['ms_p50'] / med['wrk_p50']:.2f} |")
PY

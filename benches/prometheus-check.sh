#!/usr/bin/env bash
# A real Prometheus (Debian package `prometheus`) scrapes `meshsim up`'s merged metrics port
# and evaluates the ambient guide's PromQL queries. Usage: benches/prometheus-check.sh
# Needs root (or unprivileged user namespaces), nftables, curl and prometheus.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v prometheus >/dev/null || { echo "install prometheus: apt-get install -y prometheus" >&2; exit 2; }
cargo build --release -q
bin=target/release/meshsim
work=$(mktemp -d)
port=19120
"$bin" up scenarios/payment.yaml --mode ambient --metrics-port "$port" > "$work/up.log" &
up=$!
trap 'kill -INT $up 2>/dev/null; kill $prom 2>/dev/null; wait; rm -rf "$work"' EXIT
for _ in $(seq 50); do grep -q "Press Ctrl-C" "$work/up.log" && break; sleep 0.1; done
cluster=$(awk '/^cluster /{print $2; exit}' "$work/up.log")
cat > "$work/prometheus.yml" <<YAML
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: meshsim
    metrics_path: /stats/prometheus
    static_configs: [{targets: ["127.0.0.1:$port"]}]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address=127.0.0.1:19090 --log.level=warn > "$work/prom.log" 2>&1 &
prom=$!
pay=http://payment-service.production:8080/api/v1/payments
for _ in $(seq 6); do
  for _ in $(seq 10); do "$bin" exec --cluster "$cluster" order-service-0 -- curl -s -o /dev/null -X POST "$pay"; done
  for _ in $(seq 3); do "$bin" exec --cluster "$cluster" order-service-0 -- curl -s -o /dev/null "$pay"; done
  sleep 1
done
sleep 3
q() { curl -s --get http://127.0.0.1:19090/api/v1/query --data-urlencode "query=$1"; echo; }
echo "== sum(istio_tcp_connections_opened_total{reporter=\"destination\"}) by (destination_workload)"
q 'sum(istio_tcp_connections_opened_total{reporter="destination"}) by (destination_workload)' | tee "$work/q1"
echo "== sum(rate(istio_requests_total{reporter=\"waypoint\"}[1m])) by (destination_service, response_code)"
q 'sum(rate(istio_requests_total{reporter="waypoint"}[1m])) by (destination_service, response_code)' | tee "$work/q2"
grep -q '"destination_workload":"payment-service"' "$work/q1"
grep -q '"response_code":"200"' "$work/q2" && grep -q '"response_code":"403"' "$work/q2"
echo "OK: both queries answered with the expected series"

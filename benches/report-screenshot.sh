#!/usr/bin/env bash
# Render the synthetic sample run and screenshot report.html with headless Chromium, to look
# at the report as a person would (every chart visible, tables readable).
#
#   benches/report-screenshot.sh [OUT_DIR]     (default: target/report-screenshot)
#
# Needs chromium (Debian: apt-get install -y chromium). Writes OUT_DIR/report.png plus the
# rendered run (run.json, report.html, chart PNGs, summary.md).
set -euo pipefail

cd "$(dirname "$0")/.."
out="${1:-target/report-screenshot}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

cargo run -q -p meshsim-reports --example render_sample -- "$out"

browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
    echo "no chromium found: apt-get install -y chromium (the report itself is in $out)" >&2
    exit 1
fi
# A private profile directory, so no state of the user's browser is read or changed.
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$profile" --window-size=1400,4000 \
    --screenshot="$out/report.png" "file://$out/report.html" 2>/dev/null
echo "$out/report.png"

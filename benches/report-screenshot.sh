#!/usr/bin/env bash
# Screenshot report.html with headless Chromium, to look at the report as a person would
# (every chart visible, tables readable).
#
#   benches/report-screenshot.sh [OUT_DIR]          render the synthetic sample run into OUT_DIR
#                                                   (default: target/report-screenshot)
#   benches/report-screenshot.sh --run RUN_DIR      a real run's directory (meshsim run --out)
#
# Needs chromium (Debian: apt-get install -y chromium). Writes report.png next to report.html
# and checks that every chart's <svg> in the page has a size, so a chart that failed to
# render is an error, not a blank box to spot by eye.
set -euo pipefail

cd "$(dirname "$0")/.."
if [ "${1:-}" = "--run" ]; then
    out="$(cd "${2:?--run needs the directory of a run}" && pwd)"
    [ -f "$out/report.html" ] || { echo "$out has no report.html" >&2; exit 1; }
else
    out="${1:-target/report-screenshot}"
    mkdir -p "$out"
    out="$(cd "$out" && pwd)"
    cargo run -q -p meshsim-reports --example render_sample -- "$out"
fi

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

# The page as the browser built it: every inline chart must have been laid out with a size.
dom="$("$browser" --headless --no-sandbox --disable-gpu --user-data-dir="$profile" \
    --dump-dom "file://$out/report.html" 2>/dev/null)"
charts="$(grep -o '<svg[^>]*>' <<<"$dom" | wc -l)"
sized="$(grep -o '<svg[^>]*width="[0-9]*"[^>]*height="[0-9]*"' <<<"$dom" | wc -l)"
if [ "$charts" -eq 0 ] || [ "$charts" -ne "$sized" ]; then
    echo "report.html: $charts charts, $sized with a size" >&2
    exit 1
fi
echo "$out/report.png ($charts charts)"

#!/usr/bin/env bash
# Load test of the service with wrk: synchronous 512x512 fast-style requests against a local
# `styleforge serve`, next to the engine's raw speed (`styleforge bench`) for the same model.
#
#   scripts/load-test.sh [model-file] [seconds] [connections...]
#
# Defaults: the nc8 mosaic network from the shared data, 60 s, connections 1 2 4. Needs wrk
# (Debian package `wrk`) and a release build (`cargo build --release`); the 512x512 PNG is cut
# from a shared content photo with Pillow, installed into .tools/py if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${STYLEFORGE_SHARED:-$(cd .. && pwd)/shared}"
model="${1:-$shared/models/fast_style_pytorch/mosaic_nc8.safetensors}"
seconds="${2:-60}"
shift $(( $# > 2 ? 2 : $# )) || true
conns=("${@:-1 2 4}")
[ ${#conns[@]} -eq 1 ] && read -r -a conns <<< "${conns[0]}"
bin=target/release/styleforge
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
export STYLEFORGE_HOME="$work/home"
"$bin" models import "$model" --name loadtest >/dev/null

[ -x .tools/py/bin/python ] || python3 -m venv .tools/py
.tools/py/bin/python -c 'import PIL' 2>/dev/null || .tools/py/bin/pip install --quiet pillow
.tools/py/bin/python - "$shared/data/content/tubingen.jpg" "$work/in.png" <<'PY'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
s = min(im.size)
im = im.crop(((im.width - s) // 2, (im.height - s) // 2, (im.width + s) // 2, (im.height + s) // 2))
im.resize((512, 512), Image.LANCZOS).save(sys.argv[2])
PY

port=$(( 20000 + RANDOM % 20000 ))
"$bin" serve --listen "127.0.0.1:$port" --anonymous --data-dir "$work/data" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
image=$(curl -fs --data-binary @"$work/in.png" -H 'content-type: image/png' "http://127.0.0.1:$port/v1/images" | sed 's/.*"id":"\([^"]*\)".*/\1/')
body="{\"image\":\"$image\",\"style\":\"loadtest\",\"method\":\"fast\"}"
curl -fs -o /dev/null -w 'one request: HTTP %{http_code}, %{time_total} s\n' -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$port/v1/stylize"

cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d wall=%.2f p50_ms=%.0f p99_ms=%.0f\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
LUA

echo "engine alone (styleforge bench, forward pass only, 512x512):"
"$bin" bench --only fast --model loadtest --sizes 512 --runs 5 | tail -1
echo
echo "| connections | requests | errors | req/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|"
for c in "${conns[@]}"; do
  line=$(wrk -t1 -c"$c" -d"${seconds}s" --timeout 60s --latency -s "$work/post.lua" "http://127.0.0.1:$port/v1/stylize" | grep RESULT)
  eval "${line#RESULT }"
  rps=$(awk -v r="$requests" -v s="$seconds" 'BEGIN { printf "%.2f", r / s }')
  echo "| $c | $requests | $errors | $rps | $p50_ms | $p99_ms |"
done

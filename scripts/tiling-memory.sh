#!/usr/bin/env bash
# Peak memory of tiled stylisation of a 4096x4096 image with a stock-width (32) TransformerNet.
# Usage: scripts/tiling-memory.sh [TILE]   (needs a release build and ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
tile="${1:-1024}"
shared="${STYLEFORGE_SHARED:-../shared}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$work/big.png" <<'PY'
import math, struct, sys, zlib
w = h = 4096
rows = []
for y in range(h):
    row = bytearray([0])
    for x in range(w):
        v = math.sin(x * 0.01) * math.cos(y * 0.013)
        row += bytes(((int(128 + 100 * v) + x // 64) % 256, (y * 255 // h), ((x ^ y) & 255)))
    rows.append(bytes(row))
raw = zlib.compress(b"".join(rows), 6)
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
with open(sys.argv[1], "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
PY
cargo build --release -q -p styleforge-cli
/usr/bin/time -v target/release/styleforge stylize "$work/big.png" -o "$work/out.png" \
  --model "$shared/parity/transformer_net_stock_legacy.pth" --tile "$tile" 2> "$work/time.txt"
grep -E "Maximum resident|Elapsed" "$work/time.txt"

#!/usr/bin/env bash
# Measures job throughput of `styleforge worker` processes: for 1, 2 and 4 worker processes
# (STYLEFORGE_BENCH_WORKERS), queues STYLEFORGE_BENCH_JOBS (default 200) fast-style jobs on
# distinct 64x64 images through an API-only server, with PostgreSQL (STYLEFORGE_TEST_POSTGRES,
# default the local server) and moto's S3 server (scripts/install-test-tools.sh installs it),
# and prints jobs per minute as a Markdown table. Each worker runs one job at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
export STYLEFORGE_SHARED="${STYLEFORGE_SHARED:-$(cd .. && pwd)/shared}"
export STYLEFORGE_BENCH_WORKERS="${STYLEFORGE_BENCH_WORKERS:-1,2,4}"
export STYLEFORGE_BENCH_JOBS="${STYLEFORGE_BENCH_JOBS:-200}"
scripts/install-test-tools.sh >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
cargo test --release --workspace --test command -- --ignored --exact scale_out::throughput --nocapture

#!/usr/bin/env bash
# Fuzzes styleforge's input parsers with cargo fuzz (libFuzzer + AddressSanitizer) and prints a
# table of executions and crashes per target.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]
#
# Targets (fuzz/fuzz_targets): decode_image, weights_file, safetensors, tf_checkpoint,
# api_request; default all, 1800 s each. PARALLEL=N runs N targets at once (default 1).
# Needs a nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz (installed into
# ~/.cargo/bin when missing). Seeds come from fuzz/seeds.py (the bad-input corpus, small PyTorch
# and safetensors files it writes, and the shared data when $STYLEFORGE_SHARED or ../shared has
# it). The growing corpora stay in fuzz/corpus and crashes in fuzz/artifacts (both ignored by
# git); logs and the table go to target/fuzz-report. A crash is reproduced with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…`, then kept as a regression
# input under tests/corpus/fuzz/TARGET/ (its test replays every file there).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-1800}"
shift || true
all=(decode_image weights_file safetensors tf_checkpoint api_request)
targets=("${@:-${all[@]}}")
parallel="${PARALLEL:-1}"
shared="${STYLEFORGE_SHARED:-$(cd .. && pwd)/shared}"
report=target/fuzz-report
mkdir -p "$report"

cargo +nightly --version >/dev/null 2>&1 || { echo "a nightly toolchain is needed: rustup toolchain install nightly" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
[ -d "$shared" ] || shared=""
python3 fuzz/seeds.py fuzz/corpus ${shared:+"$shared"}
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  if [ -d "tests/corpus/fuzz/$t" ]; then cp -n tests/corpus/fuzz/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true; fi
done

echo "building the targets (nightly, AddressSanitizer)…"
cargo +nightly fuzz build --fuzz-dir fuzz >"$report/build.log" 2>&1 || { tail -30 "$report/build.log" >&2; exit 1; }

run() {
  local t=$1
  local -a extra=(-print_final_stats=1)
  if [ "$t" = api_request ]; then extra+=(-dict=fuzz/api.dict); fi
  local before
  before=$(find "fuzz/artifacts/$t" -type f 2>/dev/null | wc -l)
  # -rss_limit_mb: an input that makes the parser allocate over 4 GiB counts as a crash.
  cargo +nightly fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=60 -max_len=65536 \
    "${extra[@]}" >"$report/$t.log" 2>&1 || true
  local runs after
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$report/$t.log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  after=$(find "fuzz/artifacts/$t" -type f 2>/dev/null | wc -l)
  local secs corpus
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$report/$t.log" | tail -1 | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "?")
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  echo "| $t | $secs | ${runs:-0} | $corpus | $((after - before)) |" >"$report/$t.row"
}

start=$(date -u +%FT%TZ)
pids=()
for t in "${targets[@]}"; do
  echo "fuzzing $t for ${seconds} s…"
  run "$t" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do sleep 1; done
done
wait

{
  echo "Fuzzing from $start, ${seconds} s per target, $parallel at a time, on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)):"
  echo
  echo "| target | seconds | executions | corpus files | new crashes |"
  echo "|---|---|---|---|---|"
  for t in "${targets[@]}"; do cat "$report/$t.row"; done
} | tee "$report/table.md"
if find fuzz/artifacts -type f 2>/dev/null | grep -q .; then
  echo
  echo "crash inputs:"
  find fuzz/artifacts -type f
fi

#!/usr/bin/env bash
# Installs FFmpeg (the `ffmpeg` and `ffprobe` programs) when missing: styleforge decodes and
# encodes video files through them over pipes (crates/styleforge-core/src/video.rs), and the
# video tests make their clips with them. Debian's package has libx264 (H.264), libvpx (VP9),
# AAC and libopus. Safe to run again. Set STYLEFORGE_FFMPEG / STYLEFORGE_FFPROBE to use other
# builds.
set -euo pipefail

ffmpeg="${STYLEFORGE_FFMPEG:-ffmpeg}"
ffprobe="${STYLEFORGE_FFPROBE:-ffprobe}"
if ! command -v "$ffmpeg" >/dev/null 2>&1 || ! command -v "$ffprobe" >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "ffmpeg is missing and apt-get is not available: install FFmpeg (with libx264 and libvpx) and put ffmpeg and ffprobe on PATH" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  # Another apt run (the browser install) may hold the lock for a while.
  for _ in $(seq 1 60); do
    $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null && break
    sleep 5
  done
fi
encoders="$("$ffmpeg" -hide_banner -encoders 2>/dev/null)"
for codec in libx264 libvpx-vp9 aac libopus; do
  grep -q " $codec " <<<"$encoders" || { echo "$ffmpeg has no $codec encoder" >&2; exit 1; }
done
version="$("$ffmpeg" -hide_banner -version)"
echo "video tools ready: ${version%%$'\n'*}"

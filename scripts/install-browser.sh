#!/usr/bin/env bash
# Installs what the browser tests need, when missing: Debian's chromium (apt) and the e2e
# folder's npm dependencies (playwright-core, from the lockfile). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium="${STYLEFORGE_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is missing at $chromium and apt-get is not available: install chromium and set STYLEFORGE_CHROMIUM" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
"$chromium" --version 2>/dev/null || { echo "$chromium does not run" >&2; exit 1; }

if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: install Node.js 20 or newer" >&2
  exit 1
fi
if [ ! -f e2e/node_modules/.package-lock.json ] || ! cmp -s e2e/package-lock.json e2e/node_modules/.lock-installed; then
  (cd e2e && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.lock-installed)
fi
echo "browser tests ready: $chromium, playwright-core $(node -p "require('./e2e/node_modules/playwright-core/package.json').version")"

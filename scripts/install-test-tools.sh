#!/usr/bin/env bash
# Installs the tools the test suite drives besides cargo, in a virtual environment under .tools/:
# schemathesis (PyPI) for the OpenAPI property tests, and moto's S3-compatible server (PyPI) that
# the S3 and multi-process tests start on a free port. Idempotent; a second run only checks the
# versions.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MOTO_VERSION=5.2.5
venv=.tools/py
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
if ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[s3,server]==$MOTO_VERSION"
fi
"$venv/bin/st" --version
"$venv/bin/moto_server" --help >/dev/null && echo "moto_server $MOTO_VERSION"

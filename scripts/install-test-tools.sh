#!/usr/bin/env bash
# Installs the tools the test suite drives besides cargo, in a virtual environment under .tools/:
# schemathesis (PyPI) for the OpenAPI property tests, and moto's S3-compatible server (PyPI) that
# the S3 and multi-process tests start on a free port, and ONNX Runtime with the `onnx` package
# (PyPI) that the ONNX tests run exported models with, and scikit-image (PyPI), the reference
# implementation the SSIM metric is checked against. Idempotent; a second run only checks the
# versions.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MOTO_VERSION=5.2.5
ONNXRUNTIME_VERSION=1.32.0
ONNX_VERSION=1.23.2
SCIKIT_IMAGE_VERSION=0.25.2
venv=.tools/py
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
if ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[s3,server]==$MOTO_VERSION"
fi
if ! "$venv/bin/python" -c "import onnxruntime, onnx, sys; sys.exit(onnxruntime.__version__ != '$ONNXRUNTIME_VERSION' or onnx.__version__ != '$ONNX_VERSION')" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "onnxruntime==$ONNXRUNTIME_VERSION" "onnx==$ONNX_VERSION"
fi
if ! "$venv/bin/python" -c "import skimage, sys; sys.exit(skimage.__version__ != '$SCIKIT_IMAGE_VERSION')" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "scikit-image==$SCIKIT_IMAGE_VERSION"
fi
"$venv/bin/st" --version
"$venv/bin/moto_server" --help >/dev/null && echo "moto_server $MOTO_VERSION"
"$venv/bin/python" -c "import onnxruntime, onnx; print('onnxruntime', onnxruntime.__version__, 'onnx', onnx.__version__)"
"$venv/bin/python" -c "import skimage; print('scikit-image', skimage.__version__)"

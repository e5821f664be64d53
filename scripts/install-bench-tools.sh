#!/usr/bin/env bash
# Installs the reference frameworks for the side-by-side benchmark columns into a virtual
# environment, .tools/bench: PyTorch and torchvision (scripts/pytorch-bench.py) and TensorFlow
# for the CPU (scripts/tensorflow-bench.py), plus safetensors to read the reference vectors.
# Not called by CI. Idempotent: a second run only checks the versions and prints them.
#
#     scripts/install-bench-tools.sh
#     .tools/bench/bin/python scripts/pytorch-bench.py
#     .tools/bench/bin/python scripts/tensorflow-bench.py
#
# PyTorch comes from its CPU-only wheel index when that index can be reached. Where it cannot
# (machines whose only Python registry is PyPI), PyPI's torch wheel is installed instead: the
# same version, but it depends on the CUDA runtime packages (several GB more to download). Both
# run the benchmarks on the CPU. BENCH_TORCH_INDEX=URL picks another index, BENCH_TORCH_INDEX=pypi
# skips the CPU index.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.15.0
TORCHVISION_VERSION=0.29.2
TENSORFLOW_VERSION=2.21.0     # tensorflow-cpu; has wheels for Python 3.10-3.13
SAFETENSORS_VERSION=0.8.0
TORCH_CPU_INDEX=${BENCH_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
venv=.tools/bench
pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"

installed() { # package version -> 0 when that version (any local label, e.g. +cpu) is installed
  "$py" - "$1" "$2" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(version(sys.argv[1]).split("+")[0] != sys.argv[2])
EOF
}

if ! installed torch "$TORCH_VERSION" || ! installed torchvision "$TORCHVISION_VERSION"; then
  if [ "$TORCH_CPU_INDEX" != pypi ] && "$py" - "$TORCH_CPU_INDEX" <<'EOF' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=15).read(1)
EOF
  then
    echo "installing torch $TORCH_VERSION (CPU build) from $TORCH_CPU_INDEX"
    "${pip[@]}" --index-url "$TORCH_CPU_INDEX" \
      "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
  else
    echo "the CPU wheel index is not reachable: installing torch $TORCH_VERSION from PyPI" \
         "(it brings the CUDA runtime packages; they stay unused here)"
    "${pip[@]}" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
  fi
fi
if ! installed tensorflow-cpu "$TENSORFLOW_VERSION" || ! installed safetensors "$SAFETENSORS_VERSION"; then
  echo "installing tensorflow-cpu $TENSORFLOW_VERSION and safetensors $SAFETENSORS_VERSION"
  # torch stays pinned so that resolving TensorFlow's dependencies cannot replace it
  "${pip[@]}" "tensorflow-cpu==$TENSORFLOW_VERSION" "safetensors==$SAFETENSORS_VERSION" \
    "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

# One process per framework: TensorFlow and PyTorch each bundle LLVM, and importing TensorFlow
# and then torch in one process aborts on a duplicate LLVM option.
"$py" - <<'EOF'
import sys
import numpy, safetensors, torch, torchvision
cuda = torch.version.cuda
print(f"{sys.prefix}: Python {sys.version.split()[0]}, numpy {numpy.__version__}, safetensors {safetensors.__version__}")
print(f"  torch {torch.__version__} ({'CPU build' if cuda is None else f'CUDA {cuda} build, run on the CPU here'})"
      f", torchvision {torchvision.__version__}")
EOF
TF_CPP_MIN_LOG_LEVEL=2 "$py" - <<'EOF'
from importlib.metadata import version
import tensorflow as tf
print(f"  tensorflow-cpu {version('tensorflow-cpu')} (keras {version('keras')}), "
      f"GPUs visible to TensorFlow: {len(tf.config.list_physical_devices('GPU'))}")
EOF

#!/usr/bin/env bash
# GPU job: run the whole suite restricted to the CUDA devices (CuPy, and torch on CUDA when present).
# Run on a machine with an NVIDIA GPU: CUDA12=1 (default) installs cupy-cuda12x, CUDA13=1 cupy-cuda13x.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${XPNET_CI_VENV:-.venv-gpu}"
python3 -m venv --system-site-packages "$VENV"
. "$VENV/bin/activate"
extra=cuda12; [ "${CUDA13:-0}" = 1 ] && extra=cuda13
python -c "import cupy" 2>/dev/null || python -m pip install --quiet -e ".[$extra]"
python -m pip install --quiet -e ".[test,train]"
python -c "import xpnet; d = xpnet.devices(); print('xpnet devices:', d); assert any(n.startswith('cuda') for n in d), 'no CUDA device visible to CuPy'"
python -m pytest -q --xpnet-devices cuda,torch:cuda "$@"

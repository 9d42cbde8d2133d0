"""Whole processes on a machine with GPUs, simulated (tests/fakecupy: NumPy-backed CuPy with two
GPUs, device placement checked, host synchronisations and CUDA contexts counted, NCCL's bindings).

What only a new process shows: which GPUs get a CUDA context, what the default device becomes
once CuPy sees a GPU, how several MPI processes share the GPUs of a machine and end together.
Each test starts its processes with the simulation first on PYTHONPATH; the rest of the suite
runs in-process on whatever is installed.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xpnet.checkpoint import load_checkpoint
from xpnet.cli import main

from .mpi_launcher import MPIEXEC, needs_mpi

pytestmark = pytest.mark.slow  # every test here starts processes

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fakecupy"
TRAIN = ["--hidden", "20", "--quiet", "--no-plot", "--eval-interval", "100", "--batch-size", "50"]


def env(tmp_path, gpus=True, **extra):
    """A GPU machine (the simulation on the path, its report written per process), or a plain one."""
    e = {k: v for k, v in os.environ.items() if k not in ("XPNET_DEVICE", "CUDA_VISIBLE_DEVICES")}
    e["PYTHONPATH"] = os.pathsep.join(([str(FAKE)] if gpus else []) + [str(ROOT)])
    e.update({"FAKE_CUPY_STRICT": "1", "FAKE_CUPY_REPORT": str(tmp_path / "report"),
              "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}, **extra)
    return e


def run(args, tmp_path, gpus=True, timeout=120, **extra):
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env(tmp_path, gpus, **extra),
                          capture_output=True, text=True, timeout=timeout)


def mpirun(n, args, tmp_path, timeout=90, **extra):
    return subprocess.run([MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-n", str(n), sys.executable, *args],
                          cwd=tmp_path, env=env(tmp_path, **extra), capture_output=True, text=True, timeout=timeout)


def reports(tmp_path):
    """The simulation's report of each process that ran (contexts, syncs, cross-device operations)."""
    return [json.loads(p.read_text()) for p in sorted(tmp_path.glob("report.*.json"))]


def test_the_simulation_is_what_a_gpu_machine_looks_like(tmp_path):
    r = run(["-c", "import xpnet; print(xpnet.devices(), xpnet.device().name)"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['cpu', 'array_api_strict', 'torch', 'cuda:0', 'cuda:1'] cuda:0" or \
        r.stdout.strip() == "['cpu', 'array_api_strict', 'cuda:0', 'cuda:1'] cuda:0"  # torch where installed


def test_devices_make_no_cuda_context_until_they_compute(tmp_path):
    code = ("import xpnet, numpy as np\n"
            "a, b = xpnet.device('cuda:0'), xpnet.device('cuda:1'); xpnet.devices(); a.rng_kind; b.memory_bytes\n"
            "from cupy import _fake; print(_fake.STATS['contexts'])\n"
            "net = xpnet.TwoLayerNet(4, 3, 2, device=b, dtype='float32', seed=0)\n"
            "net.gradient(b.asarray(np.ones((2, 4), np.float32)), b.asarray(np.array([0, 1])))\n"
            "print(1 in _fake.STATS['contexts'])\n")
    r = run(["-c", code], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["[]", "True"]


def test_a_cpu_run_resumes_on_a_gpu_machine_on_its_own_device(tmp_path, tiny, monkeypatch):
    data = ["--data-dir", str(tiny)]
    monkeypatch.chdir(tmp_path)  # two runs on this machine, which shows no GPU: in this process
    assert main(["train", "--device", "cpu", "--iters", "400", *data, *TRAIN, "--out", "whole"]) == 0
    assert main(["train", "--device", "cpu", "--iters", "200", *data, *TRAIN, "--out", "cut"]) == 0
    # the machine now shows GPUs: the default device is cuda:0, but the run continues on the CPU
    resumed = run(["-m", "xpnet", "train", "--resume", "cut", *data, "--iters", "400", "--no-plot"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming cut at step 200 of 400" in resumed.stdout and "on cpu" in resumed.stdout
    a, b = (load_checkpoint(tmp_path / d / "model.npz", device="cpu") for d in ("whole", "cut"))
    for k in a.net.params:
        np.testing.assert_array_equal(a.net.params[k], b.net.params[k])
    moved = run(["-m", "xpnet", "train", "--resume", "cut", *data, "--iters", "600", "--device", "cuda:0"], tmp_path)
    assert moved.returncode == 2 and len(moved.stderr.strip().splitlines()) == 1
    assert "was trained on cpu and cannot continue on cuda:0" in moved.stderr
    # the Python API says the same; a net alone moves freely
    code = (f"import xpnet\n(x, t), (xt, tt) = xpnet.load_idx_dataset({str(tiny)!r})\n"
            "tr = xpnet.Trainer.resume('cut/model.npz', x, t, xt, tt, log=None, progress=False)\n"
            "print(tr.device.name, xpnet.load_net('cut/model.npz').device.name)\n")
    api = run(["-c", code], tmp_path)
    assert api.returncode == 0, api.stderr
    assert api.stdout.split() == ["cpu", "cuda:0"]


def test_a_gpu_run_resumes_on_another_gpu_and_loads_on_the_cpu(tmp_path):
    code = ("import sys, numpy as np, xpnet\n(x, t), (xt, tt) = xpnet.load_mnist()\n"
            "x, t, xt, tt = x[:2000], t[:2000], xt[:500], tt[:500]\n"
            "def make(iters):\n"
            "    net = xpnet.TwoLayerNet(784, 20, 10, device='cuda:0', dtype='float32', seed=0)\n"
            "    return xpnet.Trainer(net, x, t, xt, tt, optimizer='momentum', iters=iters, log=None, progress=False)\n"
            "whole = make(120); whole.fit()\n"
            "make(60).fit(checkpoint='c.npz')\n"
            "tr = xpnet.Trainer.resume('c.npz', x, t, xt, tt, device='cuda:1', iters=120, log=None, progress=False)\n"
            "tr.fit()\n"
            "print(tr.device.name, all(np.array_equal(whole.net.device.to_numpy(whole.net.params[k]),\n"
            "      tr.device.to_numpy(tr.net.params[k])) for k in tr.net.params))\n"
            "print(xpnet.load_net('c.npz', device='cpu').device.name)\n")
    r = run(["-c", code], tmp_path, timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cuda:1", "True", "cpu"]
    assert all(rep["cross_device"] == 0 and rep["syncs"] < 200 for rep in reports(tmp_path))


@needs_mpi
def test_a_distributed_start_without_nccl_ends_every_rank_with_one_message(tmp_path):
    t0 = time.monotonic()
    r = mpirun(2, ["-m", "xpnet", "train", "--distributed", "--device", "cuda", "--iters", "10", *TRAIN,
                   "--out", "run"], tmp_path, FAKE_NCCL_AVAILABLE="0")
    took = time.monotonic() - t0
    said = [line for line in r.stderr.splitlines() if line.startswith("xpnet train")]
    assert r.returncode != 0 and took < 60, (r.returncode, took, r.stderr)
    assert len(said) == 1 and "installed without NCCL" in said[0] and "nvidia-nccl" in said[0], r.stderr
    assert not (tmp_path / "run").exists()


WHERE = ("import xpnet, sys\n"
         "comm = xpnet.device(sys.argv[1]).communicator()\n"
         "import cupy; from cupy import _fake\n"
         "with comm.device.scope():\n"
         "    buf = comm.device.asarray([1.0, 2.0], dtype=sys.argv[2])\n"
         "comm.allreduce_sum_(buf, comm.device)\n"
         "print('rank', comm.rank, comm.engine, comm.device.name, cupy.cuda.Device(comm.device.index).pci_bus_id,\n"
         "      _fake.STATS['contexts'], [float(v) for v in comm.device.to_numpy(buf).tolist()], flush=True)\n")


@needs_mpi
@pytest.mark.parametrize("dtype", ["float32", "float16", "int64"])
def test_each_process_computes_on_its_own_gpu_and_nowhere_else(tmp_path, dtype):
    (tmp_path / "where.py").write_text(WHERE)
    r = mpirun(2, ["where.py", "cuda", dtype], tmp_path)
    assert r.returncode == 0, r.stderr
    said = sorted(line for line in r.stdout.splitlines() if line.startswith("rank"))
    assert said == ["rank 0 nccl cuda:0 0000:18:00.0 [0] [2.0, 4.0]",
                    "rank 1 nccl cuda:1 0000:19:00.0 [1] [2.0, 4.0]"], r.stderr


LAUNCHER = ("import os, sys\nos.environ['CUDA_VISIBLE_DEVICES'] = os.environ['OMPI_COMM_WORLD_LOCAL_RANK']\n"
            "sys.argv = sys.argv[1:]\nexec(open(sys.argv[0]).read())\n")


@needs_mpi
def test_a_launcher_that_gives_each_process_one_gpu_is_accepted(tmp_path):
    (tmp_path / "where.py").write_text(WHERE)
    (tmp_path / "one_gpu_each.py").write_text(LAUNCHER)  # as SLURM --gpus-per-task=1 does
    r = mpirun(2, ["one_gpu_each.py", "where.py", "cuda", "float32"], tmp_path)
    assert r.returncode == 0, r.stderr
    said = sorted(line for line in r.stdout.splitlines() if line.startswith("rank"))
    assert said == ["rank 0 nccl cuda:0 0000:18:00.0 [0] [2.0, 4.0]",
                    "rank 1 nccl cuda:0 0000:19:00.0 [0] [2.0, 4.0]"], r.stderr


@needs_mpi
def test_two_processes_on_one_gpu_are_refused_before_nccl_starts(tmp_path):
    r = mpirun(2, ["-m", "xpnet", "train", "--distributed", "--device", "cuda", "--iters", "10", *TRAIN,
                   "--out", "run"], tmp_path, FAKE_CUPY_GPUS="1")
    said = [line for line in r.stderr.splitlines() if line.startswith("xpnet train")]
    assert r.returncode != 0 and len(said) == 1, r.stderr
    assert ("2 processes on this machine from cuda:0 need cuda:0..cuda:1, but only 1 GPU(s) are visible: launch "
            "at most 1 per machine (mpiexec -n 1), one GPU each") in said[0]


@needs_mpi
def test_xpnet_train_distributed_on_two_simulated_gpus(tmp_path, tiny):
    r = mpirun(2, ["-m", "xpnet", "train", "--distributed", "--device", "cuda", "--iters", "40",
                   "--data-dir", str(tiny), *TRAIN, "--out", "run"], tmp_path, timeout=150)
    assert r.returncode == 0, r.stderr
    ck = load_checkpoint(tmp_path / "run" / "model.npz", device="cpu")
    assert ck.meta["step"] == 40 and ck.meta["trainer"]["processes"] == 2
    reps = reports(tmp_path)
    assert len(reps) == 2 and sorted(tuple(rep["contexts"]) for rep in reps) == [(0,), (1,)]
    assert all(rep["cross_device"] == 0 for rep in reps)

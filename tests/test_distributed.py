"""Data-parallel training over MPI processes (CPU): the same steps as one process, faults end the job.

The tests that launch processes need mpi4py and mpiexec and skip without them, saying so; the
rules that need no launcher (which GPU a process takes, a net on the wrong device) always run."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.distributed import Communicator, DistributedError, gpu_of_process, one_gpu_each
from xpnet.trainer import Trainer

from .mpi_launcher import MPIEXEC, needs_mpi

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = '''
import sys, numpy as np, xpnet
from xpnet.trainer import Trainer
world, out, iters, data = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
(x, t), (xt, tt) = xpnet.load_idx_dataset(data)
net = xpnet.TwoLayerNet(x.shape[1], 50, 3, device="cpu", dtype="float32", seed=0)
comm = xpnet.device("cpu").communicator() if world > 1 else None
tr = Trainer(net, x, t, xt, tt, batch_size=100 // world, iters=iters, seed=1, log=None, progress=False,
             communicator=comm)
h = tr.fit()
if tr.comm.rank == 0:
    np.savez(out, **net.params, loss=np.array(h.loss), acc=np.array(h.test_acc), train=np.array(h.train_acc))
'''


def mpirun(n, *args, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XPNET_DEVICE": "cpu", "OMPI_MCA_rmaps_base_oversubscribe": "1"}
    return subprocess.run([MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-n", str(n), sys.executable, *args],
                          env=env, capture_output=True, text=True, timeout=timeout)


@needs_mpi
def test_two_processes_compute_the_steps_of_one_with_twice_the_batch(tmp_path, tiny):
    (tmp_path / "dp.py").write_text(SCRIPT)
    one = subprocess.run([sys.executable, str(tmp_path / "dp.py"), "1", str(tmp_path / "one.npz"), "200", str(tiny)],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    two = mpirun(2, str(tmp_path / "dp.py"), "2", str(tmp_path / "two.npz"), "200", str(tiny))
    assert two.returncode == 0, two.stderr
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    for k in ("W1", "b1", "W2", "b2"):  # equal within float32 summation order
        np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=2e-6)
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-4)  # the global batch's loss, every step
    np.testing.assert_array_equal(b["acc"], a["acc"])  # sharded evaluation, counts reduced
    assert len(b["train"]) == len(a["train"])  # an epoch is of global batches


@needs_mpi
def test_xpnet_train_distributed_writes_one_run_from_rank_0(tmp_path, tiny):
    r = mpirun(2, "-m", "xpnet", "train", "--distributed", "--data-dir", str(tiny), "--batch-size", "50",
               "--iters", "120", "--hidden", "20", "--quiet", "--no-plot", "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("final test accuracy") == 1  # one voice
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["history.json", "model.npz"]
    from xpnet.checkpoint import load_checkpoint

    ck = load_checkpoint(tmp_path / "run" / "model.npz", device="cpu")  # loads on one device
    assert ck.meta["step"] == 120 and ck.meta["trainer"]["batch_size"] == 50


def ends_at_once(script):
    """Run ``script`` on 2 processes; the job must fail, and fast (no rank waits for a timeout)."""
    t0 = time.time()
    r = mpirun(2, str(script), timeout=100)
    assert r.returncode != 0 and time.time() - t0 < 90
    return r


def train_where_rank_1(tmp_path, data, does):
    """A script: ``xpnet train --distributed`` on ``data`` in which rank 1's steps run ``does`` instead."""
    script = tmp_path / "rank1.py"
    script.write_text(
        "import os, signal, sys\nfrom mpi4py import MPI\nimport xpnet.cli, xpnet.trainer\n"
        "if MPI.COMM_WORLD.Get_rank() == 1:\n"
        f"    def steps(self, k):\n        {does}\n"
        "    xpnet.trainer.Trainer.run_steps = steps\n"
        f"sys.exit(xpnet.cli.main(['train', '--distributed', '--data-dir', {str(data)!r}, '--iters', '300', "
        f"'--hidden', '10', '--quiet', '--no-plot', '--out', {str(tmp_path / 'run')!r}]))\n")
    return script


@needs_mpi
def test_a_fault_on_one_rank_ends_the_job_at_once(tmp_path, tiny):
    r = ends_at_once(train_where_rank_1(tmp_path, tiny, "raise RuntimeError('rank 1 lost its data')"))
    assert "rank 1 of 2 failed: RuntimeError: rank 1 lost its data; ending the job" in r.stderr


@pytest.mark.parametrize("death", ["os.kill(os.getpid(), signal.SIGKILL)", "os._exit(3)"])
@needs_mpi
def test_a_rank_that_dies_ends_the_job_on_every_rank(tmp_path, tiny, death):
    """A rank killed, or gone without a word, while the other waits in the allreduce: the launcher ends the job."""
    r = ends_at_once(train_where_rank_1(tmp_path, tiny, death))
    said = r.stdout + r.stderr  # Open MPI names the rank: "process rank 1" or "[prterun-<host>-<job>@1,1]"
    assert re.search(r"rank 1\b|@1,1\]", said), said


@pytest.mark.slow
def test_distributed_without_a_launcher_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI", "PMIX_"))}
    r = subprocess.run([sys.executable, "-m", "xpnet", "train", "--distributed", "--device", "cpu", "--iters", "5",
                        "--out", str(tmp_path / "r")], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "needs an MPI launcher: mpiexec -n 2 xpnet train --distributed" in r.stderr


@needs_mpi
def test_a_distributed_run_resumes_with_the_same_processes_to_the_same_bits(tmp_path, tiny):
    common = ["-m", "xpnet", "train", "--distributed", "--data-dir", str(tiny), "--batch-size", "50", "--hidden", "20",
              "--quiet", "--no-plot", "--eval-interval", "60"]
    whole = mpirun(2, *common, "--iters", "240", "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    half = mpirun(2, *common, "--iters", "120", "--out", str(tmp_path / "half"))
    assert half.returncode == 0, half.stderr
    more = mpirun(2, "-m", "xpnet", "train", "--distributed", "--data-dir", str(tiny), "--quiet", "--no-plot",
                  "--iters", "240", "--resume", str(tmp_path / "half"))
    assert more.returncode == 0, more.stderr
    from xpnet.checkpoint import load_checkpoint

    a, b = (load_checkpoint(tmp_path / d / "model.npz", device="cpu") for d in ("whole", "half"))
    assert b.meta["step"] == 240
    for k in a.net.params:
        np.testing.assert_array_equal(a.net.params[k], b.net.params[k])


@needs_mpi
def test_epochs_count_global_batches_and_a_resume_needs_the_same_processes(tmp_path, tiny):
    r = mpirun(2, "-m", "xpnet", "train", "--distributed", "--data-dir", str(tiny), "--batch-size", "50", "--epochs",
               "2", "--hidden", "10", "--quiet", "--no-plot", "--out", str(tmp_path / "e"))
    assert r.returncode == 0, r.stderr
    from xpnet.checkpoint import load_checkpoint

    meta = load_checkpoint(tmp_path / "e" / "model.npz", device="cpu").meta
    assert meta["trainer"]["iters"] == 2 * (300 // (50 * 2)) and meta["trainer"]["processes"] == 2  # 300 images
    one = subprocess.run([sys.executable, "-m", "xpnet", "train", "--data-dir", str(tiny), "--iters", "200", "--resume",
                          str(tmp_path / "e")],
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert one.returncode == 2 and "trained by 2 process(es) and this resume has 1" in one.stderr


@needs_mpi
def test_a_python_api_fault_on_rank_0_ends_every_rank(tmp_path, tiny):
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "f.py").write_text(
        f"import xpnet\nfrom xpnet.trainer import Trainer\n(x, t), (xt, tt) = xpnet.load_idx_dataset({str(tiny)!r})\n"
        "net = xpnet.TwoLayerNet(64, 10, 3, device='cpu', dtype='float32', seed=0)\n"
        "tr = Trainer(net, x, t, xt, tt, batch_size=50, iters=100, log=None,\n"
        "             progress=False, communicator=xpnet.device('cpu').communicator())\n"
        f"tr.fit(checkpoint={str(tmp_path / 'afile' / 'ck.npz')!r})\n")
    r = ends_at_once(tmp_path / "f.py")
    assert "rank 0 of 2 failed: CheckpointWriteError" in r.stderr


def test_each_process_of_a_machine_takes_its_own_gpu():
    assert [gpu_of_process(0, k, 4, 8) for k in range(4)] == [0, 1, 2, 3]
    assert [gpu_of_process(2, k, 2, 4) for k in range(2)] == [2, 3]  # --device cuda:2: GPUs 2 and 3
    assert gpu_of_process(1, 0, 1, 2) == 1  # one process keeps the GPU it was given
    # a launcher that gives each process its own GPU (CUDA_VISIBLE_DEVICES per rank): each sees one
    assert [gpu_of_process(0, k, 4, 1) for k in range(4)] == [0, 0, 0, 0]
    one_gpu_each(0, 4, 1, ["0000:18:00.0", "0000:19:00.0", "0000:1A:00.0", "0000:1B:00.0"])  # four GPUs
    with pytest.raises(DistributedError, match=r"4 processes on this machine from cuda:0 need cuda:0..cuda:3.*"
                                               r"only 2 GPU\(s\) are visible.*at most 2 per machine"):
        one_gpu_each(0, 4, 2, ["0000:18:00.0"] * 4)  # all four see the same two and took the first
    with pytest.raises(DistributedError, match=r"at most 1 per machine.*or start from --device cuda:0"):
        one_gpu_each(1, 2, 2, ["0000:19:00.0"] * 2)
    with pytest.raises(DistributedError, match=r"cuda:2 is not visible: this machine shows 2 GPU\(s\)"):
        gpu_of_process(2, 0, 1, 2)


class _SecondOfTwoOnCpu(Communicator):
    """What a communicator tells the trainer, without MPI: rank 1 of 2, computing on the CPU."""

    rank, size, engine = 1, 2, "test"
    device = xpnet.device("cpu")


def test_the_trainer_refuses_a_net_off_the_communicators_device():
    x = np.random.default_rng(0).random((20, 4), dtype=np.float32)
    t = np.arange(20) % 2
    net = xpnet.TwoLayerNet(4, 3, 2, device="array_api_strict", dtype="float32", seed=0)
    with pytest.raises(ValueError, match=r"communicator.*reduces on cpu but the net is on array_api_strict.*"
                                         r"communicator.device"):
        Trainer(net, x, t, batch_size=5, iters=2, log=None, progress=False, communicator=_SecondOfTwoOnCpu())
    on_cpu = xpnet.TwoLayerNet(4, 3, 2, device="cpu", dtype="float32", seed=0)
    assert Trainer(on_cpu, x, t, batch_size=5, iters=2, log=None, progress=False,
                   communicator=_SecondOfTwoOnCpu()).device.name == "cpu"


@needs_mpi
def test_a_communicator_places_its_process_on_the_machine(tmp_path):
    (tmp_path / "where.py").write_text(
        "import xpnet\nc = xpnet.device('cpu').communicator()\n"
        "print('rank', c.rank, 'of', c.size, 'local', c.local_rank, 'of', c.local_size, 'on', c.device.name)\n")
    r = mpirun(2, str(tmp_path / "where.py"), timeout=60)
    assert r.returncode == 0, r.stderr
    said = sorted(line for line in r.stdout.splitlines() if line.startswith("rank"))
    assert said == ["rank 0 of 2 local 0 of 2 on cpu", "rank 1 of 2 local 1 of 2 on cpu"]


AGREE = '''
import sys, numpy as np, xpnet
from xpnet.trainer import Trainer
case, out, data = sys.argv[1], sys.argv[2], sys.argv[3]
(x, t), (xt, tt) = xpnet.load_idx_dataset(data)
comm = xpnet.device("cpu").communicator()
r = comm.rank
seed = None if case == "unseeded" else (r if case == "seeds" else 0)
net = xpnet.TwoLayerNet(x.shape[1], 20 + 5 * r * (case == "sizes"), 3, device="cpu", dtype="float32", seed=seed)
kw = {"lr": 0.1 * (1 + r * (case == "lr")), "iters": 40 + 10 * r * (case == "iters"),
      "seed": None if case == "unseeded" else 1}
if case == "data":
    x = x[::-1].copy() if r else x
tr = Trainer(net, x, t, xt, tt, batch_size=50, log=None, progress=False, communicator=comm, **kw)
tr.fit()
np.savez(f"{out}-{r}.npz", **net.params)
'''


@needs_mpi
@pytest.mark.parametrize("case,named", [("lr", "lr is 0.1 on rank 0 but 0.2 on rank 1"),
                                        ("iters", "iters is 40 on rank 0 but 50 on rank 1"),
                                        ("sizes", "[64, 25, 3]"), ("data", "data is"),
                                        ("seeds", "initial weights differ between the processes (rank 1's")])
def test_settings_that_differ_between_processes_are_named_at_the_start(tmp_path, tiny, case, named):
    """They gave a silently averaged run, a heap corruption in MPI, MPI_ERR_TRUNCATE or a hang."""
    (tmp_path / "a.py").write_text(AGREE)
    r = mpirun(2, str(tmp_path / "a.py"), case, str(tmp_path / "p"), str(tiny), timeout=60)
    assert r.returncode != 0 and named in r.stderr, r.stderr[-2000:]
    assert "not running the same training" in r.stderr or case == "seeds"
    assert not list(tmp_path.glob("p-*.npz"))  # refused before a step


@needs_mpi
def test_an_unseeded_net_and_run_take_rank_0s_weights_and_batches(tmp_path, tiny):
    (tmp_path / "a.py").write_text(AGREE)
    r = mpirun(2, str(tmp_path / "a.py"), "unseeded", str(tmp_path / "p"), str(tiny), timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = np.load(tmp_path / "p-0.npz"), np.load(tmp_path / "p-1.npz")
    for k in a.files:  # one run: the very same parameters on both processes
        np.testing.assert_array_equal(a[k], b[k])


@needs_mpi
def test_xpnet_train_names_a_difference_once_and_exits_2(tmp_path, tiny):
    script = tmp_path / "lr.py"
    script.write_text(
        "import sys\nfrom mpi4py import MPI\nimport xpnet.cli\nr = MPI.COMM_WORLD.Get_rank()\n"
        f"sys.exit(xpnet.cli.main(['train', '--distributed', '--data-dir', {str(tiny)!r}, '--iters', '50', "
        f"'--lr', str(0.1 * (1 + r)), '--quiet', '--no-plot', '--out', {str(tmp_path / 'run')!r}]))\n")
    r = mpirun(2, str(script), timeout=60)
    assert r.returncode == 2 and r.stderr.count("not running the same training") == 1, r.stderr[-2000:]
    assert not (tmp_path / "run").exists()

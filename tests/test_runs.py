"""xpnet/runs.py: the folder of an ``xpnet train`` run -- its checkpoint written as it goes, a real
SIGINT then --resume, --overwrite, an earlier run kept, a bad --out refused at once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xpnet.checkpoint import checkpoint_meta, load_checkpoint
from xpnet.cli import main

from .idx_files import make_tiny_idx

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--iters", "3000", "--hidden", "20", "--quiet", "--no-plot", "--eval-interval", "600"]


def xpnet_train(*args, cwd, **kw):
    """``xpnet train ...`` in a new process, for what only a process shows (a signal, a pipe)."""
    env = {**os.environ, "XPNET_DEVICE": "cpu", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "xpnet", "train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, **kw)


@pytest.fixture
def train(tmp_path, monkeypatch, capsys):
    """``xpnet train ...`` in this process, in tmp_path on the CPU: (exit status, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XPNET_DEVICE", "cpu")

    def run(*args):
        rc = main(["train", *args])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_a_real_sigint_then_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    whole = xpnet_train(*ARGS, "--out", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr

    env = {**os.environ, "XPNET_DEVICE": "cpu", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "xpnet", "train", *ARGS, "--out", "cut"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "cut" / "model.npz"
    deadline = time.time() + 120
    while time.time() < deadline and not (ckpt.exists() and checkpoint_meta(ckpt)["step"] >= 600):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "SIGINT at step" in err and "Traceback" not in err
    assert "xpnet train --resume cut" in err  # the real folder, not a placeholder
    step = checkpoint_meta(ckpt)["step"]
    assert 600 <= step < 3000
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == ["history.json", "model.npz"]  # no .tmp-*

    resumed = xpnet_train("--resume", "cut", "--quiet", "--no-plot", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_checkpoint(tmp_path / "whole" / "model.npz", device="cpu"), load_checkpoint(ckpt, device="cpu")
    for k in a.net.params:
        np.testing.assert_array_equal(a.net.params[k], b.net.params[k])
    assert a.meta["history"]["loss"] == b.meta["history"]["loss"]
    assert a.meta["history"]["test_acc"] == b.meta["history"]["test_acc"]


def test_an_earlier_run_is_neither_overwritten_nor_mixed(tmp_path, train):
    small = ["--quiet", "--no-plot", "--out", "r", "--data-dir", str(tmp_path / "d")]
    make_tiny_idx(tmp_path / "d")
    assert train("--iters", "50", "--hidden", "10", *small)[0] == 0
    before = (tmp_path / "r" / "model.npz").read_bytes()
    rc, _, err = train("--iters", "50", "--hidden", "12", *small)
    assert rc == 2 and "holds an earlier run (step 50 of 50)" in err
    assert "--resume" in err and "--overwrite" in err
    assert (tmp_path / "r" / "model.npz").read_bytes() == before
    assert train("--iters", "50", "--hidden", "12", *small, "--overwrite")[0] == 0
    assert load_checkpoint(tmp_path / "r" / "model.npz").net.sizes == [64, 12, 3]


def test_an_impossible_out_fails_at_once_and_a_failed_run_leaves_no_folder(tmp_path, train):
    t0 = time.time()
    rc, _, err = train("--out", "/proc/xpnet-cannot-be-here/run")
    assert rc == 2 and "--out /proc/xpnet-cannot-be-here/run" in err and time.time() - t0 < 30
    (tmp_path / "afile").write_text("x")
    rc, _, err = train("--out", "afile")
    assert rc == 2 and "not a folder" in err
    rc, _, err = train("--out", "new/run", "--data-dir", str(tmp_path / "nothing-here"))
    assert rc == 2 and not (tmp_path / "new").exists()  # created for the run, removed again


def test_resume_needs_a_run_folder(tmp_path, train):
    rc, _, err = train("--resume", "nowhere")
    assert rc == 2 and "--resume nowhere: no such folder" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = train("--resume", "empty")
    assert rc == 2 and "holds no model.npz" in err
    rc, _, err = train("--resume", "empty", "--out", "x")
    assert rc == 2 and "leave out --out" in err


@pytest.mark.slow
def test_train_piped_into_head_ends_quietly_after_writing_its_files(tmp_path):
    env = {**os.environ, "XPNET_DEVICE": "cpu", "PYTHONPATH": str(ROOT)}
    # MNIST: each evaluation takes long enough that the lines after head's two meet a closed pipe
    cmd = f"{sys.executable} -m xpnet train --iters 400 --hidden 10 --eval-interval 100 --no-plot --out p | head -2"
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert "BrokenPipeError" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stdout.splitlines()) == 2
    assert (tmp_path / "p" / "history.json").exists() and checkpoint_meta(tmp_path / "p" / "model.npz")["step"] == 400


def test_sigterm_saves_the_run_and_exits_143(tmp_path):
    env = {**os.environ, "XPNET_DEVICE": "cpu", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "xpnet", "train", *ARGS, "--out", "cut"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "cut" / "model.npz"
    deadline = time.time() + 120
    while time.time() < deadline and not ckpt.exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err  # 128 + 15, as a shell reports a job ended by SIGTERM
    assert "SIGTERM at step" in err and "xpnet train --resume cut" in err and "Traceback" not in err


HOLDER = """
import sys, time
from xpnet.runs import RunFolder
RunFolder.new(sys.argv[1], overwrite=True)
print("holding", flush=True)
time.sleep(60)
"""


def test_a_folder_a_live_run_writes_is_refused_and_a_dead_runs_lock_is_not(tmp_path):
    from xpnet.exceptions import RunFolderError
    from xpnet.runs import LOCK, RunFolder

    out = tmp_path / "r"
    first = RunFolder.new(out)
    for second in (lambda: RunFolder.new(out, overwrite=True), lambda: RunFolder.resume(out)):
        with pytest.raises(RunFolderError, match=rf"being written by a run still going \(process {os.getpid()} on "):
            second()
    first.release()
    assert not (out / LOCK).exists()
    RunFolder.new(out, overwrite=True).release()

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        with pytest.raises(RunFolderError, match=rf"\(process {holder.pid} on "):
            RunFolder.new(out, overwrite=True)
    finally:
        holder.kill()
        holder.wait()
    assert f"process {holder.pid}" in (out / LOCK).read_text()  # killed: its lock file stays behind ...
    RunFolder.new(out, overwrite=True).release()  # ... and blocks nothing


def test_train_leaves_no_lock_behind(tmp_path, train):
    from xpnet.runs import LOCK

    assert train("--iters", "5", "--out", str(tmp_path / "r"), "--no-plot", "--quiet")[0] == 0
    assert not (tmp_path / "r" / LOCK).exists()


def test_a_folder_where_a_run_file_would_go_is_refused_before_the_run(tmp_path, train):
    (tmp_path / "r" / "history.json").mkdir(parents=True)
    rc, _, err = train("--iters", "5", "--out", str(tmp_path / "r"), "--no-plot", "--quiet", "--overwrite")
    assert rc == 2 and "history.json is a folder, where the run writes its history.json" in err
    assert not (tmp_path / "r" / "model.npz").exists()


def test_an_unwritable_resume_folder_is_named_as_resume(tmp_path, train, monkeypatch):
    import errno

    from xpnet import runs

    assert train("--iters", "5", "--out", str(tmp_path / "r"), "--no-plot", "--quiet")[0] == 0

    def denied(path, write):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(runs, "write_atomic", denied)  # root writes anywhere: the refusal is simulated
    rc, _, err = train("--resume", str(tmp_path / "r"), "--no-plot")
    assert rc == 2 and f"--resume {tmp_path / 'r'} is not writable (Permission denied)" in err


def test_an_out_name_too_long_for_the_file_system_is_one_line(tmp_path, train):
    rc, _, err = train("--iters", "5", "--out", str(tmp_path / ("a" * 300)), "--no-plot")
    assert rc == 2 and "Traceback" not in err
    assert "cannot create it (File name too long); choose a folder you can write to, with a shorter name" in err

"""`xpnet train` run folders: checkpoints, a real SIGINT, --resume, --overwrite, bad --out."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xpnet.checkpoint import checkpoint_meta, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--iters", "3000", "--hidden", "20", "--quiet", "--no-plot", "--eval-interval", "600"]


def xpnet_train(*args, cwd, **kw):
    env = {**os.environ, "XPNET_DEVICE": "cpu", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "xpnet", "train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, **kw)


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


def test_an_earlier_run_is_neither_overwritten_nor_mixed(tmp_path):
    first = xpnet_train("--iters", "50", "--hidden", "10", "--quiet", "--no-plot", "--out", "r", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "r" / "model.npz").read_bytes()
    again = xpnet_train("--iters", "50", "--hidden", "12", "--quiet", "--no-plot", "--out", "r", cwd=tmp_path)
    assert again.returncode == 2 and "holds an earlier run (step 50 of 50)" in again.stderr
    assert "--resume" in again.stderr and "--overwrite" in again.stderr
    assert (tmp_path / "r" / "model.npz").read_bytes() == before
    over = xpnet_train("--iters", "50", "--hidden", "12", "--quiet", "--no-plot", "--out", "r", "--overwrite",
                       cwd=tmp_path)
    assert over.returncode == 0, over.stderr
    assert load_checkpoint(tmp_path / "r" / "model.npz").net.sizes == [784, 12, 10]


def test_an_impossible_out_fails_at_once_and_a_failed_run_leaves_no_folder(tmp_path):
    t0 = time.time()
    bad = xpnet_train("--out", "/proc/xpnet-cannot-be-here/run", cwd=tmp_path)
    assert bad.returncode == 2 and "--out /proc/xpnet-cannot-be-here/run" in bad.stderr
    assert "Traceback" not in bad.stderr and time.time() - t0 < 30
    (tmp_path / "afile").write_text("x")
    notdir = xpnet_train("--out", "afile", cwd=tmp_path)
    assert notdir.returncode == 2 and "not a folder" in notdir.stderr
    nodata = xpnet_train("--out", "new/run", "--data-dir", str(tmp_path / "nothing-here"), cwd=tmp_path)
    assert nodata.returncode == 2 and not (tmp_path / "new").exists()  # created for the run, removed again


def test_resume_needs_a_run_folder(tmp_path):
    r = xpnet_train("--resume", "nowhere", cwd=tmp_path)
    assert r.returncode == 2 and "--resume nowhere: no such folder" in r.stderr
    (tmp_path / "empty").mkdir()
    r = xpnet_train("--resume", "empty", cwd=tmp_path)
    assert r.returncode == 2 and "holds no model.npz" in r.stderr
    r = xpnet_train("--resume", "empty", "--out", "x", cwd=tmp_path)
    assert r.returncode == 2 and "leave out --out" in r.stderr


def test_train_piped_into_head_ends_quietly_after_writing_its_files(tmp_path):
    env = {**os.environ, "XPNET_DEVICE": "cpu", "PYTHONPATH": str(ROOT)}
    cmd = f"{sys.executable} -m xpnet train --iters 1200 --hidden 10 --eval-interval 100 --no-plot --out p | head -2"
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert "BrokenPipeError" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stdout.splitlines()) == 2
    assert (tmp_path / "p" / "history.json").exists() and checkpoint_meta(tmp_path / "p" / "model.npz")["step"] == 1200


def test_a_run_at_chance_level_exits_non_zero_saying_so(tmp_path):
    r = xpnet_train("--lr", "1e4", "--iters", "1200", "--hidden", "20", "--quiet", "--no-plot", "--out", "c",
                    cwd=tmp_path)
    assert r.returncode in (1, 2), r.stdout
    assert ("chance level" in r.stderr and "smaller learning rate" in r.stderr) or "diverged" in r.stderr, r.stderr

"""Runs that survive: checkpoints at every evaluation, SIGINT/SIGTERM, exact resume."""

import json
import os
import signal

import numpy as np
import pytest

import xpnet
from xpnet.checkpoint import checkpoint_meta, load_checkpoint
from xpnet.trainer import CheckpointWriteError, Trainer, TrainingInterrupted


@pytest.fixture(scope="module")
def data():
    (x, t), (xt, tt) = xpnet.load_mnist()
    return x[:2000], t[:2000], xt[:500], tt[:500]


def make(data, optimizer="sgd", lr=None, iters=200, log=None, device="cpu"):
    net = xpnet.TwoLayerNet(784, 30, 10, device=device, dtype="float32", seed=1)
    return Trainer(net, *data, optimizer=optimizer, lr=lr, iters=iters, batch_size=50, eval_interval=40,
                   seed=3, log=log, progress=False)


class SignalAt:
    """A log callback that sends a real signal to this process at the n-th evaluation."""

    def __init__(self, n, sig=signal.SIGINT):
        self.n, self.sig, self.seen = n, sig, 0

    def __call__(self, line):
        self.seen += 1
        if self.seen == self.n:
            os.kill(os.getpid(), self.sig)


@pytest.mark.parametrize("optimizer,lr", [("sgd", None), ("momentum", 0.05), ("adam", 0.002)])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, data, optimizer, lr, sig):
    whole = make(data, optimizer, lr)
    h_whole = whole.fit(checkpoint=tmp_path / "whole.npz")

    part = make(data, optimizer, lr, log=SignalAt(3, sig))
    with pytest.raises(TrainingInterrupted, match=f"{sig.name} at step") as e:
        part.fit(checkpoint=tmp_path / "run.npz")
    assert 0 < e.value.step < 200 and e.value.step % part.report_every == 0
    assert checkpoint_meta(tmp_path / "run.npz")["step"] == e.value.step
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored

    resumed = Trainer.resume(tmp_path / "run.npz", *data, log=None, progress=False)
    assert resumed.step == e.value.step
    h = resumed.fit(checkpoint=tmp_path / "run.npz")
    for k in whole.net.params:  # exactly, not approximately
        np.testing.assert_array_equal(resumed.net.params[k], whole.net.params[k])
    assert h.loss == h_whole.loss and h.eval_iters == h_whole.eval_iters and h.test_acc == h_whole.test_acc
    assert h.final_test_acc == h_whole.final_test_acc and h.step == 200


def test_checkpoint_holds_the_whole_run(tmp_path, data):
    tr = make(data, "adam", 0.002, iters=80)
    tr.fit(checkpoint=tmp_path / "c.npz")
    ck = load_checkpoint(tmp_path / "c.npz", device="cpu")  # the run's device, whatever the default is here
    meta = ck.meta
    assert meta["step"] == 80 and meta["device"] == "cpu"
    assert meta["optimizer"]["class"] == "Adam" and meta["optimizer"]["iter"] == 80
    assert {k.split("/")[1] for k in ck.arrays} == {"m", "v"} and meta["rng"]["kind"] == "pcg64"
    assert meta["history"]["eval_iters"] == [0, 40] and len(meta["history"]["loss"]) == 80
    assert len(meta["history"]["test_loss"]) == 2 and all(np.isfinite(meta["history"]["test_loss"]))
    np.testing.assert_array_equal(ck.net.params["W1"], tr.net.params["W1"])
    json.dumps(meta)  # the state is plain JSON beside the arrays


def test_resume_refuses_other_data_and_plain_checkpoints(tmp_path, data):
    tr = make(data, iters=40)
    tr.fit(checkpoint=tmp_path / "c.npz")
    x, t, xt, tt = data
    with pytest.raises(ValueError, match="resume on the same data"):
        Trainer.resume(tmp_path / "c.npz", x[:1000], t[:1000], xt, tt)
    xpnet.save_net(tr.net, tmp_path / "plain.npz")
    with pytest.raises(ValueError, match="no training run to resume"):
        Trainer.resume(tmp_path / "plain.npz", *data)
    more = Trainer.resume(tmp_path / "c.npz", *data, iters=80, log=None, progress=False)
    assert more.fit().step == 80  # a finished run can be extended


def test_a_full_disk_keeps_the_last_good_checkpoint(tmp_path, data, monkeypatch):
    import errno

    from xpnet import atomic

    tr = make(data, iters=120)
    real = atomic.os.fsync
    calls = {"n": 0}

    def full_after_two(fd):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(atomic.os, "fsync", full_after_two)
    with pytest.raises(CheckpointWriteError,
                       match=r"step 80 .*the disk is full; the last good checkpoint \(step 40\) is kept"):
        tr.fit(checkpoint=tmp_path / "c.npz")
    assert checkpoint_meta(tmp_path / "c.npz")["step"] == 40
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left behind


def test_a_collapse_without_nan_is_called_what_it_is(data):
    net = xpnet.TwoLayerNet(784, 30, 10, device="cpu", dtype="float64", seed=1)
    tr = Trainer(net, *data, lr=1e4, iters=200, batch_size=50, eval_interval=40, log=None, progress=False)
    with pytest.warns(RuntimeWarning, match="chance level for 10 classes.*smaller learning rate"):
        h = tr.fit()
    assert "did not learn" in h.verdict and all(np.isfinite(h.loss))
    ok = make(data).fit()
    assert ok.verdict == ""


def test_nan_in_the_data_is_named_not_called_divergence(data):
    x, t, xt, tt = data
    x = x.copy()
    x[5, 3] = np.nan
    with pytest.raises(ValueError, match="x_train holds 1 NaN or infinite value, the first in sample 5"):
        Trainer(xpnet.TwoLayerNet(784, 30, 10, device="cpu", seed=1), x, t, xt, tt)

"""Trainer.resume's checks (xpnet/io/run_format.py, checkpoint.load_run): a damaged record, other
data of the same size, NaN parameters and optimizer state that does not fit are refused, named;
a reader's own net, an xpnet.Net of any layers and a user's own optimizer resume to the bits."""

import json
import signal

import numpy as np
import pytest

import xpnet
from xpnet.exceptions import CheckpointError
from xpnet.trainer import Trainer, TrainingInterrupted

from .book import ReaderNet
from .samples import three_classes
from .test_trainer import SignalAt

KW = {"batch_size": 20, "eval_interval": 10, "seed": 1, "progress": False, "log": None}


@pytest.fixture(scope="module")
def data():
    x, t = three_classes()
    return x, t, x[:60], t[:60]


def net_(seed=0, hidden=6):
    return xpnet.TwoLayerNet(20, hidden, 3, device="cpu", dtype="float64", seed=seed)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, data):
    """An Adam run stopped at step 30 of 60: the file every damage below starts from."""
    path = tmp_path_factory.mktemp("run") / "run.npz"
    Trainer(net_(), *data, optimizer="adam", lr=0.01, iters=30, **KW).fit(checkpoint=path)
    with np.load(path) as f:
        members = {k: f[k] for k in f.files}
    return path, members


def damaged(tmp_path, saved, edit_record=None, edit_arrays=None):
    """A copy of the saved run with its record and arrays edited as given."""
    _, members = saved
    members = dict(members)
    record = json.loads(str(members["__meta__"]))
    if edit_record:
        edit_record(record["state"])
    if edit_arrays:
        edit_arrays(members)
        record["state_arrays"] = {k[6:]: {"dtype": v.dtype.str, "shape": list(v.shape)}
                                  for k, v in members.items() if k.startswith("state/")}
    members["__meta__"] = np.array(json.dumps(record))
    path = tmp_path / "damaged.npz"
    np.savez(path, **members)
    return path


def _set(path, value):
    def edit(d):
        *head, last = path
        for k in head:
            d = d[k]
        if value is KeyError:
            del d[last]
        else:
            d[last] = value(d[last]) if callable(value) else value
    return edit


RECORD_DAMAGE = {
    "no n_train": (("trainer", "n_train"), KeyError, "settings lack 'n_train'"),
    "no rng": (("rng",), KeyError, "record lacks 'rng'"),
    "an unknown setting": (("trainer", "momentum"), 0.9, r"unknown trainer settings \['momentum'\]"),
    "a negative step": (("step",), -1, "the step is '-1'"),
    "a step past iters": (("step",), 999, "step 999, past its own iters=30"),
    "a step not the history's": (("step",), 20, "recorded at step 30, the checkpoint at step 20"),
    "a loss that is text": (("history", "loss"), lambda v: v[:3] + ["x"] + v[4:], r"'loss' holds 'x'"),
    "a NaN loss": (("history", "loss"), lambda v: v[:3] + [float("nan")] + v[4:], "finite numbers"),
    "an accuracy of 1.5": (("history", "train_acc"), lambda v: [1.5] + v[1:], r"accuracies in \[0, 1\]"),
    "evaluations out of order": (("history", "eval_iters"), lambda v: v[::-1], "not in the order"),
    "losses lost": (("history", "loss"), lambda v: v[:10], "holds 10 losses for 30 steps"),
    "a history that is a list": (("history",), [], "history is a list"),
    "a negative Adam step count": (("optimizer", "iter"), -1, "iter is '-1'"),
    "Adam at step 30 counting none": (("optimizer", "iter"), 0, "after steps were taken"),
    "an unknown optimizer": (("optimizer", "class"), "Adamm", "Adamm, which is not one of xpnet's"),
    "an rng state of nothing": (("rng", "state"), {}, "generator does not load"),
}


@pytest.mark.parametrize("case", list(RECORD_DAMAGE))
def test_a_damaged_run_record_is_refused_naming_the_field(tmp_path, saved, data, case):
    where, value, match = RECORD_DAMAGE[case]
    path = damaged(tmp_path, saved, _set(where, value))
    with pytest.raises(CheckpointError, match=match):
        Trainer.resume(path, *data)


def _nan_in(name):
    def edit(members):
        a = members[name].copy()
        a.flat[0] = np.nan
        members[name] = a
    return edit


ARRAY_DAMAGE = {
    "NaN weights": (_nan_in("param/W1"), "parameter 'W1' holds NaN or infinite values; the file is damaged"),
    "a NaN moment": (_nan_in("state/optimizer/m/W1"), "optimizer state 'optimizer/m/W1' holds NaN"),
    "Adam at step 30 without its moments": (
        lambda m: [m.pop(k) for k in list(m) if k.startswith("state/optimizer/")],
        "Adam has no 'm' of 'W1' although steps were taken"),
    "a moment of another shape": (lambda m: m.update({"state/optimizer/v/b2": np.zeros(4)}),
                                  r"Adam's v/b2 is float64 \(4,\), its parameter float64 \(3,\)"),
    "a moment of a parameter it lacks": (lambda m: m.update({"state/optimizer/v/W9": np.zeros(3)}),
                                         "holds 'v/W9', which is none of its state"),
}


@pytest.mark.parametrize("case", list(ARRAY_DAMAGE))
def test_damaged_parameters_or_optimizer_state_are_refused(tmp_path, saved, data, case):
    edit, match = ARRAY_DAMAGE[case]
    with pytest.raises(CheckpointError, match=match):
        Trainer.resume(damaged(tmp_path, saved, edit_arrays=edit), *data)


def test_the_undamaged_copy_resumes(tmp_path, saved, data):
    """The damage helper itself changes nothing unless told (so the refusals above are the damage's)."""
    tr = Trainer.resume(damaged(tmp_path, saved, edit_arrays=lambda m: None), *data, iters=60, log=None,
                        progress=False)
    assert tr.step == 30 and tr.fit().step == 60


@pytest.mark.parametrize("other", ["shuffled", "rescaled", "relabelled", "other test set"])
def test_other_data_of_the_same_size_is_refused(saved, data, other):
    x, t, xt, tt = data
    if other == "shuffled":
        x, t = x[::-1].copy(), t[::-1].copy()
    elif other == "rescaled":
        x = x * 0.5
    elif other == "relabelled":
        t = (t + 1) % 3
    else:
        xt = xt + 1e-3
    with pytest.raises(ValueError, match="other data of the same size .*fingerprint differs"):
        Trainer.resume(saved[0], x, t, xt, tt)
    Trainer.resume(saved[0], *data)  # the very data: accepted


def _interrupted_and_whole(tmp_path, data, build, optimizer, iters=60):
    """(the trainer of a run interrupted by SIGINT and resumed, the uninterrupted one's)."""
    whole = Trainer(build(), *data, optimizer=optimizer(), iters=iters, **KW)
    whole.fit()
    part = Trainer(build(), *data, optimizer=optimizer(), iters=iters, **dict(KW, log=SignalAt(3, signal.SIGINT)))
    with pytest.raises(TrainingInterrupted):
        part.fit(checkpoint=tmp_path / "run.npz")
    return whole


def _same_bits(a, b):
    for k in a.params:
        np.testing.assert_array_equal(np.asarray(a.params[k]), np.asarray(b.params[k]))


def test_a_readers_own_net_resumes_to_the_bits_given_again(tmp_path, data):
    whole = _interrupted_and_whole(tmp_path, data, lambda: ReaderNet(20, 6, 3, 0.1), lambda: xpnet.Momentum(0.05))
    with pytest.raises(CheckpointError, match=r"ReaderNet, a net xpnet does not rebuild .*net=ReaderNet\(\.\.\.\)"):
        Trainer.resume(tmp_path / "run.npz", *data)
    again = ReaderNet(20, 6, 3, 0.1)
    tr = Trainer.resume(tmp_path / "run.npz", *data, net=again, log=None, progress=False)
    assert tr.net is again and 0 < tr.step < 60
    h = tr.fit()
    _same_bits(again, whole.net)
    assert h.loss == whole.history.loss and h.test_acc == whole.history.test_acc


def test_an_xpnet_net_of_any_layers_resumes_given_again(tmp_path, data):
    def build():
        g = np.random.default_rng(5)
        W1, W2 = 0.3 * g.standard_normal((20, 6)), 0.3 * g.standard_normal((6, 3))
        return xpnet.Net([xpnet.Affine(W1, np.zeros(6)), xpnet.Tanh(), xpnet.Affine(W2, np.zeros(3))],
                         xpnet.SoftmaxWithLoss())

    whole = _interrupted_and_whole(tmp_path, data, build, lambda: xpnet.SGD(0.1))
    again = build()
    Trainer.resume(tmp_path / "run.npz", *data, net=again, log=None, progress=False).fit()
    _same_bits(again, whole.net)


class MyMomentum(xpnet.Momentum):
    """A user's own optimizer: Momentum's rule, its state declared by the class it extends."""


def test_a_users_own_optimizer_resumes_given_again_with_its_settings(tmp_path, data):
    whole = _interrupted_and_whole(tmp_path, data, net_, lambda: MyMomentum(0.05, 0.8))
    path = tmp_path / "run.npz"
    with pytest.raises(CheckpointError, match=r"test_resume.MyMomentum, which is not one of xpnet's.*"
                                              r"optimizer=MyMomentum\(\.\.\.\)"):
        Trainer.resume(path, *data)
    with pytest.raises(CheckpointError, match=r"other settings: lr 0.1 \(saved: 0.05\)"):
        Trainer.resume(path, *data, optimizer=MyMomentum(0.1, 0.8))
    with pytest.raises(CheckpointError, match="not xpnet.optimizers.Momentum"):
        Trainer.resume(path, *data, optimizer=xpnet.Momentum(0.05, 0.8))
    with pytest.raises(TypeError, match="a resumed run keeps|an xpnet.Optimizer"):
        Trainer.resume(path, *data, optimizer=object())
    tr = Trainer.resume(path, *data, optimizer=MyMomentum(0.05, 0.8), log=None, progress=False)
    assert type(tr.optimizer) is MyMomentum and tr.optimizer.v is not None
    tr.fit()
    _same_bits(tr.net, whole.net)


def test_a_net_of_any_layers_resumes_to_the_bits_on_every_device(dev, tmp_path, data):
    """The checks and the given-net resume on each backend: the fingerprint of the device's data,
    optimizer state on the device, the parameters filled in place there."""
    def build():
        g = np.random.default_rng(5)
        W1, W2 = (dev.asarray(0.3 * g.standard_normal(s), dtype="float64") for s in ((20, 6), (6, 3)))
        b1, b2 = (dev.asarray(np.zeros(n), dtype="float64") for n in (6, 3))
        return xpnet.Net([xpnet.Affine(W1, b1), xpnet.Tanh(), xpnet.Affine(W2, b2)], xpnet.SoftmaxWithLoss())

    with dev.scope():
        whole = Trainer(build(), *data, optimizer="adam", lr=0.01, iters=40, **KW)
        whole.fit()
        first = Trainer(build(), *data, optimizer="adam", lr=0.01, iters=20, **KW)
        first.fit(checkpoint=tmp_path / "run.npz")
        x, t, xt, tt = data
        with pytest.raises(ValueError, match="fingerprint differs"):
            Trainer.resume(tmp_path / "run.npz", x * 0.5, t, xt, tt, net=build())
        again = build()
        tr = Trainer.resume(tmp_path / "run.npz", *data, net=again, iters=40, log=None, progress=False)
        assert tr.net is again and tr.optimizer.m["W1"] is not None
        tr.fit()
    for k in again.params:
        np.testing.assert_array_equal(dev.to_numpy(again.params[k]), dev.to_numpy(whole.net.params[k]))

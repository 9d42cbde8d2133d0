"""xpnet/trainer.py (with trainer_args, history, interrupts, verdicts and progress): mini-batch
training on the device -- it learns MNIST, SGD's rate folded into the loss gradient gives the
plain update, each fit its own history, its arguments checked; runs that survive SIGINT, SIGTERM
and a full disk, resumed to the same bits; a divergence or a collapse named for what it is."""

import io
import json
import os
import signal

import numpy as np
import pytest

import xpnet
from xpnet.checkpoint import checkpoint_meta, load_checkpoint
from xpnet.trainer import CheckpointWriteError, Trainer, TrainingDivergedError, TrainingInterrupted

from .samples import extend_net, small, three_classes


def test_short_run_learns_real_mnist(dev, mnist):
    net = xpnet.TwoLayerNet(784, 50, 10, device=dev, dtype="float32", seed=0)
    iters = 1500 if dev.kind != "array_api_strict" else 600
    tr = Trainer(net, *small(mnist), iters=iters, batch_size=100, lr=0.1, seed=0, log=None, progress=False)
    h = tr.fit()
    assert len(h.loss) == iters and all(np.isfinite(h.loss))
    assert np.mean(h.loss[-50:]) < np.mean(h.loss[:50]) / 3
    assert h.train_acc[0] < 0.3 and h.final_test_acc > (0.88 if iters >= 1500 else 0.84)
    assert h.eval_iters == list(range(0, iters, 60))  # an epoch is 6000 / 100 steps


def test_folded_sgd_matches_the_plain_update(dev, mnist):
    """The trainer folds SGD's lr into the loss gradient; the result must be the plain update's."""

    class PlainSGD(xpnet.SGD):  # a subclass is never folded
        pass

    nets = []
    for opt in (xpnet.SGD(0.1), PlainSGD(0.1)):
        net = xpnet.TwoLayerNet(784, 20, 10, device=dev, dtype="float64", seed=4)
        Trainer(net, *small(mnist, 1000), optimizer=opt, iters=50, log=None, progress=False, seed=2).fit()
        nets.append(net)
    for k in nets[0].params:
        np.testing.assert_allclose(dev.to_numpy(nets[0].params[k]), dev.to_numpy(nets[1].params[k]),
                                   rtol=1e-10, atol=1e-12)


def test_adam_keeps_its_own_default_learning_rate(mnist):
    net = xpnet.TwoLayerNet(784, 10, 10, device="cpu", dtype="float32", seed=0)
    assert Trainer(net, *small(mnist, 500), optimizer="adam").optimizer.lr == 0.001
    assert Trainer(net, *small(mnist, 500)).optimizer.lr == 0.1  # the book's SGD protocol


def test_each_fit_records_its_own_history(mnist):
    net = xpnet.TwoLayerNet(784, 10, 10, device="cpu", dtype="float32", seed=0)
    tr = Trainer(net, *small(mnist, 500), iters=20, eval_interval=5, log=None, progress=False)
    first, second = tr.fit(), tr.fit()
    assert first is not second and len(second.loss) == 20 and second.eval_iters == [0, 5, 10, 15]


def test_one_sample_training_set(mnist):
    (x, t), _ = mnist
    net = xpnet.TwoLayerNet(784, 10, 10, device="cpu", dtype="float32", seed=0)
    h = Trainer(net, x[0], t[:1], iters=3, batch_size=1, log=None, progress=False, final_eval=False).fit()
    assert len(h.loss) == 3


def test_uint8_labels_through_the_trainer(dev):
    net = xpnet.TwoLayerNet(8, 4, 3, device=dev, dtype="float32", seed=0)
    rng = np.random.default_rng(0)
    x, t = rng.random((30, 8)).astype(np.float32), rng.integers(0, 3, 30).astype(np.uint8)
    hist = xpnet.Trainer(net, x, t, x, t, iters=3, batch_size=10, log=None).fit()
    assert len(hist.loss) == 3 and 0.0 <= hist.final_test_acc <= 1.0


def test_progress_bar_fits_80_columns(monkeypatch):
    tqdm = pytest.importorskip("tqdm").tqdm
    from xpnet.trainer import progress_bar

    monkeypatch.setenv("COLUMNS", "80")
    f = io.StringIO()
    bar = progress_bar(tqdm, 10000, file=f)
    bar.update(4321)
    bar.set_postfix({"loss": "0.1234", "train": "0.9712", "test": "0.9650"}, refresh=True)
    bar.close()
    lines = [s for s in f.getvalue().replace("\r", "\n").splitlines() if s.strip()]
    assert lines and all(len(s) <= 80 for s in lines)
    assert "4321/10000" in lines[-1] and "loss=0.1234, train=0.9712, test=0.9650" in lines[-1]


# -- divergence --------------------------------------------------------------------------------
def test_divergence_stops_with_the_iteration(mnist):
    net = xpnet.TwoLayerNet(784, 50, 10, weight_init_std=1.0, device="cpu", dtype="float32", seed=0)
    tr = Trainer(net, *small(mnist, 2000), iters=300, lr=1e10, log=None, progress=False)
    with np.errstate(all="ignore"), \
            pytest.raises(TrainingDivergedError, match=r"at iteration \d+.*smaller learning rate"):
        tr.fit()


def test_without_recorded_losses_divergence_is_still_caught(mnist):
    net = xpnet.TwoLayerNet(784, 50, 10, weight_init_std=1.0, device="cpu", dtype="float32", seed=0)
    tr = Trainer(net, *small(mnist, 2000), iters=300, lr=1e10, record_loss=False, eval_interval=50,
                 log=None, progress=False)
    with np.errstate(all="ignore"), pytest.raises(TrainingDivergedError, match="parameters became NaN"):
        tr.fit()
    ok = Trainer(xpnet.TwoLayerNet(784, 10, 10, device="cpu", dtype="float32", seed=0), *small(mnist, 500), iters=30,
                 record_loss=False, log=None, progress=False).fit()
    assert ok.loss == [] and ok.final_test_acc is not None


# -- what is refused ---------------------------------------------------------------------------
BAD_TRAINER_ARGS = {  # each: the arguments after the net, as (x, t, xt, tt) -> (args, kwargs); the error
    "labels out of range": (lambda x, t, xt, tt: ((x, t + 5, xt, tt), {}), ValueError,
                            r"labels t_train must lie in \[0, 9\]"),
    "integer images": (lambda x, t, xt, tt: (((x * 255).astype(np.uint8), t), {}), TypeError,
                       r"x_train must be floating"),
    "too few features": (lambda x, t, xt, tt: ((x[:, :700], t), {}), ValueError, r"x_train has shape"),
    "empty test set": (lambda x, t, xt, tt: ((x, t, xt[:0], tt[:0]), {}), ValueError, r"x_test holds no samples"),
    "batch_size 0": (lambda x, t, xt, tt: ((x, t), {"batch_size": 0}), ValueError,
                     r"batch_size must be a positive integer"),
    "eval_interval 0": (lambda x, t, xt, tt: ((x, t), {"eval_interval": 0}), ValueError,
                        r"eval_interval must be a positive integer"),
    "seed -1": (lambda x, t, xt, tt: ((x, t), {"seed": -1}), ValueError, r"seed must be a non-negative integer"),
    "unknown optimizer": (lambda x, t, xt, tt: ((x, t), {"optimizer": "lbfgs"}), ValueError,
                          r"optimizer='lbfgs': unknown optimizer"),
    "negative lr": (lambda x, t, xt, tt: ((x, t), {"lr": -1.0}), ValueError, r"lr must be a positive"),
    "lr beside an optimizer": (lambda x, t, xt, tt: ((x, t), {"optimizer": xpnet.Adam(), "lr": 0.1}), ValueError,
                               r"lr was given with an optimizer object.*optimizer itself"),
}


@pytest.mark.parametrize("case", list(BAD_TRAINER_ARGS))
def test_trainer_refuses_bad_data_and_settings(mnist, case):
    make, error, match = BAD_TRAINER_ARGS[case]
    net = xpnet.TwoLayerNet(784, 10, 10, device="cpu", dtype="float32", seed=0)
    args, kwargs = make(*small(mnist, 500))
    with pytest.raises(error, match=match):
        Trainer(net, *args, **kwargs)


def test_trainer_says_what_a_net_lacks():
    class NotANet:
        params = {"W": np.zeros(2)}

    with pytest.raises(TypeError, match="lacks gradient, accuracy"):
        Trainer(NotANet(), np.zeros((2, 2)), np.array([0, 1]))


# -- runs that survive: checkpoints at every evaluation, SIGINT/SIGTERM, exact resume ---------------
@pytest.fixture(scope="module")
def data(mnist):
    (x, t), (xt, tt) = mnist
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
                       match=r"step 80 .*disk is full.*last good checkpoint \(step 40\) is kept"):
        tr.fit(checkpoint=tmp_path / "c.npz")
    assert checkpoint_meta(tmp_path / "c.npz")["step"] == 40
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left behind


@pytest.mark.parametrize("device", ["cpu", "torch"])
def test_a_batchnorm_dropout_run_resumes_bit_exact(tmp_path, device):
    if device == "torch":
        pytest.importorskip("torch")
    x, t = three_classes()
    kw = {"optimizer": "rmsprop", "lr": 0.01, "batch_size": 20, "seed": 1, "progress": False, "log": None}
    with xpnet.use_device(device):
        whole = xpnet.Trainer(extend_net(), x, t, x[:50], t[:50], iters=60, **kw)
        h = whole.fit()
        first = xpnet.Trainer(extend_net(), x, t, x[:50], t[:50], iters=30, **kw)
        first.fit(checkpoint=tmp_path / "run")
        resumed = xpnet.Trainer.resume(tmp_path / "run.npz", x, t, x[:50], t[:50], iters=60, log=None, progress=False)
        h2 = resumed.fit()
    dev = whole.net.device
    for k in whole.net.params:
        np.testing.assert_array_equal(dev.to_numpy(resumed.net.params[k]), dev.to_numpy(whole.net.params[k]), err_msg=k)
    for k, v in whole.net.buffers().items():
        np.testing.assert_array_equal(dev.to_numpy(resumed.net.buffers()[k]), dev.to_numpy(v), err_msg=k)
    assert h2.loss == h.loss and h2.test_acc == h.test_acc


def test_the_trainer_records_the_loss_with_its_penalty_and_evaluates_in_testing_mode():
    x, t = three_classes()
    net = extend_net("cpu", use_dropout=False, use_batchnorm=False, weight_decay_lambda=0.5)
    tr = xpnet.Trainer(net, x, t, x[:50], t[:50], iters=5, batch_size=300, lr=1e-9, progress=False, log=None)
    h = tr.fit()
    assert h.loss[-1] == pytest.approx(float(net.loss(x, t)), rel=1e-5)  # the penalty is 0.5 * 0.5 * sum(W**2)
    assert h.final_test_loss == pytest.approx(float(net.loss(x[:50], t[:50])), rel=1e-5)


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


def test_soft_targets_are_trained_on_as_given(dev):
    """Label-smoothed rows train as given: the trainer's step takes them, not one-hot rows rebuilt
    from their argmax (which once trained a smoothed run exactly as a hard one)."""
    x, t = three_classes(120)
    hard = np.eye(3)[t]
    soft = 0.8 * hard + 0.2 / 3  # label smoothing: rows still sum to 1
    runs = {}
    for name, targets in (("hard", hard), ("soft", soft)):
        net = xpnet.TwoLayerNet(20, 8, 3, device=dev, seed=0)
        h = Trainer(net, x, targets, iters=20, batch_size=30, lr=0.5, seed=3, progress=False, log=None,
                    final_eval=False).fit()
        runs[name] = (net, h)
    (a, _), (b, _) = runs["hard"], runs["soft"]
    assert not np.allclose(dev.to_numpy(a.params["W2"]), dev.to_numpy(b.params["W2"]))
    from xpnet.splits import place

    with dev.scope():  # (as the trainer places its data: on cuda:N, in its scope)
        split = place(soft, soft, "train", dev, dev.dtype("float64"), 3, 3).with_onehot(3, dev.dtype("float64"), dev.xp)
        np.testing.assert_array_equal(dev.to_numpy(split.onehot), soft)


def test_a_signal_during_the_final_evaluation_keeps_the_finished_run(tmp_path, data, monkeypatch):
    """Ctrl-C in the final evaluation used to raise out of it: the steps since the last epoch's
    checkpoint were lost. The evaluation now finishes and the whole run is saved."""
    tr = make(data, iters=60)
    real = tr.evaluate_test

    def interrupted_once():
        if tr.step == 60 and tr.history.final_train_acc is not None:  # the final evaluation, not an epoch's
            os.kill(os.getpid(), signal.SIGINT)
        return real()

    monkeypatch.setattr(tr, "evaluate_test", interrupted_once)
    h = tr.fit(checkpoint=tmp_path / "c.npz")
    meta = checkpoint_meta(tmp_path / "c.npz")
    assert h.step == 60 and meta["step"] == 60 and meta["history"]["final_test_acc"] == h.final_test_acc
    assert len(meta["history"]["loss"]) == 60
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_without_a_checkpoint_keeps_the_history(data):
    tr = make(data, log=SignalAt(2))
    with pytest.raises(TrainingInterrupted, match="SIGINT at step 80: the run so far is in the exception's") as e:
        tr.fit()
    assert e.value.checkpoint is None and e.value.history is tr.history
    assert e.value.step == 80 and len(e.value.history.loss) == 80 and e.value.history.eval_iters == [0, 40]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class BadAffine(xpnet.Affine):
    """A reader's Affine whose dW is summed over the wrong axis: (1, out), not (in, out)."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.dW = self.dW.sum(axis=0, keepdims=True)
        return dx


def test_a_wrong_backward_in_the_trainer_is_named_with_a_pointer_to_gradcheck():
    """SGD broadcast the (1, 6) gradient over the (20, 6) weights, and the run went on."""
    from .book import ReaderNet

    x, t = three_classes()
    g = np.random.default_rng(0)
    W1 = 0.1 * g.standard_normal((20, 6))
    net = xpnet.Net([BadAffine(W1, np.zeros(6)), xpnet.Relu(), xpnet.Affine(np.zeros((6, 3)), np.zeros(3))])
    reader = ReaderNet(20, 6, 3, 0.1)
    reader.layers["Affine1"] = BadAffine(reader.params["W1"], reader.params["b1"])
    for n in (net, reader):
        with pytest.raises(ValueError, match=r"gradient of 'W1' has shape \(1, 6\), the parameter \(20, 6\): a layer's "
                                             r"backward is wrong; xpnet.gradcheck\(net, x, t\) names the layer"):
            Trainer(n, x, t, iters=10, batch_size=20, progress=False, log=None).fit()


def test_a_run_that_did_not_learn_warns_at_the_callers_line_and_points_a_readers_net_at_gradcheck():
    from .book import ReaderNet

    x, t = three_classes()
    for net, hint in ((xpnet.TwoLayerNet(20, 5, 3, seed=0), False), (ReaderNet(20, 5, 3, 0.01), True)):
        with pytest.warns(RuntimeWarning, match="did not learn") as w:
            Trainer(net, x, t, lr=1e4, iters=300, batch_size=20, progress=False, log=None).fit()
        assert w[0].filename == __file__  # the line that called fit, not xpnet's
        assert ("xpnet.gradcheck(net, x, t)" in str(w[0].message)) is hint


def test_the_progress_bar_shows_the_latest_loss_and_accuracies_when_it_moves():
    """set_postfix(refresh=False) came after update(): what a refresh showed was a report behind."""
    from xpnet.progress import show_progress

    class Bar:
        n, shown, postfix = 0, [], {}

        def set_postfix(self, post, refresh=True):
            self.postfix = dict(post)

        def update(self, k):
            self.n += k
            self.shown.append((self.n, dict(self.postfix)))

    h = xpnet.History(loss=[0.5, 0.25], train_acc=[0.75], test_acc=[0.5])
    bar = Bar()
    show_progress(bar, 2, h)
    assert bar.shown == [(2, {"loss": "0.2500", "train": "0.7500", "test": "0.5000"})]

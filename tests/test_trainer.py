import json

import numpy as np
import pytest

import xpnet
from xpnet.checkpoint import CheckpointError, load_net, save_net
from xpnet.trainer import Trainer, TrainingDivergedError


@pytest.fixture(scope="module")
def mnist():
    return xpnet.load_mnist()


def small(mnist, n=6000):
    (x, t), (xt, tt) = mnist
    return x[:n], t[:n], xt[:2000], tt[:2000]


def test_short_run_learns_real_mnist(dev, mnist):
    net = xpnet.TwoLayerNet(784, 50, 10, device=dev, dtype="float32", seed=0)
    iters = 1500 if dev.kind != "array_api_strict" else 600
    tr = Trainer(net, *small(mnist), iters=iters, batch_size=100, lr=0.1, seed=0, log=None, progress=False)
    h = tr.fit()
    assert len(h.loss) == iters and all(np.isfinite(h.loss))
    assert np.mean(h.loss[-50:]) < np.mean(h.loss[:50]) / 3
    assert h.train_acc[0] < 0.3 and h.final_test_acc > (0.88 if iters >= 1500 else 0.84)
    assert h.eval_iters == list(range(0, iters, 60))  # an epoch is 6000 / 100 steps


@pytest.mark.parametrize("opt,lr", [("momentum", 0.05), ("adagrad", 0.05), ("adam", 0.002)])
def test_every_optimizer_learns(opt, lr, mnist):
    net = xpnet.TwoLayerNet(784, 50, 10, device="cpu", dtype="float32", seed=1)
    h = Trainer(net, *small(mnist, 3000), iters=400, optimizer=opt, lr=lr, log=None, progress=False).fit()
    assert h.final_test_acc > 0.85, (opt, h.final_test_acc)


def _reference_updates(name, w, g, steps=2):
    """The optimizers' formulas written out in plain NumPy float64."""
    v = np.zeros_like(w)
    h = np.zeros_like(w)
    m = np.zeros_like(w)
    for i in range(1, steps + 1):
        if name == "SGD":
            w = w - 0.1 * g
        elif name == "Momentum":
            v = 0.9 * v - 0.1 * g
            w = w + v
        elif name == "AdaGrad":
            h = h + g * g
            w = w - 0.1 * g / (np.sqrt(h) + 1e-7)
        else:  # Adam, the book's form
            lr_t = 0.01 * np.sqrt(1 - 0.999 ** i) / (1 - 0.9 ** i)
            m = m + 0.1 * (g - m)
            v = v + 0.001 * (g * g - v)
            w = w - lr_t * m / (np.sqrt(v) + 1e-7)
    return w


@pytest.mark.parametrize("opt", [xpnet.SGD(0.1), xpnet.Momentum(0.1), xpnet.AdaGrad(0.1), xpnet.Adam(0.01)],
                         ids=lambda o: type(o).__name__)
def test_optimizers_match_their_formulas_in_place(dev, opt):
    rng = np.random.default_rng(0)
    w0, g = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    p = {"W": dev.asarray(w0.copy(), dtype="float64")}  # on cpu asarray would share w0
    W = p["W"]
    grads = {"W": dev.asarray(g, dtype="float64")}
    opt = type(opt)(**{k: v for k, v in vars(opt).items() if k in ("lr", "momentum", "beta1", "beta2")})
    opt.update(p, grads)
    opt.update(p, grads)
    assert p["W"] is W  # the layers keep seeing the same array
    np.testing.assert_allclose(dev.to_numpy(W), _reference_updates(type(opt).__name__, w0, g), rtol=1e-12)


def test_sgd_update_is_exact(dev):
    p = {"W": dev.asarray([1.0, 2.0], dtype="float64")}
    xpnet.SGD(0.5).update(p, {"W": dev.asarray([2.0, -2.0], dtype="float64")})
    assert dev.to_numpy(p["W"]).tolist() == [0.0, 3.0]


def test_divergence_stops_with_the_iteration(mnist):
    net = xpnet.TwoLayerNet(784, 50, 10, weight_init_std=1.0, device="cpu", dtype="float32", seed=0)
    tr = Trainer(net, *small(mnist, 2000), iters=300, lr=1e10, log=None, progress=False)
    with np.errstate(all="ignore"), \
            pytest.raises(TrainingDivergedError, match=r"at iteration \d+.*smaller learning rate"):
        tr.fit()


def test_history_and_checkpoint_roundtrip(tmp_path, dev, mnist):
    net = xpnet.MultiLayerNet([784, 20, 20, 10], weight_init="he", device=dev, dtype="float32", seed=3)
    h = Trainer(net, *small(mnist, 1000), iters=30, log=None, progress=False).fit()
    h.save_json(tmp_path / "history.json")
    d = json.loads((tmp_path / "history.json").read_text())
    assert {"loss", "train_acc", "test_acc", "wall_time_s"} <= set(d) and len(d["loss"]) == 30
    path = save_net(net, tmp_path / "model")
    assert path.endswith(".npz") and not [f for f in tmp_path.iterdir() if f.name.startswith(".tmp")]
    back = load_net(path, device="cpu")  # e.g. trained on a GPU, loaded on a laptop
    assert back.sizes == net.sizes and back.device.name == "cpu"
    for k in net.params:
        np.testing.assert_array_equal(back.params[k], dev.to_numpy(net.params[k]))
    x = mnist[1][0][:100]
    np.testing.assert_allclose(back.predict(x), dev.to_numpy(net.predict(dev.asarray(x))), rtol=1e-4, atol=1e-5)
    with np.load(path, allow_pickle=False) as z:  # no pickle anywhere
        assert "__meta__" in z.files


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_net(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="damaged"):
        load_net(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", a=np.ones(2))
    with pytest.raises(CheckpointError, match="not an xpnet checkpoint"):
        load_net(tmp_path / "other.npz")


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    net = xpnet.TwoLayerNet(4, 3, 2, device="cpu", seed=0)
    path = save_net(net, tmp_path / "m.npz")
    before = (tmp_path / "m.npz").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        save_net(net, path)
    assert (tmp_path / "m.npz").read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["m.npz"]


def test_trainer_rejects_bad_data_and_settings(mnist):
    net = xpnet.TwoLayerNet(784, 10, 10, device="cpu", dtype="float32", seed=0)
    x, t, xt, tt = small(mnist, 500)
    with pytest.raises(ValueError, match=r"labels t_train must lie in \[0, 9\]"):
        Trainer(net, x, t + 5, xt, tt)
    with pytest.raises(TypeError, match="floating"):
        Trainer(net, (x * 255).astype(np.uint8), t)
    with pytest.raises(ValueError, match="x_train has shape"):
        Trainer(net, x[:, :700], t)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        Trainer(net, x, t, batch_size=0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        Trainer(net, x, t, optimizer="rmsprop")
    with pytest.raises(ValueError, match="lr must be a positive"):
        Trainer(net, x, t, lr=-1.0)


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


def test_without_recorded_losses_divergence_is_still_caught(mnist):
    net = xpnet.TwoLayerNet(784, 50, 10, weight_init_std=1.0, device="cpu", dtype="float32", seed=0)
    tr = Trainer(net, *small(mnist, 2000), iters=300, lr=1e10, record_loss=False, eval_interval=50,
                 log=None, progress=False)
    with np.errstate(all="ignore"), pytest.raises(TrainingDivergedError, match="parameters became NaN"):
        tr.fit()
    ok = Trainer(xpnet.TwoLayerNet(784, 10, 10, device="cpu", dtype="float32", seed=0), *small(mnist, 500), iters=30,
                 record_loss=False, log=None, progress=False).fit()
    assert ok.loss == [] and ok.final_test_acc is not None


def test_one_sample_training_set(mnist):
    (x, t), _ = mnist
    net = xpnet.TwoLayerNet(784, 10, 10, device="cpu", dtype="float32", seed=0)
    h = Trainer(net, x[0], t[:1], iters=3, batch_size=1, log=None, progress=False, final_eval=False).fit()
    assert len(h.loss) == 3


def test_saved_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0)
    os.umask(umask)
    path = save_net(xpnet.TwoLayerNet(4, 3, 2, device="cpu", seed=0), tmp_path / "m.npz")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_damaged_architecture_record(tmp_path):
    meta = np.array('{"format": "xpnet-checkpoint-1", "config": {"sizes": "x"}}')
    np.savez(tmp_path / "m.npz", __meta__=meta)
    with pytest.raises(CheckpointError, match="damaged architecture record"):
        load_net(tmp_path / "m.npz")


def test_trainer_argument_checks(mnist):
    net = xpnet.TwoLayerNet(784, 10, 10, device="cpu", dtype="float32", seed=0)
    x, t, xt, tt = small(mnist, 200)
    with pytest.raises(ValueError, match="set the rate on the optimizer itself"):
        Trainer(net, x, t, optimizer=xpnet.Adam(), lr=0.1)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        Trainer(net, x, t, seed=-1)
    with pytest.raises(ValueError, match="x_test holds no samples"):
        Trainer(net, x, t, xt[:0], tt[:0])
    assert xpnet.Momentum(momentum=np.float32(0.9)).momentum == pytest.approx(0.9)
    assert net.accuracy(x, t, batch_size=np.int64(50)) == net.accuracy(x, t)


def test_checkpoint_parameters_must_match_the_architecture(tmp_path):
    import json as _json

    net = xpnet.TwoLayerNet(4, 3, 2, device="cpu", seed=0)
    meta = {"format": "xpnet-checkpoint-1", "config": net.config}
    good = {f"param/{k}": v for k, v in net.params.items()}
    np.savez(tmp_path / "extra.npz", __meta__=np.array(_json.dumps(meta)), **good, **{"param/W9": np.ones(2)})
    with pytest.raises(CheckpointError, match="holds parameters"):
        load_net(tmp_path / "extra.npz")
    bad = dict(meta, config=dict(net.config, dtype="float99"))
    np.savez(tmp_path / "dtype.npz", __meta__=np.array(_json.dumps(bad)), **good)
    with pytest.raises(CheckpointError, match="cannot rebuild"):
        load_net(tmp_path / "dtype.npz")
    odd = dict(meta, config=dict(net.config, **{"class": "ConvNet"}))
    np.savez(tmp_path / "odd.npz", __meta__=np.array(_json.dumps(odd)), **good)
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load_net(tmp_path / "odd.npz")

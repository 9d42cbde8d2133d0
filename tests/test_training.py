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
    net = xpnet.TwoLayerNet(784, 50, 10, device=dev, seed=0)
    iters = 1500 if dev.kind != "array_api_strict" else 600
    tr = Trainer(net, *small(mnist), iters=iters, batch_size=100, lr=0.1, seed=0, log=None, progress=False)
    h = tr.fit()
    assert len(h.loss) == iters and all(np.isfinite(h.loss))
    assert np.mean(h.loss[-50:]) < np.mean(h.loss[:50]) / 3
    assert h.train_acc[0] < 0.3 and h.final_test_acc > (0.88 if iters >= 1500 else 0.84)
    assert h.eval_iters == list(range(0, iters, 60))  # an epoch is 6000 / 100 steps


@pytest.mark.parametrize("opt,lr", [("momentum", 0.05), ("adagrad", 0.05), ("adam", 0.002)])
def test_every_optimizer_learns(opt, lr, mnist):
    net = xpnet.TwoLayerNet(784, 50, 10, device="cpu", seed=1)
    h = Trainer(net, *small(mnist, 3000), iters=400, optimizer=opt, lr=lr, log=None, progress=False).fit()
    assert h.final_test_acc > 0.85, (opt, h.final_test_acc)


def test_optimizers_on_every_device(dev):
    rng = np.random.default_rng(0)
    for opt in (xpnet.SGD(0.1), xpnet.Momentum(0.1), xpnet.AdaGrad(0.1), xpnet.Adam(0.01)):
        p = {"W": dev.asarray(rng.standard_normal((3, 2)), dtype="float32")}
        W = p["W"]
        g = {"W": dev.asarray(np.ones((3, 2)), dtype="float32")}
        opt.update(p, g)
        opt.update(p, g)
        assert p["W"] is W  # updated in place: the layers keep seeing the same array
        assert np.all(dev.to_numpy(W) < rng.standard_normal((3, 2)) * 0 + 10)


def test_sgd_update_is_exact(dev):
    p = {"W": dev.asarray([1.0, 2.0], dtype="float64")}
    xpnet.SGD(0.5).update(p, {"W": dev.asarray([2.0, -2.0], dtype="float64")})
    assert dev.to_numpy(p["W"]).tolist() == [0.0, 3.0]


def test_divergence_stops_with_the_iteration(mnist):
    net = xpnet.TwoLayerNet(784, 50, 10, weight_init_std=1.0, device="cpu", seed=0)
    tr = Trainer(net, *small(mnist, 2000), iters=300, lr=1e10, log=None, progress=False)
    with np.errstate(all="ignore"), pytest.raises(TrainingDivergedError, match=r"at iteration \d+.*smaller learning rate"):
        tr.fit()


def test_history_and_checkpoint_roundtrip(tmp_path, dev, mnist):
    net = xpnet.MultiLayerNet([784, 20, 20, 10], weight_init="he", device=dev, seed=3)
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
    net = xpnet.TwoLayerNet(784, 10, 10, device="cpu", seed=0)
    x, t, xt, tt = small(mnist, 500)
    with pytest.raises(ValueError, match=r"labels t must lie in \[0, 9\]"):
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

import numpy as np
import pytest

import xpnet


def batch(dev, n=3, d=20, c=5, seed=1, dtype="float64"):
    rng = np.random.default_rng(seed)
    return dev.asarray(rng.random((n, d)), dtype=dtype), dev.asarray(rng.integers(0, c, n))


@pytest.mark.parametrize("labels", ["index", "onehot"])
def test_two_layer_net_gradcheck_below_1e7(dev, labels):
    net = xpnet.TwoLayerNet(20, 10, 5, weight_init_std=0.3, device=dev, dtype="float32", seed=0)
    x, t = batch(dev)
    if labels == "onehot":
        t = dev.asarray(np.eye(5)[dev.to_numpy(t)], dtype="float64")
    report = xpnet.gradcheck(net, x, t)
    assert report.passed, str(report)
    assert set(report) == {"W1", "b1", "W2", "b2"}
    assert max(r.max_abs for r in report.values()) < 1e-7, str(report)
    assert report.culprits == []


@pytest.mark.parametrize("activation,init", [("sigmoid", "xavier"), ("relu", "he")])
def test_multilayer_net_gradcheck(dev, activation, init):
    net = xpnet.MultiLayerNet([6, 5, 4, 3], activation=activation, weight_init=init, device=dev,
                              dtype="float64", seed=3)
    assert list(net.layers) == ["Affine1", f"{activation.title()}1", "Affine2", f"{activation.title()}2",
                                "Affine3"]
    x, t = batch(dev, n=4, d=6, c=3)
    report = xpnet.gradcheck(net, x, t)
    assert report.passed, str(report)
    assert max(r.max_abs for r in report.values()) < 1e-7


def test_book_numerical_gradient_matches_backprop(dev):
    net = xpnet.TwoLayerNet(8, 4, 3, weight_init_std=0.5, device=dev, dtype="float64", seed=2)
    x, t = batch(dev, n=2, d=8, c=3)
    num, bp = net.numerical_gradient(x, t), net.gradient(x, t)
    for k in net.params:
        np.testing.assert_allclose(dev.to_numpy(num[k]), dev.to_numpy(bp[k]), atol=1e-8)


def test_same_seed_same_net_on_every_device(dev):
    cpu = xpnet.device("cpu")
    ref = xpnet.TwoLayerNet(20, 10, 5, device=cpu, dtype="float32", seed=42)
    net = xpnet.TwoLayerNet(20, 10, 5, device=dev, dtype="float32", seed=42)
    for k in ref.params:
        np.testing.assert_array_equal(dev.to_numpy(net.params[k]), cpu.to_numpy(ref.params[k]))
    xh, th = batch(cpu, n=16, dtype="float32")
    x, t = dev.asarray(cpu.to_numpy(xh)), dev.asarray(cpu.to_numpy(th))
    assert float(net.loss(x, t)) == pytest.approx(float(ref.loss(xh, th)), rel=2e-6)
    g, gref = net.gradient(x, t), ref.gradient(xh, th)
    for k in gref:
        np.testing.assert_allclose(dev.to_numpy(g[k]), gref[k], rtol=1e-4, atol=1e-7)


def test_float32_stays_float32(dev):
    net = xpnet.TwoLayerNet(20, 10, 5, device=dev, dtype="float32", seed=0)
    x, t = batch(dev, dtype="float32")
    assert net.predict(x).dtype == dev.xp.float32
    assert net.loss(x, t).dtype == dev.xp.float32
    assert all(g.dtype == dev.xp.float32 for g in net.gradient(x, t).values())


def test_accuracy_in_batches_matches_whole(dev):
    net = xpnet.TwoLayerNet(20, 10, 5, weight_init_std=1.0, device=dev, seed=0)
    x, t = batch(dev, n=50, dtype="float32")
    a, b = net.accuracy(x, t, batch_size=None), net.accuracy(x, t, batch_size=7)
    assert a == b and 0.0 <= a <= 1.0
    p = dev.to_numpy(net.predict(x)).argmax(axis=1)
    assert a == pytest.approx(float((p == dev.to_numpy(t)).mean()))
    t1 = dev.asarray(np.eye(5)[dev.to_numpy(t)], dtype="float32")
    assert net.accuracy(x, t1) == a


def test_to_moves_and_casts_without_changing_values(dev):
    net = xpnet.TwoLayerNet(6, 4, 3, device="cpu", dtype="float32", seed=1)
    moved = net.to(device=dev, dtype="float64")
    assert moved.device is dev and moved.params["W1"].dtype == dev.xp.float64
    np.testing.assert_array_equal(dev.to_numpy(moved.params["W1"]), net.params["W1"].astype(np.float64))
    assert isinstance(moved, xpnet.TwoLayerNet)


def test_gradient_agrees_with_torch_autograd():
    """An independent reference: PyTorch's autograd on the same weights, float64."""
    torch = pytest.importorskip("torch")
    net = xpnet.TwoLayerNet(12, 7, 4, weight_init_std=0.5, device="cpu", dtype="float64", seed=5)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((5, 12)), rng.integers(0, 4, 5)
    grads = net.gradient(x, t)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in net.params.items()}
    h = torch.relu(torch.tensor(x) @ p["W1"] + p["b1"])
    loss = torch.nn.functional.cross_entropy(h @ p["W2"] + p["b2"], torch.tensor(t))
    loss.backward()
    assert float(net.loss(x, t)) == pytest.approx(loss.item(), rel=1e-14)
    for k in p:
        np.testing.assert_allclose(grads[k], p[k].grad.numpy(), rtol=1e-12, atol=1e-15)

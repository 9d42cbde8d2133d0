"""xpnet/convnets.py: the book's SimpleConvNet -- its layers and parameters, its loss and
gradients equal to the book's own layers' on every device, gradcheck, every sample counted,
4-d images through the trainer."""

from collections import OrderedDict

import numpy as np
import pytest

import xpnet
from xpnet.trainer import Trainer

from . import book

SMALL = {"input_dim": (1, 10, 10), "conv_param": {"filter_num": 4, "filter_size": 3, "pad": 1, "stride": 1},
         "hidden_size": 8, "output_size": 3, "weight_init_std": 0.3}


def images(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 10, 10)), np.arange(n) % 3


def test_simple_conv_net_has_the_books_layers_and_params():
    net = xpnet.SimpleConvNet(seed=0)
    assert list(net.layers) == ["Conv1", "Relu1", "Pool1", "Affine1", "Relu2", "Affine2"]
    assert {k: v.shape for k, v in net.params.items()} == {"W1": (30, 1, 5, 5), "b1": (30,), "W2": (4320, 100),
                                                           "b2": (100,), "W3": (100, 10), "b3": (10,)}
    assert net.last_layer is net.lastLayer and net.layers["Conv1"].W is net.params["W1"]
    assert 0.005 < float(np.std(net.params["W2"])) < 0.015  # weight_init_std=0.01


def test_simple_conv_net_gives_the_books_loss_and_gradients(dev):
    net = xpnet.SimpleConvNet(**SMALL, device=dev, seed=1)
    p = {k: dev.to_numpy(v) for k, v in net.params.items()}
    layers = OrderedDict(Conv1=book.Convolution(p["W1"], p["b1"], 1, 1), Relu1=book.Relu(),
                         Pool1=book.Pooling(2, 2, 2), Affine1=book.Affine(p["W2"], p["b2"]), Relu2=book.Relu(),
                         Affine2=book.Affine(p["W3"], p["b3"]))
    last = book.SoftmaxWithLoss()
    x, t = images()
    h = x
    for layer in layers.values():  # the book's predict, loss and gradient
        h = layer.forward(h)
    loss = last.forward(h, t)
    dout = last.backward(1)
    for layer in reversed(layers.values()):
        dout = layer.backward(dout)
    grads = net.gradient(dev.asarray(x), dev.asarray(t))
    assert float(net.lastLayer.loss) == pytest.approx(loss, rel=1e-6)  # the book's log(y + 1e-7)
    for k, name in (("1", "Conv1"), ("2", "Affine1"), ("3", "Affine2")):
        np.testing.assert_allclose(dev.to_numpy(grads["W" + k]), layers[name].dW, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(dev.to_numpy(grads["b" + k]), layers[name].db, rtol=1e-6, atol=1e-9)


def test_simple_conv_net_passes_gradcheck(dev):
    net = xpnet.SimpleConvNet(**SMALL, device=dev, seed=2)
    report = xpnet.gradcheck(net, *(dev.asarray(a) for a in images()))
    assert all(r.passed for r in report.values()) and report.culprits == [], str(report)
    for name, results in report.layers.items():  # ties of ReLU zeros in a pooling window are kinks, not bugs
        assert all(r.passed or r.inconclusive for r in results.values()), (name, str(report))


def test_accuracy_counts_every_sample_and_refuses_other_images(dev):
    net = xpnet.SimpleConvNet(**SMALL, device=dev, seed=3)
    x, t = images(150)
    xd, td = dev.asarray(x), dev.asarray(t)
    predicted = np.argmax(dev.to_numpy(net.predict(xd)), axis=1)
    assert net.accuracy(xd, td) == pytest.approx(float(np.mean(predicted == t)))  # the book's drops the last 50
    with pytest.raises(ValueError, match=r"images of shape \(1, 10, 10\)"):
        net.predict(dev.asarray(np.zeros((2, 1, 9, 10))))


def test_the_trainer_takes_images_and_a_conv_net_learns():
    (x, t), (xt, tt) = xpnet.load_mnist(flatten=False)
    net = xpnet.SimpleConvNet(conv_param={"filter_num": 8}, hidden_size=32, dtype="float32", device="cpu", seed=0)
    h = Trainer(net, x[:2000], t[:2000], xt[:300], tt[:300], iters=100, batch_size=50, optimizer="adam", lr=0.002,
                progress=False, log=None).fit()
    assert h.final_test_acc > 0.6, h.final_test_acc


def test_a_conv_net_is_not_saved_as_something_else(tmp_path):
    with pytest.raises(xpnet.CheckpointError, match="SimpleConvNet.*another class"):
        xpnet.save_net(xpnet.SimpleConvNet(**SMALL, seed=0), tmp_path / "m")
    assert not (tmp_path / "m.npz").exists()


class _HeldMask:
    """Stands in for the book's Dropout with a given mask (the book's draws from np.random)."""

    def __init__(self, mask):
        self.mask = mask

    def forward(self, x):
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


def test_deep_conv_net_has_the_books_layers_and_gives_its_gradients():
    net = xpnet.DeepConvNet(seed=0, device="cpu")
    kinds = [type(v).__name__ for v in net.layers.values()]
    assert kinds == ["Convolution", "Relu", "Convolution", "Relu", "Pooling"] * 3 + \
        ["Affine", "Relu", "Dropout", "Affine", "Dropout"]
    assert net.params["W7"].shape == (1024, 50) and net.params["W6"].shape == (64, 64, 3, 3)
    assert float(np.std(net.params["W7"])) == pytest.approx(np.sqrt(2 / 1024), rel=0.05)  # He's
    x, t = np.random.default_rng(1).random((3, 1, 28, 28)), np.array([1, 2, 3])
    grads = net.gradient(x, t)  # training mode: its two dropout masks drawn
    drops = iter(layer.mask for layer in net.layers.values() if type(layer).__name__ == "Dropout")
    layers = []  # the book's layers on the same arrays, in the same order
    for layer in net.layers.values():
        kind = type(layer).__name__
        if kind == "Convolution":
            layers.append(book.Convolution(layer.W, layer.b, layer.stride, layer.pad))
        elif kind == "Affine":
            layers.append(book.Affine(layer.W, layer.b))
        else:
            layers.append({"Relu": book.Relu, "Pooling": lambda: book.Pooling(2, 2, 2)}.get(kind, lambda: None)()
                          or _HeldMask(next(drops)))
    h = x
    for layer in layers:
        h = layer.forward(h)
    last = book.SoftmaxWithLoss()
    loss = last.forward(h, t)
    dout = last.backward(1)
    for layer in reversed(layers):
        dout = layer.backward(dout)
    assert float(net.lastLayer.loss) == pytest.approx(loss, rel=1e-5)
    with_w = [v for v in layers if hasattr(v, "dW")]
    for i, layer in enumerate(with_w, start=1):
        np.testing.assert_allclose(grads[f"W{i}"], layer.dW, rtol=1e-6, atol=1e-10, err_msg=f"W{i}")
        np.testing.assert_allclose(grads[f"b{i}"], layer.db, rtol=1e-6, atol=1e-10, err_msg=f"b{i}")
    assert 0 <= net.accuracy(x, t) <= 1 and net.loss(x, t) > 0

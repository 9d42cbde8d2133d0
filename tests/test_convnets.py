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


DEEP_SMALL = {"input_dim": (1, 16, 16), "hidden_size": 8, "output_size": 3,
              "conv_param_1": {"filter_num": 4}, "conv_param_2": {"filter_num": 4}, "conv_param_3": {"filter_num": 4},
              "conv_param_4": {"filter_num": 4}, "conv_param_5": {"filter_num": 4}, "conv_param_6": {"filter_num": 4}}


@pytest.mark.parametrize("make", [lambda dev: xpnet.SimpleConvNet(**SMALL, device=dev, dtype="float32", seed=0),
                                  lambda dev: xpnet.DeepConvNet(**DEEP_SMALL, device=dev, seed=0)],
                         ids=["simple", "deep"])
def test_a_conv_net_checkpoint_rebuilds_the_same_net_on_any_device(dev, tmp_path, make):
    net = make(dev)
    path = xpnet.save_net(net, tmp_path / "m")
    x = np.random.default_rng(0).random((4,) + net.input_dim)
    for where in (dev, "cpu"):
        back = xpnet.load_net(path, device=where)
        assert type(back) is type(net) and back.config == net.config and back.dtype == back.device.dtype(
            net.config["dtype"])
        np.testing.assert_allclose(back.device.to_numpy(back.predict(back.device.asarray(x))),
                                   dev.to_numpy(net.predict(dev.asarray(x))), rtol=1e-6, atol=1e-7)
        assert back.generator_states() == net.generator_states()  # DeepConvNet's dropouts go on where they stood


def test_a_conv_net_with_a_replaced_layer_is_not_saved_as_the_book_net(tmp_path):
    net = xpnet.SimpleConvNet(**SMALL, seed=0)
    net.layers["Relu1"] = xpnet.Relu()
    xpnet.save_net(net, tmp_path / "m")  # saved as a net its code builds again, never as the book's
    with pytest.raises(xpnet.CheckpointError, match=r"SimpleConvNet, a net xpnet does not rebuild"):
        xpnet.load_net(tmp_path / "m")
    again = xpnet.SimpleConvNet(**SMALL, seed=2)
    again.layers["Relu1"] = xpnet.Relu()
    np.testing.assert_array_equal(xpnet.load_net(tmp_path / "m", net=again).params["W1"], net.params["W1"])
    net.save_params(str(tmp_path / "p.npz"))  # what the message offers works
    other = xpnet.SimpleConvNet(**SMALL, seed=1)
    other.load_params(str(tmp_path / "p.npz"))
    np.testing.assert_array_equal(other.params["W1"], net.params["W1"])


def test_an_edited_conv_record_is_refused_as_damaged(tmp_path):
    import json

    net = xpnet.SimpleConvNet(**SMALL, seed=0)
    path = xpnet.save_net(net, tmp_path / "m")
    with np.load(path) as z:
        members = {k: z[k] for k in z.files}
    record = json.loads(str(members["__meta__"][()]))
    for change, message in (({"conv_param": {"filter_num": 4, "filter_size": 3, "pad": 1, "stride": 0}},
                             r"stride must be an integer >= 1"),
                            ({"hidden_size": True}, r"hidden_size must be a positive integer"),
                            ({"input_dim": [1, 10]}, r"input_dim must be \(channels, height, width\)"),
                            ({"hidden_size": 10 ** 9}, r"more than a checkpoint may hold")):
        edited = dict(record, config=dict(record["config"], **change))
        members["__meta__"] = np.array(json.dumps(edited))
        np.savez(tmp_path / "e.npz", **members)
        with pytest.raises(xpnet.CheckpointError, match=message):
            xpnet.load_net(tmp_path / "e.npz")


def test_a_deep_conv_net_run_resumes_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    x, t = rng.random((60, 1, 16, 16)).astype(np.float32), np.arange(60) % 3
    kw = {"optimizer": "adam", "lr": 0.01, "batch_size": 10, "seed": 1, "progress": False, "log": None,
          "eval_interval": 4}
    whole = Trainer(xpnet.DeepConvNet(**DEEP_SMALL, dtype="float32", seed=2), x, t, x[:20], t[:20], iters=8, **kw)
    h = whole.fit()
    first = Trainer(xpnet.DeepConvNet(**DEEP_SMALL, dtype="float32", seed=2), x, t, x[:20], t[:20], iters=4, **kw)
    first.fit(checkpoint=tmp_path / "run")
    resumed = Trainer.resume(tmp_path / "run.npz", x, t, x[:20], t[:20], iters=8, log=None, progress=False)
    h2 = resumed.fit()
    for k in whole.net.params:
        np.testing.assert_array_equal(resumed.net.params[k], whole.net.params[k], err_msg=k)
    assert h2.loss == h.loss and h2.test_acc == h.test_acc


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


def _torch_loss(torch, net, x, t, masks):
    """The net's loss computed by torch's own conv2d, max_pool2d and cross_entropy, layer by layer
    from the net's layers (their strides and pads), the dropout masks as given."""
    F = torch.nn.functional
    params = {k: torch.tensor(np.asarray(net.device.to_numpy(v)), dtype=torch.float64, requires_grad=True)
              for k, v in net.params.items()}
    by_id = {id(v): k for k, v in net.params.items()}
    h, masks = torch.tensor(x, dtype=torch.float64), iter(masks)
    for layer in net.layers.values():
        kind = type(layer).__name__
        if kind == "Convolution":
            h = F.conv2d(h, params[by_id[id(layer.W)]], params[by_id[id(layer.b)]], layer.stride, layer.pad)
        elif kind == "Pooling":
            h = F.max_pool2d(h, (layer.pool_h, layer.pool_w), layer.stride, layer.pad)
        elif kind == "Affine":
            h = h.reshape(h.shape[0], -1) @ params[by_id[id(layer.W)]] + params[by_id[id(layer.b)]]
        elif kind == "Relu":
            h = torch.relu(h)
        else:  # the book's dropout: x * mask in training, no rescaling
            h = h * torch.tensor(next(masks), dtype=torch.float64)
    loss = F.cross_entropy(h, torch.tensor(t))
    loss.backward()
    return float(loss.detach()), {k: p.grad.numpy() for k, p in params.items()}


@pytest.mark.parametrize("make", [lambda dev: xpnet.SimpleConvNet(**SMALL, device=dev, seed=5),
                                  lambda dev: xpnet.DeepConvNet(**DEEP_SMALL, device=dev, seed=5)],
                         ids=["simple", "deep"])
def test_conv_nets_give_torch_autograds_loss_and_gradients(dev, make):
    torch = pytest.importorskip("torch")
    net = make(dev)
    rng = np.random.default_rng(7)
    x, t = rng.standard_normal((5,) + net.input_dim), np.array([0, 1, 2, 1, 0])
    grads = net.gradient(dev.asarray(x), dev.asarray(t))  # training mode: DeepConvNet's masks drawn
    masks = [dev.to_numpy(v.mask).astype(np.float64) for v in net.layers.values() if type(v).__name__ == "Dropout"]
    loss, ref = _torch_loss(torch, net, x, t, masks)
    assert float(net.lastLayer.loss) == pytest.approx(loss, rel=1e-12)
    for k, g in ref.items():
        np.testing.assert_allclose(dev.to_numpy(grads[k]), g, rtol=1e-9, atol=1e-12, err_msg=k)

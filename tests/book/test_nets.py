"""The book's nets' contract, kept by xpnet's: the layers are the truth (edit them and predict,
gradient and gradcheck follow), ``lastLayer.loss`` after ``gradient()``, computed when read,
gradients never scaled, any net in the book's form trains (a reader's own, one spelling it
``last_layer``), the book's MultiLayerNet call, and a reader's slips (a rebound parameter, a
replaced layer or weight) named, not ignored."""

import numpy as np
import pytest

import xpnet
from xpnet.layers import Affine, Tanh
from xpnet.trainer import Trainer

from . import ReaderNet


def batch(dev, n=6, d=8, c=3, seed=1, dtype="float64"):
    rng = np.random.default_rng(seed)
    return dev.asarray(rng.standard_normal((n, d)), dtype=dtype), dev.asarray(rng.integers(0, c, n))


@pytest.fixture(scope="module")
def some_mnist(mnist):
    (x, t), (xt, tt) = mnist
    return x[:3000], t[:3000], xt[:1000], tt[:1000]


# -- net.layers is the truth -----------------------------------------------------------
def test_replacing_a_layer_changes_predict_gradient_and_gradcheck(dev):
    net = xpnet.TwoLayerNet(8, 5, 3, weight_init_std=0.5, device=dev, seed=0)
    x, t = batch(dev)
    before_p, before_g = dev.to_numpy(net.predict(x)), dev.to_numpy(net.gradient(x, t)["W1"])
    net.layers["Relu1"] = Tanh()
    after_p, after_g = dev.to_numpy(net.predict(x)), dev.to_numpy(net.gradient(x, t)["W1"])
    assert not np.allclose(before_p, after_p) and not np.allclose(before_g, after_g)
    h = np.tanh(dev.to_numpy(x) @ dev.to_numpy(net.params["W1"]))
    np.testing.assert_allclose(after_p, h @ dev.to_numpy(net.params["W2"]), rtol=1e-12)

    class WrongTanh(Tanh):
        def backward(self, dout):
            return dout * (1.0 - self.out)  # a reader's tanh: 1 - y instead of 1 - y**2

    net.layers["Relu1"] = WrongTanh()
    report = xpnet.gradcheck(net, x, t)
    assert not report.passed and report.culprits == ["Relu1"], str(report)
    net.layers["Relu1"] = Tanh()
    assert xpnet.gradcheck(net, x, t).passed


def test_to_keeps_edited_layers(dev):
    net = xpnet.TwoLayerNet(8, 5, 3, weight_init_std=0.5, device="cpu", dtype="float32", seed=0)
    net.layers["Relu1"] = Tanh()
    moved = net.to(device=dev, dtype="float64")
    assert type(moved.layers["Relu1"]) is Tanh and moved.layers["Affine1"].W is moved.params["W1"]
    x, t = batch(dev)
    np.testing.assert_allclose(dev.to_numpy(moved.predict(x)),
                               net.predict(dev.to_numpy(x).astype(np.float32)), rtol=1e-5, atol=1e-6)
    assert net.layers["Affine1"].W is net.params["W1"]  # the original is untouched


# -- lastLayer.loss after gradient(), computed only when read ---------------------------
def test_last_layer_loss_is_this_batchs_loss_after_gradient(dev):
    net = xpnet.TwoLayerNet(8, 5, 3, weight_init_std=0.5, device=dev, seed=0)
    x1, t1 = batch(dev, seed=1)
    x2, t2 = batch(dev, seed=2)
    net.loss(x1, t1)
    net.gradient(x2, t2)
    assert float(net.lastLayer.loss) == pytest.approx(float(net.loss(x2, t2)), rel=1e-12)
    net.gradient(x1, t1)
    assert float(net.lastLayer.loss) == pytest.approx(float(net.loss(x1, t1)), rel=1e-12)


def test_the_loss_costs_nothing_until_read():
    class CountingLog:  # the namespace, counting log calls
        def __init__(self, xp):
            self.xp, self.logs = xp, 0

        def __getattr__(self, name):
            return getattr(self.xp, name)

        def log(self, a):
            self.logs += 1
            return self.xp.log(a)

    net = xpnet.TwoLayerNet(8, 5, 3, device="cpu", seed=0)
    xp = net.lastLayer.xp = CountingLog(net.xp)
    x, t = batch(xpnet.device("cpu"))
    net.gradient(x, t)
    assert xp.logs == 0
    first = float(net.lastLayer.loss)
    assert xp.logs == 1 and float(net.lastLayer.loss) == first and xp.logs == 1


def test_the_lazy_loss_is_this_batchs_even_if_the_caller_refills_its_targets(dev):
    net = xpnet.TwoLayerNet(8, 5, 3, weight_init_std=0.5, device=dev, seed=0)
    x, t = batch(dev)
    t1 = dev.asarray(np.eye(3)[dev.to_numpy(t)], dtype="float64")
    want = float(net.loss(x, t1))
    net.gradient(x, t1)
    with dev.scope():
        t1[...] = dev.asarray(np.eye(3)[[2, 2, 2, 2, 2, 2]], dtype="float64")  # the next batch's labels
    assert float(net.lastLayer.loss) == pytest.approx(want, rel=1e-12)


# -- gradients as the book's: never scaled ------------------------------------------------
def test_gradients_are_never_scaled_by_the_trainer(some_mnist):
    net = xpnet.TwoLayerNet(784, 20, 10, device="cpu", seed=0)
    x, t = some_mnist[0][:5], some_mnist[1][:5]
    g = {k: v.copy() for k, v in net.gradient(x, t).items()}
    held = net.grads
    Trainer(net, *some_mnist, iters=20, lr=0.5, log=None, progress=False).run_steps(20)
    assert net.grads is held and all(np.array_equal(held[k], g[k]) for k in g)
    fresh = net.gradient(x, t)
    num = net.numerical_gradient(x[:2], t[:2])
    two = net.gradient(x[:2], t[:2])
    for k in num:
        np.testing.assert_allclose(two[k], num[k], atol=1e-8)
    assert fresh is not held


# -- a reader's own net trains -----------------------------------------------------------
def test_a_readers_own_numpy_net_trains(some_mnist):
    x, t, xt, tt = some_mnist
    net = ReaderNet(784, 50, 10)
    h = Trainer(net, x, np.eye(10)[t], xt, np.eye(10)[tt], iters=600, log=None, progress=False).fit()
    assert len(h.loss) == 600 and all(np.isfinite(h.loss))
    assert h.final_test_acc > 0.85 and h.config["net"] == {"class": "ReaderNet"}
    assert np.mean(h.loss[-50:]) < np.mean(h.loss[:50]) / 2


# -- a reader's slips are named, not ignored ------------------------------------------------
def test_a_rebound_parameter_is_named_not_ignored(dev):
    net = xpnet.TwoLayerNet(8, 5, 3, device=dev, seed=0)
    x, t = batch(dev)
    g = net.gradient(x, t)
    with dev.scope():
        net.params["W1"] = net.params["W1"] - 0.1 * g["W1"]  # the book-reader's silent bug
    with pytest.raises(ValueError, match=r"params\['W1'\] is held by no layer.*params\[k\] -= lr \* g"):
        net.gradient(x, t)


def test_a_replaced_layer_on_new_arrays_is_named(dev):
    net = xpnet.TwoLayerNet(8, 5, 3, device=dev, seed=0)
    W = dev.asarray(np.ones((8, 5)), dtype="float64")
    net.layers["Affine1"] = Affine(W, net.params["b1"])
    with pytest.raises(ValueError, match="layer 'Affine1'.*not in net.params"):
        net.gradient(*batch(dev))


def test_a_weight_replaced_inside_a_layer_is_named_not_ignored(dev):
    net = xpnet.TwoLayerNet(8, 5, 3, device=dev, seed=0)
    aff = net.layers["Affine1"]
    with dev.scope():
        aff.W = aff.W * 2.0  # the layer now computes with an array no optimizer updates
    with pytest.raises(ValueError, match=r"layer 'Affine1'.*parameter W.*not in net.params"):
        net.gradient(*batch(dev))


# -- the book's MultiLayerNet call and its other spelling, last_layer ---------------------------
def test_multi_layer_net_takes_the_books_call_and_defaults(dev):
    net = xpnet.MultiLayerNet(input_size=784, hidden_size_list=[100, 100], output_size=10, device=dev, seed=0)
    assert list(net.layers) == ["Affine1", "Activation_function1", "Affine2", "Activation_function2", "Affine3"]
    assert net.sizes == [784, 100, 100, 10] and net.last_layer is net.lastLayer
    w1 = dev.to_numpy(net.params["W1"])
    assert abs(w1.std() - np.sqrt(2.0 / 784)) < 0.002  # the book's default 'relu': He's initial weights
    sig = xpnet.MultiLayerNet(784, [50], 10, "sigmoid", "xavier", device=dev, seed=0)  # by position
    assert abs(dev.to_numpy(sig.params["W2"]).std() - np.sqrt(1.0 / 50)) < 0.02
    assert isinstance(sig.layers["Activation_function1"], xpnet.Sigmoid)
    mixed = xpnet.MultiLayerNet(784, [50], output_size=10, weight_init_std="xavier", device=dev, seed=0)
    assert mixed.sizes == [784, 50, 10] and mixed.weight_init == "xavier"
    same = xpnet.MultiLayerNet([784, 100, 100, 10], weight_init="he", device=dev, seed=0)  # xpnet's form
    assert list(same.layers) == ["Affine1", "Relu1", "Affine2", "Relu2", "Affine3"]
    np.testing.assert_array_equal(dev.to_numpy(same.params["W1"]), w1)  # one seed, one net, either form
    x, t = batch(dev, d=784, c=10)
    for k, g in net.gradient(x, t).items():
        np.testing.assert_array_equal(dev.to_numpy(g), dev.to_numpy(same.gradient(x, t)[k]))


def test_the_books_multi_layer_net_call_is_checked(dev):
    with pytest.raises(TypeError, match="needs hidden_size_list"):
        xpnet.MultiLayerNet(input_size=784, output_size=10, device=dev)
    with pytest.raises(TypeError, match="not both"):
        xpnet.MultiLayerNet([784, 10], input_size=784, device=dev)
    with pytest.raises(ValueError, match=r"weight_decay_lambda.*>= 0"):
        xpnet.MultiLayerNet(input_size=784, hidden_size_list=[10], output_size=10, weight_decay_lambda=-0.1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'use_dropout'"):
        xpnet.MultiLayerNet(input_size=784, hidden_size_list=[10], output_size=10, use_dropout=True)


def test_a_book_form_net_saves_and_loads_with_its_layer_names(tmp_path):
    net = xpnet.MultiLayerNet(input_size=20, hidden_size_list=[8], output_size=3, device="cpu", seed=0)
    back = xpnet.load_net(xpnet.save_net(net, tmp_path / "m.npz"), device="cpu")
    assert list(back.layers) == list(net.layers) and back.config == net.config
    np.testing.assert_array_equal(back.params["W1"], net.params["W1"])


class LastLayerReaderNet(ReaderNet):
    """A reader's net spelled as the book's chapter 6-8 nets are: ``last_layer``."""

    def __init__(self, *args):
        super().__init__(*args)
        self.last_layer = self.__dict__.pop("lastLayer")

    def loss(self, x, t):
        return self.last_layer.forward(self.predict(x), t)

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        a1, a2 = self.layers["Affine1"], self.layers["Affine2"]
        return {"W1": a1.dW, "b1": a1.db, "W2": a2.dW, "b2": a2.db}


def test_gradcheck_and_the_trainer_find_a_last_layer_spelled_last_layer(some_mnist):
    net = LastLayerReaderNet(6, 5, 3, 0.5)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((4, 6)), np.eye(3)[[0, 2, 1, 2]]
    report = xpnet.gradcheck(net, x, t)
    assert report.passed, str(report)
    assert set(report.layers) == {"Affine1", "Relu1", "Affine2", "SoftmaxWithLoss"}  # the book's loss layer
    xs, ts, xts, tts = some_mnist
    reader = LastLayerReaderNet(784, 20, 10, 0.01)
    h = Trainer(reader, xs, np.eye(10)[ts], xts, np.eye(10)[tts], iters=300, log=None, progress=False).fit()
    assert len(h.loss) == 300 and h.final_test_acc > 0.6


def test_numpy_data_goes_to_the_nets_device_as_the_books_scripts_feed_it(dev):
    """The book's scripts index load_mnist's NumPy arrays and hand them to the net, on any device."""
    net = xpnet.TwoLayerNet(8, 5, 3, device=dev, seed=0)
    x, t = batch(xpnet.device("cpu"))
    xd, td = dev.asarray(x), dev.asarray(t)
    np.testing.assert_array_equal(dev.to_numpy(net.predict(x)), dev.to_numpy(net.predict(xd)))
    assert float(net.loss(x, t)) == float(net.loss(xd, td)) and net.accuracy(x, t) == net.accuracy(xd, td)
    g = net.gradient(x, t)
    assert dev.owns(g["W1"])
    with pytest.raises(TypeError, match="x must be an array"):
        net.predict(x.tolist())  # lists are not data of a device: made into arrays by the caller

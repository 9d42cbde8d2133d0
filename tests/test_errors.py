import numpy as np
import pytest

import xpnet
from xpnet import functions as F
from xpnet.layers import Affine, SoftmaxWithLoss


@pytest.fixture
def net(dev):
    return xpnet.TwoLayerNet(8, 4, 3, device=dev, dtype="float32", seed=0)


def data(dev, n=5, d=8):
    rng = np.random.default_rng(0)
    return dev.asarray(rng.random((n, d)), dtype="float32"), dev.asarray(rng.integers(0, 3, n))


def test_wrong_feature_size(dev, net):
    x, t = data(dev, d=7)
    with pytest.raises(ValueError, match=r"x has shape \(5, 7\).*expects 8 features"):
        net.gradient(x, t)


def test_labels_out_of_range(dev, net):
    x, _ = data(dev)
    with pytest.raises(ValueError, match=r"labels t must lie in \[0, 2\].*\[0, 7\]"):
        net.gradient(x, dev.asarray(np.array([0, 1, 2, 7, 1])))
    with pytest.raises(ValueError, match=r"\[-1, 2\]"):
        net.loss(x, dev.asarray(np.array([0, -1, 2, 2, 1])))


def test_labels_of_the_wrong_shape(dev, net):
    x, _ = data(dev)
    with pytest.raises(ValueError, match=r"integer labels t must have shape \(5,\)"):
        net.gradient(x, dev.asarray(np.array([0, 1, 2])))
    with pytest.raises(ValueError, match=r"one-hot labels t must have shape \(5, 3\), got \(5, 4\)"):
        net.gradient(x, dev.asarray(np.zeros((5, 4)), dtype="float32"))


def test_non_float_input(dev, net):
    x = dev.asarray(np.zeros((5, 8), dtype=np.uint8))
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        net.gradient(x, data(dev)[1])


def test_mixed_precision_is_refused(dev, net):
    x, t = data(dev)
    x64 = dev.asarray(dev.to_numpy(x), dtype="float64")
    with pytest.raises(TypeError, match="float64.*float32"):
        net.loss(x64, t)


def test_arrays_from_two_devices(dev, net):
    other = "array_api_strict" if dev.name != "array_api_strict" else "cpu"
    x, t = data(xpnet.device(other))
    with pytest.raises(ValueError, match=f"x is on device '{other}' but the net is on '{dev.name}'"):
        net.gradient(x, data(dev)[1])
    xd, _ = data(dev)
    with pytest.raises(ValueError, match="t is on device"):
        net.gradient(xd, t)


def test_not_an_array(net):
    with pytest.raises(TypeError, match="x must be an array"):
        net.loss([[0.0] * 8], None)


def test_affine_layer_checks(dev):
    W = dev.asarray(np.zeros((4, 3)), dtype="float32")
    with pytest.raises(ValueError, match="b of shape"):
        Affine(W, dev.asarray(np.zeros(4), dtype="float32"))
    layer = Affine(W, dev.asarray(np.zeros(3), dtype="float32"))
    with pytest.raises(ValueError, match="expects 4 features"):
        layer.forward(dev.asarray(np.zeros((2, 5)), dtype="float32"))
    with pytest.raises(TypeError, match="mixing precisions"):
        layer.forward(dev.asarray(np.zeros((2, 4)), dtype="float64"))


def test_loss_layer_and_function_checks(dev):
    x = dev.asarray(np.zeros((2, 3)), dtype="float32")
    with pytest.raises(ValueError, match=r"lie in \[0, 2\]"):
        SoftmaxWithLoss().forward(x, dev.asarray(np.array([0, 3])))
    with pytest.raises(TypeError, match="integers or one-hot"):
        F.cross_entropy_error(x, dev.asarray(np.array([True, False])))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="sizes"):
        xpnet.MultiLayerNet([784])
    with pytest.raises(ValueError, match="activation"):
        xpnet.MultiLayerNet([4, 2], activation="tanh")
    with pytest.raises(ValueError, match="weight_init"):
        xpnet.MultiLayerNet([4, 2], weight_init="glorot")
    with pytest.raises(TypeError, match="floating"):
        xpnet.TwoLayerNet(4, 3, 2, dtype="int32", device="cpu")

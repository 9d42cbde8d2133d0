import numpy as np
import pytest

import xpnet
from xpnet import functions as F
from xpnet.layers import Affine, SoftmaxWithLoss

pytestmark = pytest.mark.in_device_scope  # layers and functions called directly (see conftest)


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


def test_input_of_another_float_dtype_is_converted_at_the_net(dev, net):
    """Data, not a precision choice: the book feeds float32 MNIST into its float64 net."""
    x, t = data(dev)
    x64 = dev.asarray(dev.to_numpy(x), dtype="float64")
    assert float(net.loss(x64, t)) == pytest.approx(float(net.loss(x, t)), rel=1e-6)
    assert net.predict(x64).dtype == net.dtype
    with pytest.raises(TypeError, match="float64.*float32"):  # a layer used directly still refuses
        net.layers["Affine1"].forward(x64)


def test_arrays_from_two_devices(dev, net):
    other = "array_api_strict" if dev.name != "array_api_strict" else other_than_host()
    x, t = data(xpnet.device(other))
    with pytest.raises(ValueError, match=f"x is on device '{other}', but the net is on '{dev.name}'"):
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
        xpnet.MultiLayerNet([4, 3, 2], activation="softplus")
    with pytest.raises(ValueError, match=r"sizes\[1\] must be a positive integer"):
        xpnet.MultiLayerNet([784, 10.7, 10])
    with pytest.raises(ValueError, match="weight_init"):
        xpnet.MultiLayerNet([4, 2], weight_init="glorot")
    with pytest.raises(TypeError, match="floating"):
        xpnet.TwoLayerNet(4, 3, 2, dtype="int32", device="cpu")


def test_float64_one_hot_labels_on_a_float32_net(dev, net):
    x, t = data(dev)
    t64 = dev.asarray(np.eye(3)[dev.to_numpy(t)], dtype="float64")
    g1, g2 = net.gradient(x, t64), None
    assert all(g.dtype == dev.xp.float32 for g in g1.values())
    g1 = {k: dev.to_numpy(v).copy() for k, v in g1.items()}
    g2 = net.gradient(x, t)
    for k in g1:
        np.testing.assert_allclose(g1[k], dev.to_numpy(g2[k]), rtol=1e-6, atol=1e-7)
    assert net.loss(x, t64).dtype == dev.xp.float32


def test_accuracy_rejects_empty_sets_and_bad_batch_sizes(dev, net):
    x, t = data(dev)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        net.accuracy(x, t, batch_size=-1)
    with pytest.raises(ValueError, match="no samples"):
        net.accuracy(x[:0, ...], t[:0])


def test_numerical_gradient_step_below_resolution():
    from xpnet.gradient import numerical_gradient

    x = np.array([40000.0], dtype=np.float32)
    with pytest.raises(ValueError, match="below the resolution of float32"):
        numerical_gradient(lambda v: float(v[0]) ** 2, x, h=1e-4)


def test_optimizer_coefficients_are_checked():
    with pytest.raises(ValueError, match=r"beta1 must be a number in \[0, 1\)"):
        xpnet.Adam(beta1=1.0)
    with pytest.raises(ValueError, match="momentum"):
        xpnet.Momentum(momentum=float("nan"))


def test_cross_entropy_of_3d_scores():
    with pytest.raises(ValueError, match=r"shape \(N, C\) or \(C,\), got 3-d"):
        F.cross_entropy_error(np.ones((2, 3, 4)), np.array([0, 1]))


def test_integer_pixels_cannot_be_normalised():
    with pytest.raises(ValueError, match="normalize=False"):
        xpnet.load_mnist(dtype="uint8")


def test_bad_blas_thread_setting(monkeypatch):
    monkeypatch.setenv("XPNET_BLAS_THREADS", "two")
    with pytest.raises(ValueError, match="XPNET_BLAS_THREADS must be a positive integer"):
        xpnet.device("cpu").step_scope(1e6)


@pytest.mark.parametrize("api_version", ["2022.12", "2023.12"])
def test_label_range_check_on_an_older_strict_standard(api_version):
    """The range check counts with count_nonzero where the namespace allows it; array_api_strict
    set to an older standard refuses that function, and the check must still work there."""
    xs = pytest.importorskip("array_api_strict")
    from xpnet.validation import check_labels

    with xs.ArrayAPIStrictFlags(api_version=api_version):
        assert check_labels(xs.asarray([0, 9, 3]), 3, 10, xs) == "index"
        with pytest.raises(ValueError, match=r"must lie in \[0, 9\].*\[-1, 3\]"):
            check_labels(xs.asarray([0, -1, 3]), 3, 10, xs)
        with pytest.raises(ValueError, match=r"\[0, 10\]"):
            check_labels(xs.asarray([0, 10, 3]), 3, 10, xs)


def other_than_host():
    """A device whose arrays are not NumPy's (a net moves NumPy data onto its device itself)."""
    pytest.importorskip("torch")
    return "torch"

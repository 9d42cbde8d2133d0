"""Every bad input gets a clear answer (ValueError/TypeError naming the argument, what was
expected and what to do), never a silent wrong number nor a traceback from inside a library."""

import math

import numpy as np
import pytest

import xpnet
from xpnet import functions as F
from xpnet.gradient import numerical_gradient
from xpnet.layers import SoftmaxWithLoss
from xpnet.validation import check_distribution, check_finite, check_net_size, index_labels

from .optional_hypothesis import HealthCheck, given, settings, st

pytestmark = pytest.mark.in_device_scope  # layers, functions and checks called directly (see conftest)

N, D, C = 5, 8, 3


@pytest.fixture
def net(dev):
    return xpnet.TwoLayerNet(D, 4, C, device=dev, dtype="float32", seed=0)


def data(dev, n=N, d=D):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, C, n)
    x = dev.asarray(rng.random((n, d)), dtype="float32")
    return x, dev.asarray(labels), dev.asarray(np.eye(C)[labels], dtype="float32")


# -- one-hot rows that are not distributions --------------------------------------------------
BAD_ROWS = {
    "doubled": lambda T: 2 * T,
    "all zero": lambda T: 0 * T,
    "negative": lambda T: np.where(T == 1, 1.5, -0.25).astype(np.float32),
    "nan": lambda T: np.where(T == 1, np.nan, 0).astype(np.float32),
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_one_hot_rows_that_are_not_distributions_are_refused(dev, net, kind):
    x, _, T = data(dev)
    bad = dev.asarray(BAD_ROWS[kind](dev.to_numpy(T)), dtype="float32")
    for call in (lambda: net.loss(x, bad), lambda: net.gradient(x, bad), lambda: net.accuracy(x, bad),
                 lambda: SoftmaxWithLoss().forward(net.predict(x), bad),
                 lambda: F.cross_entropy_error(F.softmax(net.predict(x)), bad),
                 lambda: F.softmax_cross_entropy(net.predict(x), bad)):
        with pytest.raises(ValueError, match=r"one-hot labels t must be probability rows.*row 0"):
            call()


def test_all_zero_rows_say_what_they_are(dev, net):
    x, _, T = data(dev)
    with pytest.raises(ValueError, match="all zero: a sample without a class"):
        net.loss(x, 0 * T)
    with pytest.raises(ValueError, match="sums to 2.*t / t.sum"):
        net.loss(x, 2 * T)


def test_soft_labels_pass(dev, net):
    """Label smoothing (0.9 on the class, the rest spread) is a distribution, in float32 and float64."""
    x, t, T = data(dev)
    eps = 0.1
    soft = np.eye(C)[dev.to_numpy(t)] * (1 - eps) + eps / C
    for dt in ("float32", "float64"):
        loss = float(net.loss(x, dev.asarray(soft, dtype=dt)))
        assert math.isfinite(loss)
    net.gradient(x, dev.asarray(soft, dtype="float32"))
    thirds = dev.asarray(np.full((N, C), 1 / 3), dtype="float32")
    assert math.isfinite(float(net.loss(x, thirds)))


def test_the_distribution_check_for_the_trainer(dev):
    """``check_labels`` (which the trainer calls on arrival) now checks one-hot rows too."""
    from xpnet.validation import check_labels

    T = dev.asarray(np.zeros((4, 3)), dtype="float32")
    with pytest.raises(ValueError, match="t_train must be probability rows"):
        check_labels(T, 4, 3, dev.xp, name="t_train")
    with pytest.raises(ValueError, match="sample without a class"):
        check_distribution(T, dev.xp, "t_train")
    assert check_labels(T, 4, 3, dev.xp, check_range=False) == "onehot"  # trusted callers skip it


# -- NaN/inf in x --------------------------------------------------------------------------
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_in_x_is_refused_where_data_enters(dev, net, value):
    x, t, _ = data(dev)
    host = dev.to_numpy(x).copy()
    host[3, 2] = value
    bad = dev.asarray(host)
    for call in (lambda: net.loss(bad, t), lambda: net.accuracy(bad, t), lambda: net.predict(bad),
                 lambda: net.numerical_gradient(bad, t)):
        with pytest.raises(ValueError, match=r"x holds 1 NaN or infinite value, the first in sample 3.*clean"):
            call()


def test_all_nan_batch_has_no_accuracy(dev, net):
    x, t, _ = data(dev)
    with pytest.raises(ValueError, match="x holds 40 NaN"):
        net.accuracy(x * float("nan"), t)


def test_the_nan_scan_is_not_in_gradient(dev, net):
    """Not in the hot loop: a NaN batch gives NaN gradients there, the trainer catches the loss."""
    x, t, _ = data(dev)
    g = net.gradient(x * float("nan"), t)
    assert not bool(dev.xp.all(dev.xp.isfinite(g["W2"])))


def test_check_finite_names_the_argument(dev):
    with pytest.raises(ValueError, match="x_train holds 2 NaN"):
        check_finite(dev.asarray(np.array([[0.0, np.nan], [np.nan, 1.0]])), "x_train", dev.xp)


# -- options -----------------------------------------------------------------------------------
def test_bad_sizes_and_weight_init():
    with pytest.raises(ValueError, match=r"sizes\[1\] must be a positive integer, got 10.7"):
        xpnet.MultiLayerNet([784, 10.7, 10])
    for w in (float("inf"), float("nan"), 0, -0.1, True):
        with pytest.raises(ValueError, match="weight_init must be a positive finite number"):
            xpnet.MultiLayerNet([4, 3, 2], weight_init=w)


def test_numpy_scalars_are_numbers():
    net = xpnet.MultiLayerNet([np.int64(4), np.int32(3), 2], weight_init=np.float32(0.1), device="cpu")
    assert net.sizes == [4, 3, 2] and type(net.weight_init) is float
    x, t = np.zeros((2, 4)), np.array([0, 1])
    assert net.accuracy(x, t, batch_size=np.int64(1)) in (0.0, 0.5, 1.0)
    trainer = xpnet.Trainer(net, np.random.rand(20, 4), np.arange(20) % 2, batch_size=np.int64(5),
                            iters=np.int64(2), log=None)
    assert trainer.batch_size == 5


def test_trainer_refuses_zero_eval_interval():
    net = xpnet.TwoLayerNet(4, 3, 2, device="cpu")
    with pytest.raises(ValueError, match="eval_interval must be a positive integer"):
        xpnet.Trainer(net, np.zeros((4, 4)), np.array([0, 1, 0, 1]), eval_interval=0)


@pytest.mark.parametrize("h", [float("nan"), 0.0, -1e-4, float("inf"), "1e-4"])
def test_numerical_gradient_step(h):
    with pytest.raises(ValueError, match=r"h must be a positive finite number.*h=1e-4"):
        numerical_gradient(lambda v: float(v[0]) ** 2, np.array([1.0]), h=h)


# -- one_hot -----------------------------------------------------------------------------------
def test_one_hot_checks_its_labels(dev):
    with pytest.raises(ValueError, match=r"labels t must lie in \[0, 2\].*\[-1, 0\]"):  # used to wrap around
        F.one_hot(dev.asarray(np.array([-1, 0])), 3)
    # a ValueError naming the range, not an IndexError from inside the library
    with pytest.raises(ValueError, match=r"must lie in \[0, 2\].*\[0, 3\]"):
        F.one_hot(dev.asarray(np.array([3, 0])), 3)
    with pytest.raises(TypeError, match="integer class labels, got dtype.*float64.*astype"):
        F.one_hot(dev.asarray(np.array([1.0, 0.0])), 3)
    with pytest.raises(ValueError, match="1-d"):
        F.one_hot(dev.asarray(np.array([[1, 0]])), 3)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        F.one_hot(dev.asarray(np.array([1, 0])), 2.5)
    with pytest.raises(TypeError, match="t must be an array"):
        F.one_hot([1, 0], 3, xp=dev.xp)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "uint16", "int32", "int64", "uint64"])
def test_one_hot_of_any_integer_dtype(dev, dtype):
    t = dev.asarray(np.array([1, 0, 2], dtype=dtype))
    np.testing.assert_array_equal(dev.to_numpy(F.one_hot(t, 3)), np.eye(3)[[1, 0, 2]])
    np.testing.assert_array_equal(dev.to_numpy(F.one_hot(t, 300)), np.eye(300)[[1, 0, 2]])  # c beyond int8


def test_unchecked_one_hot_fast_path(dev):
    t = dev.asarray(np.array([1, 0], dtype=np.uint8))
    np.testing.assert_array_equal(dev.to_numpy(F.one_hot(t, 3, check=False)), np.eye(3)[[1, 0]])
    assert index_labels(dev.asarray(np.array([1])), dev.xp).dtype == dev.xp.int64


# -- crashes that became clear errors ------------------------------------------------------------
def test_empty_batches(dev, net):
    x, t, T = data(dev)
    x0, t0 = x[:0, ...], t[:0]
    for what, call in (("mean loss", lambda: net.loss(x0, t0)), ("gradient", lambda: net.gradient(x0, t0)),
                       ("accuracy", lambda: net.accuracy(x0, t0)),
                       ("mean loss", lambda: net.numerical_gradient(x0, t0)),
                       ("SoftmaxWithLoss", lambda: SoftmaxWithLoss().forward(x0[:, :C], t0)),
                       ("cross entropy", lambda: F.cross_entropy_error(x0[:, :C], t0)),
                       ("cross entropy", lambda: F.softmax_cross_entropy(x0[:, :C], T[:0, ...]))):
        with pytest.raises(ValueError, match=f"holds no samples.*{what}.*at least one sample"):
            call()
    assert net.predict(x0).shape == (0, C)  # predictions of nothing are simply empty


@pytest.mark.parametrize("bad", [[[0.0] * D], "abc", None, 3.0])
def test_predict_of_something_not_an_array(dev, net, bad):
    with pytest.raises(TypeError, match=r"x must be an array.*asarray"):
        net.predict(bad)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int8", "int16", "int32"])
def test_mnist_uint8_labels_work(dev, net, dtype):
    """MNIST files store labels as uint8: they train, score and check like int64 ones."""
    x, t, T = data(dev)
    tu = dev.asarray(dev.to_numpy(t).astype(dtype))
    assert float(net.loss(x, tu)) == pytest.approx(float(net.loss(x, t)), rel=1e-6)
    gu = {k: dev.to_numpy(v).copy() for k, v in net.gradient(x, tu).items()}
    g = net.gradient(x, t)
    for k in g:
        np.testing.assert_allclose(gu[k], dev.to_numpy(g[k]), rtol=1e-6, atol=1e-8)
    assert net.accuracy(x, tu) == net.accuracy(x, t)
    assert float(SoftmaxWithLoss().forward(net.predict(x), tu)) == pytest.approx(float(net.loss(x, t)), rel=1e-6)
    assert float(F.softmax_cross_entropy(net.predict(x), tu)) == pytest.approx(float(net.loss(x, t)), rel=1e-5)
    with pytest.raises(ValueError, match=r"lie in \[0, 2\].*\[0, 7\]"):
        net.loss(x, dev.asarray(np.array([0, 1, 2, 7, 1], dtype=dtype)))


def test_uint8_labels_through_the_trainer(dev):
    net = xpnet.TwoLayerNet(D, 4, C, device=dev, dtype="float32", seed=0)
    rng = np.random.default_rng(0)
    x, t = rng.random((30, D)).astype(np.float32), rng.integers(0, C, 30).astype(np.uint8)
    hist = xpnet.Trainer(net, x, t, x, t, iters=3, batch_size=10, log=None).fit()
    assert len(hist.loss) == 3 and 0.0 <= hist.final_test_acc <= 1.0


def test_a_net_too_large_for_memory_says_how_large():
    with pytest.raises(ValueError, match=r"1,000,796,000,010 parameters.*3.6 TiB.*4 bytes.*memory of device 'cpu'"):
        xpnet.MultiLayerNet([784, 10**6, 10**6, 10], dtype="float32", device="cpu")
    with pytest.raises(ValueError, match=r"7.3 TiB.*8 bytes"):
        xpnet.MultiLayerNet([784, 10**6, 10**6, 10], device="cpu")


def test_net_size_against_a_small_device():
    class Small:
        name = "tiny"

        def memory_bytes(self):
            return 1000

    assert check_net_size([10, 20], 4, Small()) == 220  # 880 bytes fit
    with pytest.raises(ValueError,
                       match=r"sizes=\[10, 30\].*330 parameters.*1.3 KiB.*1000 bytes of memory of device 'tiny'"):
        check_net_size([10, 30], 4, Small())


def test_device_memory_is_known(dev):
    m = dev.memory_bytes()
    assert m is None or (isinstance(m, int) and m > 2**20)


# -- misleading messages ---------------------------------------------------------------------
def test_same_device_other_array_type_names_the_type(dev):
    """A NumPy subclass on the CPU (or a torch Parameter) is not the array type the net uses:
    the message names both types instead of 'on device cpu but the net is on cpu'."""
    if dev.name == "cpu":
        other, fix = np.ma.masked_array(np.zeros((2, D), dtype=np.float32)), "asarray"
    elif dev.name == "torch":
        import torch

        other, fix = torch.nn.Parameter(torch.zeros(2, D)), r"x.detach\(\)"
    else:
        pytest.skip("no other array type lives on this device")
    net = xpnet.TwoLayerNet(D, 4, C, device=dev, dtype="float32", seed=0)
    with pytest.raises(TypeError, match=f"x is a .*, not the .* that the net on '{dev.name}' computes with.*{fix}"):
        net.predict(other)


def test_arrays_of_another_device_still_say_which(dev, net):
    other = "array_api_strict" if dev.name != "array_api_strict" else "cpu"
    _, t, _ = data(xpnet.device(other))
    x, _, _ = data(dev)
    with pytest.raises(ValueError, match=f"t is on device '{other}', but the net is on '{dev.name}'"):
        net.loss(x, t)


@pytest.mark.parametrize("spec", ["cuda:x", "tpu", "torch:cuda:y"])
def test_bad_xpnet_device_names_the_variable(monkeypatch, spec):
    monkeypatch.setenv("XPNET_DEVICE", spec)
    with pytest.raises(ValueError, match=f"XPNET_DEVICE='{spec}'.*from the environment.*unset it"):
        xpnet.device()
    with pytest.raises(ValueError, match=f"XPNET_DEVICE='{spec}'"):
        xpnet.TwoLayerNet(4, 3, 2)


def test_an_explicit_bad_spec_does_not_blame_the_environment(monkeypatch):
    monkeypatch.setenv("XPNET_DEVICE", "cpu")
    with pytest.raises(ValueError) as e:
        xpnet.device("tpu")
    assert "XPNET_DEVICE" not in str(e.value)


# -- hypothesis: label forms against net.loss ---------------------------------------------------
NETS = {}


def small_net(dev):
    if dev.name not in NETS:
        NETS[dev.name] = xpnet.TwoLayerNet(D, 4, C, device=dev, dtype="float64", seed=1)
    return NETS[dev.name]


INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 6), labels=st.data(), dtype=st.sampled_from(INT_DTYPES),
       fdtype=st.sampled_from(["float32", "float64"]))
def test_valid_label_forms_give_one_finite_loss(dev, n, labels, dtype, fdtype):
    net = small_net(dev)
    t = np.array(labels.draw(st.lists(st.integers(0, C - 1), min_size=n, max_size=n)))
    x = dev.asarray(np.random.default_rng(n).random((n, D)))
    as_index = float(net.loss(x, dev.asarray(t.astype(dtype))))
    as_onehot = float(net.loss(x, dev.asarray(np.eye(C)[t], dtype=fdtype)))
    assert math.isfinite(as_index)
    assert as_onehot == pytest.approx(as_index, rel=1e-6 if fdtype == "float64" else 1e-5)
    w = np.array(labels.draw(st.lists(st.floats(0.0, 1.0), min_size=C, max_size=C)))
    if w.sum() > 1e-3:  # a soft distribution, the same for every sample
        soft = np.tile(w / w.sum(), (n, 1))
        assert math.isfinite(float(net.loss(x, dev.asarray(soft, dtype=fdtype))))


def label_arrays():
    shapes = st.sampled_from([(N,), (N, C), (N, 1), (N, C + 1), (N - 1,), (N, C, 1), (), (1, N)])
    dtypes = st.sampled_from(INT_DTYPES + ["float32", "float64", "bool"])
    values = st.sampled_from(["onehot", "index", "random", "doubled", "zero", "nan", "negative", "big"])
    return st.tuples(shapes, dtypes, values)


def make_labels(shape, dtype, values, rng):
    if values == "onehot" and len(shape) == 2:
        a = np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]
    elif values == "index":
        a = rng.integers(0, C, shape)
    elif values == "random":
        a = rng.random(shape) * 3
    elif values == "doubled":
        a = 2 * np.ones(shape)
    elif values == "zero":
        a = np.zeros(shape)
    elif values == "nan":
        a = np.full(shape, np.nan)
    elif values == "negative":
        a = -np.ones(shape)
    else:
        a = np.full(shape, 1000)
    with np.errstate(invalid="ignore"):
        return a.astype(dtype)


def valid(a) -> bool:
    if a.dtype.kind in "iu":
        return a.shape == (N,) and bool(np.all((a >= 0) & (a < C)))
    if a.dtype.kind == "f":
        return a.shape == (N, C) and bool(np.all(a >= 0)) and bool(np.allclose(a.sum(axis=1), 1.0))
    return False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=label_arrays(), seed=st.integers(0, 2**16))
def test_any_label_array_gives_a_loss_or_a_clear_error(dev, spec, seed):
    net = small_net(dev)
    a = make_labels(*spec, np.random.default_rng(seed))
    x = dev.asarray(np.random.default_rng(0).random((N, D)))
    t = dev.asarray(a)
    if valid(a):
        assert math.isfinite(float(net.loss(x, t)))
        net.gradient(x, t)
    else:
        with pytest.raises((ValueError, TypeError)) as e:
            net.loss(x, t)
        assert "t" in str(e.value)
        with pytest.raises((ValueError, TypeError)):
            net.gradient(x, t)

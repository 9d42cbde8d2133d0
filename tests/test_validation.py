"""xpnet/validation.py: every bad input gets a clear answer (ValueError/TypeError naming the
argument, what was expected and what to do), never a silent wrong number nor a traceback from
inside a library -- at each entry point that takes it (nets, layers, functions, the trainer), and
the checks called directly: one-hot rows that are not distributions, labels of any integer dtype,
NaN, empty batches, NumPy scalars as numbers, a net too large for its device, any label array."""

import math

import numpy as np
import pytest

import xpnet
from xpnet import functions as F
from xpnet.layers import SoftmaxWithLoss
from xpnet.validation import check_distribution, check_finite, check_labels, check_net_size

from .optional_hypothesis import HealthCheck, given, settings, st
from .samples import C, D, N, data

pytestmark = pytest.mark.in_device_scope  # layers, functions and checks called directly (see conftest)


@pytest.fixture
def net(dev):
    return xpnet.TwoLayerNet(D, 4, C, device=dev, dtype="float32", seed=0)


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
    T = dev.asarray(np.zeros((4, 3)), dtype="float32")
    with pytest.raises(ValueError, match="t_train must be probability rows"):
        check_labels(T, 4, 3, dev.xp, name="t_train")
    with pytest.raises(ValueError, match="sample without a class"):
        check_distribution(T, dev.xp, "t_train")
    assert check_labels(T, 4, 3, dev.xp, check_range=False) == "onehot"  # trusted callers skip it


# -- labels of any integer dtype, and their range ------------------------------------------------
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


@pytest.mark.parametrize("api_version", ["2022.12", "2023.12"])
def test_label_range_check_on_an_older_strict_standard(api_version):
    """The range check counts with count_nonzero where the namespace allows it; array_api_strict
    set to an older standard refuses that function, and the check must still work there."""
    xs = pytest.importorskip("array_api_strict")

    with xs.ArrayAPIStrictFlags(api_version=api_version):
        assert check_labels(xs.asarray([0, 9, 3]), 3, 10, xs) == "index"
        with pytest.raises(ValueError, match=r"must lie in \[0, 9\].*\[-1, 3\]"):
            check_labels(xs.asarray([0, -1, 3]), 3, 10, xs)
        with pytest.raises(ValueError, match=r"\[0, 10\]"):
            check_labels(xs.asarray([0, 10, 3]), 3, 10, xs)


# -- NaN, empty batches ----------------------------------------------------------------------
def test_check_finite_names_the_argument(dev):
    with pytest.raises(ValueError, match="x_train holds 2 NaN"):
        check_finite(dev.asarray(np.array([[0.0, np.nan], [np.nan, 1.0]])), "x_train", dev.xp)


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


# -- numbers, sizes ------------------------------------------------------------------------------
def test_numpy_scalars_are_numbers():
    net = xpnet.MultiLayerNet([np.int64(4), np.int32(3), 2], weight_init=np.float32(0.1), device="cpu")
    assert net.sizes == [4, 3, 2] and type(net.weight_init) is float
    x, t = np.zeros((2, 4)), np.array([0, 1])
    assert net.accuracy(x, t, batch_size=np.int64(1)) in (0.0, 0.5, 1.0)
    xr, tr = np.random.default_rng(0).random((7, 4)), np.arange(7) % 2
    assert net.accuracy(xr, tr, batch_size=np.int64(3)) == net.accuracy(xr, tr)  # batches of 3, 3 and 1
    trainer = xpnet.Trainer(net, np.random.rand(20, 4), np.arange(20) % 2, batch_size=np.int64(5),
                            iters=np.int64(2), log=None)
    assert trainer.batch_size == 5
    assert xpnet.Momentum(momentum=np.float32(0.9)).momentum == pytest.approx(0.9)


def test_net_size_against_a_small_device():
    class Small:
        name = "tiny"

        def memory_bytes(self):
            return 1000

    assert check_net_size([10, 20], 4, Small()) == 220  # 880 bytes fit
    with pytest.raises(ValueError,
                       match=r"sizes=\[10, 30\].*330 parameters.*1.3 KiB.*1000 bytes of memory of device 'tiny'"):
        check_net_size([10, 30], 4, Small())


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
    if a.dtype.kind in "iu":  # a column of labels, (N, 1), is labels too (the book's ch07 gradient check)
        return a.shape in ((N,), (N, 1)) and bool(np.all((a >= 0) & (a < C)))
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

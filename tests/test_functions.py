"""xpnet/functions.py: the book's activation and loss functions, exact and stable on every
device, and ``one_hot``; each refuses what it cannot compute, naming the argument."""

import math
import warnings

import numpy as np
import pytest

from xpnet import functions as F
from xpnet.validation import index_labels

pytestmark = pytest.mark.in_device_scope  # layers and functions called directly (see conftest)


def host(dev, a):
    return dev.to_numpy(a).astype(np.float64)


def test_sigmoid_is_stable_and_exact(dev):
    x = dev.asarray([-1000.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1000.0], dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = host(dev, F.sigmoid(x))
    ref = np.array([1 / (1 + math.exp(-v)) if v > -700 else 0.0 for v in [-1000, -30, -1, 0, 1, 30, 1000]])
    np.testing.assert_allclose(y, ref, rtol=1e-15, atol=0)


def test_softmax_normalises_each_row_and_keeps_dtype(dev):
    x = dev.asarray([[1.0, 2.0, 3.0], [1000.0, 1000.0, 0.0]], dtype="float32")
    y = F.softmax(x)
    assert y.dtype == dev.xp.float32
    y = host(dev, y)
    np.testing.assert_allclose(y.sum(axis=1), [1.0, 1.0], rtol=1e-6)
    e = np.exp([1.0, 2.0, 3.0] - np.max([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(y[0], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(y[1], [0.5, 0.5, 0.0], atol=1e-7)


def test_softmax_of_one_sample(dev):
    y = host(dev, F.softmax(dev.asarray([0.3, 2.9, 4.0], dtype="float64")))
    np.testing.assert_allclose(y, [0.01821127, 0.24519181, 0.73659691], rtol=1e-6)  # the book's


def test_cross_entropy_labels_and_one_hot_agree(dev):
    y = dev.asarray([[0.1, 0.05, 0.6, 0.0, 0.25], [0.7, 0.1, 0.1, 0.05, 0.05]], dtype="float64")
    t_idx = dev.asarray(np.array([2, 0]))
    t_hot = dev.asarray(np.eye(5)[[2, 0]], dtype="float64")
    a, b = F.cross_entropy_error(y, t_idx), F.cross_entropy_error(y, t_hot)
    expected = -(math.log(0.6) + math.log(0.7)) / 2
    assert float(a) == pytest.approx(expected, rel=1e-14)
    assert float(b) == pytest.approx(expected, rel=1e-14)


def test_cross_entropy_of_a_zero_probability_is_finite(dev):
    y = dev.asarray([[1.0, 0.0]], dtype="float32")
    v = float(F.cross_entropy_error(y, dev.asarray(np.array([1]))))
    assert math.isfinite(v) and v > 80


def test_softmax_cross_entropy_matches_composition(dev):
    rng = np.random.default_rng(0)
    x = dev.asarray(rng.standard_normal((4, 6)) * 3, dtype="float64")
    t = dev.asarray(np.array([0, 5, 2, 2]))
    a = float(F.softmax_cross_entropy(x, t))
    b = float(F.cross_entropy_error(F.softmax(x), t))
    assert a == pytest.approx(b, rel=1e-12)


def test_one_hot(dev):
    t = dev.asarray(np.array([1, 0, 3]))
    np.testing.assert_array_equal(host(dev, F.one_hot(t, 4, dev.xp.float32)), np.eye(4)[[1, 0, 3]])


def test_relu(dev):
    x = dev.asarray([-2.0, 0.0, 3.0], dtype="float32")
    np.testing.assert_array_equal(host(dev, F.relu(x)), [0.0, 0.0, 3.0])
    np.testing.assert_array_equal(host(dev, F.relu_grad(x)), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "uint16", "int32", "int64", "uint64"])
def test_one_hot_of_any_integer_dtype(dev, dtype):
    t = dev.asarray(np.array([1, 0, 2], dtype=dtype))
    np.testing.assert_array_equal(dev.to_numpy(F.one_hot(t, 3)), np.eye(3)[[1, 0, 2]])
    np.testing.assert_array_equal(dev.to_numpy(F.one_hot(t, 300)), np.eye(300)[[1, 0, 2]])  # c beyond int8


def test_unchecked_one_hot_fast_path(dev):
    t = dev.asarray(np.array([1, 0], dtype=np.uint8))
    np.testing.assert_array_equal(dev.to_numpy(F.one_hot(t, 3, check=False)), np.eye(3)[[1, 0]])
    assert index_labels(dev.asarray(np.array([1])), dev.xp).dtype == dev.xp.int64


# -- arguments checked ------------------------------------------------------------------------
@pytest.mark.parametrize("t,num_classes,error,match", [
    ([-1, 0], 3, ValueError, r"labels t must lie in \[0, 2\].*\[-1, 0\]"),  # used to wrap around
    ([3, 0], 3, ValueError, r"t must lie in \[0, 2\].*\[0, 3\]"),  # not an IndexError from inside the library
    ([1.0, 0.0], 3, TypeError, r"t must hold integer class labels, got dtype.*float64.*astype"),
    ([[1, 0]], 3, ValueError, r"t must be a 1-d array"),
    ([1, 0], 2.5, ValueError, r"num_classes must be a positive integer"),
], ids=["negative", "too large", "floats", "2-d", "num_classes"])
def test_one_hot_checks_its_labels(dev, t, num_classes, error, match):
    with pytest.raises(error, match=match):
        F.one_hot(dev.asarray(np.array(t)), num_classes)


def test_one_hot_of_a_list_says_to_make_it_an_array(dev):
    with pytest.raises(TypeError, match="t must be an array"):
        F.one_hot([1, 0], 3, xp=dev.xp)


def test_cross_entropy_refuses_boolean_labels(dev):
    x = dev.asarray(np.zeros((2, 3)), dtype="float32")
    with pytest.raises(TypeError, match="t must be integers or one-hot"):
        F.cross_entropy_error(x, dev.asarray(np.array([True, False])))


def test_cross_entropy_of_3d_scores():
    with pytest.raises(ValueError, match=r"shape \(N, C\) or \(C,\), got 3-d"):
        F.cross_entropy_error(np.ones((2, 3, 4)), np.array([0, 1]))

"""xpnet/gradient.py: the book's numerical gradient -- x restored bit for bit, a step that fits
the dtype, and a step that cannot be used refused."""

import numpy as np
import pytest
from array_api_compat import array_namespace

from xpnet.gradient import numerical_gradient


def arr(dev, shape, seed=0, scale=1.0):
    return dev.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, dtype="float64")


def test_numerical_gradient_restores_x_bit_for_bit(dev):
    x = arr(dev, (3, 2), 20)
    before = dev.to_numpy(x).copy()
    xp = array_namespace(x)
    with dev.scope():  # numerical_gradient calls the function given as it is
        g = numerical_gradient(lambda v: xp.sum(v * v), x)
    assert np.array_equal(dev.to_numpy(x), before)
    np.testing.assert_allclose(dev.to_numpy(g), 2 * before, rtol=1e-7, atol=1e-8)
    assert g.dtype == x.dtype and tuple(g.shape) == (3, 2)


def test_numerical_gradient_restores_x_when_f_raises():
    x = np.array([1.0, 2.0, 3.0])

    def f(v):
        if v[1] != 2.0:
            raise RuntimeError("boom")
        return float(np.sum(v))

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(f, x)
    assert x.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("h", [float("nan"), 0.0, -1e-4, float("inf"), "1e-4"])
def test_numerical_gradient_step(h):
    with pytest.raises(ValueError, match=r"h must be a positive finite number.*h=1e-4"):
        numerical_gradient(lambda v: float(v[0]) ** 2, np.array([1.0]), h=h)


def test_numerical_gradient_step_below_resolution():
    x = np.array([40000.0], dtype=np.float32)
    with pytest.raises(ValueError, match="below the resolution of float32"):
        numerical_gradient(lambda v: float(v[0]) ** 2, x, h=1e-4)

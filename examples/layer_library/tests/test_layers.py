"""The library's own tests: every layer on every device xpnet finds here, values and gradients."""

import math
import os

import pytest

from layer_library import Scale, Swish
from xpnet.testing import assert_close, assert_gradcheck, assert_same_on_every_device

BUG_DEMO = bool(os.environ.get("LAYER_LIBRARY_BUG"))


def test_swish_values(device, xp):
    x = device.asarray([[-2.0, 0.0, 1.5]], dtype=xp.float64)
    want = [[v / (1 + math.exp(-v)) for v in (-2.0, 0.0, 1.5)]]
    assert_close(Swish().forward(x), device.asarray(want, dtype=xp.float64))


def test_swish_gradient(device, xp):
    x = device.asarray([[-2.0, 0.3, 1.5], [0.7, -0.1, 2.0]], dtype=xp.float64)
    assert_gradcheck(Swish(), x)


@pytest.mark.skipif(BUG_DEMO, reason="LAYER_LIBRARY_BUG=1: the demo below shows the real failure")
def test_scale_gradient(device, xp):
    w = device.asarray([0.5, -2.0, 3.0], dtype=xp.float64)
    x = device.asarray([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], dtype=xp.float64)
    assert_gradcheck(Scale(w, bug=False), x)


def test_the_buggy_scale_is_caught_naming_its_gradient(device, xp):
    w = device.asarray([0.5, -2.0, 3.0], dtype=xp.float64)
    x = device.asarray([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], dtype=xp.float64)
    if BUG_DEMO:  # LAYER_LIBRARY_BUG=1 pytest: see what a user sees when a gradient is wrong
        assert_gradcheck(Scale(w), x)
    with pytest.raises(AssertionError, match=r"gradient check failed: w: .*dw"):
        assert_gradcheck(Scale(w, bug=True), x)


def test_the_same_swish_on_every_device():
    import numpy as np

    assert_same_on_every_device(lambda x: Swish().forward(x), np.linspace(-3, 3, 7).reshape(1, 7), dtype="float64")

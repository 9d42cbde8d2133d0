"""xpnet/util.py: the book's common/util.py -- shuffle_dataset on every device (the pairs kept, a
seed repeating the order), smooth_curve, and im2col/col2im on every device, against the book's
own (``tests.book``)."""

import numpy as np
import pytest

from xpnet.util import col2im, conv_output_size, im2col, shuffle_dataset, smooth_curve

from . import book


def test_shuffle_dataset_keeps_the_pairs_and_repeats_with_a_seed(dev):
    x = dev.asarray(np.arange(24.0).reshape(6, 1, 2, 2))
    t = dev.asarray(np.arange(6))
    xs, ts = shuffle_dataset(x, t, seed=3)
    hx, ht = dev.to_numpy(xs), dev.to_numpy(ts)
    assert sorted(ht.tolist()) == list(range(6)) and ht.tolist() != list(range(6))
    np.testing.assert_array_equal(hx, np.arange(24.0).reshape(6, 1, 2, 2)[ht])
    np.testing.assert_array_equal(dev.to_numpy(shuffle_dataset(x, t, seed=3)[1]), ht)
    with pytest.raises(ValueError, match="as many samples"):
        shuffle_dataset(x, dev.asarray(np.arange(5)))


def test_smooth_curve_is_the_books():
    x = np.random.default_rng(0).standard_normal(57).cumsum()
    np.testing.assert_allclose(smooth_curve(x), book.smooth_curve(x), rtol=1e-13)  # the book's common/util.py
    assert smooth_curve([1.0, 2.0]) == [1.0, 2.0]


CONV_CASES = [(shape, f, s, p) for shape in [(2, 3, 7, 5), (1, 1, 6, 6)] for f in [(3, 3), (2, 3), (1, 1)]
              for s in (1, 2, 3) for p in (0, 1, 2)]


@pytest.mark.parametrize("shape, f, stride, pad", CONV_CASES)
def test_im2col_and_col2im_are_the_books(dev, shape, f, stride, pad):
    """Strides 1-3, pads 0-2, non-square images and filters: the book's columns, exactly."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    col = book.im2col(x, *f, stride, pad)
    with dev.scope():
        got = im2col(dev.asarray(x), *f, stride, pad)
        c = rng.standard_normal(col.shape)
        back = col2im(dev.asarray(c), shape, *f, stride, pad)
    np.testing.assert_array_equal(dev.to_numpy(got), col)
    np.testing.assert_allclose(dev.to_numpy(back), book.col2im(c, shape, *f, stride, pad), rtol=1e-15, atol=1e-15)


def test_conv_output_size_is_an_int_and_refuses_what_does_not_fit():
    assert conv_output_size(28, 5) == 24 and type(conv_output_size(28, 5, 2, 1)) is int
    assert conv_output_size(7, 3, 2, 1) == 4
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_size(3, 5)
    with pytest.raises(ValueError, match="stride must be an integer >= 1"):
        conv_output_size(28, 5, 0)

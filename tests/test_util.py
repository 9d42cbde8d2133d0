"""xpnet/util.py: the book's common/util.py -- shuffle_dataset on every device (the pairs kept, a
seed repeating the order) and smooth_curve, against the book's own (``tests.book``)."""

import numpy as np
import pytest

from xpnet.util import shuffle_dataset, smooth_curve

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

"""xpnet/fast.py: each speed trick of the layers against the plain expression it stands for."""

import numpy as np
import pytest

pytestmark = pytest.mark.in_device_scope  # helpers called directly (see conftest)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_helpers_give_their_plain_expressions(dev, dtype):
    """xpnet/fast.py's helpers against the plain expressions they stand for (kept=None), twice
    (the second call reuses the kept arrays), and after the dtype changes under the same shape."""
    from xpnet.fast import Kept, column_sums, row_sums, total, zero_of

    xp, kept = dev.xp, Kept()
    for dt in (dtype, "float64" if dtype == "float32" else "float32", dtype):
        a = dev.asarray(np.random.default_rng(3).standard_normal((5, 4)), dtype=dt)
        v = a[:, 0]
        for _ in range(2):
            for fast, plain in ((column_sums(a, xp, kept), column_sums(a, xp, None)),
                                (row_sums(a, xp, kept), row_sums(a, xp, None)),
                                (total(v, xp, kept), total(v, xp, None)),
                                (zero_of(a, xp, kept), zero_of(a, xp, None))):
                assert fast.shape == plain.shape and fast.dtype == plain.dtype == a.dtype
                np.testing.assert_allclose(dev.to_numpy(fast), dev.to_numpy(plain), rtol=1e-6)
    assert row_sums(a, xp, None).shape == (5, 1) and total(v, xp, None).shape == ()

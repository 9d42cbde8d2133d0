"""The book's ``common/util.py``: shuffling a dataset and smoothing a loss curve for a plot.

``shuffle_dataset`` works on any device (the permutation is drawn by the device's generator, so
a seed gives the same order run after run); ``smooth_curve`` is for plotting, on the host.
"""

from __future__ import annotations

import math

from .backend import device_of, to_host

__all__ = ["shuffle_dataset", "smooth_curve"]


def shuffle_dataset(x, t, seed=None):
    """``(x, t)`` with their samples (first axis: rows of a 2-d ``x``, images of a 4-d one) in
    one random order; ``seed`` makes the order repeatable (the book's draws from NumPy's global
    generator)."""
    n = getattr(x, "shape", (None,))[0] if getattr(x, "ndim", 0) else None
    if n is None or getattr(t, "ndim", 0) == 0 or t.shape[0] != n:
        raise ValueError(f"shuffle_dataset needs x and t with as many samples each (their first axis), got x of "
                         f"shape {getattr(x, 'shape', type(x).__name__)} and t of shape "
                         f"{getattr(t, 'shape', type(t).__name__)}")
    dev = device_of(x)
    if device_of(t) is not dev:
        raise ValueError(f"shuffle_dataset: x is on {dev.name} and t on {device_of(t).name}; put them on one device")
    with dev.scope():
        permutation = dev.rng(seed).permutation(n)
        return dev.take_rows(x, permutation), dev.take_rows(t, permutation)


def _bessel_i0(x: float) -> float:
    """The modified Bessel function I0 (its power series: ample for the Kaiser window's beta)."""
    term, total, k = 1.0, 1.0, 0
    while term > 1e-17 * total:
        k += 1
        term *= (x / (2 * k)) ** 2
        total += term
    return total


def kaiser(window_len: int, beta: float) -> list:
    """NumPy's ``np.kaiser(window_len, beta)``, as a list."""
    if window_len == 1:
        return [1.0]
    m = window_len - 1
    i0_beta = _bessel_i0(beta)
    return [_bessel_i0(beta * math.sqrt(max(0.0, 1 - (2 * n / m - 1) ** 2))) / i0_beta for n in range(window_len)]


def smooth_curve(x) -> list:
    """The book's smoothing of a loss curve for its plots: a Kaiser window (length 11, beta 2)
    moved along the curve, which is mirrored at both ends; as many points as the curve, as a
    list of floats (a host-side helper: curves are short). Curves of fewer than 11 points are
    returned as they are (the book's mirror needs 11)."""
    if hasattr(x, "__array_namespace__"):
        x = to_host(x)
    if getattr(x, "ndim", 1) != 1:
        raise ValueError(f"smooth_curve takes a 1-d curve (a list of losses), got shape {x.shape}")
    x = [float(v) for v in x]
    window_len = 11
    if len(x) < window_len:
        return x
    s = x[window_len - 1:0:-1] + x + x[-1:-window_len:-1]  # the book's np.r_[...] mirror
    w = kaiser(window_len, 2)
    total = sum(w)
    w = [v / total for v in w]
    y = [sum(w[k] * s[i + window_len - 1 - k] for k in range(window_len)) for i in range(len(s) - window_len + 1)]
    return y[5:len(y) - 5]

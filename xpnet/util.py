"""The book's ``common/util.py``: shuffling a dataset, smoothing a loss curve for a plot, and
``im2col``/``col2im``, which turn a convolution into one matrix product.

``shuffle_dataset`` works on any device (the permutation is drawn by the device's generator, so
a seed gives the same order run after run); ``smooth_curve`` is for plotting, on the host.
``im2col`` and ``col2im`` keep the book's column layout, written with the standard's slices and
``stack`` (it has no ``pad`` and no ``as_strided``): padding is zeros with the image copied into
their centre, and each filter offset is one strided slice whose stop is exact (array-api-strict
refuses a stop past the end, which the book's ``y + stride*out_h`` is whenever stride > 1).
"""

from __future__ import annotations

import math

from array_api_compat import array_namespace

from .backend import device_of, to_host

__all__ = ["shuffle_dataset", "smooth_curve", "conv_output_size", "im2col", "col2im"]


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


def conv_output_size(input_size, filter_size, stride=1, pad=0) -> int:
    """Output positions of a filter sliding over ``input_size`` (the book's formula, as an int:
    the book's returns a float). A filter that does not fit is refused, naming the sizes."""
    for name, v, low in (("input_size", input_size, 1), ("filter_size", filter_size, 1), ("stride", stride, 1),
                         ("pad", pad, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    span = input_size + 2 * pad - filter_size
    if span < 0:
        raise ValueError(f"a filter of {filter_size} does not fit an input of {input_size} with pad {pad}: "
                         f"make the filter smaller or pad more")
    return span // stride + 1


def padded(x, pad: int, value=0.0):
    """``x`` (N, C, H, W) with ``pad`` rows and columns of ``value`` around each image: the standard
    has no ``pad``, so a filled array with ``x`` copied into its centre."""
    if pad == 0:
        return x
    xp = array_namespace(x)
    n, c, h, w = x.shape
    img = xp.full((n, c, h + 2 * pad, w + 2 * pad), value, dtype=x.dtype, device=x.device)
    img[:, :, pad:pad + h, pad:pad + w] = x
    return img


def windows(img, filter_h: int, filter_w: int, stride: int, out_h: int, out_w: int):
    """``(y, x, view)`` for each filter offset: the (N, C, out_h, out_w) strided slice of the padded
    ``img`` that the offset (y, x) of every window reads, its stop exact."""
    for y in range(filter_h):
        for x in range(filter_w):
            yield y, x, img[:, :, y:y + stride * (out_h - 1) + 1:stride, x:x + stride * (out_w - 1) + 1:stride]


def _sizes(shape, filter_h, filter_w, stride, pad):
    if len(shape) != 4:
        raise ValueError(f"im2col/col2im take images of shape (N, C, H, W), got shape {tuple(shape)}")
    n, c, h, w = shape
    return n, c, h, w, conv_output_size(h, filter_h, stride, pad), conv_output_size(w, filter_w, stride, pad)


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """Images (N, C, H, W) as the book's columns: one row per output position (N*out_h*out_w of
    them), one column per input value a filter reads there (C*filter_h*filter_w)."""
    xp = array_namespace(input_data)
    N, C, H, W, out_h, out_w = _sizes(input_data.shape, filter_h, filter_w, stride, pad)
    img = padded(input_data, pad)
    col = xp.stack([v for _, _, v in windows(img, filter_h, filter_w, stride, out_h, out_w)], axis=2)
    col = xp.reshape(col, (N, C, filter_h, filter_w, out_h, out_w))
    col = xp.permute_dims(col, (0, 4, 5, 1, 2, 3))
    return xp.reshape(col, (N * out_h * out_w, -1))


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The adjoint of ``im2col``: each column value added back to the input position it was read
    from (overlapping windows add up), the padding cut off; shape ``input_shape``."""
    xp = array_namespace(col)
    N, C, H, W, out_h, out_w = _sizes(tuple(input_shape), filter_h, filter_w, stride, pad)
    col = xp.permute_dims(xp.reshape(col, (N, out_h, out_w, C, filter_h, filter_w)), (0, 3, 4, 5, 1, 2))
    img = xp.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=col.dtype, device=col.device)
    for y, x, _ in windows(img, filter_h, filter_w, stride, out_h, out_w):
        img[:, :, y:y + stride * (out_h - 1) + 1:stride, x:x + stride * (out_w - 1) + 1:stride] += col[:, :, y, x, :, :]
    return img[:, :, pad:H + pad, pad:W + pad] if pad else img

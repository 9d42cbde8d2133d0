"""The speed tricks of the layers and nets, each a named helper beside the plain expression it stands for.

The layers read as the book's maths (``self.db = column_sums(dout, ...)`` where the book writes
``np.sum(dout, axis=0)``); how it is made fast lives here, once (scikit-learn's ``_array_api.py``
keeps its fast paths the same way). Each helper gives exactly what its plain expression gives, on
every backend; ``benchmarks/README.md`` says what each saves and how it was measured.
"""

from __future__ import annotations

from operator import is_

from .backend import device_of

__all__ = ["Kept", "column_sums", "conv_kernels", "row_sums", "same_objects", "total", "zero_of"]


class Kept(dict):
    """Arrays a layer keeps between calls for its fast paths (a ones vector, a 0-d zero), keyed
    by shape. They belong to one device and dtype: ``Net.to`` gives its copies new ones, and a
    layer without any (a subclass that skipped ``__init__``) computes the plain expressions."""

    def __copy__(self):
        return type(self)()

    def __deepcopy__(self, memo):
        return type(self)()

    def __reduce__(self):  # pickled layers keep no device arrays of this kind
        return (type(self), ())


def _ones(kept, shape: tuple, like, xp):
    ones = kept.get(shape)  # (a layer subclass that skipped __init__ has none: plain expressions then)
    if ones is None or ones.dtype != like.dtype or ones.device != like.device:
        ones = kept[shape] = xp.ones(shape, dtype=like.dtype, device=like.device)
    return ones


def column_sums(a, xp, kept: Kept | None):
    """``xp.sum(a, axis=0)`` for a 2-d ``a``, as one matrix-vector product with a kept ones
    vector: a BLAS call instead of a reduction, which small arrays pay dearly for on NumPy."""
    if kept is None:
        return xp.sum(a, axis=0)
    return _ones(kept, (a.shape[0],), a, xp) @ a


def row_sums(a, xp, kept: Kept | None):
    """``xp.sum(a, axis=1, keepdims=True)`` for a 2-d ``a``, as ``a @ ones`` (see column_sums)."""
    if kept is None:
        return xp.sum(a, axis=1, keepdims=True)
    return a @ _ones(kept, (a.shape[1], 1), a, xp)


def total(v, xp, kept: Kept | None):
    """``xp.sum(v)`` for a 1-d ``v``, as ``ones @ v``: a BLAS dot instead of a reduction (see
    column_sums)."""
    if kept is None:
        return xp.sum(v)
    return _ones(kept, (v.shape[0],), v, xp) @ v


def zero_of(x, xp, kept: Kept | None):
    """A 0-d zero of ``x``'s dtype and device, for ``xp.maximum(x, zero)``: a Python ``0.0``
    there becomes a new device array on every call under array-api-compat's torch (a
    host-to-device copy on CUDA)."""
    if kept is None:
        return xp.zeros((), dtype=x.dtype, device=x.device)
    z = kept.get(())
    if z is None or z.dtype != x.dtype or z.device != x.device:
        z = kept[()] = xp.zeros((), dtype=x.dtype, device=x.device)
    return z


def same_objects(now, seen) -> bool:
    """Whether the collection ``now`` holds the very objects of the tuple ``seen``, in order: the
    validity test of what a net remembers about its layers and parameters (identity tests run
    in C, a fraction of building a tuple of ids to compare)."""
    return len(now) == len(seen) and all(map(is_, now, seen))


def conv_kernels(x, W=None, b=None):
    """The device's own convolution and max pooling (``Device.conv_kernels``: torch's) for images
    ``x`` -- and, for a convolution, filters ``W`` and biases ``b`` of x's dtype, b an array of
    one value per filter -- or None: the layers then compute the book's way, with im2col."""
    try:
        kernels = device_of(x).conv_kernels()
    except TypeError:  # an array of no device xpnet knows
        return None
    if kernels is None or W is None:
        return kernels
    if W.dtype != x.dtype or getattr(b, "dtype", None) != x.dtype or b.shape != (W.shape[0],):
        return None
    return kernels

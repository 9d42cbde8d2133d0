"""Every input check of xpnet, in one place, with messages that say what was wrong and what to do.

Nets, layers, functions, optimizers, the trainer and the command line call these; none of them
writes its own. Shape and dtype checks are attribute reads (well under a microsecond). The label
range check is a reduction and, on a GPU, a host synchronisation: public entry points run it, the
trainer validates its data once on arrival and then skips it inside the step.
"""

from __future__ import annotations

import math
import numbers

__all__ = [
    "is_kind",
    "shape_str",
    "positive_int",
    "non_negative_int",
    "positive_number",
    "unit_interval",
    "check_array",
    "check_float_array",
    "check_features",
    "check_labels",
]


_KINDS: dict = {}


def is_kind(xp, dtype, kind: str) -> bool:
    """``xp.isdtype(dtype, kind)``, remembered per dtype: NumPy's costs 1.4 us a call, and the
    checks of every public call ask it two or three times."""
    key = (id(xp), kind, dtype)  # one library's dtypes never compared with another's
    hit = _KINDS.get(key)
    if hit is None:
        hit = _KINDS[key] = bool(xp.isdtype(dtype, kind))
    return hit


def shape_str(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


# -- options (Python numbers; NumPy integer scalars count as integers, bools never do) ----------
def positive_int(name: str, value, allow_none: bool = False):
    """``value`` as an ``int`` >= 1; ``np.int64(5)`` is accepted, ``5.0``, ``True`` and ``10.7`` are not."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def non_negative_int(name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def positive_number(name: str, value) -> float:
    """A finite number > 0 (learning rates, standard deviations, step sizes)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def unit_interval(name: str, value) -> float:
    """A coefficient in [0, 1): momentum, beta1, beta2."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


# -- arrays -----------------------------------------------------------------------------------
def check_array(a, name: str, device) -> None:
    """``a`` must be an array of ``device``; the message says where it is and how to move it."""
    if device.owns(a):
        return
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise TypeError(f"{name} must be an array on {device.name}, got {type(a).__name__}; "
                        f"put data there with dev.asarray(data, dtype=...) (dev = xpnet.device({device.name!r}))")
    from .device import device_of

    try:
        where = repr(device_of(a).name)
    except TypeError:
        where = "a " + type(a).__module__ + "." + type(a).__name__
    raise ValueError(f"{name} is on device {where}, but the net is on {device.name!r}: arrays of two devices "
                     f"can't be mixed; move it with xpnet.device({device.name!r}).asarray({name})")


def check_float_array(x, name: str, xp, dtype=None) -> None:
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(
            f"{name} must be an array, got {type(x).__name__}; "
            "put host data on the device with dev.asarray(data, dtype=...)"
        )
    if not is_kind(xp, x.dtype, "real floating"):
        raise TypeError(
            f"{name} must have a floating dtype, got {x.dtype}; "
            f"convert it, e.g. dev.asarray(data, dtype='float32') (and scale images to [0, 1])"
        )
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but the model computes in {dtype}; "
            f"convert it (xp.astype({name}, {dtype})) rather than mixing precisions"
        )


def check_features(x, n_features: int, name: str = "x") -> None:
    if x.ndim < 1 or (x.ndim >= 2 and math.prod(x.shape[1:]) != n_features) or (
        x.ndim == 1 and x.shape[0] != n_features
    ):
        raise ValueError(
            f"{name} has shape {shape_str(x.shape)} but the model expects {n_features} features "
            f"per sample: shape (N, {n_features}) or (N, ...) with {n_features} values per sample"
        )


def check_labels(t, n: int, c: int, xp, check_range: bool = True, name: str = "t") -> str:
    """Classify labels as ``"index"`` (integers, shape (N,)) or ``"onehot"`` (floats, (N, C))."""
    if not hasattr(t, "shape") or not hasattr(t, "dtype"):
        raise TypeError(f"{name} must be an array of labels, got {type(t).__name__}")
    if is_kind(xp, t.dtype, "integral"):
        if t.shape != (n,):
            raise ValueError(
                f"integer labels {name} must have shape ({n},) to match {n} samples, "
                f"got {shape_str(t.shape)}"
            )
        if check_range and n:
            bad = xp.logical_or(t < 0, t >= c)
            if bool(xp.any(bad)):
                lo, hi = int(xp.min(t)), int(xp.max(t))
                raise ValueError(
                    f"labels {name} must lie in [0, {c - 1}] for {c} classes, got values in "
                    f"[{lo}, {hi}]"
                )
        return "index"
    if is_kind(xp, t.dtype, "real floating"):
        if t.shape != (n, c):
            raise ValueError(
                f"one-hot labels {name} must have shape ({n}, {c}), got {shape_str(t.shape)}; "
                f"pass integer class labels of shape ({n},) or one-hot rows of length {c}"
            )
        return "onehot"
    raise TypeError(f"labels {name} must be integers or one-hot floats, got dtype {t.dtype}")

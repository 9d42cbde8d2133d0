"""Input validation with messages that say what was wrong and what to do.

Shape and dtype checks are attribute reads (well under a microsecond).  The label range
check is a reduction and, on a GPU, a host synchronisation: public entry points run it,
the trainer validates its data once and then skips it inside the step.
"""

from __future__ import annotations

import math


def shape_str(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_float_array(x, name: str, xp, dtype=None) -> None:
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(
            f"{name} must be an array, got {type(x).__name__}; "
            "put host data on the device with dev.asarray(data, dtype=...)"
        )
    if not xp.isdtype(x.dtype, "real floating"):
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


def check_labels(t, n: int, c: int, xp, check_range: bool = True) -> str:
    """Classify labels as ``"index"`` (integers, shape (N,)) or ``"onehot"`` (floats, (N, C))."""
    if not hasattr(t, "shape") or not hasattr(t, "dtype"):
        raise TypeError(f"t must be an array of labels, got {type(t).__name__}")
    if xp.isdtype(t.dtype, "integral"):
        if t.shape != (n,):
            raise ValueError(
                f"integer labels t must have shape ({n},) to match {n} samples, "
                f"got {shape_str(t.shape)}"
            )
        if check_range and n:
            bad = xp.logical_or(t < 0, t >= c)
            if bool(xp.any(bad)):
                lo, hi = int(xp.min(t)), int(xp.max(t))
                raise ValueError(
                    f"labels t must lie in [0, {c - 1}] for {c} classes, got values in "
                    f"[{lo}, {hi}]"
                )
        return "index"
    if xp.isdtype(t.dtype, "real floating"):
        if t.shape != (n, c):
            raise ValueError(
                f"one-hot labels t must have shape ({n}, {c}), got {shape_str(t.shape)}; "
                f"pass integer class labels of shape ({n},) or one-hot rows of length {c}"
            )
        return "onehot"
    raise TypeError(f"labels t must be integers or one-hot floats, got dtype {t.dtype}")

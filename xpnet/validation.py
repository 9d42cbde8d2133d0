"""Every input check of xpnet, in one place, with messages that say what was wrong and what to do.

Nets, layers, functions, optimizers, the trainer and the command line call these; none of them
writes its own. Shape and dtype checks are attribute reads (well under a microsecond). The label
range check of integer labels, the distribution check of one-hot rows and the NaN/inf scan of
inputs are reductions and, on a GPU, host synchronisations: public entry points run them, the
trainer validates its data once on arrival and then skips them inside the step.

Every message names the argument, says what was expected and what to do.
"""

from __future__ import annotations

import math
import numbers

__all__ = [
    "is_array",
    "is_kind",
    "shape_str",
    "positive_int",
    "non_negative_int",
    "int_at_least",
    "positive_number",
    "unit_interval",
    "check_array",
    "check_no_grad",
    "check_features",
    "check_labels",
    "label_column",
    "labels_out_of_range",
    "check_distribution",
    "distribution_tolerance",
    "check_finite",
    "check_samples",
    "index_labels",
    "check_net_size",
    "format_bytes",
]


_KINDS: dict = {}


def is_array(v) -> bool:
    """Whether ``v`` is an array (of any backend) rather than a number, a list or an array type:
    the one test every part uses where it must tell them apart."""
    return hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, type)


def is_kind(xp, dtype, kind: str) -> bool:
    """``xp.isdtype(dtype, kind)``, remembered per dtype: NumPy's is slow enough to matter, and the
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


def positive_number(name: str, value, hint: str = "") -> float:
    """A finite number > 0 (learning rates, standard deviations, step sizes); ``hint`` says
    what to pass instead (appended to the message)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}" + (f"; {hint}" if hint else ""))
    return float(value)


def unit_interval(name: str, value) -> float:
    """A coefficient in [0, 1): momentum, beta1, beta2."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


# -- arrays -----------------------------------------------------------------------------------
def check_array(a, name: str, device) -> None:
    """``a`` must be an array of ``device``, outside any autograd graph (a torch tensor that
    requires grad would grow one step after step); the message says where it is and how to move it."""
    if device.owns(a):
        return
    if not is_array(a):
        raise TypeError(f"{name} must be an array on {device.name}, got {type(a).__name__}; "
                        f"put data there with dev.asarray(data, dtype=...) (dev = xpnet.device({device.name!r}))")
    from .backend import device_of

    given = type(a).__module__ + "." + type(a).__qualname__
    try:
        where = device_of(a).name
    except TypeError:
        where = None
    if where == device.name:  # same device, another array type: a subclass (np.matrix, nn.Parameter) or wrapper
        wanted = type(device.asarray(0.0))  # the error path only: the cost does not matter here
        if type(a) is wanted:  # (torch's devices own no tensor that requires grad)
            check_no_grad(a, name)
        fix = f"{name}.detach()" if callable(getattr(a, "detach", None)) else \
            f"xpnet.device({device.name!r}).asarray({name})"  # torch's asarray keeps a Parameter a Parameter
        raise TypeError(f"{name} is a {given}, not the {wanted.__module__}.{wanted.__qualname__} that the net on "
                        f"{device.name!r} computes with; pass a plain array: {fix}")
    where = repr(where) if where is not None else "of no known device (a " + given + ")"
    raise ValueError(f"{name} is on device {where}, but the net is on {device.name!r}: arrays of two devices "
                     f"can't be mixed; move it with xpnet.device({device.name!r}).asarray({name})")


def check_no_grad(a, name: str) -> None:
    """``a`` must not be a tensor that requires grad: xpnet computes its own gradients, and torch
    would record every operation on it, memory growing step after step."""
    if getattr(a, "requires_grad", False):
        raise TypeError(f"{name} requires grad: xpnet computes its own gradients, and torch would record every "
                        f"operation on it (memory growing step after step); pass {name}.detach()")


def check_features(x, n_features: int, name: str = "x") -> None:
    if x.ndim < 1 or (x.ndim >= 2 and math.prod(x.shape[1:]) != n_features) or (
        x.ndim == 1 and x.shape[0] != n_features
    ):
        raise ValueError(
            f"{name} has shape {shape_str(x.shape)} but the model expects {n_features} features "
            f"per sample: shape (N, {n_features}) or (N, ...) with {n_features} values per sample"
        )


def label_column(t, n: int, xp):
    """Integer labels given as a column, shape (N, 1) (the book's ``ch07/gradient_check.py`` passes
    ``np.array([1]).reshape((1, 1))``), as the (N,) labels they are; anything else as given."""
    if getattr(t, "shape", None) == (n, 1) and is_kind(xp, t.dtype, "integral"):
        return xp.reshape(t, (n,))
    return t


def check_labels(t, n: int, c: int, xp, check_range: bool = True, name: str = "t") -> str:
    """Classify labels as ``"index"`` (integers, shape (N,)) or ``"onehot"`` (floats, (N, C)).

    ``check_range`` also checks the values (a reduction, one host synchronisation): integer
    labels must lie in [0, C-1], one-hot rows must be probability distributions
    (``check_distribution``). Callers that validated the labels before pass False."""
    if not hasattr(t, "shape") or not hasattr(t, "dtype"):
        raise TypeError(f"{name} must be an array of labels (integer classes of shape ({n},) or one-hot rows of "
                        f"shape ({n}, {c})), got {type(t).__name__}; put them on the device with dev.asarray(labels)")
    if is_kind(xp, t.dtype, "integral"):
        if t.shape != (n,):
            raise ValueError(
                f"integer labels {name} must have shape ({n},) to match {n} samples, "
                f"got {shape_str(t.shape)}"
            )
        if check_range and n:
            if is_kind(xp, t.dtype, "unsigned integer"):  # torch has no comparisons for uint16..uint64
                t = index_labels(t, xp)  # (exact but for uint64 above 2**63, which turn negative: refused too)
            if labels_out_of_range(t, c, xp):
                lo, hi = int(xp.min(t)), int(xp.max(t))
                raise ValueError(
                    f"labels {name} must lie in [0, {c - 1}] for {c} classes, got values in "
                    f"[{lo}, {hi}]; pass class indices 0..{c - 1} (or a net with more outputs)"
                )
        return "index"
    if is_kind(xp, t.dtype, "real floating"):
        if t.shape != (n, c):
            raise ValueError(
                f"one-hot labels {name} must have shape ({n}, {c}), got {shape_str(t.shape)}; "
                f"pass integer class labels of shape ({n},) or one-hot rows of length {c}"
            )
        if check_range and n:
            check_distribution(t, xp, name)
        return "onehot"
    raise TypeError(f"labels {name} must be integers or one-hot floats, got dtype {t.dtype}; pass integer class "
                    f"labels (e.g. int64) of shape ({n},) or float one-hot rows of shape ({n}, {c})")


_INT_MAX: dict = {}


def labels_out_of_range(t, c: int, xp) -> int:
    """How many signed labels lie outside [0, c-1]. ``t // c`` is nonzero exactly there: one
    operation where ``(t < 0) | (t >= c)`` takes three, on a check that runs in every
    ``gradient()``. When c exceeds the dtype's range (which the strict namespace refuses to
    divide or compare by) every value lies below c and ``t < 0`` is the whole test."""
    if 0 < c <= 127:  # within every signed integer dtype's range: no dtype to look up
        return _count_nonzero(t // c, xp)
    key = (id(xp), t.dtype)
    top = _INT_MAX.get(key)
    if top is None:
        top = _INT_MAX[key] = int(xp.iinfo(t.dtype).max)
    if c > top:
        return _count_nonzero(t < 0, xp)
    if c < 1:  # (no class at all: every label is out of range)
        return t.shape[0]
    return _count_nonzero(t // c, xp)


def _count_nonzero(a, xp) -> int:
    """``count_nonzero(a)`` as an int, or 1/0 (any nonzero) where the namespace lacks it: a newer
    standard's function, which array_api_strict set to an older API version refuses."""
    count = getattr(xp, "count_nonzero", None)
    if count is not None:
        try:
            return int(count(a))
        except RuntimeError:
            pass
    return int(bool(xp.any(a)))


def index_labels(t, xp):
    """Integer labels as ``int64`` unless they are ``int32``/``int64`` already: the dtypes every
    backend takes as indices (torch's ``take`` refuses MNIST's uint8) and compares with argmax's
    result (the strict namespace refuses uint64 against int64)."""
    dt = t.dtype
    if dt == xp.int64 or dt == xp.int32:
        return t
    return xp.astype(t, xp.int64)


_TOL: dict = {}


def distribution_tolerance(xp, dtype) -> float:
    """How far a one-hot (probability) row's sum may be from 1, and an entry below 0:
    ``sqrt(eps)`` of the dtype, and never less than float32's (3.5e-4), since soft labels are
    often made in float32 and fed to a float64 net. Roundings of legitimate rows (label
    smoothing, 1/3s) stay far below it; a zero row, a doubled one or a missing class do not."""
    key = (id(xp), dtype)
    tol = _TOL.get(key)
    if tol is None:
        tol = _TOL[key] = max(float(xp.finfo(dtype).eps), float(xp.finfo(xp.float32).eps)) ** 0.5
    return tol


def check_distribution(t, xp, name: str = "t") -> None:
    """Every row of the float targets ``t`` (N, C) must be a probability distribution: entries
    >= 0 and a sum of 1, within ``distribution_tolerance``. One-hot rows pass, and so do soft
    labels (label smoothing); all-zero rows, doubled ones (``2 * t``), negative entries and
    NaN do not. One reduction and one host synchronisation."""
    tol = distribution_tolerance(xp, t.dtype)
    s = t @ xp.ones((t.shape[1], 1), dtype=t.dtype, device=t.device)  # row sums: one BLAS call, cheaper than sum
    # one count for both conditions: an entry below -tol, or a row whose sum is not within tol of
    # 1 (NaN anywhere makes its row's sum NaN, which fails ``<=``)
    if t.shape[1] and not _count_nonzero((t < -tol) | xp.logical_not(xp.abs(s - 1.0) <= tol), xp):
        return
    s = xp.reshape(s, (-1,))
    row_bad = xp.logical_not(xp.abs(s - 1.0) <= tol)
    row_bad = xp.logical_or(row_bad, xp.logical_not(xp.all(t >= -tol, axis=1)))
    k = int(xp.sum(xp.astype(row_bad, xp.int64)))
    i = int(xp.argmax(xp.astype(row_bad, xp.int32)))
    row_sum, row_min = float(s[i]), float(xp.min(t[i, ...]))
    why = ("it holds NaN" if math.isnan(row_sum) or math.isnan(row_min) else
           "it is all zero: a sample without a class" if row_sum == 0 and row_min == 0 else
           f"it has a negative entry ({row_min:g})" if row_min < -tol else f"it sums to {row_sum:g}")
    raise ValueError(
        f"one-hot labels {name} must be probability rows (entries >= 0 summing to 1, within {tol:.1e}), but "
        f"{k} of {t.shape[0]} rows are not: row {i} is the first, {why}. Pass integer class labels, one-hot "
        f"rows, or soft labels normalised to sum to 1 (t / t.sum(axis=1, keepdims=True)); drop samples "
        f"without a class")


def check_finite(x, name: str, xp) -> None:
    """``x`` must hold no NaN or infinity (a reduction over the data: run once where data enters)."""
    if bool(xp.all(xp.isfinite(x))):
        return
    bad = xp.logical_not(xp.isfinite(x))
    k = int(xp.sum(xp.astype(bad, xp.int64)))
    first = ""
    if x.ndim >= 1 and x.shape[0]:
        rows = xp.any(xp.reshape(bad, (x.shape[0], -1)), axis=1) if x.ndim > 1 else bad
        first = f", the first in sample {int(xp.argmax(xp.astype(rows, xp.int32)))}"
    raise ValueError(f"{name} holds {k} NaN or infinite value{'s' if k != 1 else ''}{first}: results would be "
                     f"NaN or meaningless; clean the data (drop or replace those samples) before passing it")


def check_samples(n: int, name: str, what: str) -> None:
    """At least one sample: ``what`` names the quantity an empty batch leaves undefined."""
    if n == 0:
        raise ValueError(f"{name} holds no samples (0 rows): {what} of an empty batch is undefined; "
                         f"pass at least one sample (samples along the first axis)")


def format_bytes(n: float) -> str:
    """``n`` bytes for a message, in binary units (``1.5 GiB``): memory and the file caps are
    powers of two, so a cap of ``1 << 30`` reads as ``1.0 GiB``."""
    for unit, k in (("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if abs(n) >= 1 << k:
            return f"{n / (1 << k):.1f} {unit}"
    return f"{n:.0f} bytes"


def check_net_size(sizes, itemsize: int, device, host=None, host_itemsize: int = 8, name: str = "sizes") -> int:
    """The parameter count of a fully connected net of layer widths ``sizes``, refused with its
    size in bytes when the parameters alone (``itemsize`` bytes each) would not fit in the
    memory of ``device`` (``Device.memory_bytes()``; no check where it is unknown), nor their
    initial draws (``host_itemsize`` bytes each) in ``host``'s memory. Before any allocation."""
    count = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    places = ((device, itemsize, "parameters"), (host, host_itemsize, "initial weights, drawn on the host"))
    for dev, size, what in places:
        if dev is None:
            continue
        limit = dev.memory_bytes()
        need = count * size
        if limit is not None and need > limit:
            raise ValueError(
                f"{name}={list(sizes)} makes a net of {count:,} parameters: its {what} need {format_bytes(need)} "
                f"({need:,} bytes at {size} bytes each), more than the {format_bytes(limit)} of memory of "
                f"device {dev.name!r} (training needs about 3x more: gradients, optimizer state); choose "
                f"smaller layer widths")
    return count


def int_at_least(low: int, what: str):
    """An argparse type for integers >= ``low`` (the command line's and the benchmark's counts):
    a bad value is a one-line usage error, not a traceback."""
    import argparse

    def parse(s):
        try:
            v = int(s)
        except ValueError:
            v = None
        if v is None or v < low:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {s!r}")
        return v

    return parse

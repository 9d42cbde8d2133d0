"""The book's numerical gradient (``common/gradient.py``): central differences, one entry at a time.

``numerical_gradient`` is the book's loop; the helpers it calls make it exact on every backend
and dtype: a step that fits the dtype (the book's 1e-4 is too coarse for float64 and below
float16's resolution), the divisor taken from the values actually stored (float32 rounds
``x + h``), and ``x`` restored bit for bit even when ``f`` raises. ``gradcheck``
(:mod:`xpnet.gradient_check`) perturbs through the same helper.
"""

from __future__ import annotations

import itertools

from array_api_compat import array_namespace

from .backend import dtype_name
from .validation import positive_number

__all__ = ["numerical_gradient"]


def numerical_gradient(f, x, h: float | None = None):
    """Central-difference gradient of the scalar function ``f(x)`` at ``x``.

    ``x`` is perturbed in place one entry at a time (so ``f`` may ignore its argument and read
    parameters it shares with ``x``, as the book's nets do) and restored bit for bit. Works on
    any Array API backend; the result has ``x``'s dtype and device.
    """
    h = step_for(x, h)
    grad = []
    for idx in itertools.product(*map(range, x.shape)):
        (x_plus, fxh1), (x_minus, fxh2) = evaluate_around(f, x, idx, h)  # f(x+h), f(x-h)
        grad.append((fxh1 - fxh2) / (x_plus - x_minus))
    xp = array_namespace(x)
    return xp.reshape(xp.asarray(grad, dtype=x.dtype, device=x.device), tuple(x.shape))


def default_step(dtype: str) -> float:
    """The central-difference step for ``dtype``: about the cube root of its resolution."""
    return 1e-6 if dtype == "float64" else 1e-3 if dtype == "float32" else 1e-2


def step_for(x, h: float | None) -> float:
    """The step to perturb the floating array ``x`` by: ``h`` checked, or the dtype's default."""
    if not array_namespace(x).isdtype(x.dtype, "real floating"):
        raise TypeError(f"numerical_gradient needs a floating array, got dtype {x.dtype}")
    if h is None:
        return default_step(dtype_name(x.dtype))
    return positive_number("numerical_gradient: h", h,
                           hint="pass a small step such as h=1e-4, or h=None for the dtype's default")


def evaluate_around(f, x, idx: tuple, h: float):
    """``((x_plus, f_plus), (x_minus, f_minus))``: ``f(x)`` with ``x[idx]`` set to ``x[idx] + h``
    and to ``x[idx] - h``, each beside the value actually stored (the divisor of a difference).

    ``x[idx]`` is restored bit for bit afterwards, also when ``f`` raises."""
    old = float(x[idx])  # a copy: on torch x[idx] is a view
    try:
        x[idx] = old + h
        x_plus, f_plus = float(x[idx]), float(f(x))
        x[idx] = old - h
        x_minus, f_minus = float(x[idx]), float(f(x))
    finally:
        x[idx] = old
    if x_plus == x_minus:
        raise ValueError(f"numerical_gradient: h={h} is below the resolution of {x.dtype} at x{list(idx)} = "
                         f"{old}; pass a larger h")
    return (x_plus, f_plus), (x_minus, f_minus)

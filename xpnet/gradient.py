"""Numerical gradients and the gradient check that finds a wrong ``backward``.

``gradcheck`` compares backprop against central differences in float64, per parameter and per
input, and -- for a net made of layers -- checks every layer on its own with the inputs it
saw, so a reader learns *which* layer's backward is wrong, not only that something is.
It works on any object following the layer protocol (``forward(*inputs)``, ``backward(dout)``,
parameters ``W`` with gradients ``dW``), including a user's own NumPy layers.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from array_api_compat import array_namespace, is_array_api_obj

__all__ = ["numerical_gradient", "gradcheck", "GradcheckReport", "GradResult"]


def _default_h(dtype_name: str) -> float:
    return 1e-6 if dtype_name == "float64" else 1e-3 if dtype_name == "float32" else 1e-2


def _dtype_name(x) -> str:
    from .device import dtype_name

    return dtype_name(x.dtype)


def _to_host(a) -> np.ndarray:
    """Any backend's array (or a number) as a float64 NumPy array, for comparisons."""
    if isinstance(a, np.ndarray) or np.isscalar(a):
        return np.asarray(a, dtype=np.float64)
    from .device import device_of

    return np.asarray(device_of(a).to_numpy(a), dtype=np.float64)


def numerical_gradient(f, x, h: float | None = None):
    """Central-difference gradient of the scalar function ``f(x)`` at ``x``.

    ``x`` is perturbed in place one entry at a time (so ``f`` may ignore its argument and read
    parameters it shares with ``x``, as the book's nets do) and restored bit for bit. The
    divisor is the perturbation actually stored, which matters in float32. Works on any
    Array API backend; the result has ``x``'s dtype and device.
    """
    xp = array_namespace(x)
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"numerical_gradient needs a floating array, got dtype {x.dtype}")
    h = _default_h(_dtype_name(x)) if h is None else float(h)
    grad = np.empty(tuple(x.shape), dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        old = float(x[idx])  # a copy: on torch x[idx] is a view
        x[idx] = old + h
        up = float(x[idx])
        fp = float(f(x))
        x[idx] = old - h
        down = float(x[idx])
        fm = float(f(x))
        x[idx] = old
        if up == down:
            raise ValueError(f"numerical_gradient: h={h} is below the resolution of {x.dtype} at x{list(idx)} = "
                             f"{old}; pass a larger h")
        grad[idx] = (fp - fm) / (up - down)
    return xp.asarray(grad, dtype=x.dtype, device=x.device)


@dataclass
class GradResult:
    """Backprop vs numerical gradient of one parameter or input."""

    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    passed: bool
    worst_index: tuple = ()

    def __str__(self) -> str:
        verdict = "ok  " if self.passed else "FAIL"
        return (f"{verdict} {self.name:<14} shape {str(self.shape):<12} max abs {self.max_abs:.3e}  "
                f"max rel {self.max_rel:.3e}")


@dataclass
class GradcheckReport(Mapping):
    """Per-parameter results (a mapping name -> GradResult), plus per-layer results."""

    results: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)  # layer name -> {name: GradResult}
    notes: list = field(default_factory=list)
    dtype: str = "float64"

    def __getitem__(self, key):
        return self.results[key]

    def __iter__(self):
        return iter(self.results)

    def __len__(self):
        return len(self.results)

    @property
    def passed(self) -> bool:
        ok = all(r.passed for r in self.results.values())
        ok_layers = all(r.passed for res in self.layers.values() for r in res.values())
        return ok and ok_layers and not any(n.startswith("error") for n in self.notes)

    @property
    def culprits(self) -> list:
        """Names of the layers whose own backward disagrees with the numerical gradient."""
        return [name for name, res in self.layers.items() if not all(r.passed for r in res.values())]

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [f"gradient check ({self.dtype}): {'PASSED' if self.passed else 'FAILED'}"]
        lines += [f"  {r}" for r in self.results.values()]
        for name, res in self.layers.items():
            mark = "ok  " if all(r.passed for r in res.values()) else "FAIL"
            lines.append(f"  layer {name}: {mark}")
            lines += [f"      {r}" for r in res.values()]
        if self.culprits:
            lines.append(f"  wrong backward in: {', '.join(self.culprits)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _compare(name, analytic, numeric, atol, rtol) -> GradResult:
    a, n = _to_host(analytic), _to_host(numeric)
    if a.shape != n.shape:
        return GradResult(name, n.shape, math.inf, math.inf, False)
    diff = np.abs(a - n)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = max(float(np.abs(a).max(initial=0.0)), float(np.abs(n).max(initial=0.0)))
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    worst = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), diff.shape)) if diff.size else ()
    passed = bool(np.isfinite(max_abs) and max_abs <= atol + rtol * scale)
    return GradResult(name, tuple(n.shape), max_abs, max_rel, passed, worst)


def _is_float_array(v) -> bool:
    if not is_array_api_obj(v) or isinstance(v, (int, float, complex)):
        return False
    try:
        return array_namespace(v).isdtype(v.dtype, "real floating")
    except TypeError:
        return False


def _cast(v, dtype_name):
    """A float copy of an array or number in ``dtype_name``; labels (integers) stay as they are."""
    if _is_float_array(v):
        xp = array_namespace(v)
        return xp.astype(v, getattr(xp, dtype_name), copy=True)
    if isinstance(v, (float, int)) and not isinstance(v, bool):
        return np.asarray(float(v), dtype=dtype_name)
    return v


def _is_net(obj) -> bool:
    return isinstance(getattr(obj, "params", None), dict) and callable(getattr(obj, "gradient", None)) \
        and callable(getattr(obj, "loss", None))


def gradcheck(target, *inputs, h=None, atol=1e-7, rtol=1e-5, dtype="float64", locate=True, seed=0):
    """Check backprop against central differences, in float64.

    ``gradcheck(net, x, t)`` checks every parameter of a net (anything with ``params``,
    ``gradient`` and ``loss``); with ``locate=True`` it also checks each of its ``layers`` and
    its ``lastLayer`` alone and names the ones whose backward is wrong (``report.culprits``).
    ``gradcheck(layer, *forward_inputs)`` checks a single layer: the gradient of every floating
    input and of every parameter ``P`` that has a gradient attribute ``dP``. A result passes when
    ``max_abs <= atol + rtol * max|grad|``. The report is a mapping name -> GradResult.
    """
    report = GradcheckReport(dtype=dtype)
    is_net = _is_net(target)
    if not is_net and not (callable(getattr(target, "forward", None)) and callable(getattr(target, "backward", None))):
        raise TypeError(
            "gradcheck needs a net (params, loss, gradient) or a layer (forward, backward), "
            f"got {type(target).__name__}"
        )
    with _scope_of(list(inputs) + list(getattr(target, "params", {}).values()) + list(vars(target).values())):
        if is_net:
            _check_net(target, inputs, report, h, atol, rtol, dtype, locate, seed)
        else:
            report.results = _check_layer(target, inputs, report.notes, h, atol, rtol, dtype, seed)
    return report


def _scope_of(candidates):
    """The device scope of the first array among ``candidates`` (CuPy computes on the current GPU)."""
    from .device import _NULL_SCOPE, device_of

    for a in candidates:
        if is_array_api_obj(a) and not isinstance(a, (int, float, complex)):
            try:
                return device_of(a).scope()
            except TypeError:
                break
    return _NULL_SCOPE


def _check_net(net, inputs, report, h, atol, rtol, dtype, locate, seed):
    if len(inputs) != 2:
        raise TypeError("gradcheck(net, x, t): pass the input batch x and its labels t")
    if hasattr(net, "to") and hasattr(net, "config"):
        net = net.to(dtype=dtype)
    else:  # a user's own net: its parameters are whatever it made them
        actual = {_dtype_name(p) for p in net.params.values() if _is_float_array(p)}
        if actual and actual != {dtype}:
            report.notes.append(f"the net's parameters are {', '.join(sorted(actual))}, not {dtype}, and it "
                                f"has no .to(dtype=...): create it in {dtype} for a precise check")
            report.dtype = ", ".join(sorted(actual))
    x, t = (_cast(a, dtype) for a in inputs)
    try:
        analytic = {k: _to_host(g) for k, g in net.gradient(x, t).items()}
    except Exception as e:  # a broken backward often raises: report it, then find the layer
        report.notes.append(f"error: net.gradient raised {type(e).__name__}: {e}")
        analytic = None
    if analytic is not None:
        for key, p in net.params.items():
            if key not in analytic:
                report.notes.append(f"error: gradient() returned no entry for parameter {key!r}")
                continue
            numeric = numerical_gradient(lambda _: net.loss(x, t), p, h)
            report.results[key] = _compare(key, analytic[key], numeric, atol, rtol)
    if locate and hasattr(net, "layers") and hasattr(net, "lastLayer"):
        a = x
        for name, layer in net.layers.items():
            report.layers[name] = _check_layer(layer, (a,), report.notes, h, atol, rtol, dtype, seed, name)
            a = layer.forward(a)
        last = net.lastLayer
        report.layers[type(last).__name__] = _check_layer(last, (a, t), report.notes, h, atol, rtol, dtype,
                                                          seed, type(last).__name__)
        if not report.passed and not report.culprits:
            report.notes.append("every layer is right on its own: the net's gradient() combines them "
                                "wrongly (is backward walking the layers in reverse order?)")


def _check_layer(layer, inputs, notes, h, atol, rtol, dtype, seed, label=None):
    label = label or type(layer).__name__
    lay = copy.copy(layer)  # never perturb or overwrite the caller's layer
    for k, v in list(vars(lay).items()):
        if _is_float_array(v):
            setattr(lay, k, _cast(v, dtype))
    if hasattr(lay, "compute_dx"):
        lay.compute_dx = True
    ins = [_cast(a, dtype) for a in inputs]
    try:
        names = [p.name for p in inspect.signature(lay.forward).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    names += [f"input{i}" for i in range(len(names), len(ins))]

    out = lay.forward(*ins)
    scalar_out = not hasattr(out, "shape") or tuple(out.shape) == ()
    if scalar_out:
        weight = None
        dout = 1.0
    else:
        xp = array_namespace(out)
        rng = np.random.default_rng(seed)
        weight = xp.asarray(rng.standard_normal(tuple(out.shape)), dtype=out.dtype, device=out.device)
        dout = xp.asarray(weight, copy=True)

    def loss(_=None):
        o = lay.forward(*ins)
        if weight is None:
            return float(o) if not hasattr(o, "shape") else float(_to_host(o))
        return float(array_namespace(o).sum(o * weight))

    try:
        grads = lay.backward(dout)
    except Exception as e:
        notes.append(f"error: {label}.backward raised {type(e).__name__}: {e}")
        return {"backward": GradResult("backward", (), math.inf, math.inf, False)}
    if weight is not None and not np.array_equal(_to_host(dout), _to_host(weight)):
        notes.append(f"{label}.backward wrote into its dout argument (the caller's gradient changed)")
    grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
    grads = [None if g is None else _to_host(g) for g in grads]
    # parameters with a gradient attribute: W -> dW; read analytic values before perturbing
    params = {k: v for k, v in vars(lay).items()
              if _is_float_array(v) and _is_float_array(getattr(lay, "d" + k, None))
              and tuple(getattr(lay, "d" + k).shape) == tuple(v.shape)}
    analytic_params = {k: _to_host(getattr(lay, "d" + k)) for k in params}

    results = {}
    for i, (name, a) in enumerate(zip(names, ins)):
        if not _is_float_array(a) or i >= len(grads) or grads[i] is None:
            continue
        if weight is None and i > 0 and name in ("t", "target", "labels"):
            continue  # labels of a loss layer are data, not something to differentiate
        results[name] = _compare(name, grads[i], numerical_gradient(loss, a, h), atol, rtol)
    for k, p in params.items():
        results[k] = _compare(k, analytic_params[k], numerical_gradient(loss, p, h), atol, rtol)
    return results

"""The gradient check that finds a wrong ``backward``: ``gradcheck``, its report and its verdicts.

``gradcheck`` compares backprop against central differences in float64, per parameter and per
input, and -- for a net made of layers -- checks every layer on its own with the inputs it
saw, so a reader learns *which* layer's backward is wrong, not only that something is.
It works on any object following the layer protocol (``forward(*inputs)``, ``backward(dout)``,
parameters ``W`` with gradients ``dW``), including a user's own NumPy layers.

Every failing result carries a ``reason`` that names the parameter or input, the layer, and
what to do; a habit that gives right gradients but can bite elsewhere (a backward writing into
its ``dout``) is a warning, not a failure. All arithmetic stays in the arrays' own namespace, on
their device; only scalars come back to Python.

Layers with modes and randomness are checked as they train: a net's loss in training mode
(``loss(x, t, train_flg=True)`` where it takes the flag), every dropout mask held for the whole
check (xpnet's ``Dropout.hold_mask``; a reader's dropout drawing from ``np.random`` or torch's
global generator finds it rewound before each forward), running statistics put back afterwards.
A layer with modes is also checked in testing mode (no sample's output may depend on the rest
of its batch) and a batch normalisation for its axis (each feature normalised over the batch).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from array_api_compat import array_namespace, is_array_api_obj

from .backend import device as get_device
from .backend import device_of, dtype_name, host_rng, null_scope, rewound_global_generators, scope_of
from .gradient import evaluate_around, numerical_gradient, step_for
from .layers import held, layer_param_names
from .nets import last_layer_of
from .protocols import is_grad_net, is_layer, is_layered_net, takes_train_flg

__all__ = ["GradResult", "GradcheckReport", "gradcheck"]

# Inputs of a loss layer that are its labels: data, not something to differentiate.
_LABEL_NAMES = ("t", "target", "targets", "label", "labels", "y_true")
_KINK_PROBES = 16  # failing entries tested for a kink before a failure is called inconclusive


def _default_tol(dtype: str) -> tuple[float, float]:
    """(atol, rtol) that fit central differences in ``dtype``."""
    return {"float64": (1e-7, 1e-5), "float32": (1e-4, 1e-2)}.get(dtype, (1e-2, 1e-1))


@dataclass
class GradResult:
    """Backprop vs numerical gradient of one parameter or input.

    ``reason`` says why a result failed (empty when it passed). ``inconclusive`` marks a
    failure where finite differences cannot decide (an input on a kink such as ReLU at 0):
    the check did not pass, but the backward is not shown to be wrong either.
    """

    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    passed: bool
    worst_index: tuple = ()
    reason: str = ""
    inconclusive: bool = False

    def __str__(self) -> str:
        verdict = "ok  " if self.passed else "????" if self.inconclusive else "FAIL"
        line = (f"{verdict} {self.name:<14} shape {self.shape!s:<12} max abs {self.max_abs:.3e}  "
                f"max rel {self.max_rel:.3e}")
        return f"{line}  -- {self.reason}" if self.reason else line


def _fail(name, shape, reason, inconclusive=False) -> GradResult:
    return GradResult(name, tuple(shape), math.inf, math.inf, False, (), reason, inconclusive)


def _wrong(res) -> bool:
    """A failure that shows a wrong backward (not merely an undecidable kink)."""
    return not res.passed and not res.inconclusive


@dataclass
class GradcheckReport(Mapping):
    """Per-parameter results (a mapping name -> GradResult), plus per-layer results.

    ``warnings`` name habits that give right gradients here but can bite a caller elsewhere (a
    backward that writes into its ``dout``); they never fail the check. ``notes`` say what could
    not be checked and why (those starting with ``error`` fail it)."""

    results: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)  # layer name -> {name: GradResult}
    notes: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    dtype: str = "float64"

    def __getitem__(self, key):
        return self.results[key]

    def __iter__(self):
        return iter(self.results)

    def __len__(self):
        return len(self.results)

    @property
    def passed(self) -> bool:
        """Every gradient of the net (or layer) checked right, and no layer's own backward shown
        wrong: a layer checked alone may be inconclusive -- a pooling window of tied ReLU zeros
        is a kink finite differences cannot decide -- when the net's gradients through it are
        right (warnings do not count either)."""
        ok = all(r.passed for r in self.results.values())
        ok_layers = not any(_wrong(r) for res in self.layers.values() for r in res.values())
        return ok and ok_layers and not any(n.startswith("error") for n in self.notes)

    @property
    def culprits(self) -> list:
        """Names of the layers whose own backward disagrees with the numerical gradient."""
        return [name for name, res in self.layers.items() if any(_wrong(r) for r in res.values())]

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [f"gradient check ({self.dtype}): {'PASSED' if self.passed else 'FAILED'}"]
        lines += [f"  {r}" for r in self.results.values()]
        for name, res in self.layers.items():
            mark = "ok  " if all(r.passed for r in res.values()) else \
                "FAIL" if any(_wrong(r) for r in res.values()) else "????"
            lines.append(f"  layer {name}: {mark}")
            lines += [f"      {r}" for r in res.values()]
        if self.culprits:
            lines.append(f"  wrong backward in: {', '.join(self.culprits)}")
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# -- the entry point ----------------------------------------------------------------------
def gradcheck(target, *inputs, h=None, atol=None, rtol=None, dtype="float64", locate=True, seed=0):
    """Check backprop against central differences, in float64.

    ``gradcheck(net, x, t)`` checks every parameter of a net (anything with ``params``,
    ``gradient`` and ``loss``); with ``locate=True`` it also checks each of its ``layers`` and
    its ``lastLayer`` (or ``last_layer``) alone and names the ones whose backward is wrong (``report.culprits``).
    ``gradcheck(layer, *forward_inputs)`` checks a single layer: the gradient of every floating
    input, and of every parameter -- the names in ``layer.param_names`` when the layer declares
    them, else the book's ``W``, ``b``, ``gamma``, ``beta`` present on it -- whose gradient is
    the attribute ``dP`` after backward. A result passes when ``max_abs <= atol + rtol *
    max|grad|`` (defaults fit ``dtype``). The report is a mapping name -> GradResult; each failure
    carries a ``reason``; ``report.warnings`` name what is right but risky.
    """
    dtype = dtype if isinstance(dtype, str) else dtype_name(dtype)
    if dtype not in ("float64", "float32", "float16"):
        raise ValueError(f"gradcheck: dtype={dtype!r} is no floating dtype it computes in; use 'float64' (the "
                         "default, exact enough to judge a gradient), 'float32' or 'float16'")
    d_atol, d_rtol = _default_tol(dtype)
    atol = d_atol if atol is None else float(atol)
    rtol = d_rtol if rtol is None else float(rtol)
    for name, v, low in (("atol", atol, 0.0), ("rtol", rtol, 0.0), ("h", h, None)):
        if v is not None and (not math.isfinite(float(v)) or float(v) < 0 or (low is None and float(v) == 0)):
            raise ValueError(f"gradcheck: {name}={v!r}; {'a step' if low is None else 'a tolerance'} must be a finite "
                             f"number {'> 0' if low is None else '>= 0'} (leave it out for the default)")
    report = GradcheckReport(dtype=dtype)
    is_net = is_grad_net(target)
    if not is_net and not is_layer(target):
        raise TypeError(
            "gradcheck needs a net (params, loss, gradient) or a layer (forward, backward), "
            f"got {type(target).__name__}"
        )
    tol = (h, atol, rtol)
    with _scope_of(list(inputs) + list(getattr(target, "params", {}).values()) + list(_attrs(target).values())), \
            _held(target, is_net) as rewind:
        if is_net:
            _check_net(target, inputs, report, tol, dtype, locate, seed, rewind)
        else:
            report.results = _check_layer(target, inputs, report, tol, dtype, seed, rewind=rewind)
    if not report.results and not any(report.layers.values()) and not any(n.startswith("error") for n in report.notes):
        report.notes.append(f"error: nothing was checked: {type(target).__name__} has no floating parameters and "
                            "no floating input to differentiate (integer inputs are indices, not variables); "
                            "check a layer or net with something to differentiate")
    return report


@contextlib.contextmanager
def _held(target, is_net):
    """Yields ``rewind()``, to call before each forward: the randomness of the check's every
    forward is one (masks held, global generators rewound); layer state is put back at the end."""
    layers = [target] if not is_net else list(target.layers.values()) + [last_layer_of(target)] \
        if is_layered_net(target) else []
    with rewound_global_generators() as rewind, held(v for v in layers if v is not None):
        yield rewind


def _forward(lay, ins, train_flg=True):
    """``lay.forward(*ins)``, in training mode where the layer has modes."""
    return lay.forward(*ins, train_flg=train_flg) if takes_train_flg(lay) else lay.forward(*ins)


def _net_loss(net):
    """The loss a net's gradient differentiates: ``loss(x, t, train_flg=True)`` where ``loss``
    takes the flag (the book's ``MultiLayerNetExtend.loss`` tests by default)."""
    try:
        modal = "train_flg" in inspect.signature(net.loss).parameters
    except (TypeError, ValueError):
        modal = False
    return (lambda x, t: net.loss(x, t, train_flg=True)) if modal else net.loss


def _attrs(obj) -> dict:
    try:
        return vars(obj)
    except TypeError:  # __slots__
        return {}


def _scope_of(candidates):
    """The device scope of the first array among ``candidates`` (CuPy computes on the current GPU)."""
    return next((scope_of(a) for a in candidates if _is_array(a)), null_scope())


# -- arrays, in their own namespace ----------------------------------------------------------
def _is_float_array(v) -> bool:
    if not _is_array(v):
        return False
    try:
        return array_namespace(v).isdtype(v.dtype, "real floating")
    except TypeError:
        return False


def _is_array(v) -> bool:
    """An array of any backend, not a Python or NumPy scalar (those are plain numbers here)."""
    return is_array_api_obj(v) and not isinstance(v, (int, float, complex))


def _shape(a) -> tuple:
    return tuple(a.shape) if _is_array(a) else ()


def _copy(a):
    return array_namespace(a).asarray(a, copy=True)


def _snapshot(values) -> list:
    """Copies of the arrays among ``values`` (the rest as they are), to tell later if a call wrote into them."""
    return [_copy(v) if _is_array(v) else v for v in values]


def _written(names, values, snapshot):
    """The name of the first array among ``values`` that no longer equals its snapshot, else None."""
    return next((n for n, v, s in zip(names, values, snapshot) if _is_array(v) and not _same(v, s)), None)


def _same(a, b) -> bool:
    """Equal values (NaN equal to NaN) for two arrays of one namespace, or two numbers."""
    if not _is_array(a) or not _is_array(b):
        fa, fb = float(a), float(b)
        return fa == fb or (math.isnan(fa) and math.isnan(fb))
    if _shape(a) != _shape(b):
        return False
    xp = array_namespace(a, b)
    eq = a == b
    if xp.isdtype(a.dtype, "real floating"):
        eq = eq | (xp.isnan(a) & xp.isnan(b))
    return bool(xp.all(eq))


def _f64_like(a, ref):
    """``a`` (an array of any backend, or a number) as a float64 array beside ``ref``."""
    xp = array_namespace(ref)
    if not _is_array(a):
        return xp.asarray(float(a), dtype=xp.float64, device=ref.device)
    try:
        if array_namespace(a, ref) is xp:
            return xp.astype(a, xp.float64, copy=True) if a.device == ref.device else \
                xp.asarray(xp.astype(a, xp.float64, copy=True), device=ref.device)
    except TypeError:
        pass
    return device_of(ref).asarray(device_of(a).to_numpy(a), dtype="float64")  # another backend: via the host


def _unravel(flat: int, shape: tuple) -> tuple:
    idx = []
    for s in reversed(shape):
        flat, i = divmod(flat, s)
        idx.append(i)
    return tuple(reversed(idx))


def _fmt_index(name, idx) -> str:
    return f"{name}[{', '.join(map(str, idx))}]" if idx else name


def _cast(v, dtype, like=None):
    """A float copy of an array or number in ``dtype``; labels (integers) stay as they are.

    A Python (or NumPy) number becomes a 0-d array beside ``like`` (or on the cpu), so it can be
    perturbed in place."""
    if _is_float_array(v):
        xp = array_namespace(v)
        c = xp.astype(v, getattr(xp, dtype), copy=True)  # astype keeps an array subclass
        return c if hasattr(c, "__setitem__") else xp.asarray(c)  # a NumPy scalar: a 0-d array
    if isinstance(v, (float, int)) and not isinstance(v, bool):
        if like is not None:
            xp = array_namespace(like)
            return xp.asarray(float(v), dtype=getattr(xp, dtype), device=like.device)
        return get_device("cpu").asarray(float(v), dtype=dtype)
    return v


# -- one gradient against its central differences ---------------------------------------------
def _check_array(name, analytic, x, loss, tol, what) -> GradResult:
    """Backprop's gradient ``analytic`` of the array ``x`` against the central differences of
    ``loss`` (which reads ``x``). ``what(kind, **info)`` words the reason of a failure."""
    h, atol, rtol = tol
    if analytic is None:
        return _fail(name, _shape(x), what("none"))
    if _shape(analytic) != _shape(x):  # no need to differentiate
        return _fail(name, _shape(x), what("shape", got=_shape(analytic)))
    if _is_array(analytic) and _is_array(x) and not _same_backend(analytic, x):
        return _fail(name, _shape(x), (
            f"the gradient of {name} is a {_where(analytic)}, {name} a {_where(x)}: a backward must return arrays of "
            f"its inputs' library and device (the next layer back could not use it)"))
    res, failing = _compare(name, analytic, numerical_gradient(loss, x, h), atol, rtol, what)
    return _probe_kink(res, failing, loss, x, tol, what) if failing else res


def _same_backend(a, b) -> bool:
    try:
        array_namespace(a, b)
    except TypeError:
        return False
    return a.device == b.device


def _where(a) -> str:
    return f"{type(a).__module__.split('.')[0]}.{type(a).__name__} on {a.device}"


def _compare(name, analytic, numeric, atol, rtol, what):
    """``(result, failing)``: backprop ``analytic`` vs ``numeric`` in float64 on ``numeric``'s
    device, and for a failure that finite differences might not decide, the number of failing
    entries with the worst of them ``[(index, backprop, numeric), ...]`` (else None)."""
    shape = _shape(numeric)
    xp = array_namespace(numeric)
    n = xp.astype(numeric, xp.float64)
    a = _f64_like(analytic, n)
    if math.prod(shape) == 0:
        return GradResult(name, shape, 0.0, 0.0, True), None
    diff = xp.abs(a - n)
    max_abs = float(xp.max(diff))
    scale = max(float(xp.max(xp.abs(a))), float(xp.max(xp.abs(n))))
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    flat = xp.reshape(diff, (-1,))
    if math.isnan(max_abs):
        flat = xp.where(xp.isnan(flat), xp.asarray(math.inf, dtype=flat.dtype, device=flat.device), flat)
    worst = _unravel(int(xp.argmax(flat)), shape) if shape else ()
    tol = atol + rtol * scale
    if not math.isfinite(max_abs) and not bool(xp.all(xp.isfinite(n))):  # the loss overflowed, not the formula
        idx = _unravel(int(xp.argmax(xp.astype(~xp.isfinite(xp.reshape(n, (-1,))), xp.int8))), shape) if shape else ()
        return GradResult(name, shape, max_abs, max_rel, False, idx, (
            f"the loss is not finite around {_fmt_index(name, idx)} (central difference {float(n[idx])}): it "
            f"overflows there, so finite differences cannot check the gradient -- use smaller inputs"), True), None
    passed = bool(math.isfinite(max_abs) and max_abs <= tol)
    if passed:
        return GradResult(name, shape, max_abs, max_rel, True, worst), None
    numeric_zero = float(xp.max(xp.abs(n))) == 0.0
    reason = what("zero" if numeric_zero else "value", a=float(a[worst]), n=float(n[worst]), idx=worst)
    failing = None
    if not numeric_zero and math.isfinite(max_abs):  # candidates for the kink probe, worst first
        n_bad = int(xp.sum(xp.astype(flat > tol, xp.int64)))
        order = xp.argsort(flat, descending=True)[:min(n_bad, _KINK_PROBES)]
        a1, n1 = xp.reshape(a, (-1,)), xp.reshape(n, (-1,))
        failing = (n_bad, [(_unravel(int(i), shape), float(a1[int(i)]), float(n1[int(i)])) for i in order])
    return GradResult(name, shape, max_abs, max_rel, False, worst, reason), failing


def _probe_kink(res, failing, f, x, tol, what) -> GradResult:
    """Tell a kink from a wrong gradient: at the worst failing entries, compare one-sided slopes.

    All of them on kinks (left and right slopes differ): the result is inconclusive. One of
    them smooth: the gradient is wrong there, and the reason names that entry."""
    h, atol, rtol = tol
    h = step_for(x, h)
    n_bad, entries = failing
    kinks = []
    for idx, a, n in entries:
        old, f0 = float(x[idx]), float(f(x))
        (up, fp), (down, fm) = evaluate_around(f, x, idx, h)
        right, left = (fp - f0) / (up - old), (f0 - fm) / (old - down)
        big = max(abs(left), abs(right))
        if abs(right - left) <= max(100 * (atol + rtol * big), 1e-3 * big):  # smooth here: a wrong gradient
            return res if idx == res.worst_index else dataclasses.replace(res, reason=what("value", a=a, n=n, idx=idx))
        kinks.append((idx, old, left, right, a, n))
    idx, old, left, right, a, n = kinks[0]
    more = (f" (the {len(kinks)} worst of {n_bad} failing entries all sit on kinks)" if n_bad > len(kinks) else
            f" (all {n_bad} failing entries sit on kinks)" if n_bad > 1 else "")
    return dataclasses.replace(res, inconclusive=True, reason=(
        f"{_fmt_index(res.name, idx)} = {old:g} sits on a kink (slope {left:.6g} from the left, "
        f"{right:.6g} from the right: a ReLU input exactly at 0?){more}: finite differences cannot "
        f"check the gradient there (backprop {a:.6g}, central difference {n:.6g}) -- move the input off "
        f"the kink (other data or seed)"))


# -- nets -----------------------------------------------------------------------------------
def _unheld_params(net) -> list:
    """Keys of ``net.params`` whose array no layer holds (``params[k] = params[k] - lr*g`` rebinds).

    Empty when the net shows no layers to look into (then nothing can be said)."""
    if not is_layered_net(net):
        return []
    layers = list(net.layers.values()) + [last_layer_of(net)]
    held = set()
    for layer in layers:
        if layer is None:
            continue
        values = list(_attrs(layer).values())
        values += [getattr(layer, n, None) for n in layer_param_names(layer)]
        held.update(id(v) for v in values if _is_array(v))
    if not held:
        return []
    return [k for k, p in net.params.items() if _is_array(p) and id(p) not in held]


def _net_what(key, shape, unheld, p=None, decay=0.0):
    """Reasons for a failed net parameter ``key`` of shape ``shape`` (``p``, the net's
    ``weight_decay_lambda`` ``decay``: a gradient off by exactly ``decay * p`` is named as such)."""

    def what(kind, got=None, a=None, n=None, idx=None):
        if kind == "none":
            return f"net.gradient() returned None for params[{key!r}]: it must return every parameter's gradient"
        if kind == "shape":
            return (f"net.gradient()[{key!r}] has shape {got} but params[{key!r}] has shape {shape}: the "
                    f"layer holding {key} gives a gradient of the wrong shape (see the layer checks)")
        if kind in ("zero", "unheld"):
            why = ("no layer of the net holds this array" if kind == "unheld" else
                   "its numerical gradient is exactly 0 while backprop's is not" +
                   ("; no layer holds this array" if key in unheld else ""))
            return (f"params[{key!r}] does not influence the loss at all ({why}): the layers no longer share the "
                    f"arrays in params (params[k] = params[k] - lr * g rebinds the name) -- update in place "
                    f"(params[k] -= lr * g) or rebuild the layers after replacing params[{key!r}]")
        off = _decay_offset(a, n, p, idx, decay)
        if off == "missing":
            return (f"net.gradient()[{key!r}] lacks the weight decay's gradient (at {_fmt_index(key, idx)}: backprop "
                    f"{a:.6g}, numerical {n:.6g}, the difference is -weight_decay_lambda * {key}): the loss adds "
                    f"0.5 * lambda * sum({key}**2), so gradient() must add lambda * {key} to d{key}")
        if off == "extra":
            return (f"net.gradient()[{key!r}] adds weight decay the loss does not have (at {_fmt_index(key, idx)}: "
                    f"backprop {a:.6g}, numerical {n:.6g}, the difference is weight_decay_lambda * {key}): "
                    f"decay only what the loss penalises (the weights W, not the biases b or gamma, beta)")
        return (f"net.gradient()[{key!r}] disagrees with the numerical gradient (at {_fmt_index(key, idx)}: "
                f"backprop {a:.6g}, numerical {n:.6g}): see the layer checks for the culprit")

    return what


def _decay_offset(a, n, p, idx, decay):
    """'missing' or 'extra' when backprop ``a`` differs from numerical ``n`` by -/+ ``decay *
    p[idx]`` (weight decay left out of a gradient, or put into one the loss does not decay)."""
    if not decay or p is None or idx is None:
        return None
    w = decay * float(p[idx]) if _shape(p) else decay * float(p)
    if w == 0:
        return None
    d = a - n
    for kind, expect in (("missing", -w), ("extra", w)):
        if abs(d - expect) <= 1e-3 * abs(w) + 1e-9:
            return kind
    return None


def _has_layers(net) -> bool:
    return is_layered_net(net) and last_layer_of(net) is not None


def _check_net(net, inputs, report, tol, dtype, locate, seed, rewind):
    if len(inputs) != 2:
        raise TypeError("gradcheck(net, x, t): pass the input batch x and its labels t")
    unheld = _unheld_params(net)  # on the caller's net: ``to`` below would rebuild the layers
    for key in unheld:  # a verdict of its own, whatever the rest of the check can do
        shape = _shape(net.params[key])
        report.results[key] = _fail(key, shape, _net_what(key, shape, unheld)("unheld"))
    orig = net
    actual = {dtype_name(p.dtype) for p in net.params.values() if _is_float_array(p)}
    if actual and actual != {dtype}:
        if hasattr(net, "to") and hasattr(net, "config"):
            try:
                net = net.to(dtype=dtype)
            except ValueError as e:  # xpnet's nets refuse to copy layers that disagree with params
                report.notes.append(f"error: net.to(dtype={dtype!r}) raised: {e}")
                if locate and _has_layers(orig):
                    _locate(orig, *(_cast(a, dtype, None) for a in inputs), report, tol, dtype, seed, rewind)
                return
        else:  # a user's own net: its parameters are whatever it made them
            report.notes.append(f"the net's parameters are {', '.join(sorted(actual))}, not {dtype}, and it "
                                f"has no .to(dtype=...): create it in {dtype} for a precise check")
            report.dtype = ", ".join(sorted(actual))
    like = next((p for p in net.params.values() if _is_float_array(p)), None)
    x, t = (_cast(a, dtype, like) for a in inputs)
    net_loss = _net_loss(net)
    x, t, fine = _check_net_loss(net_loss, x, t, report, rewind)
    analytic = _net_gradient(net, x, t, report, rewind) if fine else None
    decay = getattr(net, "weight_decay_lambda", 0) or 0

    def loss(_):
        rewind()
        return net_loss(x, t)

    for key, p in net.params.items():
        if analytic is None or key in unheld:
            continue  # nothing to compare with, or failed above with its reason
        if key not in analytic:
            report.results[key] = _fail(key, _shape(p), (
                f"net.gradient() returned no entry for params[{key!r}]: it must return every parameter's gradient"))
            continue
        what = _net_what(key, _shape(p), unheld, p, decay)
        report.results[key] = _check_array(key, analytic[key], p, loss, tol, what)
    for key in analytic or ():
        if key not in net.params:
            report.notes.append(f"net.gradient() returned {key!r}, which is not in net.params (not checked)")

    if locate and _has_layers(orig):
        _locate(orig, x, t, report, tol, dtype, seed, rewind)


def _check_net_loss(net_loss, x, t, report, rewind):
    """``(x, t, fine)``: whether ``net.loss(x, t)`` can be differentiated numerically -- it runs,
    leaves its inputs alone and gives the same loss twice -- with ``x, t`` as they were."""
    snap = _snapshot((x, t))
    losses = None
    try:
        rewind()
        first = float(net_loss(x, t))
        rewind()
        losses = first, float(net_loss(x, t))
    except Exception as e:
        report.notes.append(f"error: net.loss raised {type(e).__name__}: {e}")
    name = _written(("x", "t"), (x, t), snap)
    if name is not None:
        report.results["forward"] = _fail("forward", _shape(x if name == "x" else t), (
            f"net.loss wrote into its input {name}: a layer's forward changes its input in place "
            f"(see the layer checks); compute on a copy"))
        x, t = (_copy(v) if _is_array(v) else v for v in snap)  # the layer checks start from the data
        return x, t, False
    if losses is not None and not _same(*losses):
        report.results["forward"] = _fail("forward", (), (
            f"net.loss is random (two calls on the same x, t gave {losses[0]:.6g} and {losses[1]:.6g}; a fresh "
            "dropout mask each call, from a generator gradcheck cannot hold?): the gradient cannot be checked -- use "
            "xpnet.layers.Dropout (gradcheck holds its mask), draw with np.random (rewound for the check), or "
            "check with dropout off"))
        return x, t, False
    return x, t, losses is not None


def _net_gradient(net, x, t, report, rewind):
    """``net.gradient(x, t)`` as float64 copies, or None (with a note) when it raises."""
    try:
        rewind()
        return {k: (None if g is None else _f64_like(g, g) if _is_array(g) else g)
                for k, g in net.gradient(x, t).items()}
    except Exception as e:  # a broken backward often raises: report it, then find the layer
        report.notes.append(f"error: net.gradient raised {type(e).__name__}: {e}")
        return None


def _locate(net, x, t, report, tol, dtype, seed, rewind):
    """Check each layer the net really holds alone, fed with the input it sees in the net."""
    a = x
    loss_layer = last_layer_of(net)
    items = list(net.layers.items()) + [(type(loss_layer).__name__, loss_layer)]
    dout_writers = []
    for i, (name, layer) in enumerate(items):
        last = i == len(items) - 1
        ins = (a, t) if last else (a,)
        warned = len(report.warnings)
        try:
            report.layers[name] = _check_layer(layer, ins, report, tol, dtype, seed, name, rewind)
            if not last:
                rewind()
                a = _forward(_cast_layer(layer, dtype), (a,))
        except Exception as e:
            report.notes.append(f"error: checking layer {name} raised {type(e).__name__}: {e}")
            return
        if len(report.warnings) > warned:
            dout_writers.append(name)
    failed_net = [r for r in report.results.values() if not r.passed]
    every_layer_ok = all(r.passed for res in report.layers.values() for r in res.values())
    wiring = failed_net and all(r.reason.startswith("net.gradient()[") and "disagrees" in r.reason
                                for r in failed_net)
    raised = any(n.startswith("error: net.gradient raised") for n in report.notes) and not any(
        "does not influence the loss" in r.reason for r in report.results.values())  # that is the reason
    if every_layer_ok and (wiring or raised):
        report.notes.append(
            "every layer is right on its own: the net's gradient() combines them wrongly (is backward walking "
            "the layers in reverse order?" + (f" Does a layer read a dout that {', '.join(dout_writers)}.backward "
                                              f"then modified?" if dout_writers else "") + ")")


# -- single layers --------------------------------------------------------------------------
def _cast_layer(layer, dtype):
    """A shallow copy of ``layer`` whose floating arrays are ``dtype`` copies (the caller's layer
    is never perturbed or overwritten)."""
    lay = copy.copy(layer)
    for k, v in list(_attrs(lay).items()):
        if _is_float_array(v):
            setattr(lay, k, _cast(v, dtype))
    if hasattr(lay, "compute_dx"):
        lay.compute_dx = True
    return lay


def _layer_what(label, name, shape, is_param):
    """Reasons for a failed parameter or input ``name`` (of shape ``shape``) of layer ``label``."""
    grad = f"d{name}" if is_param else f"gradient of input {name}"

    def what(kind, got=None, a=None, n=None, idx=None):
        if kind == "none":
            return (f"{label}: d{name} is None after backward: backward must set self.d{name}" if is_param else
                    f"{label}.backward returned None for input {name}: return its gradient")
        if kind == "shape":
            return (f"{label}.backward: {'' if is_param else 'the '}{grad} has shape {got} but {name} has shape "
                    f"{shape}: a gradient has the shape of what it differentiates (sum over the batch axis 0 for a "
                    "bias, dW = x.T @ dout)")
        if kind == "zero":
            return (f"{label}: {name} does not influence the output at all (its numerical gradient is exactly 0, "
                    f"backprop's is not): forward does not read this array -- use self.{name} in forward")
        return (f"{label}.backward gives a wrong {grad} (at {_fmt_index(name, idx)}: backprop {a:.6g}, "
                f"numerical {n:.6g}): fix the formula for {grad} in {label}.backward")

    return what


def _forward_names(lay, n_inputs) -> list:
    """The names of ``lay.forward``'s first ``n_inputs`` parameters (``input<i>`` where unknown)."""
    try:
        names = [p.name for p in inspect.signature(lay.forward).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    return names[:n_inputs] + [f"input{i}" for i in range(len(names), n_inputs)]


def _dout_warning(label) -> str:
    return (f"{label}.backward modified its input dout (the array passed in changed during backward): its gradients "
            f"are right, and harmless where each dout is used once, as in the book's nets, but a caller that "
            f"reuses dout (one output feeding two layers, a gradient kept for later) gets it changed -- compute dx "
            f"on a new array: dx = dout.copy() before dx[self.mask] = 0, or a product such as dx = dout * keep "
            f"(keep: the mask of entries passed on)")


def _no_rewind():
    pass


def _check_layer(layer, inputs, report, tol, dtype, seed, label=None, rewind=_no_rewind):
    label = label or type(layer).__name__
    lay = _cast_layer(layer, dtype)
    like = next((a for a in inputs if _is_float_array(a)), None)
    ins = [_cast(a, dtype, like) for a in inputs]
    names = _forward_names(lay, len(ins))
    pnames = layer_param_names(lay)
    keys = {p: (f"param {p}" if p in names else p) for p in pnames}

    # forward: must leave its inputs alone and give the same output twice
    snap = _snapshot(ins)
    rewind()
    out = _forward(lay, ins)
    if isinstance(out, (tuple, list)):
        report.notes.append(f"error: {label}.forward returned {len(out)} outputs")
        return {"forward": _fail("forward", (), (
            f"{label}.forward returned a {type(out).__name__} of {len(out)} outputs; gradcheck checks a layer of one "
            f"output (an array, or a loss): check a wrapper whose forward returns one of them, or their sum"))}
    given = next((a for a in ins if _is_float_array(a)), None)
    if _is_array(out) and given is not None and not _same_backend(out, given):
        return {"forward": _fail("forward", _shape(out), (
            f"{label}.forward returned a {_where(out)} for a {_where(given)} input: a layer must compute in its "
            f"inputs' library and device (array_namespace(x)), or it is not checked on that device at all"))}
    name = _written(names, ins, snap)
    if name is not None:
        return {name: _fail(name, _shape(ins[names.index(name)]), (
            f"{label}.forward writes into its input {name} (it changed during forward): the caller's data "
            f"is corrupted and no gradient can be checked -- compute on a copy, not in place"))}
    out1 = _copy(out) if _is_array(out) else out
    rewind()
    out2 = _forward(lay, ins)
    if not _same(out1, out2):
        return {"forward": _fail("forward", _shape(out1), (
            f"{label}.forward is random (two calls on the same inputs differ: a fresh dropout mask each call, from a "
            f"generator gradcheck cannot hold?): the gradient cannot be checked -- give the layer hold_mask() (as "
            f"xpnet.layers.Dropout), draw with np.random (rewound for the check), or check with dropout off"))}
    out = out2

    if not _is_array(out) or _shape(out) == ():  # a loss: backward(1.0), the loss is the output
        weight, dout = None, 1.0
    else:  # the loss sum(out * weight), whose gradient with respect to out is weight
        xo = array_namespace(out)
        weight = xo.asarray(host_rng(seed).standard_normal(_shape(out)), dtype=out.dtype, device=out.device)
        dout = xo.asarray(weight, copy=True)

    def loss(_=None):
        rewind()
        o = _forward(lay, ins)
        return float(o) if weight is None else float(xo.sum(o * weight))

    for p in pnames:  # a stale gradient of an earlier call must not pass for this one
        if _is_array(_attrs(lay).get("d" + p)):
            setattr(lay, "d" + p, None)
    try:
        grads = lay.backward(dout)
    except Exception as e:
        report.notes.append(f"error: {label}.backward raised {type(e).__name__}: {e}")
        return {"backward": _fail("backward", (), f"{label}.backward raised {type(e).__name__}: {e}")}
    if weight is not None and not _same(dout, weight):
        report.warnings.append(_dout_warning(label))
    grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
    grads = [g if g is None or not _is_array(g) else _copy(g) for g in grads]
    results, param_results = {}, {}
    analytic = {}  # the parameters' gradients, read before anything runs forward again
    for p in pnames:
        v = getattr(lay, p, None)
        if not _is_float_array(v):
            param_results[keys[p]] = _fail(keys[p], _shape(v) if _is_array(v) else (), (
                f"{label} declares parameter {p!r} in param_names but has no floating array {p}"))
        elif not hasattr(lay, "d" + p):
            param_results[keys[p]] = _fail(keys[p], _shape(v), (
                f"{label}: no gradient d{p} after backward: backward must set self.d{p}"))
        else:
            g = getattr(lay, "d" + p)
            analytic[p] = _copy(g) if _is_array(g) else g

    for i, (name, a) in enumerate(zip(names, ins)):
        if not _is_float_array(a):
            continue
        if weight is None and i > 0 and name in _LABEL_NAMES:
            continue  # labels of a loss layer are data, not something to differentiate
        if i >= len(grads):  # a gradient left out is a wrong gradient, not a pass
            results[name] = _fail(name, _shape(a), (
                f"{label}.backward returned {len(grads)} gradient(s), none for its input {name}: backward must "
                f"return one gradient per input of forward (None only where an input needs none)"))
            continue
        results[name] = _check_array(name, grads[i], a, loss, tol, _layer_what(label, name, _shape(a), False))
    for p, g in analytic.items():
        v = getattr(lay, p)
        param_results[keys[p]] = _check_array(keys[p], g, v, loss, tol, _layer_what(label, p, _shape(v), True))
    results.update((keys[p], param_results[keys[p]]) for p in pnames)
    if takes_train_flg(lay) and _is_float_array(ins[0]) and len(_shape(ins[0])) >= 2 and _shape(ins[0])[0] >= 2:
        results.update(_mode_checks(lay, ins[0], label, rewind))
    return results


def _close(a, b) -> bool:
    xp = array_namespace(a, b)
    return _shape(a) == _shape(b) and float(xp.max(xp.abs(a - b))) <= 1e-9 * (1.0 + float(xp.max(xp.abs(a))))


def _mode_checks(lay, x, label, rewind) -> dict:
    """What a gradient cannot show of a layer with modes: in testing mode each sample's output is
    its own (no batch statistics); a batch normalisation normalises each feature over the batch."""
    xp, n = array_namespace(x), _shape(x)[0]
    found = {}
    rewind()
    full = lay.forward(x, train_flg=False)
    rewind()
    alone = lay.forward(x[:1, ...], train_flg=False)
    if _is_array(full) and not _close(full[:1, ...], alone):
        found["testing mode"] = _fail("testing mode", _shape(full), (
            f"{label}.forward(x, train_flg=False) gives sample 0 another output alone than in its batch: testing mode "
            f"must not use the batch's statistics -- normalise with the running ones (running_mean, running_var)"))
    if hasattr(lay, "running_mean"):  # a batch normalisation: shift feature 0 alone; no other may move
        flat = xp.reshape(x, (n, -1))
        if flat.shape[1] >= 2:
            shift = xp.zeros_like(flat)
            shift[:, 0] = 1.0 + float(xp.max(xp.abs(flat)))
            rewind()
            o1 = xp.reshape(lay.forward(x, train_flg=True), (n, -1))
            rewind()
            o2 = xp.reshape(lay.forward(xp.reshape(flat + shift, _shape(x)), train_flg=True), (n, -1))
            if not _close(o1[:, 1:], o2[:, 1:]):
                found["normalised axis"] = _fail("normalised axis", _shape(x), (
                    f"{label} in training mode: shifting feature 0 of every sample moved the other features' outputs, "
                    f"so it does not normalise each feature over the batch -- take the mean and variance over axis 0 "
                    f"(the samples) of x as (N, D)"))
    return found

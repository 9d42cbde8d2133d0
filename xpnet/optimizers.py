"""Optimizers with the book's interface, ``update(params, grads)``, updating in place.

In-place operators (``p -= ...``) are part of the Array API standard, so every backend
updates the very arrays the layers hold: no re-binding, no copies of the parameters.
State (velocities, moments) is created on the first update, on the parameters' device. A dict
of Python numbers (the book's ``optimizer_compare_naive.py`` minimises a function of two floats)
is updated too: the same rules, each entry rebound to its new value.
"""

from __future__ import annotations

import math
import numbers

from array_api_compat import array_namespace

from .validation import positive_number, unit_interval

__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "get_optimizer",
           "optimizer_class"]


def _numbers(params) -> bool:
    """Whether ``params`` holds Python numbers (floats, ints) rather than arrays."""
    first = _first(params)
    if isinstance(first, numbers.Real) and not isinstance(first, bool):
        bad = [k for k, v in params.items() if not isinstance(v, numbers.Real) or isinstance(v, bool)]
        if bad:
            raise TypeError(f"params mixes numbers and other values ({bad[0]!r} is {type(params[bad[0]]).__name__}): "
                            "give all numbers or all arrays")
        return True
    return False


def _zeros_like_all(params):
    """Optimizer state on the parameters' device (CuPy allocates on the *current* GPU); for a
    dict of numbers, zeros and ``math`` (its sqrt) as the namespace."""
    from .backend import device_of  # looked up per call: tests stand a fake GPU in for it

    first = _first(params)
    if _numbers(params):
        return math, dict.fromkeys(params, 0.0)
    xp = array_namespace(*params.values())
    with device_of(first).scope():
        return xp, {k: xp.zeros_like(p) for k, p in params.items()}


def _first(params):
    if not params:
        raise ValueError("update(params, grads) got no parameters: pass the net's params dict")
    return next(iter(params.values()))


def _scope(params):
    """The device scope of the parameters (CuPy runs kernels on the *current* GPU)."""
    from .backend import device_of, null_scope

    return null_scope() if _numbers(params) else device_of(_first(params)).scope()


def _check_grads(params, grads):
    if grads.keys() != params.keys():
        missing = sorted(set(params) - set(grads))
        extra = sorted(set(grads) - set(params))
        raise ValueError(f"grads must have one entry per parameter: missing {missing}, unexpected {extra}")


def _subtract(params, grads):
    for key, p in params.items():
        p -= grads[key]


class Optimizer:
    """What every optimizer shares: its settings and its state, for checkpoints.

    ``state_dict()`` gives ``{"meta": settings and counters, "arrays": {"v/W1": array, ...}}``
    (arrays on the parameters' device); ``from_state(state, arrays)`` rebuilds the optimizer
    exactly where it was, so a resumed run continues Momentum's velocity or Adam's moments."""

    settings: tuple = ("lr",)
    buffers: tuple = ()
    counters: tuple = ()

    def state_dict(self) -> dict:
        cls = type(self)
        meta = {"class": cls.__name__, "module": cls.__module__}
        meta.update({k: getattr(self, k) for k in self.settings + self.counters})
        arrays = {}
        for buf in self.buffers:
            for key, a in (getattr(self, buf) or {}).items():
                arrays[f"{buf}/{key}"] = a
        return {"meta": meta, "arrays": arrays}

    @staticmethod
    def from_state(meta: dict, arrays: dict, params: dict | None = None, *, updated: bool = False,
                   into: Optimizer | None = None) -> Optimizer:
        """The optimizer a ``state_dict`` describes; ``arrays`` already on the parameters' device.

        ``into``: an optimizer of the saved class to continue (a user's own subclass, which
        xpnet cannot build from its name); its settings must be the saved ones. With ``params``
        the state must fit them (keys, shapes, dtypes); ``updated`` (steps were taken) makes a
        missing velocity or moment damage, not a fresh start."""
        name, module = meta.get("class"), meta.get("module", __name__)
        if into is not None:
            if (type(into).__name__, type(into).__module__) != (name, module):
                raise TypeError(f"the run was trained with the optimizer {module}.{name}, not "
                                 f"{type(into).__module__}.{type(into).__name__}: pass one of its class")
            opt = into
            changed = [f"{k} {getattr(into, k, None)!r} (saved: {meta.get(k)!r})" for k in type(into).settings
                       if getattr(into, k, None) != meta.get(k)]
            if changed:
                raise TypeError(f"the optimizer given to continue the run has other settings: {', '.join(changed)}; "
                                 "a resumed run keeps its own: build it with the saved ones")
        else:
            cls = _BY_NAME.get(str(name).lower())
            if cls is None or cls.__name__ != name or module != __name__:
                known = ", ".join(c.__name__ for c in _BY_NAME.values())
                raise TypeError(f"the run was trained with the optimizer {module}.{name}, which is not one of "
                                 f"xpnet's ({known}): pass optimizer={name}(...) with its settings to continue it")
            missing = [k for k in cls.settings + cls.counters if k not in meta]
            if missing:
                raise ValueError(f"the saved {name} lacks {', '.join(missing)}")
            opt = cls(**{k: meta[k] for k in cls.settings})
        opt._load_state(meta, arrays, params, updated)
        return opt

    def _load_state(self, meta, arrays, params, updated) -> None:
        cls, name = type(self), type(self).__name__
        for k in cls.counters:
            v = meta.get(k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (updated and v == 0):
                raise ValueError(f"the saved {name}'s {k} is {str(v)[:40]!r}"
                                 + (" after steps were taken" if updated and v == 0 else ""))
            setattr(self, k, v)
        names = {f"{buf}/{key}" for buf in cls.buffers for key in (params or ())}
        unknown = sorted(k for k in arrays if k.split("/", 1)[0] not in cls.buffers or (params and k not in names))
        if unknown:
            raise ValueError(f"the saved {name} holds {unknown[0]!r}, which is none of its state for these parameters")
        for buf in cls.buffers:
            found = {k.split("/", 1)[1]: a for k, a in arrays.items() if k.startswith(buf + "/")}
            if params is not None and (found or updated):
                lost = [k for k in params if k not in found]
                if lost:
                    raise ValueError(f"the saved {name} has no {buf!r} of {lost[0]!r}"
                                     + (" although steps were taken" if updated else ""))
                odd = next((k for k in params if tuple(found[k].shape) != tuple(params[k].shape)
                            or found[k].dtype != params[k].dtype), None)
                if odd is not None:
                    raise ValueError(f"the saved {name}'s {buf}/{odd} is {found[odd].dtype} {tuple(found[odd].shape)}, "
                                     f"its parameter {params[odd].dtype} {tuple(params[odd].shape)}")
            if found:
                setattr(self, buf, found)
                self._xp = array_namespace(*found.values())


class SGD(Optimizer):
    """p <- p - lr * g."""

    def __init__(self, lr=0.01):
        self.lr = positive_number("lr", lr)

    def update(self, params, grads):
        _check_grads(params, grads)
        lr = self.lr
        with _scope(params):
            for key, p in params.items():
                p -= lr * grads[key]
                params[key] = p  # the same array; a number's new value

    def scaled_update(self):
        """``(scale, apply)`` for a trainer that folds the learning rate into the loss gradient:
        with gradients of ``scale * loss``, ``apply(params, grads)`` finishes the step as one
        in-place subtraction per parameter (no ``lr * g`` temporaries). ``None`` when ``update``
        is not SGD's own (a subclass with its own rule), so the trainer calls ``update``."""
        if type(self).update is not SGD.update:
            return None
        return self.lr, _subtract


class Momentum(Optimizer):
    """v <- momentum * v - lr * g;  p <- p + v."""

    settings, buffers = ("lr", "momentum"), ("v",)

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum = positive_number("lr", lr), unit_interval("momentum", momentum)
        self.v = None

    def update(self, params, grads):
        _check_grads(params, grads)
        if self.v is None:
            self.v = _zeros_like_all(params)[1]
        lr, mom = self.lr, self.momentum
        with _scope(params):
            for key, p in params.items():
                v = self.v[key]
                v *= mom
                v -= lr * grads[key]
                p += v
                params[key], self.v[key] = p, v  # the same arrays; numbers' new values


class Nesterov(Momentum):
    """Nesterov's accelerated gradient in the book's form (Momentum's settings and velocity):
    p <- p + momentum^2 v - (1 + momentum) lr g;  v <- momentum v - lr g."""

    def update(self, params, grads):
        _check_grads(params, grads)
        if self.v is None:
            self.v = _zeros_like_all(params)[1]
        lr, mom = self.lr, self.momentum
        with _scope(params):
            for key, p in params.items():
                g, v = grads[key], self.v[key]
                p += mom * mom * v
                p -= (1 + mom) * lr * g
                v *= mom
                v -= lr * g
                params[key], self.v[key] = p, v


class AdaGrad(Optimizer):
    """h <- h + g*g;  p <- p - lr * g / (sqrt(h) + 1e-7)."""

    buffers = ("h",)

    def __init__(self, lr=0.01):
        self.lr = positive_number("lr", lr)
        self.h = None

    def update(self, params, grads):
        _check_grads(params, grads)
        if self.h is None:
            self._xp, self.h = _zeros_like_all(params)
        xp = self._xp
        with _scope(params):
            for key, p in params.items():
                g, h = grads[key], self.h[key]
                h += g * g
                p -= self.lr * g / (xp.sqrt(h) + 1e-7)
                params[key], self.h[key] = p, h


class RMSprop(Optimizer):
    """RMSprop in the book's form: h <- decay h + (1 - decay) g*g;  p <- p - lr g / (sqrt(h) + 1e-7)."""

    settings, buffers = ("lr", "decay_rate"), ("h",)

    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr, self.decay_rate = positive_number("lr", lr), unit_interval("decay_rate", decay_rate)
        self.h = None

    def update(self, params, grads):
        _check_grads(params, grads)
        if self.h is None:
            self._xp, self.h = _zeros_like_all(params)
        xp, rho = self._xp, self.decay_rate
        with _scope(params):
            for key, p in params.items():
                g, h = grads[key], self.h[key]
                h *= rho
                h += (1 - rho) * g * g
                p -= self.lr * g / (xp.sqrt(h) + 1e-7)
                params[key], self.h[key] = p, h


class Adam(Optimizer):
    """Adam (Kingma & Ba), in the book's bias-corrected-step form."""

    settings, buffers, counters = ("lr", "beta1", "beta2"), ("m", "v"), ("iter",)

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr, self.beta1 = positive_number("lr", lr), unit_interval("beta1", beta1)
        self.beta2 = unit_interval("beta2", beta2)
        self.iter = 0
        self.m = self.v = None

    def update(self, params, grads):
        _check_grads(params, grads)
        if self.m is None:
            self._xp, self.m = _zeros_like_all(params)
            self.v = _zeros_like_all(params)[1]
        self.iter += 1
        b1, b2 = self.beta1, self.beta2
        lr_t = self.lr * math.sqrt(1.0 - b2 ** self.iter) / (1.0 - b1 ** self.iter)
        xp = self._xp
        with _scope(params):
            for key, p in params.items():
                g, m, v = grads[key], self.m[key], self.v[key]
                m += (1 - b1) * (g - m)
                v += (1 - b2) * (g * g - v)
                p -= lr_t * m / (xp.sqrt(v) + 1e-7)
                params[key], self.m[key], self.v[key] = p, m, v


_BY_NAME = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad, "rmsprop": RMSprop,
            "adam": Adam}


def optimizer_class(name, argument: str = "optimizer") -> type:
    """The optimizer class a name stands for, in any case (the book's ``'SGD'``, ``'Adam'``);
    ``argument`` is what the caller called it, for the message when there is none."""
    cls = _BY_NAME.get(name.lower()) if isinstance(name, str) else None
    if cls is None:
        known = ", ".join(c.__name__ for c in _BY_NAME.values())
        raise ValueError(f"{argument}={name!r}: unknown optimizer; choose one of {known} (any case)")
    return cls


def get_optimizer(name_or_optimizer, lr=None):
    """An optimizer from its name (``sgd``, ``momentum``, ``nesterov``, ``adagrad``, ``rmsprop``,
    ``adam``) or as given."""
    if not isinstance(name_or_optimizer, str):
        if not callable(getattr(name_or_optimizer, "update", None)):
            raise TypeError("optimizer must be a name or an object with update(params, grads)")
        return name_or_optimizer
    cls = optimizer_class(name_or_optimizer)
    return cls() if lr is None else cls(lr=lr)

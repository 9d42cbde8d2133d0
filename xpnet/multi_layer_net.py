"""The book's ``MultiLayerNet`` (``common/multi_layer_net.py``): fully connected layers of any
widths, in its call form and xpnet's."""

from __future__ import annotations

import numbers
from collections import OrderedDict

from .backend import device as get_device, dtype_name, host_rng
from .layers import Affine, BatchNormalization, Dropout, SoftmaxWithLoss
from .nets import ACTIVATIONS, Net, given_params, weight_init_std_for
from .validation import check_net_size, non_negative_int, positive_int

__all__ = ["MultiLayerNet"]


class MultiLayerNet(Net):
    """Fully connected net: (Affine -> activation) * (L-1) -> Affine -> SoftmaxWithLoss.

    Two ways to call it. The book's: ``MultiLayerNet(input_size=784, hidden_size_list=[100, 100],
    output_size=10, activation='relu', weight_init_std='relu', weight_decay_lambda=0)``, with its
    defaults (He's initial weights for 'relu'/'he', Xavier's for 'sigmoid'/'xavier') and its
    layer names (Affine1, Activation_function1, ..., AffineL). xpnet's: ``MultiLayerNet([784,
    100, 100, 10], activation='relu', weight_init=0.01)``, the widths input first, layers named
    Affine1, Relu1, .... ``activation`` is relu, sigmoid or tanh; ``weight_decay_lambda`` adds
    ``0.5 * lambda * sum(W**2)`` to the loss (``lambda * W`` to W's gradients). The book's
    attributes are all here: ``params`` (W1, b1, ...), ordered ``layers``, ``lastLayer``
    (``last_layer``). ``params=`` starts from given host arrays (a checkpoint's) instead of
    drawing them.
    """

    def __init__(self, sizes=None, activation="relu", weight_init=None, *book_args, input_size=None,
                 hidden_size_list=None, output_size=None, weight_init_std=None, weight_decay_lambda=0,
                 device=None, dtype="float64", seed=None, params=None, layer_names="xpnet", **extend):
        book = _book_arguments(type(self).__name__, sizes, activation, weight_init, book_args, dict(
            input_size=input_size, hidden_size_list=hidden_size_list, output_size=output_size,
            weight_init_std=weight_init_std, weight_decay_lambda=weight_decay_lambda, **extend), self.BOOK_ARGUMENTS)
        if book is not None:
            sizes, activation, weight_init = book.pop("sizes"), book.pop("activation"), book.pop("weight_init")
            weight_decay_lambda = book.pop("weight_decay_lambda")
            extend = book
            layer_names = "book"
        elif weight_init is None:
            weight_init = 0.01
        unknown = sorted(set(extend) - set(self._option_names))
        if unknown:
            raise TypeError(f"{type(self).__name__} got an unexpected keyword argument {unknown[0]!r}")
        self._options(**extend)
        dev, dt = self._describe(sizes, activation, weight_init, seed, layer_names, device, dtype, params is None)
        rng = host_rng(seed)  # drawn on the host: one seed gives the same net on every backend
        if params is None:
            params = {k: dev.asarray(v, dtype=dt) for k, v in self._draw(rng).items()}
        else:
            params = given_params(params, self._param_shapes(), type(self).__name__, dev, dt)
        with dev.scope():  # what a layer allocates (running statistics) goes to the net's GPU
            layers = OrderedDict((name, self._make_layer(kind, i, params, rng)) for name, kind, i in self._plan())
        super().__init__(layers, SoftmaxWithLoss(), params=params, device=dev, weight_decay_lambda=weight_decay_lambda)

    BOOK_ARGUMENTS = ("input_size", "hidden_size_list", "output_size", "activation", "weight_init_std",
                      "weight_decay_lambda")  # the book's call, in its positional order

    _option_names = ()

    def _options(self):
        """The options a subclass adds (MultiLayerNetExtend: dropout, batch norm)."""

    def _draw(self, rng) -> dict:
        """The initial parameters as host data: W ~ N(0, std^2), b = 0, in the book's order."""
        params = {}
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:]), start=1):
            params[f"W{i}"] = self._init_std(n_in) * rng.standard_normal((n_in, n_out))
            params[f"b{i}"] = [0.0] * n_out  # zeros
        return params

    def _param_shapes(self) -> dict:
        """``{"W1": (in, out), "b1": (out,), ...}``: the parameters the sizes make, in ``_draw``'s order."""
        shapes = {}
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:]), start=1):
            shapes[f"W{i}"], shapes[f"b{i}"] = (n_in, n_out), (n_out,)
        return shapes

    def _plan(self) -> list:
        """[(layer name, kind, i)] in order: what this class builds (and ``_as_built`` checks)."""
        n = len(self.sizes) - 1
        plan = []
        for i in range(1, n + 1):
            plan.append((f"Affine{i}", "affine", i))
            if i < n:
                plan.append((self._activation_key(i), "activation", i))
        return plan

    def _make_layer(self, kind: str, i: int, params: dict, rng):
        if kind == "affine":  # the first layer's input gradient is read by nobody: skip it
            return Affine(params[f"W{i}"], params[f"b{i}"], compute_dx=(i > 1))
        return ACTIVATIONS[self.activation]()

    _LAYER_TYPES = {"affine": Affine, "activation": None, "batchnorm": BatchNormalization, "dropout": Dropout}

    def _describe(self, sizes, activation, weight_init, seed, layer_names, device, dtype, drawing=True):
        """Checks the architecture's description and keeps it (``sizes``, ``activation``,
        ``weight_init``, ``seed``, ``layer_names``: what ``config`` saves); returns the device and
        its dtype. A net too large to draw is refused here, before anything is allocated."""
        if layer_names not in _ACTIVATION_KEYS:
            raise ValueError(f"layer_names must be 'xpnet' (Relu1, ...) or 'book' (Activation_function1, ...), "
                             f"got {layer_names!r}")
        if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
            raise ValueError(f"sizes must list at least two positive layer widths, got {sizes!r}")
        sizes = [positive_int(f"sizes[{i}]", s) for i, s in enumerate(sizes)]
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        dev = get_device(device)
        dt = dev.dtype(dtype)
        if not dev.xp.isdtype(dt, "real floating"):
            raise TypeError(f"dtype must be a floating type such as 'float32', got {dtype!r}")
        weight_init_std_for(weight_init, sizes[0])  # refuses a bad one by name
        if not isinstance(weight_init, str):
            weight_init = float(weight_init)  # np.float32(0.01) too; the config stays JSON
        seed = non_negative_int("seed", seed, allow_none=True)  # named here even when params are given
        self.sizes, self.activation, self.weight_init, self.seed = sizes, activation, weight_init, seed
        self.layer_names = layer_names
        if drawing:
            check_net_size(sizes, dev.xp.finfo(dt).bits // 8, dev, host=get_device("cpu"))
        return dev, dt

    def _init_std(self, fan_in: int) -> float:
        """The initial weights' standard deviation for a layer of ``fan_in`` inputs: the number
        given, or He's sqrt(2 / fan_in) ('he', 'relu'), or Xavier's sqrt(1 / fan_in) ('xavier',
        'sigmoid')."""
        return weight_init_std_for(self.weight_init, fan_in)

    def _activation_key(self, i: int) -> str:
        """The name of the i-th activation layer: Relu1 (xpnet's), Activation_function1 (the book's)."""
        return f"{_ACTIVATION_KEYS[self.layer_names] or ACTIVATIONS[self.activation].__name__}{i}"

    def _as_built(self) -> bool:
        """Whether the layers are still the ones this class builds (nobody replaced one)."""
        types = dict(self._LAYER_TYPES, activation=ACTIVATIONS[self.activation])
        expected = [(name, types[kind]) for name, kind, _ in self._plan()]
        if [(k, type(v)) for k, v in self.layers.items()] != expected or type(self.lastLayer) is not SoftmaxWithLoss:
            return False
        for name, kind, i in self._plan():
            layer = self.layers[name]
            names = {"affine": ("W", "b"), "batchnorm": ("gamma", "beta")}.get(kind, ())
            if any(getattr(layer, a) is not self.params[f"{a}{i}"] for a in names):
                return False
        return True

    @property
    def config(self) -> dict:
        """Everything needed to rebuild the architecture (checkpoints save it); a net whose
        layers were replaced is described layer by layer instead."""
        if not self._as_built():
            return super().config
        cfg = {"class": type(self).__name__, "sizes": list(self.sizes), "activation": self.activation,
               "weight_init": self.weight_init, "dtype": dtype_name(self.dtype)}
        if self.layer_names != "xpnet":
            cfg["layer_names"] = self.layer_names
        if self.weight_decay_lambda:
            cfg["weight_decay_lambda"] = self.weight_decay_lambda
        return cfg

    def __repr__(self) -> str:
        if not self._as_built():
            return super().__repr__()
        arch = "-".join(str(s) for s in self.sizes)
        extra = f", weight_decay_lambda={self.weight_decay_lambda:g}" if self.weight_decay_lambda else ""
        return (f"{type(self).__name__}({arch}, {self.activation}{self._repr_options()}{extra}, "
                f"device={self.device.name!r}, dtype={dtype_name(self.dtype)})")

    def _repr_options(self) -> str:
        return ""


_ACTIVATION_KEYS = {"xpnet": None, "book": "Activation_function"}  # None: the activation's class name


def _book_arguments(cls: str, sizes, activation, weight_init, rest, keywords: dict, names: tuple):
    """The book-form call's settings -- {sizes, activation, weight_init, weight_decay_lambda, and
    the rest of ``names``} -- from keywords input_size, hidden_size_list, output_size, ..., or
    ``MultiLayerNet(784, [100, 100], 10, ...)`` by position; None for xpnet's form."""
    positional = isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool)
    book_only = ("input_size", "hidden_size_list", "output_size", "weight_init_std")
    if not positional and all(keywords[k] is None for k in book_only) and not rest:
        return None
    if positional:  # cls(input_size, hidden_size_list, output_size, activation, weight_init_std, ...)
        given = [sizes, activation, weight_init, *rest]
        if not rest:  # the rest by keyword: leave out the defaults standing in for them
            given = given[:3] if weight_init is not None else given[:2] if activation != "relu" else given[:1]
        if len(given) > len(names):
            raise TypeError(f"{cls} takes at most {len(names)} positional arguments in the book's form, "
                            f"got {len(given)}")
        for name, v in zip(names, given):
            default = 0 if name == "weight_decay_lambda" else None
            if name in keywords and keywords[name] is not None and keywords[name] != default and \
                    name not in ("activation",):
                raise TypeError(f"{cls} got {name} both by position and by keyword")
            keywords[name] = v
        keywords.setdefault("activation", "relu")
    elif sizes is not None or rest or weight_init is not None:
        raise TypeError(f"{cls}: give either the book's input_size=, hidden_size_list=, output_size= or "
                        "xpnet's sizes list (and weight_init), not both")
    else:
        keywords["activation"] = activation
    missing = [n for n in ("input_size", "hidden_size_list", "output_size") if keywords[n] is None]
    if missing:
        raise TypeError(f"{cls} in the book's form needs {', '.join(missing)}: e.g. {cls}("
                        "input_size=784, hidden_size_list=[100, 100], output_size=10)")
    hidden = keywords.pop("hidden_size_list")
    if not isinstance(hidden, (list, tuple)):
        raise TypeError(f"hidden_size_list must be a list of widths such as [100, 100], got {type(hidden).__name__}")
    std = keywords.pop("weight_init_std")
    return dict(keywords, sizes=[keywords.pop("input_size"), *hidden, keywords.pop("output_size")],
                weight_init="relu" if std is None else std)

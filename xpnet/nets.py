"""Networks built from the layers: the book's TwoLayerNet and a deeper MultiLayerNet.

Initial weights are drawn on the host with NumPy's PCG64 and then placed on the device, so
one seed gives the same network on every backend and results can be compared across them.
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict

from .device import device as _get_device, device_of, dtype_name, host_rng
from .validation import check_features, check_float_array, check_labels
from .functions import one_hot
from .layers import Affine, Relu, Sigmoid, SoftmaxWithLoss

__all__ = ["MultiLayerNet", "TwoLayerNet"]

_ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid}


def _init_scale(weight_init, fan_in: int) -> float:
    if isinstance(weight_init, str):
        w = weight_init.lower()
        if w in ("he", "relu"):
            return math.sqrt(2.0 / fan_in)
        if w in ("xavier", "sigmoid"):
            return math.sqrt(1.0 / fan_in)
        raise ValueError(f"weight_init must be a positive number, 'he' or 'xavier', got {weight_init!r}")
    if isinstance(weight_init, bool) or not isinstance(weight_init, (int, float)) or not weight_init > 0:
        raise ValueError(f"weight_init must be a positive number, 'he' or 'xavier', got {weight_init!r}")
    return float(weight_init)


class MultiLayerNet:
    """Fully connected net: (Affine -> activation) * (L-1) -> Affine -> SoftmaxWithLoss.

    ``sizes`` lists the layer widths, input first: ``[784, 100, 100, 10]``.  The book's
    attributes are all here: ``params`` (W1, b1, ...), ordered ``layers`` (Affine1, Relu1,
    ..., AffineL), ``lastLayer``; and its methods ``predict``, ``loss``, ``accuracy``,
    ``numerical_gradient``, ``gradient``.
    """

    def __init__(self, sizes, activation="relu", weight_init=0.01, *, device=None,
                 dtype="float32", seed=None, _host_params=None):
        sizes = [int(s) for s in sizes] if isinstance(sizes, (list, tuple)) else sizes
        if not isinstance(sizes, list) or len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"sizes must list at least two positive layer widths, got {sizes!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be 'relu' or 'sigmoid', got {activation!r}")
        dev = _get_device(device)
        xp = dev.xp
        dt = dev.dtype(dtype)
        if not xp.isdtype(dt, "real floating"):
            raise TypeError(f"dtype must be a floating type such as 'float32', got {dtype!r}")
        self.device, self.xp, self.dtype = dev, xp, dt
        self.sizes, self.activation, self.weight_init, self.seed = sizes, activation, weight_init, seed

        if _host_params is None:
            rng = host_rng(seed)
            _host_params = {}
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
                _host_params[f"W{i}"] = _init_scale(weight_init, n_in) * rng.standard_normal((n_in, n_out))
                _host_params[f"b{i}"] = [0.0] * n_out
        self.params = {k: dev.asarray(v, dtype=dt) for k, v in _host_params.items()}
        self._build_layers()

    # -- structure --------------------------------------------------------------------
    def _build_layers(self):
        xp, n = self.xp, len(self.sizes) - 1
        self.layers = OrderedDict()
        for i in range(1, n + 1):
            self.layers[f"Affine{i}"] = Affine(self.params[f"W{i}"], self.params[f"b{i}"],
                                               compute_dx=(i > 1))
            if i < n:
                act = _ACTIVATIONS[self.activation]
                self.layers[f"{act.__name__}{i}"] = act(xp)
        self.lastLayer = SoftmaxWithLoss(xp)
        self._layer_list = list(self.layers.values())
        self._reversed = self._layer_list[::-1]
        self._grad_slots = [(f"{p}{i}", self.layers[f"Affine{i}"], f"d{p}")
                            for i in range(1, n + 1) for p in ("W", "b")]

    @property
    def config(self) -> dict:
        """Everything needed to rebuild the architecture (saved in checkpoints)."""
        return {"class": type(self).__name__, "sizes": list(self.sizes), "activation": self.activation,
                "weight_init": self.weight_init, "dtype": dtype_name(self.dtype)}

    @property
    def num_classes(self) -> int:
        return self.sizes[-1]

    def to(self, device=None, dtype=None) -> "MultiLayerNet":
        """A copy of this net on another device and/or dtype (parameters go through the host)."""
        host = {k: self.device.to_numpy(v) for k, v in self.params.items()}
        return MultiLayerNet(self.sizes, self.activation, self.weight_init,
                             device=device if device is not None else self.device,
                             dtype=dtype if dtype is not None else self.config["dtype"],
                             seed=self.seed, _host_params=host)

    # -- validation -------------------------------------------------------------------
    def _check(self, x, t=None, check_range=True):
        """Validate user inputs; returns (x as (N, D), t, label form or None).

        One-hot labels of another float dtype are converted to the net's (labels are data,
        not a precision choice); ``x`` of another dtype is refused.
        """
        dev, xp = self.device, self.xp
        if not dev.owns(x):
            self._wrong_place(x, "x")
        check_float_array(x, "x", xp, self.dtype)
        check_features(x, self.sizes[0])
        if x.ndim != 2:
            x = xp.reshape(x, (-1, self.sizes[0]))
        if t is None:
            return x, None, None
        if not dev.owns(t):
            self._wrong_place(t, "t")
        form = check_labels(t, x.shape[0], self.sizes[-1], xp, check_range=check_range)
        if form == "onehot" and t.dtype != self.dtype:
            t = xp.astype(t, self.dtype)
        return x, t, form

    def _wrong_place(self, a, name):
        if not hasattr(a, "shape"):
            raise TypeError(f"{name} must be an array on {self.device.name}, got {type(a).__name__}; "
                            f"use net.device.asarray(data, dtype=...)")
        try:
            where = device_of(a).name
        except TypeError:
            where = type(a).__module__ + "." + type(a).__name__
        raise ValueError(f"{name} is on device {where!r} but the net is on {self.device.name!r}; "
                         f"move it with net.device.asarray({name}) (arrays of two devices can't be mixed)")

    # -- the book's API ---------------------------------------------------------------
    def predict(self, x):
        with self.device.scope():
            return self._predict(x)

    def _predict(self, x):
        for layer in self._layer_list:
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        with self.device.scope():
            x, t, _ = self._check(x, t)
            return self.lastLayer.forward(self._predict(x), t, check=False)

    def accuracy(self, x, t, batch_size: int | None = 10000) -> float:
        """Fraction of correct predictions, evaluated in batches so memory stays bounded."""
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        with self.device.scope():
            x, t, form = self._check(x, t)
            if x.shape[0] == 0:
                raise ValueError("x holds no samples: accuracy of an empty set is undefined")
            return self._count_correct(x, t, form, batch_size) / x.shape[0]

    def _count_correct(self, x, t, form, batch_size=None):
        xp, n = self.xp, x.shape[0]
        if form == "onehot":
            t = xp.argmax(t, axis=1)
        step = max(n, 1) if not batch_size else int(batch_size)
        correct = None
        for i in range(0, n, step):
            j = min(i + step, n)  # out-of-range slice ends are not in the standard
            hit = xp.argmax(self._predict(x[i:j, ...]), axis=1) == t[i:j]
            c = xp.sum(xp.astype(hit, xp.int64))
            correct = c if correct is None else correct + c
        return int(correct) if correct is not None else 0

    def gradient(self, x, t):
        """Backprop gradients of the loss, as a dict like ``params`` (W1, b1, ...)."""
        with self.device.scope():
            x, t, form = self._check(x, t)
            t1 = one_hot(t, self.sizes[-1], self.dtype, self.xp) if form == "index" else t
            self._forward_backward(x, t1, need_loss=False)
        return self.grads

    def _forward_backward(self, x, t_onehot, need_loss: bool, grad_scale=1.0):
        """One forward and backward pass on validated inputs; the loss only when asked.

        ``grad_scale`` multiplies every gradient (the trainer folds SGD's learning rate in).
        """
        for layer in self._layer_list:
            x = layer.forward(x)
        last = self.lastLayer
        loss = last.forward_onehot(x, t_onehot) if need_loss else last.forward_probs(x, t_onehot)
        dout = last.backward(grad_scale)
        for layer in self._reversed:
            dout = layer.backward(dout)
        return loss if need_loss else None

    @property
    def grads(self) -> dict:
        """The gradients of the last backward pass (the layers' ``dW``/``db``)."""
        return {key: getattr(layer, attr) for key, layer, attr in self._grad_slots}

    def numerical_gradient(self, x, t):
        """The book's numerical gradient of every parameter (slow: two losses per entry)."""
        from .gradient import numerical_gradient

        with self.device.scope():
            x, t, _ = self._check(x, t)
            f = lambda _: self.lastLayer.forward(self._predict(x), t, check=False)  # noqa: E731
            return {k: numerical_gradient(f, p) for k, p in self.params.items()}

    def __repr__(self) -> str:
        arch = "-".join(str(s) for s in self.sizes)
        return f"{type(self).__name__}({arch}, {self.activation}, device={self.device.name!r}, dtype={self.config['dtype']})"


class TwoLayerNet(MultiLayerNet):
    """The book's two-layer net: Affine1 -> Relu1 -> Affine2 -> SoftmaxWithLoss."""

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01, *, device=None,
                 dtype="float32", seed=None, _host_params=None):
        super().__init__([input_size, hidden_size, output_size], "relu", weight_init_std,
                         device=device, dtype=dtype, seed=seed, _host_params=_host_params)

    def to(self, device=None, dtype=None) -> "TwoLayerNet":
        host = {k: self.device.to_numpy(v) for k, v in self.params.items()}
        i, h, o = self.sizes
        return TwoLayerNet(i, h, o, self.weight_init, device=device if device is not None else self.device,
                           dtype=dtype if dtype is not None else self.config["dtype"], seed=self.seed,
                           _host_params=host)

"""Networks made of layers: ``Net`` from any list of layers, which the book's nets build on
(``two_layer_net.py``, ``multi_layer_net.py``, ``multi_layer_net_extend.py``, ``convnets.py``).

As in the book, ``net.layers`` (an OrderedDict) and ``net.lastLayer`` *are* the network: predict,
gradient, the gradient check and the trainer walk them on every call, so replacing
``net.layers["Relu1"]`` changes what the net computes. ``net.params`` holds the very arrays the
layers compute with; the optimizers update them in place.

Initial weights are drawn on the host with NumPy's PCG64 and then placed on the device, so one
seed gives the same network on every backend and results can be compared across them. Nets
compute in float64 unless told otherwise, like the book's NumPy code (its gradient check then
prints the book's 1e-10..1e-13); ``dtype="float32"`` trains about twice as fast, and ``xpnet
train`` uses it by default.
"""

from __future__ import annotations

import copy
import functools
import math
import numbers
from collections import OrderedDict
from collections.abc import Mapping

from .backend import Generator, device as get_device, device_of, dtype_name, is_host_array, scoped
from .fast import Kept, same_objects
from .functions import one_hot
from .layers import (Affine, BatchNormalization, Dropout, Relu, Sigmoid, SoftmaxWithLoss, Tanh, held,
                     layer_param_names, layer_state_names)
from .protocols import is_layer, takes_onehot, takes_train_flg
from .validation import (check_array, check_features, check_finite, check_labels, check_samples,
                         index_labels, is_array, is_kind, label_column, labels_out_of_range, positive_int, shape_str)

__all__ = ["Net", "ACTIVATIONS", "WEIGHT_INITS", "weight_init_std_for", "is_weight_init", "last_layer_of",
           "given_params"]

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid, "tanh": Tanh}
# weight_init by name -> k of the std sqrt(k / fan_in): He's for ReLU, Xavier's for sigmoid (the book's
# weight_init_std takes 'relu' and 'sigmoid'; 'he' and 'xavier' say the same by the method's name)
WEIGHT_INITS = {"he": 2.0, "relu": 2.0, "xavier": 1.0, "sigmoid": 1.0}

def on_batch(method):
    """For a net's public method over a batch ``x``: it runs inside the device's scope and the
    CPU's BLAS-thread policy for a batch of that size (``Device.step_scope``), entered here once,
    so the method's body reads as the book's."""

    @functools.wraps(method)
    def on_device(self, x, *args, **kwargs):
        n = x.shape[0] if getattr(x, "ndim", 0) else 0  # a non-array is refused inside, by name
        self._weights()  # (re)computes the largest weight's size when a layer changed
        with self.device.step_scope(2 * n * self._largest_weight):
            return method(self, x, *args, **kwargs)

    return on_device


def _decay(lam) -> float:
    """A weight decay strength: a finite number >= 0."""
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"weight_decay_lambda must be a finite number >= 0 (0: no weight decay), got {lam!r}")
    return float(lam)


def given_params(params, shapes: dict, owner: str, device, dtype) -> dict:
    """``params=`` as a net's own copies on ``device`` in ``dtype`` -- never the caller's arrays,
    nor another net's built from the same dict, so training one changes nothing else (read-only
    arrays work) -- refused unless it holds exactly ``shapes``' keys, each of that shape."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of arrays keyed {', '.join(shapes)}, got {type(params).__name__}")
    missing, extra = [k for k in shapes if k not in params], sorted(str(k) for k in params if k not in shapes)
    if missing or extra:
        raise ValueError(f"params for this {owner} must hold exactly {', '.join(shapes)}: "
                         + (f"{missing[0]!r} is missing" if missing else f"{extra[0]!r} is not one of them"))
    out, seen = {}, {}
    for k, shape in shapes.items():
        if id(params[k]) in seen and is_array(params[k]):
            raise ValueError(f"params[{k!r}] is the same array as params[{seen[id(params[k])]!r}]: this {owner} gives "
                             "each key its own copy, so they would train apart; pass separate arrays, or tie weights "
                             "in an xpnet.Net whose layers hold one array (its gradient sums their uses)")
        seen[id(params[k])] = k
        a = device.asarray(params[k], dtype=dtype, copy=True)
        if tuple(a.shape) != tuple(shape):
            raise ValueError(f"params[{k!r}] has shape {shape_str(a.shape)}; this {owner}'s sizes make it "
                             f"{shape_str(shape)}")
        out[k] = a
    return out


def last_layer_of(net):
    """A net's loss layer under either of the book's names: ``lastLayer`` (chapter 5's nets) or
    ``last_layer`` (its ``MultiLayerNet`` and the nets of chapters 6-8); None when it has none."""
    last = getattr(net, "lastLayer", None)
    return last if last is not None else getattr(net, "last_layer", None)


_KEEPS_WIDTH = (Relu, Sigmoid, Tanh, Dropout, BatchNormalization)  # layers whose output has their input's width


def _check_chain(layers) -> None:
    """Consecutive Affines (with only width-keeping layers between) must fit: each W's rows the
    columns of the W before, named at construction rather than as a product's shape error later."""
    prev = None  # (name, columns) of the last Affine, while only width-keeping layers followed it
    for name, layer in layers.items():
        if isinstance(layer, Affine):
            rows = layer.W.shape[0]
            if prev is not None and rows != prev[1]:
                raise ValueError(f"layer {name!r} takes {rows} inputs but layer {prev[0]!r} gives {prev[1]}: "
                                 f"consecutive layers must fit (W of {name} needs {prev[1]} rows)")
            prev = (name, layer.W.shape[1])
        elif not isinstance(layer, _KEEPS_WIDTH):
            prev = None  # a layer of unknown shape: nothing to compare across it


def _same_layers_and_weights(layers, seen) -> bool:
    """Whether ``layers`` holds the very layers of ``seen`` [(layer, its W)], in order, each with
    the same W: identity tests, cheap enough for every call."""
    if seen is None or len(layers) != len(seen):
        return False
    for layer, (was, w) in zip(layers.values(), seen):
        if layer is not was or getattr(layer, "W", None) is not w:
            return False
    return True


def _layers_hold(slots, params) -> bool:
    """Whether each layer of ``slots`` [(params key, layer, gradient attribute)] still computes
    with its parameter, ``params[key]`` (the attribute's name without the ``d``)."""
    for k, layer, attr in slots:
        if getattr(layer, attr[1:]) is not params[k]:
            return False
    return True


class Net:
    """A net of layers in the book's form: ``layers`` (OrderedDict), ``lastLayer``, ``params``.

    ``Net([Affine(W1, b1), Tanh(), MyLayer(), Affine(W2, b2)])`` builds one from xpnet's layers
    or your own (``forward``/``backward``, parameters ``W``/``b``/``gamma``/``beta`` or declared
    ``param_names``, gradients ``dW``...). A list is named as the book names its layers
    (Affine1, Tanh1, Affine2); the parameters are keyed ``W1, b1, W2, b2``... by the order of the
    layers that hold them. Device and dtype come from the parameters.

    The book's methods are all here (``predict``, ``loss``, ``accuracy``, ``gradient``,
    ``numerical_gradient``); they validate their inputs. ``backprop`` and ``count_correct`` are
    the same computations on trusted inputs, the fast path ``Trainer`` uses.
    """

    def __init__(self, layers, last_layer=None, *, params=None, device=None, weight_decay_lambda=0):
        if isinstance(layers, Mapping):
            layers = OrderedDict(layers)
        elif isinstance(layers, (list, tuple)):
            named, counts = OrderedDict(), {}
            for layer in layers:
                kind = type(layer).__name__
                counts[kind] = counts.get(kind, 0) + 1
                named[f"{kind}{counts[kind]}"] = layer
            layers = named
        else:
            raise TypeError(f"layers must be a list or an OrderedDict of layer objects, got {type(layers).__name__}")
        for name, layer in layers.items():
            if not is_layer(layer):
                raise TypeError(f"layer {name!r} ({type(layer).__name__}) has no forward/backward methods")
        if params is None:
            params, k = {}, 0
            for layer in layers.values():
                names = [n for n in layer_param_names(layer)  # tied weights: an array held already is one parameter
                         if not any(getattr(layer, n) is p for p in params.values())]
                k += bool(names)
                params.update({f"{n}{k}": getattr(layer, n) for n in names})
        if not params:
            raise ValueError("the net has no parameters: give it at least one layer with W/b (or param_names)")
        first = next(iter(params.values()))
        dev = get_device(device) if device is not None else device_of(first)
        for k, p in params.items():  # one device: two are named as such, not as a dtype or shape fault later
            if is_array(p) and not dev.owns(p):
                try:
                    where = device_of(p).name
                except TypeError:
                    where = f"no device xpnet knows (a {type(p).__name__})"
                raise ValueError(f"params[{k!r}] is on {where} but the net is on {dev.name}: the layers' arrays must "
                                 f"live on one device; move them with xpnet.device({dev.name!r}).asarray(...)")
        _check_chain(layers)
        self.device, self.xp, self.dtype = dev, dev.xp, first.dtype
        self.params = params
        self.layers = layers
        self.weight_decay_lambda = _decay(weight_decay_lambda)
        self.lastLayer = last_layer if last_layer is not None else SoftmaxWithLoss(dev.xp)
        self.grads = None  # the gradients of the last gradient() call, as the book's nets return them
        self._slots_seen, self._slots = None, None
        self._weights_seen, self._weights_list, self._largest_weight, self._flat_input = None, None, 0, True
        self.input_dim = getattr(self, "input_dim", None)  # a sample's shape, for a net taking images
        self._eye = None
        self._grad_slots()  # fails now, not at the first gradient, when layers and params disagree

    # -- what the layers say about the shapes ----------------------------------------
    def _weights(self):
        """The layers' 2-d weight matrices, in order (remembered while the layers and their W stay)."""
        if not _same_layers_and_weights(self.layers, self._weights_seen):
            self._weights_seen = [(layer, getattr(layer, "W", None)) for layer in self.layers.values()]
            self._weights_list = [w for _, w in self._weights_seen if is_array(w) and w.ndim == 2]
            self._largest_weight = max((w.shape[0] * w.shape[1] for w in self._weights_list), default=0)
            filters = [w for _, w in self._weights_seen if is_array(w) and w.ndim == 4]
            if filters:  # a convolution's product per sample: its filters at each of (at most) the image's positions
                positions = math.prod(self.input_dim[1:]) if self.input_dim else math.inf
                self._largest_weight = max(self._largest_weight, max(positions * math.prod(w.shape) for w in filters))
            first = next((w for _, w in self._weights_seen if is_array(w)), None)
            self._flat_input = first is not None and first.ndim == 2  # an Affine first, not a Convolution
        return self._weights_list

    @property
    def product_size_per_sample(self):
        """The largest of the net's matrix products per sample (M*K for a row of an Affine; a
        convolution's filters at each of the image's positions): with the batch size, what the
        CPU's thread policy (``Device.step_scope``) needs to know."""
        self._weights()
        return self._largest_weight

    @property
    def n_features(self):
        """Inputs per sample (the first weight matrix's rows) of a net whose first layer is an
        Affine; None when no layer says, or when the net takes images (a Convolution first)."""
        ws = self._weights()
        return ws[0].shape[0] if ws and self._flat_input else None

    @property
    def num_classes(self):
        """Outputs per sample (the last weight matrix's columns), or None when no layer says."""
        ws = self._weights()
        return ws[-1].shape[1] if ws else None

    @property
    def config(self) -> dict:
        """A description of the architecture (the trainer's history records it)."""
        return {"class": type(self).__name__, "layers": [type(v).__name__ for v in self.layers.values()],
                "last_layer": type(self.lastLayer).__name__, "dtype": dtype_name(self.dtype),
                "params": {k: list(v.shape) for k, v in self.params.items()}}

    # -- input checks (public entry points only) -------------------------------------
    def _input(self, x, name="x", finite=False):
        """``x`` on this device, floating, as (N, D); another float dtype is converted, like the
        book's float32 MNIST going into its float64 net. ``finite`` also scans it for NaN/inf
        (a reduction over the data: where data enters, never in ``gradient``). A NumPy array (the
        book's ``load_mnist`` gives them) is moved onto a GPU or torch net's device."""
        x = self._moved(x)
        check_array(x, name, self.device)
        xp = self.xp
        if not is_kind(xp, x.dtype, "real floating"):
            raise TypeError(f"{name} must have a floating dtype, got {x.dtype}; convert it, e.g. "
                            f"dev.asarray(data, dtype='float32') (and scale images to [0, 1])")
        if x.dtype != self.dtype:
            x = xp.astype(x, self.dtype)
        d = self.n_features
        if d is not None:
            check_features(x, d, name)
            if x.ndim != 2:
                x = xp.reshape(x, (-1, d))
        elif self.input_dim is not None and tuple(x.shape[1:]) != self.input_dim:
            raise ValueError(f"{name} must hold images of shape {self.input_dim} (N, C, H, W with N samples), got "
                             f"{shape_str(x.shape)}")
        if finite:
            check_finite(x, name, xp)
        return x

    def _moved(self, a):
        """Host NumPy data on this device (the book's scripts feed it to any net); anything else
        as given, for ``check_array`` to accept or refuse by name."""
        return self.device.asarray(a) if is_host_array(a) and not self.device.owns(a) else a

    def _labels(self, t, n, c):
        """(labels on this device, their form): validated against n samples and c classes."""
        t = self._moved(t)
        check_array(t, "t", self.device)
        t = label_column(t, n, self.xp)
        return t, check_labels(t, n, c, self.xp)

    def _onehot(self, t, form, c):
        """One-hot rows of the net's dtype, built from integer labels by one comparison."""
        xp = self.xp
        if form == "onehot":  # a copy: the lazy loss must not see the caller refill its buffer
            return xp.astype(t, self.dtype, copy=True)
        eye = self._eye
        if eye is None or eye.shape[0] != c:
            eye = self._eye = xp.eye(c, dtype=self.dtype, device=self.device.native)
        return one_hot(t, c, self.dtype, xp, eye, check=False)  # validated by _labels

    # -- forward and backward --------------------------------------------------------
    def forward(self, x, train_flg=False):
        """The layers in order, on trusted input (predict without the checks); ``train_flg`` goes
        to the layers whose forward takes it (Dropout, BatchNormalization)."""
        for layer in self.layers.values():
            x = layer.forward(x, train_flg) if takes_train_flg(layer) else layer.forward(x)
        return x

    def held(self):
        """While entered, forward passes repeat their random choices (dropout masks held) and leave
        no trace (running statistics put back on exit): one function to compare losses of."""
        return held(self.layers.values())

    @scoped
    def penalty(self):
        """The weight decay's ``0.5 * weight_decay_lambda * sum(W**2)`` over every layer's W (not
        b, gamma, beta): what ``loss`` adds to the data loss; 0.0 without weight decay."""
        lam = self.weight_decay_lambda
        if not lam:
            return 0.0
        xp, total = self.xp, 0.0
        for k in self._decayed(self._grad_slots()):
            w = self.params[k]
            total = total + xp.sum(w * w)
        return 0.5 * lam * total

    @scoped
    def last_loss(self):
        """The last batch's loss as ``loss`` defines it: the loss layer's value plus ``penalty()``
        (after ``gradient``/``backprop``; computed when read)."""
        loss = self.lastLayer.loss
        return loss + self.penalty() if self.weight_decay_lambda else loss

    def _grad_slots(self):
        """[(params key, layer, gradient attribute)], rebuilt when layers or params change.

        Also the place where a net that no longer trains what it claims is caught: a parameter
        no layer holds (``params[k] = params[k] - lr * g`` rebinds it), or a layer parameter
        missing from ``params`` (a replaced layer on new arrays)."""
        layers, params, seen = self.layers, self.params, self._slots_seen
        if seen is not None and same_objects(layers.values(), seen[0]) and same_objects(params.values(), seen[1]) \
                and _layers_hold(self._slots, params):
            return self._slots  # (a layer's W replaced in place, net.layers['Affine1'].W = ..., is caught too)
        by_id = {id(p): k for k, p in params.items()}
        known = {id(p) for p in seen[1]} if seen else set()  # the params' arrays last time
        slots = []
        for lname, layer in layers.items():
            for attr in layer_param_names(layer):
                arr = getattr(layer, attr)
                k = by_id.get(id(arr))
                if k is not None:
                    slots.append((k, layer, "d" + attr))
                elif id(arr) in known:  # the layer kept the array; params got a new one
                    held = {id(getattr(lay, n)) for lay in layers.values() for n in layer_param_names(lay)}
                    lost = next((k for k, p in params.items() if id(p) not in held), "?")
                    raise ValueError(
                        f"net.params[{lost!r}] is held by no layer, so it does not influence the loss: it was "
                        f"replaced by a new array (params[k] = params[k] - lr * g?) while layer {lname!r} still "
                        f"computes with the old one. Update parameters in place (params[k] -= lr * g)")
                else:
                    raise ValueError(
                        f"layer {lname!r} computes with a parameter {attr} that is not in net.params, so no optimizer "
                        f"would update it; build the layer on net.params' arrays (e.g. Affine(net.params['W1'], "
                        f"net.params['b1'])) or add it to net.params")
        lost = [k for k in params if k not in {k for k, _, _ in slots}]
        if lost:
            raise ValueError(f"net.params[{lost[0]!r}] is held by no layer, so it does not influence the loss: "
                             f"update parameters in place (params[k] -= lr * g) so the layers keep computing with them")
        self._slots_seen, self._slots = (tuple(layers.values()), tuple(params.values())), slots
        self._tied = len({k for k, _, _ in slots}) < len(slots)  # one array in several layers
        return slots

    def backward(self, dout=1.0):
        """Backpropagate ``dout`` (the loss's gradient scale) from the last layer to the first;
        returns the gradients ``{W1: dW, ...}`` of ``dout * loss`` from the layers."""
        slots = self._grad_slots()
        scale = dout
        dout = self.lastLayer.backward(dout)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        if self._tied:  # an array several layers compute with: its gradient is the sum of theirs
            grads = {}
            for k, layer, attr in slots:
                g = getattr(layer, attr)
                grads[k] = g if k not in grads else grads[k] + g
        else:
            grads = {k: getattr(layer, attr) for k, layer, attr in slots}
        if self.weight_decay_lambda:  # the penalty's gradient, lambda * W, for every W
            decay = scale * self.weight_decay_lambda
            for k in self._decayed(slots):
                grads[k] = grads[k] + decay * self.params[k]
        return grads

    @staticmethod
    def _decayed(slots):
        """The keys of the weights (each once, a tied one too) the weight decay penalises."""
        return dict.fromkeys(k for k, _, attr in slots if attr == "dW")

    @scoped
    def backprop(self, x, t_onehot, dout=1.0):
        """The gradient of ``dout * loss`` on trusted inputs: ``x`` of shape (N, D) in the net's
        dtype and device, ``t_onehot`` one-hot rows of that dtype. No checks; ``net.grads`` is
        left alone. ``last_loss()`` gives the batch's loss when read. The trainer's step, in
        training mode (``train_flg=True``)."""
        return self._backprop(x, t_onehot, dout)

    def _backprop(self, x, t_onehot, dout=1.0):  # backprop's body, for callers already in the scope
        self._forward_loss_layer(self.forward(x, True), t_onehot)
        return self.backward(dout)

    # -- the book's API ----------------------------------------------------------------
    @scoped
    def predict(self, x, train_flg=False):
        """Scores (before softmax) for a batch ``x`` of this device; in testing mode unless told."""
        return self.forward(self._input(x, finite=True), train_flg)

    @on_batch
    def loss(self, x, t, train_flg=False):
        """The mean loss of a batch, integer or one-hot labels ``t``, weight decay included; in
        testing mode unless told (as the book's ``MultiLayerNetExtend.loss``)."""
        x = self._input(x, finite=True)
        check_samples(x.shape[0], "x", "the mean loss")
        y = self.forward(x, train_flg)
        out = self._forward_loss_layer(y, self._targets(t, y.shape[0], y.shape[1]))
        loss = self.lastLayer.loss if out is None else out
        return loss + self.penalty() if self.weight_decay_lambda else loss

    @on_batch
    def gradient(self, x, t):
        """Backprop gradients of the loss, a dict like ``params``; also kept in ``net.grads``.
        Afterwards ``net.lastLayer.loss`` holds this batch's loss, as in the book (``last_loss()``
        adds the weight decay's penalty). Computed in training mode, as the book's nets do.

        The checks are those a step can afford: shapes, dtypes, devices, the labels' range or
        one-hot rows summing to 1; not the NaN scan of ``x`` (``loss``, ``accuracy``,
        ``predict`` and the trainer do that where data enters)."""
        if self._is_step_batch(x, t):  # the book loop's batch: its labels' range is all left to check
            self.grads = grads = self._backprop(x, self._step_onehot(t))
            return grads
        x = self._input(x)
        check_samples(x.shape[0], "x", "the gradient of the mean loss")
        c = self.num_classes
        if c is None:  # no layer says: the scores do
            return self._gradient_by_scores(x, t)
        self.grads = grads = self.backprop(x, self._targets(t, x.shape[0], c))
        return grads

    def _is_step_batch(self, x, t) -> bool:
        """Whether ``x`` and ``t`` are already in the form a step computes on -- x a non-empty 2-d
        batch of this device and dtype with the first layer's width, t integer labels of this
        device, one per row, for xpnet's loss layer -- decided by attribute tests alone, so that
        only the labels' range scan is left (``_input`` and ``_targets`` are the full checks,
        which accept, convert or refuse by name whatever this declines). Call after
        ``_weights()``, as ``on_batch`` does."""
        ws, dev = self._weights_list, self.device
        if not (ws and self._flat_input and dev.owns(x) and dev.owns(t) and x.dtype == self.dtype):
            return False
        xp, shape = self.xp, x.shape
        return (len(shape) == 2 and shape[0] and shape[1] == ws[0].shape[0] and t.shape == shape[:1]
                and (t.dtype == xp.int64 or t.dtype == xp.int32) and takes_onehot(self.lastLayer))

    def _step_onehot(self, t):
        """One-hot rows of a step batch's labels (``_is_step_batch``), refused unless each lies in
        [0, C-1] (``check_labels``' range scan and message): rows of a kept identity."""
        c, eye = self._weights_list[-1].shape[1], self._eye
        if labels_out_of_range(t, c, self.xp):
            check_labels(t, t.shape[0], c, self.xp)  # raises, naming the range
        if eye is None or eye.shape[0] != c:
            eye = self._eye = self.xp.eye(c, dtype=self.dtype, device=self.device.native)
        return self.device.take_rows(eye, t)

    def _gradient_by_scores(self, x, t):
        y = self.forward(x, True)
        self._forward_loss_layer(y, self._targets(t, y.shape[0], y.shape[1]))
        self.grads = grads = self.backward(1.0)
        return grads

    def _targets(self, t, n, c):
        """``t`` checked against n samples and c classes, in the form the loss layer takes: one-hot
        rows of the net's dtype for xpnet's SoftmaxWithLoss, the labels as given for a book-style
        loss layer (it converts them itself)."""
        t, form = self._labels(t, n, c)
        return self._onehot(t, form, c) if takes_onehot(self.lastLayer) else t

    def _forward_loss_layer(self, scores, t):
        """The loss layer's forward: xpnet's SoftmaxWithLoss on one-hot rows, the loss computed
        when ``lastLayer.loss`` is first read (None returned); a book-style layer's forward, which
        returns the loss."""
        last = self.lastLayer
        if takes_onehot(last):
            last.forward_onehot(scores, t)
            return None
        return last.forward(scores, t)

    @scoped
    def accuracy(self, x, t, batch_size=10000) -> float:
        """Fraction of correct predictions, evaluated in batches so memory stays bounded."""
        batch_size = positive_int("batch_size", batch_size, allow_none=True)
        x = self._input(x, finite=True)
        n = x.shape[0]
        check_samples(n, "x", "the accuracy")
        c = self.num_classes or self.forward(x[:1, ...]).shape[1]
        t, form = self._labels(t, n, c)
        labels = self.xp.argmax(t, axis=1) if form == "onehot" else index_labels(t, self.xp)
        return self.count_correct(x, labels, batch_size) / n

    @scoped
    def count_correct(self, x, labels, batch_size=None) -> int:
        """How many rows of trusted ``x`` (N, D) the net classifies as the integer ``labels``;
        evaluated ``batch_size`` rows at a time, one host transfer at the end."""
        xp, n = self.xp, x.shape[0]
        step = n if not batch_size else int(batch_size)
        correct = None
        for i in range(0, n, max(step, 1)):
            j = min(i + step, n)  # out-of-range slice ends are not in the standard
            hit = xp.argmax(self.forward(x[i:j, ...]), axis=1) == labels[i:j]
            c = xp.sum(xp.astype(hit, xp.int64))
            correct = c if correct is None else correct + c
        return int(correct) if correct is not None else 0

    @scoped
    def numerical_gradient(self, x, t):
        """The book's numerical gradient of every parameter (slow: two losses per entry), of the
        loss ``gradient`` differentiates: in training mode, weight decay included, each dropout
        mask held at the last one drawn (so call ``gradient`` first to compare with it), the
        running statistics put back afterwards."""
        from .gradient import numerical_gradient

        x = self._input(x, finite=True)
        check_samples(x.shape[0], "x", "the mean loss")
        c = self.num_classes or self.forward(x[:1, ...]).shape[1]
        t1 = self._targets(t, x.shape[0], c)

        def loss_W(W):  # the book's name; W is perturbed in place, so the loss just recomputes
            out = self._forward_loss_layer(self.forward(x, True), t1)
            loss = self.lastLayer.loss if out is None else out
            return loss + self.penalty() if self.weight_decay_lambda else loss

        with self.held():
            return {k: numerical_gradient(loss_W, p) for k, p in self.params.items()}

    # -- the book's files ------------------------------------------------------------------
    def save_params(self, file_name="params.pkl"):
        """The parameters, saved as ``xpnet.checkpoint.save_params`` does (xpnet's ``.npz``, never
        a pickle, whatever the name); returns the path."""
        from .checkpoint import save_params

        return save_params(self, file_name)

    def load_params(self, file_name="params.pkl"):
        """Loads parameters into this net in place: the book's pickles (read without running
        anything from them), ``save_params``' files and xpnet checkpoints
        (``xpnet.checkpoint.load_params``)."""
        from .checkpoint import load_params

        load_params(self, file_name)

    # -- copies --------------------------------------------------------------------------
    def to(self, device=None, dtype=None):
        """A copy on another device and/or dtype, layers included (edited ones too): the
        parameters go through the host, and the copied layers share the new ``params``."""
        dev = get_device(device) if device is not None else self.device
        dt = dev.dtype(dtype if dtype is not None else dtype_name(self.dtype))
        new_params = {k: dev.asarray(self.device.to_numpy(p), dtype=dt) for k, p in self.params.items()}
        by_id = {id(p): new_params[k] for k, p in self.params.items()}

        def move(v):
            if id(v) in by_id:
                return by_id[id(v)]
            if isinstance(v, Kept):  # arrays of the old device and dtype
                return Kept()
            if isinstance(v, Generator):  # a dropout's: its own copy on the new device, continuing where it can
                g = dev.rng(v.seed)
                if v.device.rng_kind == dev.rng_kind:
                    g.set_state(v.get_state())
                return g
            if isinstance(v, tuple):
                return tuple(move(e) for e in v)
            if not is_array(v):
                return v
            try:
                host = device_of(v).to_numpy(v)
            except TypeError:
                return v
            return dev.asarray(host, dtype=dt if host.dtype.kind == "f" else None)

        def clone(layer):
            c = copy.copy(layer)
            for name, v in list(vars(c).items()):
                setattr(c, name, dev.xp if name == "xp" and v is not None else move(v))
            return c

        new = copy.copy(self)
        new.device, new.xp, new.dtype = dev, dev.xp, dt
        new.params = new_params
        new.layers = OrderedDict((k, clone(v)) for k, v in self.layers.items())
        new.lastLayer = clone(self.lastLayer)
        new.grads, new._slots_seen, new._slots, new._eye, new._weights_seen = None, None, None, None, None
        return new

    # -- what the layers learn besides the parameters (checkpoints save it) --------------
    def buffers(self) -> dict:
        """``{"BatchNorm1/running_mean": array, ...}``: the layers' state arrays (``layer_state_names``),
        learnt without gradients and read in testing; None where a layer has not made one yet."""
        return {f"{name}/{attr}": getattr(layer, attr, None) for name, layer in self.layers.items()
                for attr in layer_state_names(layer)}

    def load_buffers(self, arrays: dict) -> None:
        """Puts saved state arrays (host or device data, keyed as ``buffers()``) into the layers."""
        now = self.buffers()
        unknown = sorted(set(arrays) - set(now))
        if unknown:
            raise ValueError(f"no layer holds a state array {unknown[0]!r}; this net has {sorted(now) or 'none'}")
        for key, v in arrays.items():
            if now[key] is not None and tuple(v.shape) != tuple(now[key].shape):
                raise ValueError(f"state array {key!r} has shape {tuple(v.shape)}, the layer's has "
                                 f"{tuple(now[key].shape)}")
            name, attr = key.split("/", 1)
            setattr(self.layers[name], attr, self.device.asarray(v, dtype=self.dtype))

    def generator_states(self) -> dict:
        """``{"Dropout1": {"seed": ..., "state": ...}, ...}``: where each random layer's generator
        stands (JSON), so a resumed run draws the masks the run would have drawn."""
        out = {}
        for name, layer in self.layers.items():
            if callable(getattr(layer, "generator", None)) and hasattr(layer, "seed"):
                g = getattr(layer, "rng", None)
                out[name] = {"seed": layer.seed} if g is None else {"seed": g.seed, "state": g.get_state()}
        return out

    def load_generator_states(self, states: dict) -> None:
        """Continues each random layer's generator from ``generator_states()``' record; a state of
        another kind of device (loading a GPU run on the CPU) restarts it from its seed."""
        for name, saved in states.items():
            layer = self.layers.get(name)
            if layer is None or not callable(getattr(layer, "generator", None)) or not isinstance(saved, dict):
                raise ValueError(f"no random layer {name!r} in this net to continue the saved generator of")
            seed = saved.get("seed")
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
                raise ValueError(f"the saved seed of {name!r} must be a non-negative integer or null, got "
                                 f"{str(seed)[:40]}")
            layer.seed, layer.rng = seed, None
            state = saved.get("state")
            if isinstance(state, dict):
                g = self.device.rng(layer.seed)
                if state.get("kind") == self.device.rng_kind:
                    g.set_state(state)
                layer.rng = g

    @property
    def last_layer(self):
        """The book's other spelling of ``lastLayer`` (its chapter 6-8 nets): the same layer."""
        return self.lastLayer

    @last_layer.setter
    def last_layer(self, layer):
        self.lastLayer = layer

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({' -> '.join(self.layers)} -> {type(self.lastLayer).__name__}, "
                f"device={self.device.name!r}, dtype={dtype_name(self.dtype)})")


def is_weight_init(weight_init) -> bool:
    """A name of ``WEIGHT_INITS`` (any case) or a positive finite standard deviation."""
    if isinstance(weight_init, str):
        return weight_init.lower() in WEIGHT_INITS
    return not isinstance(weight_init, bool) and isinstance(weight_init, numbers.Real) \
        and math.isfinite(weight_init) and weight_init > 0


def weight_init_std_for(weight_init, fan_in: int) -> float:
    """The initial weights' standard deviation: the number given, He's sqrt(2 / fan_in) or Xavier's sqrt(1 / fan_in)."""
    if not is_weight_init(weight_init):
        raise ValueError(f"weight_init must be a positive finite number, 'he' or 'xavier', got {weight_init!r}")
    if isinstance(weight_init, str):
        return math.sqrt(WEIGHT_INITS[weight_init.lower()] / fan_in)
    return float(weight_init)

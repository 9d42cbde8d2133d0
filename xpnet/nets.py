"""Networks made of layers: ``Net`` from any list of layers, the book's ``TwoLayerNet`` and ``MultiLayerNet``.

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

from array_api_compat import array_namespace

from .backend import Generator, device as get_device, device_of, dtype_name, host_rng, is_host_array, scoped
from .fast import Kept, same_objects
from .functions import one_hot
from .layers import (Affine, BatchNormalization, Dropout, Relu, Sigmoid, SoftmaxWithLoss, Tanh, held,
                     layer_param_names, layer_state_names)
from .protocols import is_layer, takes_onehot, takes_train_flg
from .validation import (check_array, check_features, check_finite, check_labels, check_net_size, check_samples,
                         index_labels, is_array, is_kind, labels_out_of_range, positive_int, shape_str,
                         unit_interval)

__all__ = ["Net", "MultiLayerNet", "MultiLayerNetExtend", "TwoLayerNet", "ACTIVATIONS", "WEIGHT_INITS",
           "weight_init_std_for", "is_weight_init", "last_layer_of"]

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


def last_layer_of(net):
    """A net's loss layer under either of the book's names: ``lastLayer`` (chapter 5's nets) or
    ``last_layer`` (its ``MultiLayerNet`` and the nets of chapters 6-8); None when it has none."""
    last = getattr(net, "lastLayer", None)
    return last if last is not None else getattr(net, "last_layer", None)


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
                names = layer_param_names(layer)
                k += bool(names)
                params.update({f"{n}{k}": getattr(layer, n) for n in names})
        if not params:
            raise ValueError("the net has no parameters: give it at least one layer with W/b (or param_names)")
        first = next(iter(params.values()))
        dev = get_device(device) if device is not None else device_of(first)
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
            first = next((w for _, w in self._weights_seen if is_array(w)), None)
            self._flat_input = first is not None and first.ndim == 2  # an Affine first, not a Convolution
        return self._weights_list

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
        for k, _, attr in self._grad_slots():
            if attr == "dW":
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
        return slots

    def backward(self, dout=1.0):
        """Backpropagate ``dout`` (the loss's gradient scale) from the last layer to the first;
        returns the gradients ``{W1: dW, ...}`` of ``dout * loss`` from the layers."""
        slots = self._grad_slots()
        scale = dout
        dout = self.lastLayer.backward(dout)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        grads = {k: getattr(layer, attr) for k, layer, attr in slots}
        if self.weight_decay_lambda:  # the penalty's gradient, lambda * W, for every W
            decay = scale * self.weight_decay_lambda
            for k, _, attr in slots:
                if attr == "dW":
                    grads[k] = grads[k] + decay * self.params[k]
        return grads

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
            weight_init_std=weight_init_std, weight_decay_lambda=weight_decay_lambda, **extend), self._book_names)
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
            params = self._draw(rng)
        params = {k: dev.asarray(v, dtype=dt) for k, v in params.items()}
        with dev.scope():  # what a layer allocates (running statistics) goes to the net's GPU
            layers = OrderedDict((name, self._make_layer(kind, i, params, rng)) for name, kind, i in self._plan())
        super().__init__(layers, SoftmaxWithLoss(), params=params, device=dev, weight_decay_lambda=weight_decay_lambda)

    _book_names = ("input_size", "hidden_size_list", "output_size", "activation", "weight_init_std",
                   "weight_decay_lambda")  # the book's positional order

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


class MultiLayerNetExtend(MultiLayerNet):
    """The book's extended net (``common/multi_layer_net_extend.py``): ``MultiLayerNet`` with
    Dropout and batch normalisation -- (Affine -> [BatchNorm] -> activation -> [Dropout]) * (L-1)
    -> Affine -> SoftmaxWithLoss.

    The book's call: ``MultiLayerNetExtend(input_size=784, hidden_size_list=[100, 100],
    output_size=10, activation='relu', weight_init_std='relu', weight_decay_lambda=0,
    use_dropout=False, dropout_ration=0.5, use_batchnorm=False)`` (the book spells it
    ``dropout_ration``; ``dropout_ratio`` is accepted too), layers ``Affine{i}``, ``BatchNorm{i}``,
    ``Activation_function{i}``, ``Dropout{i}``, parameters ``W{i}``, ``b{i}``, ``gamma{i}``,
    ``beta{i}``. As in the book, ``predict(x, train_flg=False)`` and ``loss(x, t,
    train_flg=False)`` test unless told, and ``gradient`` trains. xpnet's call takes the widths
    first, as ``MultiLayerNet``. Each Dropout draws its masks from its own device generator, seeded
    from ``seed``.
    """

    _book_names = MultiLayerNet._book_names + ("use_dropout", "dropout_ration", "use_batchnorm")
    _option_names = ("use_dropout", "dropout_ration", "use_batchnorm", "dropout_ratio")

    def _options(self, use_dropout=False, dropout_ration=0.5, use_batchnorm=False, dropout_ratio=None):
        if dropout_ratio is not None:
            if dropout_ration != 0.5 and dropout_ration != dropout_ratio:
                raise TypeError(f"MultiLayerNetExtend got dropout_ration={dropout_ration!r} and dropout_ratio="
                                f"{dropout_ratio!r}: the book's spelling and xpnet's name one setting, give one")
            dropout_ration = dropout_ratio
        for name, v in (("use_dropout", use_dropout), ("use_batchnorm", use_batchnorm)):
            if not isinstance(v, bool):
                raise TypeError(f"{name} must be True or False, got {v!r}")
        self.use_dropout, self.use_batchnorm = use_dropout, use_batchnorm
        self.dropout_ratio = unit_interval("dropout_ration", dropout_ration)

    def _draw(self, rng) -> dict:
        params = super()._draw(rng)
        if self.use_batchnorm:  # after every W and b, as the book's dict
            for i, width in enumerate(self.sizes[1:-1], start=1):
                params[f"gamma{i}"] = [1.0] * width
                params[f"beta{i}"] = [0.0] * width
        return params

    def _plan(self) -> list:
        plan = []
        for name, kind, i in super()._plan():
            if kind == "activation" and self.use_batchnorm:
                plan.append((f"BatchNorm{i}", "batchnorm", i))
            plan.append((name, kind, i))
            if kind == "activation" and self.use_dropout:
                plan.append((f"Dropout{i}", "dropout", i))
        return plan

    def _make_layer(self, kind: str, i: int, params: dict, rng):
        if kind == "batchnorm":  # running statistics start at 0, as the book's first update makes them
            g = params[f"gamma{i}"]
            xp = array_namespace(g)
            zeros = functools.partial(xp.zeros, g.shape, dtype=g.dtype, device=g.device)
            return BatchNormalization(g, params[f"beta{i}"], running_mean=zeros(), running_var=zeros())
        if kind == "dropout":  # its own generator, seeded from the net's: one seed, one set of masks
            # (and on CuPy a short replay: one entry of equal draws per layer)
            return Dropout(self.dropout_ratio, seed=int(rng.integers(2**62)))
        return super()._make_layer(kind, i, params, rng)

    @property
    def config(self) -> dict:
        cfg = super().config
        if cfg.get("class") == type(self).__name__:
            cfg.update(use_dropout=self.use_dropout, dropout_ratio=self.dropout_ratio,
                       use_batchnorm=self.use_batchnorm)
        return cfg

    def _repr_options(self) -> str:
        return (", batchnorm" if self.use_batchnorm else "") + \
            (f", dropout {self.dropout_ratio:g}" if self.use_dropout else "")


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


class TwoLayerNet(MultiLayerNet):
    """The book's two-layer net (``ch05/two_layer_net.py``): Affine1 -> Relu1 -> Affine2 -> SoftmaxWithLoss.

    Its methods (predict, loss, accuracy, numerical_gradient, gradient) are ``Net``'s, which walk
    ``layers`` and ``lastLayer`` as the book's do. ``weight_init_std`` may also be 'he' or 'xavier'.
    """

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01, *, device=None,
                 dtype="float64", seed=None, params=None):
        dev, dt = self._describe([input_size, hidden_size, output_size], "relu", weight_init_std, seed, "xpnet",
                                 device, dtype, drawing=params is None)
        # the weights: drawn on the host (one seed gives the same net on every backend), then put on the device
        if params is None:
            randn = host_rng(seed).standard_normal
            params = {}
            params['W1'] = self._init_std(input_size) * randn((input_size, hidden_size))
            params['b1'] = [0.0] * hidden_size
            params['W2'] = self._init_std(hidden_size) * randn((hidden_size, output_size))
            params['b2'] = [0.0] * output_size
        self.params = {k: dev.asarray(v, dtype=dt) for k, v in params.items()}

        # the layers
        self.layers = OrderedDict()
        self.layers['Affine1'] = Affine(self.params['W1'], self.params['b1'], compute_dx=False)  # dx: unread
        self.layers['Relu1'] = Relu()
        self.layers['Affine2'] = Affine(self.params['W2'], self.params['b2'])

        self.lastLayer = SoftmaxWithLoss()
        Net.__init__(self, self.layers, self.lastLayer, params=self.params, device=dev)

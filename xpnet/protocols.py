"""The contracts between xpnet's parts, written down (as array-api-compat's ``_typing.py``).

Three shapes of object meet in xpnet, and each part asks for the smallest one it needs:

- a ``Layer``: the book's ``forward``/``backward`` pair (parameters ``W``, ``b``, ... with
  gradients ``dW``, ``db``, ..., or the names it declares in ``param_names``);
- a ``GradNet``: what a gradient check uses of a net -- ``params``, ``loss(x, t)``,
  ``gradient(x, t)``; a ``BookNet`` also has ``accuracy(x, t)``, which the book's own
  ``common/trainer.py`` calls. A reader's net written as the book writes it is one; ``gradcheck``
  and the trainer accept it as it is;
- a ``FastNet``: a ``BookNet`` that also offers the trusted step the trainer runs -- ``backprop``
  and ``count_correct`` on inputs already checked once where they entered -- and says where it
  computes (``device``, ``dtype``) and what it expects (``n_features``, ``num_classes``).
  xpnet's ``Net`` (so ``TwoLayerNet`` and ``MultiLayerNet``) is one.

A net that walks its layers as the book's do also has ``layers`` (an OrderedDict) and its loss
layer as ``lastLayer`` or ``last_layer``; ``gradcheck`` then checks it layer by layer.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["Layer", "GradNet", "BookNet", "FastNet", "LayeredNet", "is_layer", "is_grad_net", "is_book_net",
           "is_fast_net", "is_layered_net", "takes_onehot", "takes_train_flg", "require_book_net"]


@runtime_checkable
class Layer(Protocol):
    """A computational-graph node: ``backward`` returns the input gradient(s) of ``forward``."""

    def forward(self, *inputs: Any) -> Any: ...

    def backward(self, dout: Any) -> Any: ...


@runtime_checkable
class GradNet(Protocol):
    """What a gradient check needs of a net: its ``params``, its ``loss`` and their ``gradient``."""

    params: dict

    def gradient(self, x: Any, t: Any) -> dict: ...

    def loss(self, x: Any, t: Any) -> Any: ...


@runtime_checkable
class BookNet(GradNet, Protocol):
    """The book's net contract: what its trainer calls (a ``GradNet`` that also reports accuracy)."""

    def accuracy(self, x: Any, t: Any) -> float: ...


@runtime_checkable
class FastNet(BookNet, Protocol):
    """A book net with the trusted step: the trainer checks the data once, then calls these.

    - ``backprop(x, t_onehot, dout=1.0)``: the gradients of ``dout * loss`` for ``x`` of shape
      (N, n_features) in the net's dtype and device and one-hot targets of that dtype; no checks,
      no copies kept; the loss layer holds the batch's loss when read.
    - ``count_correct(x, labels, batch_size=None)``: how many rows of trusted ``x`` are classified
      as the integer ``labels``, as a Python int (one host transfer).
    """

    device: Any
    dtype: Any

    @property
    def n_features(self) -> int | None: ...

    @property
    def num_classes(self) -> int | None: ...

    def forward(self, x: Any) -> Any: ...

    def backprop(self, x: Any, t_onehot: Any, dout: float = 1.0) -> dict: ...

    def count_correct(self, x: Any, labels: Any, batch_size: int | None = None) -> int: ...


@runtime_checkable
class LayeredNet(Protocol):
    """A net in the book's layered form: ``layers`` in order (its loss layer apart)."""

    params: dict
    layers: Mapping


def is_layer(obj) -> bool:
    return isinstance(obj, Layer) and not isinstance(obj, type) and callable(obj.forward) and callable(obj.backward)


def is_grad_net(obj) -> bool:
    return isinstance(obj, GradNet) and isinstance(obj.params, dict) and not isinstance(obj, type)


def is_book_net(obj) -> bool:
    return isinstance(obj, BookNet) and isinstance(obj.params, dict) and not isinstance(obj, type)


def is_fast_net(obj) -> bool:
    return isinstance(obj, FastNet) and not isinstance(obj, type)


def is_layered_net(obj) -> bool:
    return isinstance(obj, LayeredNet) and isinstance(obj.layers, Mapping) and not isinstance(obj, type)


def takes_onehot(layer) -> bool:
    """Whether a loss layer offers ``forward_onehot(x, t_onehot)`` (xpnet's SoftmaxWithLoss): the
    trusted forward on one-hot rows made once, its loss computed when first read."""
    return callable(getattr(layer, "forward_onehot", None))


_TAKES_TRAIN_FLG: dict = {}  # layer class -> whether its forward has train_flg


def takes_train_flg(layer) -> bool:
    """Whether a layer's ``forward`` takes the book's ``train_flg`` (Dropout, BatchNormalization:
    they act differently in training and in testing); read from the signature once per class."""
    cls = type(layer)
    known = _TAKES_TRAIN_FLG.get(cls)
    if known is None:
        try:
            known = "train_flg" in inspect.signature(layer.forward).parameters
        except (TypeError, ValueError):  # no signature to read (a builtin): called without it
            known = False
        _TAKES_TRAIN_FLG[cls] = known
    return known


def require_book_net(net, who: str) -> None:
    """Raise ``TypeError`` naming what ``net`` lacks of what ``who`` needs: a non-empty ``params``
    dict and ``gradient``/``accuracy`` methods (the loss may come from the loss layer instead)."""
    if net is None:
        raise TypeError(f"{who} needs a net (the book's network) as its first argument")
    params = getattr(net, "params", None)
    lacks = ["params"] if not isinstance(params, dict) or not params else []
    lacks += [m for m in ("gradient", "accuracy") if not callable(getattr(net, m, None))]
    if lacks:
        raise TypeError(f"{who} needs a net in the book's form: a params dict of arrays and gradient(x, t), "
                        f"accuracy(x, t) methods; {type(net).__name__} lacks {', '.join(lacks)}")

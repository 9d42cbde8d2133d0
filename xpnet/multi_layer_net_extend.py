"""The book's ``MultiLayerNetExtend`` (``common/multi_layer_net_extend.py``): ``MultiLayerNet`` with
batch normalisation and dropout."""

from __future__ import annotations

import functools

from array_api_compat import array_namespace

from .layers import BatchNormalization, Dropout
from .multi_layer_net import MultiLayerNet
from .validation import unit_interval

__all__ = ["MultiLayerNetExtend"]


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

    BOOK_ARGUMENTS = MultiLayerNet.BOOK_ARGUMENTS + ("use_dropout", "dropout_ration", "use_batchnorm")
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

    def _param_shapes(self) -> dict:
        shapes = super()._param_shapes()
        if self.use_batchnorm:
            for i, width in enumerate(self.sizes[1:-1], start=1):
                shapes[f"gamma{i}"], shapes[f"beta{i}"] = (width,), (width,)
        return shapes

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

"""The book's convolutional nets: ``SimpleConvNet`` (``ch07/simple_convnet.py``) and
``DeepConvNet`` (``ch08/deep_convnet.py``).

The book's layers and parameter names on xpnet's ``Net``, so predict, loss, gradient,
numerical_gradient and the gradient check work as for the other nets, on every device. Images
stay (N, C, H, W).
"""

from __future__ import annotations

from collections import OrderedDict

from .backend import device as get_device, dtype_name, host_rng
from .layers import Affine, Convolution, Dropout, Pooling, Relu, SoftmaxWithLoss
from .nets import Net, given_params, weight_init_std_for
from .util import conv_output_size
from .validation import non_negative_int, positive_int

__all__ = ["SimpleConvNet", "DeepConvNet", "simple_conv_shapes", "deep_conv_shapes"]

_CONV_DEFAULT = {'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1}


def _image_dims(input_dim):
    if not isinstance(input_dim, (tuple, list)) or len(input_dim) != 3:
        raise ValueError(f"input_dim must be (channels, height, width), got {input_dim!r}")
    return tuple(positive_int(f"input_dim[{i}]", v) for i, v in enumerate(input_dim))


def _conv_param(given, default: dict, name: str) -> dict:
    if given is not None and not isinstance(given, dict):
        raise TypeError(f"{name} must be a dict with {', '.join(default)}, got {type(given).__name__}")
    cp = dict(default, **(given or {}))
    unknown = sorted(set(cp) - set(default))
    if unknown:
        raise TypeError(f"{name} has the unknown key {unknown[0]!r}; it takes {', '.join(default)}")
    return cp


def _layer_snapshot(net) -> tuple:
    """What a conv net's ``config`` describes: its layers, each one's W and b, its loss layer."""
    return (tuple((k, v, getattr(v, "W", None), getattr(v, "b", None)) for k, v in net.layers.items()),
            net.lastLayer)


class _BookConvNet(Net):
    """What the book's two convnets share here: accuracy 100 images at a time, and a ``config``
    that describes them only while nobody replaced a layer, its W or b, or the loss layer."""

    _built = None
    eval_batch_size = 100  # images the trainer evaluates at a time: im2col's columns then stay in cache
    # (5000 MNIST images through SimpleConvNet: 0.53 s at 100, 0.79 s at 1000, 0.98 s at once)

    def _as_built(self) -> bool:
        if self._built is None:
            return False
        layers, last = self._built
        now = _layer_snapshot(self)[0]
        return self.lastLayer is last and len(now) == len(layers) and all(
            a[0] == b[0] and a[1] is b[1] and a[2] is b[2] and a[3] is b[3] for a, b in zip(now, layers))

    def accuracy(self, x, t, batch_size=100) -> float:
        """The book's default batch of 100 images at a time; every sample counted."""
        return super().accuracy(x, t, batch_size)

    def to(self, device=None, dtype=None):
        new = super().to(device, dtype)
        new._built = _layer_snapshot(new) if self._as_built() else None
        return new


def simple_conv_shapes(input_dim=(1, 28, 28), conv_param=None, hidden_size=100, output_size=10) -> dict:
    """``{"W1": (FN, C, FH, FW), "b1": (FN,), ...}``: the parameters of a ``SimpleConvNet`` of these
    settings, each checked (what the constructor and a checkpoint's record are held to)."""
    C, H, W = _image_dims(input_dim)
    cp = _conv_param(conv_param, _CONV_DEFAULT, "conv_param")
    filter_num, filter_size = positive_int("filter_num", cp['filter_num']), positive_int("filter_size",
                                                                                          cp['filter_size'])
    out_h = conv_output_size(H, filter_size, cp['stride'], cp['pad'])
    out_w = conv_output_size(W, filter_size, cp['stride'], cp['pad'])
    pool_output_size = filter_num * (out_h // 2) * (out_w // 2)  # after the 2x2 pooling of stride 2
    if pool_output_size == 0:
        raise ValueError(f"images of {H}x{W} leave nothing after a {filter_size}-filter and the 2x2 pooling")
    hidden_size, output_size = positive_int("hidden_size", hidden_size), positive_int("output_size", output_size)
    return {"W1": (filter_num, C, filter_size, filter_size), "b1": (filter_num,),
            "W2": (pool_output_size, hidden_size), "b2": (hidden_size,),
            "W3": (hidden_size, output_size), "b3": (output_size,)}


class SimpleConvNet(_BookConvNet):
    """The book's simple convnet for MNIST-sized images, with its signature and defaults, plus
    ``device=``, ``dtype=`` (float64 unless told, as the book) and ``seed=``.

    ``accuracy(x, t, batch_size=100)`` counts every sample (the book's drops a last partial batch).
    ``weight_init_std`` may also be 'he' (or 'relu') and 'xavier' (or 'sigmoid').
    """

    def __init__(self, input_dim=(1, 28, 28), conv_param=None, hidden_size=100, output_size=10,
                 weight_init_std=0.01, *, device=None, dtype="float64", seed=None, params=None):
        shapes = simple_conv_shapes(input_dim, conv_param, hidden_size, output_size)
        conv_param = _conv_param(conv_param, _CONV_DEFAULT, "conv_param")
        (filter_num, C, filter_size, _), (pool_output_size, hidden_size) = shapes["W1"], shapes["W2"]
        output_size = shapes["W3"][1]
        H, W = _image_dims(input_dim)[1:]
        pad, stride = conv_param['pad'], conv_param['stride']
        weight_init_std_for(weight_init_std, 1)  # a bad one is named even when params are given
        non_negative_int("seed", seed, allow_none=True)
        dev = get_device(device)
        dt = dev.dtype(dtype)
        self.input_dim, self.conv_param = (C, H, W), conv_param
        fans = {"W1": C * filter_size * filter_size, "W2": pool_output_size, "W3": hidden_size}
        if params is None:  # drawn on the host: one seed gives the same net on every backend
            randn, std = host_rng(seed).standard_normal, weight_init_std_for
            params = {}
            params['W1'] = std(weight_init_std, fans["W1"]) * randn((filter_num, C, filter_size, filter_size))
            params['b1'] = [0.0] * filter_num
            params['W2'] = std(weight_init_std, fans["W2"]) * randn((pool_output_size, hidden_size))
            params['b2'] = [0.0] * hidden_size
            params['W3'] = std(weight_init_std, fans["W3"]) * randn((hidden_size, output_size))
            params['b3'] = [0.0] * output_size
            self.params = {k: dev.asarray(v, dtype=dt) for k, v in params.items()}
        else:
            self.params = given_params(params, shapes, "SimpleConvNet", dev, dt)
        self.weight_init_std = weight_init_std

        self.layers = OrderedDict()
        self.layers['Conv1'] = Convolution(self.params['W1'], self.params['b1'], stride, pad, compute_dx=False)
        self.layers['Relu1'] = Relu()
        self.layers['Pool1'] = Pooling(pool_h=2, pool_w=2, stride=2)
        self.layers['Affine1'] = Affine(self.params['W2'], self.params['b2'])
        self.layers['Relu2'] = Relu()
        self.layers['Affine2'] = Affine(self.params['W3'], self.params['b3'])

        self.last_layer = SoftmaxWithLoss()
        Net.__init__(self, self.layers, self.last_layer, params=self.params, device=dev)
        self._built = _layer_snapshot(self)

    @property
    def config(self) -> dict:
        """Everything needed to rebuild the net (checkpoints save it); a net whose layers were
        replaced is described layer by layer instead."""
        if not self._as_built():
            return super().config
        init = self.weight_init_std
        return {"class": "SimpleConvNet", "input_dim": list(self.input_dim), "conv_param": dict(self.conv_param),
                "hidden_size": self.params['W2'].shape[1], "output_size": self.params['W3'].shape[1],
                "weight_init_std": init if isinstance(init, str) else float(init), "dtype": dtype_name(self.dtype)}

    def __repr__(self) -> str:
        c, h, w = self.input_dim
        return (f"SimpleConvNet({c}x{h}x{w}, {self.params['W1'].shape[0]} filters of {self.params['W1'].shape[2]}, "
                f"hidden {self.params['W2'].shape[1]}, {self.params['W3'].shape[1]} classes, "
                f"device={self.device.name!r}, dtype={dtype_name(self.dtype)})")


_DEEP = tuple({'filter_num': n, 'filter_size': 3, 'pad': p, 'stride': 1}  # the book's conv_param_1 .. 6
              for n, p in ((16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)))


def deep_conv_shapes(input_dim=(1, 28, 28), conv_params=(None,) * 6, hidden_size=50, output_size=10) -> dict:
    """``{"W1": ..., "b8": ...}``: the parameters of a ``DeepConvNet`` of these settings
    (``conv_params``: its six conv_param dicts, None for the book's), each checked."""
    if not isinstance(conv_params, (tuple, list)) or len(conv_params) != 6:
        raise ValueError(f"a DeepConvNet has six conv_params, got {conv_params!r}")
    convs = [_conv_param(g, d, f"conv_param_{i}") for i, (d, g) in enumerate(zip(_DEEP, conv_params), start=1)]
    C, H, W = _image_dims(input_dim)
    hidden_size, output_size = positive_int("hidden_size", hidden_size), positive_int("output_size", output_size)
    shapes, c, h, w = {}, C, H, W
    for i, cp in enumerate(convs, start=1):  # the image's size through the convolutions and the three poolings
        f, n = positive_int("filter_size", cp['filter_size']), positive_int("filter_num", cp['filter_num'])
        shapes[f"W{i}"], shapes[f"b{i}"] = (n, c, f, f), (n,)
        c, h, w = n, conv_output_size(h, f, cp['stride'], cp['pad']), conv_output_size(w, f, cp['stride'], cp['pad'])
        if i % 2 == 0:
            h, w = h // 2, w // 2
    flat = c * h * w  # 64*4*4 for the book's 28x28 images
    if flat == 0:
        raise ValueError(f"images of {H}x{W} leave nothing after DeepConvNet's three poolings")
    shapes.update(W7=(flat, hidden_size), b7=(hidden_size,), W8=(hidden_size, output_size), b8=(output_size,))
    return shapes


class DeepConvNet(_BookConvNet):
    """The book's deep convnet: (conv - relu - conv - relu - pool) x 3 - affine - relu - dropout -
    affine - dropout - softmax, He's initial weights, the book's signature and defaults, plus
    ``device=``, ``dtype=`` (float64 unless told) and ``seed=``.

    As in the book, ``loss`` runs in training mode (its dropout on) and ``predict`` in testing
    mode; ``accuracy(x, t, batch_size=100)`` counts every sample. The book keeps ``layers`` as a
    list; here it is the OrderedDict every xpnet net has (Convolution1, Relu1, ..., Pooling1,
    ..., Affine1, Dropout1, ...), in the book's order.
    """

    def __init__(self, input_dim=(1, 28, 28), conv_param_1=None, conv_param_2=None, conv_param_3=None,
                 conv_param_4=None, conv_param_5=None, conv_param_6=None, hidden_size=50, output_size=10, *,
                 device=None, dtype="float64", seed=None, params=None):
        given = (conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5, conv_param_6)
        shapes = deep_conv_shapes(input_dim, given, hidden_size, output_size)
        non_negative_int("seed", seed, allow_none=True)
        convs = [_conv_param(g, d, f"conv_param_{i}") for i, (d, g) in enumerate(zip(_DEEP, given), start=1)]
        C, H, W = _image_dims(input_dim)
        flat, (hidden_size, output_size) = shapes["W7"][0], shapes["W8"]
        dev = get_device(device)
        dt = dev.dtype(dtype)
        self.input_dim = (C, H, W)
        rng = host_rng(seed)
        if params is None:  # He's: sqrt(2 / inputs of a unit), drawn on the host
            randn, params = rng.standard_normal, {}
            for i in range(1, 7):
                s = shapes[f'W{i}']
                params[f'W{i}'] = weight_init_std_for('he', s[1] * s[2] * s[3]) * randn(s)
                params[f'b{i}'] = [0.0] * s[0]
            params['W7'] = weight_init_std_for('he', flat) * randn((flat, hidden_size))
            params['b7'] = [0.0] * hidden_size
            params['W8'] = weight_init_std_for('he', hidden_size) * randn((hidden_size, output_size))
            params['b8'] = [0.0] * output_size
            self.params = {k: dev.asarray(v, dtype=dt) for k, v in params.items()}
        else:
            self.params = given_params(params, shapes, "DeepConvNet", dev, dt)
        self.conv_params = convs
        drop_seeds = [int(v) for v in rng.integers(2**62, size=2)]  # each dropout's own generator

        layers = []
        with dev.scope():
            for i, cp in enumerate(convs, start=1):
                layers.append(Convolution(self.params[f'W{i}'], self.params[f'b{i}'], cp['stride'], cp['pad'],
                                          compute_dx=i > 1))
                layers.append(Relu())
                if i % 2 == 0:
                    layers.append(Pooling(pool_h=2, pool_w=2, stride=2))
            layers += [Affine(self.params['W7'], self.params['b7']), Relu(), Dropout(0.5, seed=drop_seeds[0]),
                       Affine(self.params['W8'], self.params['b8']), Dropout(0.5, seed=drop_seeds[1])]
        self.last_layer = SoftmaxWithLoss()
        Net.__init__(self, layers, self.last_layer, params=self.params, device=dev)
        self._built = _layer_snapshot(self)

    @property
    def config(self) -> dict:
        """Everything needed to rebuild the net (checkpoints save it; the dropouts' generators are
        saved apart); a net whose layers were replaced is described layer by layer instead."""
        if not self._as_built():
            return super().config
        return {"class": "DeepConvNet", "input_dim": list(self.input_dim),
                "conv_params": [dict(cp) for cp in self.conv_params], "hidden_size": self.params['W7'].shape[1],
                "output_size": self.params['W8'].shape[1], "dtype": dtype_name(self.dtype)}

    def loss(self, x, t, train_flg=True):
        """The book's: in training mode, its dropout on."""
        return super().loss(x, t, train_flg)

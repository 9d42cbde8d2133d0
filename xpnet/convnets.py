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
from .nets import Net, weight_init_std_for
from .util import conv_output_size
from .validation import positive_int

__all__ = ["SimpleConvNet", "DeepConvNet"]

_CONV_DEFAULT = {'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1}


class SimpleConvNet(Net):
    """The book's simple convnet for MNIST-sized images, with its signature and defaults, plus
    ``device=``, ``dtype=`` (float64 unless told, as the book) and ``seed=``.

    ``accuracy(x, t, batch_size=100)`` counts every sample (the book's drops a last partial batch).
    ``weight_init_std`` may also be 'he' (or 'relu') and 'xavier' (or 'sigmoid').
    """

    def __init__(self, input_dim=(1, 28, 28), conv_param=None, hidden_size=100, output_size=10,
                 weight_init_std=0.01, *, device=None, dtype="float64", seed=None, params=None):
        conv_param = dict(_CONV_DEFAULT, **(conv_param or {}))
        unknown = sorted(set(conv_param) - set(_CONV_DEFAULT))
        if unknown:
            raise TypeError(f"conv_param has the unknown key {unknown[0]!r}; it takes {', '.join(_CONV_DEFAULT)}")
        if not isinstance(input_dim, (tuple, list)) or len(input_dim) != 3:
            raise ValueError(f"input_dim must be (channels, height, width), got {input_dim!r}")
        C, H, W = (positive_int(f"input_dim[{i}]", v) for i, v in enumerate(input_dim))
        filter_num, filter_size = positive_int("filter_num", conv_param['filter_num']), \
            positive_int("filter_size", conv_param['filter_size'])
        pad, stride = conv_param['pad'], conv_param['stride']
        out_h, out_w = conv_output_size(H, filter_size, stride, pad), conv_output_size(W, filter_size, stride, pad)
        pool_output_size = filter_num * (out_h // 2) * (out_w // 2)  # after the 2x2 pooling of stride 2
        if pool_output_size == 0:
            raise ValueError(f"images of {H}x{W} leave nothing after a {filter_size}-filter and the 2x2 pooling")
        hidden_size, output_size = positive_int("hidden_size", hidden_size), positive_int("output_size", output_size)
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

    def accuracy(self, x, t, batch_size=100) -> float:
        """The book's default batch of 100 images at a time; every sample counted."""
        return super().accuracy(x, t, batch_size)

    def __repr__(self) -> str:
        c, h, w = self.input_dim
        return (f"SimpleConvNet({c}x{h}x{w}, {self.params['W1'].shape[0]} filters of {self.params['W1'].shape[2]}, "
                f"hidden {self.params['W2'].shape[1]}, {self.params['W3'].shape[1]} classes, "
                f"device={self.device.name!r}, dtype={dtype_name(self.dtype)})")


_DEEP = tuple({'filter_num': n, 'filter_size': 3, 'pad': p, 'stride': 1}  # the book's conv_param_1 .. 6
              for n, p in ((16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)))


class DeepConvNet(Net):
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
        convs = [dict(d, **(g or {})) for d, g in zip(_DEEP, given)]
        if not isinstance(input_dim, (tuple, list)) or len(input_dim) != 3:
            raise ValueError(f"input_dim must be (channels, height, width), got {input_dim!r}")
        C, H, W = (positive_int(f"input_dim[{i}]", v) for i, v in enumerate(input_dim))
        hidden_size, output_size = positive_int("hidden_size", hidden_size), positive_int("output_size", output_size)
        shapes, c, h, w = [], C, H, W
        for i, cp in enumerate(convs):  # the image's size through the convolutions and the three poolings
            f = positive_int("filter_size", cp['filter_size'])
            shapes.append((positive_int("filter_num", cp['filter_num']), c, f, f))
            c, h, w = cp['filter_num'], conv_output_size(h, f, cp['stride'], cp['pad']), \
                conv_output_size(w, f, cp['stride'], cp['pad'])
            if i % 2:
                h, w = h // 2, w // 2
        flat = c * h * w  # 64*4*4 for the book's 28x28 images
        if flat == 0:
            raise ValueError(f"images of {H}x{W} leave nothing after DeepConvNet's three poolings")
        dev = get_device(device)
        dt = dev.dtype(dtype)
        self.input_dim = (C, H, W)
        rng = host_rng(seed)
        if params is None:  # He's: sqrt(2 / inputs of a unit), drawn on the host
            randn, params = rng.standard_normal, {}
            for i, s in enumerate(shapes, start=1):
                params[f'W{i}'] = weight_init_std_for('he', s[1] * s[2] * s[3]) * randn(s)
                params[f'b{i}'] = [0.0] * s[0]
            params['W7'] = weight_init_std_for('he', flat) * randn((flat, hidden_size))
            params['b7'] = [0.0] * hidden_size
            params['W8'] = weight_init_std_for('he', hidden_size) * randn((hidden_size, output_size))
            params['b8'] = [0.0] * output_size
        self.params = {k: dev.asarray(v, dtype=dt) for k, v in params.items()}
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

    def loss(self, x, t, train_flg=True):
        """The book's: in training mode, its dropout on."""
        return super().loss(x, t, train_flg)

    def accuracy(self, x, t, batch_size=100) -> float:
        """The book's default batch of 100 images at a time; every sample counted."""
        return super().accuracy(x, t, batch_size)

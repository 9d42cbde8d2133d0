"""The book's ``TwoLayerNet`` (``ch05/two_layer_net.py``)."""

from __future__ import annotations

from collections import OrderedDict

from .backend import host_rng
from .layers import Affine, Relu, SoftmaxWithLoss
from .multi_layer_net import MultiLayerNet
from .nets import Net, given_params

__all__ = ["TwoLayerNet"]


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
        else:
            self.params = given_params(params, self._param_shapes(), "TwoLayerNet", dev, dt)

        # the layers
        self.layers = OrderedDict()
        self.layers['Affine1'] = Affine(self.params['W1'], self.params['b1'], compute_dx=False)  # dx: unread
        self.layers['Relu1'] = Relu()
        self.layers['Affine2'] = Affine(self.params['W2'], self.params['b2'])

        self.lastLayer = SoftmaxWithLoss()
        Net.__init__(self, self.layers, self.lastLayer, params=self.params, device=dev)

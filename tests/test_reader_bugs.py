"""The bugs readers of the book really made (see shared/seeds), written as their NumPy layers.

gradcheck must fail on each and name the layer whose backward is wrong.
"""

from collections import OrderedDict

import numpy as np

import xpnet
from xpnet.layers import Affine, MulLayer, Relu, SoftmaxWithLoss

from book_layers import BookTwoLayerNetMethods


class MulLayerPlus(MulLayer):
    def backward(self, dout):  # written with + instead of *
        return dout + self.y, dout + self.x


class SigmoidPrecedence:
    def forward(self, x):
        self.out = 1 / 1 + np.exp(-x)  # the missing parentheses
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class BatchSoftmaxWithLoss:
    """softmax normalised over the whole batch instead of each row."""

    def forward(self, x, t):
        e = np.exp(x - np.max(x))
        self.y = e / np.sum(e)
        self.t = t
        return -np.sum(np.log(self.y[np.arange(len(t)), t] + 1e-7)) / len(t)

    def backward(self, dout=1):
        dx = self.y.copy()
        dx[np.arange(len(self.t)), self.t] -= 1
        return dx / len(self.t)


class NoMinusSoftmaxWithLoss(SoftmaxWithLoss):
    def forward(self, x, t, check=True):
        return -super().forward(x, t, check)  # cross entropy without its minus sign


class BookNet(BookTwoLayerNetMethods):
    """A reader's TwoLayerNet in plain NumPy, with pluggable last layer and loop order."""

    def __init__(self, last=None, reverse=True, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W1": 0.5 * rng.standard_normal((6, 5)), "b1": np.zeros(5),
                       "W2": 0.5 * rng.standard_normal((5, 5)), "b2": np.zeros(5)}
        self.layers = OrderedDict(Affine1=Affine(self.params["W1"], self.params["b1"]), Relu1=Relu(),
                                  Affine2=Affine(self.params["W2"], self.params["b2"]))
        self.lastLayer = last or SoftmaxWithLoss()
        self.reverse = reverse

    def backward_order(self, layers):
        return reversed(layers) if self.reverse else layers

def data():
    rng = np.random.default_rng(1)
    return rng.random((4, 6)), np.array([0, 3, 1, 4])


def test_correct_reader_net_passes():
    report = xpnet.gradcheck(BookNet(), *data())
    assert report.passed, str(report)


def test_mul_layer_written_with_plus():
    report = xpnet.gradcheck(MulLayerPlus(), np.float64(100.0), np.float64(2.0))
    assert not report.passed and not report["x"].passed


def test_sigmoid_without_parentheses():
    report = xpnet.gradcheck(SigmoidPrecedence(), np.linspace(-2, 2, 7))
    assert not report.passed


def test_batch_softmax_is_found_in_the_last_layer():
    report = xpnet.gradcheck(BookNet(last=BatchSoftmaxWithLoss()), *data())
    assert not report.passed
    assert report.culprits == ["BatchSoftmaxWithLoss"], str(report)
    assert max(r.max_rel for r in report.values()) > 1e-3


def test_cross_entropy_without_minus():
    report = xpnet.gradcheck(BookNet(last=NoMinusSoftmaxWithLoss()), *data())
    assert report.culprits == ["NoMinusSoftmaxWithLoss"], str(report)


def test_forgotten_reverse_is_blamed_on_the_wiring():
    report = xpnet.gradcheck(BookNet(reverse=False), *data())
    assert not report.passed and report.culprits == []
    assert any("reverse" in n for n in report.notes), str(report)


def test_backward_that_writes_into_dout_is_reported():
    class BookRelu:  # the book's common/layers.py Relu, verbatim: dout[self.mask] = 0 writes into dout
        def forward(self, x):
            self.mask = (x <= 0)
            out = x.copy()
            out[self.mask] = 0
            return out

        def backward(self, dout):
            dout[self.mask] = 0
            dx = dout
            return dx

    book_relu = BookRelu()
    report = xpnet.gradcheck(book_relu, np.linspace(-1, 1, 6))
    assert report["x"].passed  # the values are right ...
    assert not report.passed and "wrote into its dout" in report["backward"].reason  # ... but it fails, saying why


def test_a_float32_reader_net_is_flagged_not_silently_checked():
    net = BookNet()
    net.params = {k: v.astype(np.float32) for k, v in net.params.items()}
    report = xpnet.gradcheck(net, *data(), locate=False)
    assert report.dtype == "float32" and any("not float64" in n for n in report.notes)

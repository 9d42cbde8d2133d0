"""The bugs readers of the book really made (see shared/seeds), written as their NumPy layers.

gradcheck must fail on each and name the layer whose backward is wrong; the book's own Relu,
which writes into its dout but gives right gradients, passes with a warning. The nets are the
book's ``TwoLayerNet`` (``tests.book``) with a reader's layers or loop put in.
"""

from collections import OrderedDict

import numpy as np

import xpnet
from xpnet.layers import Affine, MulLayer, Relu, SoftmaxWithLoss

from .. import book


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


class BookNet(book.TwoLayerNet):
    """The book's TwoLayerNet of xpnet's layers, weights seeded, with a pluggable last layer."""

    def __init__(self, last=None, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W1": 0.5 * rng.standard_normal((6, 5)), "b1": np.zeros(5),
                       "W2": 0.5 * rng.standard_normal((5, 5)), "b2": np.zeros(5)}
        self.layers = OrderedDict(Affine1=Affine(self.params["W1"], self.params["b1"]), Relu1=Relu(),
                                  Affine2=Affine(self.params["W2"], self.params["b2"]))
        self.lastLayer = last or SoftmaxWithLoss()


class ForgotReverseNet(BookNet):
    """The reader's gradient() without the book's ``layers.reverse()``."""

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in self.layers.values():
            dout = layer.backward(dout)
        a1, a2 = self.layers["Affine1"], self.layers["Affine2"]
        return {"W1": a1.dW, "b1": a1.db, "W2": a2.dW, "b2": a2.db}


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
    report = xpnet.gradcheck(ForgotReverseNet(), *data())
    assert not report.passed and report.culprits == []
    assert any("reverse" in n for n in report.notes), str(report)


class BookLayerNet(book.TwoLayerNet):
    """The book's TwoLayerNet of the book's own layers: its Relu writes into dout, harmlessly here."""

    def __init__(self, relu=book.Relu, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W1": 0.5 * rng.standard_normal((6, 5)), "b1": np.zeros(5),
                       "W2": 0.5 * rng.standard_normal((5, 5)), "b2": np.zeros(5)}
        self.layers = OrderedDict()
        self.layers["Affine1"] = book.Affine(self.params["W1"], self.params["b1"])
        self.layers["Relu1"] = relu()
        self.layers["Affine2"] = book.Affine(self.params["W2"], self.params["b2"])
        self.lastLayer = book.SoftmaxWithLoss()


def test_the_books_relu_passes_with_a_warning_about_its_dout():
    report = xpnet.gradcheck(book.Relu(), np.linspace(-1, 1, 6))
    assert report.passed and report["x"].passed and list(report) == ["x"], str(report)
    (warning,) = report.warnings
    assert warning.startswith("Relu.backward modified its input dout")
    assert "a caller that reuses dout" in warning and "dx = dout.copy()" in warning and "dout * keep" in warning
    assert "PASSED" in str(report) and "warning: Relu.backward modified its input dout" in str(report)


def test_the_books_own_net_passes_with_the_warning_shown():
    report = xpnet.gradcheck(BookLayerNet(), *data())
    assert report.passed and bool(report) and report.culprits == [], str(report)
    assert str(report).startswith("gradient check (float64): PASSED")
    assert len(report.warnings) == 1 and report.warnings[0].startswith("Relu1.backward modified its input dout")
    assert "warning: Relu1.backward modified its input dout" in str(report)
    assert not report.notes, str(report)


def test_a_wrong_book_style_relu_still_fails_naming_the_layer():
    class InvertedMaskRelu(book.Relu):
        def backward(self, dout):
            dout[~self.mask] = 0  # zeroes what it should pass on
            return dout

    report = xpnet.gradcheck(BookLayerNet(relu=InvertedMaskRelu), *data())
    assert not report.passed and report.culprits == ["Relu1"], str(report)
    assert "Relu1.backward gives a wrong gradient of input x" in report.layers["Relu1"]["x"].reason
    assert "FAILED" in str(report) and "warning: Relu1.backward modified its input dout" in str(report)


class LazyBias:
    """out = x + b, with db summed from the dout it keeps: right alone, wrong once dout changes later."""

    def __init__(self, b):
        self.b = b

    def forward(self, x):
        return x + self.b

    def backward(self, dout):
        self.dout = dout
        return dout

    @property
    def db(self):
        return np.sum(self.dout, axis=0)


class KeptDoutNet(BookLayerNet):
    def __init__(self):
        super().__init__()
        self.params["c"] = 0.1 * np.arange(5.0)
        self.layers = OrderedDict(Affine1=self.layers["Affine1"], Relu1=self.layers["Relu1"],
                                  Bias1=LazyBias(self.params["c"]), Affine2=self.layers["Affine2"])

    def gradient(self, x, t):
        grads = super().gradient(x, t)
        grads["c"] = self.layers["Bias1"].db  # read after Relu1.backward zeroed the dout it kept
        return grads


def test_a_dout_write_that_changes_the_nets_gradient_fails():
    report = xpnet.gradcheck(KeptDoutNet(), *data())
    assert not report.passed and not report["c"].passed and report.culprits == [], str(report)
    assert all(report[k].passed for k in ("W1", "b1", "W2", "b2")), str(report)
    assert any("Relu1.backward then modified" in n for n in report.notes), str(report)
    assert report.warnings[0].startswith("Relu1.backward modified its input dout")


def test_a_float32_reader_net_is_flagged_not_silently_checked():
    net = BookNet()
    net.params = {k: v.astype(np.float32) for k, v in net.params.items()}
    report = xpnet.gradcheck(net, *data(), locate=False)
    assert report.dtype == "float32" and any("not float64" in n for n in report.notes)

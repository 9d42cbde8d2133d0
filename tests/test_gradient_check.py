"""xpnet/gradient_check.py: gradcheck against the mistakes readers make when they write the book's
layers themselves.

Each wrong layer must FAIL with a reason naming the gradient, the layer and the fix; each correct
layer must pass (no false alarms). The layers are written once against the Array API
(``array_namespace(x)`` inside, as a reader targeting it would) and run on every device of the
``dev`` fixture; a few are plain NumPy, the way the book's readers write them, on the book's own
Affine and TwoLayerNet (``tests.book``).
"""

import re
from collections import OrderedDict

import numpy as np
import pytest
from array_api_compat import array_namespace

import xpnet
from xpnet.gradient_check import GradResult

from . import book

N, D, M = 4, 3, 5  # batch, inputs, outputs: all different, so a wrong axis shows in the shape


def arr(dev, shape, seed=0, scale=1.0):
    return dev.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, dtype="float64")


def assert_ok(report):
    assert report.passed, str(report)
    assert all(r.reason == "" for r in report.values()), str(report)


def assert_fails(report, key, *words):
    """``report[key]`` is a real failure whose reason holds every word."""
    assert not report.passed, str(report)
    r = report[key]
    assert not r.passed and not r.inconclusive, str(report)
    for w in words:
        assert w in r.reason, f"{w!r} not in: {r.reason}"


# ---------------------------------------------------------------------------------------------
# layers written against the Array API
# ---------------------------------------------------------------------------------------------
class Affine:
    """The book's Affine; subclasses below each change one line of backward."""

    def __init__(self, W, b):
        self.W, self.b = W, b
        self.x = self.dW = self.db = None

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        xp = array_namespace(dout)
        self.dW = self.x.T @ dout
        self.db = xp.sum(dout, axis=0)
        return dout @ self.W.T


class AffineCaching(Affine):
    """Correct, keeps a copy of x and its dx: cached arrays are not parameters."""

    def forward(self, x):
        self.x = array_namespace(x).asarray(x, copy=True)
        return x @ self.W + self.b

    def backward(self, dout):
        self.dx = super().backward(dout)
        return self.dx


class AffineDbIsDout(Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = dout
        return dx


class AffineDbScalar(Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = array_namespace(dout).sum(dout)
        return dx


class AffineDbWrongAxis(Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = array_namespace(dout).sum(dout, axis=1)
        return dx


class AffineDbMean(Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = array_namespace(dout).mean(dout, axis=0)
        return dx


class AffineDWTransposed(Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.dW = dout.T @ self.x
        return dx


class AffineDWMean(Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.dW = self.x.T @ dout / dout.shape[0]
        return dx


class AffineDxNotTransposed(Affine):
    """dx = dout @ W (works only by shape accident when W is square)."""

    def backward(self, dout):
        super().backward(dout)
        return dout @ self.W


class AffineForgetsDb:
    """Never sets db at all."""

    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        return dout @ self.W.T


class AffineDbNone(Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = None
        return dx


class AffineUsesACopyOfW(Affine):
    """forward reads a copy taken at construction: W no longer influences anything."""

    def __init__(self, W, b):
        super().__init__(W, b)
        self.W_used = array_namespace(W).asarray(W, copy=True)

    def forward(self, x):
        self.x = x
        return x @ self.W_used + self.b


class Relu:
    def forward(self, x):
        xp = array_namespace(x)
        self.mask = x <= 0
        return xp.where(self.mask, xp.zeros_like(x), x)

    def backward(self, dout):
        xp = array_namespace(dout)
        return xp.where(self.mask, xp.zeros_like(dout), dout)


class ReluNoMask(Relu):
    def backward(self, dout):
        return dout * 1.0


class ReluInPlace:
    """Softmax-style shift written in place: forward changes the caller's x."""

    def forward(self, x):
        xp = array_namespace(x)
        x -= xp.max(x, axis=1, keepdims=True)
        return xp.exp(x)

    def backward(self, dout):
        return dout


class Sigmoid:
    def forward(self, x):
        xp = array_namespace(x)
        self.out = 1.0 / (1.0 + xp.exp(-x))
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class SigmoidForgetsY(Sigmoid):
    def backward(self, dout):
        return dout * (1.0 - self.out)


class Tanh:
    def forward(self, x):
        self.out = array_namespace(x).tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out ** 2)


class TanhOneMinusY(Tanh):
    def backward(self, dout):
        return dout * (1.0 - self.out)


class SoftmaxWithLoss:
    """t: one-hot rows (float)."""

    def forward(self, x, t):
        xp = array_namespace(x)
        z = x - xp.max(x, axis=1, keepdims=True)
        e = xp.exp(z)
        self.y = e / xp.sum(e, axis=1, keepdims=True)
        self.t = t
        return -xp.sum(t * xp.log(self.y)) / x.shape[0]

    def backward(self, dout=1):
        return (self.y - self.t) * dout / self.t.shape[0]


class SoftmaxNotDividedByN(SoftmaxWithLoss):
    def backward(self, dout=1):
        return (self.y - self.t) * dout


class SoftmaxDividedTwice(SoftmaxWithLoss):
    def backward(self, dout=1):
        n = self.t.shape[0]
        return (self.y - self.t) * dout / n / n


class BatchNormalization:
    """The book's BatchNormalization (2-D input); testing mode uses the running statistics."""

    def __init__(self, gamma, beta, momentum=0.9):
        self.gamma, self.beta, self.momentum = gamma, beta, momentum
        self.running_mean = self.running_var = None

    def forward(self, x, train_flg=True):
        xp = array_namespace(x)
        if self.running_mean is None:
            self.running_mean = xp.zeros(x.shape[1], dtype=x.dtype, device=x.device)
            self.running_var = xp.zeros(x.shape[1], dtype=x.dtype, device=x.device)
        if not train_flg:
            return self.gamma * (x - self.running_mean) / xp.sqrt(self.running_var + 1e-7) + self.beta
        mu = xp.mean(x, axis=0)
        self.xc = x - mu
        var = xp.mean(self.xc ** 2, axis=0)
        self.std = xp.sqrt(var + 1e-7)
        self.xn = self.xc / self.std
        self.batch_size = x.shape[0]
        self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
        self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        return self.gamma * self.xn + self.beta

    def backward(self, dout):
        xp = array_namespace(dout)
        self.dbeta = xp.sum(dout, axis=0)
        self.dgamma = xp.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -xp.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc = dxc + self._dvar_term(dvar)
        dmu = xp.sum(dxc, axis=0)
        return dxc - dmu / self.batch_size

    def _dvar_term(self, dvar):
        return (2.0 / self.batch_size) * self.xc * dvar


class BatchNormMissingVarTerm(BatchNormalization):
    def _dvar_term(self, dvar):
        return 0.0 * dvar


class DropoutFixedMask:
    """Correct: the mask is drawn once (seeded), so forward is a fixed function."""

    def __init__(self, shape, ratio=0.5, seed=3):
        self.keep = np.random.default_rng(seed).random(shape) > ratio

    def _mask(self, like):
        xp = array_namespace(like)
        return xp.asarray(self.keep.astype(np.float64), dtype=like.dtype, device=like.device)

    def forward(self, x):
        return x * self._mask(x)

    def backward(self, dout):
        return dout * self._mask(dout)


class DropoutFreshMaskInBackward(DropoutFixedMask):
    def __init__(self, shape, ratio=0.5, seed=3):
        super().__init__(shape, ratio, seed)
        self.rng = np.random.default_rng(seed + 1)

    def backward(self, dout):
        fresh = self.rng.random(self.keep.shape) > 0.5
        xp = array_namespace(dout)
        return dout * xp.asarray(fresh.astype(np.float64), dtype=dout.dtype, device=dout.device)


class DropoutFreshMaskInForward:
    def __init__(self, seed=5):
        self.rng = np.random.default_rng(seed)

    def forward(self, x):
        xp = array_namespace(x)
        m = self.rng.random(tuple(x.shape)) > 0.5
        self.mask = xp.asarray(m.astype(np.float64), dtype=x.dtype, device=x.device)
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class Mul:
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x


class MulSwapped(Mul):
    def backward(self, dout):
        return dout * self.x, dout * self.y


class Add:
    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        return dout * 1.0, dout * 1.0


class Scale:
    """Declares its parameters: out = x * weight + bias, gradients dweight, dbias."""

    param_names = ("weight", "bias")

    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias
        self.W = weight * 2.0  # a floating array named like a book parameter, but not declared

    def forward(self, x):
        self.x = x
        return x * self.weight + self.bias

    def backward(self, dout):
        xp = array_namespace(dout)
        self.dweight = xp.sum(dout * self.x, axis=0)
        self.dbias = xp.sum(dout, axis=0)
        return dout * self.weight


class ScaleDbiasNotSummed(Scale):
    def backward(self, dout):
        dx = super().backward(dout)
        self.dbias = dout
        return dx


class MatVec:
    """forward(W) with a parameter also called W: both are checked, under distinct keys."""

    def __init__(self, W):
        self.W = W

    def forward(self, W):
        self.inp = W
        return W @ self.W

    def backward(self, dout):
        self.dW = self.inp.T @ dout
        return dout @ self.W.T


def affine_args(dev, d=D, m=M):
    return arr(dev, (d, m), 1), arr(dev, (m,), 2), arr(dev, (N, d), 3)


# ---------------------------------------------------------------------------------------------
# correct layers pass
# ---------------------------------------------------------------------------------------------
def test_correct_affine_passes_and_checks_exactly_its_parameters(dev):
    W, b, x = affine_args(dev)
    report = xpnet.gradcheck(Affine(W, b), x)
    assert_ok(report)
    assert set(report) == {"x", "W", "b"}


def test_affine_caching_x_and_dx_is_not_a_false_alarm(dev):
    W, b, x = affine_args(dev)
    report = xpnet.gradcheck(AffineCaching(W, b), x)
    assert_ok(report)
    assert set(report) == {"x", "W", "b"}  # the cached x/dx are no parameter, the input x is kept


@pytest.mark.parametrize("layer", [Relu, Sigmoid, Tanh])
def test_correct_activations_pass(dev, layer):
    x = arr(dev, (N, D), 4, scale=2.0)  # standard normal draws: no exact 0
    assert_ok(xpnet.gradcheck(layer(), x))


def test_correct_batchnorm_in_train_mode_passes(dev):
    layer = BatchNormalization(arr(dev, (D,), 5), arr(dev, (D,), 6))
    report = xpnet.gradcheck(layer, arr(dev, (N, D), 7))
    assert_ok(report)
    assert set(report) == {"x", "gamma", "beta"}  # running_mean/var, xc, std, xn are no parameters


def test_dropout_with_a_fixed_mask_passes(dev):
    assert_ok(xpnet.gradcheck(DropoutFixedMask((N, D)), arr(dev, (N, D), 8)))


def test_correct_softmax_with_loss_passes(dev):
    t = dev.asarray(np.eye(M)[[0, 3, 1, 4]], dtype="float64")
    report = xpnet.gradcheck(SoftmaxWithLoss(), arr(dev, (N, M), 9), t)
    assert_ok(report)
    assert set(report) == {"x"}  # the labels are data


def test_correct_mul_and_add_pass(dev):
    x, y = arr(dev, (N, D), 10), arr(dev, (N, D), 11)
    assert_ok(xpnet.gradcheck(Mul(), x, y))
    assert_ok(xpnet.gradcheck(Add(), x, y))


def test_declared_param_names_are_the_parameters(dev):
    with dev.scope():  # the layer's constructor computes: on cuda:N, on GPU N
        layer = Scale(arr(dev, (D,), 12), arr(dev, (D,), 13))
    report = xpnet.gradcheck(layer, arr(dev, (N, D), 14))
    assert_ok(report)
    assert set(report) == {"x", "weight", "bias"}  # W is not declared, so not a parameter


def test_an_input_named_like_a_parameter_keeps_both(dev):
    report = xpnet.gradcheck(MatVec(arr(dev, (D, M), 15)), arr(dev, (N, D), 16))
    assert_ok(report)
    assert set(report) == {"W", "param W"}


# ---------------------------------------------------------------------------------------------
# a gradient of the wrong shape, or none, fails saying both shapes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer, got", [
    (AffineDbIsDout, (N, M)),
    (AffineDbScalar, ()),
    (AffineDbWrongAxis, (N,)),
])
def test_bias_gradient_of_the_wrong_shape_fails(dev, layer, got):
    W, b, x = affine_args(dev)
    report = xpnet.gradcheck(layer(W, b), x)
    assert_fails(report, "b", "db", layer.__name__, "shape", str(got), str((M,)))
    assert report["x"].passed and report["W"].passed


def test_transposed_dW_of_a_non_square_W_fails_on_its_shape(dev):
    W, b, x = affine_args(dev)
    report = xpnet.gradcheck(AffineDWTransposed(W, b), x)
    assert_fails(report, "W", "dW", "AffineDWTransposed", "shape", str((M, D)), str((D, M)))


def test_transposed_dW_of_a_square_W_fails_on_its_values(dev):
    W, b, x = affine_args(dev, d=M, m=M)
    report = xpnet.gradcheck(AffineDWTransposed(W, b), x)
    assert_fails(report, "W", "wrong dW", "AffineDWTransposed.backward", "fix")
    assert report["b"].passed and report["x"].passed


def test_dx_with_W_not_transposed_fails_on_a_square_W(dev):
    W, b, x = affine_args(dev, d=M, m=M)
    assert_fails(xpnet.gradcheck(AffineDxNotTransposed(W, b), x), "x", "input x", "AffineDxNotTransposed")


@pytest.mark.parametrize("layer, key", [(AffineDbMean, "b"), (AffineDWMean, "W")])
def test_mean_instead_of_sum_fails(dev, layer, key):
    W, b, x = affine_args(dev)
    assert_fails(xpnet.gradcheck(layer(W, b), x), key, f"wrong d{key}", layer.__name__)


def test_a_missing_gradient_fails(dev):
    W, b, x = affine_args(dev)
    report = xpnet.gradcheck(AffineForgetsDb(W, b), x)
    assert_fails(report, "b", "no gradient db", "AffineForgetsDb", "self.db")
    assert report["W"].passed


def test_a_gradient_left_none_fails(dev):
    W, b, x = affine_args(dev)
    assert_fails(xpnet.gradcheck(AffineDbNone(W, b), x), "b", "db is None", "AffineDbNone")


def test_a_declared_parameter_with_a_wrong_gradient_shape_fails(dev):
    with dev.scope():
        layer = ScaleDbiasNotSummed(arr(dev, (D,), 12), arr(dev, (D,), 13))
    report = xpnet.gradcheck(layer, arr(dev, (N, D), 14))
    assert_fails(report, "bias", "dbias", "ScaleDbiasNotSummed", "shape")


def test_a_parameter_forward_does_not_read_fails(dev):
    W, b, x = affine_args(dev)
    with dev.scope():
        layer = AffineUsesACopyOfW(W, b)
    report = xpnet.gradcheck(layer, x)
    assert_fails(report, "W", "does not influence", "AffineUsesACopyOfW")
    assert report["b"].passed


# ---------------------------------------------------------------------------------------------
# wrong values
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [ReluNoMask, SigmoidForgetsY, TanhOneMinusY])
def test_wrong_activation_backward_fails(dev, layer):
    assert_fails(xpnet.gradcheck(layer(), arr(dev, (N, D), 4)), "x", "wrong", layer.__name__)


@pytest.mark.parametrize("layer", [SoftmaxNotDividedByN, SoftmaxDividedTwice])
def test_softmax_with_a_wrong_batch_division_fails(dev, layer):
    t = dev.asarray(np.eye(M)[[0, 3, 1, 4]], dtype="float64")
    assert_fails(xpnet.gradcheck(layer(), arr(dev, (N, M), 9), t), "x", "wrong", layer.__name__)


def test_batchnorm_missing_the_variance_term_fails_on_x_only(dev):
    layer = BatchNormMissingVarTerm(arr(dev, (D,), 5), arr(dev, (D,), 6))
    report = xpnet.gradcheck(layer, arr(dev, (N, D), 7))
    assert_fails(report, "x", "wrong", "BatchNormMissingVarTerm")
    assert report["gamma"].passed and report["beta"].passed


def test_a_fresh_dropout_mask_in_backward_is_a_wrong_gradient(dev):
    report = xpnet.gradcheck(DropoutFreshMaskInBackward((N, D)), arr(dev, (N, D), 8))
    assert_fails(report, "x", "wrong", "DropoutFreshMaskInBackward")


def test_mul_with_swapped_gradients_fails_on_both(dev):
    report = xpnet.gradcheck(MulSwapped(), arr(dev, (N, D), 10), arr(dev, (N, D), 11))
    assert_fails(report, "x", "MulSwapped")
    assert_fails(report, "y", "MulSwapped")


# ---------------------------------------------------------------------------------------------
# verdicts that cannot be a number: each says why
# ---------------------------------------------------------------------------------------------
def test_forward_writing_into_its_input_fails(dev):
    x = arr(dev, (N, D), 17)
    report = xpnet.gradcheck(ReluInPlace(), x)
    assert_fails(report, "x", "ReluInPlace.forward writes into its input x", "copy")


def test_random_forward_fails_as_uncheckable(dev):
    report = xpnet.gradcheck(DropoutFreshMaskInForward(), arr(dev, (N, D), 18))
    assert_fails(report, "forward", "DropoutFreshMaskInForward", "forward is random", "dropout mask",
                 "hold_mask", "dropout off")


def test_an_input_on_the_relu_kink_is_inconclusive_not_wrong(dev):
    xh = np.random.default_rng(19).standard_normal((N, D))
    xh[1, 2] = 0.0
    report = xpnet.gradcheck(Relu(), dev.asarray(xh, dtype="float64"))
    r = report["x"]
    assert not report.passed and not r.passed and r.inconclusive, str(report)
    assert r.worst_index == (1, 2)
    assert "x[1, 2] = 0 sits on a kink" in r.reason and "move the input off the kink" in r.reason
    xh[1, 2] = 0.5
    assert_ok(xpnet.gradcheck(Relu(), dev.asarray(xh, dtype="float64")))


def test_a_result_prints_its_reason():
    r = GradResult("b", (5,), float("inf"), float("inf"), False, (), "db has shape (4, 5) but b has shape (5,)")
    assert "FAIL" in str(r) and "db has shape (4, 5)" in str(r)


# ---------------------------------------------------------------------------------------------
# plain NumPy, the way the book's readers write it
# ---------------------------------------------------------------------------------------------
class NpAffineCopy(book.Affine):
    def forward(self, x):
        return super().forward(x.copy())

    def backward(self, dout):
        self.dx = super().backward(dout)
        return self.dx


class NpAffineDbIsDout(book.Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = dout
        return dx


class NpAffineDbSum(book.Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = np.sum(dout)
        return dx


class NpAffineDbAxis1(book.Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = np.sum(dout, axis=1)
        return dx


class NpAffineDWTransposed(book.Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.dW = np.dot(dout.T, self.x)
        return dx


class NpSoftmaxWithLoss:
    def forward(self, x, t):
        self.t = t
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.y = e / e.sum(axis=1, keepdims=True)
        return -np.sum(np.log(self.y[np.arange(len(t)), t])) / len(t)

    def backward(self, dout=1):
        dx = self.y.copy()
        dx[np.arange(len(self.t)), self.t] -= 1
        return dx * dout / len(self.t)


class NpDropout:
    def __init__(self, ratio=0.5):
        self.ratio = ratio

    def forward(self, x, train_flg=True):
        self.mask = np.random.rand(*x.shape) > self.ratio
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class NpDropoutBackwardDraws(NpDropout):
    """A reader's bug: backward draws a new mask instead of using forward's."""

    def backward(self, dout):
        return dout * (np.random.rand(*dout.shape) > self.ratio)


class ReaderNet(book.TwoLayerNet):
    """A reader's TwoLayerNet (6 -> 5 -> 3, batch 4) with pluggable Affine classes: the book's methods."""

    def __init__(self, affine1=book.Affine, affine2=book.Affine, seed=0, sizes=(6, 5, 3)):
        i, h, o = sizes
        rng = np.random.default_rng(seed)
        self.params = {"W1": 0.5 * rng.standard_normal((i, h)), "b1": 0.1 * rng.standard_normal(h),
                       "W2": 0.5 * rng.standard_normal((h, o)), "b2": 0.1 * rng.standard_normal(o)}
        self.build(affine1, affine2)
        self.lastLayer = NpSoftmaxWithLoss()

    def build(self, affine1=book.Affine, affine2=book.Affine):
        p = self.params
        self.layers = OrderedDict(Affine1=affine1(p["W1"], p["b1"]), Relu1=book.NpRelu(),
                                  Affine2=affine2(p["W2"], p["b2"]))


def net_data(n=4, d=6, c=3):
    rng = np.random.default_rng(1)
    return rng.random((n, d)), rng.integers(0, c, n)


def test_numpy_reader_layers():
    rng = np.random.default_rng(0)
    W, b, x = rng.standard_normal((D, M)), rng.standard_normal(M), rng.standard_normal((N, D))
    for ok in (book.Affine, NpAffineCopy):
        report = xpnet.gradcheck(ok(W, b), x)
        assert_ok(report)
        assert set(report) == {"x", "W", "b"}
    for bad, got in ((NpAffineDbIsDout, (N, M)), (NpAffineDbSum, ()), (NpAffineDbAxis1, (N,))):
        assert_fails(xpnet.gradcheck(bad(W, b), x), "b", "db", bad.__name__, "shape", str(got))
    assert_fails(xpnet.gradcheck(NpAffineDWTransposed(W, b), x), "W", "dW", "shape", str((M, D)))
    state = np.random.get_state()
    assert_ok(xpnet.gradcheck(NpDropout(), x))  # np.random's draws, rewound before each forward
    assert np.array_equal(np.random.get_state()[1], state[1])  # and left where they stood
    assert_fails(xpnet.gradcheck(NpDropoutBackwardDraws(), x), "x", "NpDropoutBackwardDraws", "wrong")


def test_correct_numpy_reader_net_passes():
    report = xpnet.gradcheck(ReaderNet(), *net_data())
    assert report.passed, str(report)
    assert set(report) == {"W1", "b1", "W2", "b2"}
    assert set(report.layers) == {"Affine1", "Relu1", "Affine2", "NpSoftmaxWithLoss"}


@pytest.mark.parametrize("bad, key", [
    (NpAffineDbIsDout, "b"), (NpAffineDbSum, "b"), (NpAffineDbAxis1, "b"), (NpAffineDWTransposed, "W"),
])
@pytest.mark.parametrize("where", ["Affine1", "Affine2"])
def test_a_wrong_shape_in_a_net_names_the_layer(bad, key, where):
    net = ReaderNet(**{where.lower(): bad})
    report = xpnet.gradcheck(net, *net_data())
    assert not report.passed
    assert report.culprits == [where], str(report)
    k = key + where[-1]
    assert not report[k].passed and "shape" in report[k].reason and k in report[k].reason, str(report)
    layer_res = report.layers[where][key]
    assert "shape" in layer_res.reason and f"d{key}" in layer_res.reason and where in layer_res.reason
    assert not any("reverse" in n for n in report.notes)


def test_a_transposed_square_dW_in_a_net_names_the_layer():
    net = ReaderNet(affine2=NpAffineDWTransposed, sizes=(6, 5, 5))
    report = xpnet.gradcheck(net, *net_data(c=5))
    assert report.culprits == ["Affine2"], str(report)
    assert "wrong dW" in report.layers["Affine2"]["W"].reason


def test_rebinding_the_parameters_fails_naming_them():
    net = ReaderNet()
    x, t = net_data()
    grads = net.gradient(x, t)
    for k in net.params:
        net.params[k] = net.params[k] - 0.1 * grads[k]  # the layers keep the old arrays
    report = xpnet.gradcheck(net, x, t)
    assert not report.passed
    for k in ("W1", "b1", "W2", "b2"):
        assert f"params['{k}'] does not influence the loss" in report[k].reason, str(report)
        assert "params[k] -= lr * g" in report[k].reason and "no layer" in report[k].reason
    assert not any("reverse" in n for n in report.notes)


def test_updating_in_place_passes():
    net = ReaderNet()
    x, t = net_data()
    grads = net.gradient(x, t)
    for k in net.params:
        net.params[k] -= 0.1 * grads[k]
    assert xpnet.gradcheck(net, x, t).passed


def test_a_random_layer_in_a_net_is_named():
    net = ReaderNet()
    net.layers["Dropout1"] = DropoutFreshMaskInForward()  # its own generator: nothing can hold it
    report = xpnet.gradcheck(net, *net_data())
    assert not report.passed
    assert "net.loss is random" in report["forward"].reason
    assert "forward is random" in report.layers["Dropout1"]["forward"].reason
    assert report.culprits == ["Dropout1"], str(report)


def test_the_books_dropout_in_a_net_is_checked_at_one_mask_and_a_fresh_mask_in_backward_is_named():
    net = ReaderNet()
    net.layers["Dropout1"] = NpDropout()  # np.random.rand(*x.shape) > ratio, the book's
    assert xpnet.gradcheck(net, *net_data()).passed
    net.layers["Dropout1"] = NpDropoutBackwardDraws()
    report = xpnet.gradcheck(net, *net_data())
    assert report.culprits == ["Dropout1"], str(report)


def test_a_relu_kink_in_a_net_is_not_blamed_on_a_layer():
    net = ReaderNet()
    net.params["b1"][...] = 0.0
    x, t = net_data()
    x[0] = 0.0  # the hidden pre-activations of sample 0 are exactly 0
    report = xpnet.gradcheck(net, x, t)
    assert not report.passed
    assert report.culprits == [], str(report)
    assert report.layers["Relu1"]["x"].inconclusive and "kink" in report.layers["Relu1"]["x"].reason
    assert report["b1"].inconclusive and "b1[" in report["b1"].reason and "kink" in report["b1"].reason
    assert not any("reverse" in n for n in report.notes)


# ---------------------------------------------------------------------------------------------
# xpnet's own nets, on every device
# ---------------------------------------------------------------------------------------------
def small_net(dev, dtype):
    net = xpnet.TwoLayerNet(6, 5, 3, weight_init_std=0.5, device=dev, dtype=dtype, seed=0)
    xh, th = net_data()
    return net, dev.asarray(xh, dtype=dtype), dev.asarray(th)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rebinding_an_xpnet_net_fails_naming_the_parameter(dev, dtype):
    net, x, t = small_net(dev, dtype)
    g = net.gradient(x, t)
    with dev.scope():  # a reader's own arithmetic: on cuda:N, inside its scope
        net.params["W1"] = net.params["W1"] - 0.1 * g["W1"]
    report = xpnet.gradcheck(net, x, t)
    assert not report.passed
    assert "params['W1'] does not influence the loss" in report["W1"].reason, str(report)
    assert "reverse order" not in str(report)  # the reason is known: no guessing at the wiring
    with pytest.raises(ValueError, match=r"params\['W1'\] is held by no layer"):
        net.gradient(x, t)  # and the net itself refuses to compute a gradient that trains nothing


def test_a_replaced_layer_of_an_xpnet_net_is_the_one_checked(dev):
    net, x, t = small_net(dev, "float64")
    net.layers["Relu1"] = ReluNoMask()
    report = xpnet.gradcheck(net, x, t)
    assert not report.passed
    assert report.culprits == ["Relu1"], str(report)
    assert "ReluNoMask" not in report.layers["Relu1"]["x"].reason  # named as the net names it
    assert "Relu1.backward gives a wrong" in report.layers["Relu1"]["x"].reason


# ---------------------------------------------------------------------------------------------
# xpnet's chapter-6 layers and nets, on every device: modes, masks and the readers' chapter-6 bugs
# ---------------------------------------------------------------------------------------------
def data(dev, n=6, d=8, c=4, seed=3):
    return arr(dev, (n, d), seed), dev.asarray(np.arange(n) % c)


def test_a_net_with_batchnorm_dropout_and_weight_decay_passes_gradcheck(dev):
    net = xpnet.MultiLayerNetExtend([8, 6, 5, 4], use_dropout=True, dropout_ratio=0.3, use_batchnorm=True,
                                    weight_decay_lambda=0.1, device=dev, seed=0)
    running = dev.to_numpy(net.layers["BatchNorm1"].running_mean)
    report = xpnet.gradcheck(net, *data(dev))
    assert report.passed, str(report)
    assert {"gamma1", "beta2", "W3"} <= set(report) and "Dropout2" in report.layers
    np.testing.assert_array_equal(dev.to_numpy(net.layers["BatchNorm1"].running_mean), running)  # put back


def test_the_books_batch_norm_gradient_check_is_a_kink_not_a_bug(dev):
    """ch06/batch_norm_gradient_check.py checks one sample: batch norm then outputs beta = 0 exactly,
    every ReLU sits on its kink, and the book's diffs are near 0 except beta2's."""
    net = xpnet.MultiLayerNetExtend(input_size=8, hidden_size_list=[6, 6], output_size=4, use_batchnorm=True,
                                    device=dev, seed=0)
    x, t = data(dev, n=1)
    report = xpnet.gradcheck(net, x, t)
    assert not report.passed and report.culprits == [], str(report)
    assert report["beta2"].inconclusive and "kink" in report["beta2"].reason, str(report)
    assert all(r.passed or r.inconclusive for r in report.values()), str(report)


class BatchNormWithoutDmu(xpnet.layers.BatchNormalization):
    """A reader's bug: dx = dxc, the mean's share of the gradient left out."""

    def _backward(self, dout):
        xp = self.xp
        self.dbeta, self.dgamma = xp.sum(dout, axis=0), xp.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -xp.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dxc += (2.0 / self.batch_size) * self.xc * (0.5 * dstd / self.std)
        return dxc


class BatchNormOverFeatures(xpnet.layers.BatchNormalization):
    """A reader's bug: the statistics per sample (axis 1), forward and backward consistent with it."""

    def _forward(self, x, train_flg):
        xp = self.xp
        self.xc = x - xp.mean(x, axis=1, keepdims=True)
        self.std = xp.sqrt(xp.mean(self.xc ** 2, axis=1, keepdims=True) + self.eps)
        self.xn = self.xc / self.std
        return self.gamma * self.xn + self.beta

    def _backward(self, dout):
        xp, d = self.xp, self.xc.shape[1]
        self.dbeta, self.dgamma = xp.sum(dout, axis=0), xp.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -xp.sum((dxn * self.xc) / (self.std * self.std), axis=1, keepdims=True)
        dxc += (2.0 / d) * self.xc * (0.5 * dstd / self.std)
        return dxc - xp.sum(dxc, axis=1, keepdims=True) / d


class BatchNormTestingOnBatch(xpnet.layers.BatchNormalization):
    """A reader's bug: testing mode normalises with the batch's own statistics."""

    def _forward(self, x, train_flg):
        return super()._forward(x, True)


class DropoutBackwardDraws(xpnet.layers.Dropout):
    """A reader's bug: backward draws a mask of its own instead of forward's."""

    def backward(self, dout):
        return dout * self.xp.astype(self.generator(dout).uniform(dout.shape, dout.dtype) > self.dropout_ratio,
                                     dout.dtype)


def net_with(dev, layer_class, kind):
    net = xpnet.MultiLayerNetExtend([8, 6, 4], use_dropout=kind == "dropout", use_batchnorm=kind == "batchnorm",
                                    device=dev, seed=1)
    name = "BatchNorm1" if kind == "batchnorm" else "Dropout1"
    old = net.layers[name]
    net.layers[name] = layer_class(old.gamma, old.beta) if kind == "batchnorm" else layer_class(0.5, seed=2)
    return net, name


@pytest.mark.parametrize("bug, kind, result, words", [
    (BatchNormWithoutDmu, "batchnorm", "x", ["BatchNorm1.backward gives a wrong gradient of input x"]),
    (BatchNormOverFeatures, "batchnorm", "normalised axis", ["does not normalise each feature over the batch",
                                                             "axis 0"]),
    (BatchNormTestingOnBatch, "batchnorm", "testing mode", ["train_flg=False", "running"]),
    (DropoutBackwardDraws, "dropout", "x", ["Dropout1.backward gives a wrong gradient of input x"]),
])
def test_the_readers_chapter6_bugs_are_named(dev, bug, kind, result, words):
    net, name = net_with(dev, bug, kind)
    report = xpnet.gradcheck(net, *data(dev))
    assert not report.passed and report.culprits == [name], str(report)
    reason = report.layers[name][result].reason
    assert all(w in reason for w in words), reason
    fine, _ = net_with(dev, xpnet.layers.BatchNormalization if kind == "batchnorm" else xpnet.layers.Dropout, kind)
    assert xpnet.gradcheck(fine, *data(dev)).passed  # the same net with the right layer


class DecayInLossOnly(xpnet.MultiLayerNet):
    def gradient(self, x, t):
        g = super().gradient(x, t)
        return {k: g[k] - self.weight_decay_lambda * self.params[k] if k.startswith("W") else g[k] for k in g}


class DecayOnBiasesToo(xpnet.MultiLayerNet):
    def gradient(self, x, t):
        g = super().gradient(x, t)
        return {k: g[k] + self.weight_decay_lambda * self.params[k] if k.startswith("b") else g[k] for k in g}


@pytest.mark.parametrize("cls, key, words", [(DecayInLossOnly, "W1", "lacks the weight decay"),
                                             (DecayOnBiasesToo, "b1", "adds weight decay the loss does not have")])
def test_weight_decay_bugs_are_named(dev, cls, key, words):
    net = cls([8, 6, 4], weight_decay_lambda=0.5, weight_init=0.5, device=dev, seed=0)
    with dev.scope():
        net.params["b1"][...] = 0.3  # a bias the decay would move
    report = xpnet.gradcheck(net, *data(dev))
    assert not report.passed and not report[key].passed, str(report)
    assert words in report[key].reason, report[key].reason


# ---------------------------------------------------------------------------------------------
# the machinery itself
# ---------------------------------------------------------------------------------------------
def test_float32_check_has_tolerances_that_fit(dev):
    W, b, x = affine_args(dev)
    assert xpnet.gradcheck(Affine(W, b), x, dtype="float32").passed
    assert not xpnet.gradcheck(AffineDbMean(W, b), x, dtype="float32").passed


def test_a_net_whose_forward_writes_into_x_fails():
    class ShiftInPlace:
        def forward(self, x):
            x -= 1.0
            return x

        def backward(self, dout):
            return dout

    net = ReaderNet()
    net.layers = OrderedDict([("Shift", ShiftInPlace())] + list(net.layers.items()))
    report = xpnet.gradcheck(net, *net_data())
    assert "net.loss wrote into its input x" in report["forward"].reason
    assert report.culprits == ["Shift"] and "writes into its input x" in report.layers["Shift"]["x"].reason


def test_the_report_prints_every_reason():
    W, b, x = affine_args(xpnet.device("cpu"))
    text = str(xpnet.gradcheck(AffineDbWrongAxis(W, b), x))
    assert "FAILED" in text and "db has shape (4,) but b has shape (5,)" in text


def test_gradcheck_fails_a_backward_that_leaves_out_an_input():
    class HalfMul:
        def forward(self, x, y):
            self.x, self.y = x, y
            return x * y

        def backward(self, dout):
            return (dout * self.y,)  # the gradient for y is missing

    report = xpnet.gradcheck(HalfMul(), np.array([1.0, 2.0]), np.array([3.0, -1.0]))
    assert not report.passed and "none for its input y" in report["y"].reason


def test_the_check_is_xpnet_gradcheck():
    from xpnet.gradient_check import GradcheckReport, gradcheck

    assert gradcheck is xpnet.gradcheck and GradcheckReport is xpnet.GradcheckReport


def test_a_kink_does_not_hide_a_wrong_gradient_elsewhere(dev):
    class ReluWrongSlope(Relu):  # right mask, slope 1.001 where it should be 1
        def backward(self, dout):
            return super().backward(dout) * 1.001

    xh = np.abs(np.random.default_rng(21).standard_normal((N, D)))
    xh[0, 0] = 0.0  # the kink's error (half the slope) is the largest, the wrong slope's much smaller
    report = xpnet.gradcheck(ReluWrongSlope(), dev.asarray(xh, dtype="float64"))
    assert report["x"].worst_index == (0, 0)
    assert_fails(report, "x", "ReluWrongSlope.backward gives a wrong gradient of input x")
    assert "x[0, 0]" not in report["x"].reason


# -- convnets: a correct ReLU -> Pool net passes; a reader's typical conv bugs are named ---------
def _out_hw(x, FH, FW, s, p):
    return (x.shape[2] + 2 * p - FH) // s + 1, (x.shape[3] + 2 * p - FW) // s + 1


class ColumnsInFyFxC(book.Convolution):
    """im2col's columns in (fy, fx, c) order, the filters' rows in (c, fy, fx): two channels mixed."""

    def forward(self, x):
        FN, C, FH, FW = self.W.shape
        oh, ow = _out_hw(x, FH, FW, self.stride, self.pad)
        col = book.im2col(x, FH, FW, self.stride, self.pad).reshape(-1, C, FH, FW).transpose(0, 2, 3, 1)
        self.x, self.col, self.col_W = x, col.reshape(col.shape[0], -1), self.W.reshape(FN, -1).T
        return (self.col @ self.col_W + self.b).reshape(x.shape[0], oh, ow, -1).transpose(0, 3, 1, 2)


def _col2im(col, shape, FH, FW, s, p, order=(0, 3, 4, 5, 1, 2), assign=False, crop=True):
    """The book's col2im with a reader's slips: another transpose, ``=`` for ``+=``, no crop."""
    N, C, H, W = shape
    oh, ow = (H + 2 * p - FH) // s + 1, (W + 2 * p - FW) // s + 1
    col = col.reshape(N, oh, ow, C, FH, FW).transpose(*order).reshape(N, C, FH, FW, oh, ow)
    img = np.zeros((N, C, H + 2 * p + s - 1, W + 2 * p + s - 1))
    for y in range(FH):
        for x in range(FW):
            if assign:
                img[:, :, y:y + s * oh:s, x:x + s * ow:s] = col[:, :, y, x, :, :]
            else:
                img[:, :, y:y + s * oh:s, x:x + s * ow:s] += col[:, :, y, x, :, :]
    return img[:, :, p:H + p, p:W + p] if crop else img[:, :, :H + 2 * p, :W + 2 * p]


def conv_with(**col2im_slips):
    class Conv(book.Convolution):
        def backward(self, dout):
            FN, C, FH, FW = self.W.shape
            d = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
            self.db, self.dW = d.sum(axis=0), (self.col.T @ d).T.reshape(FN, C, FH, FW)
            return _col2im(d @ self.col_W.T, self.x.shape, FH, FW, self.stride, self.pad, **col2im_slips)
    return Conv


class DWWithoutTranspose(book.Convolution):
    def backward(self, dout):
        dx = super().backward(dout)
        self.dW = (self.col.T @ dout.transpose(0, 2, 3, 1).reshape(-1, self.W.shape[0])).reshape(self.W.shape)
        return dx


class ForwardWithoutTranspose(book.Convolution):
    def forward(self, x):
        out = super().forward(x)  # (N, OH, OW, FN) rows read as (N, FN, OH, OW)
        return out.transpose(0, 2, 3, 1).reshape(out.shape)


class DbOverFourAxes(book.Convolution):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = dout.sum(axis=0)
        return dx


class PoolScatteredInNCHW(book.Pooling):
    def backward(self, dout):
        dmax = np.zeros((dout.size, self.pool_h * self.pool_w))
        dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()  # dout not transposed
        return book.col2im(dmax, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)


class PoolSpreadEvenly(book.Pooling):
    def backward(self, dout):
        size = self.pool_h * self.pool_w
        even = np.repeat(dout.transpose(0, 2, 3, 1).reshape(-1, 1) / size, size, axis=1)
        return book.col2im(even, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)


def conv_net(conv=None, pool=None, seed=0):
    """Conv -> ReLU -> Conv -> ReLU -> Pool -> Affine on 2-channel 6x6 images, 3x3 filters with
    pad 1 (overlapping windows, padding to crop); ``conv`` replaces the second convolution."""
    rng = np.random.default_rng(seed)
    W1, W2, W3 = (0.3 * rng.standard_normal(s) for s in ((3, 2, 3, 3), (4, 3, 3, 3), (36, 3)))
    return xpnet.Net([xpnet.Convolution(W1, 0.1 * rng.standard_normal(3), 1, 1), xpnet.Relu(),
                      (conv or xpnet.Convolution)(W2, 0.1 * rng.standard_normal(4), 1, 1), xpnet.Relu(),
                      (pool or xpnet.Pooling)(2, 2, 2), xpnet.Affine(W3, np.zeros(3))]), rng


def test_a_correct_relu_pool_net_passes_though_its_pooling_alone_is_inconclusive():
    net, rng = conv_net()
    report = xpnet.gradcheck(net, rng.standard_normal((4, 2, 6, 6)), np.array([0, 1, 2, 1]))
    assert report.passed and report.culprits == [] and "PASSED" in str(report), str(report)
    assert any(r.inconclusive for r in report.layers["Pooling1"].values())  # tied ReLU zeros in a window
    assert "layer Pooling1: ????" in str(report)


@pytest.mark.parametrize("conv, pool, culprit, why", [
    (ColumnsInFyFxC, None, "ColumnsInFyFxC1", r"input x"),  # dW is right for what it computes; dx is not
    (conv_with(order=(0, 3, 1, 2, 4, 5)), None, "Conv1", r"input x"),  # col2im undoing the wrong transpose
    (conv_with(assign=True), None, "Conv1", r"input x"),  # = for +=: overlapping windows lose their sum
    (conv_with(crop=False), None, "Conv1", r"gradient of input x has shape \(4, 3, 8, 8\) but x has shape"),
    (DWWithoutTranspose, None, "DWWithoutTranspose1", r"\bW\b"),
    (ForwardWithoutTranspose, None, "ForwardWithoutTranspose1", r""),
    (DbOverFourAxes, None, "DbOverFourAxes1", r"db has shape \(4, 6, 6\) but b has shape \(4,\)"),
    (None, PoolScatteredInNCHW, "PoolScatteredInNCHW1", r"input x"),
    (None, PoolSpreadEvenly, "PoolSpreadEvenly1", r"input x"),
], ids=["im2col-fy-fx-c", "col2im-transpose", "col2im-assign", "col2im-no-crop", "dW-no-transpose",
        "forward-no-transpose", "db-4d", "pool-scatter-nchw", "pool-spread-evenly"])
def test_a_readers_conv_bug_is_named_in_its_layer(conv, pool, culprit, why):
    net, rng = conv_net(conv, pool)
    report = xpnet.gradcheck(net, rng.standard_normal((4, 2, 6, 6)), np.array([0, 1, 2, 1]))
    assert not report.passed and report.culprits == [culprit], str(report)
    assert any(re.search(why, f"{r.name} {r.reason}") for r in report.layers[culprit].values() if not r.passed), \
        str(report)


def test_a_check_of_nothing_fails_saying_so():
    """Integer inputs only and no parameters: an empty PASSED would let a wrong backward through."""
    class Lookup:
        def __init__(self):
            self.table = np.arange(12.0).reshape(4, 3)

        def forward(self, idx):
            return self.table[idx]

        def backward(self, dout):
            return None

    from xpnet.testing import assert_gradcheck

    report = xpnet.gradcheck(Lookup(), np.array([0, 2]))
    assert not report.passed and "nothing was checked" in str(report)
    with pytest.raises(AssertionError, match="nothing was checked"):
        assert_gradcheck(Lookup(), np.array([0, 2]))


class _Square:
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, dout):
        return 2 * self.x * dout


class _Pair(_Square):
    def forward(self, x):
        self.x = x
        return x * 2, x * 3


class _Exp(_Square):
    def forward(self, x):
        self.y = array_namespace(x).exp(x)
        return self.y

    def backward(self, dout):
        return self.y * dout


def test_a_forward_of_two_outputs_fails_saying_so_not_a_type_error(dev):
    report = xpnet.gradcheck(_Pair(), arr(dev, (N, D)))
    assert not report.passed and "returned a tuple of 2 outputs; gradcheck checks a layer of one output" in str(report)


@pytest.mark.parametrize("kw,match", [({"dtype": "float33"}, "dtype='float33' is no floating dtype"),
                                      ({"atol": float("nan")}, "atol=nan; a tolerance must be a finite number >= 0"),
                                      ({"rtol": -1}, r"rtol=-1\.0; a tolerance"), ({"h": 0}, "h=0; a step must be")])
def test_impossible_settings_are_refused_by_name(kw, match):
    with pytest.raises(ValueError, match=match):
        xpnet.gradcheck(_Square(), np.ones((2, 2)), **kw)


def test_a_backward_returning_another_librarys_array_fails(dev):
    """A torch (or array_api_strict) layer whose backward returns NumPy used to PASS."""
    if dev.name == "cpu":
        pytest.skip("NumPy's own arrays are the right answer on cpu")

    class HostBackward(_Square):
        def backward(self, dout):
            return dev.to_numpy(2 * self.x * dout)

    report = xpnet.gradcheck(HostBackward(), arr(dev, (N, D)))
    assert not report.passed
    assert re.search(r"the gradient of x is a numpy.ndarray on cpu, x a \S+ on .*: a backward must return arrays of "
                     r"its inputs' library and device", str(report)), str(report)


def test_an_overflowing_loss_is_inconclusive_not_a_wrong_formula(dev):
    with np.errstate(over="ignore"), dev.scope():
        report = xpnet.gradcheck(_Exp(), arr(dev, (N, D)) + 709.5)
    r = report["x"]
    assert not r.passed and r.inconclusive and "overflows there, so finite differences cannot check" in r.reason
    assert "fix the formula" not in str(report)


def test_a_numpy_only_layer_does_not_pass_on_another_device(dev):
    """Its forward computes in NumPy whatever it gets: outputs must be the device's arrays."""
    if dev.name == "cpu":
        pytest.skip("NumPy's own arrays are the right answer on cpu")

    class NumpyOnly(_Square):
        def forward(self, x):
            self.x = dev.to_numpy(x)
            return self.x ** 2

    with dev.scope():
        report = xpnet.gradcheck(NumpyOnly(), arr(dev, (N, D)))
    assert not report.passed and "NumpyOnly.forward returned a numpy.ndarray on cpu for a" in str(report)

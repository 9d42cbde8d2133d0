"""xpnet/layers.py: the book's chapter-5 layers -- the shopping examples' numbers, each backward
against central differences, label forms, dtypes kept, ``dout`` never written, arguments checked --
and chapter 6's BatchNormalization and Dropout, against PyTorch's autograd at float64."""

import numpy as np
import pytest

import xpnet
from xpnet.layers import (Affine, AddLayer, BatchNormalization, Convolution, Dropout, MulLayer, Pooling, Relu, Sigmoid,
                          SoftmaxWithLoss, Tanh)

from . import book
from .optional_hypothesis import given, settings, st

pytestmark = pytest.mark.in_device_scope  # layers called directly (see conftest)


def scalar(dev, v):
    return dev.asarray(v, dtype="float64")


def test_buy_apple_gives_the_books_numbers(dev):
    apple, apple_num, tax = scalar(dev, 100.0), scalar(dev, 2.0), scalar(dev, 1.1)
    mul_apple, mul_tax = MulLayer(), MulLayer()
    price = mul_tax.forward(mul_apple.forward(apple, apple_num), tax)
    dapple_price, dtax = mul_tax.backward(scalar(dev, 1.0))
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert float(price) == pytest.approx(220, rel=1e-15)
    got = [float(v) for v in (dapple, dapple_num, dtax)]
    assert got == pytest.approx([2.2, 110, 200], rel=1e-15)


def test_buy_apple_orange_gives_the_books_numbers(dev):
    apple, apple_num, orange, orange_num, tax = (scalar(dev, v) for v in (100.0, 2.0, 150.0, 3.0, 1.1))
    mul_apple, mul_orange, add, mul_tax = MulLayer(), MulLayer(), AddLayer(), MulLayer()
    total = add.forward(mul_apple.forward(apple, apple_num), mul_orange.forward(orange, orange_num))
    price = mul_tax.forward(total, tax)
    dall, dtax = mul_tax.backward(scalar(dev, 1.0))
    dapple_price, dorange_price = add.backward(dall)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    dorange, dorange_num = mul_orange.backward(dorange_price)
    assert float(price) == pytest.approx(715, rel=1e-15)
    got = [float(v) for v in (dapple_num, dapple, dorange, dorange_num, dtax)]
    assert got == pytest.approx([110, 2.2, 3.3, 165, 650], rel=1e-15)


def test_shopping_with_python_numbers():
    m1, m2 = MulLayer(), MulLayer()
    assert m2.forward(m1.forward(100, 2), 1.1) == pytest.approx(220)
    dprice, dtax = m2.backward(1)
    assert m1.backward(dprice) == pytest.approx((2.2, 110)) and dtax == 200


def rand(dev, shape, seed=0, scale=1.0):
    return dev.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, dtype="float64")


def tt(a):
    """``a`` as a float64 torch leaf that records its gradient (the test has imported torch)."""
    import torch

    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=True)


def assert_passes(report):
    assert report.passed, str(report)
    for r in report.values():
        assert r.max_abs < 1e-7, str(report)


def test_mul_and_add_backward_with_broadcasting(dev):
    x, y = rand(dev, (3, 4), 1), rand(dev, (4,), 2)
    assert_passes(xpnet.gradcheck(MulLayer(), x, y))
    assert_passes(xpnet.gradcheck(AddLayer(), x, y))
    r = xpnet.gradcheck(MulLayer(), x, y)
    assert set(r) == {"x", "y"} and r["y"].shape == (4,)


def test_relu_backward(dev):
    x = rand(dev, (5, 7), 3)
    assert_passes(xpnet.gradcheck(Relu(), x))


def test_sigmoid_backward(dev):
    assert_passes(xpnet.gradcheck(Sigmoid(), rand(dev, (4, 6), 4, scale=3.0)))


def test_affine_backward_with_nd_input(dev):
    W, b = rand(dev, (12, 5), 5), rand(dev, (5,), 6)
    layer = Affine(W, b)
    x = rand(dev, (3, 2, 2, 3), 7)
    out = layer.forward(x)
    assert tuple(out.shape) == (3, 5)
    dx = layer.backward(rand(dev, (3, 5), 8))
    assert tuple(dx.shape) == (3, 2, 2, 3)
    r = xpnet.gradcheck(layer, x)
    assert set(r) == {"x", "W", "b"}
    assert_passes(r)


@pytest.mark.parametrize("labels", ["index", "onehot"])
def test_softmax_with_loss_backward(dev, labels):
    x = rand(dev, (4, 5), 9, scale=2.0)
    t_idx = np.array([0, 4, 2, 2])
    t = dev.asarray(t_idx) if labels == "index" else dev.asarray(np.eye(5)[t_idx], dtype="float64")
    r = xpnet.gradcheck(SoftmaxWithLoss(), x, t)
    assert set(r) == {"x"}
    assert_passes(r)


def test_softmax_with_loss_label_forms_agree(dev):
    x = rand(dev, (6, 3), 10)
    t_idx = np.array([0, 1, 2, 2, 1, 0])
    a, b = SoftmaxWithLoss(), SoftmaxWithLoss()
    la = float(a.forward(x, dev.asarray(t_idx)))
    lb = float(b.forward(x, dev.asarray(np.eye(3)[t_idx], dtype="float64")))
    assert la == pytest.approx(lb, rel=1e-14)
    np.testing.assert_allclose(dev.to_numpy(a.backward()), dev.to_numpy(b.backward()), rtol=1e-14)


@pytest.mark.parametrize("make", [Relu, Sigmoid, lambda: SoftmaxWithLoss()])
def test_backward_does_not_touch_dout(dev, make):
    layer = make()
    x = rand(dev, (3, 4), 11)
    if isinstance(layer, SoftmaxWithLoss):
        layer.forward(x, dev.asarray(np.array([0, 1, 3])))
        dout = dev.asarray(2.0, dtype="float64")
    else:
        layer.forward(x)
        dout = rand(dev, (3, 4), 12)
    before = dev.to_numpy(dout).copy()
    layer.backward(dout)
    np.testing.assert_array_equal(dev.to_numpy(dout), before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layers_keep_the_dtype(dev, dtype):
    rng = np.random.default_rng(0)
    W = dev.asarray(rng.standard_normal((4, 3)), dtype=dtype)
    b = dev.asarray(np.zeros(3), dtype=dtype)
    x = dev.asarray(rng.standard_normal((2, 4)), dtype=dtype)
    dt = dev.dtype(dtype)
    h = Sigmoid().forward(Relu().forward(Affine(W, b).forward(x)))
    loss_layer = SoftmaxWithLoss()
    loss = loss_layer.forward(h, dev.asarray(np.array([0, 2])))
    assert h.dtype == dt and loss.dtype == dt and loss_layer.backward().dtype == dt


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(2, 6), d=st.integers(1, 5), onehot=st.booleans(),
       seed=st.integers(0, 2**16))
def test_affine_softmax_shapes_and_label_forms(n, c, d, onehot, seed):
    dev = xpnet.device("cpu")
    rng = np.random.default_rng(seed)
    layer = Affine(dev.asarray(rng.standard_normal((d, c))), dev.asarray(rng.standard_normal(c)))
    x = dev.asarray(rng.standard_normal((n, d)))
    t_idx = rng.integers(0, c, n)
    t = np.eye(c)[t_idx] if onehot else t_idx
    last = SoftmaxWithLoss()
    loss = last.forward(layer.forward(x), t)
    assert np.isfinite(float(loss)) and float(loss) >= 0
    dx = layer.backward(last.backward())
    assert dx.shape == (n, d) and layer.dW.shape == (d, c) and layer.db.shape == (c,)
    np.testing.assert_allclose(last.backward().sum(axis=1), 0, atol=1e-12)  # rows of y - t sum to 0
    report = xpnet.gradcheck(SoftmaxWithLoss(), layer.forward(x), t)
    assert report.passed, str(report)


# -- arguments checked ------------------------------------------------------------------------
def test_affine_layer_checks(dev):
    W = dev.asarray(np.zeros((4, 3)), dtype="float32")
    with pytest.raises(ValueError, match=r"b of shape"):
        Affine(W, dev.asarray(np.zeros(4), dtype="float32"))
    layer = Affine(W, dev.asarray(np.zeros(3), dtype="float32"))
    with pytest.raises(ValueError, match="expects 4 features"):
        layer.forward(dev.asarray(np.zeros((2, 5)), dtype="float32"))
    with pytest.raises(TypeError, match="mixing precisions"):
        layer.forward(dev.asarray(np.zeros((2, 4)), dtype="float64"))


def test_softmax_with_loss_checks_its_labels(dev):
    x = dev.asarray(np.zeros((2, 3)), dtype="float32")
    with pytest.raises(ValueError, match=r"lie in \[0, 2\]"):
        SoftmaxWithLoss().forward(x, dev.asarray(np.array([0, 3])))


# -- BatchNormalization --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7, 5), (4, 2, 3, 3)])
def test_batchnorm_training_forward_and_backward_agree_with_torch(dev, shape):
    torch = pytest.importorskip("torch")
    d = int(np.prod(shape[1:]))
    x, dout = rand(dev, shape, 1, 3.0), rand(dev, shape, 2)
    gamma, beta = rand(dev, (d,), 3) + 1.0, rand(dev, (d,), 4)
    bn = BatchNormalization(gamma, beta)
    with dev.scope():
        out = bn.forward(x, train_flg=True)
        dx = bn.backward(dout)
    # torch: the book flattens (N, C, H, W) to (N, C*H*W) and normalises each of the C*H*W features
    xt, gt, bt = tt(dev.to_numpy(x).reshape(shape[0], -1)), tt(dev.to_numpy(gamma)), tt(dev.to_numpy(beta))
    ref = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=10e-7)
    ref.backward(torch.tensor(dev.to_numpy(dout).reshape(shape[0], -1)))
    assert out.shape == shape and dx.shape == shape
    np.testing.assert_allclose(dev.to_numpy(out).reshape(shape[0], -1), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dev.to_numpy(dx).reshape(shape[0], -1), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dev.to_numpy(bn.dgamma), gt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dev.to_numpy(bn.dbeta), bt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_batchnorm_running_statistics_follow_the_book_and_testing_uses_them(dev):
    x1, x2 = rand(dev, (6, 3), 1, 2.0), rand(dev, (6, 3), 2, 2.0)
    gamma, beta = dev.asarray([1.0, 2.0, 0.5], dtype="float64"), dev.asarray([0.0, 1.0, -1.0], dtype="float64")
    bn = BatchNormalization(gamma, beta)
    with dev.scope():
        bn.forward(x1)
        bn.forward(x2)
        test_out = bn.forward(x1, train_flg=False)
    h1, h2 = dev.to_numpy(x1), dev.to_numpy(x2)
    mean = 0.9 * (0.1 * h1.mean(0)) + 0.1 * h2.mean(0)  # from zeros, momentum 0.9, the biased variance
    var = 0.9 * (0.1 * h1.var(0)) + 0.1 * h2.var(0)
    np.testing.assert_allclose(dev.to_numpy(bn.running_mean), mean, rtol=1e-13)
    np.testing.assert_allclose(dev.to_numpy(bn.running_var), var, rtol=1e-13)
    expect = np.array([1.0, 2.0, 0.5]) * (h1 - mean) / np.sqrt(var + 10e-7) + np.array([0.0, 1.0, -1.0])
    np.testing.assert_allclose(dev.to_numpy(test_out), expect, rtol=1e-12)
    assert xpnet.layers.layer_state_names(bn) == ["running_mean", "running_var"]


def test_batchnorm_refuses_a_width_it_does_not_have(dev):
    bn = BatchNormalization(rand(dev, (4,)), rand(dev, (4,)))
    with pytest.raises(ValueError, match="4 features.*5 per sample"):
        bn.forward(rand(dev, (3, 5)))
    with pytest.raises(ValueError, match="gamma and beta of one shape"):
        BatchNormalization(rand(dev, (4,)), rand(dev, (3,)))


# -- Dropout -------------------------------------------------------------------------------------
def test_dropout_is_the_books_and_its_seed_repeats_the_masks(dev):
    x = rand(dev, (50, 40), 1)
    a, b = Dropout(0.3, seed=5), Dropout(0.3, seed=5)
    with dev.scope():
        ya, yb = a.forward(x), b.forward(x)
        mask = dev.to_numpy(a.mask)
        assert mask.dtype == np.bool_ and 0.6 < mask.mean() < 0.8  # about 1 - 0.3 kept
        np.testing.assert_array_equal(dev.to_numpy(ya), dev.to_numpy(x) * mask)  # no rescaling in training
        np.testing.assert_array_equal(dev.to_numpy(yb), dev.to_numpy(ya))
        dout = rand(dev, (50, 40), 2)
        np.testing.assert_array_equal(dev.to_numpy(a.backward(dout)), dev.to_numpy(dout) * mask)
        np.testing.assert_allclose(dev.to_numpy(a.forward(x, train_flg=False)), dev.to_numpy(x) * 0.7, rtol=1e-15)
        assert not np.array_equal(dev.to_numpy(a.forward(x)), dev.to_numpy(ya))  # a new mask a call
        with a.hold_mask():
            held = dev.to_numpy(a.mask)
            np.testing.assert_array_equal(dev.to_numpy(a.forward(x)), dev.to_numpy(x) * held)
            np.testing.assert_array_equal(dev.to_numpy(a.forward(x)), dev.to_numpy(x) * held)


def test_dropout_agrees_with_torch_autograd_at_its_own_mask(dev):
    torch = pytest.importorskip("torch")
    x = rand(dev, (8, 6), 3)
    layer = Dropout(0.5, seed=1)
    with dev.scope():
        layer.forward(x)
        dx = layer.backward(dev.asarray(np.ones((8, 6)), dtype="float64"))
    xt = tt(dev.to_numpy(x))
    (xt * torch.tensor(dev.to_numpy(layer.mask))).sum().backward()
    np.testing.assert_array_equal(dev.to_numpy(dx), xt.grad.numpy())


def test_dropout_ratio_is_checked():
    with pytest.raises(ValueError, match="dropout_ratio.*\\[0, 1\\)"):
        Dropout(1.0)



# -- Convolution and Pooling (chapter 7) -----------------------------------------------------------
CONV = [((2, 3, 7, 5), (3, 3), 1, 0), ((2, 3, 7, 5), (2, 3), 2, 1), ((1, 2, 6, 6), (3, 3), 3, 2),
        ((2, 1, 5, 8), (1, 2), 2, 0), ((1, 2, 6, 6), (3, 2), 1, 1)]


@pytest.mark.parametrize("shape, f, stride, pad", CONV)
def test_convolution_agrees_with_torch_autograd(dev, shape, f, stride, pad):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, W, b = rng.standard_normal(shape), rng.standard_normal((4, shape[1], *f)), rng.standard_normal(4)
    conv = Convolution(dev.asarray(W), dev.asarray(b), stride, pad)
    out = conv.forward(dev.asarray(x))
    dout = rng.standard_normal(tuple(out.shape))
    dx = conv.backward(dev.asarray(dout))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    ref = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=pad)
    ref.backward(torch.tensor(dout))
    for got, want in ((out, ref.detach()), (dx, xt.grad), (conv.dW, wt.grad), (conv.db, bt.grad)):
        np.testing.assert_allclose(dev.to_numpy(got), want.numpy(), rtol=1e-12, atol=1e-12)
    assert conv.col.shape == (out.shape[0] * out.shape[2] * out.shape[3], shape[1] * f[0] * f[1])


POOL = [c for c in CONV if 2 * c[3] <= min(c[1])] + [((2, 3, 6, 6), (2, 2), 2, 0)]  # torch pads at most half a window


@pytest.mark.parametrize("shape, f, stride, pad", POOL)
def test_pooling_agrees_with_torch_autograd(dev, shape, f, stride, pad):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal(shape)
    pool = Pooling(*f, stride, pad)
    out = pool.forward(dev.asarray(x))
    dout = np.random.default_rng(3).standard_normal(tuple(out.shape))
    dx = pool.backward(dev.asarray(dout))
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.max_pool2d(xt, f, stride, pad)
    ref.backward(torch.tensor(dout))
    np.testing.assert_array_equal(dev.to_numpy(out), ref.detach().numpy())
    np.testing.assert_allclose(dev.to_numpy(dx), xt.grad.numpy(), rtol=1e-13, atol=1e-15)  # overlaps: sums


def test_pooling_ties_go_to_the_first_maximum_and_arg_max_is_the_books(dev):
    x = np.array([[[[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 0.0, 3.0], [5.0, 5.0, 1.0, 1.0], [5.0, 5.0, 1.0, 1.0]]]])
    pool, theirs = Pooling(2, 2), book.Pooling(2, 2)
    out = pool.forward(dev.asarray(x))
    np.testing.assert_array_equal(dev.to_numpy(out), theirs.forward(x))
    np.testing.assert_array_equal(dev.to_numpy(pool.arg_max), theirs.arg_max)  # the first of equal maxima
    dout = np.arange(4.0).reshape(1, 1, 2, 2) + 1
    np.testing.assert_array_equal(dev.to_numpy(pool.backward(dev.asarray(dout))), theirs.backward(dout))


def test_the_books_convolution_layers_give_the_books_numbers(dev):
    rng = np.random.default_rng(4)
    x, W, b = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((5, 3, 3, 3)), rng.standard_normal(5)
    ours, theirs = Convolution(dev.asarray(W), dev.asarray(b), 1, 1), book.Convolution(W, b, 1, 1)
    out = theirs.forward(x)
    np.testing.assert_allclose(dev.to_numpy(ours.forward(dev.asarray(x))), out, rtol=1e-13, atol=1e-13)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(dev.to_numpy(ours.backward(dev.asarray(dout))), theirs.backward(dout), rtol=1e-13,
                               atol=1e-13)
    np.testing.assert_allclose(dev.to_numpy(ours.dW), theirs.dW, rtol=1e-13, atol=1e-13)


def test_convolution_and_pooling_pass_gradcheck(dev):
    x = rand(dev, (2, 2, 6, 5), 5)
    assert_passes(xpnet.gradcheck(Convolution(rand(dev, (3, 2, 3, 2), 6), rand(dev, (3,), 7), 2, 1), x))
    assert_passes(xpnet.gradcheck(Pooling(2, 2, 2, 1), x))


def test_a_float64_filter_with_b_0_on_float32_images_works(dev):
    """ch07's apply_filter.py: Convolution(w, 0) with a float64 filter on a float32 image."""
    x = dev.asarray(np.random.default_rng(8).random((1, 1, 6, 6)), dtype="float32")
    w = dev.asarray(np.ones((1, 1, 3, 3)) / 9)
    out = Convolution(w, 0).forward(x)
    assert out.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(dev.to_numpy(out)[0, 0, 0, 0], dev.to_numpy(x)[0, 0, :3, :3].mean(), rtol=1e-6)


def test_convolution_names_what_does_not_fit(dev):
    conv = Convolution(rand(dev, (2, 3, 3, 3)), rand(dev, (2,)))
    with pytest.raises(ValueError, match="filters of 3 channels"):
        conv.forward(rand(dev, (1, 2, 5, 5)))
    with pytest.raises(ValueError, match="does not fit"):
        conv.forward(rand(dev, (1, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"b of shape \(2,\)"):
        Convolution(rand(dev, (2, 3, 3, 3)), rand(dev, (3,)))


@pytest.mark.parametrize("shape, f, stride, pad", POOL)
def test_the_devices_own_convolution_and_pooling_give_the_portable_paths_numbers(dev, shape, f, stride, pad,
                                                                                  monkeypatch):
    """Where the device has its own kernels (torch's conv2d and max_pool2d), the layers use them;
    they give what the portable im2col path gives, the book's col, col_W and arg_max included."""
    import xpnet.layers

    from xpnet.fast import conv_kernels

    rng = np.random.default_rng(5)
    x = dev.asarray(np.maximum(rng.standard_normal(shape), 0))  # ties of zeros in the pooling windows
    W, b = dev.asarray(rng.standard_normal((4, shape[1], *f))), dev.asarray(rng.standard_normal(4))
    assert (conv_kernels(x) is not None) == (dev.name.startswith("torch"))

    def run():
        conv, pool = Convolution(W, b, stride, pad), Pooling(*f, stride, pad)
        h = conv.forward(x)
        out = pool.forward(h)
        dh = pool.backward(dev.asarray(np.arange(float(np.prod(out.shape))).reshape(tuple(out.shape)) % 7))
        dx = conv.backward(dh)
        return [dev.to_numpy(a) for a in (h, out, dh, dx, conv.dW, conv.db, conv.col, conv.col_W, pool.arg_max)]

    native = run()
    monkeypatch.setattr(xpnet.layers, "conv_kernels", lambda *a: None)
    portable = run()
    for got, want in zip(native, portable):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make, dout", [
    (lambda: MulLayer(), 1.0), (lambda: AddLayer(), 1.0), (lambda: Relu(), None), (lambda: Sigmoid(), None),
    (lambda: Tanh(), None), (lambda: Affine(np.ones((2, 3)), np.zeros(3)), None), (lambda: SoftmaxWithLoss(), 1),
    (lambda: Dropout(0.5), None), (lambda: BatchNormalization(np.ones(3), np.zeros(3)), None),
    (lambda: Convolution(np.ones((2, 1, 2, 2)), np.zeros(2)), None), (lambda: Pooling(2, 2), None),
])
def test_backward_before_forward_says_so_for_every_layer(make, dout):
    layer = make()
    with pytest.raises(RuntimeError, match=rf"{type(layer).__name__}\.backward was called before its forward"):
        layer.backward(np.ones((2, 3)) if dout is None else dout)

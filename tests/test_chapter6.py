"""Chapter 6's parts on every device: BatchNormalization, Dropout, weight decay,
MultiLayerNetExtend, Nesterov and RMSprop, util -- against PyTorch's autograd at float64 and
against the book's own code (copied in this file with its notice until it joins tests/book)."""

import numpy as np
import pytest

import xpnet
from xpnet.layers import BatchNormalization, Dropout
from xpnet.util import shuffle_dataset, smooth_curve

torch = pytest.importorskip("torch")

in_scope = pytest.mark.in_device_scope  # for the tests calling layers directly (see conftest)


def host(dev, a):
    return dev.to_numpy(a)


def rand(dev, shape, seed=0, scale=1.0, dtype="float64"):
    return dev.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, dtype=dtype)


def tt(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=True)


# -- BatchNormalization --------------------------------------------------------------------------
@in_scope
@pytest.mark.parametrize("shape", [(7, 5), (4, 2, 3, 3)])
def test_batchnorm_training_forward_and_backward_agree_with_torch(dev, shape):
    d = int(np.prod(shape[1:]))
    x, dout = rand(dev, shape, 1, 3.0), rand(dev, shape, 2)
    gamma, beta = rand(dev, (d,), 3) + 1.0, rand(dev, (d,), 4)
    bn = BatchNormalization(gamma, beta)
    with dev.scope():
        out = bn.forward(x, train_flg=True)
        dx = bn.backward(dout)
    # torch: the book flattens (N, C, H, W) to (N, C*H*W) and normalises each of the C*H*W features
    xt, gt, bt = tt(host(dev, x).reshape(shape[0], -1)), tt(host(dev, gamma)), tt(host(dev, beta))
    ref = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=10e-7)
    ref.backward(torch.tensor(host(dev, dout).reshape(shape[0], -1)))
    assert out.shape == shape and dx.shape == shape
    np.testing.assert_allclose(host(dev, out).reshape(shape[0], -1), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(dev, dx).reshape(shape[0], -1), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(host(dev, bn.dgamma), gt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(host(dev, bn.dbeta), bt.grad.numpy(), rtol=1e-12, atol=1e-12)


@in_scope
def test_batchnorm_running_statistics_follow_the_book_and_testing_uses_them(dev):
    x1, x2 = rand(dev, (6, 3), 1, 2.0), rand(dev, (6, 3), 2, 2.0)
    gamma, beta = dev.asarray([1.0, 2.0, 0.5], dtype="float64"), dev.asarray([0.0, 1.0, -1.0], dtype="float64")
    bn = BatchNormalization(gamma, beta)
    with dev.scope():
        bn.forward(x1)
        bn.forward(x2)
        test_out = bn.forward(x1, train_flg=False)
    h1, h2 = host(dev, x1), host(dev, x2)
    mean = 0.9 * (0.1 * h1.mean(0)) + 0.1 * h2.mean(0)  # from zeros, momentum 0.9, the biased variance
    var = 0.9 * (0.1 * h1.var(0)) + 0.1 * h2.var(0)
    np.testing.assert_allclose(host(dev, bn.running_mean), mean, rtol=1e-13)
    np.testing.assert_allclose(host(dev, bn.running_var), var, rtol=1e-13)
    expect = np.array([1.0, 2.0, 0.5]) * (h1 - mean) / np.sqrt(var + 10e-7) + np.array([0.0, 1.0, -1.0])
    np.testing.assert_allclose(host(dev, test_out), expect, rtol=1e-12)
    assert xpnet.layers.layer_state_names(bn) == ["running_mean", "running_var"]


@in_scope
def test_batchnorm_refuses_a_width_it_does_not_have(dev):
    bn = BatchNormalization(rand(dev, (4,)), rand(dev, (4,)))
    with pytest.raises(ValueError, match="4 features.*5 per sample"):
        bn.forward(rand(dev, (3, 5)))
    with pytest.raises(ValueError, match="gamma and beta of one shape"):
        BatchNormalization(rand(dev, (4,)), rand(dev, (3,)))


# -- Dropout -------------------------------------------------------------------------------------
@in_scope
def test_dropout_is_the_books_and_its_seed_repeats_the_masks(dev):
    x = rand(dev, (50, 40), 1)
    a, b = Dropout(0.3, seed=5), Dropout(0.3, seed=5)
    with dev.scope():
        ya, yb = a.forward(x), b.forward(x)
        mask = host(dev, a.mask)
        assert mask.dtype == np.bool_ and 0.6 < mask.mean() < 0.8  # about 1 - 0.3 kept
        np.testing.assert_array_equal(host(dev, ya), host(dev, x) * mask)  # no rescaling in training
        np.testing.assert_array_equal(host(dev, yb), host(dev, ya))
        dout = rand(dev, (50, 40), 2)
        np.testing.assert_array_equal(host(dev, a.backward(dout)), host(dev, dout) * mask)
        np.testing.assert_allclose(host(dev, a.forward(x, train_flg=False)), host(dev, x) * 0.7, rtol=1e-15)
        assert not np.array_equal(host(dev, a.forward(x)), host(dev, ya))  # a new mask a call
        with a.hold_mask():
            held = host(dev, a.mask)
            np.testing.assert_array_equal(host(dev, a.forward(x)), host(dev, x) * held)
            np.testing.assert_array_equal(host(dev, a.forward(x)), host(dev, x) * held)


@in_scope
def test_dropout_agrees_with_torch_autograd_at_its_own_mask(dev):
    x = rand(dev, (8, 6), 3)
    layer = Dropout(0.5, seed=1)
    with dev.scope():
        layer.forward(x)
        dx = layer.backward(dev.asarray(np.ones((8, 6)), dtype="float64"))
    xt = tt(host(dev, x))
    (xt * torch.tensor(host(dev, layer.mask))).sum().backward()
    np.testing.assert_array_equal(host(dev, dx), xt.grad.numpy())


def test_dropout_ratio_is_checked():
    with pytest.raises(ValueError, match="dropout_ratio.*\\[0, 1\\)"):
        Dropout(1.0)


# -- weight decay ---------------------------------------------------------------------------------
def test_weight_decay_adds_to_the_loss_and_to_the_weights_gradients_only(dev):
    lam = 0.3
    net = xpnet.MultiLayerNet(input_size=5, hidden_size_list=[4], output_size=3, weight_decay_lambda=lam,
                              device=dev, seed=0)
    plain = xpnet.MultiLayerNet(input_size=5, hidden_size_list=[4], output_size=3, device=dev, seed=0)
    x, t = rand(dev, (6, 5), 1), dev.asarray(np.arange(6) % 3)
    W = {k: host(dev, v) for k, v in net.params.items()}
    penalty = 0.5 * lam * sum((W[k] ** 2).sum() for k in ("W1", "W2"))
    assert float(net.loss(x, t)) == pytest.approx(float(plain.loss(x, t)) + penalty, rel=1e-13)
    g, g0 = net.gradient(x, t), plain.gradient(x, t)
    assert float(net.last_loss()) == pytest.approx(float(plain.lastLayer.loss) + penalty, rel=1e-13)
    for k in g:
        expect = host(dev, g0[k]) + (lam * W[k] if k.startswith("W") else 0)
        np.testing.assert_allclose(host(dev, g[k]), expect, rtol=1e-12, atol=1e-15)
    report = xpnet.gradcheck(net, x, t)
    assert report.passed, str(report)


# -- MultiLayerNetExtend --------------------------------------------------------------------------
def test_multi_layer_net_extend_has_the_books_layers_and_params(dev):
    net = xpnet.MultiLayerNetExtend(input_size=6, hidden_size_list=[5, 4], output_size=3, use_dropout=True,
                                    dropout_ration=0.2, use_batchnorm=True, device=dev, seed=0)
    assert list(net.layers) == ["Affine1", "BatchNorm1", "Activation_function1", "Dropout1", "Affine2", "BatchNorm2",
                                "Activation_function2", "Dropout2", "Affine3"]
    assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3", "gamma1", "beta1", "gamma2", "beta2"]
    assert net.layers["Dropout1"].dropout_ratio == 0.2 and net.last_layer is net.lastLayer
    assert net.layers["BatchNorm2"].gamma is net.params["gamma2"]
    np.testing.assert_array_equal(host(dev, net.params["gamma1"]), np.ones(5))
    positional = xpnet.MultiLayerNetExtend(6, [5, 4], 3, "relu", "relu", 0, True, 0.2, True, device=dev, seed=0)
    assert list(positional.layers) == list(net.layers) and positional.dropout_ratio == 0.2
    same = xpnet.MultiLayerNetExtend([6, 5, 4, 3], use_dropout=True, dropout_ratio=0.2, device=dev, seed=0)
    assert list(same.layers) == ["Affine1", "Relu1", "Dropout1", "Affine2", "Relu2", "Dropout2", "Affine3"]
    with pytest.raises(TypeError, match="dropout_ration.*dropout_ratio"):
        xpnet.MultiLayerNetExtend([6, 3], dropout_ration=0.1, dropout_ratio=0.2)


def test_multi_layer_net_extend_gradient_agrees_with_torch_autograd(dev):
    """The whole net at float64, in training mode, at the masks the net drew, weight decay included."""
    lam = 0.05
    net = xpnet.MultiLayerNetExtend(input_size=6, hidden_size_list=[5, 4], output_size=3, use_dropout=True,
                                    use_batchnorm=True, weight_decay_lambda=lam, device=dev, seed=1)
    x, t = rand(dev, (8, 6), 2), dev.asarray(np.arange(8) % 3)
    grads = net.gradient(x, t)
    p = {k: tt(host(dev, v)) for k, v in net.params.items()}
    h = torch.tensor(host(dev, x))
    for i in (1, 2):
        h = h @ p[f"W{i}"] + p[f"b{i}"]
        h = torch.nn.functional.batch_norm(h, None, None, p[f"gamma{i}"], p[f"beta{i}"], training=True, eps=10e-7)
        h = torch.relu(h) * torch.tensor(host(dev, net.layers[f"Dropout{i}"].mask))
    scores = h @ p["W3"] + p["b3"]
    loss = torch.nn.functional.cross_entropy(scores, torch.tensor(host(dev, t))) + \
        0.5 * lam * sum((p[f"W{i}"] ** 2).sum() for i in (1, 2, 3))
    loss.backward()
    assert float(net.last_loss()) == pytest.approx(loss.item(), rel=1e-12)
    for k, v in p.items():
        np.testing.assert_allclose(host(dev, grads[k]), v.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)


def test_multi_layer_net_extend_tests_by_default_and_trains_in_gradient(dev):
    net = xpnet.MultiLayerNetExtend([6, 5, 3], use_dropout=True, dropout_ratio=0.5, use_batchnorm=True, device=dev,
                                    seed=0)
    x, t = rand(dev, (8, 6), 2), dev.asarray(np.arange(8) % 3)
    a, b = host(dev, net.predict(x)), host(dev, net.predict(x))
    np.testing.assert_array_equal(a, b)  # testing mode: no masks drawn, running statistics only read
    np.testing.assert_array_equal(host(dev, net.layers["BatchNorm1"].running_mean), np.zeros(5))
    net.gradient(x, t)
    assert float(np.abs(host(dev, net.layers["BatchNorm1"].running_mean)).sum()) > 0
    assert not np.array_equal(host(dev, net.predict(x, train_flg=True)), host(dev, net.predict(x, train_flg=True)))


def test_numerical_gradient_holds_the_masks_and_leaves_the_running_statistics(dev):
    net = xpnet.MultiLayerNetExtend([6, 5, 3], use_dropout=True, use_batchnorm=True, weight_decay_lambda=0.1,
                                    device=dev, seed=2)
    x, t = rand(dev, (8, 6), 2), dev.asarray(np.arange(8) % 3)
    grads = net.gradient(x, t)
    before = host(dev, net.layers["BatchNorm1"].running_var)
    num = net.numerical_gradient(x, t)
    np.testing.assert_array_equal(host(dev, net.layers["BatchNorm1"].running_var), before)
    for k in grads:
        np.testing.assert_allclose(host(dev, num[k]), host(dev, grads[k]), atol=1e-6, err_msg=k)


# -- optimizers ---------------------------------------------------------------------------------
def _book_nesterov(params, grads, v, lr=0.01, momentum=0.9):  # the book's common/optimizer.py (MIT), per key
    for key in params.keys():
        params[key] += momentum * momentum * v[key]
        params[key] -= (1 + momentum) * lr * grads[key]
        v[key] *= momentum
        v[key] -= lr * grads[key]


def _book_rmsprop(params, grads, h, lr=0.01, decay_rate=0.99):
    for key in params.keys():
        h[key] *= decay_rate
        h[key] += (1 - decay_rate) * grads[key] * grads[key]
        params[key] -= lr * grads[key] / (np.sqrt(h[key]) + 1e-7)


@pytest.mark.parametrize("name", ["Nesterov", "RMSprop"])
def test_nesterov_and_rmsprop_follow_the_books_rules(dev, name):
    rng = np.random.default_rng(0)
    ref = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    state = {k: np.zeros_like(v) for k, v in ref.items()}
    params = {k: dev.asarray(v, dtype="float64") for k, v in ref.items()}
    opt = getattr(xpnet, name)(lr=0.1)
    for _ in range(5):
        g = {k: rng.standard_normal(v.shape) for k, v in ref.items()}
        (_book_nesterov if name == "Nesterov" else _book_rmsprop)(ref, g, state, 0.1)
        opt.update(params, {k: dev.asarray(v, dtype="float64") for k, v in g.items()})
    for k in ref:
        np.testing.assert_allclose(host(dev, params[k]), ref[k], rtol=1e-13)


def test_rmsprop_agrees_with_torch():
    w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    topt = torch.optim.RMSprop([w], lr=0.05, alpha=0.99, eps=1e-7)
    params, opt = {"w": np.array([1.0, -2.0, 3.0])}, xpnet.RMSprop(lr=0.05)
    for _ in range(4):
        topt.zero_grad()
        (w ** 3).sum().backward()
        topt.step()
        opt.update(params, {"w": 3 * params["w"] ** 2})
    np.testing.assert_allclose(params["w"], w.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"])
def test_every_optimizer_updates_a_dict_of_numbers_as_the_book_does(name):
    """The book's optimizer_compare_naive.py: f(x, y) = x**2 / 20 + y**2 from (-7, 2)."""
    params, grads = {"x": -7.0, "y": 2.0}, {}
    opt = getattr(xpnet, name)(lr={"SGD": 0.95, "Momentum": 0.1, "Nesterov": 0.1, "AdaGrad": 1.5,
                                   "RMSprop": 0.3, "Adam": 0.3}[name])
    arrays = {k: np.array([v]) for k, v in params.items()}
    twin = getattr(xpnet, name)(lr=opt.lr)
    for _ in range(30):
        grads["x"], grads["y"] = params["x"] / 10.0, 2.0 * params["y"]
        opt.update(params, grads)
        twin.update(arrays, {"x": arrays["x"] / 10.0, "y": 2.0 * arrays["y"]})
        assert all(type(v) is float for v in params.values())
    assert [params["x"], params["y"]] == pytest.approx([float(arrays["x"][0]), float(arrays["y"][0])], rel=1e-12)
    assert abs(params["x"]) < 7 and abs(params["y"]) < 2  # it went downhill
    with pytest.raises(TypeError, match="mixes numbers"):
        getattr(xpnet, name)().update({"x": 1.0, "y": np.ones(2)}, {"x": 1.0, "y": np.ones(2)})


# -- util ------------------------------------------------------------------------------------------
def test_shuffle_dataset_keeps_the_pairs_and_repeats_with_a_seed(dev):
    x = dev.asarray(np.arange(24.0).reshape(6, 1, 2, 2))
    t = dev.asarray(np.arange(6))
    xs, ts = shuffle_dataset(x, t, seed=3)
    hx, ht = host(dev, xs), host(dev, ts)
    assert sorted(ht.tolist()) == list(range(6)) and ht.tolist() != list(range(6))
    np.testing.assert_array_equal(hx, np.arange(24.0).reshape(6, 1, 2, 2)[ht])
    np.testing.assert_array_equal(host(dev, shuffle_dataset(x, t, seed=3)[1]), ht)
    with pytest.raises(ValueError, match="as many samples"):
        shuffle_dataset(x, dev.asarray(np.arange(5)))


def test_smooth_curve_is_the_books():
    x = np.random.default_rng(0).standard_normal(57).cumsum()
    window_len = 11  # the book's common/util.py (MIT)
    s = np.r_[x[window_len - 1:0:-1], x, x[-1:-window_len:-1]]
    w = np.kaiser(window_len, 2)
    y = np.convolve(w / w.sum(), s, mode='valid')[5:-5]
    np.testing.assert_allclose(smooth_curve(x), y, rtol=1e-13)
    assert smooth_curve([1.0, 2.0]) == [1.0, 2.0]


# -- gradcheck: modes, masks and the readers' chapter-6 bugs ---------------------------------------
def data(dev, n=6, d=8, c=4, seed=3):
    return rand(dev, (n, d), seed), dev.asarray(np.arange(n) % c)


def test_a_net_with_batchnorm_dropout_and_weight_decay_passes_gradcheck(dev):
    net = xpnet.MultiLayerNetExtend([8, 6, 5, 4], use_dropout=True, dropout_ratio=0.3, use_batchnorm=True,
                                    weight_decay_lambda=0.1, device=dev, seed=0)
    running = host(dev, net.layers["BatchNorm1"].running_mean)
    report = xpnet.gradcheck(net, *data(dev))
    assert report.passed, str(report)
    assert {"gamma1", "beta2", "W3"} <= set(report) and "Dropout2" in report.layers
    np.testing.assert_array_equal(host(dev, net.layers["BatchNorm1"].running_mean), running)  # put back


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


class BatchNormWithoutDmu(BatchNormalization):
    """A reader's bug: dx = dxc, the mean's share of the gradient left out."""

    def _backward(self, dout):
        xp = self.xp
        self.dbeta, self.dgamma = xp.sum(dout, axis=0), xp.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -xp.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dxc += (2.0 / self.batch_size) * self.xc * (0.5 * dstd / self.std)
        return dxc


class BatchNormOverFeatures(BatchNormalization):
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


class BatchNormTestingOnBatch(BatchNormalization):
    """A reader's bug: testing mode normalises with the batch's own statistics."""

    def _forward(self, x, train_flg):
        return super()._forward(x, True)


class DropoutBackwardDraws(Dropout):
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
    fine, _ = net_with(dev, BatchNormalization if kind == "batchnorm" else Dropout, kind)
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


# -- training, checkpoints, resume, the command line ----------------------------------------------
def extend_net(dev=None, **kw):
    kw = dict({"use_dropout": True, "dropout_ratio": 0.2, "use_batchnorm": True, "weight_decay_lambda": 0.01,
                   "dtype": "float32", "seed": 0}, **kw)
    return xpnet.MultiLayerNetExtend([20, 16, 12, 3], device=dev, **kw)


def small_data(n=300):
    rng = np.random.default_rng(0)
    x = rng.random((n, 20)).astype("float32")
    return x, (x[:, :3].argmax(axis=1)).astype(np.int64)


def test_a_checkpoint_keeps_running_statistics_and_dropout_generators(dev, tmp_path):
    net = extend_net(dev)
    x, t = small_data(40)
    xd, td = dev.asarray(x), dev.asarray(t)
    for _ in range(3):
        net.gradient(xd, td)
    xpnet.save_net(net, tmp_path / "m")
    back = xpnet.load_net(tmp_path / "m.npz", device=dev)
    assert type(back) is xpnet.MultiLayerNetExtend and back.config == net.config
    for k, v in net.buffers().items():
        np.testing.assert_array_equal(host(dev, back.buffers()[k]), host(dev, v), err_msg=k)
    np.testing.assert_array_equal(host(dev, back.predict(xd)), host(dev, net.predict(xd)))
    net.gradient(xd, td)
    back.gradient(xd, td)  # the next masks are the same
    np.testing.assert_array_equal(host(dev, back.layers["Dropout2"].mask), host(dev, net.layers["Dropout2"].mask))


def test_a_checkpoint_with_damaged_running_statistics_is_refused(tmp_path):
    import zipfile

    net = extend_net()
    xpnet.save_net(net, tmp_path / "m")
    with zipfile.ZipFile(tmp_path / "m.npz") as z, zipfile.ZipFile(tmp_path / "bad.npz", "w") as out:
        for item in z.infolist():
            if item.filename != "buffer/BatchNorm2/running_var.npy":
                out.writestr(item, z.read(item))
    with pytest.raises(xpnet.CheckpointError, match="missing members.*BatchNorm2/running_var"):
        xpnet.load_net(tmp_path / "bad.npz")


@pytest.mark.parametrize("device", ["cpu", "torch"])
def test_a_batchnorm_dropout_run_resumes_bit_exact(tmp_path, device):
    x, t = small_data()
    kw = {"optimizer": "rmsprop", "lr": 0.01, "batch_size": 20, "seed": 1, "progress": False, "log": None}
    with xpnet.use_device(device):
        whole = xpnet.Trainer(extend_net(), x, t, x[:50], t[:50], iters=60, **kw)
        h = whole.fit()
        first = xpnet.Trainer(extend_net(), x, t, x[:50], t[:50], iters=30, **kw)
        first.fit(checkpoint=tmp_path / "run")
        resumed = xpnet.Trainer.resume(tmp_path / "run.npz", x, t, x[:50], t[:50], iters=60, log=None, progress=False)
        h2 = resumed.fit()
    dev = whole.net.device
    for k in whole.net.params:
        np.testing.assert_array_equal(host(dev, resumed.net.params[k]), host(dev, whole.net.params[k]), err_msg=k)
    for k, v in whole.net.buffers().items():
        np.testing.assert_array_equal(host(dev, resumed.net.buffers()[k]), host(dev, v), err_msg=k)
    assert h2.loss == h.loss and h2.test_acc == h.test_acc


def test_the_trainer_records_the_loss_with_its_penalty_and_evaluates_in_testing_mode():
    x, t = small_data()
    net = extend_net("cpu", use_dropout=False, use_batchnorm=False, weight_decay_lambda=0.5)
    tr = xpnet.Trainer(net, x, t, x[:50], t[:50], iters=5, batch_size=300, lr=1e-9, progress=False, log=None)
    h = tr.fit()
    assert h.loss[-1] == pytest.approx(float(net.loss(x, t)), rel=1e-5)  # the penalty is 0.5 * 0.5 * sum(W**2)
    assert h.final_test_loss == pytest.approx(float(net.loss(x[:50], t[:50])), rel=1e-5)


def test_the_books_trainer_trains_a_dropout_batchnorm_net_with_nesterov():
    from xpnet.trainer import Trainer

    x, t = small_data()
    net = xpnet.MultiLayerNetExtend(input_size=20, hidden_size_list=[16, 12], output_size=3, use_dropout=True,
                                    dropout_ration=0.1, use_batchnorm=True, seed=0)
    tr = Trainer(net, x, t, x[:100], t[:100], epochs=4, mini_batch_size=30, optimizer="Nesterov",
                 optimizer_param={"lr": 0.05}, verbose=False)
    tr.train()
    assert len(tr.train_acc_list) == 4 and tr.test_acc_list[-1] > 0.6 and tr.test_acc_list[-1] > tr.test_acc_list[0]


@pytest.mark.slow
def test_xpnet_train_with_batchnorm_dropout_and_weight_decay(tiny, tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "xpnet", "train", "--data-dir", str(tiny), "--sizes", "64,32,3",
                        "--batchnorm", "--dropout", "0.1", "--weight-decay", "0.001", "--optimizer", "rmsprop",
                        "--lr", "0.01", "--iters", "200", "--out", str(out), "--quiet", "--no-plot"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((out / "history.json").read_text())["config"]["net"]
    assert cfg["class"] == "MultiLayerNetExtend" and cfg["use_batchnorm"] and cfg["dropout_ratio"] == 0.1
    assert cfg["weight_decay_lambda"] == 0.001
    net = xpnet.load_net(out / "model.npz")
    assert net.layers["Dropout1"].dropout_ratio == 0.1
    bad = subprocess.run([sys.executable, "-m", "xpnet", "train", "--data-dir", str(tiny), "--dropout", "1.5"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--dropout" in bad.stderr and "[0, 1)" in bad.stderr

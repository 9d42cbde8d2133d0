"""xpnet/nets.py: TwoLayerNet, MultiLayerNet and Net from any layers -- gradients against central
differences and PyTorch, one seed one net on every device, dtypes kept, moved with ``to`` -- and
every input checked where it enters the net (shape, dtype, labels, device, NaN), naming it --
and chapter 6's: weight decay, and MultiLayerNetExtend (batch norm, dropout) against PyTorch."""

import numpy as np
import pytest

import xpnet
from xpnet.layers import Affine

from .samples import C, D, data


def batch(dev, n=3, d=20, c=5, seed=1, dtype="float64"):
    rng = np.random.default_rng(seed)
    return dev.asarray(rng.random((n, d)), dtype=dtype), dev.asarray(rng.integers(0, c, n))


def rand(dev, shape, seed=0, scale=1.0, dtype="float64"):
    return dev.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, dtype=dtype)


def tt(a):
    """``a`` as a float64 torch leaf that records its gradient (the test has imported torch)."""
    import torch

    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("labels", ["index", "onehot"])
def test_two_layer_net_gradcheck_below_1e7(dev, labels):
    net = xpnet.TwoLayerNet(20, 10, 5, weight_init_std=0.3, device=dev, dtype="float32", seed=0)
    x, t = batch(dev)
    if labels == "onehot":
        t = dev.asarray(np.eye(5)[dev.to_numpy(t)], dtype="float64")
    report = xpnet.gradcheck(net, x, t)
    assert report.passed, str(report)
    assert set(report) == {"W1", "b1", "W2", "b2"}
    assert max(r.max_abs for r in report.values()) < 1e-7, str(report)
    assert report.culprits == []


@pytest.mark.parametrize("activation,init", [("sigmoid", "xavier"), ("relu", "he")])
def test_multilayer_net_gradcheck(dev, activation, init):
    net = xpnet.MultiLayerNet([6, 5, 4, 3], activation=activation, weight_init=init, device=dev,
                              dtype="float64", seed=3)
    assert list(net.layers) == ["Affine1", f"{activation.title()}1", "Affine2", f"{activation.title()}2",
                                "Affine3"]
    x, t = batch(dev, n=4, d=6, c=3)
    report = xpnet.gradcheck(net, x, t)
    assert report.passed, str(report)
    assert max(r.max_abs for r in report.values()) < 1e-7


def test_book_numerical_gradient_matches_backprop(dev):
    net = xpnet.TwoLayerNet(8, 4, 3, weight_init_std=0.5, device=dev, dtype="float64", seed=2)
    x, t = batch(dev, n=2, d=8, c=3)
    num, bp = net.numerical_gradient(x, t), net.gradient(x, t)
    for k in net.params:
        np.testing.assert_allclose(dev.to_numpy(num[k]), dev.to_numpy(bp[k]), atol=1e-8)


def test_same_seed_same_net_on_every_device(dev):
    cpu = xpnet.device("cpu")
    ref = xpnet.TwoLayerNet(20, 10, 5, device=cpu, dtype="float32", seed=42)
    net = xpnet.TwoLayerNet(20, 10, 5, device=dev, dtype="float32", seed=42)
    for k in ref.params:
        np.testing.assert_array_equal(dev.to_numpy(net.params[k]), cpu.to_numpy(ref.params[k]))
    xh, th = batch(cpu, n=16, dtype="float32")
    x, t = dev.asarray(cpu.to_numpy(xh)), dev.asarray(cpu.to_numpy(th))
    assert float(net.loss(x, t)) == pytest.approx(float(ref.loss(xh, th)), rel=2e-6)
    g, gref = net.gradient(x, t), ref.gradient(xh, th)
    for k in gref:
        np.testing.assert_allclose(dev.to_numpy(g[k]), gref[k], rtol=1e-4, atol=1e-7)


def test_float32_stays_float32(dev):
    net = xpnet.TwoLayerNet(20, 10, 5, device=dev, dtype="float32", seed=0)
    x, t = batch(dev, dtype="float32")
    assert net.predict(x).dtype == dev.xp.float32
    assert net.loss(x, t).dtype == dev.xp.float32
    assert all(g.dtype == dev.xp.float32 for g in net.gradient(x, t).values())


def test_accuracy_in_batches_matches_whole(dev):
    net = xpnet.TwoLayerNet(20, 10, 5, weight_init_std=1.0, device=dev, seed=0)
    x, t = batch(dev, n=50, dtype="float32")
    a, b = net.accuracy(x, t, batch_size=None), net.accuracy(x, t, batch_size=7)
    assert a == b and 0.0 <= a <= 1.0
    p = dev.to_numpy(net.predict(x)).argmax(axis=1)
    assert a == pytest.approx(float((p == dev.to_numpy(t)).mean()))
    t1 = dev.asarray(np.eye(5)[dev.to_numpy(t)], dtype="float32")
    assert net.accuracy(x, t1) == a


def test_to_moves_and_casts_without_changing_values(dev):
    net = xpnet.TwoLayerNet(6, 4, 3, device="cpu", dtype="float32", seed=1)
    moved = net.to(device=dev, dtype="float64")
    assert moved.device is dev and moved.params["W1"].dtype == dev.xp.float64
    np.testing.assert_array_equal(dev.to_numpy(moved.params["W1"]), net.params["W1"].astype(np.float64))
    assert isinstance(moved, xpnet.TwoLayerNet)


def test_gradient_agrees_with_torch_autograd():
    """An independent reference: PyTorch's autograd on the same weights, float64."""
    torch = pytest.importorskip("torch")
    net = xpnet.TwoLayerNet(12, 7, 4, weight_init_std=0.5, device="cpu", dtype="float64", seed=5)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((5, 12)), rng.integers(0, 4, 5)
    grads = net.gradient(x, t)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in net.params.items()}
    h = torch.relu(torch.tensor(x) @ p["W1"] + p["b1"])
    loss = torch.nn.functional.cross_entropy(h @ p["W2"] + p["b2"], torch.tensor(t))
    loss.backward()
    assert float(net.loss(x, t)) == pytest.approx(loss.item(), rel=1e-14)
    for k in p:
        np.testing.assert_allclose(grads[k], p[k].grad.numpy(), rtol=1e-12, atol=1e-15)


# -- deeper nets, from any layers ---------------------------------------------------------
def test_multilayer_net_with_tanh(dev):
    net = xpnet.MultiLayerNet([6, 5, 4, 3], activation="tanh", weight_init="xavier", device=dev, seed=3)
    assert list(net.layers) == ["Affine1", "Tanh1", "Affine2", "Tanh2", "Affine3"]
    x, t = batch(dev, n=4, d=6, c=3)
    assert xpnet.gradcheck(net, x, t).passed


def test_a_net_from_a_list_of_layers_including_a_users_own(dev):
    class Square:  # a user's own layer, written against the namespace of its input
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, dout):
            return 2.0 * self.x * dout

    rng = np.random.default_rng(0)
    W1, W2 = (dev.asarray(0.5 * rng.standard_normal(s), dtype="float64") for s in ((8, 5), (5, 3)))
    b1, b2 = dev.asarray(np.zeros(5), dtype="float64"), dev.asarray(np.zeros(3), dtype="float64")
    net = xpnet.Net([Affine(W1, b1), Square(), Affine(W2, b2)])
    assert list(net.layers) == ["Affine1", "Square1", "Affine2"] and list(net.params) == ["W1", "b1", "W2", "b2"]
    assert net.params["W1"] is W1 and net.device is dev and net.num_classes == 3
    x, t = batch(dev, n=6, d=8, c=3)
    report = xpnet.gradcheck(net, x, t)
    assert report.passed, str(report)
    before = float(net.loss(x, t))
    for _ in range(20):
        xpnet.SGD(0.05).update(net.params, net.gradient(x, t))
    assert float(net.loss(x, t)) < before


# -- weight decay ---------------------------------------------------------------------------------
def test_weight_decay_adds_to_the_loss_and_to_the_weights_gradients_only(dev):
    lam = 0.3
    net = xpnet.MultiLayerNet(input_size=5, hidden_size_list=[4], output_size=3, weight_decay_lambda=lam,
                              device=dev, seed=0)
    plain = xpnet.MultiLayerNet(input_size=5, hidden_size_list=[4], output_size=3, device=dev, seed=0)
    x, t = rand(dev, (6, 5), 1), dev.asarray(np.arange(6) % 3)
    W = {k: dev.to_numpy(v) for k, v in net.params.items()}
    penalty = 0.5 * lam * sum((W[k] ** 2).sum() for k in ("W1", "W2"))
    assert float(net.loss(x, t)) == pytest.approx(float(plain.loss(x, t)) + penalty, rel=1e-13)
    g, g0 = net.gradient(x, t), plain.gradient(x, t)
    assert float(net.last_loss()) == pytest.approx(float(plain.lastLayer.loss) + penalty, rel=1e-13)
    for k in g:
        expect = dev.to_numpy(g0[k]) + (lam * W[k] if k.startswith("W") else 0)
        np.testing.assert_allclose(dev.to_numpy(g[k]), expect, rtol=1e-12, atol=1e-15)
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
    np.testing.assert_array_equal(dev.to_numpy(net.params["gamma1"]), np.ones(5))
    positional = xpnet.MultiLayerNetExtend(6, [5, 4], 3, "relu", "relu", 0, True, 0.2, True, device=dev, seed=0)
    assert list(positional.layers) == list(net.layers) and positional.dropout_ratio == 0.2
    same = xpnet.MultiLayerNetExtend([6, 5, 4, 3], use_dropout=True, dropout_ratio=0.2, device=dev, seed=0)
    assert list(same.layers) == ["Affine1", "Relu1", "Dropout1", "Affine2", "Relu2", "Dropout2", "Affine3"]
    with pytest.raises(TypeError, match="dropout_ration.*dropout_ratio"):
        xpnet.MultiLayerNetExtend([6, 3], dropout_ration=0.1, dropout_ratio=0.2)


def test_multi_layer_net_extend_gradient_agrees_with_torch_autograd(dev):
    """The whole net at float64, in training mode, at the masks the net drew, weight decay included."""
    torch = pytest.importorskip("torch")
    lam = 0.05
    net = xpnet.MultiLayerNetExtend(input_size=6, hidden_size_list=[5, 4], output_size=3, use_dropout=True,
                                    use_batchnorm=True, weight_decay_lambda=lam, device=dev, seed=1)
    x, t = rand(dev, (8, 6), 2), dev.asarray(np.arange(8) % 3)
    grads = net.gradient(x, t)
    p = {k: tt(dev.to_numpy(v)) for k, v in net.params.items()}
    h = torch.tensor(dev.to_numpy(x))
    for i in (1, 2):
        h = h @ p[f"W{i}"] + p[f"b{i}"]
        h = torch.nn.functional.batch_norm(h, None, None, p[f"gamma{i}"], p[f"beta{i}"], training=True, eps=10e-7)
        h = torch.relu(h) * torch.tensor(dev.to_numpy(net.layers[f"Dropout{i}"].mask))
    scores = h @ p["W3"] + p["b3"]
    loss = torch.nn.functional.cross_entropy(scores, torch.tensor(dev.to_numpy(t))) + \
        0.5 * lam * sum((p[f"W{i}"] ** 2).sum() for i in (1, 2, 3))
    loss.backward()
    assert float(net.last_loss()) == pytest.approx(loss.item(), rel=1e-12)
    for k, v in p.items():
        np.testing.assert_allclose(dev.to_numpy(grads[k]), v.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)


def test_multi_layer_net_extend_tests_by_default_and_trains_in_gradient(dev):
    net = xpnet.MultiLayerNetExtend([6, 5, 3], use_dropout=True, dropout_ratio=0.5, use_batchnorm=True, device=dev,
                                    seed=0)
    x, t = rand(dev, (8, 6), 2), dev.asarray(np.arange(8) % 3)
    a, b = dev.to_numpy(net.predict(x)), dev.to_numpy(net.predict(x))
    np.testing.assert_array_equal(a, b)  # testing mode: no masks drawn, running statistics only read
    np.testing.assert_array_equal(dev.to_numpy(net.layers["BatchNorm1"].running_mean), np.zeros(5))
    net.gradient(x, t)
    assert float(np.abs(dev.to_numpy(net.layers["BatchNorm1"].running_mean)).sum()) > 0
    assert not np.array_equal(dev.to_numpy(net.predict(x, train_flg=True)),
                              dev.to_numpy(net.predict(x, train_flg=True)))


def test_numerical_gradient_holds_the_masks_and_leaves_the_running_statistics(dev):
    net = xpnet.MultiLayerNetExtend([6, 5, 3], use_dropout=True, use_batchnorm=True, weight_decay_lambda=0.1,
                                    device=dev, seed=2)
    x, t = rand(dev, (8, 6), 2), dev.asarray(np.arange(8) % 3)
    grads = net.gradient(x, t)
    before = dev.to_numpy(net.layers["BatchNorm1"].running_var)
    num = net.numerical_gradient(x, t)
    np.testing.assert_array_equal(dev.to_numpy(net.layers["BatchNorm1"].running_var), before)
    for k in grads:
        np.testing.assert_allclose(dev.to_numpy(num[k]), dev.to_numpy(grads[k]), atol=1e-6, err_msg=k)


# -- what is refused at construction ------------------------------------------------------------
BAD_NETS = {
    "one size": (lambda: xpnet.MultiLayerNet([784]), ValueError, r"sizes must list at least two"),
    "unknown activation": (lambda: xpnet.MultiLayerNet([4, 3, 2], activation="softplus"), ValueError,
                           r"activation must be one of relu, sigmoid, tanh, got 'softplus'"),
    "fractional size": (lambda: xpnet.MultiLayerNet([784, 10.7, 10]), ValueError,
                        r"sizes\[1\] must be a positive integer, got 10.7"),
    "integer dtype": (lambda: xpnet.TwoLayerNet(4, 3, 2, dtype="int32", device="cpu"), TypeError,
                      r"dtype must be a floating type.*'int32'"),
    "unknown weight_init": (lambda: xpnet.MultiLayerNet([4, 2], weight_init="glorot"), ValueError,
                            r"weight_init must be a positive finite number.*got 'glorot'"),
    **{f"weight_init {w}": (lambda w=w: xpnet.MultiLayerNet([4, 3, 2], weight_init=w), ValueError,
                            rf"weight_init must be a positive finite number.*got {w}")
       for w in (float("inf"), float("nan"), 0, -0.1, True)},
}


@pytest.mark.parametrize("case", list(BAD_NETS))
def test_bad_constructor_arguments(case):
    make, error, match = BAD_NETS[case]
    with pytest.raises(error, match=match):
        make()


def test_a_net_too_large_for_memory_says_how_large():
    with pytest.raises(ValueError, match=r"1,000,796,000,010 parameters.*3.6 TiB.*4 bytes.*memory of device 'cpu'"):
        xpnet.MultiLayerNet([784, 10**6, 10**6, 10], dtype="float32", device="cpu")
    with pytest.raises(ValueError, match=r"7.3 TiB.*8 bytes"):
        xpnet.MultiLayerNet([784, 10**6, 10**6, 10], device="cpu")


# -- inputs are checked at every entry point ------------------------------------------------
@pytest.fixture
def net(dev):
    return xpnet.TwoLayerNet(D, 4, C, device=dev, dtype="float32", seed=0)


def test_wrong_feature_size(dev, net):
    x, t, _ = data(dev, d=7)
    with pytest.raises(ValueError, match=r"x has shape \(5, 7\).*expects 8 features"):
        net.gradient(x, t)


def test_labels_out_of_range(dev, net):
    x, _, _ = data(dev)
    with pytest.raises(ValueError, match=r"labels t must lie in \[0, 2\].*\[0, 7\]"):
        net.gradient(x, dev.asarray(np.array([0, 1, 2, 7, 1])))
    with pytest.raises(ValueError, match=r"\[-1, 2\]"):
        net.loss(x, dev.asarray(np.array([0, -1, 2, 2, 1])))


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_labels_out_of_range_in_a_loop_batch(dev, net, dtype):
    """Labels in the form a reader's loop passes (int64/int32 of the device): the step's own path
    still refuses a label below 0 or above C-1, with the range."""
    x, _, _ = data(dev)
    for bad, seen in (([0, -1, 2, 2, 1], r"\[-1, 2\]"), ([0, 1, 3, 2, 1], r"\[0, 3\]")):
        with pytest.raises(ValueError, match=r"labels t must lie in \[0, 2\].*" + seen):
            net.gradient(x, dev.asarray(np.array(bad), dtype=dtype))


def test_every_label_form_gives_the_same_gradient(dev, net):
    """int64 and int32 labels (the loop's path), uint8 (converted) and one-hot rows (checked as
    distributions) are one batch: the same gradients, the same loss."""
    x, _, _ = data(dev)
    labels = np.array([0, 1, 2, 2, 1])
    forms = [dev.asarray(labels, dtype=d) for d in ("int64", "int32", "uint8")]
    forms.append(dev.asarray(np.eye(C)[labels], dtype="float32"))
    grads, losses = [], []
    for t in forms:
        grads.append({k: dev.to_numpy(v) for k, v in net.gradient(x, t).items()})
        losses.append(float(net.lastLayer.loss))
    for g in grads[1:]:
        for k in g:
            np.testing.assert_array_equal(g[k], grads[0][k])
    assert losses == [losses[0]] * 4


def test_labels_of_the_wrong_shape(dev, net):
    x, _, _ = data(dev)
    with pytest.raises(ValueError, match=r"integer labels t must have shape \(5,\)"):
        net.gradient(x, dev.asarray(np.array([0, 1, 2])))
    with pytest.raises(ValueError, match=r"one-hot labels t must have shape \(5, 3\), got \(5, 4\)"):
        net.gradient(x, dev.asarray(np.zeros((5, 4)), dtype="float32"))


def test_non_float_input(dev, net):
    x = dev.asarray(np.zeros((5, 8), dtype=np.uint8))
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        net.gradient(x, data(dev)[1])


def test_input_of_another_float_dtype_is_converted_at_the_net(dev, net):
    """Data, not a precision choice: the book feeds float32 MNIST into its float64 net."""
    x, t, _ = data(dev)
    x64 = dev.asarray(dev.to_numpy(x), dtype="float64")
    assert float(net.loss(x64, t)) == pytest.approx(float(net.loss(x, t)), rel=1e-6)
    assert net.predict(x64).dtype == net.dtype
    with pytest.raises(TypeError, match="float64.*float32"):  # a layer used directly still refuses
        with dev.scope():
            net.layers["Affine1"].forward(x64)


def test_float64_one_hot_labels_on_a_float32_net(dev, net):
    x, t, _ = data(dev)
    t64 = dev.asarray(np.eye(3)[dev.to_numpy(t)], dtype="float64")
    g1 = net.gradient(x, t64)
    assert all(g.dtype == dev.xp.float32 for g in g1.values())
    g1 = {k: dev.to_numpy(v).copy() for k, v in g1.items()}
    g2 = net.gradient(x, t)
    for k in g1:
        np.testing.assert_allclose(g1[k], dev.to_numpy(g2[k]), rtol=1e-6, atol=1e-7)
    assert net.loss(x, t64).dtype == dev.xp.float32


def test_accuracy_refuses_a_bad_batch_size(dev, net):
    x, t, _ = data(dev)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        net.accuracy(x, t, batch_size=-1)


@pytest.mark.parametrize("bad", [[[0.0] * D], "abc", None, 3.0], ids=["list", "str", "None", "float"])
@pytest.mark.parametrize("entry", ["predict", "loss"])
def test_something_not_an_array_is_refused(dev, net, entry, bad):
    call = net.predict if entry == "predict" else lambda x: net.loss(x, None)
    with pytest.raises(TypeError, match=rf"x must be an array on {dev.name}.*asarray"):
        call(bad)


@pytest.mark.parametrize("entry,which", [("predict", "x"), ("gradient", "x"), ("gradient", "t"), ("loss", "t")])
def test_an_array_of_another_device_is_named(dev, net, entry, which):
    other = "array_api_strict" if dev.name != "array_api_strict" else other_than_host()
    here, there = data(dev), data(xpnet.device(other))
    x, t = (there if which == "x" else here)[0], (there if which == "t" else here)[1]
    calls = {"predict": lambda: net.predict(x), "gradient": lambda: net.gradient(x, t), "loss": lambda: net.loss(x, t)}
    with pytest.raises(ValueError, match=rf"{which} is on device '{other}', but the net is on '{dev.name}'.*asarray"):
        calls[entry]()


def test_same_device_other_array_type_names_the_type(dev):
    """A NumPy subclass on the CPU (or a torch Parameter) is not the array type the net uses:
    the message names both types instead of 'on device cpu but the net is on cpu'."""
    if dev.name == "cpu":
        other, fix = np.ma.masked_array(np.zeros((2, D), dtype=np.float32)), "asarray"
    elif dev.name == "torch":
        import torch

        other, fix = torch.nn.Parameter(torch.zeros(2, D)), r"x.detach\(\)"
    else:
        pytest.skip("no other array type lives on this device")
    net = xpnet.TwoLayerNet(D, 4, C, device=dev, dtype="float32", seed=0)
    with pytest.raises(TypeError, match=f"x is a .*, not the .* that the net on '{dev.name}' computes with.*{fix}"):
        net.predict(other)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_in_x_is_refused_where_data_enters(dev, net, value):
    x, t, _ = data(dev)
    host = dev.to_numpy(x).copy()
    host[3, 2] = value
    bad = dev.asarray(host)
    for call in (lambda: net.loss(bad, t), lambda: net.accuracy(bad, t), lambda: net.predict(bad),
                 lambda: net.numerical_gradient(bad, t)):
        with pytest.raises(ValueError, match=r"x holds 1 NaN or infinite value, the first in sample 3.*clean"):
            call()


@pytest.mark.in_device_scope  # the test's own arithmetic on the device (see conftest)
def test_all_nan_batch_has_no_accuracy(dev, net):
    x, t, _ = data(dev)
    with pytest.raises(ValueError, match="x holds 40 NaN"):
        net.accuracy(x * float("nan"), t)


@pytest.mark.in_device_scope
def test_the_nan_scan_is_not_in_gradient(dev, net):
    """Not in the hot loop: a NaN batch gives NaN gradients there, the trainer catches the loss."""
    x, t, _ = data(dev)
    g = net.gradient(x * float("nan"), t)
    assert not bool(dev.xp.all(dev.xp.isfinite(g["W2"])))


def other_than_host():
    """A device whose arrays are not NumPy's (a net moves NumPy data onto its device itself)."""
    pytest.importorskip("torch")
    return "torch"


def test_np_random_seed_repeats_a_net_drawn_without_a_seed():
    """As with the book's nets, which draw from NumPy's global generator."""
    np.random.seed(3)
    a = xpnet.MultiLayerNetExtend([5, 4, 3], use_dropout=True, device="cpu")
    np.random.seed(3)
    b = xpnet.MultiLayerNetExtend([5, 4, 3], use_dropout=True, device="cpu")
    np.testing.assert_array_equal(a.params["W1"], b.params["W1"])
    assert a.layers["Dropout1"].seed == b.layers["Dropout1"].seed
    assert not np.array_equal(xpnet.MultiLayerNet([5, 4, 3], device="cpu").params["W1"], a.params["W1"])


# -- params= (issue 27): copied, checked, and seeds named ------------------------------------------
@pytest.mark.parametrize("make", [
    lambda dev, p=None, **kw: xpnet.TwoLayerNet(4, 3, 2, device=dev, params=p, **kw),
    lambda dev, p=None, **kw: xpnet.MultiLayerNetExtend([4, 3, 2], use_batchnorm=True, device=dev, params=p, **kw),
    lambda dev, p=None, **kw: xpnet.SimpleConvNet((1, 6, 6), {"filter_num": 2, "filter_size": 3}, 3, 2, device=dev,
                                                  params=p, **kw),
], ids=["two-layer", "extend", "simple-conv"])
def test_params_are_the_nets_own_copies_and_checked_by_key_and_shape(dev, make):
    given = {k: dev.to_numpy(v) for k, v in make(dev, seed=0).params.items()}
    for v in given.values():
        v.flags.writeable = False  # read-only arrays work: the net trains its own copies
    a, b = make(dev, given), make(dev, given)
    before = {k: v.copy() for k, v in given.items()}
    with dev.scope():
        for k in a.params:
            a.params[k] -= 1.0
    for k in given:
        np.testing.assert_array_equal(given[k], before[k])  # the caller's arrays
        np.testing.assert_array_equal(dev.to_numpy(b.params[k]), before[k])  # and another net's
    first = next(iter(given))
    with pytest.raises(ValueError, match=rf"must hold exactly .*'{first}' is missing"):
        make(dev, {k: v for k, v in given.items() if k != first})
    with pytest.raises(ValueError, match=r"'W9' is not one of them"):
        make(dev, dict(given, W9=np.ones(2)))
    with pytest.raises(ValueError, match=rf"params\['{first}'\] has shape .* make it"):
        make(dev, dict(given, **{first: np.ones((7,) + given[first].shape[1:])}))


@pytest.mark.parametrize("seed", [-1, "x", 1.5, True])
def test_a_bad_seed_is_named_even_when_params_are_given(seed):
    p = {k: np.asarray(v) for k, v in xpnet.TwoLayerNet(4, 3, 2, seed=0, device="cpu").params.items()}
    for make in (lambda: xpnet.TwoLayerNet(4, 3, 2, seed=seed, device="cpu"),
                 lambda: xpnet.TwoLayerNet(4, 3, 2, seed=seed, params=p, device="cpu"),
                 lambda: xpnet.MultiLayerNet([4, 3, 2], seed=seed, device="cpu"),
                 lambda: xpnet.DeepConvNet(seed=seed, device="cpu")):
        with pytest.raises(ValueError, match=r"seed must be a non-negative integer or None"):
            make()


def test_torch_inputs_that_require_grad_are_refused_naming_detach():
    """Computing on them would grow an autograd graph step after step (787 MB against 253 MB over
    1000 steps, measured): every entry point says to pass .detach()."""
    torch = pytest.importorskip("torch")
    dev = xpnet.device("torch")
    net = xpnet.TwoLayerNet(4, 3, 2, device=dev, seed=0)
    x, t = torch.rand(5, 4, dtype=torch.float64, requires_grad=True), torch.tensor([0, 1, 0, 1, 1])
    for call in (lambda: net.gradient(x, t), lambda: net.loss(x, t), lambda: net.predict(x),
                 lambda: net.accuracy(x, t)):
        with pytest.raises(TypeError, match=r"x requires grad.*pass x\.detach\(\)"):
            call()
    with pytest.raises(TypeError, match=r"x_train requires grad.*x_train\.detach\(\)"):
        xpnet.Trainer(net, x, t, iters=1, log=None, progress=False)
    assert float(net.loss(x.detach(), t)) > 0


def test_layers_that_do_not_chain_or_sit_on_two_devices_are_named_at_construction():
    from xpnet.layers import Affine, Relu

    with pytest.raises(ValueError, match=r"layer 'Affine2' takes 5 inputs but layer 'Affine1' gives 3"):
        xpnet.Net([Affine(np.ones((4, 3)), np.zeros(3)), Relu(), Affine(np.ones((5, 2)), np.zeros(2))])
    xpnet.Net([Affine(np.ones((4, 3)), np.zeros(3)), Relu(), Affine(np.ones((3, 2)), np.zeros(2))])  # fits
    xs = pytest.importorskip("array_api_strict")
    with pytest.raises(ValueError, match=r"params\['W2'\] is on array_api_strict but the net is on cpu"):
        xpnet.Net([Affine(np.ones((4, 3)), np.zeros(3)), Relu(),
                   Affine(xs.ones((3, 2), dtype=xs.float64), xs.zeros(2, dtype=xs.float64))])


def test_tied_weights_get_the_gradient_of_both_uses(dev):
    """One W in two Affines (an autoencoder's tie): net.params holds it once and its gradient is
    the sum of both layers' (it was refused as 'held by no layer'); checked against central
    differences, with weight decay counted once."""
    g = np.random.default_rng(0)
    W = dev.asarray(g.standard_normal((5, 5)), dtype="float64")
    b1, b2 = (dev.asarray(np.zeros(5), dtype="float64") for _ in range(2))
    for lam in (0, 0.1):
        net = xpnet.Net([xpnet.Affine(W, b1), xpnet.Tanh(), xpnet.Affine(W, b2)], weight_decay_lambda=lam)
        assert list(net.params) == ["W1", "b1", "b2"] and net.params["W1"] is W
        x = dev.asarray(g.standard_normal((4, 5)), dtype="float64")
        t = dev.asarray(np.array([0, 1, 2, 3]))
        report = xpnet.gradcheck(net, x, t, locate=False)
        assert report.passed, report
        assert float(net.penalty()) == pytest.approx(0.5 * lam * float((dev.to_numpy(W) ** 2).sum()))


def test_the_same_array_twice_in_params_is_refused_not_untied():
    W = np.ones((4, 4))
    with pytest.raises(ValueError, match=r"params\['W2'\] is the same array as params\['W1'\].*train apart"):
        xpnet.TwoLayerNet(4, 4, 4, params={"W1": W, "b1": np.zeros(4), "W2": W, "b2": np.zeros(4)})

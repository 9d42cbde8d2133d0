"""xpnet/optimizers.py: the book's SGD, Momentum, AdaGrad and Adam -- their formulas, updating in
place (the layers keep seeing the same arrays), each learning MNIST, their arguments checked -- and
chapter 6's Nesterov and RMSprop (against the book's own, ``tests.book``, and PyTorch), every one
updating a dict of numbers as the book's optimizer_compare_naive.py does."""

import numpy as np
import pytest

import xpnet
from xpnet.trainer import Trainer

from . import book
from .samples import small


@pytest.mark.parametrize("opt,lr", [("momentum", 0.05), ("adagrad", 0.05), ("adam", 0.002)])
def test_every_optimizer_learns(opt, lr, mnist):
    net = xpnet.TwoLayerNet(784, 50, 10, device="cpu", dtype="float32", seed=1)
    h = Trainer(net, *small(mnist, 3000), iters=400, optimizer=opt, lr=lr, log=None, progress=False).fit()
    assert h.final_test_acc > 0.85, (opt, h.final_test_acc)


def _reference_updates(name, w, g, steps=2):
    """The optimizers' formulas written out in plain NumPy float64."""
    v = np.zeros_like(w)
    h = np.zeros_like(w)
    m = np.zeros_like(w)
    for i in range(1, steps + 1):
        if name == "SGD":
            w = w - 0.1 * g
        elif name == "Momentum":
            v = 0.9 * v - 0.1 * g
            w = w + v
        elif name == "AdaGrad":
            h = h + g * g
            w = w - 0.1 * g / (np.sqrt(h) + 1e-7)
        else:  # Adam, the book's form
            lr_t = 0.01 * np.sqrt(1 - 0.999 ** i) / (1 - 0.9 ** i)
            m = m + 0.1 * (g - m)
            v = v + 0.001 * (g * g - v)
            w = w - lr_t * m / (np.sqrt(v) + 1e-7)
    return w


@pytest.mark.parametrize("opt", [xpnet.SGD(0.1), xpnet.Momentum(0.1), xpnet.AdaGrad(0.1), xpnet.Adam(0.01)],
                         ids=lambda o: type(o).__name__)
def test_optimizers_match_their_formulas_in_place(dev, opt):
    rng = np.random.default_rng(0)
    w0, g = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    p = {"W": dev.asarray(w0.copy(), dtype="float64")}  # on cpu asarray would share w0
    W = p["W"]
    grads = {"W": dev.asarray(g, dtype="float64")}
    opt = type(opt)(**{k: v for k, v in vars(opt).items() if k in ("lr", "momentum", "beta1", "beta2")})
    opt.update(p, grads)
    opt.update(p, grads)
    assert p["W"] is W  # the layers keep seeing the same array
    np.testing.assert_allclose(dev.to_numpy(W), _reference_updates(type(opt).__name__, w0, g), rtol=1e-12)


def test_sgd_update_is_exact(dev):
    p = {"W": dev.asarray([1.0, 2.0], dtype="float64")}
    xpnet.SGD(0.5).update(p, {"W": dev.asarray([2.0, -2.0], dtype="float64")})
    assert dev.to_numpy(p["W"]).tolist() == [0.0, 3.0]


@pytest.mark.parametrize("make,match", [
    (lambda: xpnet.Adam(beta1=1.0), r"beta1 must be a number in \[0, 1\)"),
    (lambda: xpnet.Momentum(momentum=float("nan")), r"momentum must be a number in \[0, 1\), got nan"),
], ids=["Adam beta1", "Momentum momentum"])
def test_optimizer_coefficients_are_checked(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_empty_update_is_a_clear_error():
    with pytest.raises(ValueError, match="no parameters"):
        xpnet.SGD().update({}, {})
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        xpnet.SGD().update({"W": np.zeros(2), "b": np.zeros(2)}, {"W": np.zeros(2)})


# -- chapter 6: Nesterov and RMSprop, and a dict of numbers ---------------------------------
@pytest.mark.parametrize("name", ["Nesterov", "RMSprop"])
def test_nesterov_and_rmsprop_follow_the_books_rules(dev, name):
    rng = np.random.default_rng(0)
    ref = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    book_opt = getattr(book, name)(lr=0.1)  # the book's common/optimizer.py
    params = {k: dev.asarray(v, dtype="float64") for k, v in ref.items()}
    opt = getattr(xpnet, name)(lr=0.1)
    for _ in range(5):
        g = {k: rng.standard_normal(v.shape) for k, v in ref.items()}
        book_opt.update(ref, g)
        opt.update(params, {k: dev.asarray(v, dtype="float64") for k, v in g.items()})
    for k in ref:
        np.testing.assert_allclose(dev.to_numpy(params[k]), ref[k], rtol=1e-13)


def test_rmsprop_agrees_with_torch():
    torch = pytest.importorskip("torch")
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

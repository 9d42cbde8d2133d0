"""CuPy runs kernels on the *current* GPU and array-api-compat ignores ``device=`` for it, so on
``cuda:1`` every computation must happen inside ``Device.scope()``. No GPU is needed to check
that: a fake ``cuda:1`` on NumPy whose arrays record any operation made outside its scope.
"""

import threading

import numpy as np
import pytest

import xpnet
import xpnet.backend as D
from xpnet.backend import Device
from xpnet.trainer import Trainer

_state = threading.local()


def _inside():
    return getattr(_state, "depth", 0) > 0


class Tracked(np.ndarray):
    """An ndarray of the fake GPU: remembers ops that ran while the device was not current."""

    outside: list = []

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        if not _inside():
            Tracked.outside.append(f"{ufunc.__name__}.{method}")
        inputs = tuple(i.view(np.ndarray) if isinstance(i, Tracked) else i for i in inputs)
        if "out" in kw:
            outs = kw["out"]
            kw["out"] = tuple(o.view(np.ndarray) if isinstance(o, Tracked) else o for o in outs)
            getattr(ufunc, method)(*inputs, **kw)
            return outs[0] if len(outs) == 1 else outs
        res = getattr(ufunc, method)(*inputs, **kw)
        return res.view(Tracked) if isinstance(res, np.ndarray) else res

    def __array_function__(self, func, types, args, kwargs):
        if not _inside():
            Tracked.outside.append(func.__name__)
        res = super().__array_function__(func, tuple(t for t in types if t is not Tracked), args, kwargs)
        return res.view(Tracked) if isinstance(res, np.ndarray) and not isinstance(res, Tracked) else res


class _Scope:
    def __enter__(self):
        _state.depth = getattr(_state, "depth", 0) + 1

    def __exit__(self, *exc):
        _state.depth -= 1


class FakeCuda(Device):
    """A ``cuda:1`` on NumPy: only what CuPy does differently is overridden, as ``CupyDevice``
    does -- a scope to enter, allocation inside it -- plus the tracked array type. Its random
    numbers come from the base ``Generator``, placed with ``asarray``."""

    kind = "fakecupy"

    def __init__(self):
        super().__init__("cuda:1", np, native="cpu", array_type=Tracked)

    def scope(self):
        return _Scope()

    def asarray(self, data, dtype=None, copy=None):
        with self.scope():
            return np.array(data, dtype=self.dtype(dtype) if dtype is not None else None).view(Tracked)

    def to_numpy(self, x):
        return np.asarray(x).view(np.ndarray).copy()


@pytest.fixture
def fake_cuda(monkeypatch):
    dev = FakeCuda()
    monkeypatch.setitem(D._CACHE, "cuda:1", dev)  # so xpnet.device("cuda:1") and device_of find it
    Tracked.outside = []
    yield dev
    Tracked.outside = []


def test_every_public_entry_point_stays_on_its_gpu(fake_cuda):
    dev = fake_cuda
    rng = np.random.default_rng(0)
    xh, th = rng.random((40, 12)).astype(np.float32), rng.integers(0, 4, 40)
    net = xpnet.MultiLayerNet([12, 8, 4], device="cuda:1", seed=0)
    x, t = dev.asarray(xh), dev.asarray(th)
    t_hot64 = dev.asarray(np.eye(4)[th])
    net.predict(x)
    net.loss(x, t)
    net.loss(x, t_hot64)
    net.accuracy(x, t)
    for opt in (xpnet.SGD(0.1), xpnet.Momentum(0.1), xpnet.AdaGrad(0.1), xpnet.Adam(0.01)):
        opt.update(net.params, net.gradient(x, t))  # the book's own loop, optimizer called directly
    tr = Trainer(net, xh, th, xh, th, iters=30, batch_size=5, eval_interval=10, log=None, progress=False)
    tr.fit()
    tr.run_steps(3)
    Trainer(net, xh, th, iters=20, batch_size=5, record_loss=False, log=None, progress=False).fit()
    small = xpnet.MultiLayerNet([12, 3, 4], device="cuda:1", dtype="float64", seed=0)
    assert xpnet.gradcheck(small, dev.asarray(xh[:2], dtype="float64"), t[:2]).passed
    assert Tracked.outside == [], f"device work outside Device.scope(): {sorted(set(Tracked.outside))}"


def test_the_probe_sees_work_outside_the_scope(fake_cuda):
    x = fake_cuda.asarray(np.ones(3))
    x + 1  # noqa: B018 - outside any scope on purpose
    assert Tracked.outside == ["add.__call__"]

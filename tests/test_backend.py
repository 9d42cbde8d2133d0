"""xpnet/backend.py and xpnet/backends/: choosing a device (by name, from the context or
``XPNET_DEVICE``), its arrays and random numbers, one class per backend, and every public entry
point computing inside ``Device.scope()`` (checked on a fake ``cuda:1``, no GPU needed)."""

import threading

import numpy as np
import pytest

import xpnet
import xpnet.backend as D
from xpnet.backend import Device, DeviceUnavailableError
from xpnet.trainer import Trainer


# -- choosing a device ------------------------------------------------------------------
def test_devices_lists_the_always_available_ones():
    names = xpnet.devices()
    assert names[0] == "cpu"
    assert "array_api_strict" in names


def test_auto_never_fails_and_falls_back_to_cpu():
    dev = xpnet.device("auto")
    assert dev.name in xpnet.devices()
    if not any(n.startswith("cuda") for n in xpnet.devices()):
        assert dev.name == "cpu"


def test_cpu_device_is_numpy():
    dev = xpnet.device("cpu")
    assert dev.xp is np and dev.kind == "numpy"


@pytest.mark.parametrize("spec,match", [
    ("tpu", r"unknown device 'tpu'.*expected one of: auto, cpu, cuda, cuda:N, array_api_strict, torch"),
    ("", r"unknown device ''.*expected one of"),
    ("cuda:x", r"bad device index in 'cuda:x'.*cuda:N with N >= 0"),
    ("cuda:-1", r"bad device index in 'cuda:-1'"),
    ("torch:cuda:y", r"bad device index in 'torch:cuda:y'"),
])
def test_bad_specs_are_rejected_with_the_valid_forms(spec, match, monkeypatch):
    monkeypatch.setenv("XPNET_DEVICE", "cpu")  # a good one: the spec given is to blame, not the environment
    with pytest.raises(ValueError, match=match) as e:
        xpnet.device(spec)
    assert "XPNET_DEVICE" not in str(e.value)


@pytest.mark.parametrize("spec", ["cuda:x", "tpu", "torch:cuda:y"])
def test_bad_xpnet_device_names_the_variable(monkeypatch, spec):
    monkeypatch.setenv("XPNET_DEVICE", spec)
    with pytest.raises(ValueError, match=f"XPNET_DEVICE='{spec}'.*from the environment.*unset it"):
        xpnet.device()
    with pytest.raises(ValueError, match=f"XPNET_DEVICE='{spec}'"):
        xpnet.TwoLayerNet(4, 3, 2)


def test_unavailable_cuda_says_why_and_what_is_available():
    if any(n.startswith("cuda") for n in xpnet.devices()):
        with pytest.raises(DeviceUnavailableError, match="does not exist"):
            xpnet.device("cuda:99")
    else:
        with pytest.raises(DeviceUnavailableError) as e:
            xpnet.device("cuda")
        msg = str(e.value)
        assert ("CuPy" in msg or "GPU" in msg) and "Available: cpu" in msg


def test_device_type_error():
    with pytest.raises(TypeError, match="device must be a string"):
        xpnet.device(3)


def test_default_from_context_and_environment(monkeypatch):
    monkeypatch.setenv("XPNET_DEVICE", "array_api_strict")
    assert xpnet.device().name == "array_api_strict"
    with xpnet.use_device("cpu") as d:
        assert d.name == "cpu" and xpnet.device().name == "cpu"
    assert xpnet.device().name == "array_api_strict"
    monkeypatch.delenv("XPNET_DEVICE")
    assert xpnet.device().name == xpnet.device("auto").name


# -- a device's arrays --------------------------------------------------------------------
def test_roundtrip_and_dtype(dev):
    host = np.arange(6, dtype=np.float64).reshape(2, 3)
    a = dev.asarray(host, dtype="float32")
    assert a.dtype == dev.xp.float32
    assert dev.owns(a)
    back = dev.to_numpy(a)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, host.astype(np.float32))
    assert xpnet.device_of(a) is dev
    dev.synchronize()


def test_rng_is_seeded_and_in_range(dev):
    g1, g2 = dev.rng(7), dev.rng(7)
    a, b = dev.to_numpy(g1.normal((50, 4), "float64")), dev.to_numpy(g2.normal((50, 4), "float64"))
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean()) < 0.5 and 0.6 < a.std() < 1.4
    idx = dev.to_numpy(g1.integers(10, 1000))
    assert idx.shape == (1000,) and idx.min() >= 0 and idx.max() <= 9 and len(set(idx.tolist())) == 10
    assert dev.to_numpy(g1.normal((3,), "float32")).dtype == np.float32
    perm = dev.to_numpy(g1.permutation(20))
    assert sorted(perm.tolist()) == list(range(20))


def test_uniform_draws_are_seeded_in_range_and_continue_from_a_saved_state(dev):
    g = dev.rng(3)
    u = dev.to_numpy(g.uniform((200, 5), "float32"))
    assert u.dtype == np.float32 and u.min() >= 0 and u.max() < 1 and 0.4 < u.mean() < 0.6
    np.testing.assert_array_equal(dev.to_numpy(dev.rng(3).uniform((200, 5), "float32")), u)
    for _ in range(3):  # a dropout mask a step, between batch draws
        g.uniform((4, 5), "float64")
    g.integers(10, 7)
    state = g.get_state()
    if state["kind"] == "replay":  # CuPy's: a run of equal draws is one entry with its count
        assert len(state["calls"]) == 3 and state["calls"][1][1] == 3
    h = dev.rng(0)
    h.set_state(state)
    np.testing.assert_array_equal(dev.to_numpy(h.uniform((6,), "float64")), dev.to_numpy(g.uniform((6,), "float64")))


def test_a_hostile_replay_state_is_refused_before_it_replays():
    from xpnet.backends.cuda import MAX_REPLAYED_DRAWS, CupyGenerator

    g = CupyGenerator.__new__(CupyGenerator)  # set_state checks the record before it needs a GPU
    g.device = None
    for calls, why in (([[["uniform", [2, 2], "float32"], MAX_REPLAYED_DRAWS + 1]], "draws to replay"),
                       ([[["__init__", [2], "float32"], 1]], "unknown draw"), ("all", "calls of type str")):
        with pytest.raises(ValueError, match=why):
            g.set_state({"kind": "replay", "seed": 1, "calls": calls})


def test_numpy_arrays_do_not_belong_to_strict():
    strict = xpnet.device("array_api_strict")
    assert not strict.owns(np.ones(3))
    assert xpnet.device("cpu").owns(np.ones(3))


def test_take_rows_is_the_standards_take_along_the_first_axis(dev):
    x = dev.asarray(np.arange(12.0).reshape(4, 3), dtype="float32")
    idx = dev.asarray(np.array([3, 0, 0, 2]))
    with dev.scope():
        rows = dev.take_rows(x, idx)
    np.testing.assert_array_equal(dev.to_numpy(rows), np.arange(12.0).reshape(4, 3)[[3, 0, 0, 2]])
    assert dev.owns(rows) and rows.dtype == x.dtype


def test_device_memory_is_known(dev):
    m = dev.memory_bytes()
    assert m is None or (isinstance(m, int) and m > 2**20)


# -- one class per backend ------------------------------------------------------------
def test_each_backend_is_a_device_subclass_with_a_read_only_kind():
    from xpnet.backend import Device, NumpyDevice, StrictDevice

    cpu, strict = xpnet.device("cpu"), xpnet.device("array_api_strict")
    assert type(cpu) is NumpyDevice and type(strict) is StrictDevice
    assert isinstance(cpu, Device) and (cpu.kind, strict.kind) == ("numpy", "array_api_strict")
    with pytest.raises(AttributeError):
        cpu.kind = "cupy"
    assert repr(cpu) == "Device('cpu')" and str(strict) == "array_api_strict"


def test_device_module_never_switches_on_kind():
    """Behaviour lives in the subclasses: no ``kind`` in any expression but the class attributes."""
    import ast
    import inspect

    import xpnet.backend
    import xpnet.backends.base
    import xpnet.backends.cpu
    import xpnet.backends.cuda
    import xpnet.backends.pytorch
    import xpnet.backends.strict

    for module in (xpnet.backend, xpnet.backends.base, xpnet.backends.cpu, xpnet.backends.cuda,
                   xpnet.backends.pytorch, xpnet.backends.strict):
        tree = ast.parse(inspect.getsource(module))
        uses = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "kind"]
        assert uses == [], f"{module.__name__} reads .kind at lines {uses}"


def test_device_of_finds_devices_not_yet_built(monkeypatch):
    import xpnet.backend

    monkeypatch.setattr(xpnet.backend, "_CACHE", {})
    assert xpnet.device_of(np.ones(2)) is xpnet.device("cpu")
    with pytest.raises(TypeError, match="expected an array, got str"):
        xpnet.device_of("x")


def test_to_host_takes_numbers_and_any_device(dev):
    from xpnet.backend import to_host

    assert to_host(2.5).dtype == np.float64 and to_host([1, 2]).tolist() == [1, 2]
    a = to_host(dev.asarray([1.0, 2.0], dtype="float32"))
    assert isinstance(a, np.ndarray) and a.tolist() == [1.0, 2.0]


def test_scope_is_the_shared_null_scope_off_cupy(dev):
    from xpnet.backend import null_scope

    if dev.kind != "cupy":
        assert dev.scope() is null_scope()
    with null_scope():
        pass


# -- Device.scope(): kept by every entry point ----------------------------------------------
# CuPy runs kernels on the *current* GPU and array-api-compat ignores ``device=`` for it, so on
# ``cuda:1`` every computation must happen inside ``Device.scope()``. No GPU is needed to check
# that: a fake ``cuda:1`` on NumPy whose arrays record any operation made outside its scope.
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

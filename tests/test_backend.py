import numpy as np
import pytest

import xpnet
from xpnet.backend import DeviceUnavailableError


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


@pytest.mark.parametrize("spec,msg", [
    ("tpu", "unknown device 'tpu'; expected one of: auto, cpu, cuda, cuda:N, array_api_strict, torch"),
    ("", "unknown device ''; expected one of"),
    ("cuda:x", "bad device index in 'cuda:x': expected cuda:N with N >= 0"),
    ("cuda:-1", "bad device index in 'cuda:-1'"),
    ("torch:cuda:y", "bad device index in 'torch:cuda:y'"),
])
def test_bad_specs_are_rejected_with_the_valid_forms(spec, msg):
    with pytest.raises(ValueError) as e:
        xpnet.device(spec)
    assert msg in str(e.value)


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


def test_numpy_arrays_do_not_belong_to_strict():
    strict = xpnet.device("array_api_strict")
    assert not strict.owns(np.ones(3))
    assert xpnet.device("cpu").owns(np.ones(3))


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


# -- BLAS threads -----------------------------------------------------------------------
def test_blas_thread_limit_validates_and_reports():
    from xpnet.threads import blas_thread_limit

    for bad in (0, -1, 1.5, True, "1"):
        with pytest.raises(ValueError, match=r"blas_thread_limit\(n\): n must be a positive integer"):
            with blas_thread_limit(bad):
                pass
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with blas_thread_limit(1) as applied:
        assert applied is True
        blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert all(i["num_threads"] == 1 for i in blas)


def test_step_scope_policy(monkeypatch):
    from xpnet.backend import null_scope

    cpu = xpnet.device("cpu")
    monkeypatch.delenv("XPNET_BLAS_THREADS", raising=False)
    assert cpu.step_scope(1e9) is null_scope()  # big products keep every thread
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with cpu.step_scope(1e6):  # small ones run on one thread: reproducible, and safe on a busy machine
        blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert all(i["num_threads"] == 1 for i in blas)
    monkeypatch.setenv("XPNET_BLAS_THREADS", "zero")
    with pytest.raises(ValueError, match="XPNET_BLAS_THREADS must be a positive integer or 'auto', got 'zero'"):
        cpu.step_scope(1e6)
    strict = xpnet.device("array_api_strict")
    assert strict.step_scope(1e6) is strict.scope()  # no policy off the NumPy CPU


def test_blas_controller_kept_for_the_benchmark():
    from xpnet.threads import _blas_controller

    ctl = _blas_controller()
    if ctl is not None:
        with ctl.limit(limits=1, user_api="blas"):
            pass


def test_thread_chooser_keeps_the_faster_count_and_races_again():
    from xpnet.threads import ThreadChooser

    c = ThreadChooser(full=2, probes=3, every=10)
    seen = []
    for _ in range(6):  # the race: both counts, alternately
        n = c.pick()
        seen.append(n)
        c.record(n, 1.0 if n == 1 else 3.0)  # a busy machine: one thread is 3x faster
    assert sorted(seen) == [1, 1, 1, 2, 2, 2] and c.choice == 1
    assert [c.pick() for _ in range(9)] == [1] * 9
    raced = []
    for _ in range(6):  # then the race again: the machine went idle, two threads win now
        n = c.pick()
        raced.append(n)
        c.record(n, 1.0 if n == 1 else 0.8)
    assert sorted(raced) == [1, 1, 1, 2, 2, 2] and c.choice == 2
    assert ThreadChooser(full=1).pick() == 1  # one core: nothing to choose


def test_small_steps_are_timed_and_get_a_thread_count_when_asked(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setenv("XPNET_BLAS_THREADS", "auto")
    cpu = xpnet.device("cpu")
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    for _ in range(12):
        with cpu.step_scope(1234567.0, steps=4):
            pass
    from xpnet.backends.cpu import _CHOOSERS

    assert _CHOOSERS[1234567.0].choice in _CHOOSERS[1234567.0].arms
    after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert after == before  # every block restores what it found


def test_thread_chooser_races_again_when_its_choice_turns_slow():
    from xpnet.threads import ThreadChooser

    c = ThreadChooser(full=2, probes=3, every=1000)
    for _ in range(6):
        n = c.pick()
        c.record(n, 1.0 if n == 2 else 2.0)  # idle: two threads win
    assert c.choice == 2
    for _ in range(3):  # then another program takes a core: the two-thread runs slow down 4x
        assert c.pick() == 2
        c.record(2, 4.0)
    assert c.pick() == 1 and c.choice is None  # the race again, starting with one thread
    c.record(1, 1.5)
    assert c.pick() == 2


def test_products_openblas_never_threads_get_no_thread_scope(monkeypatch):
    from xpnet.backend import null_scope

    monkeypatch.setenv("XPNET_BLAS_THREADS", "1")
    assert xpnet.device("cpu").step_scope(1e3) is null_scope()  # 4x16x8: nothing to hold back


def test_take_rows_is_the_standards_take_along_the_first_axis(dev):
    x = dev.asarray(np.arange(12.0).reshape(4, 3), dtype="float32")
    idx = dev.asarray(np.array([3, 0, 0, 2]))
    with dev.scope():
        rows = dev.take_rows(x, idx)
    np.testing.assert_array_equal(dev.to_numpy(rows), np.arange(12.0).reshape(4, 3)[[3, 0, 0, 2]])
    assert dev.owns(rows) and rows.dtype == x.dtype

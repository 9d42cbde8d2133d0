"""Cross-backend testing for your own code: xpnet's device fixtures and assertions, as a pytest plugin.

Opt in from your project's ``conftest.py``::

    pytest_plugins = ["xpnet.testing"]

or on the command line, ``pytest -p xpnet.testing``. Then::

    from xpnet.testing import assert_close, assert_gradcheck

    def test_my_tanh(device, xp):                 # runs once per available device
        x = device.asarray([[0.5, -1.0]], dtype=xp.float64)
        assert_close(MyTanh().forward(x), xp.tanh(x))
        assert_gradcheck(MyTanh(), x)             # AssertionError with the report when backward is wrong

Fixtures ``device`` (an ``xpnet.Device``) and ``xp`` (its namespace) are parametrised over every
selected device: cpu and array_api_strict always, torch when importable, each CUDA GPU CuPy sees.
``--xpnet-devices cpu,torch`` (or ``XPNET_TEST_DEVICES``) selects; devices that cannot run here are
left out at collection and named once, with the reason, in the summary -- not one SKIPPED line per
test. ``@pytest.mark.xpnet(devices=[...], dtypes=[...])`` restricts one test; a test asking for the
``dtype`` fixture runs once per dtype (float32 and float64 unless the mark says otherwise). The
fixtures are session-scoped, so they work inside hypothesis' ``@given`` and under pytest-xdist.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest

from .backend import device as get_device, device_of, dtype_name
from .exceptions import DeviceUnavailableError
from .validation import is_array

__all__ = ["assert_close", "assert_gradcheck", "assert_same_on_every_device", "tolerances", "selected_devices",
           "DEFAULT_DEVICES"]

DEFAULT_DEVICES = ("cpu", "array_api_strict", "torch", "cuda")
DEFAULT_DTYPES = ("float32", "float64")
_TOL = {"float64": (1e-10, 1e-12), "float32": (2e-5, 1e-6), "float16": (2e-3, 1e-3), "bfloat16": (2e-2, 1e-2)}


# ---------------------------------------------------------------------------------------------
# assertions (usable without the plugin)
# ---------------------------------------------------------------------------------------------
def tolerances(dtype) -> tuple:
    """(rtol, atol) that fit a floating dtype of any backend; integers and bools compare exactly."""
    return _TOL.get(dtype_name(dtype), (0.0, 0.0))


def _where(a) -> str:
    try:
        return device_of(a).name
    except TypeError:
        return type(a).__module__.split(".")[0] + " " + type(a).__name__


def assert_close(actual, desired, *, rtol=None, atol=None, err_msg: str = "") -> None:
    """``actual`` equals ``desired`` within tolerances that fit their dtype.

    Both must be arrays of the same device (or ``desired`` a Python number or list, taken as
    exact host values): comparing a torch array with a NumPy one is refused, not converted
    silently. Shapes and dtypes must match. The message names the worst index, both values, the
    device and the tolerances.
    """
    __tracebackhide__ = True
    if not is_array(actual):
        raise TypeError(f"assert_close: actual must be an array, got {type(actual).__name__}")
    if is_array(desired):
        wa, wd = _where(actual), _where(desired)
        if wa != wd:
            raise AssertionError(f"assert_close: actual is on {wa} but desired on {wd}; put both on one device "
                                 f"(device.asarray(...)) -- arrays of two devices are never compared silently")
        if dtype_name(actual.dtype) != dtype_name(desired.dtype):
            raise AssertionError(f"assert_close: dtypes differ: actual {dtype_name(actual.dtype)}, desired "
                                 f"{dtype_name(desired.dtype)}{' -- ' + err_msg if err_msg else ''}")
        d = _host(desired)
    elif isinstance(desired, (int, float, bool, list, tuple)):
        d = np.asarray(desired)
    else:
        raise TypeError(f"assert_close: desired must be an array of actual's device or a Python number/list, "
                        f"got {type(desired).__name__}")
    a = _host(actual)
    for side, arr in (("actual", a), ("desired", d)):
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"assert_close: {side} holds {arr.dtype} values, not numbers; compare numbers only")
    if a.shape != d.shape:
        raise AssertionError(f"assert_close: shapes differ: actual {a.shape}, desired {d.shape}"
                             f"{' -- ' + err_msg if err_msg else ''}")
    r0, a0 = tolerances(actual.dtype)
    rtol = r0 if rtol is None else rtol
    atol = a0 if atol is None else atol
    ints = a.dtype.kind in "biu" and d.dtype.kind in "biu"
    wide = np.complex128 if "c" in (a.dtype.kind, d.dtype.kind) else np.float64  # imaginary parts compared too
    a64, d64 = a.astype(wide), d.astype(wide)
    if ints and rtol == 0 and atol == 0:
        bad = a != d
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            finite = np.isfinite(a64) & np.isfinite(d64)  # inf only equals the same inf: 1 vs inf, inf vs -inf differ
            near = finite & (np.abs(a64 - d64) <= atol + rtol * np.abs(d64))
            bad = ~(near | (a64 == d64) | (np.isnan(a64) & np.isnan(d64)))
    if not bad.any():
        return
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(bad, np.abs(a64 - d64), -1.0)
        err = np.where(np.isnan(err), np.inf, err)
    worst = np.unravel_index(int(np.argmax(err)), a.shape) if a.ndim else ()
    idx = "[" + ", ".join(str(int(i)) for i in worst) + "]"
    diff = abs(int(a[worst]) - int(d[worst])) if ints else f"{abs(a64[worst] - d64[worst]):.3g}"  # exact for ints
    raise AssertionError(
        f"assert_close: {int(bad.sum())} of {a.size} values differ on {_where(actual)} ({dtype_name(actual.dtype)}, "
        f"rtol {rtol:g}, atol {atol:g}); worst at {idx}: actual {str(a[worst])}, desired {str(d[worst])}, "
        f"|diff| {diff}{' -- ' + err_msg if err_msg else ''}")


def _host(a) -> np.ndarray:
    if isinstance(a, np.ndarray):
        return a
    return np.asarray(device_of(a).to_numpy(a))


def assert_gradcheck(target, *inputs, **options) -> None:
    """``xpnet.gradcheck(target, *inputs, **options)`` must pass; else an AssertionError whose
    message is the report: each wrong gradient with its reason and, for a net, the layer. The
    report's warnings (right gradients, risky habits) become Python warnings, so the test run shows them."""
    __tracebackhide__ = True
    from .gradient_check import gradcheck

    report = gradcheck(target, *inputs, **options)
    for text in report.warnings:
        warnings.warn(f"gradient check: {text}", UserWarning, stacklevel=2)
    if not report.passed:
        wrong = [f"{k}: {r.reason}" if r.reason else k for k, r in report.items() if not r.passed]
        head = "gradient check failed" + (f" in layer {', '.join(report.culprits)}" if report.culprits else "")
        raise AssertionError(head + (": " + "; ".join(wrong) if wrong else "") + "\n" + str(report))


def assert_same_on_every_device(fn, *host_inputs, devices=None, rtol=None, atol=None, dtype=None):
    """``fn(*inputs)`` gives the same result on every device as on the CPU.

    ``host_inputs`` are host data (NumPy arrays, lists, numbers); each device gets its own copy
    (floating data in ``dtype`` when given). ``fn`` returns an array or a tuple/list/dict of
    arrays, computed with the inputs' namespace. ``devices``: names (default: the devices the
    plugin selected, else every usable one). Tolerances fit the result's dtype. Returns
    ``{device name: host result}``.
    """
    __tracebackhide__ = True
    names = list(devices) if devices is not None else _selected_or_usable()
    ref_dev = get_device("cpu")
    ref_keys, ref = _flatten(fn(*(_place(ref_dev, v, dtype) for v in host_inputs)))
    out = {"cpu": [_host(r) for r in ref]}
    left_out = {}
    for name in names:
        try:
            dev = get_device(name)
        except DeviceUnavailableError as e:
            left_out[name] = str(e)
            continue
        if dev.name == "cpu":
            continue
        with dev.scope():
            keys, got = _flatten(fn(*(_place(dev, v, dtype) for v in host_inputs)))
        if keys != ref_keys:
            raise AssertionError(f"fn gave results {keys} on {dev.name} but {ref_keys} on cpu")
        if len(got) != len(ref):
            raise AssertionError(f"fn gave {len(got)} results on {dev.name} but {len(ref)} on cpu")
        out[dev.name] = []
        for i, (g, r) in enumerate(zip(got, ref)):
            if not dev.owns(g):  # a NumPy-only layer would pass everywhere, having computed on the CPU
                raise AssertionError(f"result {i if keys is None else repr(keys[i])} on {dev.name} is a "
                                     f"{type(g).__module__}.{type(g).__qualname__}, not an array of {dev.name}: fn "
                                     "must compute with its inputs' namespace (array_namespace(x)), not NumPy")
            h = _host(g)
            out[dev.name].append(h)
            rt, at = tolerances(g.dtype)
            assert_close(ref_dev.asarray(h), r, rtol=rtol if rtol is not None else rt,
                         atol=atol if atol is not None else at,
                         err_msg=f"result {i if keys is None else repr(keys[i])} on {dev.name} vs cpu")
    if len(out) == 1:  # nothing but the reference ran: not a pass
        why = "; ".join(f"{k}: {v}" for k, v in left_out.items()) or f"the devices given were {names or 'none'}"
        pytest.skip(f"assert_same_on_every_device compared nothing with the cpu ({why})")
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def _place(dev, v, dtype):
    a = np.asarray(v)
    if dtype is not None and a.dtype.kind == "f":
        return dev.asarray(a, dtype=dtype)
    return dev.asarray(a)


def _flatten(res) -> tuple:
    """(the result's keys or None, its arrays in order)."""
    if isinstance(res, dict):
        keys = sorted(res)
        return keys, [res[k] for k in keys]
    if isinstance(res, (tuple, list)):
        return None, list(res)
    return None, [res]


# ---------------------------------------------------------------------------------------------
# the plugin
# ---------------------------------------------------------------------------------------------
_RUNS: list = []  # one state per pytest run configured in this process, the innermost last


def _new_state(selected=None) -> dict:
    """What one run selected, found unusable and left out: a pytest run inside a test (pytester)
    keeps its own, and the run around it finds its own again when the inner one ends."""
    return {"selected": selected, "unavailable": {}, "left_out": {}}


def _state() -> dict:
    return _RUNS[-1] if _RUNS else _new_state()


def selected_devices(config=None) -> list:
    """The device names the run selected (``--xpnet-devices`` / ``XPNET_TEST_DEVICES``), CUDA expanded."""
    raw = ""
    if config is not None:
        raw = config.getoption("xpnet_devices", default=None) or ""
    raw = raw or os.environ.get("XPNET_TEST_DEVICES", "")
    names = [d.strip() for d in raw.split(",") if d.strip()] if raw else list(DEFAULT_DEVICES)
    out = []
    for n in names:
        if n in ("cuda", "gpu"):
            out += _cuda_names() or ["cuda"]
        else:
            out.append(n)
    return list(dict.fromkeys(out))


def _cuda_names() -> list:
    from .backend import devices as usable

    return [d for d in usable() if d.startswith("cuda:")]


def _selected_or_usable() -> list:
    if _state()["selected"] is not None:
        return _state()["selected"]
    from .backend import devices as usable

    return usable()


def pytest_addoption(parser):
    group = parser.getgroup("xpnet", "xpnet devices")
    group.addoption("--xpnet-devices", dest="xpnet_devices", default=None,
                    help="comma-separated devices for the device/xp fixtures (default: "
                         f"{','.join(DEFAULT_DEVICES)}; env XPNET_TEST_DEVICES)")
    group.addoption("--xpnet-device-tests-only", dest="xpnet_device_tests_only", action="store_true",
                    help="run only the tests that take the device/xp fixtures (deselect the rest): what a GPU "
                         "machine has to run, without repeating the device-independent tests")


def pytest_configure(config):
    config.addinivalue_line("markers", "xpnet(devices=None, dtypes=None): run this test only on these xpnet "
                                       "devices and/or dtypes")
    _RUNS.append(_new_state(selected_devices(config)))
    raw = config.getoption("xpnet_devices", default=None) or os.environ.get("XPNET_TEST_DEVICES", "")
    selected = _state()["selected"]
    if raw and selected and not any(_usable(n) is not None for n in selected):  # asked for, none here:
        from .backend import devices as usable  # a run of nothing would end green

        why = "; ".join(f"{n}: {_state()['unavailable'].get(n, '?')}" for n in selected)
        raise pytest.UsageError(f"--xpnet-devices / XPNET_TEST_DEVICES {raw!r}: none of these devices is usable "
                                f"here ({why}); usable: {', '.join(usable())}")


def pytest_unconfigure(config):
    if _RUNS:
        _RUNS.pop()


def _usable(name):
    unavailable = _state()["unavailable"]
    if name in unavailable:
        return None
    try:
        return get_device(name)
    except DeviceUnavailableError as e:
        unavailable[name] = str(e)
    except (ValueError, TypeError) as e:
        raise pytest.UsageError(f"--xpnet-devices / XPNET_TEST_DEVICES: {e}") from None
    return None


_DEVICE_NAME = re.compile(r"cpu|array_api_strict|torch(:cuda(:\d+)?)?|cuda(:\d+)?")
_DTYPE_NAMES = ("float16", "float32", "float64")


def _check_mark(mark, where: str) -> None:
    """``@pytest.mark.xpnet(devices=[...], dtypes=[...])`` as the plugin reads it, or a usage
    error naming the test: a misspelt device or dtype would otherwise leave a test unrun without
    a word, and a string ``devices='cpu'`` would be read letter by letter."""
    def fail(why):
        raise pytest.UsageError(f"{where}: @pytest.mark.xpnet{why}")

    if mark.args:
        fail(f" takes keywords devices=[...] and dtypes=[...], got the positional {mark.args!r}")
    unknown = sorted(set(mark.kwargs) - {"devices", "dtypes"})
    if unknown:
        fail(f"(...) has no keyword {unknown[0]!r}; it takes devices=[...] and dtypes=[...]")
    known_devices = "cpu, array_api_strict, torch, cuda, cuda:N, torch:cuda[:N]"
    for key, ok, known in (("devices", _DEVICE_NAME.fullmatch, known_devices),
                           ("dtypes", lambda v: v in _DTYPE_NAMES, ", ".join(_DTYPE_NAMES))):
        value = mark.kwargs.get(key)
        if value is None:
            continue
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            fail(f"({key}={value!r}): give a list, e.g. {key}=[{value!r}]")
        bad = [v for v in value if not isinstance(v, str) or not ok(v)]
        if bad:
            fail(f"({key}=...): unknown {key[:-1]} {bad[0]!r}; known: {known}")


def pytest_generate_tests(metafunc):
    names = set(metafunc.fixturenames)
    mark = metafunc.definition.get_closest_marker("xpnet")
    if mark is not None:
        _check_mark(mark, metafunc.definition.nodeid)
    if "dtype" in names:
        taken = {a.strip() for m in metafunc.definition.iter_markers("parametrize")
                 for a in (m.args[0].split(",") if isinstance(m.args[0], str) else m.args[0])}
        if "dtype" not in taken:  # a test's own parametrize of dtype wins
            dtypes = (mark.kwargs.get("dtypes") if mark is not None else None) or DEFAULT_DTYPES
            metafunc.parametrize("dtype", list(dtypes), indirect=True, scope="session")
    if "xpnet_device_name" not in names:  # no device/xp fixture (or the test parametrizes its own "device")
        return
    state = _state()
    wanted = list(state["selected"] or selected_devices(metafunc.config))
    if mark is not None and mark.kwargs.get("devices"):
        only = list(mark.kwargs["devices"])
        wanted = [d for d in wanted if d in only or d.split(":")[0] in only]
    params = []
    for name in wanted:
        dev = _usable(name)
        if dev is None:
            state["left_out"][name] = state["left_out"].get(name, 0) + 1
            continue
        params.append(pytest.param(dev.name, id=dev.name))
    if not params:
        why = "; ".join(f"{n}: {state['unavailable'].get(n, 'not selected')}" for n in wanted) or "none selected"
        params = [pytest.param(None, id="no-device",
                               marks=pytest.mark.skip(reason=f"no selected xpnet device is usable here ({why})"))]
    metafunc.parametrize("xpnet_device_name", params, scope="session")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("xpnet_device_tests_only", default=False):
        return
    keep, drop = [], []
    for item in items:
        (keep if "xpnet_device_name" in getattr(item, "fixturenames", ()) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def dtype(request):
    """A ``str``, the name of a floating dtype: ``"float32"`` then ``"float64"`` (``@pytest.mark.xpnet(
    dtypes=[...])`` narrows it). A name, not a dtype object, so one test reads on every backend:
    ``device.dtype(dtype)`` is the backend's dtype, ``device.asarray(a, dtype=dtype)`` takes it."""
    return request.param


@pytest.fixture(scope="session")
def xpnet_device_name(request):
    return request.param


@pytest.fixture(scope="session")
def device(xpnet_device_name):
    """The xpnet Device this test runs on (one test per selected, usable device)."""
    return get_device(xpnet_device_name)


@pytest.fixture(scope="session")
def xp(device):
    """The Array API namespace of ``device``."""
    return device.xp


def pytest_report_header(config):
    sel = _state()["selected"] or selected_devices(config)
    return f"xpnet devices: {', '.join(sel)}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = _state()
    left = state["left_out"]
    if not left:
        return
    terminalreporter.section("xpnet devices left out", sep="-")
    for name, count in sorted(left.items()):
        why = state["unavailable"].get(name, "")
        terminalreporter.write_line(f"{name}: {count} test function(s) not run -- {why}")

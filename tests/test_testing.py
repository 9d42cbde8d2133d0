"""xpnet/testing.py: the pytest plugin and assertions a library author uses (cross-backend testing for
everyone), tried on the example layer library and on runs of pytest inside this one."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.testing import assert_close, assert_gradcheck, assert_same_on_every_device, tolerances

from .optional_hypothesis import given, settings, st

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(cwd, *args, env=None):
    e = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(cwd)]), **(env or {})}
    e.pop("XPNET_TEST_DEVICES", None) if "XPNET_TEST_DEVICES" not in (env or {}) else None
    quiet = [] if "-v" in args else ["-q"]
    return subprocess.run([sys.executable, "-m", "pytest", *quiet, "-p", "no:cacheprovider", *args], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def inner(pytester, monkeypatch):
    """pytest run inside this process (a run of its own, as the plugin must allow): no device
    selection from the environment unless a test sets one, test modules imported by path (the
    example library's tests/test_layers.py is not this suite's)."""
    monkeypatch.delenv("XPNET_TEST_DEVICES", raising=False)
    for name in [m for m in sys.modules if m == "tests" or m.startswith("tests.")]:
        monkeypatch.delitem(sys.modules, name)  # this suite's package: the inner project's tests/ is another

    def run(*args):
        r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--import-mode=importlib", *args)
        r.text = r.stdout.str() + r.stderr.str()
        return r

    return run


@pytest.fixture
def layer_library(pytester):
    """A copy of examples/layer_library as the inner run's project, its package importable."""
    shutil.copytree(ROOT / "examples" / "layer_library", pytester.path, dirs_exist_ok=True)
    pytester.syspathinsert(pytester.path)
    return pytester.path


def test_the_example_layer_library_passes_on_every_device(layer_library, inner):
    r = inner()
    assert r.ret == 0, r.text
    assert "passed" in r.text and "failed" not in r.text
    collected = inner("--collect-only").text
    for name in ("cpu", "array_api_strict"):
        assert f"test_swish_gradient[{name}]" in collected, collected  # the library's own tests, on each device


def test_the_example_library_bug_fails_naming_the_wrong_gradient(layer_library, inner, monkeypatch):
    monkeypatch.setenv("LAYER_LIBRARY_BUG", "1")
    r = inner()
    assert r.ret == 1, r.text
    assert "gradient check failed: w: Scale.backward gives a wrong dw" in r.text


PLUGIN_TESTS = '''
import pytest

def test_ids(device, xp):
    assert device.xp is xp

@pytest.mark.xpnet(devices=["cpu"])
def test_only_cpu(device):
    assert device.name == "cpu"

@pytest.mark.xpnet(dtypes=["float64"])
def test_dtype_mark(device, dtype):
    assert dtype == "float64"

def test_both_dtypes(dtype):
    assert dtype in ("float32", "float64")
'''


def test_plugin_fixtures_marks_and_device_selection(pytester, inner, monkeypatch):
    pytester.makepyfile(test_p=PLUGIN_TESTS)
    r = inner("-p", "xpnet.testing", "-v", "--xpnet-devices", "cpu,array_api_strict,cuda")
    assert r.ret == 0, r.text
    out = r.text
    assert "test_ids[cpu]" in out and "test_ids[array_api_strict]" in out
    assert "test_only_cpu[cpu]" in out and "test_only_cpu[array_api_strict]" not in out
    assert "test_dtype_mark[float64-cpu]" in out and "test_dtype_mark[float32" not in out
    assert "test_both_dtypes[float32]" in out
    assert "SKIPPED" not in out  # unavailable devices are named once in the summary instead
    if "cuda:0" not in xpnet.devices():
        assert "xpnet devices left out" in out and "cuda:" in out.split("xpnet devices left out")[1]
    monkeypatch.setenv("XPNET_TEST_DEVICES", "array_api_strict")
    env = inner("-p", "xpnet.testing", "-v")
    assert "test_ids[array_api_strict]" in env.text and "test_ids[cpu]" not in env.text
    monkeypatch.delenv("XPNET_TEST_DEVICES")
    bad = inner("-p", "xpnet.testing", "--xpnet-devices", "tpu")
    assert bad.ret != 0 and "unknown device 'tpu'" in bad.text


def test_a_run_inside_a_run_keeps_its_own_devices(pytester, inner):
    """The inner run's selection and its devices left out are its own; this run's come back after it."""
    def devices_compared():
        return set(assert_same_on_every_device(lambda x: x * 2, [1.0], dtype="float64"))

    outer = devices_compared()
    pytester.makepyfile(test_p=PLUGIN_TESTS)
    r = inner("-p", "xpnet.testing", "--xpnet-devices", "array_api_strict")
    assert r.ret == 0, r.text
    assert "xpnet devices: array_api_strict" in r.text and "xpnet devices left out" not in r.text
    assert devices_compared() == outer


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 5))
def test_the_fixtures_work_inside_hypothesis(device, xp, n):
    """The plugin's fixtures are session-scoped, so ``@given`` takes them (it refuses function-scoped ones)."""
    assert device.xp is xp and device.asarray([n]).shape == (1,)


def test_assert_close_uses_dtype_tolerances_and_names_the_worst_entry(dev):
    a = dev.asarray([1.0, 2.0, 3.0], dtype="float32")
    assert_close(a, dev.asarray([1.0, 2.0 + 1e-6, 3.0], dtype="float32"))  # within float32's tolerance
    with pytest.raises(AssertionError, match=r"1 of 3 values differ .*worst at \[2\]: actual 3\.0, desired 3\.1"):
        assert_close(a, dev.asarray([1.0, 2.0, 3.1], dtype="float32"))
    with pytest.raises(AssertionError, match="dtypes differ"):
        assert_close(a, dev.asarray([1.0, 2.0, 3.0], dtype="float64"))
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_close(a, dev.asarray([1.0, 2.0], dtype="float32"))
    assert tolerances(dev.xp.float64) == (1e-10, 1e-12)


def test_assert_close_refuses_two_devices():
    cpu, strict = xpnet.device("cpu"), xpnet.device("array_api_strict")
    with pytest.raises(AssertionError, match="actual is on array_api_strict but desired on cpu"):
        assert_close(strict.asarray([1.0]), np.asarray([1.0]))
    assert_close(cpu.asarray([1.0, 2.0]), [1.0, 2.0])  # Python values are exact host references


def test_assert_gradcheck_message_is_the_report(dev):
    class WrongSigmoid:
        def forward(self, x):
            xp = dev.xp
            self.y = 1.0 / (1.0 + xp.exp(-x))
            return self.y

        def backward(self, dout):
            return dout * self.y  # forgot (1 - y)

    x = dev.asarray([[0.3, -0.7]], dtype="float64")
    with pytest.raises(AssertionError, match=r"gradient check failed: x: .*WrongSigmoid.backward"):
        assert_gradcheck(WrongSigmoid(), x)


def test_assert_gradcheck_passes_a_dout_writer_and_warns():
    from .book import Relu  # the book's Relu: right gradients, dout[self.mask] = 0 in place

    with pytest.warns(UserWarning, match=r"\bRelu.backward modified its input dout.*dx = dout.copy\(\)"):
        assert_gradcheck(Relu(), np.linspace(-1, 1, 6))


def test_assert_same_on_every_device_finds_a_backend_difference():
    from array_api_compat import array_namespace, is_array_api_strict_namespace

    def fine(x):
        return array_namespace(x).exp(x) * 2

    res = assert_same_on_every_device(fine, np.linspace(-1, 1, 4), dtype="float64",
                                      devices=["cpu", "array_api_strict"])
    assert set(res) == {"cpu", "array_api_strict"}

    def differs(x):  # a backend-specific slip that only shows on one namespace
        xp = array_namespace(x)
        return x + 1e-3 if is_array_api_strict_namespace(xp) else x

    with pytest.raises(AssertionError, match="on array_api_strict vs cpu"):
        assert_same_on_every_device(differs, np.linspace(-1, 1, 4), dtype="float64",
                                    devices=["cpu", "array_api_strict"])


@pytest.mark.slow
def test_the_plugin_under_pytest_xdist(tmp_path):
    pytest.importorskip("xdist")
    (tmp_path / "test_p.py").write_text(PLUGIN_TESTS)
    r = run_pytest(tmp_path, "-p", "xpnet.testing", "-n", "2", "--xpnet-devices", "cpu,array_api_strict")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "7 passed" in r.stdout  # the same tests as without workers


@pytest.mark.parametrize("mark, message", [
    ("devices=['cpuu']", r"unknown device 'cpuu'"),
    ("devices='cpu'", r"devices='cpu'\): give a list, e.g. devices=\['cpu'\]"),
    ("dtypes=['float33']", r"unknown dtype 'float33'"),
    ("dtypes='float64'", r"give a list, e.g. dtypes=\['float64'\]"),
    ("device=['cpu']", r"has no keyword 'device'"),
    ("'cpu'", r"takes keywords devices=\[...\] and dtypes=\[...\]"),
])
def test_a_misused_xpnet_mark_is_a_usage_error_naming_the_test(pytester, inner, mark, message):
    """Not seven tests named 'c', 'p', 'u' nor a silent skip: the run stops, naming the test."""
    pytester.makepyfile(test_m=f"""
import pytest

@pytest.mark.xpnet({mark})
def test_marked(device):
    pass
""")
    r = inner("-p", "xpnet.testing", "--xpnet-devices", "cpu")
    assert r.ret != 0 and "test_marked" in r.text, r.text
    assert re.search(message, r.text), r.text


@pytest.mark.parametrize("actual, desired", [
    ([np.inf], [-np.inf]), ([1.0], [np.inf]), ([np.inf], [1.0]), ([1 + 1j], [1 + 2j]),
])
def test_assert_close_fails_infinities_that_differ_and_compares_imaginary_parts(actual, desired):
    with pytest.raises(AssertionError, match="values differ"):
        assert_close(np.array(actual), np.array(desired))


def test_assert_close_reports_the_exact_integer_difference_and_refuses_strings():
    a, d = np.array([2 ** 60], dtype=np.int64), np.array([2 ** 60 + 1], dtype=np.int64)
    with pytest.raises(AssertionError, match=r"\|diff\| 1$"):  # float64 would say 0
        assert_close(a, d)
    with pytest.raises(TypeError, match="not numbers"):
        assert_close(np.array(["a"]), np.array(["a"]))
    assert_close(np.array([np.inf, np.nan]), np.array([np.inf, np.nan]))  # the same values pass


def test_assert_same_on_every_device_never_passes_having_compared_nothing():
    with pytest.raises(pytest.skip.Exception, match="compared nothing with the cpu"):
        assert_same_on_every_device(lambda x: x * 2, [1.0], devices=["cpu"])
    with pytest.raises(pytest.skip.Exception, match="compared nothing.*cuda:7"):
        assert_same_on_every_device(lambda x: x * 2, [1.0], devices=["cuda:7"])


def test_assert_same_on_every_device_fails_when_the_devices_return_other_keys():
    pytest.importorskip("array_api_strict")

    def fn(x):
        name = type(x).__module__.split(".")[0]
        return {"out": x * 2} if name == "numpy" else {"y": x * 2}

    with pytest.raises(AssertionError, match=r"fn gave results \['y'\] on array_api_strict but \['out'\] on cpu"):
        assert_same_on_every_device(fn, [1.0], devices=["array_api_strict"])


def test_selecting_only_devices_that_are_not_here_is_a_usage_error(pytester, inner):
    """``--xpnet-devices cuda`` on a machine without a GPU: not a green run of nothing."""
    pytester.makepyfile(test_d="def test_on(device):\n    pass\n")
    r = inner("-p", "xpnet.testing", "--xpnet-devices", "cuda:7")
    assert r.ret != 0 and "none of these devices is usable here" in r.text and "cuda:7" in r.text, r.text
    ok = inner("-p", "xpnet.testing", "--xpnet-devices", "cpu,cuda:7")  # some here: the rest named, the run goes on
    assert ok.ret == 0 and "xpnet devices left out" in ok.text, ok.text


def test_a_numpy_only_function_does_not_pass_on_another_device():
    pytest.importorskip("array_api_strict")
    with pytest.raises(AssertionError, match=r"on array_api_strict is a numpy.ndarray, not an array of "
                                             r"array_api_strict.*inputs' namespace"):
        assert_same_on_every_device(lambda x: np.tanh(np.asarray(x)), [0.5, 1.0], devices=["array_api_strict"])


def test_the_example_conftest_line_is_what_registers_the_plugin(tmp_path):
    """Inside this suite the plugin is loaded already; a fresh pytest in a copy of the example
    shows that its one-line conftest is what brings the fixtures and --xpnet-devices."""

    lib = tmp_path / "layer_library"
    shutil.copytree(ROOT / "examples" / "layer_library", lib)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PYTHONPATH"] = str(ROOT)

    def pytest_in(*args):
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300)

    r = pytest_in("layer_library", "--xpnet-devices", "cpu")  # from outside the folder, uninstalled
    assert r.returncode == 0 and "passed" in r.stdout, r.stdout + r.stderr
    (lib / "tests" / "conftest.py").write_text("")
    r = pytest_in("layer_library", "--xpnet-devices", "cpu")
    assert r.returncode == 4 and "unrecognized arguments: --xpnet-devices" in r.stderr, r.stdout + r.stderr

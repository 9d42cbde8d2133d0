"""One device fixture for the whole suite, as scikit-learn and SciPy do it.

Every test that takes ``dev`` runs once per device: cpu and array_api_strict always, torch when
it is importable, cuda when CuPy sees a GPU. Unavailable devices are skipped with the reason,
reported once per device in ``-ra``'s summary (``SKIPPED [45] device cuda unavailable: ...``)
instead of once per test, so the other skips stay visible.
Restrict the set with ``pytest --devices cpu,torch`` or ``XPNET_TEST_DEVICES=cuda``.
"""

import os

import pytest

import xpnet

ALL_DEVICES = ["cpu", "array_api_strict", "torch", "cuda"]


def pytest_addoption(parser):
    parser.addoption(
        "--devices",
        default=os.environ.get("XPNET_TEST_DEVICES", ""),
        help="comma-separated devices to test on (default: %s)" % ",".join(ALL_DEVICES),
    )


def selected_devices(config):
    raw = config.getoption("--devices")
    return [d.strip() for d in raw.split(",") if d.strip()] if raw else ALL_DEVICES


def pytest_generate_tests(metafunc):
    if "dev_name" in metafunc.fixturenames:
        metafunc.parametrize("dev_name", selected_devices(metafunc.config))


_DEVICE_SKIP = pytest.StashKey[str]()


@pytest.fixture
def dev(dev_name, request):
    try:
        return xpnet.device(dev_name)
    except xpnet.DeviceUnavailableError as e:
        reason = f"device {dev_name} unavailable: {e}"
        request.node.stash[_DEVICE_SKIP] = reason
        pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A skip for an unavailable device is reported from this file with no line number, so -ra
    folds all of a device's skips into one line with their count."""
    rep = yield
    reason = item.stash.get(_DEVICE_SKIP, None)
    if reason is not None and rep.skipped and isinstance(rep.longrepr, tuple):
        rep.longrepr = (__file__, None, reason)
    return rep


def tol(dtype_name):
    """(rtol, atol) that fit a dtype."""
    return {"float64": (1e-12, 1e-12), "float32": (2e-5, 1e-6)}[dtype_name]

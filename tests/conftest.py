"""xpnet's own suite runs on its public pytest plugin, as a user's project would.

``xpnet.testing`` parametrises every test that takes ``device``/``xp`` (here through ``dev``)
over cpu, array_api_strict, torch when importable and each GPU CuPy sees; devices that cannot run
here are left out and named once in the summary. Choose with ``pytest --xpnet-devices cpu,torch``
or ``XPNET_TEST_DEVICES=cuda``.
"""

import pytest

pytest_plugins = ["xpnet.testing", "pytester"]  # pytester: the plugin's own tests run pytest inside


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A small IDX dataset (8x8 images, 3 classes, 300 + 60 images) for ``--data-dir``."""
    from .idx_files import make_tiny_idx

    return make_tiny_idx(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def mnist():
    """The bundled MNIST, ((x_train, t_train), (x_test, t_test)), loaded once a module."""
    import xpnet

    return xpnet.load_mnist()


@pytest.fixture(scope="session")
def dev(device):
    """The suite's short name for the plugin's ``device``."""
    return device


def tol(dtype_name):
    """(rtol, atol) that fit a dtype."""
    return {"float64": (1e-12, 1e-12), "float32": (2e-5, 1e-6)}[dtype_name]


def pytest_configure(config):
    config.addinivalue_line("markers", "in_device_scope: run each device test inside its device's scope")


@pytest.fixture(autouse=True)
def _in_device_scope(request):
    """Modules marked ``in_device_scope`` call layers and functions directly, which compute on
    the current GPU: on cuda:1 a user wraps such calls in ``with dev.scope():`` (README), and so
    do these tests. Nets, optimizers, the trainer and gradcheck enter it themselves: the
    modules testing them stay unmarked, so that a missing scope there fails on cuda:1."""
    if "device" not in request.fixturenames or request.node.get_closest_marker("in_device_scope") is None:
        yield
        return
    with request.getfixturevalue("device").scope():
        yield

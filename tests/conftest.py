"""xpnet's own suite runs on its public pytest plugin, as a user's project would.

``xpnet.testing`` parametrises every test that takes ``device``/``xp`` (here through ``dev``)
over cpu, array_api_strict, torch when importable and each GPU CuPy sees; devices that cannot run
here are left out and named once in the summary. Choose with ``pytest --xpnet-devices cpu,torch``
or ``XPNET_TEST_DEVICES=cuda``.
"""

import pytest

pytest_plugins = ["xpnet.testing"]


@pytest.fixture(scope="session")
def dev(device):
    """The suite's short name for the plugin's ``device``."""
    return device


def tol(dtype_name):
    """(rtol, atol) that fit a dtype."""
    return {"float64": (1e-12, 1e-12), "float32": (2e-5, 1e-6)}[dtype_name]

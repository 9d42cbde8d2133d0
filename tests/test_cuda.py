"""CUDA-only checks (run by ci/gpu.sh, and in CI on the simulated GPUs of tests/fakecupy): the
training step stays on its GPU, never waits for the host, and does not grow.

Marked for the cuda devices only: where CuPy sees no GPU the plugin leaves them out, with the
reason, in its summary. On the simulated GPUs the step's cross-device operations are counted
too (a real CuPy without peer access refuses them; with it, they run slowly through P2P).
"""

import contextlib
import warnings

import numpy as np
import pytest

import xpnet
from xpnet.trainer import Trainer

pytestmark = pytest.mark.xpnet(devices=["cuda"])

NETS = {"book net 784-50-10": [784, 50, 10], "deeper net 784-100-100-10": [784, 100, 100, 10]}


@pytest.fixture
def cuda(device):
    return device


def trainer(dev, sizes=(784, 50, 10), optimizer="sgd"):
    (x, t), (xt, tt) = xpnet.load_mnist()
    net = xpnet.MultiLayerNet(list(sizes), device=dev, dtype="float32", seed=0) if len(sizes) > 3 else \
        xpnet.TwoLayerNet(*sizes, device=dev, dtype="float32", seed=0)
    return Trainer(net, x[:6000], t[:6000], xt[:1000], tt[:1000], optimizer=optimizer, log=None, progress=False)


@contextlib.contextmanager
def host_waits_refused():
    """CuPy's own detector: any implicit device-to-host wait raises cupyx.DeviceSynchronized."""
    import cupyx

    allow = getattr(cupyx, "allow_synchronize", None)
    if allow is None:
        pytest.skip("this CuPy has no cupyx.allow_synchronize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will be removed in future releases"
        with allow(False):
            yield


def simulated_counts():
    """(cross-device operations, host synchronisations) so far on the simulated GPUs; None on a real GPU."""
    fake = getattr(__import__("cupy"), "_fake", None)
    return None if fake is None else (fake.STATS["cross_device"], fake.STATS["syncs"])


@pytest.mark.parametrize("sizes", list(NETS.values()), ids=list(NETS))
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_step_stays_on_its_gpu_and_never_waits_for_the_host(cuda, sizes, optimizer):
    tr = trainer(cuda, sizes, optimizer)
    tr.run_steps(20)  # warm-up: kernels compiled, pools filled
    cuda.synchronize()
    before = simulated_counts()
    with host_waits_refused():
        losses = tr.run_steps(50)
    after = simulated_counts()
    if before is not None:
        assert after[0] - before[0] == 0, "operations on another GPU than the net's"
        assert after[1] - before[1] == 0, "host synchronisations in the step"
    assert len(losses) == 50 and all(cuda.owns(v) for v in losses)
    assert all(cuda.owns(p) for p in tr.net.params.values())
    cuda.synchronize()


def test_memory_pool_is_flat_after_warm_up(cuda):
    import cupy

    tr = trainer(cuda)
    tr.run_steps(100)
    cuda.synchronize()
    with cuda.scope():  # the pool of the GPU under test, not of the current one
        pool = cupy.get_default_memory_pool()
        before = pool.used_bytes()
    for _ in range(5):
        tr.run_steps(100)  # each call returns its own 100 losses; hold none of them
    cuda.synchronize()
    with cuda.scope():
        assert pool.used_bytes() <= before + 100 * 64  # a few hundred bytes of 0-d losses at most


def test_cuda_gradients_match_cpu_on_the_same_batch(cuda):
    (x, t), _ = xpnet.load_mnist()
    na = xpnet.TwoLayerNet(784, 50, 10, device="cpu", dtype="float64", seed=3)
    nb = xpnet.TwoLayerNet(784, 50, 10, device=cuda, dtype="float64", seed=3)
    ga = na.gradient(x[:64].astype(np.float64), t[:64])
    gb = nb.gradient(cuda.asarray(x[:64], dtype="float64"), cuda.asarray(t[:64]))
    for k in ga:
        np.testing.assert_allclose(cuda.to_numpy(gb[k]), ga[k], rtol=1e-9, atol=1e-12)


def test_the_books_loss_read_outside_any_scope_is_computed_on_the_nets_gpu(cuda):
    (x, t), _ = xpnet.load_mnist()
    net = xpnet.TwoLayerNet(784, 50, 10, device=cuda, dtype="float32", seed=0)
    net.gradient(cuda.asarray(x[:100]), cuda.asarray(t[:100]))
    loss = net.lastLayer.loss  # the book's loop reads it here, with no scope of its own
    assert cuda.owns(loss) and np.isfinite(float(cuda.to_numpy(loss)))

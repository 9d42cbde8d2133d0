"""CUDA-only checks (run by ci/gpu.sh): the training step stays on the GPU and does not grow.

Marked for the cuda devices only: where CuPy sees no GPU the plugin leaves them out, with the
reason, in its summary.
"""

import numpy as np
import pytest

import xpnet
from xpnet.trainer import Trainer


pytestmark = pytest.mark.xpnet(devices=["cuda"])


@pytest.fixture
def cuda(device):
    return device


def trainer(dev):
    (x, t), (xt, tt) = xpnet.load_mnist()
    net = xpnet.TwoLayerNet(784, 50, 10, device=dev, dtype="float32", seed=0)
    return Trainer(net, x[:6000], t[:6000], xt[:1000], tt[:1000], log=None, progress=False)


def test_step_does_not_synchronize_with_the_host(cuda):
    import cupyx

    tr = trainer(cuda)
    tr.run_steps(20)  # warm-up: kernels compiled, pools filled
    cuda.synchronize()
    allow = getattr(cupyx, "allow_synchronize", None)
    if allow is None:
        pytest.skip("this CuPy has no cupyx.allow_synchronize")
    with allow(False):  # raises cupyx.DeviceSynchronized on any implicit device-to-host wait
        tr.run_steps(50)
    cuda.synchronize()


def test_memory_pool_is_flat_after_warm_up(cuda):
    import cupy

    tr = trainer(cuda)
    pool = cupy.get_default_memory_pool()
    tr.run_steps(100)
    cuda.synchronize()
    before = pool.used_bytes()
    for _ in range(5):
        tr.run_steps(100)  # each call returns its own 100 losses; hold none of them
    cuda.synchronize()
    assert pool.used_bytes() <= before + 100 * 64  # a few hundred bytes of 0-d losses at most


def test_cuda_gradients_match_cpu_on_the_same_batch(cuda):
    (x, t), _ = xpnet.load_mnist()
    na = xpnet.TwoLayerNet(784, 50, 10, device="cpu", dtype="float64", seed=3)
    nb = xpnet.TwoLayerNet(784, 50, 10, device=cuda, dtype="float64", seed=3)
    ga = na.gradient(x[:64].astype(np.float64), t[:64])
    gb = nb.gradient(cuda.asarray(x[:64], dtype="float64"), cuda.asarray(t[:64]))
    for k in ga:
        np.testing.assert_allclose(cuda.to_numpy(gb[k]), ga[k], rtol=1e-9, atol=1e-12)

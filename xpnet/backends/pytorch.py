"""``torch`` and ``torch:cuda:N``: PyTorch through array-api-compat, drawing with torch's own
generator and holding its CPU thread pool to the policy NumPy follows (``xpnet.threads``)."""

from __future__ import annotations

import numpy as np

from ..exceptions import DeviceUnavailableError, DistributedError
from ..threads import cpu_thread_scope
from .base import Device, Generator, host_memory_bytes, null_scope

_CHOOSERS: dict = {}  # the ThreadChoosers of torch's steps on the CPU


class TorchThreadPool:
    """torch's intra-op thread pool with the interface of a threadpoolctl BLAS controller, so
    that ``cpu_thread_scope`` holds torch on the CPU to the policy NumPy follows."""

    def __init__(self, torch):
        self._torch = torch
        self.num_threads = torch.get_num_threads()

    def get_num_threads(self) -> int:
        return self._torch.get_num_threads()

    def set_num_threads(self, n: int) -> None:
        self._torch.set_num_threads(n)


class TorchConvKernels:
    """torch's own conv2d and max_pool2d (oneDNN on the CPU, cuDNN on CUDA) behind xpnet's
    Convolution and Pooling on a torch device: the portable im2col path's numbers (the layer
    tests compare both with torch autograd at float64), several times faster."""

    def __init__(self, torch):
        self._torch, self._F = torch, torch.nn.functional

    def conv2d(self, x, W, b, stride: int, pad: int):
        return self._F.conv2d(x, W, b, stride, pad)

    def conv2d_backward(self, dout, x, W, stride: int, pad: int, compute_dx: bool):
        """(dx or None, dW, db) of ``conv2d`` at ``dout``."""
        return self._torch.ops.aten.convolution_backward(
            dout, x, W, [W.shape[0]], [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1,
            [compute_dx, True, True])

    @staticmethod
    def pools(pool_h: int, pool_w: int, pad: int) -> bool:
        return 2 * pad <= min(pool_h, pool_w)  # torch pads at most half a window

    def max_pool2d(self, x, pool_h: int, pool_w: int, stride: int, pad: int):
        """(out, indices): the maxima and where they are (the first of tied maxima, as argmax)."""
        return self._F.max_pool2d(x, (pool_h, pool_w), stride, pad, return_indices=True)

    def max_pool2d_backward(self, dout, x, indices, pool_h: int, pool_w: int, stride: int, pad: int):
        return self._torch.ops.aten.max_pool2d_with_indices_backward(
            dout, x, [pool_h, pool_w], [stride, stride], [pad, pad], [1, 1], False, indices)


class TorchDevice(Device):
    """``torch`` or ``torch:cuda:N``: PyTorch through array-api-compat."""

    __slots__ = ("_torch", "_threads", "_kernels")
    kind = "torch"

    def __init__(self, gpu: int | None = None):
        try:
            import torch
            from array_api_compat import array_namespace
        except ImportError as e:
            raise DeviceUnavailableError(
                "device 'torch' needs PyTorch, which is not installed: pip install torch"
            ) from e
        if gpu is None:
            native, name = torch.device("cpu"), "torch"
        else:
            if not torch.cuda.is_available():
                raise DeviceUnavailableError(
                    f"device 'torch:cuda:{gpu}': PyTorch sees no CUDA GPU here. "
                    f"Available: {', '.join(_usable())}"
                )
            if gpu >= torch.cuda.device_count():
                raise DeviceUnavailableError(
                    f"device 'torch:cuda:{gpu}': only {torch.cuda.device_count()} GPU(s) visible"
                )
            native = torch.device(f"cuda:{gpu}")
            name = f"torch:{native}"
        self._torch, self._kernels = torch, TorchConvKernels(torch)
        self._threads = (TorchThreadPool(torch),) if native.type == "cpu" else ()
        super().__init__(name, array_namespace(torch.empty(0)), native=native, array_type=torch.Tensor)

    def conv_kernels(self):
        return self._kernels

    def take_rows(self, x, indices):
        # array-api-compat's take wraps negative indices first (three more operations a call, on
        # the GPU three more kernels); a trainer's indices are never negative
        return self._torch.index_select(x, 0, indices)

    def step_scope(self, largest_product_flops: float, steps: int = 1):
        """On the CPU, NumPy's thread policy for torch's own pool (``cpu_thread_scope``): left
        alone, its threads spin for cores a busy machine does not give them. GPUs have none."""
        if not self._threads:
            return null_scope()
        return cpu_thread_scope(self._threads, largest_product_flops, steps, _CHOOSERS)

    @property
    def rng_kind(self) -> str:
        return TorchGenerator.state_kind + ("" if self.native.type == "cpu" else "-" + self.native.type)

    def to_numpy(self, x) -> np.ndarray:
        return x.detach().cpu().numpy()

    def synchronize(self) -> None:
        if self.native.type == "cuda":  # CUDA kernels are queued; CPU ones have already run
            self._torch.cuda.synchronize(self.native)

    def rng(self, seed=None) -> Generator:
        return TorchGenerator(self, seed)

    def memory_bytes(self) -> int | None:
        if self.native.type == "cuda":
            return int(self._torch.cuda.get_device_properties(self.native).total_memory)
        return host_memory_bytes()

    def owns(self, x) -> bool:
        # a tensor that requires grad is not the device's data: autograd would record every step on it
        return type(x) is self._array_type and x.device == self.native and not x.requires_grad

    def host_view(self, x):
        if self.native.type != "cpu":
            raise TypeError(f"device {self.name!r}: GPU tensors have no host view")
        return x.numpy()  # shares the tensor's memory

    def communicator(self):
        if self.native.type != "cpu":
            raise DistributedError(f"distributed training on {self.name} is not supported: use cuda (CuPy, NCCL) "
                                   "or torch on the CPU (MPI)")
        from ..distributed import mpi_communicator

        return mpi_communicator(self)


class TorchGenerator(Generator):
    """torch's own generator on the device: no host round trip per draw. A CPU generator's state
    and a CUDA one's differ ("torch" and "torch-cuda")."""

    state_kind = "torch"

    def __init__(self, dev: TorchDevice, seed=None):
        self.device, self.seed = dev, seed
        self.state_kind = dev.rng_kind
        torch = dev._torch
        self._torch = torch
        self._g = torch.Generator(device=dev.native)
        if seed is None:
            self._g.seed()  # fresh entropy for this generator only, not torch's global one
        else:
            self._g.manual_seed(seed)

    def normal(self, shape, dtype="float32", scale=1.0):
        a = self._torch.randn(tuple(shape), generator=self._g, device=self.device.native,
                              dtype=self.device.dtype(dtype))
        return a * scale if scale != 1.0 else a

    def uniform(self, shape, dtype="float32"):
        return self._torch.rand(tuple(shape), generator=self._g, device=self.device.native,
                                dtype=self.device.dtype(dtype))

    def integers(self, high: int, size: int):
        return self._torch.randint(0, int(high), (int(size),), generator=self._g, device=self.device.native)

    def permutation(self, n: int):
        return self._torch.randperm(int(n), generator=self._g, device=self.device.native)

    def get_state(self) -> dict:
        return {"kind": self.state_kind, "bytes": self._g.get_state().tolist()}

    def set_state(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("kind") != self.state_kind:
            raise ValueError(f"this generator ({self.device.name}) continues a {self.state_kind!r} state, got "
                             f"{state.get('kind') if isinstance(state, dict) else type(state).__name__!r}")
        try:
            self._g.set_state(self._torch.tensor(state["bytes"], dtype=self._torch.uint8))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"damaged random-generator state ({e})") from None


def _usable() -> list:
    from ..backend import devices  # the public face, which imports this module

    return devices()

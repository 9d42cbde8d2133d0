"""Every backend decision of xpnet lives here, and only here.

The layers, nets, optimizers and trainer are written once against the Python Array API
standard.  What the standard does not cover -- which library backs a device, putting host
data on it, bringing results back, random numbers, synchronisation -- is answered by the
``Device`` object this module hands out: one small class per backend, each overriding only
what its library does differently (as DeZero's ``cuda.py`` keeps NumPy-or-CuPy in one module,
and array-api-compat keeps one small function per backend behind one dispatch).
Supported specs:

``auto``              CuPy's first GPU when one is visible, else ``cpu``; never fails.
``cpu``               NumPy (NumPy 2 is itself an Array API namespace).
``cuda`` / ``cuda:N`` CuPy on GPU N (extra ``xpnet[cuda12]`` or ``xpnet[cuda13]``).
``array_api_strict``  the strict reference namespace: proves code uses only the standard.
``torch`` / ``torch:cuda`` / ``torch:cuda:N``  PyTorch through array-api-compat.

The default device comes from, in order: an enclosing ``use_device(...)`` block, the
``XPNET_DEVICE`` environment variable, then ``auto``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import os
import time
from typing import Any

import numpy as np

from .exceptions import DeviceUnavailableError

__all__ = [
    "Device",
    "NumpyDevice",
    "StrictDevice",
    "TorchDevice",
    "CupyDevice",
    "Generator",
    "DeviceUnavailableError",
    "device",
    "devices",
    "device_report",
    "use_device",
    "device_of",
    "dtype_name",
    "host_rng",
    "is_host_data",
    "to_host",
    "host_memory_bytes",
    "scoped",
    "scope_of",
    "null_scope",
    "blas_thread_limit",
]


# ---------------------------------------------------------------------------------------
# host-side helpers
# ---------------------------------------------------------------------------------------
def host_rng(seed=None):
    """The host generator (NumPy PCG64) used wherever results must agree across devices, such as
    initial weights: draw here, then place with ``Device.asarray``."""
    return np.random.default_rng(seed)


def is_host_data(x) -> bool:
    """True for data that lives on the host: NumPy arrays, lists, tuples, numbers."""
    return isinstance(x, (np.ndarray, np.generic, list, tuple, int, float))


def dtype_name(dt) -> str:
    """'float32' for any backend's float32 (NumPy/CuPy types, torch and strict dtypes, names)."""
    try:
        return np.dtype(dt).name
    except TypeError:
        return str(dt).rsplit(".", 1)[-1]


def to_host(x) -> np.ndarray:
    """A host NumPy array for an array of any device, or for host data (a number, a list).

    Code outside this module never imports NumPy; this is how it reads results back
    (DeZero's ``as_numpy``, for every backend)."""
    if is_host_data(x):
        return np.asarray(x)
    return device_of(x).to_numpy(x)


def host_memory_bytes() -> int | None:
    """The host's physical memory in bytes (``sysconf``), or None where the system does not say."""
    try:
        n = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return n if n > 0 else None


_NULL_SCOPE = contextlib.nullcontext()  # one shared no-op context: entering it costs ~100 ns


def null_scope():
    """The shared no-op context: the scope of every device but CuPy's, and of host data."""
    return _NULL_SCOPE


def scoped(method):
    """Run a method of an object that has a ``device`` inside ``self.device.scope()``.

    CuPy allocates and launches on the *current* GPU; entering the scope once, at the public
    method, keeps every array of ``cuda:N`` on GPU N without a ``with`` in each body.
    """

    @functools.wraps(method)
    def in_scope(self, *args, **kwargs):
        with self.device.scope():
            return method(self, *args, **kwargs)

    return in_scope


# ---------------------------------------------------------------------------------------
# BLAS threads (NumPy on the CPU)
# ---------------------------------------------------------------------------------------
_SMALL_PRODUCT_FLOPS = 16e6  # measured crossover on a 2-core machine (784-100-10 at batch 200 gains from 2)
_SERIAL_PRODUCT_FLOPS = 5e5  # below this (M*N*K < 65536*4) OpenBLAS's gemm never uses a second thread
_CHOOSERS: dict = {}  # NumPy's ThreadChoosers, one per kind of step (its largest product's size)
_TORCH_CHOOSERS: dict = {}  # torch's on the CPU


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, built once (a scan costs ~130 us)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def blas_thread_limit(n: int):
    """Hold the host BLAS (OpenBLAS, MKL) to ``n`` threads inside a ``with`` block.

    Yields True when the limit took effect, False when ``threadpoolctl`` (in the ``train``
    extra) is not installed and the block runs unchanged.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"blas_thread_limit(n): n must be a positive integer, got {n!r}")
    controller = _blas_controller()
    if controller is None:
        yield False
        return
    with controller.limit(limits=n, user_api="blas"):
        yield True


@functools.lru_cache(maxsize=1)
def _blas_libraries() -> tuple:
    """threadpoolctl's controllers of the BLAS libraries NumPy loaded (empty without it)."""
    controller = _blas_controller()
    return () if controller is None else tuple(c for c in controller.lib_controllers if c.user_api == "blas")


class _BlasThreads:
    """A ``with`` block holding the BLAS libraries to ``n`` threads through their own setters
    (threadpoolctl's per-library controllers): about 1.5 us a block against 5-9 us for
    ``threadpoolctl.limit``, cheap enough to wrap every ``gradient()`` call of a reader's loop."""

    __slots__ = ("libs", "n", "old")

    def __init__(self, libs, n: int):
        self.libs, self.n, self.old = libs, n, ()

    def __enter__(self):
        self.old = tuple(lib.get_num_threads() for lib in self.libs)
        for lib, old in zip(self.libs, self.old):
            if old != self.n:
                lib.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        for lib, old in zip(self.libs, self.old):
            if old is not None and old != self.n:
                lib.set_num_threads(old)
        return False


class ThreadChooser:
    """Which BLAS thread count runs one kind of step faster, found by timing the steps themselves.

    Neither choice is right everywhere: on an idle 2-core machine the book's step runs ~20 %
    faster on two OpenBLAS threads; on a machine busy with other work those threads spin for
    cores they do not get and the same step ran ~6x slower than on one. So the steps decide:
    the first ``probes`` runs alternate between one thread and all of them and the faster
    median wins; the race is run again when the winner turns slow (three runs in a row 1.5x
    its race median: the machine's load changed) and after ``every`` runs in any case.
    """

    def __init__(self, full: int, probes: int = 5, every: int = 400):
        self.arms = (1, full) if full > 1 else (1,)
        self.probes, self.every = probes, every
        self.samples = {n: [] for n in self.arms}
        self.choice, self.left, self.best, self.slow = None, 0, 0.0, 0

    def pick(self) -> int:
        if self.choice is not None:
            self.left -= 1
            if self.left > 0 and self.slow < 3:
                return self.choice
            self.choice, self.samples = None, {n: [] for n in self.arms}  # race again
        return min(self.arms, key=lambda n: len(self.samples[n]))

    def record(self, n: int, seconds_per_step: float) -> None:
        if self.choice is not None:
            self.slow = self.slow + 1 if seconds_per_step > 1.5 * self.best else 0
            return
        self.samples[n].append(seconds_per_step)
        if all(len(v) >= self.probes for v in self.samples.values()):
            med = {k: sorted(v)[len(v) // 2] for k, v in self.samples.items()}
            self.choice = min(med, key=med.get)
            self.best, self.left, self.slow = med[self.choice], self.every, 0


class _TimedBlasThreads(_BlasThreads):
    """``_BlasThreads`` with the count a ``ThreadChooser`` picks, timing the block for it."""

    __slots__ = ("chooser", "steps", "t0")

    def __init__(self, libs, chooser: ThreadChooser, steps: int):
        super().__init__(libs, chooser.pick())
        self.chooser, self.steps, self.t0 = chooser, steps, 0.0

    def __enter__(self):
        super().__enter__()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type, *exc):
        elapsed = time.perf_counter() - self.t0
        super().__exit__(exc_type, *exc)
        if exc_type is None:
            self.chooser.record(self.n, elapsed / self.steps)
        return False


def cpu_thread_scope(pools, largest_product_flops: float, steps: int, choosers: dict):
    """The thread count of the CPU's thread pools (``pools``: objects with ``get_num_threads``,
    ``set_num_threads`` and ``num_threads``, as threadpoolctl's BLAS controllers) for ``steps``
    steps whose largest product has this size.

    Products of 16 MFLOP and more keep every thread. Smaller ones -- the book's net: 7.8
    MFLOP -- run on one thread: a second thread helps them ~20 % on an idle 2-core machine but
    made them ~6x slower on a busy one (OpenBLAS; torch's pool ran 4-6x slower), and the thread
    count changes float32 results in the last bit (another kernel), so a fixed rule keeps runs
    reproducible bit for bit. ``XPNET_BLAS_THREADS=N`` fixes N; ``XPNET_BLAS_THREADS=auto``
    lets a ``ThreadChooser`` (one per size in ``choosers``) time both counts and keep the faster
    (results then depend on what it picked)."""
    if not pools:
        return _NULL_SCOPE
    mode = _blas_threads_from_env()
    if isinstance(mode, int):
        return _BlasThreads(pools, mode)
    if largest_product_flops >= _SMALL_PRODUCT_FLOPS:
        return _NULL_SCOPE
    if mode != "auto":
        return _BlasThreads(pools, 1)
    chooser = choosers.get(largest_product_flops)
    if chooser is None:
        full = max((getattr(p, "num_threads", 1) or 1) for p in pools)  # as the library started
        chooser = choosers[largest_product_flops] = ThreadChooser(full)
    return _TimedBlasThreads(pools, chooser, steps)


class _TorchThreads:
    """torch's intra-op thread pool with the interface of a threadpoolctl BLAS controller, so
    that ``cpu_thread_scope`` holds torch on the CPU to the policy NumPy follows."""

    def __init__(self, torch):
        self._torch = torch
        self.num_threads = torch.get_num_threads()

    def get_num_threads(self) -> int:
        return self._torch.get_num_threads()

    def set_num_threads(self, n: int) -> None:
        self._torch.set_num_threads(n)


_ENV_PARSED = [None, None]  # (the raw XPNET_BLAS_THREADS last parsed, what it meant): read every step


def _blas_threads_from_env():
    """``XPNET_BLAS_THREADS``: None (unset), a positive count, or ``"auto"``."""
    raw = os.environ.get("XPNET_BLAS_THREADS")
    if raw == _ENV_PARSED[0]:  # unset, or unchanged since the last step
        return _ENV_PARSED[1]
    mode = _parse_blas_threads(raw)
    _ENV_PARSED[:] = [raw, mode]
    return mode


def _parse_blas_threads(raw):
    env = (raw or "").strip().lower()
    if not env:
        return None
    if env == "auto":
        return "auto"
    if not (env.isdigit() and int(env) > 0):
        raise ValueError(f"XPNET_BLAS_THREADS must be a positive integer or 'auto', got {env!r}")
    return int(env)


# ---------------------------------------------------------------------------------------
# devices
# ---------------------------------------------------------------------------------------
class Device:
    """A place arrays live on, with its Array API namespace and its backend's extras.

    The base class serves any namespace that honours the standard's ``device=`` argument and
    exports DLPack; a subclass per backend overrides only what its library does otherwise.
    Build devices with ``xpnet.device(spec)``, which caches one per spec.
    """

    __slots__ = ("name", "xp", "native", "_array_type")
    kind = "array_api"  # for information only (reports, tests): behaviour lives in the methods

    def __init__(self, name: str, xp: Any, native: Any = None, array_type: type | None = None):
        self.name = name
        self.xp = xp
        self.native = native  # the backend's own device object (passed as ``device=``)
        self._array_type = array_type if array_type is not None else type(xp.asarray(0.0, device=native))

    # -- data in and out ------------------------------------------------------------
    def asarray(self, data, dtype=None, copy=None):
        """Put host data (lists, scalars, NumPy arrays) or a same-device array here.

        ``dtype`` may be a dtype of this namespace or a name such as ``"float32"``.
        """
        dt = self.dtype(dtype) if dtype is not None else None
        return self.xp.asarray(data, dtype=dt, device=self.native, copy=copy)

    def scope(self):
        """A context in which new arrays land on this device: only CuPy needs one (it ignores
        ``device=``), so here it is the shared no-op context."""
        return _NULL_SCOPE

    def to_numpy(self, x) -> np.ndarray:
        """Bring an array of this device back to a host NumPy array (a copy: DLPack may share
        the buffer, and the caller must not see later in-place updates)."""
        return np.from_dlpack(x).copy()

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op where work runs eagerly); needed for honest timings."""

    def memory_bytes(self) -> int | None:
        """The device's total memory in bytes, or None where it is unknown: the host's physical
        memory here (the CPU backends), the GPU's on CUDA devices. Cheap (no allocation); the
        nets compare their size with it before allocating."""
        return host_memory_bytes()

    # -- how to run a training step ---------------------------------------------------
    def take_rows(self, x, indices):
        """The rows of ``x`` at ``indices`` (integers in ``[0, len(x))``, as a trainer draws
        them): the standard's ``take`` along the first axis, or a cheaper gather where one is."""
        return self.xp.take(x, indices, axis=0)

    def step_scope(self, largest_product_flops: float, steps: int = 1):
        """A context for a run of training steps whose largest matrix product has this size.

        Only the CPU has a policy (``NumpyDevice``); elsewhere it is the device scope."""
        return self.scope()

    # -- dtypes ---------------------------------------------------------------------
    def dtype(self, dtype):
        """This namespace's dtype for ``dtype`` (a name, a NumPy dtype or a namespace dtype)."""
        if isinstance(dtype, (str, np.dtype)) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
            name = np.dtype(dtype).name
            if not hasattr(self.xp, name):
                raise TypeError(f"dtype {name!r} is not available on device {self.name!r}")
            return getattr(self.xp, name)
        return dtype

    # -- random numbers -------------------------------------------------------------
    def rng(self, seed=None) -> Generator:
        """A seeded random generator that draws directly on this device."""
        return Generator(self, seed)

    @property
    def rng_kind(self) -> str:
        """The kind of state this device's generators save: a saved run continues its random
        batches on any device whose generators are of the same kind (cpu and array_api_strict
        draw alike on the host; cuda:0 and cuda:1 alike), and on no other."""
        return Generator.state_kind

    # -- checks ---------------------------------------------------------------------
    # -- several processes ----------------------------------------------------------
    def communicator(self):
        """The engine that joins the processes of a distributed run on this kind of device; its
        ``device`` is the one this process computes on (the net and data belong there)."""
        from .exceptions import DistributedError

        raise DistributedError(f"distributed training is not available on device {self.name!r}: use cpu "
                               "(MPI) or cuda (NCCL)")

    def host_view(self, x):
        """``x`` as a NumPy array sharing its memory (what MPI reduces in place); CPU devices only."""
        raise TypeError(f"device {self.name!r} has no host view of its arrays")

    def owns(self, x) -> bool:
        """True when ``x`` is an array of this device (one exact type test where the backend
        has a single device)."""
        return type(x) is self._array_type

    def __repr__(self) -> str:
        return f"Device({self.name!r})"

    def __str__(self) -> str:
        return self.name


class Generator:
    """Normal draws and integer sampling on a device, seeded; the standard has no RNG.

    This base draws with NumPy's PCG64 on the host and places the result with
    ``device.asarray``: on the CPU and array-api-strict the same seed gives the same numbers.
    CuPy and torch subclass it to draw on the device with their own generators.
    """

    state_kind = "pcg64"  # what ``get_state`` saves; ``set_state`` continues only its own kind

    def __init__(self, dev: Device, seed=None):
        self.device = dev
        self.seed = seed
        self._g = np.random.default_rng(seed)

    def normal(self, shape, dtype="float32", scale=1.0):
        """Draws from N(0, scale^2) of ``shape`` and ``dtype``."""
        dt = dtype_name(self.device.dtype(dtype))
        a = self._g.standard_normal(tuple(shape))
        if scale != 1.0:
            a *= scale
        return self.device.asarray(a.astype(dt, copy=False))

    def integers(self, high: int, size: int):
        """``size`` integers drawn uniformly from ``[0, high)``, with replacement."""
        return self.device.asarray(self._g.integers(0, int(high), size=int(size)))

    def permutation(self, n: int):
        """The integers ``0..n-1`` in random order."""
        return self.device.asarray(self._g.permutation(int(n)))

    def get_state(self) -> dict:
        """A JSON-able snapshot: ``set_state`` on a generator of the same device continues the
        very same sequence (what a resumed training run needs to draw the same batches)."""
        return {"kind": "pcg64", "state": self._g.bit_generator.state}

    def set_state(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("kind") != "pcg64":
            raise ValueError(f"this generator ({self.device.name}) continues a 'pcg64' state, got "
                             f"{state.get('kind') if isinstance(state, dict) else type(state).__name__!r}")
        try:
            self._g.bit_generator.state = state["state"]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"damaged random-generator state ({e})") from None


class NumpyDevice(Device):
    """``cpu``: NumPy, whose 2.x main namespace is an Array API namespace itself."""

    __slots__ = ()
    kind = "numpy"

    def __init__(self):
        # array-api-compat's wrapper would only add a call layer around NumPy 2.
        super().__init__("cpu", np, native="cpu", array_type=np.ndarray)

    def to_numpy(self, x) -> np.ndarray:
        return np.asarray(x)  # already host memory: no copy, as before

    def host_view(self, x):
        return x

    def communicator(self):
        return _mpi_communicator(self)

    def step_scope(self, largest_product_flops: float, steps: int = 1):
        """The BLAS thread count for ``steps`` steps whose largest product has this size
        (``cpu_thread_scope``: the policy NumPy and torch on the CPU share)."""
        if largest_product_flops < _SERIAL_PRODUCT_FLOPS:
            return _NULL_SCOPE  # OpenBLAS runs these on one thread whatever the setting
        return cpu_thread_scope(_blas_libraries(), largest_product_flops, steps, _CHOOSERS)


class StrictDevice(Device):
    """``array_api_strict``: the reference namespace; the base class's standard-only paths
    (``device=``, DLPack, host draws) are all it needs, which is the point of it."""

    __slots__ = ()
    kind = "array_api_strict"

    def __init__(self):
        try:
            import array_api_strict as xp
        except ImportError as e:
            raise DeviceUnavailableError(
                "device 'array_api_strict' needs the package array-api-strict: "
                "pip install 'xpnet[test]'"
            ) from e
        a = xp.asarray(0.0)
        super().__init__("array_api_strict", xp, native=a.device, array_type=type(a))


class TorchDevice(Device):
    """``torch`` or ``torch:cuda:N``: PyTorch through array-api-compat."""

    __slots__ = ("_torch", "_threads")
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
                    f"Available: {', '.join(devices())}"
                )
            if gpu >= torch.cuda.device_count():
                raise DeviceUnavailableError(
                    f"device 'torch:cuda:{gpu}': only {torch.cuda.device_count()} GPU(s) visible"
                )
            native = torch.device(f"cuda:{gpu}")
            name = f"torch:{native}"
        self._torch = torch
        self._threads = (_TorchThreads(torch),) if native.type == "cpu" else ()
        super().__init__(name, array_namespace(torch.empty(0)), native=native, array_type=torch.Tensor)

    def take_rows(self, x, indices):
        # array-api-compat's take wraps negative indices first (three more operations a call, on
        # the GPU three more kernels); a trainer's indices are never negative
        return self._torch.index_select(x, 0, indices)

    def step_scope(self, largest_product_flops: float, steps: int = 1):
        """On the CPU, NumPy's thread policy for torch's own pool (``cpu_thread_scope``): left
        alone, its threads spin for cores a busy machine does not give them (a book-net step
        ran 4-6x slower than NumPy's on two busy cores). GPUs have none."""
        if not self._threads:
            return _NULL_SCOPE
        return cpu_thread_scope(self._threads, largest_product_flops, steps, _TORCH_CHOOSERS)

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
        return type(x) is self._array_type and x.device == self.native

    def host_view(self, x):
        if self.native.type != "cpu":
            raise TypeError(f"device {self.name!r}: GPU tensors have no host view")
        return x.numpy()  # shares the tensor's memory

    def communicator(self):
        if self.native.type != "cpu":
            from .exceptions import DistributedError

            raise DistributedError(f"distributed training on {self.name} is not supported: use cuda (CuPy, NCCL) "
                                   "or torch on the CPU (MPI)")
        return _mpi_communicator(self)


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


def _cupy_gpu_count() -> tuple[int, str]:
    """(number of GPUs CuPy can use, the reason when it is zero)."""
    try:
        import cupy
    except ImportError:
        return 0, ("CuPy is not installed; install the extra matching your CUDA: "
                   "pip install 'xpnet[cuda12]' or 'xpnet[cuda13]'")
    except Exception as e:  # a broken CuPy install
        return 0, f"CuPy failed to import: {e}"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return 0, f"CuPy sees no usable CUDA GPU ({type(e).__name__}: {e})"
    if n == 0:
        return 0, "CuPy is installed but no CUDA GPU is visible"
    return n, ""


class CupyDevice(Device):
    """``cuda:N``: CuPy on GPU N.

    array-api-compat ignores ``device=`` for CuPy, which allocates and launches kernels on the
    *current* GPU; so this device makes GPU N current in ``scope()``, and every computation
    on it runs inside that scope (see ``scoped``).
    """

    __slots__ = ("_cupy", "index")
    kind = "cupy"

    def __init__(self, index: int):
        n, why = _cupy_gpu_count()
        if n == 0:
            raise DeviceUnavailableError(
                f"device 'cuda:{index}' is unavailable: {why}. Available: {', '.join(devices())}"
            )
        if not 0 <= index < n:
            raise DeviceUnavailableError(
                f"device 'cuda:{index}' does not exist: CuPy sees {n} GPU(s), cuda:0..cuda:{n - 1}"
            )
        import cupy
        from array_api_compat import cupy as xp  # the namespace, without allocating on any GPU

        self._cupy, self.index = cupy, index
        # cupy.cuda.Device keeps the device to restore on a thread-local stack (CuPy 13, 14), so
        # this one object serves as every scope, from any thread. Building a device touches no
        # GPU: a CUDA context (hundreds of MB) appears only where the device computes.
        super().__init__(f"cuda:{index}", xp, native=cupy.cuda.Device(index), array_type=cupy.ndarray)

    def asarray(self, data, dtype=None, copy=None):
        dt = self.dtype(dtype) if dtype is not None else None
        with self.native:
            return self.xp.asarray(data, dtype=dt, copy=copy)

    def scope(self):
        return self.native

    @property
    def rng_kind(self) -> str:
        return CupyGenerator.state_kind

    def to_numpy(self, x) -> np.ndarray:
        return x.get()

    def synchronize(self) -> None:
        self.native.synchronize()

    def rng(self, seed=None) -> Generator:
        return CupyGenerator(self, seed)

    def memory_bytes(self) -> int | None:
        with self.scope():
            return int(self._cupy.cuda.runtime.memGetInfo()[1])  # (free, total) of the current GPU

    def owns(self, x) -> bool:
        return type(x) is self._array_type and x.device.id == self.index

    def communicator(self):
        """NCCL, one GPU per process: process k of a machine computes on GPU ``index + k`` (or on
        its own GPU where the launcher gives each process one), its ``communicator().device``
        (build the net there). That GPU becomes the process's current one: every later scope
        returns to it, and no other GPU gets a CUDA context."""
        from .distributed import DistributedError, MpiCommunicator, NcclCommunicator, choose_gpu, launched_by_mpi

        if not launched_by_mpi():
            raise DistributedError("--distributed runs one process per GPU under an MPI launcher: "
                                   "mpiexec -n <GPUs> xpnet train --distributed --device cuda")
        mpi = MpiCommunicator()
        cuda = self._cupy.cuda
        gpu = choose_gpu(mpi, self.index, cuda.runtime.getDeviceCount(), lambda i: cuda.Device(i).pci_bus_id)
        cuda.Device(gpu).use()
        return NcclCommunicator(mpi, device(f"cuda:{gpu}"))


class CupyGenerator(Generator):
    """CuPy's own generator, created and drawn from on GPU N.

    CuPy's generators expose no state to save, so this one remembers its seed (drawn from
    host entropy when none is given) and the draws made; ``set_state`` replays them on a fresh
    generator -- a few dozen calls for a whole training run."""

    state_kind = "replay"

    def __init__(self, dev: CupyDevice, seed=None):
        self.device = dev
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else seed
        self._calls = []
        with dev.scope():
            self._g = dev._cupy.random.default_rng(self.seed)

    @scoped
    def normal(self, shape, dtype="float32", scale=1.0):
        self._calls.append(["normal", list(shape), dtype_name(self.device.dtype(dtype))])
        a = self._g.standard_normal(tuple(shape), dtype=self.device.dtype(dtype))
        return a * scale if scale != 1.0 else a

    @scoped
    def integers(self, high: int, size: int):
        self._calls.append(["integers", int(high), int(size)])
        return self._g.integers(0, int(high), size=int(size))

    @scoped
    def permutation(self, n: int):
        self._calls.append(["permutation", int(n)])
        # CuPy's Generator has no permutation: sort uniform keys.
        return self.device._cupy.argsort(self._g.random(int(n)))

    def get_state(self) -> dict:
        return {"kind": "replay", "seed": self.seed, "calls": [list(c) for c in self._calls]}

    def set_state(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("kind") != "replay":
            raise ValueError(f"this generator ({self.device.name}) continues a 'replay' state, got "
                             f"{state.get('kind') if isinstance(state, dict) else type(state).__name__!r}")
        fresh = CupyGenerator(self.device, state["seed"])
        for call in state["calls"]:
            getattr(fresh, call[0])(*call[1:])
        self.seed, self._calls, self._g = fresh.seed, fresh._calls, fresh._g


def _mpi_communicator(dev):
    from .distributed import DistributedError, MpiCommunicator, launched_by_mpi

    if not launched_by_mpi():
        raise DistributedError("--distributed needs an MPI launcher: mpiexec -n 2 xpnet train --distributed "
                               "(pip install 'xpnet[mpi]' brings mpiexec); without it, train without --distributed")
    return MpiCommunicator(dev)


# ---------------------------------------------------------------------------------------
# choosing a device
# ---------------------------------------------------------------------------------------
_CACHE: dict[str, Device] = {}


def _normalize(spec: str) -> str:
    s = spec.strip().lower()
    if s in ("numpy", "cpu"):
        return "cpu"
    if s in ("strict", "array-api-strict", "array_api_strict"):
        return "array_api_strict"
    if s in ("cuda", "gpu"):
        return "cuda:0"
    if s == "torch:cpu":
        return "torch"
    if s == "torch:cuda":
        return "torch:cuda:0"
    return s


def _index(spec: str, prefix: str) -> int:
    idx = spec[len(prefix):]
    if not idx.isdigit():
        raise ValueError(f"bad device index in {spec!r}: expected {prefix}N with N >= 0")
    return int(idx)


def _build(spec: str) -> Device:
    """The one dispatch from a normalized spec to a backend class."""
    if spec == "cpu":
        return NumpyDevice()
    if spec == "array_api_strict":
        return StrictDevice()
    if spec == "torch":
        return TorchDevice()
    if spec.startswith("torch:cuda:"):
        return TorchDevice(_index(spec, "torch:cuda:"))
    if spec.startswith("cuda:"):
        return CupyDevice(_index(spec, "cuda:"))
    raise ValueError(
        f"unknown device {spec!r}; expected one of: auto, cpu, cuda, cuda:N, "
        "array_api_strict, torch, torch:cuda, torch:cuda:N"
    )


_DEFAULT: contextvars.ContextVar[str | None] = contextvars.ContextVar("xpnet_device", default=None)


def device(spec: str | Device | None = None) -> Device:
    """The Device for ``spec`` (``None``: the current default).  Cached per spec."""
    if isinstance(spec, Device):
        return spec
    env = None
    if spec is None:
        spec = _DEFAULT.get()
        if not spec:
            env = os.environ.get("XPNET_DEVICE") or None
            spec = env or "auto"
    if not isinstance(spec, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda:0', got {type(spec).__name__}")
    if env is not None:  # the spec came from the environment: the message says where to fix it
        try:
            return _device(spec)
        except DeviceUnavailableError as e:
            raise DeviceUnavailableError(f"XPNET_DEVICE={env!r} (from the environment): {e}. Set XPNET_DEVICE "
                                         f"to a usable device or unset it") from None
        except ValueError as e:
            raise ValueError(f"XPNET_DEVICE={env!r} (from the environment) is not a device spec: {e}. Set "
                             f"XPNET_DEVICE to a valid spec (e.g. XPNET_DEVICE=cpu) or unset it") from None
    return _device(spec)


def _device(spec: str) -> Device:
    key = _normalize(spec)
    if key == "auto":
        n, _ = _cupy_gpu_count()
        key = "cuda:0" if n > 0 else "cpu"
        if key == "cuda:0" and key not in _CACHE:
            try:  # auto never fails: a GPU CuPy counts but cannot use means the CPU
                _CACHE[key] = _build(key)
            except Exception:
                key = "cpu"
    dev = _CACHE.get(key)
    if dev is None:
        dev = _CACHE[key] = _build(key)
    return dev


@contextlib.contextmanager
def use_device(spec: str | Device):
    """Make ``spec`` the default device inside a ``with`` block."""
    dev = device(spec)
    token = _DEFAULT.set(dev.name)
    try:
        yield dev
    finally:
        _DEFAULT.reset(token)


def device_report() -> list[tuple[str, bool, str]]:
    """(name, usable, reason) for every device xpnet knows how to use."""
    rows: list[tuple[str, bool, str]] = [("cpu", True, f"NumPy {np.__version__}")]
    for name in ("array_api_strict", "torch"):
        try:
            device(name)
            mod = importlib.import_module(name)
            rows.append((name, True, f"{name} {getattr(mod, '__version__', '')}".strip()))
        except DeviceUnavailableError as e:
            rows.append((name, False, str(e)))
    n, why = _cupy_gpu_count()
    if n:
        import cupy

        rows += [(f"cuda:{i}", True, f"CuPy {cupy.__version__}") for i in range(n)]
    else:
        rows.append(("cuda", False, why))
    try:
        import torch

        for i in range(torch.cuda.device_count()):
            rows.append((f"torch:cuda:{i}", True, f"PyTorch {torch.__version__}"))
    except ImportError:
        pass
    return rows


def devices() -> list[str]:
    """Names of the devices usable here, e.g. ``['cpu', 'array_api_strict', 'torch']``."""
    return [name for name, ok, _ in device_report() if ok]


def device_of(x, xp=None) -> Device:
    """The xpnet Device an array lives on (used to check that inputs are not mixed).

    The devices already in use are asked first (``owns``: a type test, ~100 ns each), so the
    common case never goes through array-api-compat's detection."""
    for dev in list(_CACHE.values()):
        if dev.owns(x):
            return dev
    return device(_spec_of(x))


def scope_of(x):
    """The scope of the device ``x`` lives on (GPU N current for an array of ``cuda:N``); the
    no-op scope for an array of no device xpnet knows, which then computes as it would anyway."""
    try:
        return device_of(x).scope()
    except TypeError:
        return _NULL_SCOPE


def _spec_of(x) -> str:
    from array_api_compat import (
        array_namespace,
        is_array_api_strict_namespace,
        is_cupy_array,
        is_numpy_array,
        is_torch_array,
    )

    if is_numpy_array(x):
        return "cpu"
    if is_cupy_array(x):
        return f"cuda:{x.device.id}"
    if is_torch_array(x):
        d = x.device
        return "torch" if d.type == "cpu" else f"torch:cuda:{d.index or 0}"
    try:
        if is_array_api_strict_namespace(array_namespace(x)):
            return "array_api_strict"
    except TypeError:
        pass
    raise TypeError(f"expected an array, got {type(x).__name__}")

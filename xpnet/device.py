"""Every backend decision of xpnet lives here, and only here.

The layers, nets, optimizers and trainer are written once against the Python Array API
standard.  What the standard does not cover -- which library backs a device, putting host
data on it, bringing results back, random numbers, synchronisation -- is answered by the
``Device`` object this module hands out.  Supported specs:

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
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = [
    "Device",
    "host_rng",
    "is_host_data",
    "DeviceUnavailableError",
    "device",
    "devices",
    "device_report",
    "use_device",
    "device_of",
    "scoped",
]

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


_SMALL_PRODUCT_FLOPS = 16e6  # measured crossover on a 2-core machine (784-100-10 at batch 200 gains from 2)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, built once (a scan costs ~130 us)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


_NULL_SCOPE = contextlib.nullcontext()


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


class DeviceUnavailableError(RuntimeError):
    """The requested device cannot be used here; the message says why and what can."""


@dataclass(eq=False)
class Device:
    """A place arrays live on, with its Array API namespace and its backend's extras."""

    name: str
    xp: Any
    kind: str  # "numpy", "cupy", "torch", "array_api_strict"
    native: Any = None  # the backend's own device object (passed as ``device=``)
    _to_numpy: Callable = field(default=None, repr=False)
    _sync: Callable = field(default=None, repr=False)
    _rng_factory: Callable = field(default=None, repr=False)
    _array_type: type = field(default=None, repr=False)

    # -- data in and out ------------------------------------------------------------
    def asarray(self, data, dtype=None, copy=None):
        """Put host data (lists, scalars, NumPy arrays) or a same-device array here.

        ``dtype`` may be a dtype of this namespace or a name such as ``"float32"``.
        """
        dt = self.dtype(dtype) if dtype is not None else None
        if self.kind == "cupy":
            with self.scope():
                return self.xp.asarray(data, dtype=dt, copy=copy)
        return self.xp.asarray(data, dtype=dt, device=self.native, copy=copy)

    def scope(self):
        """A context in which new arrays land on this device.

        array-api-compat ignores ``device=`` for CuPy, which allocates and runs kernels on the
        *current* GPU, so every computation on ``cuda:N`` runs inside this. Elsewhere it is a
        shared no-op context.
        """
        if self.kind == "cupy":
            import cupy

            return cupy.cuda.Device(self.native.id)
        return _NULL_SCOPE

    def to_numpy(self, x) -> np.ndarray:
        """Bring an array of this device back to a host NumPy array (a copy where needed)."""
        return self._to_numpy(x)

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU); needed for honest timings."""
        if self._sync is not None:
            self._sync()

    # -- how to run a training step ---------------------------------------------------
    def step_scope(self, largest_product_flops: float):
        """A context for a run of training steps whose largest matrix product has this size.

        On the CPU, OpenBLAS's worker threads spin between calls; for products below ~16
        MFLOP (the book's net: 7.8) they cost more than they give on a small machine -- a
        single-threaded BLAS made the book's step 10-15 % faster here. Larger products keep
        every thread. Needs ``threadpoolctl`` (in the ``train`` extra); a no-op without it,
        on other backends, or when ``XPNET_BLAS_THREADS`` is set (then it is used as given).
        """
        if self.kind != "numpy":
            return self.scope()
        env = os.environ.get("XPNET_BLAS_THREADS") or None
        if env is not None and not (env.isdigit() and int(env) > 0):
            raise ValueError(f"XPNET_BLAS_THREADS must be a positive integer, got {env!r}")
        if largest_product_flops >= _SMALL_PRODUCT_FLOPS and not env:
            return _NULL_SCOPE
        controller = _blas_controller()
        if controller is None:
            return _NULL_SCOPE
        return controller.limit(limits=int(env or 1), user_api="blas")

    # -- dtypes ---------------------------------------------------------------------
    def dtype(self, dtype):
        """This namespace's dtype for ``dtype`` (a name, a NumPy dtype or a namespace dtype)."""
        if isinstance(dtype, str) or isinstance(dtype, np.dtype) or (
            isinstance(dtype, type) and issubclass(dtype, np.generic)
        ):
            name = np.dtype(dtype).name
            if not hasattr(self.xp, name):
                raise TypeError(f"dtype {name!r} is not available on device {self.name!r}")
            return getattr(self.xp, name)
        return dtype

    # -- random numbers -------------------------------------------------------------
    def rng(self, seed=None) -> "Generator":
        """A seeded random generator that draws directly on this device."""
        return Generator(self, seed)

    # -- checks ---------------------------------------------------------------------
    def owns(self, x) -> bool:
        """True when ``x`` is an array of this device (cheap: a type test, then the device)."""
        if type(x) is not self._array_type:
            return False
        if self.kind in ("numpy", "array_api_strict"):
            return True
        from array_api_compat import device as _dev

        return _dev(x) == self.native

    def __repr__(self) -> str:
        return f"Device({self.name!r})"

    def __str__(self) -> str:
        return self.name


class Generator:
    """Normal draws and integer sampling on a device, seeded; the standard has no RNG.

    On the CPU and array-api-strict the draws come from NumPy's PCG64, so the same seed
    gives the same numbers there; CuPy and torch use their own device generators.
    """

    def __init__(self, dev: Device, seed=None):
        self.device = dev
        self.seed = seed
        self._impl = dev._rng_factory(seed)

    def normal(self, shape, dtype="float32", scale=1.0):
        return self._impl.normal(tuple(shape), self.device.dtype(dtype), scale)

    def integers(self, high: int, size: int):
        """``size`` integers drawn uniformly from ``[0, high)``, with replacement."""
        return self._impl.integers(int(high), int(size))

    def permutation(self, n: int):
        return self._impl.permutation(int(n))


class _NumpyRng:
    def __init__(self, seed, place=None):
        self._g = np.random.default_rng(seed)
        self._place = place  # None: the arrays are already where they belong

    def _out(self, a):
        return a if self._place is None else self._place(a)

    def normal(self, shape, dtype, scale):
        a = self._g.standard_normal(shape)
        if scale != 1.0:
            a *= scale
        return self._out(a.astype(dtype_name(dtype), copy=False))

    def integers(self, high, size):
        return self._out(self._g.integers(0, high, size=size))

    def permutation(self, n):
        return self._out(self._g.permutation(n))


class _CupyRng:
    def __init__(self, seed, dev):
        import cupy

        self._cupy, self._dev = cupy, dev
        with dev.scope():
            self._g = cupy.random.default_rng(seed)

    def normal(self, shape, dtype, scale):
        with self._dev.scope():
            a = self._g.standard_normal(shape, dtype=dtype)
            return a * scale if scale != 1.0 else a

    def integers(self, high, size):
        with self._dev.scope():
            return self._g.integers(0, high, size=size)

    def permutation(self, n):
        with self._dev.scope():  # cupy's Generator has no permutation: sort uniform keys
            return self._cupy.argsort(self._g.random(n))


class _TorchRng:
    def __init__(self, seed, native):
        import torch

        self._torch = torch
        self._native = native
        self._g = torch.Generator(device=native)
        if seed is None:
            self._g.seed()  # fresh entropy for this generator only, not torch's global one
        else:
            self._g.manual_seed(seed)

    def normal(self, shape, dtype, scale):
        a = self._torch.randn(shape, generator=self._g, device=self._native, dtype=dtype)
        return a * scale if scale != 1.0 else a

    def integers(self, high, size):
        return self._torch.randint(0, high, (size,), generator=self._g, device=self._native)

    def permutation(self, n):
        return self._torch.randperm(n, generator=self._g, device=self._native)


# ---------------------------------------------------------------------------------------
# building devices
# ---------------------------------------------------------------------------------------
_CACHE: dict[str, Device] = {}


def _numpy_device() -> Device:
    from array_api_compat import array_namespace

    # NumPy >= 2 is an Array API namespace itself; the compat wrapper only adds overhead.
    xp = array_namespace(np.empty(0), use_compat=False)
    return Device(
        name="cpu",
        xp=xp,
        kind="numpy",
        native="cpu",
        _to_numpy=np.asarray,
        _sync=None,
        _rng_factory=lambda seed: _NumpyRng(seed),
        _array_type=np.ndarray,
    )


def _strict_device() -> Device:
    try:
        import array_api_strict as xp
    except ImportError as e:
        raise DeviceUnavailableError(
            "device 'array_api_strict' needs the package array-api-strict: "
            "pip install 'xpnet[test]'"
        ) from e
    native = xp.asarray(0.0).device

    def place(a):
        return xp.asarray(a)

    return Device(
        name="array_api_strict",
        xp=xp,
        kind="array_api_strict",
        native=native,
        _to_numpy=lambda x: np.from_dlpack(x).copy(),
        _sync=None,
        _rng_factory=lambda seed: _NumpyRng(seed, place),
        _array_type=type(xp.asarray(0.0)),
    )


def _torch_device(index: str | None) -> Device:
    try:
        import torch
        from array_api_compat import array_namespace
    except ImportError as e:
        raise DeviceUnavailableError(
            "device 'torch' needs PyTorch, which is not installed: pip install torch"
        ) from e
    if index is None:
        native, name = torch.device("cpu"), "torch"
    else:
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device 'torch:{index}': PyTorch sees no CUDA GPU here. "
                f"Available: {', '.join(devices())}"
            )
        native = torch.device(index if ":" in index else "cuda:0")
        if native.index is not None and native.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device 'torch:{index}': only {torch.cuda.device_count()} GPU(s) visible"
            )
        name = f"torch:{native}"
    xp = array_namespace(torch.empty(0))
    sync = (lambda: torch.cuda.synchronize(native)) if native.type == "cuda" else None
    return Device(
        name=name,
        xp=xp,
        kind="torch",
        native=native,
        _to_numpy=lambda x: x.detach().cpu().numpy(),
        _sync=sync,
        _rng_factory=lambda seed: _TorchRng(seed, native),
        _array_type=torch.Tensor,
    )


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


def _cupy_device(index: int) -> Device:
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
    from array_api_compat import array_namespace

    native = cupy.cuda.Device(index)
    with cupy.cuda.Device(index):
        xp = array_namespace(cupy.empty(0))
    dev = Device(
        name=f"cuda:{index}",
        xp=xp,
        kind="cupy",
        native=native,
        _to_numpy=lambda x: x.get(),
        _sync=native.synchronize,
        _array_type=cupy.ndarray,
    )
    dev._rng_factory = lambda seed: _CupyRng(seed, dev)
    return dev


def _normalize(spec: str) -> str:
    s = spec.strip().lower()
    if s in ("array-api-strict", "array_api_strict"):
        return "array_api_strict"
    if s in ("numpy", "cpu"):
        return "cpu"
    if s in ("strict", "array_api_strict"):
        return "array_api_strict"
    if s == "cuda" or s == "gpu":
        return "cuda:0"
    if s == "torch:cpu":
        return "torch"
    if s == "torch:cuda":
        return "torch:cuda:0"
    return s


def _build(spec: str) -> Device:
    if spec == "cpu":
        return _numpy_device()
    if spec == "array_api_strict":
        return _strict_device()
    if spec == "torch":
        return _torch_device(None)
    if spec.startswith("torch:cuda:"):
        if not spec[len("torch:cuda:"):].isdigit():
            raise ValueError(f"bad device index in {spec!r}: expected torch:cuda:N with N >= 0")
        return _torch_device(spec[len("torch:"):])
    if spec.startswith("cuda:"):
        idx = spec[len("cuda:"):]
        if not idx.isdigit():
            raise ValueError(f"bad device index in {spec!r}: expected cuda:N with N >= 0")
        return _cupy_device(int(idx))
    raise ValueError(
        f"unknown device {spec!r}; expected one of: auto, cpu, cuda, cuda:N, "
        "array_api_strict, torch, torch:cuda, torch:cuda:N"
    )


_DEFAULT: contextvars.ContextVar[str | None] = contextvars.ContextVar("xpnet_device", default=None)


def device(spec: "str | Device | None" = None) -> Device:
    """The Device for ``spec`` (``None``: the current default).  Cached per spec."""
    if isinstance(spec, Device):
        return spec
    if spec is None:
        spec = _DEFAULT.get() or os.environ.get("XPNET_DEVICE") or "auto"
    if not isinstance(spec, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda:0', got {type(spec).__name__}")
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
def use_device(spec: "str | Device"):
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
    """The xpnet Device an array lives on (used to check that inputs are not mixed)."""
    from array_api_compat import (
        is_array_api_strict_namespace,
        is_cupy_array,
        is_numpy_array,
        is_torch_array,
    )

    if is_numpy_array(x):
        return device("cpu")
    if is_cupy_array(x):
        return device(f"cuda:{x.device.id}")
    if is_torch_array(x):
        d = x.device
        return device("torch" if d.type == "cpu" else f"torch:cuda:{d.index or 0}")
    try:
        from array_api_compat import array_namespace

        if is_array_api_strict_namespace(array_namespace(x)):
            return device("array_api_strict")
    except TypeError:
        pass
    raise TypeError(f"expected an array, got {type(x).__name__}")

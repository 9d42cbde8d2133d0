"""What every backend shares: the ``Device`` base (the standard's own paths: ``device=``,
DLPack, host draws), the host ``Generator``, and the host helpers the backends and the public
face (``xpnet.backend``) build on. One file per backend beside it overrides what its library
does otherwise, as chainer's ``backends/_cpu.py`` and ``cuda.py``.
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import os
from typing import Any

import numpy as np

__all__ = ["Device", "Generator", "host_rng", "is_host_array", "is_host_data", "dtype_name", "host_memory_bytes",
           "null_scope", "scoped"]


def host_rng(seed=None):
    """The host generator (NumPy PCG64) used wherever results must agree across devices, such as
    initial weights: draw here, then place with ``Device.asarray``. Without a seed it is seeded
    from NumPy's global generator, as the book's nets draw from it: a reader's
    ``np.random.seed(0)`` makes the nets of a script the same run after run."""
    if seed is None:
        return np.random.default_rng([int(v) for v in np.random.randint(0, 2**32, size=4, dtype=np.uint64)])
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None (drawn from NumPy's global generator), "
                         f"got {seed!r}")
    return np.random.default_rng(int(seed))


def is_host_array(x) -> bool:
    """True for a NumPy array (what the book's ``load_mnist`` returns), not a number or a list."""
    return type(x) is np.ndarray


def is_host_data(x) -> bool:
    """True for data that lives on the host: NumPy arrays, lists, tuples, numbers."""
    return isinstance(x, (np.ndarray, np.generic, list, tuple, int, float))


def dtype_name(dt) -> str:
    """'float32' for any backend's float32 (NumPy/CuPy types, torch and strict dtypes, names)."""
    try:
        return np.dtype(dt).name
    except TypeError:
        return str(dt).rsplit(".", 1)[-1]



def host_memory_bytes() -> int | None:
    """The host's physical memory in bytes (``sysconf``), or None where the system does not say."""
    try:
        n = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return n if n > 0 else None


_NULL_SCOPE = contextlib.nullcontext()  # one shared no-op context, nearly free to enter


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
    def conv_kernels(self):
        """The backend's own convolution and max pooling (an object with ``conv2d``,
        ``conv2d_backward``, ``max_pool2d``, ``max_pool2d_backward``) for ``Convolution`` and
        ``Pooling`` to use instead of the portable im2col path; None where it has none."""
        return None

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
        from ..exceptions import DistributedError

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
    """Normal and uniform draws and integer sampling on a device, seeded; the standard has no RNG.

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

    def uniform(self, shape, dtype="float32"):
        """Draws from U[0, 1) of ``shape`` and ``dtype`` (the book's ``np.random.rand``)."""
        dt = dtype_name(self.device.dtype(dtype))
        return self.device.asarray(self._g.random(tuple(shape), dtype=dt if dt in ("float32", "float64") else None)
                                   .astype(dt, copy=False))

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

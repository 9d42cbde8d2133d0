"""Choosing a device: the public face of xpnet's backends (chainer's ``backend.py``).

The layers, nets, optimizers and trainer are written once against the Python Array API
standard. What the standard does not cover -- which library backs a device, putting host data
on it, bringing results back, random numbers, synchronisation -- is answered by the ``Device``
this module hands out, one small class per backend in ``xpnet/backends/``. Supported specs:

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
import importlib
import os

import numpy as np

from .backends.base import (Device, Generator, dtype_name, host_memory_bytes, host_rng, is_host_array, is_host_data,
                            null_scope, scoped)
from .backends.cpu import NumpyDevice
from .backends.cuda import CupyDevice, gpu_count
from .backends.pytorch import TorchDevice
from .backends.strict import StrictDevice
from .exceptions import DeviceUnavailableError
from .threads import blas_thread_limit

__all__ = [
    "device", "use_device", "device_of", "devices", "device_report", "scope_of", "to_host",
    "Device", "NumpyDevice", "StrictDevice", "TorchDevice", "CupyDevice", "Generator",
    "DeviceUnavailableError", "dtype_name", "host_rng", "is_host_array", "is_host_data", "host_memory_bytes",
    "scoped", "null_scope", "blas_thread_limit", "rewound_global_generators",
]

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
        n, _ = gpu_count()
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
    n, why = gpu_count()
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


def device_of(x) -> Device:
    """The xpnet Device an array lives on (used to check that inputs are not mixed).

    The devices already in use are asked first (``owns``: a type test), so the
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
        return null_scope()


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


@contextlib.contextmanager
def rewound_global_generators():
    """Yields ``rewind()``, which puts the libraries' global generators (NumPy's ``np.random``,
    torch's when it is imported) back where they stood on entry, so that code drawing from them --
    a reader's dropout, ``np.random.rand(*x.shape) > ratio`` -- repeats its draws after each call;
    on exit they stand where they stood on entry, as if nothing had drawn. (CuPy's global
    generator has no state to put back.)"""
    import sys

    saved = [(np.random.set_state, np.random.get_state())]
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_rng_state"):
        saved.append((torch.set_rng_state, torch.get_rng_state()))

    def rewind():
        for put, state in saved:
            put(state)

    try:
        yield rewind
    finally:
        rewind()


def to_host(x) -> np.ndarray:
    """A host NumPy array for an array of any device, or for host data (a number, a list):
    how the rest of xpnet reads results back (DeZero's ``as_numpy``, for every backend)."""
    if is_host_data(x):
        return np.asarray(x)
    return device_of(x).to_numpy(x)

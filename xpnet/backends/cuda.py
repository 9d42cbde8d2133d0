"""``cuda:N``: CuPy on GPU N (the ``cuda12``/``cuda13`` extras), DeZero's ``cuda.py`` for xpnet."""

from __future__ import annotations

import numpy as np

from ..exceptions import DeviceUnavailableError
from .base import Device, Generator, dtype_name, scoped


def gpu_count() -> tuple[int, str]:
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
        n, why = gpu_count()
        if n == 0:
            raise DeviceUnavailableError(
                f"device 'cuda:{index}' is unavailable: {why}. Available: {', '.join(_usable())}"
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
        from ..backend import device
        from ..distributed import DistributedError, MpiCommunicator, NcclCommunicator, choose_gpu, launched_by_mpi

        if not launched_by_mpi():
            raise DistributedError("--distributed runs one process per GPU under an MPI launcher: "
                                   "mpiexec -n <GPUs> xpnet train --distributed --device cuda")
        mpi = MpiCommunicator()
        cuda = self._cupy.cuda
        gpu = choose_gpu(mpi, self.index, cuda.runtime.getDeviceCount(), lambda i: cuda.Device(i).pci_bus_id)
        cuda.Device(gpu).use()
        return NcclCommunicator(mpi, device(f"cuda:{gpu}"))


MAX_REPLAYED_DRAWS = 10**7  # a saved CuPy generator state replays at most this many draws


class CupyGenerator(Generator):
    """CuPy's own generator, created and drawn from on GPU N.

    CuPy's generators expose no state to save, so this one remembers its seed (drawn from
    host entropy when none is given) and the draws made; ``set_state`` replays them on a fresh
    generator -- a few dozen entries for a whole training run (a run of equal draws, such as
    a dropout mask a step, is one entry with its count)."""

    state_kind = "replay"

    def __init__(self, dev: CupyDevice, seed=None):
        self.device = dev
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else seed
        self._calls = []
        with dev.scope():
            self._g = dev._cupy.random.default_rng(self.seed)

    @scoped
    def normal(self, shape, dtype="float32", scale=1.0):
        self._record(["normal", list(shape), dtype_name(self.device.dtype(dtype))])
        a = self._g.standard_normal(tuple(shape), dtype=self.device.dtype(dtype))
        return a * scale if scale != 1.0 else a

    @scoped
    def uniform(self, shape, dtype="float32"):
        self._record(["uniform", list(shape), dtype_name(self.device.dtype(dtype))])
        return self._g.random(tuple(shape), dtype=self.device.dtype(dtype))

    @scoped
    def integers(self, high: int, size: int):
        self._record(["integers", int(high), int(size)])
        return self._g.integers(0, int(high), size=int(size))

    @scoped
    def permutation(self, n: int):
        self._record(["permutation", int(n)])
        # CuPy's Generator has no permutation: sort uniform keys.
        return self.device._cupy.argsort(self._g.random(int(n)))

    def _record(self, call):
        """Remembers a draw; a run of equal ones (a dropout mask each step) is one entry with a count."""
        calls = self._calls
        if calls and calls[-1][0] == call:
            calls[-1][1] += 1
        else:
            calls.append([call, 1])

    def get_state(self) -> dict:
        return {"kind": "replay", "seed": self.seed, "calls": [list(c) for c in self._calls]}

    def set_state(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("kind") != "replay":
            raise ValueError(f"this generator ({self.device.name}) continues a 'replay' state, got "
                             f"{state.get('kind') if isinstance(state, dict) else type(state).__name__!r}")
        try:
            seed, calls = state["seed"], state["calls"]
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0 or not isinstance(calls, list):
                raise ValueError(f"seed {str(seed)[:40]!r} and calls of type {type(calls).__name__}")
            # [[name, *args], count]; an entry [name, *args] is one draw (states saved before counts)
            plan = [(e[0], int(e[1])) if isinstance(e[0], list) else (e, 1) for e in calls]
            total = sum(max(count, 0) for _, count in plan)
            if total > MAX_REPLAYED_DRAWS:  # a hostile count would replay for ever
                raise ValueError(f"{total} draws to replay, more than {MAX_REPLAYED_DRAWS} (no run makes that many)")
            unknown = [c[0] for c, _ in plan if c[0] not in ("normal", "uniform", "integers", "permutation")]
            if unknown:
                raise ValueError(f"unknown draw {str(unknown[0])[:40]!r}")
            fresh = CupyGenerator(self.device, seed)
            for call, count in plan:
                for _ in range(count):
                    getattr(fresh, call[0])(*call[1:])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise ValueError(f"damaged random-generator state ({e})") from None
        self.seed, self._calls, self._g = fresh.seed, fresh._calls, fresh._g


def _usable() -> list:
    from ..backend import devices  # the public face, which imports this module

    return devices()

"""How many threads the CPU's BLAS (and torch's pool) run a training step on.

Neither one thread nor all of them is right everywhere: a second thread speeds up a book-size
step on an idle machine and slows it badly on a busy one, and the count changes float32 results
in the last bit. ``cpu_thread_scope`` is the policy; ``XPNET_BLAS_THREADS`` overrides it.
``NumpyDevice`` and ``TorchDevice`` enter it from ``step_scope``; nothing else does.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import os
import threading
import time

from .backends.base import null_scope

__all__ = ["blas_thread_limit", "blas_libraries", "blas_threads_setting", "cpu_thread_scope", "ThreadChooser",
           "SERIAL_PRODUCT_FLOPS", "SMALL_PRODUCT_FLOPS"]

SMALL_PRODUCT_FLOPS = 16e6  # the measured crossover (benchmarks/README.md): larger products gain from more threads
SERIAL_PRODUCT_FLOPS = 5e5  # below this (M*N*K < 65536*4) OpenBLAS's gemm never uses a second thread


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, built once (a scan is slow)."""
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
def blas_libraries() -> tuple:
    """The BLAS libraries NumPy loaded, as thread pools (``get_num_threads``, ``set_num_threads``,
    ``num_threads``): threadpoolctl's controllers, a pthreads OpenBLAS's with its own C functions
    (``_OpenBLASPool``); empty without threadpoolctl."""
    controller = _blas_controller()
    if controller is None:
        return ()
    return tuple(_OpenBLASPool.of(c) or c for c in controller.lib_controllers if c.user_api == "blas")


class _OpenBLASPool:
    """A pthreads OpenBLAS's thread count read and set by its own C functions, called straight
    through ctypes: threadpoolctl's methods around the same calls cost several microseconds a
    step in a reader's loop (benchmarks/README.md). Off the main thread the setting goes through
    threadpoolctl, which lets one thread at a time change a process-wide pool."""

    __slots__ = ("controller", "num_threads", "get_num_threads", "_set", "_main")

    def __init__(self, controller, get, set_):
        self.controller, self.num_threads = controller, controller.num_threads
        self.get_num_threads, self._set = get, set_
        self._main = threading.main_thread().ident

    @classmethod
    def of(cls, controller):
        """The pool for a threadpoolctl controller of OpenBLAS on pthreads; None for any other."""
        if getattr(controller, "internal_api", None) != "openblas" or \
                getattr(controller, "threading_layer", None) != "pthreads":
            return None
        try:
            lib = ctypes.CDLL(controller.filepath, mode=getattr(os, "RTLD_NOLOAD", 0))
        except OSError:
            return None
        for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):  # as the builds name them
            get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                get.restype, get.argtypes, set_.restype, set_.argtypes = ctypes.c_int, (), None, (ctypes.c_int,)
                return cls(controller, get, set_)
        return None

    def set_num_threads(self, n: int) -> None:
        if threading.get_ident() == self._main:
            self._set(n)
        else:
            self.controller.set_num_threads(n)


class _BlasThreads:
    """A ``with`` block holding the BLAS libraries to ``n`` threads through their own setters
    (threadpoolctl's per-library controllers): several times cheaper than ``threadpoolctl.limit``,
    cheap enough to wrap every ``gradient()`` call of a reader's loop."""

    __slots__ = ("libs", "n", "old")

    def __init__(self, libs, n: int):
        self.libs, self.n, self.old = libs, n, ()

    def __enter__(self):
        n, self.old = self.n, [lib.get_num_threads() for lib in self.libs]
        for lib, old in zip(self.libs, self.old):
            if old != n:
                lib.set_num_threads(n)
        return self

    def __exit__(self, *exc):
        n = self.n
        for lib, old in zip(self.libs, self.old):
            if old is not None and old != n:
                lib.set_num_threads(old)
        return False


class _OneBlasThreads:
    """``_BlasThreads`` for the one BLAS library most NumPy builds load: the same block with no
    loop (it wraps every ``gradient()`` call of a reader's loop)."""

    __slots__ = ("lib", "n", "old")

    def __init__(self, lib, n: int):
        self.lib, self.n, self.old = lib, n, None

    def __enter__(self):
        self.old = old = self.lib.get_num_threads()
        if old != self.n:
            self.lib.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        old = self.old
        if old is not None and old != self.n:
            self.lib.set_num_threads(old)
        return False


def _blas_threads(pools, n: int):
    return _OneBlasThreads(pools[0], n) if len(pools) == 1 else _BlasThreads(pools, n)


class ThreadChooser:
    """Which BLAS thread count runs one kind of step faster, found by timing the steps themselves.

    Neither choice is right everywhere: on an idle 2-core machine the book's step runs faster on
    two OpenBLAS threads; on a machine busy with other work those threads spin for cores they
    do not get and the same step runs several times slower than on one (the figures:
    benchmarks/README.md). So the steps decide:
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

    Products of ``SMALL_PRODUCT_FLOPS`` and more keep every thread. Smaller ones -- the book's
    net's -- run on one thread: a second thread helps them a little on an idle machine but slows
    them several times on a busy one (OpenBLAS and torch's pool alike), and the thread
    count changes float32 results in the last bit (another kernel), so a fixed rule keeps runs
    reproducible bit for bit. ``XPNET_BLAS_THREADS=N`` fixes N; ``XPNET_BLAS_THREADS=auto``
    lets a ``ThreadChooser`` (one per size in ``choosers``) time both counts and keep the faster
    (results then depend on what it picked)."""
    if not pools:
        return null_scope()
    mode = blas_threads_setting()
    if isinstance(mode, int):
        return _blas_threads(pools, mode)
    if largest_product_flops >= SMALL_PRODUCT_FLOPS:
        return null_scope()
    if mode != "auto":
        return _blas_threads(pools, 1)
    chooser = choosers.get(largest_product_flops)
    if chooser is None:
        full = max((getattr(p, "num_threads", 1) or 1) for p in pools)  # as the library started
        chooser = choosers[largest_product_flops] = ThreadChooser(full)
    return _TimedBlasThreads(pools, chooser, steps)



_ENV_PARSED = [None, None]  # (the raw XPNET_BLAS_THREADS last parsed, what it meant): read every step


def blas_threads_setting():
    """``XPNET_BLAS_THREADS``: None (unset), a positive count, or ``"auto"``; a ValueError naming
    the variable for anything else (the command line asks before it trains)."""
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


"""A numpy-backed stand-in for CuPy that records what a real GPU run would do.

It mimics, from CuPy 13.6's source: the current device (a thread-local stack, cupy.cuda.Device as
a context manager), arrays that remember the device they were allocated on, ``__array__``
raising TypeError (no implicit host conversion), ``get()`` / ``__float__`` / ``__int__`` /
``__bool__`` / ``item`` / ``tolist`` as host synchronisations (cupyx.allow_synchronize(False)
makes them raise DeviceSynchronized, like syncdetect), ``Device.synchronize`` likewise, reductions
returning 0-d arrays, the default memory pool per device (512-byte rounding), the Generator API
(default_rng, standard_normal/integers/random, no permutation, its device check), and the NCCL
binding signatures (get_unique_id, NcclCommunicator(ndev, tuple, rank), allReduce of ints).
Every array op is checked: all array operands must be on the current device (else recorded as a
cross-device op, which real CuPy refuses without peer access or runs through P2P).
"""
import atexit
import functools
import json
import operator
import os
import sys
import threading
import traceback
import weakref

import numpy as _np

PHYSICAL_GPUS = int(os.environ.get("FAKE_CUPY_GPUS", "2"))


def _visible():
    """The physical GPUs this process sees: CUDA_VISIBLE_DEVICES as CUDA reads it (a list of
    indices, cut at the first invalid one), else all of them."""
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return list(range(PHYSICAL_GPUS))
    out = []
    for part in raw.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) >= PHYSICAL_GPUS or int(part) in out:
            break
        out.append(int(part))
    return out


VISIBLE = _visible()  # logical index -> physical GPU
N_GPUS = len(VISIBLE)
STRICT = os.environ.get("FAKE_CUPY_STRICT", "0") == "1"
TOTAL_MEM = 141 * 2**30

_tls = threading.local()


class DeviceSynchronized(RuntimeError):
    def __init__(self, message=None):
        super().__init__(message or "Device synchronization was detected while disallowed.")


STATS = {"launches": 0, "h2d": 0, "h2d_bytes": 0, "syncs": 0, "syncs_where": {}, "cross_device": 0,
         "cross_device_where": {}, "ops": {}, "device_sync": 0, "contexts": []}


def _where(skip=3):
    st = traceback.extract_stack()
    frames = [f for f in st if "fakecupy" not in f.filename and "array_api_compat" not in f.filename
              and "/numpy/" not in f.filename and "contextlib" not in f.filename]
    f = frames[-1] if frames else st[0]
    return f"{os.path.basename(f.filename)}:{f.lineno} {f.name}"


def _allowed():
    return getattr(_tls, "allowed", True)


def _declare_sync(what):
    STATS["syncs"] += 1
    w = _where()
    STATS["syncs_where"][w] = STATS["syncs_where"].get(w, 0) + 1
    if not _allowed():
        raise DeviceSynchronized(f"Device synchronization was detected while disallowed ({what} at {w}).")


def _stack():
    s = getattr(_tls, "stack", None)
    if s is None:
        s = _tls.stack = []
    return s


def current():
    return getattr(_tls, "dev", 0)


def _set_current(i):
    if not 0 <= i < N_GPUS:
        raise CUDARuntimeError(101, "cudaErrorInvalidDevice: invalid device ordinal")
    _tls.dev = i
    _context(i)  # since CUDA 12, cudaSetDevice initialises the device's primary context


CONTEXTS = set()  # the GPUs (logical indices) this process created a CUDA context on


def _context(i):
    if i not in CONTEXTS:
        CONTEXTS.add(i)
        STATS["contexts"] = sorted(CONTEXTS)


def pci_bus_id(i):
    """A PCI bus id per physical GPU: two processes that see the same GPU get the same id."""
    if not 0 <= i < N_GPUS:
        raise CUDARuntimeError(101, "cudaErrorInvalidDevice: invalid device ordinal")
    return f"0000:{0x18 + VISIBLE[i]:02X}:00.0"


class CUDARuntimeError(RuntimeError):
    def __init__(self, status, msg=""):
        self.status = status
        super().__init__(msg)


# -- memory pool -------------------------------------------------------------------------
_POOL_USED = {}


def _alloc(dev, nbytes):
    _context(dev)  # an allocation needs the device's context
    n = 0 if nbytes == 0 else ((nbytes + 511) // 512) * 512
    _POOL_USED[dev] = _POOL_USED.get(dev, 0) + n
    return n


def _free(dev, n):
    _POOL_USED[dev] = _POOL_USED.get(dev, 0) - n


class MemoryPool:
    def used_bytes(self):
        return _POOL_USED.get(current(), 0)

    def total_bytes(self):
        return self.used_bytes()

    def free_bytes(self):
        return 0

    def free_all_blocks(self, stream=None):
        pass

    def n_free_blocks(self):
        return 0

    def set_limit(self, size=None, fraction=None):
        pass


_POOL = MemoryPool()


def get_default_memory_pool():
    return _POOL


class PinnedMemoryPool:
    def free_all_blocks(self):
        pass

    def n_free_blocks(self):
        return 0


_PPOOL = PinnedMemoryPool()


def get_default_pinned_memory_pool():
    return _PPOOL


# -- arrays --------------------------------------------------------------------------------
_BY_PTR = {}


class MemoryPointer:
    __slots__ = ("ptr", "device_id", "_arr")

    def __init__(self, arr):
        self._arr = arr
        self.ptr = int(arr._a.ctypes.data) if arr._a.size else 0
        self.device_id = arr._dev

    @property
    def device(self):
        from .cuda import Device
        return Device(self.device_id)


def _unwrap(x, devs):
    if type(x) is ndarray:
        devs.append(x._dev)
        return x._a
    if isinstance(x, (list, tuple)):
        t = [_unwrap(v, devs) for v in x]
        return type(x)(t) if isinstance(x, tuple) else t
    if isinstance(x, _np.ndarray) and x.dtype != object:
        devs.append("host")
    return x


def _unwrap_kw(kw, devs):
    return {k: _unwrap(v, devs) for k, v in kw.items()}


def _check_devs(devs, name):
    cur = current()
    bad = [d for d in devs if d != cur and d != "host"]
    if bad:
        STATS["cross_device"] += 1
        w = _where(4)
        key = f"{name} @ {w}: arrays on {sorted(set(map(str, bad)))}, current device {cur}"
        STATS["cross_device_where"][key] = STATS["cross_device_where"].get(key, 0) + 1
        if STRICT:
            raise ValueError(f"The device where the array resides ({bad[0]}) is different from the current device "
                             f"({cur}). Peer access is unavailable between these devices. [{name}]")
    if "host" in devs:
        # real CuPy refuses numpy arrays as operands of its functions/kernels
        key = f"numpy operand in {name} @ {_where(4)}"
        STATS.setdefault("numpy_operands", {})
        STATS["numpy_operands"][key] = STATS["numpy_operands"].get(key, 0) + 1
        if os.environ.get("FAKE_CUPY_NUMPY_OPERANDS_RAISE", "1") == "1":
            raise TypeError(f"Unsupported type <class 'numpy.ndarray'> ({name}): fake CuPy, like CuPy, does not take "
                            f"host numpy arrays as kernel operands")


def _wrap(r, dev=None, owner_hint=None):
    dev = current() if dev is None else dev
    if isinstance(r, _np.ndarray):
        if r.dtype == object:
            raise TypeError("CuPy has no object arrays")
        return ndarray(_a=r, _dev=dev)
    if isinstance(r, _np.generic):
        return ndarray(_a=_np.asarray(r), _dev=dev)
    if isinstance(r, tuple) and any(isinstance(v, _np.ndarray) for v in r):
        return tuple(_wrap(v, dev) for v in r)
    if isinstance(r, list) and any(isinstance(v, _np.ndarray) for v in r):
        return [_wrap(v, dev) for v in r]
    return r


def _count(name):
    _context(current())  # a launch runs in the current device's context
    STATS["launches"] += 1
    STATS["ops"][name] = STATS["ops"].get(name, 0) + 1


def _is_basic(i):
    """Basic indexing (integers, slices, ``...``, ``None``): CuPy returns a view on the array's
    own device, whatever the current one."""
    items = i if isinstance(i, tuple) else (i,)
    return all(v is None or v is Ellipsis or isinstance(v, (slice, int, _np.integer)) and not isinstance(v, bool)
               for v in items)


def _has_bool_mask(i):
    items = i if isinstance(i, tuple) else (i,)
    return any(isinstance(v, _np.ndarray) and v.dtype == bool for v in items)


class ndarray:
    __module__ = 'cupy'
    __slots__ = ("_a", "_dev", "_nbytes", "__weakref__")
    __array_priority__ = 1000

    def __init__(self, shape=None, dtype=float, memptr=None, strides=None, order="C", *, _a=None, _dev=None):
        if _a is None:
            _a = _np.empty(shape, dtype=dtype, order=order)
        self._a = _a
        self._dev = current() if _dev is None else _dev
        owns = _a.base is None or _a.flags.owndata
        self._nbytes = _alloc(self._dev, _a.nbytes) if owns else 0
        if self._nbytes:
            weakref.finalize(self, _free, self._dev, self._nbytes)
            if _a.size:
                _BY_PTR[int(_a.ctypes.data)] = weakref.ref(self)

    # attributes
    shape = property(lambda s: s._a.shape)
    dtype = property(lambda s: s._a.dtype)
    ndim = property(lambda s: s._a.ndim)
    size = property(lambda s: s._a.size)
    nbytes = property(lambda s: s._a.nbytes)
    itemsize = property(lambda s: s._a.itemsize)
    strides = property(lambda s: s._a.strides)
    flags = property(lambda s: s._a.flags)

    @property
    def T(self):
        return ndarray(_a=self._a.T, _dev=self._dev)

    @property
    def mT(self):
        return ndarray(_a=_np.swapaxes(self._a, -1, -2), _dev=self._dev)

    @property
    def device(self):
        from .cuda import Device
        return Device(self._dev)

    @property
    def data(self):
        return MemoryPointer(self)

    # host transfers
    def get(self, stream=None, order="C", out=None, blocking=True):
        _declare_sync("ndarray.get")
        a = _np.array(self._a, order=order, copy=True)
        if out is not None:
            out[...] = a
            return out
        return a

    def set(self, arr, stream=None):
        self._a[...] = arr

    def item(self):
        return self.get().item()

    def tolist(self):
        return self.get().tolist()

    def __float__(self):
        return float(self.get())

    def __int__(self):
        return int(self.get())

    def __index__(self):
        return operator.index(self.get())

    def __complex__(self):
        return complex(self.get())

    def __bool__(self):
        return bool(self.get())

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __dlpack_device__(self):
        return (2, self._dev)

    def __dlpack__(self, *a, **k):
        raise BufferError("fake cupy: CUDA memory cannot be exported to the host through DLPack")

    def __repr__(self):
        return f"array({self.get()!r}, device={self._dev})".replace("\n", " ")

    def __str__(self):
        return str(self.get())

    def __format__(self, spec):
        return format(self.get(), spec)

    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return self._a.shape[0]

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self._a.shape[0]))

    def __hash__(self):
        raise TypeError("unhashable type: 'cupy.ndarray'")

    # indexing
    def __getitem__(self, idx):
        devs = [self._dev]
        i = _unwrap(idx, devs)
        r = self._a[i]
        if isinstance(r, _np.ndarray) and _is_basic(i):
            return ndarray(_a=r, _dev=self._dev)  # a view (empty ones too): no kernel, no device check (as CuPy)
        _check_devs(devs, "__getitem__")
        if _has_bool_mask(i):  # the result's shape needs the count of True: a synchronisation
            _declare_sync("boolean-mask __getitem__")
        _count("getitem(copy)")
        return _wrap(r)

    def __setitem__(self, idx, value):
        devs = [self._dev]
        i = _unwrap(idx, devs)
        if _has_bool_mask(i):  # _scatter_op_mask_single: n_true = int(mask_scanned[-1])
            _count("scan(mask)")
            _declare_sync("boolean-mask __setitem__ (CuPy: n_true = int(mask_scanned[-1]))")
        v = _unwrap(value, devs)
        if isinstance(v, _np.ndarray) and "host" in devs:
            raise ValueError("fake cupy: setting with a host numpy array: CuPy refuses this (use cupy.asarray)")
        _check_devs(devs, "__setitem__")
        _count("setitem")
        self._a[i] = v

    # methods
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        _check_devs([self._dev], "astype")
        if not copy and _np.dtype(dtype) == self._a.dtype:
            return self
        _count("astype")
        return _wrap(self._a.astype(dtype, order=order, copy=True))

    def copy(self, order="C"):
        _count("copy")
        return _wrap(self._a.copy(order=order))  # on the current device, like CuPy

    def view(self, dtype=None):
        return ndarray(_a=self._a.view() if dtype is None else self._a.view(dtype), _dev=self._dev)

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        r = self._a.reshape(shape, order=order)
        if _np.shares_memory(r, self._a):
            return ndarray(_a=r, _dev=self._dev)
        _count("reshape(copy)")
        return _wrap(r)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        meth = getattr(self._a, name)
        if not callable(meth):
            return meth

        def call(*args, **kw):
            devs = [self._dev]
            a, k = _unwrap(args, devs), _unwrap_kw(kw, devs)
            _check_devs(devs, "ndarray." + name)
            _count("ndarray." + name)
            return _wrap(meth(*a, **k))

        return call

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        f = getattr(sys.modules["cupy"], ufunc.__name__)
        if method == "__call__":
            return f(*inputs, **kw)
        return getattr(f, method)(*inputs, **kw)

    def __array_function__(self, func, types, args, kwargs):
        f = getattr(sys.modules["cupy"], func.__name__, None)
        if f is None:
            return NotImplemented
        return f(*args, **kwargs)


def _binop(opname, inplace=False):
    op = getattr(operator, opname)

    def f(self, other):
        devs = [self._dev]
        o = _unwrap(other, devs)
        if not isinstance(o, (_np.ndarray, int, float, complex, bool, _np.generic)):
            return NotImplemented
        _check_devs(devs, opname)
        _count(opname)
        if inplace:
            op(self._a, o)
            return self
        return _wrap(op(self._a, o))

    return f


def _rbinop(opname):
    op = getattr(operator, opname)

    def f(self, other):
        devs = [self._dev]
        o = _unwrap(other, devs)
        if not isinstance(o, (_np.ndarray, int, float, complex, bool, _np.generic)):
            return NotImplemented
        _check_devs(devs, "r" + opname)
        _count("r" + opname)
        return _wrap(op(o, self._a))

    return f


for _n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and_", "or_", "xor", "lshift",
           "rshift", "lt", "le", "gt", "ge", "eq", "ne"):
    _dn = _n.rstrip("_")
    setattr(ndarray, f"__{_dn}__", _binop(_n))
    if _n not in ("lt", "le", "gt", "ge", "eq", "ne"):
        setattr(ndarray, f"__r{_dn}__", _rbinop(_n))
for _n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and_", "or_", "xor"):
    _dn = _n.rstrip("_")
    _iop = "i" + _n.rstrip("_")
    if not hasattr(operator, _iop):
        continue

    def _mk(iop=_iop):
        op = getattr(operator, iop)

        def f(self, other):
            devs = [self._dev]
            o = _unwrap(other, devs)
            _check_devs(devs, iop)
            _count(iop)
            op(self._a, o)
            return self

        return f

    setattr(ndarray, f"__i{_dn}__", _mk())


def _unary(opname):
    op = getattr(operator, opname)

    def f(self):
        _check_devs([self._dev], opname)
        _count(opname)
        return _wrap(op(self._a))

    return f


for _n in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_n}__", _unary(_n))


# -- module functions ------------------------------------------------------------------------
_SYNCING = {"nonzero", "argwhere", "flatnonzero", "unique", "compress", "extract", "unique_values",
            "unique_counts", "unique_inverse", "unique_all"}
_CREATION_FROM_SHAPE = {"empty", "zeros", "ones", "full", "eye", "identity", "arange", "linspace", "tri"}


def _fn(name, f):
    @functools.wraps(f)
    def call(*args, **kw):
        devs = []
        a, k = _unwrap(args, devs), _unwrap_kw(kw, devs)
        k.pop("blocking", None)
        _check_devs(devs, name)
        _count(name)
        if name in _SYNCING:
            _declare_sync(f"cupy.{name} (output shape depends on the data)")
        r = f(*a, **k)
        if name == "count_nonzero" and isinstance(r, int):
            r = _np.asarray(r)
        return _wrap(r)

    return call


class _Ufunc:
    def __init__(self, name, uf):
        self.__name__, self._uf = name, uf
        self._call = _fn(name, uf)

    def __call__(self, *a, **k):
        return self._call(*a, **k)

    def __getattr__(self, meth):
        m = getattr(self._uf, meth)
        return _fn(f"{self.__name__}.{meth}", m) if callable(m) else m


def asarray(a, dtype=None, order=None, *, blocking=False):
    return array(a, dtype=dtype, copy=False, order=order, blocking=blocking)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if type(obj) is ndarray:
        if obj._dev == current():
            if not copy and (dtype is None or _np.dtype(dtype) == obj.dtype) and ndmin <= obj.ndim:
                return obj
            _count("array(copy)")
            return _wrap(_np.array(obj._a, dtype=dtype, copy=True, ndmin=ndmin))
        _count("array(peer copy)")
        STATS.setdefault("peer_copies", 0)
        STATS["peer_copies"] += 1
        return _wrap(_np.array(obj._a, dtype=dtype, copy=True, ndmin=ndmin))
    if isinstance(obj, (list, tuple)) and any(type(v) is ndarray for v in obj):
        devs = []
        a = _unwrap(obj, devs)
        _check_devs(devs, "array(nested cupy)")
        _count("array(nested cupy)")
        return _wrap(_np.array(a, dtype=dtype, ndmin=ndmin))
    host = _np.array(obj, dtype=dtype, ndmin=ndmin)
    if host.dtype == object:
        raise ValueError("Unsupported dtype object")
    STATS["h2d"] += 1
    STATS["h2d_bytes"] += host.nbytes
    w = _where()
    STATS.setdefault("h2d_where", {})
    STATS["h2d_where"][w] = STATS["h2d_where"].get(w, 0) + 1
    return _wrap(host.copy())


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if type(a) is ndarray:
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    return _np.asarray(a, order=order)


def ascontiguousarray(a, dtype=None):
    return _wrap(_np.ascontiguousarray(a._a, dtype=dtype)) if type(a) is ndarray else asarray(a, dtype)


def isscalar(x):
    return _np.isscalar(x)


def get_array_module(*args):
    return sys.modules["cupy"] if any(type(a) is ndarray for a in args) else _np


def report():
    d = dict(STATS)
    d["pool_used_bytes"] = dict(_POOL_USED)
    return d


def _dump_at_exit():
    path = os.environ.get("FAKE_CUPY_REPORT")
    if path:
        with open(f"{path}.{os.getpid()}.json", "w") as f:
            json.dump(report(), f, indent=1, default=str)


atexit.register(_dump_at_exit)

"""The book's pickled parameters (``ch07/params.pkl``, ``ch08/deep_convnet_params.pkl``), read
without running code from them.

``pickle.load`` calls whatever a file names. The book's files name three things only -- NumPy's
``_reconstruct``, ``ndarray`` and ``dtype`` -- to rebuild a dict of float64 arrays. So this reader
caps the file's size before reading it, lists its opcodes (``pickletools``) and refuses any
opcode that could make another kind of object, then unpickles with stand-ins for those three
names (and for the same arrays as NumPy 2 and protocols 2 and 5 write them): each checks its
arguments, and the array is built here, from bytes whose length must match its shape. Any
other name is refused before it is looked up. What comes back is ``{str: float ndarray}``.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools

import numpy as np

from ..exceptions import CheckpointError
from ..validation import format_bytes
from .npy import is_regular_file

__all__ = ["read_book_params", "is_pickle"]

# opcodes that build only strings, bytes, numbers, tuples and the one dict (plus the memo and the
# calls of the stand-ins below); INST, OBJ, NEWOBJ, EXT*, PERSID, buffers and lists are refused
_OPCODES = frozenset("""PROTO FRAME STOP MARK EMPTY_DICT DICT SETITEM SETITEMS EMPTY_TUPLE TUPLE TUPLE1 TUPLE2
    TUPLE3 BINUNICODE SHORT_BINUNICODE BINUNICODE8 SHORT_BINBYTES BINBYTES BINBYTES8 BYTEARRAY8 BININT BININT1
    BININT2 LONG1 NEWTRUE NEWFALSE NONE MEMOIZE BINPUT LONG_BINPUT BINGET LONG_BINGET GLOBAL STACK_GLOBAL REDUCE
    BUILD""".split())
_FLOATS = {"f2", "f4", "f8"}
_MAX_NDIM = 8


def is_pickle(head: bytes) -> bool:
    """Whether a file's first bytes open a pickle of protocol 2 or later (the book's are 4)."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


class _Refused(Exception):
    """A fault of the file, turned into a CheckpointError naming it by ``read_book_params``."""


class _Dtype:
    """Stands for ``numpy.dtype(code, False, True)``: a float code only; its state (byte order)
    checked when the pickle's BUILD sets it."""

    def __init__(self, code, align=False, copy=True):
        if code not in _FLOATS or align is not False or copy is not True:
            raise _Refused(f"a dtype {code!r} (align={align!r}, copy={copy!r}); parameters are float16/32/64")
        self.dtype = np.dtype(code)

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)
                and state[1] in ("<", ">", "=", "|") and state[2:8] == (None, None, None, -1, -1, 0)
                and (len(state) == 8 or state[8] is None)):
            raise _Refused(f"a dtype state {_short(state)}; only a plain float's byte order is allowed")
        self.dtype = self.dtype.newbyteorder(state[1]) if state[1] in "<>" else self.dtype


_NDARRAY = object()  # stands for numpy.ndarray, which only _reconstruct may receive (never called)


class _Budget:
    """The bytes of array data one file may build in all: a file cannot name one buffer many
    times to make many arrays of it."""

    __slots__ = ("left",)

    def __init__(self, left: int):
        self.left = left

    def array(self, data, dtype, shape, fortran):
        if not isinstance(dtype, _Dtype):
            raise _Refused(f"an array of dtype {_short(dtype)}")
        if not (isinstance(shape, tuple) and len(shape) <= _MAX_NDIM
                and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
            raise _Refused(f"an array of shape {_short(shape)}")
        if not isinstance(data, (bytes, bytearray)):
            raise _Refused(f"array data of type {type(data).__name__}")
        nbytes = math.prod(shape) * dtype.dtype.itemsize
        if len(data) != nbytes:
            raise _Refused(f"an array of shape {shape} ({nbytes} bytes of {dtype.dtype}) holding {len(data)} bytes")
        if nbytes > self.left:
            raise _Refused("more array data than the file holds (its buffers named again and again)")
        self.left -= nbytes
        flat = np.frombuffer(data, dtype=dtype.dtype)
        return flat.reshape(shape, order="F" if fortran else "C").astype(dtype.dtype.newbyteorder("="))


class _ArrayState:
    """What ``_reconstruct`` gives: an empty array-to-be, filled by BUILD with NumPy's state tuple
    ``(version, shape, dtype, is_fortran, data)``, checked here and built from the bytes."""

    def __init__(self, budget: _Budget):
        self.budget, self.array = budget, None

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if self.array is not None or not (isinstance(state, tuple) and len(state) == 4
                                          and isinstance(state[2], bool)):
            raise _Refused(f"an array state {_short(state)}")
        shape, dtype, fortran, data = state
        self.array = self.budget.array(data, dtype, shape, fortran)


# The stand-ins are made for each file, without attributes a pickle's BUILD could set.
class _Reconstruct:
    __slots__ = ("budget",)

    def __init__(self, budget):
        self.budget = budget

    def __call__(self, cls, shape, typecode):
        if cls is not _NDARRAY or shape != (0,) or typecode != b"b":
            raise _Refused(f"_reconstruct{_short((cls, shape, typecode))}; NumPy's pickles call it as "
                           "_reconstruct(ndarray, (0,), b'b')")
        return _ArrayState(self.budget)


class _FromBuffer(_Reconstruct):  # NumPy 2's protocol 5 form, its buffer in band
    __slots__ = ()

    def __call__(self, buf, dtype, shape, order):
        if order not in ("C", "F"):
            raise _Refused(f"an array order {_short(order)}")
        return self.budget.array(buf, dtype, shape, order == "F")


class _Latin1(_Reconstruct):  # protocol 2 writes bytes as _codecs.encode(str, 'latin1')
    __slots__ = ()

    def __call__(self, text, encoding):
        if not isinstance(text, str) or encoding != "latin1":
            raise _Refused(f"_codecs.encode{_short((text, encoding))}")
        return text.encode("latin1")


class _EmptyBytes(_Reconstruct):  # protocol 2 writes b"" as __builtin__.bytes()
    __slots__ = ()

    def __call__(self, *args):
        if args:
            raise _Refused(f"bytes{_short(args)}")
        return b""


_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _Reconstruct,  # NumPy 1, as the book's files
    ("numpy._core.multiarray", "_reconstruct"): _Reconstruct,  # NumPy 2
    ("numpy.core.numeric", "_frombuffer"): _FromBuffer,
    ("numpy._core.numeric", "_frombuffer"): _FromBuffer,
    ("numpy", "ndarray"): None,  # _NDARRAY
    ("numpy", "dtype"): None,  # the _Dtype class
    ("_codecs", "encode"): _Latin1,
    ("__builtin__", "bytes"): _EmptyBytes,
    ("builtins", "bytes"): _EmptyBytes,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, budget: _Budget):
        super().__init__(file)
        self._builders = {}
        self._budget = budget

    def find_class(self, module, name):
        key = (module, name)
        if key not in _GLOBALS:  # refused before any import or lookup
            raise _unknown_global(module, name)
        if key == ("numpy", "ndarray"):
            return _NDARRAY
        if key == ("numpy", "dtype"):
            return _Dtype
        made = self._builders.get(key)
        if made is None:
            made = self._builders[key] = _GLOBALS[key](self._budget)
        return made

    def persistent_load(self, pid):
        raise _Refused("a persistent id")


def _unknown_global(module, name) -> _Refused:
    return _Refused(f"the global {module}.{name}; a file of parameters names only NumPy's array builders")


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def read_book_params(path, max_bytes: int) -> dict:
    """``{name: float ndarray}`` from a pickle of a dict of NumPy float arrays (the book's
    ``save_params``), no code run; ``CheckpointError`` naming the file for anything else, a
    file over ``max_bytes`` refused before it is read."""
    path = os.fspath(path)
    if os.path.exists(path) and not is_regular_file(path):
        raise CheckpointError(f"{path} is not a regular file (a pipe or a device?); give the file of parameters")
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise CheckpointError(f"{path} is {format_bytes(size)}, more than the {format_bytes(max_bytes)} this "
                                  "net's parameters can take (float64, with room for the pickle); refused unread")
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        for op, _arg, pos in pickletools.genops(data):
            if op.name not in _OPCODES:
                raise _Refused(f"the opcode {op.name} at byte {pos}")
            if op.name == "GLOBAL":
                module, _, name = str(_arg).partition(" ")
                if (module, name) not in _GLOBALS:
                    raise _unknown_global(module, name)
        obj = _Unpickler(io.BytesIO(data), _Budget(len(data))).load()
    except _Refused as e:
        raise CheckpointError(f"{path}: refused {e} -- not a file of parameters as the book's save_params writes "
                              "(nothing in it was run)") from None
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError, IndexError, KeyError, AttributeError,
            OverflowError, MemoryError, RecursionError) as e:
        raise CheckpointError(f"{path} is not a readable pickle of parameters ({type(e).__name__}: {e}); the file "
                              "is damaged or of another kind") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not the dict of parameters the book's "
                              "save_params writes")
    out = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: a parameter is named {_short(key)}, not a string")
        array = value.array if isinstance(value, _ArrayState) else value
        if not isinstance(array, np.ndarray):
            raise CheckpointError(f"{path}: parameter {key!r} is a {type(value).__name__}, not an array")
        out[key] = array
    return out

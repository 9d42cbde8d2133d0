"""The ``.npz`` reader of checkpoints: the file is treated as hostile.

Before a member is decompressed, its declared sizes (zip directory) and its ``.npy`` header
(shape, dtype) are checked against what the caller expects and against hard caps, so a small
file that would inflate to gigabytes, or a header declaring terabytes, is refused with a
``CheckpointError`` that names the file and the fault -- never a ``MemoryError``, a
``RecursionError`` or a traceback from inside zipfile. ``numpy.load`` does none of this.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
import zipfile
import zlib

import numpy as np

from ..exceptions import CheckpointError
from ..validation import format_bytes
from .npy import MAGIC, MAX_HEADER, is_regular_file, read_header

__all__ = ["open_npz", "NpzReader", "dtype_fault", "MAX_JSON_DEPTH"]

MAX_JSON_DEPTH = 64  # nesting of a JSON member (deeper is a RecursionError inside json)
_MAX_MEMBERS = 10000
_MAX_RATIO = 100     # a deflated member larger than 1 MiB may expand at most this much
_CHUNK = 16 << 20
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError, struct.error,
               NotImplementedError, RuntimeError, UnicodeError, OverflowError, KeyError, IndexError)


@contextlib.contextmanager
def open_npz(path: str):
    """``with open_npz(path) as npz:`` an ``NpzReader`` of the checkpoint at ``path``; whatever
    goes wrong in reading it inside the block is a ``CheckpointError`` naming the file."""
    try:
        with _open_zip(path) as zf:
            yield NpzReader(zf, path)
    except _ZIP_ERRORS as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path} is damaged: {type(e).__name__}: {str(e)[:200]}; save the net again") from None


def _open_zip(path: str) -> zipfile.ZipFile:
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a directory, not a checkpoint file; give the .npz file "
                              "save_net wrote (e.g. its model.npz)")
    if not is_regular_file(path):  # a FIFO or a device would block the read (or never end)
        raise CheckpointError(f"checkpoint {path} is not a regular file (a pipe or a device?); give the .npz file "
                              "save_net wrote")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} cannot be read ({e})") from None
    if head.startswith(MAGIC):
        raise CheckpointError(f"{path} is a single NumPy array (.npy), not an xpnet checkpoint: load_net reads the "
                              ".npz files save_net writes (numpy.load reads a .npy)")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise CheckpointError(f"{path} is damaged or not an .npz checkpoint: it does not start like a zip archive "
                              f"(first bytes {head!r}); give a file written by save_net")
    try:
        return zipfile.ZipFile(path)
    except _ZIP_ERRORS as e:
        raise CheckpointError(f"{path} is damaged or not an .npz checkpoint: its zip directory is unreadable "
                              f"({type(e).__name__}: {e}); save the net again") from None


def _members(zf: zipfile.ZipFile, path: str) -> dict:
    """The zip directory, checked: no duplicates, encryption, other compressions or zip bombs."""
    infos = zf.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise CheckpointError(f"{path} holds {len(infos)} members; an xpnet checkpoint holds far fewer "
                              "(one per parameter and state array)")
    members = {}
    for info in infos:
        name = info.filename
        if name in members:
            raise CheckpointError(f"{path} holds two members named {name!r}; the file was tampered with or damaged")
        if info.flag_bits & 1:
            raise CheckpointError(f"{path}: member {name!r} is encrypted; xpnet checkpoints are not")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(f"{path}: member {name!r} uses zip compression method {info.compress_type}; "
                                  "numpy .npz files are stored or deflated")
        if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > (1 << 20) \
                and info.file_size > _MAX_RATIO * max(info.compress_size, 1):
            raise CheckpointError(
                f"{path}: member {name!r} declares {format_bytes(info.file_size)} compressed into "
                f"{format_bytes(info.compress_size)} (over {_MAX_RATIO}x): a zip bomb, not a checkpoint; "
                "refused unread")
        members[name] = info
    return members


def dtype_fault(dt: np.dtype, allowed: str) -> str | None:
    """Why ``dt`` is refused (None when fine). ``allowed``: 'float' (float16/32/64) or 'state'
    (those and integers)."""
    if dt.fields is not None or dt.subdtype is not None or dt.kind == "V":
        return "a structured dtype"
    kinds = {"c": "a complex dtype", "b": "a bool dtype", "M": "a datetime dtype", "m": "a timedelta dtype",
             "O": "an object dtype", "U": "a string dtype", "S": "a bytes dtype"}
    if dt.kind in kinds:
        return kinds[dt.kind]
    if dt.kind == "f" and dt.itemsize not in (2, 4, 8):
        return f"{dt} (xpnet reads float16/32/64)"
    if allowed == "float" and dt.kind != "f":
        return f"{dt}, not a floating dtype"
    if dt.kind not in "fiu":
        return f"an unsupported dtype {dt}"
    return None


def _parse_json(text: str, path: str):
    """JSON with its nesting depth checked first (deep nesting is a RecursionError in ``json``)."""
    depth = deepest = 0
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    raise CheckpointError(f"{path} has a malformed architecture record: its JSON is nested more "
                                          f"than {MAX_JSON_DEPTH} levels deep")
        elif c in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{path} has a malformed architecture record: not valid JSON "
                              f"({type(e).__name__}: {str(e)[:200]})") from None


class NpzReader:
    """The members of an open checkpoint (``open_npz``): ``names``, and each read with ``json``
    or ``array`` only once its declared sizes, shape and dtype pass."""

    def __init__(self, zf: zipfile.ZipFile, path: str):
        self._zf, self.path = zf, path
        self._members = _members(zf, path)

    @property
    def names(self) -> list:
        """The member names, as the zip directory lists them (``param/W1.npy``, ...)."""
        return list(self._members)

    def json(self, name: str, *, max_bytes: int):
        """The member ``name``, a 0-d string array, as JSON data (its nesting bounded)."""
        raw = self._read(name, "meta", None, None, max_bytes)
        try:
            text = str(raw[()])
        except (ValueError, UnicodeError) as e:
            raise CheckpointError(f"{self.path} has a malformed architecture record ({e})") from None
        return _parse_json(text, self.path)

    def array(self, name: str, *, kind: str, max_bytes: int, shape=None, dtype=None) -> np.ndarray:
        """The member ``name`` as a NumPy array, refused before its data is read unless it is a
        ``kind`` ('parameter': float16/32/64; 'state array': those or integers) of ``shape`` and
        ``dtype`` (when given) within ``max_bytes``."""
        return self._read(name, kind, shape, dtype, max_bytes)

    def _read(self, name, kind, shape, dtype, max_bytes) -> np.ndarray:
        info, path = self._members[name], self.path
        if info.file_size > max_bytes + MAX_HEADER + 16:
            raise CheckpointError(f"{path}: member {name!r} declares {format_bytes(info.file_size)}, more than the "
                                  f"{format_bytes(max_bytes)} it may hold; refused unread")
        with self._zf.open(info) as stream:
            header = read_header(stream, lambda why: CheckpointError(f"{path}: member {name!r} {why}"))
            got_shape, dt = header.shape, header.dtype
            _check_kind(path, name, kind, got_shape, dt)
            nbytes = header.data_bytes
            if shape is not None and tuple(got_shape) != tuple(shape):
                raise CheckpointError(f"{path}: {kind} {name!r} declares shape {got_shape} ({format_bytes(nbytes)} of "
                                      f"{dt}), but the architecture record says {tuple(shape)}; refused unread")
            if dtype is not None and dt != dtype:
                raise CheckpointError(f"{path}: {kind} {name!r} has dtype {dt}, but the record says {dtype}; "
                                      "the file was tampered with")
            if nbytes > max_bytes:
                raise CheckpointError(f"{path}: {kind} {name!r} declares shape {got_shape} of {dt}: "
                                      f"{format_bytes(nbytes)}, more than the {format_bytes(max_bytes)} allowed; "
                                      "refused unread")
            if header.size + nbytes != info.file_size:
                raise CheckpointError(f"{path}: member {name!r} is {format_bytes(info.file_size)} in the zip directory "
                                      f"but its .npy header declares {header.size + nbytes} bytes; the file is damaged")
            buf = np.empty(nbytes, dtype=np.uint8)
            view = memoryview(buf)
            done = 0
            while done < nbytes:
                n = stream.readinto(view[done: done + _CHUNK])
                if not n:
                    raise EOFError(f"member {name!r} ends after {done} of {nbytes} data bytes")
                done += n
            if stream.read(1):  # also makes zipfile check the CRC
                raise CheckpointError(f"{path}: member {name!r} is longer than its header says")
        arr = buf.view(dt)
        arr = arr.reshape(got_shape[::-1]).T if header.fortran_order else arr.reshape(got_shape)
        if not dt.isnative:
            arr = arr.astype(dt.newbyteorder("="))
        return arr


def _check_kind(path, name, kind, shape, dt) -> None:
    if kind == "meta":
        if shape != () or dt.kind != "U":
            raise CheckpointError(f"{path}: the architecture record {name!r} is a {dt} array of shape {shape}, "
                                  "not a JSON string; the file is damaged or not an xpnet checkpoint")
        return
    fault = dtype_fault(dt, "float" if kind == "parameter" else "state")
    if fault:
        what = "parameters must be float16/32/64" if kind == "parameter" else \
            "state arrays must be real floating or integer"
        raise CheckpointError(f"{path}: {kind} {name!r} has {fault}; {what} -- the file is damaged or was "
                              "not written by save_net")

"""``.npy`` headers read as hostile, and the images ``xpnet predict --images`` reads from an ``.npy``.

A header is read alone, its length bounded (numpy's own limit for a safe header), and parsed
before anything else: the shape and dtype a file declares are known -- and refused when absurd --
before a byte of its data is allocated.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
from typing import NamedTuple

import numpy as np
from numpy.lib import format as npy_format

from ..exceptions import DatasetError

__all__ = ["MAGIC", "MAX_HEADER", "NpyHeader", "read_header", "load_images_npy", "is_regular_file"]

MAGIC = b"\x93NUMPY"
MAX_HEADER = 10000  # numpy's own limit for a safe .npy header


class NpyHeader(NamedTuple):
    shape: tuple
    fortran_order: bool
    dtype: np.dtype
    size: int  # bytes before the data: magic, version, header length and header

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _read_exact(stream, n: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"{what} ends after {len(data)} of {n} bytes")
    return data


def read_header(stream, fault=ValueError, versions=((1, 0), (2, 0))) -> NpyHeader:
    """The ``.npy`` header at the start of ``stream``, read alone and bounded before numpy parses
    it. A fault raises ``fault(why)`` (``why``: 'has a malformed .npy header (...)', ...); a stream
    that ends inside the header raises ``EOFError``."""
    prefix = _read_exact(stream, 8, "the .npy magic")
    if not prefix.startswith(MAGIC):
        raise fault(f"is not a .npy array (bad magic {prefix[:6]!r})")
    version = (prefix[6], prefix[7])
    if version not in versions:
        known = " and ".join(f"{a}.{b}" for a, b in versions)
        raise fault(f"has .npy format version {version}; xpnet writes and reads versions {known}")
    fmt = "<H" if version == (1, 0) else "<I"
    size_bytes = _read_exact(stream, struct.calcsize(fmt), "the .npy header length")
    hlen = struct.unpack(fmt, size_bytes)[0]
    if hlen > MAX_HEADER:
        raise fault(f"declares a {hlen}-byte .npy header (a real one is under {MAX_HEADER}); refused unread")
    header = _read_exact(stream, hlen, "the .npy header")
    buf = io.BytesIO(prefix + size_bytes + header)
    try:
        npy_format.read_magic(buf)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = read(buf)
    except (ValueError, TypeError, SyntaxError, RecursionError, UnicodeError) as e:
        raise fault(f"has a malformed .npy header ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise fault(f"has a malformed .npy shape {shape!r}")
    return NpyHeader(shape, bool(fortran), dtype, 8 + len(size_bytes) + hlen)


def is_regular_file(path) -> bool:
    """Whether ``path`` is a plain file (not a FIFO, socket or device, whose read may never end)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, TypeError, ValueError):
        return False


def _data_fits_the_file(file) -> None:
    """The data an ``.npy`` header declares must be in the file (checked from the header alone)."""
    try:
        with open(file, "rb") as f:
            header = read_header(f, versions=((1, 0), (2, 0), (3, 0)))
            have = os.fstat(f.fileno()).st_size - header.size
    except (OSError, ValueError, EOFError):
        return  # not an .npy (or unreadable): np.load says what it is
    need = header.data_bytes
    if header.dtype.kind != "O" and need > have:
        raise DatasetError(f"{file} declares {need:,} bytes of images (shape {header.shape}, {header.dtype}) but holds "
                           f"{have:,}: a damaged or hostile file; save the images again with numpy.save")


def load_images_npy(file, n_pixels: int) -> np.ndarray:
    """Images from an ``.npy`` file (``allow_pickle=False``) as float32 rows of ``n_pixels`` in [0, 1]:
    shape (N, D), (N, H, W) or (N, 1, H, W) with H*W == D, or one image; uint8 0..255 or float in
    [0, 1]. Anything else is a DatasetError that starts with the file's name and says what to do."""
    d = int(n_pixels)
    if os.path.exists(file) and not is_regular_file(file):
        raise DatasetError(f"{file} is not a regular file (a pipe or a device?); give an .npy file of images")
    _data_fits_the_file(file)  # a header declaring terabytes is refused before numpy allocates them
    try:
        arr = np.load(file, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"{file} does not exist") from None
    except (ValueError, OSError, EOFError) as e:
        raise DatasetError(f"{file} is not a NumPy .npy file of numbers ({e}); save one with numpy.save") from None
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise DatasetError(f"{file} is an .npz archive; save the images as one array with numpy.save (.npy)")
    shape = arr.shape
    if arr.ndim == 4 and arr.shape[1] == 1:  # (N, 1, H, W), the book's flatten=False layout
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim == 1 and arr.size == d or arr.ndim == 2 and arr.shape[1] != d and arr.size == d:
        arr = arr.reshape(1, d)  # one image
    elif arr.ndim == 3 and arr.shape[1] * arr.shape[2] == d:
        arr = arr.reshape(arr.shape[0], d)
    if arr.ndim != 2 or arr.shape[1] != d or arr.shape[0] == 0:
        side = int(round(d ** 0.5))
        square = f" or (N, {side}, {side})" if side * side == d else ""
        raise DatasetError(f"{file} has shape {shape}; the model takes images of {d} pixels: expected (N, {d})"
                           f"{square}, or one image")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255)
    if not np.issubdtype(arr.dtype, np.floating):
        raise DatasetError(f"{file} holds {arr.dtype}; expected uint8 (0..255) or float in [0, 1]")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise DatasetError(f"{file} holds NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > 1:
        raise DatasetError(f"{file} holds values from {lo:g} to {hi:g}; expected float in [0, 1] "
                           f"(divide 0..255 pixels by 255, or pass them as uint8)")
    return arr

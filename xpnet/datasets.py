"""MNIST and other IDX datasets, read and validated on the host (NumPy).

The original MNIST files ship inside the package, so training works offline right after
``pip install``. Every file is checked -- magic number, dimensions, length, and the SHA-256
of its contents against the known digest -- and a bad file gives an error that names it,
says what is wrong and how to fix it.  ``XPNET_DATA_DIR`` or ``path=`` point at another copy.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["DatasetError", "load_mnist", "load_idx_dataset", "read_idx", "mnist_dir", "load_images_npy"]

_PACKAGED = Path(__file__).resolve().parent / "_data" / "mnist"

# SHA-256 of the *uncompressed* original files: a gzipped or a plain copy both verify.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
_SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
           "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049
_FIX = ("restore the original file (reinstall xpnet for the bundled copy, or copy it again from "
        "your MNIST source), or point XPNET_DATA_DIR / path= at a good copy")


class DatasetError(ValueError):
    """A dataset file is missing, truncated, corrupted or of the wrong kind."""


def mnist_dir(path=None) -> Path:
    """Where MNIST is read from: ``path``, else ``$XPNET_DATA_DIR``, else the bundled copy."""
    chosen = path or os.environ.get("XPNET_DATA_DIR")
    return Path(chosen).expanduser() if chosen else _PACKAGED


def _find(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        if (directory / name).is_file():
            return directory / name
    if not directory.is_dir():
        raise DatasetError(f"dataset directory {directory} does not exist; check path= or XPNET_DATA_DIR")
    raise DatasetError(f"{stem}(.gz) is missing from {directory}; {_FIX}")


def _read_bytes(file: Path) -> bytes:
    raw = file.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise DatasetError(f"{file} is not a readable gzip file ({e}): it is truncated or corrupted; "
                           f"{_FIX}") from None


def read_idx(file, expected_magic: int | None = None, sha256: str | None = None) -> np.ndarray:
    """One IDX file (gzipped or not) as a uint8 array, with every header field checked."""
    file = Path(file)
    data = _read_bytes(file)
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise DatasetError(f"{file} has SHA-256 {digest[:16]}..., not the original's {sha256[:16]}...: "
                               f"the file is corrupted or not the original; {_FIX}")
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{file} is not an IDX file (bad header); {_FIX}")
    magic = int.from_bytes(data[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        kind = {_IMAGES_MAGIC: "images", _LABELS_MAGIC: "labels"}.get(expected_magic, "")
        raise DatasetError(f"{file} has magic number {magic}, expected {expected_magic} for IDX {kind}; "
                           f"is it the right file? {_FIX}")
    if data[2] != 0x08:
        raise DatasetError(f"{file} holds IDX type 0x{data[2]:02x}; only unsigned bytes (0x08) are supported")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DatasetError(f"{file} is truncated inside its header; {_FIX}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise DatasetError(f"{file} is {what}: {len(data)} bytes for shape {shape}, expected {expected}; {_FIX}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


_CACHE: dict = {}


def _read_idx_cached(file: Path, magic, sha256):
    """``read_idx``, remembered per file (path, size, mtime): decompressing and hashing MNIST costs
    about a second, and a session often loads it more than once. The cached array is read-only;
    callers get converted copies."""
    st = file.stat()
    key = (str(file.resolve()), st.st_size, st.st_mtime_ns, magic, sha256)
    arr = _CACHE.get(key)
    if arr is None:
        arr = read_idx(file, magic, sha256)
        arr.flags.writeable = False
        if len(_CACHE) >= 8:
            _CACHE.clear()
        _CACHE[key] = arr
    return arr


def _finish(images, labels, file_i, file_l, normalize, flatten, one_hot_label, dtype):
    if images.ndim != 3:
        raise DatasetError(f"{file_i} holds {images.ndim}-d data, expected N x rows x cols images")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DatasetError(f"{file_l} has {labels.shape[0]} labels but {file_i} has {images.shape[0]} "
                           "images; the pair does not belong together")
    x = images.astype(dtype)
    if normalize:
        x /= 255.0
    x = x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, *images.shape[1:])
    t = labels.astype(np.int64)
    if one_hot_label:
        t = np.eye(int(t.max()) + 1 if t.size else 10, dtype=dtype)[t] if t.size else np.zeros((0, 10), dtype)
    return x, t


def _load(directory: Path, splits, normalize, flatten, one_hot_label, dtype, digests):
    out = []
    for split in ("train", "test"):
        stem_i, stem_l = splits[split]
        fi, fl = _find(directory, stem_i), _find(directory, stem_l)
        images = _read_idx_cached(fi, _IMAGES_MAGIC, digests.get(stem_i))
        labels = _read_idx_cached(fl, _LABELS_MAGIC, digests.get(stem_l))
        out.append(_finish(images, labels, fi, fl, normalize, flatten, one_hot_label, dtype))
    if one_hot_label and out[0][1].shape[1] != out[1][1].shape[1]:  # pad to the same class count
        c = max(out[0][1].shape[1], out[1][1].shape[1])
        out = [(x, np.pad(t, ((0, 0), (0, c - t.shape[1])))) for x, t in out]
    return tuple(out)


def _check_dtype(dtype, normalize):
    dtype = np.dtype(dtype)
    if normalize and not np.issubdtype(dtype, np.floating):
        raise ValueError(f"normalize=True scales pixels to [0, 1], which needs a floating dtype, got {dtype}; "
                         "pass normalize=False for integer pixels")
    return dtype


def load_mnist(normalize=True, flatten=True, one_hot_label=False, dtype="float32", path=None):
    """The book's ``load_mnist``: ``(x_train, t_train), (x_test, t_test)`` as host NumPy arrays.

    Images are ``dtype`` in [0, 1] (or 0..255 with ``normalize=False``), shape (N, 784) or
    (N, 1, 28, 28); labels are int64 class indices, or one-hot rows with ``one_hot_label``.
    """
    return _load(mnist_dir(path), _SPLITS, normalize, flatten, one_hot_label, _check_dtype(dtype, normalize),
                 MNIST_SHA256)


def _sums_file(directory: Path) -> dict:
    """Digests listed in a SHA256SUMS file next to the data (uncompressed entries)."""
    f = directory / "SHA256SUMS"
    sums = {}
    if f.is_file():
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "(uncompressed)":
                sums[parts[1]] = parts[0]
    return sums


def load_idx_dataset(directory, normalize=True, flatten=True, one_hot_label=False, dtype="float32",
                     train=("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                     test=("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), sha256=None):
    """Any dataset in MNIST's IDX layout (Fashion-MNIST, KMNIST, ...) from ``directory``.

    Same validation as ``load_mnist``; digests come from ``sha256`` (file stem -> hex of the
    uncompressed file) or from a ``SHA256SUMS`` file with ``(uncompressed)`` entries.
    """
    directory = Path(directory).expanduser()
    digests = dict(_sums_file(directory))
    digests.update(sha256 or {})
    return _load(directory, {"train": tuple(train), "test": tuple(test)}, normalize, flatten,
                 one_hot_label, _check_dtype(dtype, normalize), digests)


def load_images_npy(file, n_pixels: int) -> np.ndarray:
    """Images from an ``.npy`` file (``allow_pickle=False``) as float32 rows of ``n_pixels`` in [0, 1]:
    shape (N, D), (N, H, W) or (N, 1, H, W) with H*W == D, or one image; uint8 0..255 or float in
    [0, 1]. Anything else is a DatasetError that starts with the file's name and says what to do."""
    d = int(n_pixels)
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

"""MNIST and other IDX datasets, read and validated on the host (NumPy).

The original MNIST files ship inside the package, so training works offline right after
``pip install``. Every file gets the structural checks -- magic number, dimensions, length
(decoded in a streaming way, never past what the header declares, and absurd declared sizes
refused before anything is allocated), label range, matching counts -- and a SHA-256 check
where a digest is known: MNIST's own digests for the bundled copy, a ``SHA256SUMS`` file next
to the data for any other directory. A bad file gives an error that names it, says what is
wrong and how to fix it. ``XPNET_DATA_DIR`` or ``path=`` point at another copy, or at any
dataset in MNIST's IDX layout (Fashion-MNIST, KMNIST, ...). The returned data says whether it
was verified (``data.verified``, ``data.verified_by``).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import zlib
from pathlib import Path

import numpy as np

from .exceptions import DatasetError

__all__ = ["DatasetError", "IdxData", "load_mnist", "load_idx_dataset", "read_idx", "mnist_dir",
           "MAX_IDX_BYTES", "load_images_npy"]

_PACKAGED = Path(__file__).resolve().parent / "_data" / "mnist"

# SHA-256 of the *uncompressed* original files: a gzipped or a plain copy both verify.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_SHAPES = {
    "train-images-idx3-ubyte": (60000, 28, 28), "train-labels-idx1-ubyte": (60000,),
    "t10k-images-idx3-ubyte": (10000, 28, 28), "t10k-labels-idx1-ubyte": (10000,),
}
_SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
           "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049
_FIX = ("restore the original file (reinstall xpnet for the bundled copy, or copy it again from "
        "your dataset's source), or point XPNET_DATA_DIR / path= at a good copy")

MAX_IDX_BYTES = 1 << 30          # the decoded size one IDX file may declare (max_bytes= to change)
_MAX_GZIP_RATIO = 1040           # deflate expands at most ~1032-fold
_MAX_SUMS_BYTES = 1 << 20
_CHUNK = 1 << 20
_HEX = re.compile(r"[0-9a-fA-F]{64}")


class IdxData(tuple):
    """``((x_train, t_train), (x_test, t_test))`` -- unpacks like the book's tuple -- and where it
    came from: ``directory``; ``verified`` (every file's SHA-256 checked) and ``verified_by``
    (``'MNIST digests'``, the ``SHA256SUMS`` path, ``'sha256='``, or None: structural checks only)."""

    directory: Path
    verified: bool
    verified_by: str | None

    def __new__(cls, splits, directory, verified_by):
        self = super().__new__(cls, splits)
        self.directory, self.verified_by, self.verified = directory, verified_by, verified_by is not None
        return self


def _source(path):
    """(directory, what named it) for ``path``, ``$XPNET_DATA_DIR`` or the bundled copy."""
    if path is not None and os.fspath(path) != "":
        return Path(path).expanduser(), "path="
    env = os.environ.get("XPNET_DATA_DIR")
    if env:
        return Path(env).expanduser(), "XPNET_DATA_DIR"
    return _PACKAGED, "the bundled copy"


def mnist_dir(path=None) -> Path:
    """Where MNIST is read from: ``path``, else ``$XPNET_DATA_DIR``, else the bundled copy."""
    return _source(path)[0]


def _check_directory(directory: Path, source: str) -> None:
    named = {"path=": "path= names", "XPNET_DATA_DIR": "XPNET_DATA_DIR names",
             "directory=": "directory= names"}.get(source, "it is")
    if not directory.exists():
        fix = "reinstall xpnet" if source == "the bundled copy" else \
            f"fix {source.rstrip('=')} (or create the directory and put the IDX files in it)"
        raise DatasetError(f"dataset directory {directory} does not exist ({named} it); {fix}")
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a directory ({named} it): {source.rstrip('=')} must name the "
                           "directory holding the IDX files, not a file")


def _find(directory: Path, stem: str) -> Path:
    try:
        for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
            if (directory / name).is_file():
                return directory / name
    except OSError as e:
        raise DatasetError(f"cannot look into {directory} ({e})") from None
    raise DatasetError(f"{stem}(.gz) is missing from {directory}; {_FIX}")


# -- decoding one file, bounded -----------------------------------------------------------
class _Reader:
    """The decoded bytes of a plain or gzipped file, read in chunks, never more than asked
    for; the SHA-256 of the file as stored is kept on the way (``raw_hash``)."""

    def __init__(self, f, file: Path):
        self.f, self.file = f, file
        self.raw_hash = hashlib.sha256()
        first = self._next_raw(2)
        self.gz = first == b"\x1f\x8b"
        self.pending = first
        self.d = zlib.decompressobj(31) if self.gz else None
        self.ended = False

    def _next_raw(self, n=_CHUNK) -> bytes:
        chunk = self.f.read(n)
        self.raw_hash.update(chunk)
        return chunk

    def _bad_gzip(self, why) -> DatasetError:
        return DatasetError(f"{self.file} is not a readable gzip file ({why}): it is truncated or corrupted; {_FIX}")

    def read(self, n: int) -> bytes:
        """Up to ``n`` decoded bytes; fewer only at the end of the data."""
        if not self.gz:
            out = self.pending[:n]
            self.pending = self.pending[n:]
            return out + (self.f.read(n - len(out)) if len(out) < n else b"")  # hashed in finish()
        parts, want = [], n
        while want > 0 and not self.ended:
            if self.d.eof:  # one gzip member done: another may follow (as gzip.decompress reads them)
                rest = self.d.unused_data + self.pending
                self.pending = b""
                while True:
                    rest = rest.lstrip(b"\0")  # gzip tolerates zero padding after a member
                    if rest or not (rest := self._next_raw()):
                        break
                if not rest:
                    self.ended = True
                    break
                if not rest.startswith(b"\x1f\x8b"[: len(rest)]):
                    raise self._bad_gzip("unexpected bytes after the end of the compressed data")
                self.d, self.pending = zlib.decompressobj(31), rest
            if not self.pending:
                self.pending = self._next_raw()
                if not self.pending:
                    raise self._bad_gzip("the compressed stream ends early")
            try:
                data = self.d.decompress(self.pending, min(want, _CHUNK))
            except zlib.error as e:
                raise self._bad_gzip(e) from None
            self.pending = self.d.unconsumed_tail
            parts.append(data)
            want -= len(data)
        return b"".join(parts)

    def readinto(self, view: memoryview) -> int:
        done = 0
        while done < len(view):
            if not self.gz:
                if self.pending:
                    k = min(len(self.pending), len(view) - done)
                    view[done: done + k] = self.pending[:k]
                    self.pending = self.pending[k:]
                    n = k
                else:
                    n = self.f.readinto(view[done: done + _CHUNK])
            else:
                data = self.read(min(len(view) - done, _CHUNK))
                n = len(data)
                view[done: done + n] = data
            if not n:
                break
            done += n
        return done


def _header(reader: _Reader, file: Path, expected_magic):
    head = reader.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DatasetError(f"{file} is not an IDX file (bad header); {_FIX}")
    if head[2] != 0x08:
        raise DatasetError(f"{file} holds IDX type 0x{head[2]:02x}; only unsigned bytes (0x08) are supported")
    magic = int.from_bytes(head, "big")
    if expected_magic is not None and magic != expected_magic:
        kind = {_IMAGES_MAGIC: "images", _LABELS_MAGIC: "labels"}.get(expected_magic, "")
        raise DatasetError(f"{file} has magic number {magic}, expected {expected_magic} for IDX {kind}; "
                           f"is it the right file? {_FIX}")
    ndim = head[3]
    dims = reader.read(4 * ndim)
    if ndim == 0 or len(dims) < 4 * ndim:
        raise DatasetError(f"{file} is truncated inside its header; {_FIX}")
    shape = tuple(int.from_bytes(dims[4 * i: 4 + 4 * i], "big") for i in range(ndim))
    return head + dims, shape


def _decode(file: Path, magic, sha256, shape, max_bytes):
    """(array, SHA-256 of the file as stored) with every check; refused from the declared sizes
    before anything big is allocated or decompressed."""
    try:
        f = open(file, "rb")
    except OSError as e:
        raise DatasetError(f"cannot read {file} ({e})") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        reader = _Reader(f, file)
        head, got = _header(reader, file, magic)
        n = math.prod(got)
        expected = len(head) + n
        if shape is not None and got != tuple(shape):
            raise DatasetError(f"{file} declares shape {got}, but the original has shape {tuple(shape)}: it is "
                               f"damaged or not the original; {_FIX}")
        if n > max_bytes:
            raise DatasetError(f"{file} declares shape {got}: {n} bytes, more than the {max_bytes} an IDX file may "
                               "hold here (max_bytes=); refused before reading it -- the header is damaged or the "
                               "file is not a dataset")
        if reader.gz and n > _MAX_GZIP_RATIO * size + _CHUNK:
            raise DatasetError(f"{file} declares shape {got}: {n} bytes, more than a {size}-byte gzip file can "
                               f"hold; the header is damaged (or the file is a decompression bomb); {_FIX}")
        if not reader.gz and size != expected:
            what = "truncated" if size < expected else "longer than its header says"
            raise DatasetError(f"{file} is {what}: {size} bytes for shape {got}, expected {expected}; {_FIX}")
        data_hash = hashlib.sha256(head)
        out = np.empty(n, dtype=np.uint8)
        done = reader.readinto(memoryview(out))
        if done < n:
            raise DatasetError(f"{file} is truncated: {len(head) + done} bytes for shape {got}, expected {expected}; "
                               f"{_FIX}")
        if reader.read(1):
            raise DatasetError(f"{file} is longer than its header says: more than {expected} bytes for shape {got}; "
                               f"{_FIX}")
        data_hash.update(out)
        # a plain file is its data (its size was checked): one hash serves both
        raw = reader.raw_hash.hexdigest() if reader.gz else data_hash.hexdigest()
    if sha256 is not None:
        digest = data_hash.hexdigest()
        if digest != sha256:
            raise DatasetError(f"{file} has SHA-256 {digest[:16]}..., not the original's {sha256[:16]}...: "
                               f"the file is corrupted or not the original; {_FIX}")
    return out.reshape(got), raw


def read_idx(file, expected_magic: int | None = None, sha256: str | None = None, *,
             max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """One IDX file (gzipped or not) as a uint8 array, with every header field checked;
    ``sha256``: the digest of the uncompressed file, checked when given."""
    return _decode(Path(file), expected_magic, sha256, None, max_bytes)[0]


def _file_sha256(file: Path, max_bytes: int) -> str:
    try:
        with open(file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes + max_bytes // 64 + _CHUNK:
                raise DatasetError(f"{file} is {size} bytes, more than an IDX file of at most {max_bytes} bytes "
                                   "(max_bytes=) can be; refused unread")
            h = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as e:
        raise DatasetError(f"cannot read {file} ({e})") from None
    return h.hexdigest()


_CACHE: dict = {}


def _read_idx_cached(file: Path, magic, sha256, file_sha256, shape, max_bytes):
    """``_decode``, remembered per file *content* (the SHA-256 of the file as stored, hashed
    again on every call: a file changed in place, even with the same size and modification
    time, is read afresh). Decompressing and checking MNIST costs about a second, hashing
    its compressed files a few milliseconds. The cached array is read-only; callers get copies."""
    raw = _file_sha256(file, max_bytes)
    if file_sha256 is not None and raw != file_sha256:
        raise DatasetError(f"{file} has SHA-256 {raw[:16]}..., not the {file_sha256[:16]}... its SHA256SUMS lists: "
                           f"the file is corrupted or not the one listed; {_FIX}")
    key = (raw, magic, sha256, shape)
    arr = _CACHE.get(key)
    if arr is None or arr.size > max_bytes:
        arr, raw_now = _decode(file, magic, sha256, shape, max_bytes)
        if raw_now != raw:
            raise DatasetError(f"{file} changed while it was being read; read it again once it is complete")
        arr.flags.writeable = False
        if len(_CACHE) >= 8:
            _CACHE.clear()
        _CACHE[key] = arr
    return arr


def _finish(images, labels, file_i, file_l, normalize, flatten, one_hot_label, dtype, num_classes):
    if images.ndim != 3:
        raise DatasetError(f"{file_i} holds {images.ndim}-d data, expected N x rows x cols images")
    if labels.ndim != 1:
        raise DatasetError(f"{file_l} holds {labels.ndim}-d data, expected one label per image")
    if labels.shape[0] != images.shape[0]:
        raise DatasetError(f"{file_l} has {labels.shape[0]} labels but {file_i} has {images.shape[0]} "
                           "images; the pair does not belong together")
    if num_classes is not None and labels.size and int(labels.max()) >= num_classes:
        raise DatasetError(f"{file_l} holds the label {int(labels.max())}; labels must lie in "
                           f"[0, {num_classes - 1}] for {num_classes} classes -- it is not a 10-class dataset such as "
                           "MNIST or Fashion-MNIST (use load_idx_dataset for others) or it is corrupted")
    x = images.astype(dtype)
    if normalize:
        x /= 255.0
    x = x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, *images.shape[1:])
    t = labels.astype(np.int64)
    if one_hot_label:
        n = num_classes or (int(t.max()) + 1 if t.size else 10)
        t = np.eye(n, dtype=dtype)[t] if t.size else np.zeros((0, n), dtype)
    return x, t


def _load(directory: Path, source, splits, normalize, flatten, one_hot_label, dtype, check, num_classes,
          max_bytes):
    """``check``: (verified_by, {stem: (data digest, file digest by name)}, shapes or None)."""
    _check_directory(directory, source)
    verified_by, digests, shapes = check
    out, sizes = [], []
    for split in ("train", "test"):
        stem_i, stem_l = splits[split]
        pair = []
        for stem, magic in ((stem_i, _IMAGES_MAGIC), (stem_l, _LABELS_MAGIC)):
            file = _find(directory, stem)
            data_digest, file_digests = digests.get(stem, (None, {}))
            file_digest = file_digests.get(file.name)
            if verified_by is not None and data_digest is None and file_digest is None:
                raise DatasetError(f"{verified_by} lists no SHA-256 for {file.name}; add its line "
                                   f"(sha256sum {file.name} >> SHA256SUMS) or remove {verified_by} to load "
                                   "the files unverified")
            pair.append(_read_idx_cached(file, magic, data_digest, file_digest,
                                         shapes.get(stem) if shapes else None, max_bytes))
            pair.append(file)
        images, fi, labels, fl = pair
        sizes.append((fi, images.shape[1:]))
        out.append(_finish(images, labels, fi, fl, normalize, flatten, one_hot_label, dtype, num_classes))
    if sizes[0][1] != sizes[1][1]:
        raise DatasetError(f"{sizes[0][0]} holds {'x'.join(map(str, sizes[0][1]))} images but {sizes[1][0]} "
                           f"{'x'.join(map(str, sizes[1][1]))}: the files are from different datasets")
    if one_hot_label and out[0][1].shape[1] != out[1][1].shape[1]:  # pad to the same class count
        c = max(out[0][1].shape[1], out[1][1].shape[1])
        out = [(x, np.pad(t, ((0, 0), (0, c - t.shape[1])))) for x, t in out]
    return IdxData(out, directory, verified_by)


def _check_dtype(dtype, normalize):
    dtype = np.dtype(dtype)
    if normalize and not np.issubdtype(dtype, np.floating):
        raise ValueError(f"normalize=True scales pixels to [0, 1], which needs a floating dtype, got {dtype}; "
                         "pass normalize=False for integer pixels")
    return dtype


def _sums_file(directory: Path) -> tuple[str | None, dict]:
    """(the SHA256SUMS path or None, {stem: (uncompressed digest, {file name: digest})}) from a
    ``sha256sum``-style file next to the data; ``<digest>  <name> (uncompressed)`` lines give
    the digest of a file's uncompressed contents."""
    f = directory / "SHA256SUMS"
    if not f.is_file():
        return None, {}
    try:
        if f.stat().st_size > _MAX_SUMS_BYTES:
            raise DatasetError(f"{f} is {f.stat().st_size} bytes; a SHA256SUMS file is a few lines -- is it the "
                               "right file?")
        text = f.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as e:
        raise DatasetError(f"cannot read {f} ({e})") from None
    data, files = {}, {}
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if not _HEX.fullmatch(digest) or not name:
            raise DatasetError(f"{f} line {i} is not '<64 hex digits>  <file name>': {line[:80]!r}")
        if name.endswith(" (uncompressed)"):
            data[name[: -len(" (uncompressed)")].strip()] = digest.lower()
        else:
            files[name] = digest.lower()
    out = {}
    for stem in {n.removesuffix(".gz") for n in list(data) + list(files)}:
        alt = stem.replace(".idx", "-idx")
        d = data.get(stem)
        fd = {n: v for n, v in files.items() if n.removesuffix(".gz") == stem}
        prev = out.get(alt, (None, {}))
        out[alt] = (d or prev[0], {**prev[1], **fd})
    return str(f), out


def load_mnist(normalize=True, flatten=True, one_hot_label=False, dtype="float32", path=None, *,
               max_bytes=MAX_IDX_BYTES):
    """The book's ``load_mnist``: ``(x_train, t_train), (x_test, t_test)`` as host NumPy arrays.

    Images are ``dtype`` in [0, 1] (or 0..255 with ``normalize=False``), shape (N, 784) or
    (N, 1, 28, 28); labels are int64 class indices in [0, 9], or one-hot rows with ``one_hot_label``.
    ``path=`` (or ``$XPNET_DATA_DIR``) may hold any 10-class dataset in MNIST's file layout
    (Fashion-MNIST, KMNIST): every structural check runs; SHA-256 digests are checked for the
    bundled copy (MNIST's) and against a ``SHA256SUMS`` file in the directory when there is one.
    The result says which: ``data.verified``, ``data.verified_by``.
    """
    directory, source = _source(path)
    dtype = _check_dtype(dtype, normalize)
    bundled = directory.exists() and directory.resolve() == _PACKAGED
    if bundled:
        check = ("MNIST digests", {k: (v, {}) for k, v in MNIST_SHA256.items()}, MNIST_SHAPES)
    else:
        where, digests = _sums_file(directory) if directory.is_dir() else (None, {})
        check = (where, digests, None)
    return _load(directory, source, _SPLITS, normalize, flatten, one_hot_label, dtype, check, 10, max_bytes)


def load_idx_dataset(directory, normalize=True, flatten=True, one_hot_label=False, dtype="float32",
                     train=("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                     test=("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), sha256=None, *,
                     num_classes=None, max_bytes=MAX_IDX_BYTES):
    """Any dataset in MNIST's IDX layout (Fashion-MNIST, KMNIST, ...) from ``directory``.

    Same validation as ``load_mnist``; digests come from ``sha256`` (file stem -> hex of the
    uncompressed file) or from a ``SHA256SUMS`` file (``sha256sum`` lines for the files as
    stored, or ``<digest>  <stem> (uncompressed)`` lines); a ``SHA256SUMS`` must cover every
    file loaded. ``num_classes``: labels must lie below it (and one-hot rows have that width).
    """
    directory = Path(directory).expanduser()
    dtype = _check_dtype(dtype, normalize)
    where, digests = _sums_file(directory) if directory.is_dir() else (None, {})
    for stem, hexdigest in (sha256 or {}).items():
        digests[stem] = (hexdigest, digests.get(stem, (None, {}))[1])
    if where is None and sha256 and set(train) | set(test) <= set(sha256):
        where = "sha256="  # (some files given, not all: those are checked, the data is not "verified")
    return _load(directory, "directory=", {"train": tuple(train), "test": tuple(test)}, normalize, flatten,
                 one_hot_label, dtype, (where, digests, None), num_classes, max_bytes)


def _npy_fits_its_file(file) -> None:
    """The data an ``.npy`` header declares must be in the file (checked from the header alone)."""
    try:
        with open(file, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0), (3, 0)):
                return  # np.load gives its own message
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f, max_header_size=10000)
            have = os.fstat(f.fileno()).st_size - f.tell()
    except (OSError, ValueError, EOFError):
        return  # not an .npy (or unreadable): np.load below says so
    need = math.prod(shape) * dtype.itemsize
    if dtype.kind != "O" and need > have:
        raise DatasetError(f"{file} declares {need:,} bytes of images (shape {shape}, {dtype}) but holds {have:,}: "
                           f"a damaged or hostile file; save the images again with numpy.save")


def load_images_npy(file, n_pixels: int) -> np.ndarray:
    """Images from an ``.npy`` file (``allow_pickle=False``) as float32 rows of ``n_pixels`` in [0, 1]:
    shape (N, D), (N, H, W) or (N, 1, H, W) with H*W == D, or one image; uint8 0..255 or float in
    [0, 1]. Anything else is a DatasetError that starts with the file's name and says what to do."""
    d = int(n_pixels)
    _npy_fits_its_file(file)  # a header declaring terabytes is refused before numpy allocates them
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

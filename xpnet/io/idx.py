"""IDX files (MNIST's format), read as hostile: plain or gzipped, decoded in bounded chunks,
never past what the header declares, absurd declared sizes refused before anything is
allocated; SHA-256 digests checked where known. A bad file gives a ``DatasetError`` that names
it, says what is wrong and how to fix it.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import zlib
from pathlib import Path

import numpy as np

from ..exceptions import DatasetError

__all__ = ["MAX_IDX_BYTES", "IMAGES_MAGIC", "LABELS_MAGIC", "read_idx", "read_sha256sums", "read_dataset"]

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
_RESTORE = ("restore the original file (reinstall xpnet for the bundled copy, or copy it again from "
           "your dataset's source), or point XPNET_DATA_DIR / path= at a good copy")

MAX_IDX_BYTES = 1 << 30          # the decoded size one IDX file may declare (max_bytes= to change)
_MAX_GZIP_RATIO = 1040           # deflate expands at most ~1032-fold
_MAX_SUMS_BYTES = 1 << 20
_CHUNK = 1 << 20
_HEX = re.compile(r"[0-9a-fA-F]{64}")


# -- one file, bounded ----------------------------------------------------------------------
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
        return DatasetError(f"{self.file} is not a readable gzip file ({why}): it is truncated or corrupted; "
                            f"{_RESTORE}")

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
        raise DatasetError(f"{file} is not an IDX file (bad header); {_RESTORE}")
    if head[2] != 0x08:
        raise DatasetError(f"{file} holds IDX type 0x{head[2]:02x}; only unsigned bytes (0x08) are supported")
    magic = int.from_bytes(head, "big")
    if expected_magic is not None and magic != expected_magic:
        kind = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}.get(expected_magic, "")
        raise DatasetError(f"{file} has magic number {magic}, expected {expected_magic} for IDX {kind}; "
                           f"is it the right file? {_RESTORE}")
    ndim = head[3]
    dims = reader.read(4 * ndim)
    if ndim == 0 or len(dims) < 4 * ndim:
        raise DatasetError(f"{file} is truncated inside its header; {_RESTORE}")
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
                               f"damaged or not the original; {_RESTORE}")
        if n > max_bytes:
            raise DatasetError(f"{file} declares shape {got}: {n} bytes, more than the {max_bytes} an IDX file may "
                               "hold here (max_bytes=); refused before reading it -- the header is damaged or the "
                               "file is not a dataset")
        if reader.gz and n > _MAX_GZIP_RATIO * size + _CHUNK:
            raise DatasetError(f"{file} declares shape {got}: {n} bytes, more than a {size}-byte gzip file can "
                               f"hold; the header is damaged (or the file is a decompression bomb); {_RESTORE}")
        if not reader.gz and size != expected:
            what = "truncated" if size < expected else "longer than its header says"
            raise DatasetError(f"{file} is {what}: {size} bytes for shape {got}, expected {expected}; {_RESTORE}")
        data_hash = hashlib.sha256(head)
        out = np.empty(n, dtype=np.uint8)
        done = reader.readinto(memoryview(out))
        if done < n:
            raise DatasetError(f"{file} is truncated: {len(head) + done} bytes for shape {got}, expected {expected}; "
                               f"{_RESTORE}")
        if reader.read(1):
            raise DatasetError(f"{file} is longer than its header says: more than {expected} bytes for shape {got}; "
                               f"{_RESTORE}")
        data_hash.update(out)
        # a plain file is its data (its size was checked): one hash serves both
        raw = reader.raw_hash.hexdigest() if reader.gz else data_hash.hexdigest()
    if sha256 is not None:
        digest = data_hash.hexdigest()
        if digest != sha256:
            raise DatasetError(f"{file} has SHA-256 {digest[:16]}..., not the original's {sha256[:16]}...: "
                               f"the file is corrupted or not the original; {_RESTORE}")
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
    """(array, SHA-256 of the file as stored): ``_decode``, remembered per file *content* (that
    digest, hashed again on every call: a file changed in place, even with the same size and
    modification time, is read afresh). Decompressing and checking MNIST costs about a second, hashing
    its compressed files a few milliseconds. The cached array is read-only; callers get copies."""
    raw = _file_sha256(file, max_bytes)
    if file_sha256 is not None and raw != file_sha256:
        raise DatasetError(f"{file} has SHA-256 {raw[:16]}..., not the {file_sha256[:16]}... its SHA256SUMS lists: "
                           f"the file is corrupted or not the one listed; {_RESTORE}")
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
    return arr, raw


# -- a dataset: a directory of IDX files ----------------------------------------------------
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
    raise DatasetError(f"{stem}(.gz) is missing from {directory}; {_RESTORE}")


def read_sha256sums(directory: Path) -> tuple[str | None, dict]:
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
        while name.startswith("./"):  # `sha256sum ./*.gz` writes the names so
            name = name[2:]
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




def _check_pair(images, labels, file_i: Path, file_l: Path, num_classes) -> None:
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


def read_dataset(directory: Path, source: str, files: dict, verified_by, digests: dict, shapes=None,
                 num_classes=None, max_bytes: int = MAX_IDX_BYTES) -> tuple[dict, dict]:
    """The four arrays of an IDX dataset in ``directory`` -- ``{'train_img': N x rows x cols,
    'train_label': N, 'test_img': ..., 'test_label': ...}``, read-only uint8 -- from the file
    stems ``files`` gives for those keys (as the book's ``key_file``), plain or gzipped; and
    ``{key: (file, SHA-256 of the file as stored)}``, to recognise a published dataset by.

    ``source`` says what named the directory (``'path='``, ...), for the messages. ``digests``:
    ``{stem: (SHA-256 of the uncompressed file, {file name: SHA-256 as stored})}``, checked where
    given; with ``verified_by`` set, every file must have one. ``shapes``: ``{stem: shape}`` each
    file must declare. ``num_classes``: labels must lie below it.
    """
    _check_directory(directory, source)
    dataset, stored, sizes = {}, {}, []
    for split in ("train", "test"):
        found = []
        for key, magic in ((f"{split}_img", IMAGES_MAGIC), (f"{split}_label", LABELS_MAGIC)):
            stem = files[key]
            file = _find(directory, stem)
            data_digest, file_digests = digests.get(stem, (None, {}))
            file_digest = file_digests.get(file.name)
            if verified_by is not None and data_digest is None and file_digest is None:
                raise DatasetError(f"{verified_by} lists no SHA-256 for {file.name}; add its line "
                                   f"(sha256sum {file.name} >> SHA256SUMS) or remove {verified_by} to load "
                                   "the files unverified")
            dataset[key], raw = _read_idx_cached(file, magic, data_digest, file_digest,
                                                 shapes.get(stem) if shapes else None, max_bytes)
            stored[key] = (file, raw)
            found.append(file)
        images, labels = dataset[f"{split}_img"], dataset[f"{split}_label"]
        _check_pair(images, labels, *found, num_classes)
        sizes.append((found[0], images.shape[1:]))
    if sizes[0][1] != sizes[1][1]:
        raise DatasetError(f"{sizes[0][0]} holds {'x'.join(map(str, sizes[0][1]))} images but {sizes[1][0]} "
                           f"{'x'.join(map(str, sizes[1][1]))}: the files are from different datasets")
    return dataset, stored

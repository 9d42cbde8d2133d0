"""MNIST, loaded as the book's ``dataset/mnist.py`` loads it: ``load_mnist(normalize, flatten,
one_hot_label)`` gives ``(x_train, t_train), (x_test, t_test)`` as host NumPy arrays.

The book downloads the four files and pickles them; xpnet ships them inside the package, so
training works offline right after ``pip install``, and reads them as hostile files
(``xpnet.io.idx``): magic number, dimensions, length (never decoded past what the header
declares, absurd declared sizes refused before anything is allocated), label range, matching
counts, and SHA-256 -- MNIST's own digests for the bundled copy, a ``SHA256SUMS`` file next to
the data for any other directory. ``XPNET_DATA_DIR`` or ``path=`` point at another copy, or at
any dataset in MNIST's IDX layout (Fashion-MNIST, KMNIST, ...); ``load_idx_dataset`` reads any
IDX dataset. The returned data says whether it was verified (``data.verified``, ``data.verified_by``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .exceptions import DatasetError, UnverifiedDataWarning
from .io.idx import MAX_IDX_BYTES, read_dataset, read_idx, read_sha256sums
from .io.published import PUBLISHED_SHA256, identify
from .io.npy import load_images_npy

__all__ = ["DatasetError", "IdxData", "load_mnist", "load_idx_dataset", "read_idx", "mnist_dir",
           "MAX_IDX_BYTES", "load_images_npy"]

key_file = {
    "train_img": "train-images-idx3-ubyte",
    "train_label": "train-labels-idx1-ubyte",
    "test_img": "t10k-images-idx3-ubyte",
    "test_label": "t10k-labels-idx1-ubyte",
}
dataset_dir = Path(__file__).resolve().parent / "_data" / "mnist"  # the bundled copy

train_num = 60000
test_num = 10000
img_dim = (1, 28, 28)

# SHA-256 of the *uncompressed* original files: a gzipped or a plain copy both verify.
MNIST_SHA256 = {stem: digests[1] for stem, digests in PUBLISHED_SHA256["MNIST"].items()}
MNIST_SHAPES = {
    key_file["train_img"]: (train_num, *img_dim[1:]), key_file["train_label"]: (train_num,),
    key_file["test_img"]: (test_num, *img_dim[1:]), key_file["test_label"]: (test_num,),
}


class IdxData(tuple):
    """``((x_train, t_train), (x_test, t_test))`` -- unpacks like the book's tuple -- and where it
    came from: ``directory``; ``dataset`` (``'MNIST'``, ``'Fashion-MNIST'``, ``'KMNIST'`` when the
    files are the published ones, else None); ``verified`` (every file's SHA-256 checked) and
    ``verified_by`` (``'MNIST digests'``, ``'Fashion-MNIST digests'``, ..., the ``SHA256SUMS``
    path, ``'sha256='``, or None: structural checks only, and ``unverified_because`` says why)."""

    directory: Path
    dataset: str | None
    verified: bool
    verified_by: str | None
    unverified_because: str | None

    def __new__(cls, splits, directory, verified_by, dataset=None, note=None):
        self = super().__new__(cls, splits)
        self.directory, self.verified_by, self.verified = directory, verified_by, verified_by is not None
        self.dataset, self.unverified_because = dataset, None if self.verified else note
        return self


def _published(directory, stored, verified_by):
    """(dataset, verified_by, why unverified) once the files are read: a copy of a published
    dataset is verified by its digests; a mix of datasets or swapped files is refused."""
    dataset, note = identify(stored)
    if verified_by is None and dataset is not None:
        verified_by = f"{dataset} digests"
    return dataset, verified_by, note and (
        f"{directory}: {note}; loaded unverified (the structural checks passed). If they are the files you mean, "
        f"record their digests (cd {directory} && sha256sum *-ubyte* > SHA256SUMS); else restore the published files")


def _source(path):
    """(directory, what named it) for ``path``, ``$XPNET_DATA_DIR`` or the bundled copy."""
    if path is not None and os.fspath(path) != "":
        return Path(path).expanduser(), "path="
    env = os.environ.get("XPNET_DATA_DIR")
    if env:
        return Path(env).expanduser(), "XPNET_DATA_DIR"
    return dataset_dir, "the bundled copy"


def mnist_dir(path=None) -> Path:
    """Where MNIST is read from: ``path``, else ``$XPNET_DATA_DIR``, else the bundled copy."""
    return _source(path)[0]


def load_mnist(normalize=True, flatten=True, one_hot_label=False, dtype="float32", path=None, *,
               max_bytes=MAX_IDX_BYTES):
    """The book's ``load_mnist``: ``(x_train, t_train), (x_test, t_test)`` as host NumPy arrays.

    Images are ``dtype`` in [0, 1] (or 0..255 with ``normalize=False``), shape (N, 784) or
    (N, 1, 28, 28); labels are int64 class indices in [0, 9], or one-hot rows with ``one_hot_label``.
    ``path=`` (or ``$XPNET_DATA_DIR``) may hold any 10-class dataset in MNIST's file layout
    (Fashion-MNIST, KMNIST): every structural check runs; SHA-256 digests are checked for the
    bundled copy (MNIST's) and against a ``SHA256SUMS`` file in the directory when there is one.
    A copy of MNIST, Fashion-MNIST or KMNIST as published is recognised and verified by its
    digests; files of two datasets, or swapped, are refused; a copy matching none without a
    ``SHA256SUMS`` loads with an ``UnverifiedDataWarning`` naming the files. The result says
    which: ``data.dataset``, ``data.verified``, ``data.verified_by``.
    """
    directory, source = _source(path)
    dtype = _check_dtype(dtype, normalize)
    if directory.exists() and directory.resolve() == dataset_dir:
        verified_by, digests, shapes = "MNIST digests", {k: (v, {}) for k, v in MNIST_SHA256.items()}, MNIST_SHAPES
    else:
        verified_by, digests = read_sha256sums(directory) if directory.is_dir() else (None, {})
        shapes = None
    dataset, stored = read_dataset(directory, source, key_file, verified_by, digests, shapes, 10, max_bytes)
    name, verified_by, note = _published(directory, stored, verified_by)
    if verified_by is None:
        warnings.warn(note, UnverifiedDataWarning, stacklevel=2)
    return IdxData(_finish(dataset, normalize, flatten, one_hot_label, dtype, 10), directory, verified_by, name, note)


def _finish(dataset, normalize, flatten, one_hot_label, dtype, num_classes):
    """The book's ``load_mnist`` once it has the four arrays: flat ``dtype`` images, scaled,
    labels one-hot, images shaped."""
    img_dim = (1, *dataset["train_img"].shape[1:])
    for key in ("train_img", "test_img"):  # the book flattens them as it reads them
        dataset[key] = dataset[key].reshape(len(dataset[key]), -1).astype(dtype)
    for key in ("train_label", "test_label"):
        dataset[key] = dataset[key].astype(np.int64)

    if normalize:
        for key in ("train_img", "test_img"):
            dataset[key] /= 255.0

    if one_hot_label:
        n = num_classes or max(int(t.max()) + 1 if t.size else 10
                               for t in (dataset["train_label"], dataset["test_label"]))
        dataset["train_label"] = _change_one_hot_label(dataset["train_label"], n, dtype)
        dataset["test_label"] = _change_one_hot_label(dataset["test_label"], n, dtype)

    if not flatten:
        for key in ("train_img", "test_img"):
            dataset[key] = dataset[key].reshape(len(dataset[key]), *img_dim)

    return (dataset["train_img"], dataset["train_label"]), (dataset["test_img"], dataset["test_label"])


def _change_one_hot_label(X, num_classes, dtype):
    T = np.zeros((X.size, num_classes), dtype)
    T[np.arange(X.size), X] = 1
    return T


def _check_dtype(dtype, normalize):
    dtype = np.dtype(dtype)
    if normalize and not np.issubdtype(dtype, np.floating):
        raise ValueError(f"normalize=True scales pixels to [0, 1], which needs a floating dtype, got {dtype}; "
                         "pass normalize=False for integer pixels")
    return dtype


def load_idx_dataset(directory, normalize=True, flatten=True, one_hot_label=False, dtype="float32",
                     train=("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                     test=("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), sha256=None, *,
                     num_classes=None, max_bytes=MAX_IDX_BYTES):
    """Any dataset in MNIST's IDX layout (Fashion-MNIST, KMNIST, ...) from ``directory``.

    Same validation as ``load_mnist``; digests come from ``sha256`` (file stem -> hex of the
    uncompressed file) or from a ``SHA256SUMS`` file (``sha256sum`` lines for the files as
    stored, or ``<digest>  <stem> (uncompressed)`` lines); a ``SHA256SUMS`` must cover every
    file loaded. ``num_classes``: labels must lie below it (and one-hot rows have that width).
    MNIST, Fashion-MNIST and KMNIST as published verify by their digests (``data.dataset``);
    other data without digests loads unverified, quietly (``data.unverified_because``).
    """
    directory = Path(directory).expanduser()
    dtype = _check_dtype(dtype, normalize)
    where, digests = read_sha256sums(directory) if directory.is_dir() else (None, {})
    for stem, hexdigest in (sha256 or {}).items():
        digests[stem] = (hexdigest, digests.get(stem, (None, {}))[1])
    if where is None and sha256 and set(train) | set(test) <= set(sha256):
        where = "sha256="  # (some files given, not all: those are checked, the data is not "verified")
    files = dict(zip(("train_img", "train_label", "test_img", "test_label"), (*train, *test)))
    dataset, stored = read_dataset(directory, "directory=", files, where, digests, None, num_classes, max_bytes)
    name, where, note = _published(directory, stored, where)
    return IdxData(_finish(dataset, normalize, flatten, one_hot_label, dtype, num_classes), directory, where, name,
                   note)

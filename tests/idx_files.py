"""Small IDX datasets written for a test: runs that need data, not MNIST, start and finish in a
blink (MNIST costs a second to decompress in every new process); and the bytes of IDX files,
for the tests that damage them."""

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array, magic=None, dims=None) -> bytes:
    """An IDX file of unsigned bytes: ``magic`` and ``dims`` as given (to write a lying header) or as they should be."""
    array = np.asarray(array, dtype=np.uint8)
    magic = magic if magic is not None else (2051 if array.ndim == 3 else 2049)
    dims = array.shape if dims is None else dims
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + array.tobytes()


def write_idx(path, arr, gz=True):
    data = idx_bytes(arr)
    Path(path).write_bytes(gzip.compress(data) if gz else data)


def make_tiny_idx(d, n_train=300, n_test=60, side=8, classes=3, seed=0, gz=True):
    """A small IDX dataset that is not MNIST: 8x8 images, 3 classes (a bright band of rows each)."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        t = rng.integers(0, classes, n)
        x = rng.integers(0, 60, (n, side, side))
        for k in range(classes):
            x[t == k, k * side // classes:(k + 1) * side // classes, :] += 180
        write_idx(d / f"{split}-images-idx3-ubyte{suffix}", x, gz)
        write_idx(d / f"{split}-labels-idx1-ubyte{suffix}", t, gz)
    return d


def fashion_like(d: Path, sums=True, n_train=30, n_test=12):
    """A tiny Fashion-MNIST look-alike: random 28x28 images, labels 0..9, gzipped IDX files and
    its own SHA256SUMS (as ``sha256sum *.gz`` writes it) -- not MNIST's digests."""
    rng = np.random.default_rng(1)
    data = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
            "train-labels-idx1-ubyte": np.arange(n_train) % 10,
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
            "t10k-labels-idx1-ubyte": rng.permutation(n_test) % 10}
    lines = []
    for name, a in data.items():
        raw = gzip.compress(idx_bytes(a))
        (d / f"{name}.gz").write_bytes(raw)
        lines.append(f"{hashlib.sha256(raw).hexdigest()}  {name}.gz")
    if sums:
        (d / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return data

"""Small IDX datasets written for a test: runs that need data, not MNIST, start and finish in a
blink (MNIST costs a second to decompress in every new process)."""

import gzip
from pathlib import Path

import numpy as np


def write_idx(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    Path(path).write_bytes(gzip.compress(head + arr.tobytes()))


def make_tiny_idx(d, n_train=300, n_test=60, side=8, classes=3, seed=0):
    """A small IDX dataset that is not MNIST: 8x8 images, 3 classes (a bright band of rows each)."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        t = rng.integers(0, classes, n)
        x = rng.integers(0, 60, (n, side, side))
        for k in range(classes):
            x[t == k, k * side // classes:(k + 1) * side // classes, :] += 180
        write_idx(d / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(d / f"{split}-labels-idx1-ubyte.gz", t)
    return d

import gzip
import hashlib
import shutil
import struct

import numpy as np
import pytest

import xpnet
from xpnet.datasets import DatasetError, load_idx_dataset, load_mnist, mnist_dir, read_idx


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def test_bundled_mnist_is_the_original(mnist):
    (x, t), (xt, tt) = mnist
    assert x.shape == (60000, 784) and x.dtype == np.float32 and xt.shape == (10000, 784)
    assert t.tolist()[:10] == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4] and tt.tolist()[:10] == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(t).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(tt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert float(x.mean()) == pytest.approx(0.1307, abs=1e-4) and 0.0 <= x.min() and x.max() == 1.0


def test_book_options():
    (x, t), _ = load_mnist(normalize=False, flatten=False, one_hot_label=True, dtype="float64")
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.float64 and x.max() == 255.0
    assert t.shape == (60000, 10) and t.sum(axis=1).tolist() == [1.0] * 60000 and t[0].argmax() == 5


def write_idx(path, array, magic=None, gz=True, dims=None):
    array = np.asarray(array, dtype=np.uint8)
    magic = magic if magic is not None else (2051 if array.ndim == 3 else 2049)
    dims = array.shape if dims is None else dims
    data = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + array.tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)
    return data


def make_dataset(d, n_train=20, n_test=10, gz=True):
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    write_idx(d / f"train-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_train, 4, 4)), gz=gz)
    write_idx(d / f"train-labels-idx1-ubyte{sfx}", rng.integers(0, 3, n_train), gz=gz)
    write_idx(d / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_test, 4, 4)), gz=gz)
    write_idx(d / f"t10k-labels-idx1-ubyte{sfx}", np.arange(n_test) % 3, gz=gz)


@pytest.mark.parametrize("gz", [True, False])
def test_other_idx_dataset(tmp_path, gz):
    make_dataset(tmp_path, gz=gz)
    (x, t), (xt, tt) = load_idx_dataset(tmp_path, one_hot_label=True)
    assert x.shape == (20, 16) and t.shape == (20, 3) and xt.shape == (10, 16) and tt.shape == (10, 3)


def test_missing_file_names_it(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.*missing"):
        load_idx_dataset(tmp_path)


def test_missing_directory(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_mnist(path=tmp_path / "nowhere")


def test_truncated_gzip(tmp_path):
    make_dataset(tmp_path)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-20])
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz.*truncated or corrupted"):
        load_idx_dataset(tmp_path)


def test_truncated_payload(tmp_path):
    make_dataset(tmp_path, gz=False)
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-5])
    with pytest.raises(DatasetError, match=r"truncated: 331 bytes for shape \(20, 4, 4\), expected 336"):
        load_idx_dataset(tmp_path)


def test_wrong_magic(tmp_path):
    make_dataset(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(20), magic=2051)
    with pytest.raises(DatasetError, match="magic number 2051, expected 2049"):
        load_idx_dataset(tmp_path)


def test_header_that_lies_about_dimensions(tmp_path):
    make_dataset(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((10, 4, 4)), dims=(10, 4, 5))
    with pytest.raises(DatasetError, match="t10k-images.*truncated"):
        load_idx_dataset(tmp_path)


def test_counts_that_do_not_match(tmp_path):
    make_dataset(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(19))
    with pytest.raises(DatasetError, match="19 labels but .* 20 images"):
        load_idx_dataset(tmp_path)


def test_not_an_idx_file(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"<html>not found</html>")
    with pytest.raises(DatasetError, match="not an IDX file"):
        load_idx_dataset(tmp_path)


def test_corrupted_mnist_fails_its_checksum(tmp_path, monkeypatch):
    bundled = mnist_dir()
    for f in bundled.glob("*.gz"):
        shutil.copy(f, tmp_path / f.name)
    # flip one pixel of the test images: still a valid IDX file, but not the original
    f = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(f.read_bytes()))
    raw[5000] ^= 0xFF
    f.write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path))
    # without a SHA256SUMS the copy is any IDX dataset: structural checks only, and the data says so
    data = load_mnist()
    assert not data.verified and data.verified_by is None and data.directory == tmp_path
    # with MNIST's SHA256SUMS next to it, the copy is checked against it
    shutil.copy(bundled / "SHA256SUMS", tmp_path / "SHA256SUMS")
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz has SHA-256 .* not the"):
        load_mnist()
    # the uncompressed digest alone catches it too
    sums = (tmp_path / "SHA256SUMS").read_text().splitlines()
    (tmp_path / "SHA256SUMS").write_text("\n".join(ln for ln in sums if "(uncompressed)" in ln) + "\n")
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz has SHA-256 .* not the original"):
        load_mnist()


def test_bundled_copy_is_verified(mnist):
    assert mnist.verified and mnist.verified_by == "MNIST digests"


def test_checksums_from_a_sums_file(tmp_path):
    make_dataset(tmp_path, gz=False)
    lines = [f"{hashlib.sha256((tmp_path / n).read_bytes()).hexdigest()}  {n} (uncompressed)"
             for n in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte")]
    (tmp_path / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="SHA256SUMS lists no SHA-256 for t10k-labels-idx1-ubyte"):
        load_idx_dataset(tmp_path)  # a SHA256SUMS must cover every file it is next to
    lines.append(f"{'0' * 64}  t10k-labels-idx1-ubyte (uncompressed)")
    (tmp_path / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte has SHA-256"):
        load_idx_dataset(tmp_path)
    digest = hashlib.sha256((tmp_path / "t10k-labels-idx1-ubyte").read_bytes()).hexdigest()
    lines[-1] = f"{digest}  t10k-labels-idx1-ubyte"
    (tmp_path / "SHA256SUMS").write_text("\n".join(lines) + "\n")  # plain sha256sum lines work too
    data = load_idx_dataset(tmp_path)
    assert data.verified and data.verified_by.endswith("SHA256SUMS")


def test_read_idx_rejects_non_byte_types(tmp_path):
    f = tmp_path / "x.idx"
    f.write_bytes(bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 1) + b"\0\0\0\0")
    with pytest.raises(DatasetError, match="only unsigned bytes"):
        read_idx(f)


def test_exports():
    assert xpnet.load_mnist is load_mnist

"""xpnet/datasets.py: MNIST as the book's ``dataset/mnist.py`` loads it -- bundled, the original,
verified against its digests, with the book's options -- any IDX dataset from a directory, and
the argument that names a directory (``path=``, ``directory=``, ``XPNET_DATA_DIR``) named when it
is wrong. What the IDX reader refuses in a file is io's: test_io.py."""

import gzip
import hashlib
import re
import shutil
import warnings

import numpy as np
import pytest

import xpnet
from xpnet.datasets import DatasetError, load_idx_dataset, load_mnist, mnist_dir
from xpnet.io import published
from xpnet.io.published import PUBLISHED_SHA256

from .idx_files import NAMES, fashion_like, make_tiny_idx


def test_bundled_mnist_is_the_original(mnist):
    (x, t), (xt, tt) = mnist
    assert x.shape == (60000, 784) and x.dtype == np.float32 and xt.shape == (10000, 784)
    assert t.tolist()[:10] == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4] and tt.tolist()[:10] == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(t).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(tt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert float(x.mean()) == pytest.approx(0.1307, abs=1e-4) and 0.0 <= x.min() and x.max() == 1.0


def test_bundled_copy_is_verified(mnist):
    assert mnist.verified and mnist.verified_by == "MNIST digests"


def test_book_options():
    (x, t), _ = load_mnist(normalize=False, flatten=False, one_hot_label=True, dtype="float64")
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.float64 and x.max() == 255.0
    assert t.shape == (60000, 10) and t.sum(axis=1).tolist() == [1.0] * 60000 and t[0].argmax() == 5


def test_integer_pixels_cannot_be_normalised():
    with pytest.raises(ValueError, match="normalize=False"):
        xpnet.load_mnist(dtype="uint8")


def test_exports():
    assert xpnet.load_mnist is load_mnist


def test_corrupted_mnist_fails_its_checksum(tmp_path, monkeypatch):
    bundled = mnist_dir()
    for f in bundled.glob("*.gz"):
        shutil.copy(f, tmp_path / f.name)
    # flip one pixel of the test images: still a valid IDX file, but not the original
    f = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(f.read_bytes()))
    raw[5000] ^= 0xFF
    f.write_bytes(gzip.compress(bytes(raw), compresslevel=1))  # the content matters, not the ratio
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path))
    # without a SHA256SUMS: three files are MNIST's published ones, the fourth is named, unverified
    with pytest.warns(xpnet.UnverifiedDataWarning, match="t10k-images-idx3-ubyte.gz matches none of MNIST's "
                      "published digests while the other files are MNIST's: it is modified, damaged or recompressed"):
        data = load_mnist()
    assert not data.verified and data.verified_by is None and data.directory == tmp_path and data.dataset is None
    assert "t10k-images-idx3-ubyte.gz" in data.unverified_because
    # with MNIST's SHA256SUMS next to it, the copy is checked against it
    shutil.copy(bundled / "SHA256SUMS", tmp_path / "SHA256SUMS")
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz has SHA-256 .* not the"):
        load_mnist()
    # the uncompressed digest alone catches it too
    sums = (tmp_path / "SHA256SUMS").read_text().splitlines()
    (tmp_path / "SHA256SUMS").write_text("\n".join(ln for ln in sums if "(uncompressed)" in ln) + "\n")
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz has SHA-256 .* not the original"):
        load_mnist()


# -- any IDX dataset ---------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_other_idx_dataset(tmp_path, gz):
    make_tiny_idx(tmp_path, n_train=20, n_test=10, side=4, classes=3, gz=gz)
    (x, t), (xt, tt) = load_idx_dataset(tmp_path, one_hot_label=True)
    assert x.shape == (20, 16) and t.shape == (20, 3) and xt.shape == (10, 16) and tt.shape == (10, 3)


def test_any_idx_dataset_loads_both_ways(tmp_path):
    data = fashion_like(tmp_path)
    for got in (load_mnist(path=tmp_path), load_idx_dataset(tmp_path, num_classes=10)):
        (x, t), (xt, tt) = got
        assert x.shape == (30, 784) and xt.shape == (12, 784) and x.dtype == np.float32
        np.testing.assert_array_equal(t, data["train-labels-idx1-ubyte"])
        np.testing.assert_array_equal(x[3] * 255, data["train-images-idx3-ubyte"][3].ravel())
        assert got.verified and got.verified_by == str(tmp_path / "SHA256SUMS")
    (_, t1), _ = load_mnist(path=tmp_path, one_hot_label=True)
    assert t1.shape == (30, 10)
    assert got.dataset is None  # its own digests verify it; it is none of the published datasets
    (tmp_path / "SHA256SUMS").unlink()  # no digests given: structural checks only, and it says so
    with pytest.warns(xpnet.UnverifiedDataWarning, match=r"the files match none of the published digests xpnet "
                      r"knows \(MNIST, Fashion-MNIST, KMNIST\); loaded unverified .* sha256sum \*-ubyte\* > SHA"):
        got = load_mnist(path=tmp_path)
    assert not got.verified and got.verified_by is None and "match none" in got.unverified_because
    with warnings.catch_warnings():  # load_idx_dataset reads anyone's data: unverified, quietly, and says why
        warnings.simplefilter("error")
        got = load_idx_dataset(tmp_path)
    assert not got.verified and "match none of the published digests" in got.unverified_because


# -- the published datasets, recognised by their digests ------------------------------------
def test_the_published_digests_are_well_formed_and_mnists_are_the_bundled_files():
    seen = set()
    for name, files in PUBLISHED_SHA256.items():
        assert set(files) == set(NAMES), name
        for stem, digests in files.items():
            assert digests and all(re.fullmatch("[0-9a-f]{64}", d) for d in digests), (name, stem)
            assert not seen & set(digests), (name, stem)  # no digest stands for two files
            seen |= set(digests)
    sums = {ln.split()[1]: ln.split()[0] for ln in (mnist_dir() / "SHA256SUMS").read_text().splitlines()}
    for stem, digests in PUBLISHED_SHA256["MNIST"].items():
        assert set(digests) == {sums[stem + ".gz"], sums[stem]}  # as stored and uncompressed


@pytest.mark.parametrize("gz", [True, False])
def test_a_copy_of_a_published_dataset_is_recognised_and_verified(tmp_path, gz):
    """MNIST's files copied (gzipped or not, no SHA256SUMS) verify by the published digests."""
    for f in mnist_dir().glob("*.gz"):
        if gz:
            shutil.copy(f, tmp_path / f.name)
        else:
            (tmp_path / f.stem).write_bytes(gzip.decompress(f.read_bytes()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for got in (load_mnist(path=tmp_path), load_idx_dataset(tmp_path)):
            assert got.dataset == "MNIST" and got.verified and got.verified_by == "MNIST digests"
            assert got.unverified_because is None and got[1][1].tolist()[:3] == [7, 2, 1]


def test_swapped_train_and_test_files_are_refused(tmp_path):
    """All four files swapped train <-> test: the counts agree, so only the digests can tell."""
    for f in mnist_dir().glob("*.gz"):
        swapped = f.name.replace("train", "TMP").replace("t10k", "train").replace("TMP", "t10k")
        shutil.copy(f, tmp_path / swapped)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.gz is MNIST's t10k-images-idx3-ubyte \(its "
                       r"test images\), not its training images: the files are swapped or misnamed"):
        load_mnist(path=tmp_path)


def test_files_of_two_published_datasets_are_refused(tmp_path, monkeypatch):
    """Fashion-MNIST's training files beside MNIST's test files: the shapes agree, nothing else would
    tell. (The look-alike's files stand in for Fashion-MNIST's, whose bytes are not shipped.)"""
    fashion_like(tmp_path, sums=False)
    for f in mnist_dir().glob("t10k-*.gz"):
        shutil.copy(f, tmp_path / f.name)
    with pytest.warns(xpnet.UnverifiedDataWarning, match="train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz "
                      "match none of MNIST's published digests while the other files are MNIST's"):
        load_mnist(path=tmp_path)
    fashion = {hashlib.sha256((tmp_path / f"{n}.gz").read_bytes()).hexdigest(): ("Fashion-MNIST", n)
               for n in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")}
    monkeypatch.setattr(published, "_BY_DIGEST", {**published._BY_DIGEST, **fashion})
    with pytest.raises(DatasetError, match=r"are from different datasets \(train-images-idx3-ubyte.gz is "
                       r"Fashion-MNIST's, .*t10k-images-idx3-ubyte.gz is MNIST's"):
        load_idx_dataset(tmp_path)


# -- the directory, and the argument that names it ---------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_a_missing_file_is_named(tmp_path, name):
    make_tiny_idx(tmp_path)
    (tmp_path / f"{name}.gz").unlink()
    with pytest.raises(DatasetError, match=rf"{name}\(\.gz\) is missing"):
        load_idx_dataset(tmp_path)


def test_data_dir_messages(tmp_path, monkeypatch):
    missing, a_file = tmp_path / "nowhere", tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DatasetError, match=r"dataset directory .*nowhere does not exist \(path= names it\)"):
        load_mnist(path=missing)
    with pytest.raises(DatasetError, match=r"file is not a directory \(path= names it\)"):
        load_mnist(path=a_file)
    monkeypatch.setenv("XPNET_DATA_DIR", str(missing))
    with pytest.raises(DatasetError, match=r"nowhere does not exist \(XPNET_DATA_DIR names it\); fix XPNET_DATA_DIR"):
        load_mnist()
    monkeypatch.setenv("XPNET_DATA_DIR", str(a_file))
    with pytest.raises(DatasetError, match=r"file is not a directory \(XPNET_DATA_DIR names it\)"):
        load_mnist()
    with pytest.raises(DatasetError, match=r"file is not a directory \(directory= names it\)"):
        load_idx_dataset(a_file)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\(.gz\) is missing from"):
        load_mnist(path=tmp_path)


def test_a_sha256sums_of_dot_slash_names_is_read(tmp_path):
    """``sha256sum ./*.gz > SHA256SUMS`` names the files ./train-...: the same files, checked."""
    fashion_like(tmp_path)
    sums = tmp_path / "SHA256SUMS"
    lines = [f"{d}  ./{n}" for d, n in (ln.split(None, 1) for ln in sums.read_text().splitlines())]
    sums.write_text("\n".join(lines) + "\n")
    got = load_mnist(path=tmp_path)
    assert got.verified and got.verified_by == str(sums)
    broken = lines[0].split()[0][::-1] + lines[0][64:]  # a wrong digest under a ./ name is still caught
    sums.write_text("\n".join([broken] + lines[1:]) + "\n")
    with pytest.raises(xpnet.DatasetError):
        load_mnist(path=tmp_path)

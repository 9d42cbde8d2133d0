"""xpnet/io/book_pickle.py and ``save_params``/``load_params``: the book's pickled parameters read
without running anything from them, hostile pickles refused before any object is made, the net's
keys and shapes checked before a parameter changes, and xpnet's own files written atomically.

The book's files (``ch07/params.pkl``, ``ch08/deep_convnet_params.pkl``) are protocol-4 pickles
written by NumPy 1 (``numpy.core.multiarray._reconstruct``); ``book_format`` writes the same
bytes for any dict of arrays. Hostile files are written opcode by opcode (``Opcodes``)."""

import os
import pickle
import struct

import numpy as np
import pytest

import xpnet
from xpnet.checkpoint import CheckpointError, load_params, save_net, save_params
from xpnet.io.book_pickle import read_book_params

from .test_convnets import SMALL, images


def book_format(params: dict) -> bytes:
    """What the book's ``save_params`` (``pickle.dump(params, f)``) wrote under NumPy 1: protocol
    4, NumPy 1's module name, one frame (small arrays)."""
    data = pickle.dumps({k: np.asarray(v, dtype=np.float64) for k, v in params.items()}, protocol=4)
    new, old = b"numpy.core.multiarray", b"numpy._core.multiarray"
    if old in data:
        count = data.count(old)
        data = data.replace(b"\x8c" + bytes([len(old)]) + old, b"\x8c" + bytes([len(new)]) + new)
        assert data[2] == 0x95  # FRAME: its length shrinks with the name
        (n,) = struct.unpack("<Q", data[3:11])
        data = data[:3] + struct.pack("<Q", n - count * (len(old) - len(new))) + data[11:]
    assert b"numpy.core.multiarray" in data and pickle.loads(data).keys() == params.keys()
    return data


class Opcodes:
    """A protocol-4 pickle written by hand, for files the pickler would never write."""

    def __init__(self):
        self.b = bytearray(b"\x80\x04")

    def op(self, raw: bytes):
        self.b += raw
        return self

    def str(self, s: str):
        e = s.encode()
        return self.op(b"\x8c" + bytes([len(e)]) + e)

    def glob(self, module, name):
        return self.str(module).str(name).op(b"\x93")

    def int(self, v: int):
        if -2 ** 31 <= v < 2 ** 31:
            return self.op(b"J" + struct.pack("<i", v))
        raw = v.to_bytes(16, "little", signed=True)
        return self.op(b"\x8a" + bytes([16]) + raw)  # LONG1

    def bytes(self, raw: bytes):
        return self.op(b"B" + struct.pack("<I", len(raw)) + raw)

    def dtype(self, code="f8", state=(3, "<", None, None, None, -1, -1, 0)):
        self.glob("numpy", "dtype").str(code).op(b"\x89\x88\x87R(")  # (code, False, True), REDUCE, MARK
        for v in state:
            (self.op(b"N") if v is None else self.str(v) if isinstance(v, str) else self.int(v))
        return self.op(b"tb")  # TUPLE, BUILD

    def array(self, shape, data_op, code="f8", typecode=b"b", recon_shape=(0,)):
        """_reconstruct(ndarray, recon_shape, typecode), then BUILD with (1, shape, dtype, False, data)."""
        self.glob("numpy.core.multiarray", "_reconstruct").glob("numpy", "ndarray")
        self.op(b"(")
        for s in recon_shape:
            self.int(s)
        self.op(b"t").op(b"C" + bytes([len(typecode)]) + typecode).op(b"\x87R")  # TUPLE3, REDUCE
        self.op(b"(").int(1).op(b"(")
        for s in shape:
            self.int(s)
        self.op(b"t")
        self.dtype(code)
        self.op(b"\x89")  # is_fortran False
        data_op(self)
        return self.op(b"tb")

    def done(self) -> bytes:
        return bytes(self.b + b".")


def write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


# -- the book's files --------------------------------------------------------------------------
def test_the_books_format_loads_into_a_simple_conv_net_in_place(dev, tmp_path):
    source = xpnet.SimpleConvNet(**SMALL, seed=3, device="cpu")  # the book's net would write these arrays
    f = write(tmp_path, "params.pkl", book_format({k: np.asarray(v) for k, v in source.params.items()}))
    net = xpnet.SimpleConvNet(**SMALL, device=dev, dtype="float32", seed=0)
    held = dict(net.params)
    net.load_params(str(f))
    assert all(net.params[k] is held[k] for k in held) and net.layers["Conv1"].W is net.params["W1"]
    for k, v in source.params.items():
        np.testing.assert_allclose(dev.to_numpy(net.params[k]), v, rtol=1e-6)
    x, t = images()
    assert net.accuracy(dev.asarray(x, dtype="float32"), dev.asarray(t)) == source.accuracy(x, t)


def test_every_protocol_numpy_writes_reads_back_exactly(tmp_path):
    arrays = {"W1": np.arange(6.0).reshape(2, 3), "b1": np.asfortranarray(np.ones((2, 2), np.float32)),
              "W2": np.array([1.5, -2.0], dtype=">f8"), "b2": np.zeros((0, 3), np.float16)}
    for proto in (2, 3, 4, 5):
        got = read_book_params(write(tmp_path, f"p{proto}.pkl", pickle.dumps(arrays, protocol=proto)), 1 << 20)
        assert list(got) == list(arrays)
        for k, v in arrays.items():
            np.testing.assert_array_equal(got[k], v)
            assert got[k].dtype == v.dtype.newbyteorder("=")


# -- hostile pickles: refused before anything is made or run ----------------------------------
class Boom:
    def __reduce__(self):
        return (os.system, ("touch " + os.environ["XPNET_TEST_MARK"],))


@pytest.mark.parametrize("proto", [0, 2, 4])
def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path, monkeypatch, proto):
    mark = tmp_path / "ran"
    monkeypatch.setenv("XPNET_TEST_MARK", str(mark))
    f = write(tmp_path, "evil.pkl", pickle.dumps({"W1": Boom()}, protocol=proto))
    with pytest.raises(CheckpointError, match=r"refused .*(posix|os)\.system|refused the opcode|neither"):
        load_params(xpnet.TwoLayerNet(2, 2, 2, device="cpu"), f)
    assert not mark.exists()


@pytest.mark.parametrize("make, message", [
    (lambda o: o.glob("builtins", "eval"), r"the global builtins\.eval"),
    (lambda o: o.glob("numpy", "load"), r"the global numpy\.load"),
    (lambda o: o.op(b"(").str("os").op(b"\x81"), r"the opcode NEWOBJ"),  # never reached: listed first
    (lambda o: o.op(b"\x82\x01"), r"the opcode EXT1"),
    (lambda o: o.op(b"(").str("x").op(b"Q"), r"the opcode BINPERSID"),
    (lambda o: o.op(b"]"), r"the opcode EMPTY_LIST"),
])
def test_opcodes_and_globals_outside_the_books_are_refused(tmp_path, make, message):
    f = write(tmp_path, "p.pkl", make(Opcodes()).done())
    with pytest.raises(CheckpointError, match=message + r".*nothing in it was run"):
        read_book_params(f, 1 << 20)


@pytest.mark.parametrize("code, message", [("O", r"a dtype 'O'"), ("i8", r"a dtype 'i8'"), ("V8", r"a dtype 'V8'")])
def test_only_float_arrays_are_made(tmp_path, code, message):
    o = Opcodes().op(b"}").str("W1").array((1,), lambda o: o.bytes(b"\0" * 8), code=code).op(b"s")
    with pytest.raises(CheckpointError, match=message):
        read_book_params(write(tmp_path, "p.pkl", o.done()), 1 << 20)


@pytest.mark.parametrize("shape, recon, data, message", [
    ((10 ** 12,), (0,), b"\0" * 8, r"shape \(1000000000000,\) .* holding 8 bytes"),  # never allocated
    ((2,), (10 ** 9,), b"\0" * 16, r"_reconstruct.*1000000000"),  # _reconstruct would allocate it
    ((3,), (0,), b"\0" * 16, r"24 bytes of float64\) holding 16"),
    ((-1,), (0,), b"", r"shape \(-1,\)"),
])
def test_array_states_that_do_not_fit_are_refused(tmp_path, shape, recon, data, message):
    o = Opcodes().op(b"}").str("W1").array(shape, lambda o: o.bytes(data), recon_shape=recon).op(b"s")
    with pytest.raises(CheckpointError, match=message):
        read_book_params(write(tmp_path, "p.pkl", o.done()), 1 << 20)


def test_a_dtype_state_other_than_a_byte_order_is_refused(tmp_path):
    o = Opcodes().dtype(state=(3, "|", None, None, None, 16, 1, 16))  # an item size and flags of its own
    with pytest.raises(CheckpointError, match=r"a dtype state"):
        read_book_params(write(tmp_path, "p.pkl", o.done()), 1 << 20)


def test_one_buffer_named_again_and_again_is_refused(tmp_path):
    """A small file cannot make many arrays of one buffer (100 x 64 KiB from 64 KiB)."""
    o = Opcodes().op(b"}(")
    for i in range(100):
        o.str(f"W{i}").array((8192,), (lambda o: o.bytes(b"\0" * 65536).op(b"\x94")) if i == 0
                             else (lambda o: o.op(b"h\x00")))  # BINGET of the memoized bytes
    o.op(b"u")
    f = write(tmp_path, "bomb.pkl", o.done())
    assert f.stat().st_size < 80_000
    with pytest.raises(CheckpointError, match="more array data than the file holds"):
        read_book_params(f, 1 << 20)


def test_a_file_larger_than_the_net_could_need_is_refused_unread(tmp_path, monkeypatch):
    f = write(tmp_path, "big.pkl", b"\x80\x04" + b"\0" * (2 << 20))
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: opened.append(str(p)) or real_open(p, *a, **k))
    with pytest.raises(CheckpointError, match=r"big.pkl is 2\.0 MiB, more than the 1\.0 MiB .*refused unread"):
        load_params(xpnet.TwoLayerNet(4, 3, 2, device="cpu"), f)
    assert opened.count(str(f)) == 1  # its first bytes only, to tell the format


def test_truncated_and_foreign_files_are_named(tmp_path):
    data = book_format({"W1": np.ones((2, 2)), "b1": np.zeros(2)})
    with pytest.raises(CheckpointError, match=r"not a readable pickle .*damaged"):
        read_book_params(write(tmp_path, "cut.pkl", data[:-20]), 1 << 20)
    with pytest.raises(CheckpointError, match=r"holds a tuple, not the dict"):
        read_book_params(write(tmp_path, "tuple.pkl", pickle.dumps((1, 2), protocol=4)), 1 << 20)
    with pytest.raises(CheckpointError, match=r"neither the book's pickle of parameters nor xpnet's \.npz"):
        load_params(xpnet.TwoLayerNet(2, 2, 2, device="cpu"), write(tmp_path, "x.txt", b"W1 = 1\n"))


# -- the net's keys and shapes ------------------------------------------------------------------
def small_params(**change):
    net = xpnet.TwoLayerNet(4, 3, 2, seed=0, device="cpu")
    p = {k: np.asarray(v) for k, v in net.params.items()}
    p.update(change)
    return {k: v for k, v in p.items() if v is not None}


@pytest.mark.parametrize("params, message", [
    (small_params(b2=None), r"has no parameter 'b2', which this net needs"),
    (small_params(W9=np.ones(2)), r"holds a parameter 'W9', which this net does not have"),
    (small_params(W1=np.ones((5, 3))), r"parameter 'W1' has shape \(5, 3\), this net's is \(4, 3\)"),
    (small_params(b1=np.array([0.0, np.nan, 0.0])), r"parameter 'b1' holds NaN or infinite values"),
])
@pytest.mark.parametrize("form", ["book", "npz"])
def test_a_file_that_does_not_fit_the_net_changes_nothing(tmp_path, params, message, form):
    f = tmp_path / "p.pkl"
    if form == "book":
        f.write_bytes(book_format(params))
    else:
        np.savez(open(f, "wb"), **params)
    net = xpnet.TwoLayerNet(4, 3, 2, seed=1, device="cpu")
    before = {k: np.copy(v) for k, v in net.params.items()}
    with pytest.raises(CheckpointError, match=message):
        net.load_params(str(f))
    for k, v in before.items():
        np.testing.assert_array_equal(net.params[k], v)


# -- xpnet's own files -------------------------------------------------------------------------
def test_save_params_writes_npz_under_the_name_given_and_loads_back(dev, tmp_path):
    net = xpnet.SimpleConvNet(**SMALL, device=dev, seed=4)
    path = net.save_params(str(tmp_path / "params.pkl"))  # the book's train_convnet.py call
    assert path == str(tmp_path / "params.pkl") and open(path, "rb").read(2) == b"PK"
    assert sorted(os.listdir(tmp_path)) == ["params.pkl"]  # no temporary left, no suffix added
    other = xpnet.SimpleConvNet(**SMALL, device=dev, seed=5)
    other.load_params(path)
    for k in net.params:
        np.testing.assert_array_equal(dev.to_numpy(other.params[k]), dev.to_numpy(net.params[k]))


def test_an_xpnet_checkpoint_loads_as_params(tmp_path):
    net = xpnet.TwoLayerNet(4, 3, 2, seed=2, device="cpu")
    save_net(net, tmp_path / "ck.npz")
    other = xpnet.TwoLayerNet(4, 3, 2, seed=3, device="cpu")
    load_params(other, tmp_path / "ck.npz")
    for k in net.params:
        np.testing.assert_array_equal(other.params[k], net.params[k])
    save_params(net, tmp_path / "plain.npz")
    load_params(xpnet.TwoLayerNet(4, 3, 2, device="cpu"), tmp_path / "plain.npz")

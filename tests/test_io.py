"""xpnet/io: hostile and damaged files -- checkpoints (npz, npy, checkpoint_format), IDX datasets
(idx) and the images of ``xpnet predict`` (npy) -- refused with an error naming the file and the
fault, before they cost memory: zip and gzip bombs, headers declaring terabytes, refused dtypes,
malformed records and members, tampered training state, digests that do not match.

Every bomb is built here, small on disk; memory is measured in a fresh interpreter
(``ru_maxrss``) and must grow far less than the size the file declares.
"""

import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

import xpnet
from xpnet.checkpoint import Checkpoint, CheckpointError, load_checkpoint, load_net, save_net
from xpnet.datasets import DatasetError, load_idx_dataset, load_mnist, read_idx

from .idx_files import NAMES, fashion_like, idx_bytes, make_tiny_idx

ROOT = Path(__file__).resolve().parents[1]
GiB = 1 << 30


# -- helpers ------------------------------------------------------------------------------
def npy_header(shape, dtype) -> bytes:
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": npy_format.dtype_to_descr(np.dtype(dtype)),
                                            "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)  # object arrays too: the loader must refuse them
    return buf.getvalue()


def deflate_zeros(n: int, prefix: bytes = b"") -> bytes:
    """A raw deflate stream of ``prefix`` and ``n`` zero bytes, built from one compressed 16 MiB
    block repeated (a full flush makes every block the same), so gigabytes cost a few MB."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)]
    block = 1 << 24
    reps, rest = divmod(n, block)
    if reps:
        out.append((c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)) * reps)
    out.append(c.compress(bytes(rest)) + c.flush())
    return b"".join(out)


def write_zip(path, members):
    """A zip written by hand, so a member's stream and its declared size are what the test says:
    ``members`` lists (name, bytes as stored, method, crc32, declared uncompressed size)."""
    body, central = bytearray(), bytearray()
    for name, data, method, crc, size in members:
        n = name.encode()
        offset = len(body)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(n), 0)
        body += n + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), size,
                               len(n), 0, 0, 0, 0, 0, offset) + n
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(body), 0)
    Path(path).write_bytes(bytes(body + central + end))


def stored(name, data: bytes):
    return (name, data, zipfile.ZIP_STORED, zlib.crc32(data), len(data))


def meta_bytes(record) -> bytes:
    return npy_bytes(np.array(record if isinstance(record, str) else json.dumps(record)))


def small_net():
    return xpnet.TwoLayerNet(4, 3, 2, device="cpu", seed=0)


def members_of(path) -> dict:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def rewrite(path, members: dict):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def good_checkpoint(tmp_path, name="m.npz", **kw):
    return save_net(small_net(), tmp_path / name, **kw)


def peak_growth(kind: str, path) -> tuple[str, int]:
    """Load ``path`` (a checkpoint or an IDX dataset directory) in a fresh interpreter: the error
    it printed and how far its peak RSS grew (bytes)."""
    code = textwrap.dedent("""
        import resource, sys
        import numpy
        import xpnet.checkpoint, xpnet.datasets
        kind, path = sys.argv[1], sys.argv[2]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            if kind == "checkpoint":
                xpnet.checkpoint.load_net(path, device="cpu")
            else:
                xpnet.datasets.load_idx_dataset(path)
            print("LOADED")
        except (xpnet.checkpoint.CheckpointError, xpnet.datasets.DatasetError) as e:
            print(type(e).__name__, e)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code, kind, str(path)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    *message, growth = out.stdout.strip().splitlines()
    return "\n".join(message), int(growth)


# -- checkpoints: bombs and sizes ------------------------------------------------------------
@pytest.mark.slow
def test_zip_bomb_member_is_refused_from_its_declared_size(tmp_path):
    """W1 declares 1.5 GiB of zeros deflated into ~2 MB; the architecture says 784x50."""
    net = xpnet.TwoLayerNet(784, 50, 10, device="cpu", seed=0)
    good = members_of(save_net(net, tmp_path / "good.npz"))
    header = npy_header((16384, 12288), "float64")
    n = 16384 * 12288 * 8
    bomb = deflate_zeros(n, header)
    members = [stored(k, v) for k, v in good.items() if k != "param/W1.npy"]
    # the CRC is not computed (it would cost a pass over 1.5 GiB): a bomb is refused long before it matters
    members.append(("param/W1.npy", bomb, zipfile.ZIP_DEFLATED, 0, len(header) + n))
    write_zip(tmp_path / "bomb.npz", members)
    assert (tmp_path / "bomb.npz").stat().st_size < 4 << 20
    message, growth = peak_growth("checkpoint", tmp_path / "bomb.npz")
    assert message.startswith("CheckpointError") and "bomb.npz" in message and "param/W1.npy" in message, message
    assert growth < 150 << 20, f"RSS grew {growth >> 20} MiB for a refused file"


@pytest.mark.slow
def test_zip_bomb_agreeing_with_its_architecture_is_refused(tmp_path):
    """Record, header and zip directory all agree on a 1 GiB W1 -- but it is 1 MB on disk."""
    sizes = [16384, 16384, 10]
    record = {"format": "xpnet-checkpoint-1", "config": {"class": "TwoLayerNet", "sizes": sizes,
                                                         "activation": "relu", "weight_init": 0.01,
                                                         "dtype": "float32"}}
    header = npy_header((16384, 16384), "float32")
    n = 16384 * 16384 * 4
    members = [stored("__meta__.npy", meta_bytes(record)),
               ("param/W1.npy", deflate_zeros(n, header), zipfile.ZIP_DEFLATED, 0, len(header) + n),
               stored("param/b1.npy", npy_bytes(np.zeros(16384, np.float32))),
               stored("param/W2.npy", npy_bytes(np.zeros((16384, 10), np.float32))),
               stored("param/b2.npy", npy_bytes(np.zeros(10, np.float32)))]
    write_zip(tmp_path / "bomb.npz", members)
    message, growth = peak_growth("checkpoint", tmp_path / "bomb.npz")
    assert "CheckpointError" in message and "zip bomb" in message and "param/W1.npy" in message, message
    assert growth < 150 << 20, f"RSS grew {growth >> 20} MiB for a refused file"


def test_npy_header_declaring_8_tib(tmp_path):
    path = good_checkpoint(tmp_path)
    m = members_of(path)
    m["param/W1.npy"] = npy_header((1 << 40,), "float64")
    rewrite(path, m)
    with pytest.raises(CheckpointError, match=r"param/W1.npy.*declares shape \(1099511627776,\).*8.0 TiB.*\(4, 3\)"):
        load_net(path)
    # the same header where the record lists a state array of that shape: refused from the record
    path = good_checkpoint(tmp_path, "s.npz", state={"arrays": {"m": np.zeros(2)}})
    m = members_of(path)
    record = json.loads(str(np.load(io.BytesIO(m["__meta__.npy"]))))
    record["state_arrays"]["m"]["shape"] = [1 << 40]
    m["__meta__.npy"] = meta_bytes(record)
    m["state/m.npy"] = npy_header((1 << 40,), "float64")
    rewrite(path, m)
    with pytest.raises(CheckpointError, match="s.npz records state arrays of more than 1.0 GiB"):
        load_checkpoint(path)


def test_architecture_too_large_is_refused_before_reading(tmp_path):
    record = {"format": "xpnet-checkpoint-1", "config": {"class": "MultiLayerNet", "sizes": [10 ** 6, 10 ** 6, 10],
                                                         "activation": "relu", "weight_init": "he",
                                                         "dtype": "float32"}}
    write_zip(tmp_path / "big.npz", [stored("__meta__.npy", meta_bytes(record))])
    with pytest.raises(CheckpointError, match=r"big.npz records sizes .*parameters, more than a checkpoint may hold"):
        load_net(tmp_path / "big.npz")


def test_member_size_disagreeing_with_its_header(tmp_path):
    path = good_checkpoint(tmp_path)
    m = members_of(path)
    m["param/b1.npy"] += b"\0" * 8
    rewrite(path, m)
    with pytest.raises(CheckpointError, match="param/b1.npy' is .* in the zip directory but its .npy header declares"):
        load_net(path)


def test_oversized_metadata_member(tmp_path):
    write_zip(tmp_path / "m.npz", [stored("__meta__.npy", meta_bytes("x" * (5 << 20)))])
    with pytest.raises(CheckpointError, match="__meta__.npy' declares 20.0 MiB, more than the 16.0 MiB"):
        load_net(tmp_path / "m.npz")


def test_flipped_byte_in_a_parameter_is_caught_by_the_crc(tmp_path):
    path = good_checkpoint(tmp_path)
    raw = bytearray(Path(path).read_bytes())
    at = raw.index(b"param/W1.npy") + len("param/W1.npy") + 130  # inside W1's data
    raw[at] ^= 0xFF
    Path(path).write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="m.npz is damaged: BadZipFile: Bad CRC-32"):
        load_net(path)


# -- checkpoints: dtypes, records, members -------------------------------------------------
@pytest.mark.parametrize("bad,fault", [
    (np.zeros((4, 3), np.complex128), "a complex dtype"),
    (np.zeros((4, 3), bool), "a bool dtype"),
    (np.zeros((4, 3), "M8[s]"), "a datetime dtype"),
    (np.zeros((4, 3), "m8[s]"), "a timedelta dtype"),
    (np.zeros((4, 3), [("a", "f8")]), "a structured dtype"),
    (np.zeros((4, 3), object), "an object dtype"),
    (np.zeros((4, 3), np.int64), "int64, not a floating dtype"),
    (np.zeros((4, 3), np.longdouble), r"float\d+ \(xpnet reads float16/32/64\)"),
    (np.zeros((4, 3), "U2"), "a string dtype"),
])
def test_parameter_dtypes_refused(tmp_path, bad, fault):
    if bad.dtype == np.longdouble and np.dtype(np.longdouble).itemsize == 8:
        pytest.skip("long double is float64 here")
    path = good_checkpoint(tmp_path)
    m = members_of(path)
    m["param/W1.npy"] = npy_bytes(bad)
    rewrite(path, m)
    with pytest.raises(CheckpointError, match=f"m.npz: parameter 'param/W1.npy' has {fault}.*float16/32/64"):
        load_net(path)


def record_of(net, **config):
    return {"format": "xpnet-checkpoint-1", "config": dict(net.config, **config)}


def with_record(tmp_path, record, name="m.npz"):
    path = good_checkpoint(tmp_path, name)
    m = members_of(path)
    m["__meta__.npy"] = meta_bytes(record)
    rewrite(path, m)
    return path


def test_a_corrupt_deflate_stream_is_a_checkpoint_error(tmp_path):
    data = npy_bytes(np.zeros((4, 3)))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = bytearray(c.compress(data) + c.flush())
    stream[2:-2] = bytes(b ^ 0xFF for b in stream[2:-2])  # zlib.error inside zipfile, not a bad CRC
    members = {n: d for n, d in members_of(good_checkpoint(tmp_path)).items() if n != "param/W1.npy"}
    write_zip(tmp_path / "z.npz", [stored(n, d) for n, d in members.items()]
              + [("param/W1.npy", bytes(stream), zipfile.ZIP_DEFLATED, zlib.crc32(data), len(data))])
    with pytest.raises(CheckpointError, match="z.npz is damaged: error: Error -3 while decompressing"):
        load_net(tmp_path / "z.npz")


@pytest.mark.parametrize("config,message", [
    ({"activation": "swish"}, "records the unknown activation 'swish'; this xpnet knows relu, sigmoid, tanh"),
    ({"activation": ["relu"]}, "unknown activation"),
    ({"weight_init": -0.01}, r"records weight_init -0.01; it must be a positive finite number"),
    ({"weight_init": 0}, "records weight_init 0;"),
    ({"weight_init": float("nan")}, "records weight_init nan;"),
    ({"weight_init": float("inf")}, "records weight_init inf;"),
    ({"weight_init": True}, "records weight_init True;"),
    ({"weight_init": "glorot"}, "records weight_init 'glorot'"),
    ({"sizes": [4, 3.5, 2]}, "damaged architecture record: sizes must be a list of positive integers"),
    ({"sizes": [4, True, 2]}, "sizes must be a list of positive integers"),
    ({"sizes": [4, 0, 2]}, "sizes must be a list of positive integers"),
    ({"sizes": {"a": 1}}, "sizes must be a list"),
    ({"sizes": [4, 3, 3, 2]}, "a TwoLayerNet has 3 sizes and relu"),
    ({"class": 5}, r"unknown architecture \(5, 3 sizes\)"),
    ({"class": "ConvNet"}, "unknown architecture"),
    ({"dtype": "float99"}, "cannot rebuild"),
    ({"dtype": 32}, "dtype must be a name such as 'float32'"),
    ({"layer_names": "keras"}, "layer_names must be 'xpnet' or 'book', got 'keras'"),
    ({"layer_names": ["book"]}, "layer_names must be 'xpnet' or 'book'"),
])
def test_malformed_architecture_records(tmp_path, config, message):
    path = with_record(tmp_path, record_of(small_net(), **config))
    with pytest.raises(CheckpointError, match=message) as e:
        load_net(path)
    assert "m.npz" in str(e.value)


@pytest.mark.parametrize("text,message", [
    ('{"format": "xpnet-checkpoint-1", "config": ' + "[" * 100000 + "]" * 100000 + "}", "nested more than 64"),
    ("[" * 100000, "nested more than 64"),
    ('{"a": "' + "[" * 1000 + '"}', "has format None"),  # brackets inside a string are text
    ("[1, 2]", r"malformed architecture record \(a JSON list, not an object\)"),
    ('"xpnet-checkpoint-1"', "a JSON str, not an object"),
    ("{not json", "not valid JSON"),
    ('{"format": "xpnet-checkpoint-1", "config": 5}', "'config' is int, not an object"),
    ('{"format": "xpnet-checkpoint-1", "config": {}}', "config lacks 'class', 'sizes'"),
    ('{"format": 1, "config": {}}', "has format 1; this xpnet reads xpnet-checkpoint-1"),
    ('{"format": "xpnet-checkpoint-1", "config": {"sizes": "x"}}', "damaged architecture record"),
    ('{"format": "xpnet-checkpoint-1", "config": {"sizes": 1' + "0" * 5000 + "}}", "not valid JSON"),
])
def test_malformed_metadata_strings(tmp_path, text, message):
    path = with_record(tmp_path, text)
    with pytest.raises(CheckpointError, match=message):
        load_net(path)


def test_metadata_member_of_the_wrong_kind(tmp_path):
    path = good_checkpoint(tmp_path)
    m = members_of(path)
    m["__meta__.npy"] = npy_bytes(np.zeros(3))
    rewrite(path, m)
    with pytest.raises(CheckpointError, match="architecture record '__meta__.npy' is a float64 array of shape"):
        load_net(path)


NOT_CHECKPOINTS = {  # each: what to write into a folder -> the path given to load_net; the error
    "missing": (lambda d: d / "none.npz", r"checkpoint .*none.npz does not exist"),
    "another .npz": (lambda d: (np.savez(d / "other.npz", a=np.ones(2)), d / "other.npz")[1],
                     r"other.npz is not an xpnet checkpoint"),
    "a .npy": (lambda d: (np.save(d / "w.npy", np.ones(3)), d / "w.npy")[1],
               r"w.npy is a single NumPy array \(.npy\), not an xpnet checkpoint"),
    "a .npy named .npz": (lambda d: (np.save(d / "w2.npz", np.ones(3)), d / "w2.npz.npy")[1],  # whatever its name says
                          r"w2.npz.npy is a single NumPy array"),
    "a directory": (lambda d: d, r"is a directory, not a checkpoint file"),
}


@pytest.mark.parametrize("case", list(NOT_CHECKPOINTS))
def test_what_is_not_a_checkpoint_is_named(tmp_path, case):
    make, match = NOT_CHECKPOINTS[case]
    with pytest.raises(CheckpointError, match=match):
        load_net(make(tmp_path))


@pytest.mark.parametrize("raw", [b"garbage", b"", b"\x80\x04\x95 pickled?", b"PK\x03\x04" + b"\0" * 100])
def test_garbage_npz(tmp_path, raw):
    (tmp_path / "bad.npz").write_bytes(raw)
    with pytest.raises(CheckpointError, match="bad.npz is damaged or not an .npz checkpoint") as e:
        load_net(tmp_path / "bad.npz")
    assert "pickle" not in str(e.value)


def test_extra_missing_and_duplicate_members(tmp_path):
    path = good_checkpoint(tmp_path)
    m = members_of(path)
    rewrite(path, {**m, "evil.npy": npy_bytes(np.ones(2))})
    with pytest.raises(CheckpointError, match=r"unexpected members \['evil.npy'\]"):
        load_net(path)
    rewrite(path, {**m, "param/W9.npy": npy_bytes(np.ones(2))})  # a parameter the architecture has not
    with pytest.raises(CheckpointError, match="holds parameters"):
        load_net(path)
    rewrite(path, {k: v for k, v in m.items() if k != "param/b2.npy"})
    with pytest.raises(CheckpointError,
                       match=r"holds parameters \['W1', 'W2', 'b1'\].*missing members \['param/b2.npy'\]"):
        load_net(path)
    rewrite(path, {**m, "state/x.npy": npy_bytes(np.ones(2))})  # state the record does not list
    with pytest.raises(CheckpointError, match=r"unexpected members \['state/x.npy'\]"):
        load_net(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is asked to write
        with zipfile.ZipFile(path, "w") as z:
            for k, v in m.items():
                z.writestr(k, v)
            z.writestr("param/W1.npy", m["param/W1.npy"])
    with pytest.raises(CheckpointError, match="two members named 'param/W1.npy'"):
        load_net(path)


def test_unsupported_compression_and_encryption(tmp_path):
    path = good_checkpoint(tmp_path)
    m = members_of(path)
    with zipfile.ZipFile(path, "w") as z:
        for k, v in m.items():
            z.writestr(k, v, compress_type=zipfile.ZIP_LZMA if k == "param/W1.npy" else zipfile.ZIP_STORED)
    with pytest.raises(CheckpointError, match="'param/W1.npy' uses zip compression method 14"):
        load_net(path)
    raw = bytearray(Path(good_checkpoint(tmp_path, "e.npz")).read_bytes())
    at = raw.index(b"PK\x01\x02")  # the first central directory entry: set its "encrypted" flag
    raw[at + 8] |= 1
    Path(tmp_path / "e.npz").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="is encrypted"):
        load_net(tmp_path / "e.npz")


def test_fortran_order_and_big_endian_parameters_load(tmp_path):
    net = small_net()
    path = save_net(net, tmp_path / "m.npz")
    m = members_of(path)
    m["param/W1.npy"] = npy_bytes(np.asfortranarray(net.params["W1"]).astype(">f8"))
    rewrite(path, m)
    np.testing.assert_array_equal(load_net(path, device="cpu").params["W1"], net.params["W1"])


# -- checkpoints: training state ----------------------------------------------------------
@pytest.mark.parametrize("tamper,message", [
    (lambda m, r: m.__setitem__("state/m.npy", npy_bytes(np.zeros(3, np.complex64))), "has a complex dtype"),
    (lambda m, r: m.__setitem__("state/m.npy", npy_bytes(np.zeros(4))), r"declares shape \(4,\).*says \(3,\)"),
    (lambda m, r: m.__setitem__("state/m.npy", npy_bytes(np.zeros(3, np.float32))),
     "has dtype float32, but the record says float64"),
    (lambda m, r: m.__setitem__("state/m.npy", npy_bytes(np.zeros(3, object))), "has an object dtype"),
    (lambda m, r: m.pop("state/m.npy"), r"missing members \['state/m.npy'\]"),
    (lambda m, r: r["state_arrays"]["m"].__setitem__("dtype", "|b1"), "recorded with a bool dtype"),
    (lambda m, r: r["state_arrays"]["m"].__setitem__("dtype", "not a dtype"), "recorded with the unknown dtype"),
    (lambda m, r: r["state_arrays"]["m"].__setitem__("shape", [-1]), "malformed record of state array 'm'"),
    (lambda m, r: r.__setitem__("state", [1]), "its state meta is a list, not an object"),
    (lambda m, r: r.__setitem__("state_arrays", {"../x": {"dtype": "<f8", "shape": [1]}}), "malformed record"),
])
def test_tampered_state_refused(tmp_path, tamper, message):
    path = save_net(small_net(), tmp_path / "m.npz", state={"arrays": {"m": np.arange(3.0)}, "meta": {"step": 1}})
    m = members_of(path)
    record = json.loads(str(np.load(io.BytesIO(m["__meta__.npy"]))))
    tamper(m, record)
    m["__meta__.npy"] = meta_bytes(record)
    rewrite(path, m)
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(path)
    assert "m.npz" in str(e.value)


def test_fuzzed_metadata_records_never_escape_as_other_errors():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=20)
    config = st.fixed_dictionaries({}, optional={
        "class": st.sampled_from(["TwoLayerNet", "MultiLayerNet", "X"]) | json_values,
        "sizes": st.lists(st.integers(-2, 6), max_size=4) | json_values,
        "activation": st.sampled_from(["relu", "tanh", "nope"]) | json_values,
        "weight_init": st.sampled_from([0.01, "he", -1.0, float("nan")]) | json_values,
        "dtype": st.sampled_from(["float32", "float64", "int8", "O"]) | json_values})
    record = st.fixed_dictionaries({"format": st.just("xpnet-checkpoint-1") | json_values,
                                    "config": config | json_values},
                                   optional={"state": json_values, "state_arrays": json_values})
    text = record.map(json.dumps) | st.text(max_size=40)
    net = small_net()
    params = {f"param/{k}": v for k, v in net.params.items()}

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.npz"

        @hypothesis.settings(max_examples=40, deadline=None, database=None)
        @hypothesis.given(text)
        def check(t):
            np.savez(path, __meta__=np.array(t), **params)
            try:
                ck = load_checkpoint(path, device="cpu")
            except CheckpointError as e:
                assert "f.npz" in str(e)
            else:
                assert isinstance(ck, Checkpoint)

        check()


# -- IDX datasets ---------------------------------------------------------------------------
def corrupt(d: Path, name: str, data: bytes, gz=True):
    (d / f"{name}.gz").write_bytes(gzip.compress(data) if gz else data)


def plain(d: Path, name: str, data: bytes):
    """``name`` as a plain (not gzipped) file in place of its ``.gz``."""
    (d / f"{name}.gz").unlink()
    (d / name).write_bytes(data)


@pytest.mark.parametrize("damage,message", [
    (lambda d, data: corrupt(d, NAMES[1], idx_bytes(data[NAMES[1]], magic=2051)), "magic number 2051, expected 2049"),
    (lambda d, data: (d / f"{NAMES[0]}.gz").write_bytes((d / f"{NAMES[0]}.gz").read_bytes()[:-30]),
     "train-images-idx3-ubyte.gz is not a readable gzip file.*truncated or corrupted"),
    (lambda d, data: corrupt(d, NAMES[2], idx_bytes(data[NAMES[2]], dims=(12, 28, 29))),
     r"t10k-images-idx3-ubyte.gz is truncated: 9424 bytes for shape \(12, 28, 29\), expected 9760"),
    (lambda d, data: corrupt(d, NAMES[2], idx_bytes(data[NAMES[2]]) + b"\0" * 7),
     r"t10k-images-idx3-ubyte.gz is longer than its header says: more than 9424 bytes"),
    (lambda d, data: (d / f"{NAMES[3]}.gz").write_bytes(gzip.compress(idx_bytes(data[NAMES[3]])) + b"trailing"),
     "not a readable gzip file \\(unexpected bytes after the end"),
    (lambda d, data: corrupt(d, NAMES[1], idx_bytes(data[NAMES[1]][:29])), "29 labels but .* 30 images"),
    (lambda d, data: corrupt(d, NAMES[3], idx_bytes(np.full(12, 10))),
     r"holds the label 10; labels must lie in \[0, 9\]"),
    (lambda d, data: corrupt(d, NAMES[2], idx_bytes(np.zeros((12, 28, 27)))), "28x28 images but .* 28x27"),
    (lambda d, data: corrupt(d, NAMES[0], idx_bytes(np.zeros((30, 784)), magic=2050)),
     "magic number 2050, expected 2051"),
    (lambda d, data: corrupt(d, NAMES[0], b"\0\0\x0d\x03"), "only unsigned bytes"),
    (lambda d, data: corrupt(d, NAMES[0], b"\0\0\x08\x03\0\0"), "truncated inside its header"),
    (lambda d, data: corrupt(d, NAMES[0], b"<html>"), "not an IDX file"),
    (lambda d, data: plain(d, NAMES[0], idx_bytes(data[NAMES[0]])[:-5]),
     r"train-images-idx3-ubyte is truncated: 23531 bytes for shape \(30, 28, 28\), expected 23536"),
])
def test_each_corruption_is_refused(tmp_path, damage, message):
    data = fashion_like(tmp_path, sums=False)
    damage(tmp_path, data)
    with pytest.raises(DatasetError, match=message):
        load_mnist(path=tmp_path)


def test_digest_from_sha256sums_is_checked(tmp_path):
    data = fashion_like(tmp_path)
    labels = data["t10k-labels-idx1-ubyte"].copy()
    labels[0] = (labels[0] + 1) % 10  # still a valid file: only the digest can tell
    corrupt(tmp_path, NAMES[3], idx_bytes(labels))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz has SHA-256 .* SHA256SUMS lists"):
        load_mnist(path=tmp_path)
    (tmp_path / "SHA256SUMS").write_text("not a digest  file\n")
    with pytest.raises(DatasetError, match=r"SHA256SUMS line 1 is not '<64 hex digits>  <file name>'"):
        load_mnist(path=tmp_path)


def test_plain_idx_longer_than_declared_is_refused_unread(tmp_path):
    fashion_like(tmp_path, sums=False)
    (tmp_path / f"{NAMES[1]}.gz").unlink()
    (tmp_path / NAMES[1]).write_bytes(idx_bytes(np.zeros(30)) + b"\0" * 100)
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte is longer than its header says: 138 bytes"):
        load_mnist(path=tmp_path)


def test_sha256sums_of_the_uncompressed_files_must_cover_every_file(tmp_path):
    make_tiny_idx(tmp_path, n_train=20, n_test=10, side=4, gz=False)
    lines = [f"{hashlib.sha256((tmp_path / n).read_bytes()).hexdigest()}  {n} (uncompressed)" for n in NAMES[:3]]
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


def gzip_of(prefix: bytes, zeros: int) -> bytes:
    """A gzip file of ``prefix`` and ``zeros`` zero bytes, built cheaply (trailer CRC left 0:
    a bomb is refused long before the trailer)."""
    size = (len(prefix) + zeros) % (1 << 32)  # gzip's ISIZE: the uncompressed length modulo 2**32
    return b"\x1f\x8b\x08\x00\0\0\0\0\x00\xff" + deflate_zeros(zeros, prefix) + struct.pack("<II", 0, size)


@pytest.mark.slow
def test_gzip_idx_bomb_declaring_terabytes(tmp_path):
    fashion_like(tmp_path, sums=False)
    dims = (1 << 20, 1 << 10, 1 << 10)  # 1 TiB of images
    header = struct.pack(">IIII", 2051, *dims)
    (tmp_path / f"{NAMES[0]}.gz").write_bytes(gzip_of(header, 2 * GiB))
    assert (tmp_path / f"{NAMES[0]}.gz").stat().st_size < 4 << 20
    message, growth = peak_growth("idx", tmp_path)
    assert message.startswith("DatasetError") and "train-images-idx3-ubyte.gz declares shape (1048576, 1024, 1024)" \
        in message and "1099511627776 bytes" in message and "refused before reading it" in message, message
    assert growth < 100 << 20, f"RSS grew {growth >> 20} MiB for a refused file"


def test_gzip_idx_declaring_more_than_the_file_can_hold(tmp_path):
    fashion_like(tmp_path, sums=False)
    header = struct.pack(">IIII", 2051, 1000, 1000, 500)  # 500 MB, under the cap, from a 1 KB file
    (tmp_path / f"{NAMES[0]}.gz").write_bytes(gzip_of(header, 1000))
    with pytest.raises(DatasetError, match="declares shape \\(1000, 1000, 500\\): 500000000 bytes, more than a "
                                           "[0-9]+-byte gzip file can hold"):
        load_idx_dataset(tmp_path)


@pytest.mark.slow
def test_gzip_stream_longer_than_declared_stops_at_the_declared_size(tmp_path):
    fashion_like(tmp_path, sums=False)
    header = struct.pack(">II", 2049, 30)  # 30 labels, then 2 GiB more zeros
    (tmp_path / f"{NAMES[1]}.gz").write_bytes(gzip_of(header, 2 * GiB))
    message, growth = peak_growth("idx", tmp_path)
    assert "train-labels-idx1-ubyte.gz is longer than its header says: more than 38 bytes" in message, message
    assert growth < 100 << 20, f"RSS grew {growth >> 20} MiB for a refused file"


@pytest.mark.parametrize("raw,match", [
    (struct.pack(">IIII", 2051, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
     r"declares shape \(4294967295, 4294967295, 4294967295\): \d+ bytes, more than the 1073741824"),
    (bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 1) + b"\0\0\0\0", "only unsigned bytes"),
], ids=["absurd size", "not bytes"])
def test_read_idx_refuses_a_header_before_allocating(tmp_path, raw, match):
    f = tmp_path / "x-idx3-ubyte"
    f.write_bytes(raw)
    with pytest.raises(DatasetError, match=match):
        read_idx(f)


def test_file_changed_in_place_with_same_size_and_mtime_is_read_fresh(tmp_path):
    fashion_like(tmp_path, sums=False)
    (_, t), _ = load_idx_dataset(tmp_path)
    f = tmp_path / f"{NAMES[1]}.gz"
    st = f.stat()
    new = gzip.compress(idx_bytes((np.arange(30) + 3) % 10), mtime=0)
    old = f.read_bytes()
    assert len(new) <= len(old)
    f.write_bytes(new + b"\0" * (len(old) - len(new)))  # zero padding after a gzip member is allowed
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    (_, t2), _ = load_idx_dataset(tmp_path)
    np.testing.assert_array_equal(t, np.arange(30) % 10)
    np.testing.assert_array_equal(t2, (np.arange(30) + 3) % 10)


def test_oversized_sums_file(tmp_path):
    fashion_like(tmp_path, sums=False)
    (tmp_path / "SHA256SUMS").write_bytes(b"0" * (2 << 20))
    with pytest.raises(DatasetError, match=r"SHA256SUMS is 2097152 bytes.*a few lines"):
        load_mnist(path=tmp_path)


# -- .npy images (xpnet predict --images) -----------------------------------------------------
def test_predict_images_npy_declaring_terabytes_is_refused_from_its_header(tmp_path):
    from numpy.lib import format as npformat

    from xpnet.datasets import DatasetError, load_images_npy

    bomb = tmp_path / "x.npy"
    with open(bomb, "wb") as f:
        npformat.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2**40, 784)})
        f.write(b"\0" * 100)
    with pytest.raises(DatasetError, match=r"declares 3,448,068,464,705,536 bytes .* holds 100"):
        load_images_npy(bomb, 784)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_a_pipe_given_as_a_file_is_refused_not_waited_on(tmp_path):
    """load_net, load_params and predict --images of a FIFO: reading it would block forever."""
    from xpnet.io.npy import load_images_npy

    from xpnet.exceptions import DatasetError

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_net(fifo)
    with pytest.raises(CheckpointError, match="not a regular file"):
        xpnet.TwoLayerNet(2, 2, 2, device="cpu").load_params(str(fifo))
    with pytest.raises(DatasetError, match="not a regular file"):
        load_images_npy(str(fifo), 4)

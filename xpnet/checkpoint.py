"""Checkpoints: parameters and architecture in one ``.npz``, no pickle, written atomically.

Parameters are saved as host NumPy arrays and the architecture as a JSON string, so a net
trained on a GPU loads onto a laptop's CPU (or any other device) with ``load_net``. A checkpoint
can also carry training state (``save_net(net, path, state={"arrays": ..., "meta": ...})``, read
back with ``load_checkpoint``); ``save_run``/``load_run`` write and read a whole training run that
way (optimizer state, step, random-generator state, history), which ``Trainer`` resumes from.

Loading treats the file as hostile: before a member is decompressed, its declared size (zip
directory) and its ``.npy`` header (shape, dtype) are checked against what the architecture
record says it must be and against hard caps, so a small file that would inflate to gigabytes,
or a header declaring terabytes, is refused with a ``CheckpointError`` that names the file and
the fault -- never a ``MemoryError``, a ``RecursionError`` or a traceback from inside zipfile.

Layout (format ``xpnet-checkpoint-1``, also read by earlier xpnet versions, which ignore state):

- ``__meta__.npy``: a 0-d unicode array, the JSON record ``{"format", "config"[, "state",
  "state_arrays"]}``; ``state`` is the caller's JSON meta, ``state_arrays`` the dtype and shape
  of every state array;
- ``param/W1.npy``, ``param/b1.npy``, ...: the parameters, exactly the shapes ``config["sizes"]`` implies;
- ``state/<name>.npy``: the state arrays.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import re
import struct
import zipfile
from dataclasses import dataclass, field

import numpy as np
from numpy.lib import format as npy_format

from .atomic import write_atomic
from .exceptions import CheckpointError, CheckpointWriteError, DeviceUnavailableError
from .history import History
from .device import device as get_device
from .nets import ACTIVATIONS, MultiLayerNet, TwoLayerNet

__all__ = ["save_net", "load_net", "load_checkpoint", "Checkpoint", "CheckpointError", "save_run", "load_run",
           "SavedRun", "RUN_FORMAT",
           "MAX_PARAM_BYTES", "MAX_STATE_BYTES", "MAX_META_BYTES"]

_FORMAT = "xpnet-checkpoint-1"
_CLASSES = ("TwoLayerNet", "MultiLayerNet")
_WEIGHT_INIT_NAMES = ("he", "relu", "xavier", "sigmoid")  # what MultiLayerNet accepts by name

MAX_PARAM_BYTES = 2 << 30   # all parameters together, as stored
MAX_STATE_BYTES = 1 << 30   # all state arrays together, unless 4x the parameters is more
MAX_META_BYTES = 16 << 20   # the JSON record, as stored (numpy keeps 4 bytes per character)
_MAX_DEPTH = 64             # nesting of the JSON record
_MAX_MEMBERS = 10000
_MAX_LAYERS = 1000
_MAX_HEADER = 10000         # numpy's own limit for a safe .npy header
_MAX_RATIO = 100            # a deflated member larger than 1 MiB may expand at most this much
_CHUNK = 16 << 20
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*")


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns: the rebuilt net and the training state saved with it."""

    net: object
    arrays: dict = field(default_factory=dict)  # name -> host NumPy array (the file's state/<name>)
    meta: dict = field(default_factory=dict)    # the JSON state meta, {} when none was saved


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 100 else r[:97] + "..."


def _size(n: int) -> str:
    for unit, k in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << k:
            return f"{n / (1 << k):.1f} {unit}"
    return f"{n} bytes"


# -- saving ---------------------------------------------------------------------------------
def _state_dtype_ok(dt: np.dtype) -> bool:
    return dt.kind in "iu" or (dt.kind == "f" and dt.itemsize in (2, 4, 8))


def _json_value(v, where: str, depth: int = 0):
    """``v`` as plain JSON data (tuples become lists, NumPy scalars Python numbers); refuses
    what JSON cannot carry back unchanged."""
    if depth > _MAX_DEPTH - 4:
        raise ValueError(f"{where} is nested more than {_MAX_DEPTH - 4} levels deep; flatten it")
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, np.generic) and v.dtype.kind in "biuf":
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_json_value(x, f"{where}[{i}]", depth + 1) for i, x in enumerate(v)]
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has the key {k!r}; JSON keys must be strings (a {type(k).__name__} "
                                "key would come back as a string), convert it with str()")
            out[k] = _json_value(x, f"{where}[{k!r}]", depth + 1)
        return out
    raise TypeError(f"{where} is a {type(v).__module__}.{type(v).__qualname__}; state meta must be JSON data "
                    "(dict, list, str, int, float, bool, None): put arrays in state['arrays']")


def _check_state(state) -> tuple[dict, dict]:
    if not isinstance(state, dict) or not set(state) <= {"arrays", "meta"}:
        raise TypeError("state must be None or a dict {'arrays': {name: numpy array}, 'meta': {JSON data}}, got "
                        + (f"keys {sorted(map(str, state))}" if isinstance(state, dict) else repr(type(state))))
    arrays, meta = state.get("arrays") or {}, state.get("meta")
    if not isinstance(arrays, dict):
        raise TypeError(f"state['arrays'] must be a dict of name -> host NumPy array, got {type(arrays).__name__}")
    out = {}
    for name, a in arrays.items():
        where = f"state['arrays'][{name!r}]"
        if not isinstance(name, str) or len(name) > 200 or not _NAME.fullmatch(name) or ".." in name:
            raise ValueError(f"{where}: a state array name must be letters, digits, '_', '-', '.' and '/'-separated "
                             "parts (e.g. 'adam/m/W1'), at most 200 characters")
        if not isinstance(a, (np.ndarray, np.generic)):
            raise TypeError(f"{where} is a {type(a).__module__}.{type(a).__qualname__}; pass host NumPy arrays "
                            "(net.device.to_numpy(a) brings a device array back)")
        a = np.asarray(a)
        if not _state_dtype_ok(a.dtype):
            raise TypeError(f"{where} has dtype {a.dtype}; state arrays must be real floating (float16/32/64) or "
                            "integer arrays")
        out[name] = a.astype(a.dtype.newbyteorder("="), copy=False)
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise TypeError(f"state['meta'] must be a dict of JSON data, got {type(meta).__name__}")
    return out, _json_value(meta, "state['meta']")


def save_net(net, path, *, state=None) -> str:
    """Save ``net`` to ``path`` (``.npz`` is added when missing) in one atomic write; returns the path.

    ``state`` (optional) is ``{"arrays": {name: host NumPy array}, "meta": {JSON data}}``: training
    state saved alongside, read back with ``load_checkpoint``.
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    config = getattr(net, "config", None)
    if not isinstance(config, dict) or config.get("class") not in _CLASSES or "sizes" not in config:
        raise CheckpointError(
            f"save_net records TwoLayerNet and MultiLayerNet architectures; {net!r} has other or edited layers, "
            "so a checkpoint could not rebuild it. Save its parameters yourself (e.g. numpy.savez of "
            "{k: net.device.to_numpy(v) for k, v in net.params.items()}) and rebuild the layers in code")
    arrays = {f"param/{k}": net.device.to_numpy(v) for k, v in net.params.items()}
    record = {"format": _FORMAT, "config": config}
    if state is not None:
        state_arrays, meta = _check_state(state)
        param_bytes = sum(a.nbytes for a in arrays.values())
        cap = max(MAX_STATE_BYTES, 4 * param_bytes)
        total = sum(a.nbytes for a in state_arrays.values())
        if total > cap:
            raise ValueError(f"state arrays hold {_size(total)}; a checkpoint carries at most {_size(cap)} of state "
                             "(4x the parameters or 1 GiB), so it could not be loaded back")
        record["state"] = meta
        record["state_arrays"] = {k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in state_arrays.items()}
        arrays.update({f"state/{k}": a for k, a in state_arrays.items()})
    text = json.dumps(record)
    if 4 * len(text) > MAX_META_BYTES:
        raise ValueError(f"the checkpoint's JSON record would be {_size(4 * len(text))} (over {_size(MAX_META_BYTES)}); "
                         "keep state['meta'] small and put bulk data in state['arrays']")
    arrays["__meta__"] = np.array(text)
    write_atomic(path, lambda f: np.savez(f, **arrays))
    return path


# -- loading --------------------------------------------------------------------------------
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error,
               NotImplementedError, RuntimeError, UnicodeError, OverflowError, KeyError, IndexError)


def _open_zip(path: str) -> zipfile.ZipFile:
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a directory, not a checkpoint file; give the .npz file "
                              "save_net wrote (e.g. its model.npz)")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} cannot be read ({e})") from None
    if head.startswith(b"\x93NUMPY"):
        raise CheckpointError(f"{path} is a single NumPy array (.npy), not an xpnet checkpoint: load_net reads the "
                              ".npz files save_net writes (numpy.load reads a .npy)")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise CheckpointError(f"{path} is damaged or not an .npz checkpoint: it does not start like a zip archive "
                              f"(first bytes {head!r}); give a file written by save_net")
    try:
        return zipfile.ZipFile(path)
    except _ZIP_ERRORS as e:
        raise CheckpointError(f"{path} is damaged or not an .npz checkpoint: its zip directory is unreadable "
                              f"({type(e).__name__}: {e}); save the net again") from None


def _members(zf: zipfile.ZipFile, path: str) -> dict:
    infos = zf.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise CheckpointError(f"{path} holds {len(infos)} members; an xpnet checkpoint holds far fewer "
                              "(one per parameter and state array)")
    members = {}
    for info in infos:
        name = info.filename
        if name in members:
            raise CheckpointError(f"{path} holds two members named {name!r}; the file was tampered with or damaged")
        if info.flag_bits & 1:
            raise CheckpointError(f"{path}: member {name!r} is encrypted; xpnet checkpoints are not")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(f"{path}: member {name!r} uses zip compression method {info.compress_type}; "
                                  "numpy .npz files are stored or deflated")
        if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > (1 << 20) \
                and info.file_size > _MAX_RATIO * max(info.compress_size, 1):
            raise CheckpointError(
                f"{path}: member {name!r} declares {_size(info.file_size)} compressed into "
                f"{_size(info.compress_size)} (over {_MAX_RATIO}x): a zip bomb, not a checkpoint; refused unread")
        members[name] = info
    return members


def _read_exact(stream, n: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError(f"{what} ends after {len(data)} of {n} bytes")
    return data


def _read_header(stream, path: str, name: str):
    """A member's .npy header -- (shape, fortran_order, dtype, header bytes) -- read alone and
    bounded before numpy parses it."""
    prefix = _read_exact(stream, 8, "the .npy magic")
    if not prefix.startswith(b"\x93NUMPY"):
        raise CheckpointError(f"{path}: member {name!r} is not a .npy array (bad magic {prefix[:6]!r})")
    version = (prefix[6], prefix[7])
    if version not in ((1, 0), (2, 0)):
        raise CheckpointError(f"{path}: member {name!r} has .npy format version {version}; xpnet writes and reads "
                              "versions 1.0 and 2.0")
    fmt = "<H" if version == (1, 0) else "<I"
    size_bytes = _read_exact(stream, struct.calcsize(fmt), "the .npy header length")
    hlen = struct.unpack(fmt, size_bytes)[0]
    if hlen > _MAX_HEADER:
        raise CheckpointError(f"{path}: member {name!r} declares a {hlen}-byte .npy header (a real one is under "
                              f"{_MAX_HEADER}); refused unread")
    header = _read_exact(stream, hlen, "the .npy header")
    buf = io.BytesIO(prefix + size_bytes + header)
    try:
        npy_format.read_magic(buf)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = read(buf)
    except (ValueError, TypeError, SyntaxError, RecursionError, UnicodeError) as e:
        raise CheckpointError(f"{path}: member {name!r} has a malformed .npy header "
                              f"({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise CheckpointError(f"{path}: member {name!r} has a malformed .npy shape {shape!r}")
    return shape, bool(fortran), dtype, 8 + len(size_bytes) + hlen


def _dtype_fault(dt: np.dtype, allowed: str) -> str | None:
    """Why ``dt`` is refused ('' when fine). ``allowed``: 'float' or 'state'."""
    if dt.fields is not None or dt.subdtype is not None or dt.kind == "V":
        return "a structured dtype"
    kinds = {"c": "a complex dtype", "b": "a bool dtype", "M": "a datetime dtype", "m": "a timedelta dtype",
             "O": "an object dtype", "U": "a string dtype", "S": "a bytes dtype"}
    if dt.kind in kinds:
        return kinds[dt.kind]
    if dt.kind == "f" and dt.itemsize not in (2, 4, 8):
        return f"{dt} (xpnet reads float16/32/64)"
    if allowed == "float" and dt.kind != "f":
        return f"{dt}, not a floating dtype"
    if dt.kind not in "fiu":
        return f"an unsupported dtype {dt}"
    return None


def _read_array(zf, info, path: str, *, kind: str, shape=None, dtype=None, max_bytes: int) -> np.ndarray:
    """One member as a NumPy array, refused before its data is read unless its declared sizes,
    shape and dtype are what is expected (``shape``/``dtype`` when given) and within ``max_bytes``."""
    name = info.filename
    if info.file_size > max_bytes + _MAX_HEADER + 16:
        raise CheckpointError(f"{path}: member {name!r} declares {_size(info.file_size)}, more than the "
                              f"{_size(max_bytes)} it may hold; refused unread")
    with zf.open(info) as stream:
        got_shape, fortran, dt, header_bytes = _read_header(stream, path, name)
        if kind == "meta":
            if got_shape != () or dt.kind != "U":
                raise CheckpointError(f"{path}: the architecture record {name!r} is a {dt} array of shape {got_shape}, "
                                      "not a JSON string; the file is damaged or not an xpnet checkpoint")
        else:
            fault = _dtype_fault(dt, "float" if kind == "parameter" else "state")
            if fault:
                what = "parameters must be float16/32/64" if kind == "parameter" else \
                    "state arrays must be real floating or integer"
                raise CheckpointError(f"{path}: {kind} {name!r} has {fault}; {what} -- the file is damaged or was "
                                      "not written by save_net")
        nbytes = math.prod(got_shape) * dt.itemsize
        if shape is not None and tuple(got_shape) != tuple(shape):
            raise CheckpointError(f"{path}: {kind} {name!r} declares shape {got_shape} ({_size(nbytes)} of {dt}), "
                                  f"but the architecture record says {tuple(shape)}; refused unread")
        if dtype is not None and dt != dtype:
            raise CheckpointError(f"{path}: {kind} {name!r} has dtype {dt}, but the record says {dtype}; "
                                  "the file was tampered with")
        if nbytes > max_bytes:
            raise CheckpointError(f"{path}: {kind} {name!r} declares shape {got_shape} of {dt}: {_size(nbytes)}, "
                                  f"more than the {_size(max_bytes)} allowed; refused unread")
        if header_bytes + nbytes != info.file_size:
            raise CheckpointError(f"{path}: member {name!r} is {_size(info.file_size)} in the zip directory but its "
                                  f".npy header declares {header_bytes + nbytes} bytes; the file is damaged")
        buf = np.empty(nbytes, dtype=np.uint8)
        view = memoryview(buf)
        done = 0
        while done < nbytes:
            n = stream.readinto(view[done: done + _CHUNK])
            if not n:
                raise EOFError(f"member {name!r} ends after {done} of {nbytes} data bytes")
            done += n
        if stream.read(1):  # also makes zipfile check the CRC
            raise CheckpointError(f"{path}: member {name!r} is longer than its header says")
    arr = buf.view(dt)
    arr = arr.reshape(got_shape[::-1]).T if fortran else arr.reshape(got_shape)
    if not dt.isnative:
        arr = arr.astype(dt.newbyteorder("="))
    return arr


def _parse_json(text: str, path: str):
    """JSON with its nesting depth checked first (deep nesting is a RecursionError in ``json``)."""
    depth = deepest = 0
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > _MAX_DEPTH:
                    raise CheckpointError(f"{path} has a malformed architecture record: its JSON is nested more "
                                          f"than {_MAX_DEPTH} levels deep")
        elif c in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{path} has a malformed architecture record: not valid JSON "
                              f"({type(e).__name__}: {str(e)[:200]})") from None


def _damaged(path, why):
    return CheckpointError(f"{path} has a damaged architecture record: {why}; the file was edited or damaged, "
                           "save the net again")


def _architecture(record: dict, path: str) -> dict:
    cfg = record.get("config")
    if not isinstance(cfg, dict):
        raise _damaged(path, f"'config' is {type(cfg).__name__}, not an object")
    missing = [k for k in ("class", "sizes", "activation", "weight_init", "dtype") if k not in cfg]
    if missing:
        raise _damaged(path, f"config lacks {', '.join(map(repr, missing))}")
    kind, sizes, activation, weight_init, dtype = (cfg[k] for k in ("class", "sizes", "activation",
                                                                    "weight_init", "dtype"))
    if not isinstance(sizes, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                              for s in sizes):
        raise _damaged(path, f"sizes must be a list of positive integers, got {str(sizes)[:100]}")
    if kind not in _CLASSES or not 2 <= len(sizes) <= _MAX_LAYERS:
        raise CheckpointError(f"{path} records an unknown architecture ({_short(kind)}, "
                              f"{len(sizes)} sizes); this xpnet rebuilds {' and '.join(_CLASSES)}")
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise CheckpointError(f"{path} records the unknown activation {_short(activation)}; this xpnet knows "
                              f"{', '.join(ACTIVATIONS)}")
    if kind == "TwoLayerNet" and (len(sizes) != 3 or activation != "relu"):
        raise _damaged(path, f"a TwoLayerNet has 3 sizes and relu, the record says {sizes} and {activation!r}")
    if isinstance(weight_init, str):
        ok = weight_init.lower() in _WEIGHT_INIT_NAMES
    else:
        ok = isinstance(weight_init, (int, float)) and not isinstance(weight_init, bool) \
            and math.isfinite(weight_init) and weight_init > 0
    if not ok:
        raise CheckpointError(f"{path} records weight_init {_short(weight_init)}; it must be a positive finite "
                              "number, 'he' or 'xavier' -- the record was edited or damaged")
    if not isinstance(dtype, str):
        raise _damaged(path, f"dtype must be a name such as 'float32', got {_short(dtype)}")
    layer_names = cfg.get("layer_names", "xpnet")  # "book": Activation_function1, ... (the book's form)
    if layer_names not in ("xpnet", "book"):
        raise _damaged(path, f"layer_names must be 'xpnet' or 'book', got {_short(layer_names)}")
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if 2 * n_params > MAX_PARAM_BYTES:  # even as float16
        raise CheckpointError(f"{path} records sizes {str(sizes)[:200]}: {n_params} parameters, more than a "
                              f"checkpoint may hold ({_size(MAX_PARAM_BYTES)}); refused before reading them")
    return {"class": kind, "sizes": sizes, "activation": activation, "weight_init": weight_init, "dtype": dtype,
            "layer_names": layer_names, "n_params": n_params}


def _state_record(record: dict, path: str, param_bytes: int):
    meta = record.get("state", {})
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has a malformed record: its state meta is a {type(meta).__name__}, "
                              "not an object")
    spec = record.get("state_arrays", {})
    if not isinstance(spec, dict):
        raise CheckpointError(f"{path} has a malformed record: 'state_arrays' is a {type(spec).__name__}")
    cap = max(MAX_STATE_BYTES, 4 * param_bytes)
    out, total = {}, 0
    for name, s in spec.items():
        if not _NAME.fullmatch(name) or ".." in name or not isinstance(s, dict) \
                or not isinstance(s.get("dtype"), str) or not isinstance(s.get("shape"), list) \
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d for d in s["shape"]) \
                or len(s["shape"]) > 32:
            raise CheckpointError(f"{path} has a malformed record of state array {_short(name)}: "
                                  f"{str(s)[:200]}")
        try:
            dt = np.dtype(s["dtype"])
        except (TypeError, ValueError, SyntaxError) as e:
            raise CheckpointError(f"{path}: state array {name!r} is recorded with the unknown dtype "
                                  f"{s['dtype'][:50]!r} ({e})") from None
        fault = _dtype_fault(dt, "state")
        if fault:
            raise CheckpointError(f"{path}: state array {name!r} is recorded with {fault}; state arrays must be "
                                  "real floating or integer")
        total += math.prod(s["shape"]) * dt.itemsize
        if total > cap:
            raise CheckpointError(f"{path} records state arrays of more than {_size(cap)}; refused before reading "
                                  "them")
        out[name] = (tuple(s["shape"]), dt)
    return meta, out, cap


def _records(zf, path):
    """(the members, the JSON record, the checked architecture) of an open checkpoint."""
    members = _members(zf, path)
    info = members.get("__meta__.npy")
    if info is None:
        raise CheckpointError(f"{path} is not an xpnet checkpoint (no architecture record __meta__); "
                              "give a file written by save_net")
    raw = _read_array(zf, info, path, kind="meta", max_bytes=MAX_META_BYTES)
    try:
        text = str(raw[()])
    except (ValueError, UnicodeError) as e:
        raise CheckpointError(f"{path} has a malformed architecture record ({e})") from None
    record = _parse_json(text, path)
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        fmt = record.get("format") if isinstance(record, dict) else None
        what = f"has format {_short(fmt)}" if isinstance(record, dict) else \
            f"has a malformed architecture record (a JSON {type(record).__name__}, not an object)"
        raise CheckpointError(f"{path} {what}; this xpnet reads {_FORMAT}")
    return members, record, _architecture(record, path)


def checkpoint_meta(path) -> dict:
    """The training state saved with a net (step, device, random generator, ...), read and
    checked without loading a single array: what a resume needs to know first."""
    path = os.fspath(path)
    try:
        with _open_zip(path) as zf:
            _, record, arch = _records(zf, path)
            return _state_record(record, path, 8 * arch["n_params"])[0]
    except _ZIP_ERRORS as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path} is damaged: {type(e).__name__}: {str(e)[:200]}; save the net again") from None


def load_checkpoint(path, device=None, dtype=None) -> Checkpoint:
    """Rebuild a saved net on ``device`` (default: the current default device), with the training
    state saved alongside it: ``Checkpoint(net, arrays, meta)``."""
    path = os.fspath(path)
    dev = get_device(device)
    zf = _open_zip(path)
    try:
        with zf:
            members, record, arch = _records(zf, path)
            sizes = arch["sizes"]
            shapes = {}
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
                shapes[f"W{i}"], shapes[f"b{i}"] = (a, b), (b,)
            meta, spec, state_cap = _state_record(record, path, 8 * arch["n_params"])
            expected = {f"param/{k}.npy" for k in shapes} | {f"state/{k}.npy" for k in spec} | {"__meta__.npy"}
            extra, missing = sorted(set(members) - expected), sorted(expected - set(members))
            if extra or missing:
                params = sorted(n[6:-4] for n in members if n.startswith("param/") and n.endswith(".npy"))
                parts = [f"holds parameters {params}, expected {sorted(shapes)}"] if \
                    set(params) != set(shapes) else []
                if extra:
                    parts.append(f"unexpected members {extra[:10]}")
                if missing:
                    parts.append(f"missing members {missing[:10]}")
                raise CheckpointError(f"{path} {'; '.join(parts)} (the architecture record lists what belongs); "
                                      "the file was edited or damaged")
            params, used = {}, 0
            for k, s in shapes.items():  # all parameters together stay under the cap
                params[k] = _read_array(zf, members[f"param/{k}.npy"], path, kind="parameter", shape=s,
                                        max_bytes=MAX_PARAM_BYTES - used)
                used += params[k].nbytes
            arrays = {k: _read_array(zf, members[f"state/{k}.npy"], path, kind="state array", shape=s, dtype=dt,
                                     max_bytes=state_cap) for k, (s, dt) in spec.items()}
    except _ZIP_ERRORS as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path} is damaged: {type(e).__name__}: {str(e)[:200]}; save the net again") from None
    dtype = dtype or arch["dtype"]
    try:
        if arch["class"] == "TwoLayerNet":
            net = TwoLayerNet(*sizes, arch["weight_init"], device=dev, dtype=dtype, params=params)
        else:
            net = MultiLayerNet(sizes, arch["activation"], arch["weight_init"], device=dev, dtype=dtype,
                                params=params, layer_names=arch["layer_names"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot rebuild the saved net ({e})") from None
    return Checkpoint(net, arrays, meta)


def load_net(path, device=None, dtype=None):
    """Rebuild a saved net on ``device`` (default: the current default device); ``load_checkpoint``
    also returns the training state saved with it."""
    return load_checkpoint(path, device=device, dtype=dtype).net


# -- training runs: a net's checkpoint that also holds where its training stood --------------
RUN_FORMAT = "xpnet-run-1"


@dataclass
class SavedRun:
    """What ``load_run`` returns: everything a trainer needs to continue a run."""

    net: object
    optimizer: object      # rebuilt with its state (velocities, moments), on the net's device
    history: History
    step: int
    rng_state: dict        # the random generator's state, for ``Device.rng(...).set_state``
    settings: dict         # the trainer's own settings (batch size, iters, ...)
    n_train: int           # the samples it was trained and tested on
    n_test: int
    path: str = ""

    def check_data(self, n_train: int, n_test: int) -> None:
        """Refuse to continue on other data than the run's (by the number of samples)."""
        if (n_train, n_test) != (self.n_train, self.n_test):
            raise ValueError(f"{self.path} was trained on {self.n_train} training and {self.n_test} test samples, "
                             f"not {n_train} and {n_test}: resume on the same data")


def save_run(net, path, *, step: int, device, rng_state: dict, optimizer_state: dict, history: History,
             settings: dict, last_saved: int | None = None) -> str:
    """Write a whole training run -- parameters, architecture, optimizer state (``state_dict()``),
    step, random-generator state, history, trainer settings -- in one atomic write; returns the
    path written. A failed write raises ``CheckpointWriteError`` naming the step and whether an
    earlier checkpoint of the run (``last_saved``, its step) is still there."""
    meta = {"format": RUN_FORMAT, "step": step, "device": device.name, "rng": rng_state,
            "optimizer": optimizer_state["meta"], "history": history.to_dict(), "trainer": settings}
    arrays = {f"optimizer/{k}": device.to_numpy(v) for k, v in optimizer_state["arrays"].items()}
    try:
        return save_net(net, path, state={"arrays": arrays, "meta": meta})
    except OSError as e:
        kept = f"the last good checkpoint (step {last_saved}) is kept" if last_saved is not None \
            else "no earlier checkpoint of this run exists"
        why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise CheckpointWriteError(e.errno, f"could not write the checkpoint at step {step} to {path}: "
                                            f"{why}; {kept}") from None


def load_run(path, device=None, communicator=None) -> SavedRun:
    """The run ``save_run`` wrote at ``path``, on the device it was trained on (with a
    ``communicator``: this process's ``communicator.device``) or on ``device``, which must be one
    whose random generator continues the saved one; trained by as many processes as
    ``communicator`` has (the global batch would change otherwise)."""
    from .optimizers import Optimizer

    meta = checkpoint_meta(path)
    if meta.get("format") != RUN_FORMAT:
        raise ValueError(f"{path} holds a net but no training run to resume (saved by save_net, not by "
                         f"Trainer.fit(checkpoint=...)); train it anew with Trainer(load_net(path), ...)")
    ck = load_checkpoint(path, device=_run_device(path, meta, device, communicator))
    meta = ck.meta
    try:
        settings, step = dict(meta["trainer"]), int(meta["step"])
        n_train, n_test = int(settings.pop("n_train")), int(settings.pop("n_test"))
        dev = ck.net.device
        opt = Optimizer.from_state(meta["optimizer"], {k.split("/", 1)[1]: dev.asarray(v) for k, v in
                                                       ck.arrays.items() if k.startswith("optimizer/")})
        history = History.from_dict(meta["history"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: the saved training state is damaged ({type(e).__name__}: {e})") from None
    saved_world, world = settings.pop("processes", 1), (communicator.size if communicator is not None else 1)
    if saved_world != world:
        raise ValueError(f"{path} was trained by {saved_world} process(es) and this resume has {world}: the global "
                         f"batch would change; resume with the same number (mpiexec -n {saved_world}"
                         f"{' ... --distributed' if saved_world > 1 else ', or without mpiexec'})")
    return SavedRun(ck.net, opt, history, step, meta["rng"], settings, n_train, n_test, os.fspath(path))


def _run_device(path, meta, device, communicator):
    """The device a saved run continues on: its own unless told otherwise, and only one whose
    random generator continues the saved state (so the resumed run draws the same batches)."""
    saved = meta.get("device") or (meta.get("history") or {}).get("config", {}).get("device")
    if device is None and communicator is not None and communicator.device is not None:
        device = communicator.device
    if device is None:
        if not isinstance(saved, str):
            raise ValueError(f"{path} does not say which device it was trained on; pass device=")
        try:
            return get_device(saved)
        except (DeviceUnavailableError, ValueError) as e:
            raise DeviceUnavailableError(f"{path} was trained on {saved}, which is not usable here ({e}); resume "
                                         f"it where {saved} is, or pass device= of the same kind") from None
    dev = get_device(device)
    rng = meta.get("rng")
    kind = rng.get("kind") if isinstance(rng, dict) else None
    if kind is not None and kind != dev.rng_kind:
        raise ValueError(f"{path} was trained on {saved} and cannot continue on {dev.name}: its random batches "
                         f"continue only where the generator draws alike; resume it on {saved} (leave out device) "
                         f"or train its net on as a new run: Trainer(load_net(path, device={dev.name!r}), ...)")
    return dev

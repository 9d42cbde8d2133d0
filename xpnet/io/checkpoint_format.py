"""What an xpnet checkpoint holds, and the checks of its JSON record: on saving, that it will
load back unchanged; on loading, that it describes a net this xpnet rebuilds, within the caps,
before a single array is read.

Layout (format ``xpnet-checkpoint-1``, also read by earlier xpnet versions, which ignore state):

- ``__meta__.npy``: a 0-d unicode array, the JSON record ``{"format", "config"[, "state",
  "state_arrays"]}``; ``state`` is the caller's JSON meta, ``state_arrays`` the dtype and shape
  of every state array;
- ``param/W1.npy``, ``param/b1.npy``, ...: the parameters, exactly the shapes ``config["sizes"]`` implies
  (``gamma<i>``, ``beta<i>`` too for a ``MultiLayerNetExtend`` with batch norm);
- ``buffer/BatchNorm1/running_mean.npy``, ...: the layers' running statistics, where the net has them;
  the record's ``generators`` says where each dropout layer's generator stands;
- ``state/<name>.npy``: the state arrays.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from ..convnets import deep_conv_shapes, simple_conv_shapes
from ..exceptions import CheckpointError
from ..nets import ACTIVATIONS, is_weight_init
from ..validation import format_bytes
from .npz import MAX_JSON_DEPTH, dtype_fault

__all__ = ["FORMAT", "CLASSES", "META", "MAX_PARAM_BYTES", "MAX_STATE_BYTES", "MAX_META_BYTES", "config_of",
           "check_state", "record_text", "read_record", "architecture", "param_shapes", "buffer_shapes", "state_spec",
           "check_members"]

FORMAT = "xpnet-checkpoint-1"
CLASSES = ("TwoLayerNet", "MultiLayerNet", "MultiLayerNetExtend", "SimpleConvNet", "DeepConvNet")
CONV_CLASSES = ("SimpleConvNet", "DeepConvNet")
META = "__meta__"           # the array holding the JSON record

MAX_PARAM_BYTES = 2 << 30   # all parameters together, as stored
MAX_STATE_BYTES = 1 << 30   # all state arrays together, unless 4x the parameters is more
MAX_META_BYTES = 16 << 20   # the JSON record, as stored (numpy keeps 4 bytes per character)
_MAX_LAYERS = 1000
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*")


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 100 else r[:97] + "..."


def _state_cap(param_bytes: int) -> int:
    """The most bytes of state arrays a checkpoint with ``param_bytes`` of parameters carries."""
    return max(MAX_STATE_BYTES, 4 * param_bytes)


# -- saving ---------------------------------------------------------------------------------
def config_of(net, params: dict, buffers: dict) -> dict:
    """The architecture ``net`` records: ``net.config`` where this xpnet rebuilds it from that;
    else (a reader's own net, an ``xpnet.Net`` of any layers, edited layers) a *given* record --
    its class and the names and shapes of its arrays -- for a net its own code builds again and
    hands to ``load_checkpoint(path, net=...)``."""
    config = getattr(net, "config", None)
    if isinstance(config, dict) and config.get("class") in CLASSES and "layers" not in config and \
            ("sizes" in config or config.get("class") in CONV_CLASSES):
        return config
    return {"class": type(net).__qualname__, "module": type(net).__module__, "given": True,
            "dtype": str(next(iter(params.values())).dtype) if params else "float32",
            "params": {k: list(a.shape) for k, a in params.items()},
            "buffers": {k: list(a.shape) for k, a in buffers.items()}}


def _state_dtype_ok(dt: np.dtype) -> bool:
    return dt.kind in "iu" or (dt.kind == "f" and dt.itemsize in (2, 4, 8))


def _json_value(v, where: str, depth: int = 0):
    """``v`` as plain JSON data (tuples become lists, NumPy scalars Python numbers); refuses
    what JSON cannot carry back unchanged."""
    if depth > MAX_JSON_DEPTH - 4:
        raise ValueError(f"{where} is nested more than {MAX_JSON_DEPTH - 4} levels deep; flatten it")
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


def check_state(state, param_bytes: int) -> tuple[dict, dict]:
    """(state arrays, JSON meta) of ``save_net``'s ``state=``, refused unless they load back
    unchanged and within the cap for ``param_bytes`` of parameters."""
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
    meta = _json_value(meta, "state['meta']")
    cap, total = _state_cap(param_bytes), sum(a.nbytes for a in out.values())
    if total > cap:
        raise ValueError(f"state arrays hold {format_bytes(total)}; a checkpoint carries at most {format_bytes(cap)} "
                         "of state (4x the parameters or 1 GiB), so it could not be loaded back")
    return out, meta


def record_text(record: dict) -> str:
    """The JSON record as text, refused when it would not load back under ``MAX_META_BYTES``."""
    text = json.dumps(record)
    if 4 * len(text) > MAX_META_BYTES:
        raise ValueError(f"the checkpoint's JSON record would be {format_bytes(4 * len(text))} (over "
                         f"{format_bytes(MAX_META_BYTES)}); keep state['meta'] small and put bulk data in "
                         "state['arrays']")
    return text


# -- loading --------------------------------------------------------------------------------
def _damaged(path, why):
    return CheckpointError(f"{path} has a damaged architecture record: {why}; the file was edited or damaged, "
                           "save the net again")


def read_record(npz) -> tuple[dict, dict]:
    """(the JSON record, its checked ``architecture``) of an open checkpoint (``open_npz``)."""
    path = npz.path
    if META + ".npy" not in npz.names:
        raise CheckpointError(f"{path} is not an xpnet checkpoint (no architecture record {META}); "
                              "give a file written by save_net")
    record = npz.json(META + ".npy", max_bytes=MAX_META_BYTES)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        fmt = record.get("format") if isinstance(record, dict) else None
        what = f"has format {_short(fmt)}" if isinstance(record, dict) else \
            f"has a malformed architecture record (a JSON {type(record).__name__}, not an object)"
        raise CheckpointError(f"{path} {what}; this xpnet reads {FORMAT}")
    return record, architecture(record, path)


def architecture(record: dict, path: str) -> dict:
    """The net a record describes -- class, sizes, activation, weight_init, dtype, layer_names
    and n_params -- refused unless this xpnet rebuilds it within ``MAX_PARAM_BYTES``."""
    cfg = record.get("config")
    if not isinstance(cfg, dict):
        raise _damaged(path, f"'config' is {type(cfg).__name__}, not an object")
    if cfg.get("given") is True:
        return _given_architecture(cfg, path)
    missing = [k for k in ("class", "sizes", "activation", "weight_init", "dtype") if k not in cfg]
    if missing and cfg.get("class") not in CONV_CLASSES:
        raise _damaged(path, f"config lacks {', '.join(map(repr, missing))}")
    if cfg.get("class") in CONV_CLASSES:
        return _conv_architecture(cfg, path)
    kind, sizes, activation, weight_init, dtype = (cfg[k] for k in ("class", "sizes", "activation",
                                                                    "weight_init", "dtype"))
    if not isinstance(sizes, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                              for s in sizes):
        raise _damaged(path, f"sizes must be a list of positive integers, got {str(sizes)[:100]}")
    if kind not in CLASSES or not 2 <= len(sizes) <= _MAX_LAYERS:
        raise CheckpointError(f"{path} records an unknown architecture ({_short(kind)}, "
                              f"{len(sizes)} sizes); this xpnet rebuilds {' and '.join(CLASSES)}")
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise CheckpointError(f"{path} records the unknown activation {_short(activation)}; this xpnet knows "
                              f"{', '.join(ACTIVATIONS)}")
    if kind == "TwoLayerNet" and (len(sizes) != 3 or activation != "relu"):
        raise _damaged(path, f"a TwoLayerNet has 3 sizes and relu, the record says {sizes} and {activation!r}")
    if not is_weight_init(weight_init):
        raise CheckpointError(f"{path} records weight_init {_short(weight_init)}; it must be a positive finite "
                              "number, 'he' or 'xavier' -- the record was edited or damaged")
    if not isinstance(dtype, str):
        raise _damaged(path, f"dtype must be a name such as 'float32', got {_short(dtype)}")
    layer_names = cfg.get("layer_names", "xpnet")  # "book": Activation_function1, ... (the book's form)
    if layer_names not in ("xpnet", "book"):
        raise _damaged(path, f"layer_names must be 'xpnet' or 'book', got {_short(layer_names)}")
    decay = cfg.get("weight_decay_lambda", 0)
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not math.isfinite(decay) or decay < 0:
        raise _damaged(path, f"weight_decay_lambda must be a finite number >= 0, got {_short(decay)}")
    extend = {}
    if kind == "MultiLayerNetExtend":
        for k in ("use_dropout", "use_batchnorm"):
            if not isinstance(cfg.get(k), bool):
                raise _damaged(path, f"{k} must be true or false, got {_short(cfg.get(k))}")
            extend[k] = cfg[k]
        ratio = cfg.get("dropout_ratio")
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
            raise _damaged(path, f"dropout_ratio must be a number in [0, 1), got {_short(ratio)}")
        extend["dropout_ratio"] = ratio
    shapes = param_shapes(sizes, extend.get("use_batchnorm", False))
    n_params = _n_params(shapes, path, f"sizes {str(sizes)[:200]}")
    return {"class": kind, "sizes": sizes, "activation": activation, "weight_init": weight_init, "dtype": dtype,
            "layer_names": layer_names, "n_params": n_params, "weight_decay_lambda": decay, "shapes": shapes,
            **extend}


def _n_params(shapes: dict, path: str, what: str) -> int:
    n_params = sum(math.prod(s) for s in shapes.values())
    if 2 * n_params > MAX_PARAM_BYTES:  # even as float16
        raise CheckpointError(f"{path} records {what}: {n_params} parameters, more than a checkpoint may hold "
                              f"({format_bytes(MAX_PARAM_BYTES)}); refused before reading them")
    return n_params


def _given_architecture(cfg: dict, path: str) -> dict:
    """A given net's record: its class and arrays' shapes, the net itself supplied at loading."""
    def shapes_of(key):
        spec = cfg.get(key)
        if not isinstance(spec, dict) or len(spec) > 10000 or not all(
                isinstance(k, str) and _NAME.fullmatch(k) and ".." not in k and isinstance(s, list) and len(s) <= 32
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in s) for k, s in spec.items()):
            raise _damaged(path, f"{key!r} must map array names to shapes, got {_short(spec)}")
        return {k: tuple(s) for k, s in spec.items()}

    if not isinstance(cfg.get("class"), str) or not isinstance(cfg.get("module"), str) or \
            not isinstance(cfg.get("dtype"), str):
        raise _damaged(path, "a given net's record names its class, module and dtype as strings")
    shapes, buffers = shapes_of("params"), shapes_of("buffers")
    n_params = _n_params({**shapes, **buffers}, path, f"the arrays of a {cfg['class'][:100]}")
    return {"class": cfg["class"], "module": cfg["module"], "given": True, "dtype": cfg["dtype"],
            "n_params": n_params, "shapes": shapes, "buffers": buffers}


def _conv_architecture(cfg: dict, path: str) -> dict:
    """A convnet's record: its constructor's settings, held to the constructor's own checks
    (``simple_conv_shapes``/``deep_conv_shapes``, which allocate nothing)."""
    kind = cfg["class"]
    names = ("input_dim", "conv_param", "hidden_size", "output_size", "weight_init_std") if kind == "SimpleConvNet" \
        else ("input_dim", "conv_params", "hidden_size", "output_size")
    missing = [k for k in names + ("dtype",) if k not in cfg]
    if missing:
        raise _damaged(path, f"config lacks {', '.join(map(repr, missing))}")
    if not isinstance(cfg["dtype"], str):
        raise _damaged(path, f"dtype must be a name such as 'float32', got {_short(cfg['dtype'])}")
    kwargs = {k: cfg[k] for k in names}
    try:
        if kind == "SimpleConvNet":
            if not is_weight_init(kwargs["weight_init_std"]):
                raise ValueError(f"weight_init_std must be a positive finite number, 'he' or 'xavier', got "
                                 f"{_short(kwargs['weight_init_std'])}")
            shapes = simple_conv_shapes(kwargs["input_dim"], kwargs["conv_param"], kwargs["hidden_size"],
                                        kwargs["output_size"])
        else:
            shapes = deep_conv_shapes(kwargs["input_dim"], kwargs["conv_params"], kwargs["hidden_size"],
                                      kwargs["output_size"])
    except (TypeError, ValueError) as e:
        raise _damaged(path, f"its {kind} settings are refused: {e}") from None
    n_params = _n_params(shapes, path, f"a {kind} of {_short(kwargs)[:200]}")
    return {"class": kind, "dtype": cfg["dtype"], "n_params": n_params, "shapes": shapes, "kwargs": kwargs}


def param_shapes(sizes, batchnorm: bool = False) -> dict:
    """``{"W1": (a, b), "b1": (b,), ...}``: the parameters a net of layer widths ``sizes`` has
    (with ``batchnorm``, also ``gamma<i>``, ``beta<i>`` of each hidden layer, after them)."""
    shapes = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        shapes[f"W{i}"], shapes[f"b{i}"] = (a, b), (b,)
    if batchnorm:
        for i, width in enumerate(sizes[1:-1], start=1):
            shapes[f"gamma{i}"], shapes[f"beta{i}"] = (width,), (width,)
    return shapes


def buffer_shapes(arch: dict) -> dict:
    """``{"BatchNorm1/running_mean": (width,), ...}``: the layers' state arrays the net has."""
    if arch.get("given"):
        return arch["buffers"]
    if not arch.get("use_batchnorm"):
        return {}
    return {f"BatchNorm{i}/{k}": (width,) for i, width in enumerate(arch["sizes"][1:-1], start=1)
            for k in ("running_mean", "running_var")}


def state_spec(record: dict, path: str, param_bytes: int):
    """(state meta, {name: (shape, dtype)}, the state cap) of a record, the recorded state arrays
    refused before reading them unless real floating or integer and within the cap."""
    meta = record.get("state", {})
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has a malformed record: its state meta is a {type(meta).__name__}, "
                              "not an object")
    spec = record.get("state_arrays", {})
    if not isinstance(spec, dict):
        raise CheckpointError(f"{path} has a malformed record: 'state_arrays' is a {type(spec).__name__}")
    cap = _state_cap(param_bytes)
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
        fault = dtype_fault(dt, "state")
        if fault:
            raise CheckpointError(f"{path}: state array {name!r} is recorded with {fault}; state arrays must be "
                                  "real floating or integer")
        total += math.prod(s["shape"]) * dt.itemsize
        if total > cap:
            raise CheckpointError(f"{path} records state arrays of more than {format_bytes(cap)}; refused before "
                                  "reading them")
        out[name] = (tuple(s["shape"]), dt)
    return meta, out, cap


def check_members(npz, shapes: dict, spec: dict, buffers: dict | None = None) -> None:
    """The checkpoint holds exactly the record's parameters (``shapes``), the layers' state arrays
    (``buffers``) and the state arrays (``spec``)."""
    members = npz.names
    expected = {f"param/{k}.npy" for k in shapes} | {f"state/{k}.npy" for k in spec} | {META + ".npy"} | \
        {f"buffer/{k}.npy" for k in buffers or {}}
    extra, missing = sorted(set(members) - expected), sorted(expected - set(members))
    if extra or missing:
        params = sorted(n[6:-4] for n in members if n.startswith("param/") and n.endswith(".npy"))
        parts = [f"holds parameters {params}, expected {sorted(shapes)}"] if set(params) != set(shapes) else []
        if extra:
            parts.append(f"unexpected members {extra[:10]}")
        if missing:
            parts.append(f"missing members {missing[:10]}")
        raise CheckpointError(f"{npz.path} {'; '.join(parts)} (the architecture record lists what belongs); "
                              "the file was edited or damaged")

"""Checkpoints: parameters and architecture in one ``.npz``, no pickle, written atomically.

Parameters are saved as host NumPy arrays and the architecture as a JSON string, so a net
trained on a GPU loads onto a laptop's CPU (or any other device) with ``load_net``.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from .nets import MultiLayerNet, TwoLayerNet
from .atomic import write_atomic

__all__ = ["save_net", "load_net", "load_checkpoint", "Checkpoint", "CheckpointError"]

_FORMAT = "xpnet-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or not an xpnet checkpoint."""


def save_net(net, path, *, state=None) -> str:
    """Save ``net`` to ``path`` (``.npz`` is added when missing); returns the path written.

    ``state``: ``{"arrays": {name: host array}, "meta": JSON-able dict}`` saved beside the net in
    the same atomic write (a training run's optimizer, step, RNG and history)."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    config = getattr(net, "config", None)
    if not isinstance(config, dict) or config.get("class") not in ("TwoLayerNet", "MultiLayerNet") \
            or "sizes" not in config:
        raise CheckpointError(
            f"save_net records TwoLayerNet and MultiLayerNet architectures; {net!r} has other or edited layers, "
            "so a checkpoint could not rebuild it. Save its parameters yourself (e.g. numpy.savez of "
            "{k: net.device.to_numpy(v) for k, v in net.params.items()}) and rebuild the layers in code")
    arrays = {f"param/{k}": net.device.to_numpy(v) for k, v in net.params.items()}
    meta = {"format": _FORMAT, "config": config}
    if state is not None:
        arrays.update({f"state/{k}": np.asarray(v) for k, v in state.get("arrays", {}).items()})
        meta["state"] = state.get("meta", {})
    arrays["__meta__"] = np.array(json.dumps(meta))
    write_atomic(path, lambda f: np.savez(f, **arrays))
    return path


@dataclass
class Checkpoint:
    """A loaded checkpoint: the net, and the training state saved with it (empty when none)."""

    net: object
    arrays: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def load_checkpoint(path, device=None, dtype=None) -> Checkpoint:
    """The net and the training state of a checkpoint written by ``save_net``."""
    state_arrays = {}
    net = load_net(path, device, dtype, _state=state_arrays)
    return Checkpoint(net, state_arrays.get("arrays", {}), state_arrays.get("meta", {}))


def load_net(path, device=None, dtype=None, _state=None):
    """Rebuild a saved net on ``device`` (default: the current default device)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__meta__" not in z.files:
                raise CheckpointError(f"{path} is not an xpnet checkpoint (no architecture record)")
            meta = json.loads(str(z["__meta__"]))
            params = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("param/")}
            if _state is not None:
                _state["arrays"] = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("state/")}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path} is damaged or not an .npz checkpoint ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path} has format {fmt!r}; this xpnet reads {_FORMAT}")
    try:
        cfg = meta["config"]
        sizes = [int(v) for v in cfg["sizes"]]
        kind, activation, weight_init = cfg["class"], cfg["activation"], cfg["weight_init"]
        saved_dtype = cfg["dtype"]
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has a damaged architecture record ({type(e).__name__}: {e})") from None
    if kind not in ("TwoLayerNet", "MultiLayerNet") or len(sizes) < 2:
        raise CheckpointError(f"{path} records an unknown architecture ({kind!r}, sizes {sizes})")
    expected = {f"{p}{i}" for i in range(1, len(sizes)) for p in ("W", "b")}
    if set(params) != expected:
        raise CheckpointError(f"{path} holds parameters {sorted(params)}, expected {sorted(expected)}")
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        if params[f"W{i}"].shape != (a, b) or params[f"b{i}"].shape != (b,):
            raise CheckpointError(f"{path}: parameters W{i}/b{i} do not match the saved sizes {sizes}")
    if _state is not None:
        _state["meta"] = meta.get("state") or {}
    dtype = dtype or saved_dtype
    try:
        if kind == "TwoLayerNet" and len(sizes) == 3:
            return TwoLayerNet(*sizes, weight_init, device=device, dtype=dtype, params=params)
        return MultiLayerNet(sizes, activation, weight_init, device=device, dtype=dtype, params=params)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot rebuild the saved net ({e})") from None

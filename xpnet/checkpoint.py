"""Checkpoints: a net's parameters and architecture in one ``.npz`` (DeZero's ``save_weights``
and ``load_weights``), no pickle, written atomically, read back as a hostile file.

Parameters are saved as host NumPy arrays and the architecture as a JSON string, so a net
trained on a GPU loads onto a laptop's CPU (or any other device) with ``load_net``. A checkpoint
can also carry training state (``save_net(net, path, state={"arrays": ..., "meta": ...})``, read
back with ``load_checkpoint``). Loading refuses a damaged or hostile file before it costs memory
(``xpnet.io.npz``: every member's declared size, shape and dtype checked before it is read); the
layout and the checks of the record are ``xpnet.io.checkpoint_format``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .atomic import write_atomic
from .backend import device as get_device
from .exceptions import CheckpointError
from .io.checkpoint_format import (FORMAT, MAX_META_BYTES, MAX_PARAM_BYTES, MAX_STATE_BYTES, META, check_members,
                                   check_state, config_of, param_shapes, read_record, record_text, state_spec)
from .io.npz import open_npz
from .nets import MultiLayerNet, TwoLayerNet

__all__ = ["save_net", "load_net", "load_checkpoint", "checkpoint_meta", "Checkpoint", "CheckpointError",
           "MAX_PARAM_BYTES", "MAX_STATE_BYTES", "MAX_META_BYTES"]


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns: the rebuilt net and the training state saved with it."""

    net: object
    arrays: dict = field(default_factory=dict)  # name -> host NumPy array (the file's state/<name>)
    meta: dict = field(default_factory=dict)    # the JSON state meta, {} when none was saved


def save_net(net, path, *, state=None) -> str:
    """Save ``net`` to ``path`` (``.npz`` is added when missing) in one atomic write; returns the path.

    ``state`` (optional) is ``{"arrays": {name: host NumPy array}, "meta": {JSON data}}``: training
    state saved alongside, read back with ``load_checkpoint``.
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    record = {"format": FORMAT, "config": config_of(net)}
    arrays = {f"param/{k}": net.device.to_numpy(v) for k, v in net.params.items()}
    if state is not None:
        state_arrays, record["state"] = check_state(state, sum(a.nbytes for a in arrays.values()))
        record["state_arrays"] = {k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in state_arrays.items()}
        arrays.update({f"state/{k}": a for k, a in state_arrays.items()})
    arrays[META] = np.array(record_text(record))
    write_atomic(path, lambda f: np.savez(f, **arrays))
    return path


def load_checkpoint(path, device=None, dtype=None) -> Checkpoint:
    """Rebuild a saved net on ``device`` (default: the current default device), with the training
    state saved alongside it: ``Checkpoint(net, arrays, meta)``."""
    path = os.fspath(path)
    dev = get_device(device)
    with open_npz(path) as npz:
        record, arch = read_record(npz)
        shapes = param_shapes(arch["sizes"])
        meta, spec, state_cap = state_spec(record, path, 8 * arch["n_params"])
        check_members(npz, shapes, spec)
        params, used = {}, 0
        for k, s in shapes.items():  # all parameters together stay under the cap
            params[k] = npz.array(f"param/{k}.npy", kind="parameter", shape=s, max_bytes=MAX_PARAM_BYTES - used)
            used += params[k].nbytes
        arrays = {k: npz.array(f"state/{k}.npy", kind="state array", shape=s, dtype=dt, max_bytes=state_cap)
                  for k, (s, dt) in spec.items()}
    return Checkpoint(_rebuild(arch, params, dev, dtype or arch["dtype"], path), arrays, meta)


def load_net(path, device=None, dtype=None):
    """Rebuild a saved net on ``device`` (default: the current default device); ``load_checkpoint``
    also returns the training state saved with it."""
    return load_checkpoint(path, device=device, dtype=dtype).net


def checkpoint_meta(path) -> dict:
    """The training state saved with a net (step, device, random generator, ...), read and
    checked without loading a single array: what a resume needs to know first."""
    path = os.fspath(path)
    with open_npz(path) as npz:
        record, arch = read_record(npz)
        return state_spec(record, path, 8 * arch["n_params"])[0]


def _rebuild(arch: dict, params: dict, dev, dtype, path: str):
    sizes = arch["sizes"]
    try:
        if arch["class"] == "TwoLayerNet":
            return TwoLayerNet(*sizes, arch["weight_init"], device=dev, dtype=dtype, params=params)
        return MultiLayerNet(sizes, arch["activation"], arch["weight_init"], device=dev, dtype=dtype,
                             params=params, layer_names=arch["layer_names"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot rebuild the saved net ({e})") from None

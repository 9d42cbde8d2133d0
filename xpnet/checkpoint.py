"""Checkpoints: a net's parameters and architecture in one ``.npz`` (DeZero's ``save_weights``
and ``load_weights``), no pickle, written atomically, read back as a hostile file.

Parameters are saved as host NumPy arrays and the architecture as a JSON string, so a net
trained on a GPU loads onto a laptop's CPU (or any other device) with ``load_net``. A checkpoint
can also carry training state (``save_net(net, path, state={"arrays": ..., "meta": ...})``, read
back with ``load_checkpoint``); ``save_run``/``load_run`` write and read a whole training run that
way (optimizer state, step, random-generator state, history), which ``Trainer`` resumes from.
Loading refuses a damaged or hostile file before it costs memory (``xpnet.io.npz``: every
member's declared size, shape and dtype checked before it is read); the layout and the checks of
the record are ``xpnet.io.checkpoint_format``.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

import numpy as np

from .atomic import write_atomic
from .backend import device as get_device, device_of
from .exceptions import CheckpointError, CheckpointWriteError, DeviceUnavailableError
from .history import History
from .io.checkpoint_format import (CONV_CLASSES, FORMAT, MAX_META_BYTES, MAX_PARAM_BYTES, MAX_STATE_BYTES, META,
                                   buffer_shapes, check_members, check_state, config_of, read_record, record_text,
                                   state_spec)
from .io.run_format import RUN_FORMAT, check_run_record
from .io.book_pickle import is_pickle, read_book_params
from .io.npy import is_regular_file
from .io.npz import open_npz
from .convnets import DeepConvNet, SimpleConvNet
from .multi_layer_net import MultiLayerNet
from .multi_layer_net_extend import MultiLayerNetExtend
from .two_layer_net import TwoLayerNet

__all__ = ["save_params", "load_params", "save_net", "load_net", "load_checkpoint", "checkpoint_meta", "Checkpoint",
           "CheckpointError", "save_run", "load_run", "SavedRun", "RUN_FORMAT", "MAX_PARAM_BYTES", "MAX_STATE_BYTES",
           "MAX_META_BYTES"]


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns: the rebuilt net and the training state saved with it."""

    net: object
    arrays: dict = field(default_factory=dict)  # name -> host NumPy array (the file's state/<name>)
    meta: dict = field(default_factory=dict)    # the JSON state meta, {} when none was saved


def save_net(net, path, *, state=None) -> str:
    """Save ``net`` to ``path`` (``.npz`` is added when missing) in one atomic write; returns the path.

    xpnet's nets are rebuilt from the file alone (``load_net(path)``). Any other net -- a
    reader's own with the book's ``params``, an ``xpnet.Net`` of any layers -- is saved too: its
    parameters (and layers' state), its class and their shapes; its code builds it again and
    ``load_net(path, net=YourNet(...))`` fills it in. ``state`` (optional) is ``{"arrays": {name:
    host NumPy array}, "meta": {JSON data}}``: training state saved alongside, read back with
    ``load_checkpoint``.
    """
    path = os.fspath(path)
    if os.path.isdir(path) or path.endswith((os.sep, "/")):
        raise ValueError(f"save_net: {path!r} names a folder; give the checkpoint a file name, e.g. "
                         f"{os.path.join(path, 'model.npz')!r}")
    if not path.endswith(".npz"):
        path += ".npz"
    dev = _device_of_net(net)
    params = {k: dev.to_numpy(v) for k, v in net.params.items()}
    buffers = {k: dev.to_numpy(v) for k, v in (net.buffers() if callable(getattr(net, "buffers", None)) else {}).items()
               if v is not None}
    record = {"format": FORMAT, "config": config_of(net, params, buffers)}
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays.update({f"buffer/{k}": v for k, v in buffers.items()})
    generators = net.generator_states() if callable(getattr(net, "generator_states", None)) else {}
    if generators:  # where each dropout's generator stands: a resumed run draws the same masks
        record["generators"] = generators
    if state is not None:
        state_arrays, record["state"] = check_state(state, sum(a.nbytes for a in arrays.values()))
        record["state_arrays"] = {k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in state_arrays.items()}
        arrays.update({f"state/{k}": a for k, a in state_arrays.items()})
    arrays[META] = np.array(record_text(record))
    write_atomic(path, lambda f: np.savez(f, **arrays))
    return path


def _device_of_net(net):
    """xpnet's nets say their device; a reader's is where its parameters are."""
    dev = getattr(net, "device", None)
    if callable(getattr(dev, "to_numpy", None)):
        return dev
    params = getattr(net, "params", None)
    if not isinstance(params, dict) or not params:
        raise TypeError(f"{type(net).__name__} has no params dict of arrays to save")
    return device_of(next(iter(params.values())))


def _saved_path(path) -> str:
    """``path``, or ``path + ".npz"`` where only that exists: what ``save_net(net, path)`` wrote."""
    path = os.fspath(path)
    if not os.path.exists(path) and not path.endswith(".npz") and os.path.isfile(path + ".npz"):
        return path + ".npz"
    return path


def load_checkpoint(path, device=None, dtype=None, net=None) -> Checkpoint:
    """Rebuild a saved net on ``device`` (default: the current default device), with the training
    state saved alongside it: ``Checkpoint(net, arrays, meta)``. ``path`` may leave out the
    ``.npz`` that ``save_net`` added. ``net``: a net built by the code that built the saved one
    (its class, the same parameter names and shapes), filled in place on its own device --
    how a net xpnet does not rebuild (a reader's own) comes back."""
    path = _saved_path(path)
    if net is not None and (device is not None or dtype is not None):
        raise TypeError("load_checkpoint: a given net= keeps its own device and dtype; leave out device= and dtype=")
    dev = get_device(device) if net is None else _device_of_net(net)
    with open_npz(path) as npz:
        record, arch = read_record(npz)
        shapes, buffers = arch["shapes"], buffer_shapes(arch)
        meta, spec, state_cap = state_spec(record, path, 8 * arch["n_params"])
        if arch.get("given") and net is None:
            raise CheckpointError(f"{path} holds a {arch['module']}.{arch['class']}, a net xpnet does not rebuild "
                                  f"(its code does): build it as before and pass it, load_net(path, "
                                  f"net={arch['class']}(...)) or Trainer.resume(path, ..., net=...)")
        if net is not None:
            _check_given(net, arch, path)
        check_members(npz, shapes, spec, buffers)
        params, used = {}, 0
        for k, s in list(shapes.items()) + list(buffers.items()):  # all of them together stay under the cap
            kind = "parameter" if k in shapes else "running statistic"
            params[k] = npz.array(f"{'param' if k in shapes else 'buffer'}/{k}.npy", kind=kind, shape=s,
                                  max_bytes=MAX_PARAM_BYTES - used)
            used += params[k].nbytes
        arrays = {k: npz.array(f"state/{k}.npy", kind="state array", shape=s, dtype=dt, max_bytes=state_cap)
                  for k, (s, dt) in spec.items()}
    if net is None:
        net = _rebuild(arch, {k: params[k] for k in shapes}, dev, dtype or arch["dtype"], path)
    else:
        with dev.scope():
            for k in shapes:
                net.params[k][...] = dev.asarray(params[k], dtype=net.params[k].dtype)
    try:
        if buffers or callable(getattr(net, "load_buffers", None)):
            net.load_buffers({k: params[k] for k in buffers})
        if record.get("generators") or callable(getattr(net, "load_generator_states", None)):
            net.load_generator_states(record.get("generators") or {})
    except (AttributeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: the layers' saved state does not fit the net ({e}); the file was edited "
                              "or damaged") from None
    return Checkpoint(net, arrays, meta)


def _check_given(net, arch: dict, path: str) -> None:
    """A net given to fill: of the saved class, with the saved parameters' names and shapes."""
    saved = arch["class"].rsplit(".", 1)[-1]
    if type(net).__name__ != saved:
        raise CheckpointError(f"{path} holds a {saved}, not a {type(net).__name__}: pass a net of the saved class")
    have = {k: tuple(v.shape) for k, v in net.params.items()}
    want = arch["shapes"]
    if have != want:
        odd = sorted(set(have) ^ set(want)) or [k for k in want if have[k] != want[k]]
        raise CheckpointError(f"{path} holds parameters {_shapes_text(want, odd)}, the given {saved} has "
                              f"{_shapes_text(have, odd)}: build it with the sizes it was saved with")


def _shapes_text(shapes: dict, keys) -> str:
    return ", ".join(f"{k} {shapes[k]}" if k in shapes else f"no {k}" for k in keys[:4])


def load_net(path, device=None, dtype=None, net=None):
    """Rebuild a saved net on ``device`` (default: the current default device), or fill the
    given ``net`` (see ``load_checkpoint``); ``load_checkpoint`` also returns the training
    state saved with it."""
    return load_checkpoint(path, device=device, dtype=dtype, net=net).net


def checkpoint_meta(path) -> dict:
    """The training state saved with a net (step, device, random generator, ...), read and
    checked without loading a single array: what a resume needs to know first."""
    path = _saved_path(path)
    with open_npz(path) as npz:
        record, arch = read_record(npz)
        return state_spec(record, path, 8 * arch["n_params"])[0]


def takes_images(path) -> bool:
    """Whether the net saved at ``path`` is a convnet, which takes images (N, C, H, W): read from
    its record alone. False when the file cannot say (loading it then names the fault)."""
    try:
        with open_npz(os.fspath(path)) as npz:
            return read_record(npz)[1]["class"] in CONV_CLASSES
    except (CheckpointError, OSError):
        return False


def _rebuild(arch: dict, params: dict, dev, dtype, path: str):
    try:
        if arch["class"] in CONV_CLASSES:
            kw = dict(arch["kwargs"])
            if arch["class"] == "DeepConvNet":
                convs = kw.pop("conv_params")
                kw.update({f"conv_param_{i}": cp for i, cp in enumerate(convs, start=1)})
            return {"SimpleConvNet": SimpleConvNet, "DeepConvNet": DeepConvNet}[arch["class"]](
                **kw, device=dev, dtype=dtype, params=params)
        sizes = arch["sizes"]
        if arch["class"] == "TwoLayerNet":
            return TwoLayerNet(*sizes, arch["weight_init"], device=dev, dtype=dtype, params=params)
        kwargs = {"device": dev, "dtype": dtype, "params": params, "layer_names": arch["layer_names"],
                      "weight_decay_lambda": arch.get("weight_decay_lambda", 0)}
        if arch["class"] == "MultiLayerNetExtend":
            return MultiLayerNetExtend(sizes, arch["activation"], arch["weight_init"], use_dropout=arch["use_dropout"],
                                       dropout_ratio=arch["dropout_ratio"], use_batchnorm=arch["use_batchnorm"],
                                       **kwargs)
        return MultiLayerNet(sizes, arch["activation"], arch["weight_init"], **kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot rebuild the saved net ({e})") from None


# -- the book's save_params / load_params ------------------------------------------------
def save_params(net, file_name="params.pkl") -> str:
    """The book's ``save_params``: ``net.params`` as host arrays under their keys, in one atomic
    write of xpnet's ``.npz`` -- never a pickle, whatever the name (the book's ``params.pkl``
    included: ``load_params`` reads it back by its content). Returns the path."""
    path = os.fspath(file_name)
    arrays = {k: net.device.to_numpy(v) for k, v in net.params.items()}
    write_atomic(path, lambda f: np.savez(f, **arrays))
    return path


def load_params(net, file_name="params.pkl") -> None:
    """The book's ``load_params``: the parameters saved in ``file_name`` written into
    ``net.params`` in place (the layers keep computing with the same arrays), converted to the
    net's dtype and device.

    Reads the book's pickles (``ch07/params.pkl``, ``ch08/deep_convnet_params.pkl``) without
    running anything from them (``xpnet.io.book_pickle``), ``save_params``' files and xpnet
    checkpoints. The file is refused unread when larger than the net's parameters could be,
    and as a whole -- before any parameter changes -- when a key is missing or unknown, a shape
    differs or a value is NaN or infinite."""
    path = os.fspath(file_name)
    shapes = {k: tuple(v.shape) for k, v in net.params.items()}
    cap = 2 * 8 * sum(int(np.prod(s)) for s in shapes.values()) + (1 << 20)  # float64, and room for the format
    if os.path.exists(path) and not is_regular_file(path):
        raise CheckpointError(f"{path} is not a regular file (a pipe or a device?); give the file of parameters")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    if head.startswith(b"PK"):
        arrays = _npz_params(path, shapes, cap)
    elif is_pickle(head):
        arrays = read_book_params(path, cap)
    else:
        raise CheckpointError(f"{path} is neither the book's pickle of parameters nor xpnet's .npz")
    _check_params(path, arrays, shapes)
    dev = net.device
    with dev.scope():
        for k, a in arrays.items():
            net.params[k][...] = dev.asarray(a, dtype=net.dtype)


def _npz_params(path, shapes: dict, cap: int) -> dict:
    with open_npz(path) as npz:
        names = set(npz.names)
        prefix = "param/" if META + ".npy" in names else ""  # an xpnet checkpoint, or save_params' file
        keys = [n[len(prefix):-4] for n in names if n.startswith(prefix) and n.endswith(".npy") and n != META + ".npy"]
        _check_params(path, dict.fromkeys(keys), shapes)
        arrays, left = {}, cap
        for k in keys:
            arrays[k] = npz.array(f"{prefix}{k}.npy", kind="parameter", max_bytes=left)  # shapes: _check_params
            left -= arrays[k].nbytes
    return arrays


def _check_params(path, arrays: dict, shapes: dict) -> None:
    """The saved keys are the net's (each named when not), and, once read, of its shapes, finite."""
    missing, unknown = [k for k in shapes if k not in arrays], sorted(k for k in arrays if k not in shapes)
    if unknown:
        raise CheckpointError(f"{path} holds a parameter {unknown[0]!r}, which this net does not have (it has "
                              f"{', '.join(shapes)}): saved from another architecture")
    if missing:
        raise CheckpointError(f"{path} has no parameter {missing[0]!r}, which this net needs (the file holds "
                              f"{', '.join(arrays) or 'none'}): saved from another architecture")
    for k, a in arrays.items():
        if a is None:
            continue
        if tuple(a.shape) != shapes[k]:
            raise CheckpointError(f"{path}: parameter {k!r} has shape {tuple(a.shape)}, this net's is {shapes[k]}: "
                                  "saved from a net of other sizes (build the net with the saved sizes)")
        if not np.isfinite(a).all():
            raise CheckpointError(f"{path}: parameter {k!r} holds NaN or infinite values; the file is damaged")


# -- training runs: a net's checkpoint that also holds where its training stood --------------
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
    data: str = ""         # their fingerprint (``Split.fingerprint``)

    def check_data(self, n_train: int, n_test: int, data: str) -> None:
        """Refuse to continue on other data than the run's: by the number of samples, then by
        the fingerprint of their contents."""
        if (n_train, n_test) != (self.n_train, self.n_test):
            raise ValueError(f"{self.path} was trained on {self.n_train} training and {self.n_test} test samples, "
                             f"not {n_train} and {n_test}: resume on the same data")
        if data != self.data:
            raise ValueError(f"{self.path} was trained on other data of the same size (its fingerprint differs: "
                             "other samples, labels, order or scaling): resume on the very data it was trained on")


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


def load_run(path, device=None, communicator=None, *, net=None, optimizer=None) -> SavedRun:
    """The run ``save_run`` wrote at ``path``, on the device it was trained on (with a
    ``communicator``: this process's ``communicator.device``) or on ``device``, which must be one
    whose random generator continues the saved one; trained by as many processes as
    ``communicator`` has (the global batch would change otherwise).

    ``net``: the net to continue, built as the saved one was (needed for a net xpnet does not
    rebuild, see ``load_checkpoint``); ``optimizer``: one of the saved class to continue (needed
    for a user's own optimizer class). The record is checked whole first (``check_run_record``),
    the parameters and optimizer state must be finite and fit each other."""
    from .optimizers import Optimizer

    meta = checkpoint_meta(path)
    if meta.get("format") != RUN_FORMAT:
        raise ValueError(f"{path} holds a net but no training run to resume (saved by save_net, not by "
                         f"Trainer.fit(checkpoint=...)); train it anew with Trainer(load_net(path), ...)")
    check_run_record(meta, path)
    if net is not None and device is not None:
        raise TypeError("load_run: a given net= continues on its own device; leave out device=")
    dev = _run_device(path, meta, device if net is None else _device_of_net(net), communicator)
    ck = load_checkpoint(path, device=None if net is not None else dev, net=net)
    meta, dev = ck.meta, _device_of_net(ck.net)
    _check_params(path, {k: dev.to_numpy(v) for k, v in ck.net.params.items()},
                  {k: tuple(v.shape) for k, v in ck.net.params.items()})
    bad = next((k for k, a in ck.arrays.items() if not np.isfinite(a).all()), None)
    if bad is not None:
        raise CheckpointError(f"{path}: the optimizer state {bad!r} holds NaN or infinite values; the file is damaged")
    settings, step = dict(meta["trainer"]), meta["step"]
    n_train, n_test, data = settings.pop("n_train"), settings.pop("n_test"), settings.pop("data")
    try:
        with dev.scope():
            state = {k.split("/", 1)[1]: dev.asarray(v) for k, v in ck.arrays.items() if k.startswith("optimizer/")}
        opt = Optimizer.from_state(meta["optimizer"], state, ck.net.params, updated=step > 0, into=optimizer)
        history = History.from_dict(meta["history"])
    except TypeError as e:  # what the caller must supply: the user's own optimizer
        raise CheckpointError(f"{path}: {e}") from None
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: the saved training state is damaged ({e}); the file was edited or "
                              "damaged") from None
    saved_world, world = settings.pop("processes"), (communicator.size if communicator is not None else 1)
    if saved_world != world:
        raise ValueError(f"{path} was trained by {saved_world} process(es) and this resume has {world}: the global "
                         f"batch would change; resume with the same number (mpiexec -n {saved_world}"
                         f"{' ... --distributed' if saved_world > 1 else ', or without mpiexec'})")
    return SavedRun(ck.net, opt, history, step, meta["rng"], settings, n_train, n_test, os.fspath(path), data)


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

"""Mini-batch training that stays on the device (the book's ``train_neuralnet.py`` as a class).

The trainer speaks the book's protocol to any net -- ``params``, ``gradient(x, t)``,
``accuracy(x, t)``, and the loss from ``lastLayer.loss`` (or ``loss(x, t)``) -- so a reader's own
TwoLayerNet trains too. A net that also offers ``backprop(x, t_onehot, dout)`` and
``count_correct(x, labels, batch_size)`` (xpnet's nets) gets the fast path: no checks in the
step, and SGD's learning rate folded into the loss gradient when the optimizer offers it
(``scaled_update``). The data goes to the device once; mini-batch indices are drawn there; the
per-step losses stay there until a reporting point, where one transfer brings a whole chunk
back (and is checked for NaN/inf). Evaluation runs in batches, so memory stays bounded.
"""

from __future__ import annotations

import errno
import json
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields

from .atomic import write_atomic
from .exceptions import CheckpointWriteError, DeviceUnavailableError, TrainingDivergedError, TrainingInterrupted
from .backend import Device, device as get_device, device_of, is_host_data, scoped
from .distributed import Communicator
from .functions import one_hot
from .nets import last_layer_of
from .optimizers import get_optimizer
from .validation import (check_features, check_finite, check_labels, index_labels, non_negative_int,
                         positive_int)

__all__ = ["Trainer", "History", "TrainingDivergedError", "TrainingInterrupted", "CheckpointWriteError"]

_RUN_FORMAT = "xpnet-run-1"


def _resume_device(path, meta, device, communicator):
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


@dataclass
class History:
    """What a run recorded: the book's ``train_loss_list``, ``train_acc_list``, ``test_acc_list``."""

    loss: list = field(default_factory=list)  # per iteration (when recorded)
    train_acc: list = field(default_factory=list)  # per evaluation (epoch)
    test_acc: list = field(default_factory=list)
    eval_iters: list = field(default_factory=list)  # the iteration of each evaluation
    test_loss: list = field(default_factory=list)  # per evaluation, over the whole test set
    step: int = 0  # iterations done when this was written
    verdict: str = ""  # "" (fine) or why the run did not learn (chance-level accuracy)
    wall_time_s: float = 0.0  # the loop and its per-epoch evaluations
    final_train_acc: float | None = None  # after the last iteration (not part of the per-epoch lists)
    final_test_acc: float | None = None
    final_test_loss: float | None = None
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        """A history saved by ``to_dict`` (a checkpoint's); unknown keys are refused."""
        if not isinstance(d, dict):
            raise ValueError(f"a saved history must be a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            raise ValueError(f"a saved history has unknown fields {extra}")
        return cls(**d)

    def save_json(self, path) -> None:
        data = json.dumps(self.to_dict(), indent=1).encode()
        write_atomic(path, lambda f: f.write(data))


def _use_tqdm(progress):
    if progress is False:
        return None
    if progress is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


# A bar that fits 80 columns with its postfix: "100%|####| 10000/10000 00:04<00:00, loss=0.1234, ..."
BAR_FORMAT = "{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {elapsed}<{remaining}{postfix}"
BAR_MAX_COLS = 100


def progress_bar(tqdm, total, file=None, initial=0):
    """The training bar: a fixed width (the terminal's, at most ``BAR_MAX_COLS``) and a short format,
    so percentage, counts, times and the loss/train/test postfix stay on one line at 80 columns."""
    import shutil

    kw = {"total": total, "initial": initial, "unit": "it", "leave": True, "file": file}
    if "notebook" not in getattr(tqdm, "__module__", ""):  # a notebook's widget sizes itself
        kw.update(ncols=min(shutil.get_terminal_size((80, 24)).columns, BAR_MAX_COLS), bar_format=BAR_FORMAT)
    return tqdm(**kw)


class Trainer:
    """Train ``net`` on (x_train, t_train), evaluating on the train and test sets every epoch.

    The defaults are the book's protocol: batch 100 drawn with replacement, SGD with lr 0.1,
    10000 iterations, accuracies every epoch (N / batch_size iterations, 600 for MNIST).
    ``log`` receives one line per evaluation (``print`` by default; ``None`` for silence).
    """

    def __init__(self, net, x_train, t_train, x_test=None, t_test=None, *, optimizer="sgd", lr=None,
                 batch_size=100, iters=10000, eval_interval=None, eval_batch_size=10000,
                 record_loss=True, report_every=100, final_eval=True, seed=0, progress=None, log=print,
                 communicator=None):
        self.net = net
        # data parallel: each of comm.size processes takes its share of a global batch of
        # size * batch_size drawn from the shared seed; gradients are averaged in one allreduce
        self.comm = communicator if communicator is not None else Communicator()
        if self.comm.rank != 0:
            progress, log = False, None  # one voice: rank 0 reports and writes
        params = getattr(net, "params", None)
        missing = [m for m in ("gradient", "accuracy") if not callable(getattr(net, m, None))]
        if not isinstance(params, dict) or not params or missing:
            raise TypeError(f"Trainer needs a net in the book's form: a params dict of arrays and gradient(x, t), "
                            f"accuracy(x, t) methods; {type(net).__name__} lacks "
                            f"{', '.join((['params'] if not isinstance(params, dict) or not params else []) + missing)}")
        first = next(iter(params.values()))
        dev = net.device if isinstance(getattr(net, "device", None), Device) else device_of(first)
        if self.comm.device is not None and self.comm.device.name != dev.name:
            raise ValueError(f"communicator: process {self.comm.rank} of {self.comm.size} reduces on "
                             f"{self.comm.device.name} but the net is on {dev.name}: build the net on "
                             f"communicator.device (on GPUs each process of a machine takes its own)")
        self.device, self.xp, self.dtype = dev, dev.xp, first.dtype
        # xpnet's nets offer a checked-once fast path through two public methods
        self.fast = callable(getattr(net, "backprop", None)) and callable(getattr(net, "count_correct", None))
        self.batch_size = positive_int("batch_size", batch_size)
        self.iters = positive_int("iters", iters)
        self.eval_batch_size = positive_int("eval_batch_size", eval_batch_size)
        report_every = positive_int("report_every", report_every)
        eval_interval = positive_int("eval_interval", eval_interval, allow_none=True)
        self.seed = non_negative_int("seed", seed, allow_none=True)
        if not isinstance(optimizer, str) and lr is not None:
            raise ValueError("lr was given with an optimizer object: set the rate on the optimizer itself")
        if lr is None and isinstance(optimizer, str) and optimizer.lower() == "sgd":
            lr = 0.1  # the book's protocol; other optimizers keep their own defaults
        self.optimizer = get_optimizer(optimizer, lr)
        with dev.scope():
            self.x_train, self.t_train, self.labels_train = self._place(x_train, t_train, "train")
            self.has_test = x_test is not None or t_test is not None
            if self.has_test:
                self.x_test, self.t_test, self.labels_test = self._place(x_test, t_test, "test")
            self.num_classes = self._classes()
            if self.fast:  # one-hot targets built once: a step gathers them with one take
                self._t_train_onehot = one_hot(self.labels_train, self.num_classes, self.dtype, self.xp)
                if self.has_test:
                    self._t_test_onehot = one_hot(self.labels_test, self.num_classes, self.dtype, self.xp)
        n = self.x_train.shape[0]
        self.iter_per_epoch = max(n // (self.batch_size * self.comm.size), 1)  # an epoch of global batches
        self.eval_interval = eval_interval or self.iter_per_epoch
        self.record_loss = record_loss
        self.report_every = min(report_every, self.eval_interval)
        self.progress, self.log, self.final_eval = progress, log, final_eval
        self.history = History(config=self._config())
        self.step = 0  # iterations done
        self._resume_at = None  # set by Trainer.resume: the next fit continues from there
        self._stop_signal = None

    def _place(self, x, t, split):
        """Validate once on arrival and move to the net's device; the step then skips checks.
        Returns (x as (N, D) in the net's dtype, t as given, integer labels)."""
        dev, xp = self.device, self.xp
        if x is None or t is None:
            raise ValueError(f"x_{split} and t_{split} must both be given")
        if not dev.owns(x):
            if not is_host_data(x):
                raise ValueError(f"x_{split} is not on the net's device {dev.name!r}; pass host (NumPy) data "
                                 "or arrays of that device")
            x = dev.asarray(x)
        if not xp.isdtype(x.dtype, "real floating"):
            raise TypeError(f"x_{split} must be floating point (scale images to [0, 1]), got {x.dtype}")
        if x.dtype != self.dtype:  # converted once, on arrival, never inside the step
            x = xp.astype(x, self.dtype)
        d = getattr(self.net, "n_features", None)
        if d is not None:
            check_features(x, d, f"x_{split}")
            if x.ndim != 2:
                x = xp.reshape(x, (-1, d))
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"x_{split} holds no samples (shape {tuple(x.shape)}): pass at least one, "
                             f"samples along the first axis")
        check_finite(x, f"x_{split}", xp)
        if not dev.owns(t):
            if not is_host_data(t):
                raise ValueError(f"t_{split} is not on the net's device {dev.name!r}")
            t = dev.asarray(t)
        n = x.shape[0]
        c = getattr(self.net, "num_classes", None)
        if c is None:  # a reader's net: the labels say how many classes there are
            c = t.shape[1] if t.ndim == 2 else int(xp.max(t)) + 1 if t.shape[0] else 1
        form = check_labels(t, n, c, xp, name=f"t_{split}")
        return x, t, (xp.argmax(t, axis=1) if form == "onehot" else index_labels(t, xp))

    def _classes(self) -> int:
        c = getattr(self.net, "num_classes", None)
        if c is not None:
            return c
        if self.t_train.ndim == 2:
            return self.t_train.shape[1]
        top = int(self.xp.max(self.labels_train))
        if self.has_test:
            top = max(top, int(self.xp.max(self.labels_test)))
        return top + 1

    def _config(self) -> dict:
        opt, net = self.optimizer, self.net
        return {"net": net.config if hasattr(net, "config") else {"class": type(net).__name__},
                "device": self.device.name, "optimizer": type(opt).__name__,
                "lr": getattr(opt, "lr", None), "batch_size": self.batch_size, "iters": self.iters,
                "eval_interval": self.eval_interval, "seed": self.seed,
                "n_train": int(self.x_train.shape[0]), "n_test": int(self.x_test.shape[0]) if self.has_test else 0}

    # -- evaluation ----------------------------------------------------------------------
    @scoped
    def evaluate(self):
        """(train accuracy, test accuracy or None), in batches, on the device."""
        tr = self._accuracy(self.x_train, self.t_train, self.labels_train)
        te = self._accuracy(self.x_test, self.t_test, self.labels_test) if self.has_test else None
        return tr, te

    @scoped
    def evaluate_test(self):
        """(test accuracy, mean test loss) from one forward pass per batch of the test set."""
        x, n, bs, net = self.x_test, self.x_test.shape[0], self.eval_batch_size, self.net
        last = last_layer_of(net)
        if not (self.fast and callable(getattr(net, "forward", None)) and hasattr(last, "forward_onehot")):
            loss = sum(float(net.loss(x[i:min(i + bs, n), ...], self.t_test[i:min(i + bs, n), ...])) * (min(i + bs, n) - i)
                       for i in range(0, n, bs)) / n
            return self._accuracy(x, self.t_test, self.labels_test), loss
        xp, correct, loss = self.xp, None, None
        lo, hi = self._shard(n)
        for i in range(lo, hi, bs):
            j = min(i + bs, hi)
            scores = net.forward(x[i:j, ...])
            c = xp.sum(xp.astype(xp.argmax(scores, axis=1) == self.labels_test[i:j], xp.int64))
            last.forward_onehot(scores, self._t_test_onehot[i:j, ...])
            part = last.loss * (j - i)
            correct = c if correct is None else correct + c
            loss = part if loss is None else loss + part
        c, total = (int(correct), float(loss)) if correct is not None else (0, 0.0)
        c, total = self.comm.allreduce_scalars([c, total])
        return c / n, total / n

    def _shard(self, n):
        """This process's rows of an evaluation set: evaluation is split over the processes."""
        r, size = self.comm.rank, self.comm.size
        return n * r // size, n * (r + 1) // size

    def _accuracy(self, x, t, labels):
        n, bs = x.shape[0], self.eval_batch_size
        if self.fast:
            a, b = self._shard(n)
            correct = self.net.count_correct(x[a:b, ...], labels[a:b], bs)
            return self.comm.allreduce_scalars([correct])[0] / n
        correct = 0  # a reader's net: its own accuracy(), batch by batch, weighted by batch size
        for i in range(0, n, bs):
            j = min(i + bs, n)
            correct += round(float(self.net.accuracy(x[i:j, ...], t[i:j, ...])) * (j - i))
        return correct / n

    # -- the loop ------------------------------------------------------------------------
    @scoped
    def fit(self, checkpoint=None) -> History:
        """Run the protocol: evaluate every ``eval_interval`` steps, report every ``report_every``.

        ``checkpoint``: a path written atomically at every evaluation, at the end, and when
        SIGINT/SIGTERM arrives (then the current chunk of at most ``report_every`` steps ends,
        the checkpoint is written and ``TrainingInterrupted`` raised). ``Trainer.resume(path,
        ...)`` continues such a run to exactly the parameters of an uninterrupted one (on the CPU,
        same data and seed). A failed write raises ``CheckpointWriteError``; the last good
        checkpoint stays.
        """
        if self.comm.size == 1:
            return self._fit(checkpoint)
        try:
            return self._fit(checkpoint)
        except BaseException as e:  # the other processes would wait in the next allreduce forever
            if isinstance(e, (SystemExit, TrainingInterrupted)):
                raise
            print(f"xpnet: rank {self.comm.rank} of {self.comm.size} failed: {type(e).__name__}: {e}; ending the job",
                  file=sys.stderr)
            self.comm.abort(1)
            raise

    def _fit(self, checkpoint=None) -> History:
        """The protocol itself (``fit`` adds the ending of every process on a fault in one)."""
        if self._resume_at is None:
            self.history = History(config=self._config())  # each fit records its own run
            self._rng = self.device.rng(self.seed)
            self.step = 0
        if self._resume_at is None:
            self._last_saved = None  # (a resumed run keeps the step of the checkpoint it came from)
        self._resume_at = None
        hist = self.history
        tqdm = _use_tqdm(self.progress)
        bar = progress_bar(tqdm, self.iters, initial=self.step) if tqdm else None
        t0 = time.perf_counter() - hist.wall_time_s
        try:
            with self._signals_to_checkpoint(checkpoint):
                i = self.step
                while i < self.iters:
                    if i % self.eval_interval == 0 and not (hist.eval_iters and hist.eval_iters[-1] == i):
                        self._eval(i, bar)
                        if checkpoint is not None:
                            hist.wall_time_s = time.perf_counter() - t0
                            self.save_checkpoint(checkpoint)
                    end = min(self.iters, (i // self.report_every + 1) * self.report_every,
                              (i // self.eval_interval + 1) * self.eval_interval)
                    self._report(self.run_steps(end - i), i, bar)
                    i = self.step = hist.step = end
                    stop = self._stop_signal
                    if self.comm.size > 1 and checkpoint is not None:  # all stop at the same step, or none
                        asked = self.comm.allreduce_scalars([stop is not None])[0] > 0
                        if asked and stop is None:  # another process got the signal first
                            stop = self._stop_signal = signal.SIGTERM
                    if stop is not None:
                        self._interrupted(checkpoint, t0)
                self.device.synchronize()
        finally:
            if bar is not None:
                bar.close()
        hist.wall_time_s = time.perf_counter() - t0
        self._check_params_finite(self.iters)
        if self.final_eval:
            hist.final_train_acc = self._accuracy(self.x_train, self.t_train, self.labels_train)
            if self.has_test:
                hist.final_test_acc, hist.final_test_loss = self.evaluate_test()
            hist.verdict = self._verdict(hist.final_train_acc)
            if hist.verdict:
                import warnings

                warnings.warn(hist.verdict, RuntimeWarning, stacklevel=3)
        if checkpoint is not None:
            self.save_checkpoint(checkpoint)
        return hist

    def _verdict(self, train_acc) -> str:
        """Why a finished run did not learn, or "": a collapse that produced no NaN (a huge
        learning rate, say) leaves the accuracy at chance level, and must not pass for a result."""
        c = self.num_classes
        if c > 1 and train_acc <= 1.5 / c and self.iters >= max(200, self.iter_per_epoch):  # long enough to learn
            return (f"the run did not learn: training accuracy {train_acc:.4f} after {self.iters} steps is at "
                    f"chance level for {c} classes; it diverged or is stuck -- try a smaller learning rate "
                    f"(now {getattr(self.optimizer, 'lr', '?')}) or another weight_init")
        return ""

    # -- checkpoints and resuming -----------------------------------------------------
    def save_checkpoint(self, path) -> str:
        """Write the whole run -- parameters, architecture, optimizer state, step, RNG state,
        history -- to ``path`` in one atomic write; returns the path written."""
        from .checkpoint import save_net

        if self.comm.rank != 0:  # every process holds the same run: one writes it
            return str(path)
        opt = self.optimizer
        if not callable(getattr(opt, "state_dict", None)):
            raise TypeError(f"checkpoints need an optimizer with state_dict(); {type(opt).__name__} has none")
        rng = getattr(self, "_rng", None) or self.device.rng(self.seed)
        self._rng = rng
        state = opt.state_dict()
        meta = {"format": _RUN_FORMAT, "step": self.step, "device": self.device.name, "rng": rng.get_state(),
                "optimizer": state["meta"],
                "history": self.history.to_dict(), "trainer": self._settings()}
        arrays = {f"optimizer/{k}": self.device.to_numpy(v) for k, v in state["arrays"].items()}
        try:
            written = save_net(self.net, path, state={"arrays": arrays, "meta": meta})
        except OSError as e:
            kept = f"the last good checkpoint (step {self._last_saved}) is kept" if self._last_saved is not None \
                else "no earlier checkpoint of this run exists"
            why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise CheckpointWriteError(e.errno, f"could not write the checkpoint at step {self.step} to {path}: "
                                                f"{why}; {kept}") from None
        self._last_saved = self.step
        return written

    def _largest_product(self) -> int:
        widths = [w.shape for w in self.net.params.values() if getattr(w, "ndim", 0) == 2]
        return max((a * b for a, b in widths), default=0) * 2 * self.batch_size

    def _settings(self) -> dict:
        return {"batch_size": self.batch_size, "iters": self.iters, "eval_interval": self.eval_interval,
                "eval_batch_size": self.eval_batch_size, "report_every": self.report_every,
                "record_loss": self.record_loss, "final_eval": self.final_eval, "seed": self.seed,
                "n_train": int(self.x_train.shape[0]), "n_test": int(self.x_test.shape[0]) if self.has_test else 0,
                "processes": self.comm.size}

    @classmethod
    def resume(cls, path, x_train, t_train, x_test=None, t_test=None, *, device=None, iters=None,
               progress=None, log=print, communicator=None) -> "Trainer":
        """A trainer that continues the run saved at ``path`` (by ``fit(checkpoint=...)``) on the
        same data: its next ``fit()`` picks up at the saved step with the saved optimizer state,
        random generator and history. ``iters`` may extend the run.

        The run continues on the device it was trained on (with a ``communicator``: this
        process's ``communicator.device``), whatever the default device here is. ``device``
        may name another whose random generator continues the saved one (cpu and
        array_api_strict; cuda:0 and cuda:1); any other is refused, naming both."""
        from .checkpoint import checkpoint_meta, load_checkpoint
        from .optimizers import Optimizer

        meta = checkpoint_meta(path)
        if meta.get("format") != _RUN_FORMAT:
            raise ValueError(f"{path} holds a net but no training run to resume (saved by save_net, not by "
                             f"Trainer.fit(checkpoint=...)); train it anew with Trainer(load_net(path), ...)")
        ck = load_checkpoint(path, device=_resume_device(path, meta, device, communicator))
        meta = ck.meta
        try:
            settings, step = dict(meta["trainer"]), int(meta["step"])
            dev = ck.net.device
            opt = Optimizer.from_state(meta["optimizer"], {k.split("/", 1)[1]: dev.asarray(v) for k, v in
                                                           ck.arrays.items() if k.startswith("optimizer/")})
            history = History.from_dict(meta["history"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: the saved training state is damaged ({type(e).__name__}: {e})") from None
        n_train, n_test = settings.pop("n_train"), settings.pop("n_test")
        saved_world, world = settings.pop("processes", 1), (communicator.size if communicator is not None else 1)
        if saved_world != world:
            raise ValueError(f"{path} was trained by {saved_world} process(es) and this resume has {world}: the global "
                             f"batch would change; resume with the same number (mpiexec -n {saved_world}"
                             f"{' ... --distributed' if saved_world > 1 else ', or without mpiexec'})")
        if iters is not None:
            settings["iters"] = iters
        tr = cls(ck.net, x_train, t_train, x_test, t_test, optimizer=opt, progress=progress, log=log,
                 communicator=communicator, **settings)
        if (int(tr.x_train.shape[0]), int(tr.x_test.shape[0]) if tr.has_test else 0) != (n_train, n_test):
            raise ValueError(f"{path} was trained on {n_train} training and {n_test} test samples, not "
                             f"{tr.x_train.shape[0]} and {tr.x_test.shape[0] if tr.has_test else 0}: resume on the same data")
        if step > tr.iters:
            raise ValueError(f"{path} is at step {step}, past iters={tr.iters}; pass a larger iters to go on")
        tr._rng = tr.device.rng(tr.seed)
        tr._rng.set_state(meta["rng"])
        tr.history, tr.step, tr._resume_at = history, step, step
        tr.history.config = tr._config()
        tr._last_saved = step
        return tr

    def _signals_to_checkpoint(self, checkpoint):
        """While a run writes checkpoints, SIGINT and SIGTERM ask it to stop at the end of the
        current chunk and save, instead of killing it mid-step (main thread only)."""
        import contextlib

        if checkpoint is None or threading.current_thread() is not threading.main_thread():
            return contextlib.nullcontext()
        self._stop_signal = None

        def ask_to_stop(signum, frame):
            if self._stop_signal is not None:  # a second Ctrl-C: stop now
                raise KeyboardInterrupt
            self._stop_signal = signum

        @contextlib.contextmanager
        def installed():
            old = {s: signal.signal(s, ask_to_stop) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, h in old.items():
                    signal.signal(s, h)

        return installed()

    def _interrupted(self, checkpoint, t0):
        name = signal.Signals(self._stop_signal).name
        self._stop_signal = None
        self.history.wall_time_s = time.perf_counter() - t0
        written = self.save_checkpoint(checkpoint)
        raise TrainingInterrupted(f"{name} at step {self.step}: the run is saved in {written}; continue it with "
                                  f"Trainer.resume (xpnet train --resume DIR)", self.step, written)

    @scoped
    def run_steps(self, k: int) -> list:
        """``k`` training steps and nothing else; returns the recorded losses (0-d device arrays
        for xpnet's nets, whatever ``lastLayer.loss`` holds for a reader's).

        The whole hot loop: draw indices on the device, gather the batch, forward and backward,
        update in place. No host transfer, no validation (the data was checked on arrival).
        """
        net, opt = self.net, self.optimizer
        X, n, bs = self.x_train, self.x_train.shape[0], self.batch_size
        rng = getattr(self, "_rng", None) or self.device.rng(self.seed)
        self._rng = rng
        params, take, record = net.params, self.device.take_rows, self.record_loss
        losses = []
        block = max(1, min(k, 256))  # indices for up to 256 steps drawn in one call, then sliced
        comm = self.comm
        world, share = comm.size, comm.rank * bs  # this process's part of each global batch
        if self.fast:
            T = self._t_train_onehot
            plan = opt.scaled_update() if callable(getattr(opt, "scaled_update", None)) else None
            scale, apply = plan if plan is not None else (1.0, opt.update)
            step, last = net.backprop, net.lastLayer
            if world > 1:  # the average over processes: 1/size folded into the loss gradient too
                scale, apply = scale / world, self._averaging(apply)
        else:
            if world > 1:
                raise TypeError("distributed training needs xpnet's nets (backprop, count_correct)")
            T = self.t_train
            last = last_layer_of(net)
            read_last = last is not None and hasattr(last, "loss")
        with self.device.step_scope(self._largest_product(), k):
            for i in range(k):
                j = i % block
                if j == 0:
                    drawn = rng.integers(n, min(block, k - i) * bs * world)
                start = j * bs * world + share
                idx = drawn[start:start + bs]
                x, t = take(X, idx), take(T, idx)
                if self.fast:
                    apply(params, step(x, t, scale))
                    if record:
                        losses.append(last.loss)
                else:
                    opt.update(params, net.gradient(x, t))
                    if record:
                        losses.append(last.loss if read_last else net.loss(x, t))
        return losses

    def _averaging(self, apply):
        """``apply`` after one allreduce of every gradient, packed in a single buffer (allocated
        once, at the first step: every step writes into the same memory)."""
        xp, comm, dev = self.xp, self.comm, self.device
        flat, views = None, None

        def reduced(params, grads):
            nonlocal flat, views
            if flat is None:
                keys = list(grads)
                sizes = [math.prod(grads[key].shape) for key in keys]
                flat = xp.empty((sum(sizes),), dtype=grads[keys[0]].dtype, device=dev.native)
                bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
                views = [(key, bounds[i], bounds[i + 1], grads[key].shape) for i, key in enumerate(keys)]
            for key, a, b, _ in views:
                flat[a:b] = xp.reshape(grads[key], (-1,))
            comm.allreduce_sum_(flat, dev)
            apply(params, {key: xp.reshape(flat[a:b], shape) for key, a, b, shape in views})

        return reduced

    def _report(self, pending, start, bar):
        """Bring a chunk of losses to the host (one transfer), check them, show progress."""
        if not pending and bar is None:
            return
        if pending:
            if all(self.device.owns(v) for v in pending):
                chunk = [float(v) for v in self.device.to_numpy(self.xp.stack(pending)).tolist()]
            else:
                chunk = [float(v) for v in pending]
            if self.comm.size > 1:  # each process saw its share: the global batch's loss is the mean
                chunk = [v / self.comm.size for v in self.comm.allreduce_scalars(chunk)]
            bad = next((j for j, v in enumerate(chunk) if not math.isfinite(v)), None)
            if bad is not None:
                raise TrainingDivergedError(
                    f"the loss became {chunk[bad]} at iteration {start + bad}; training diverged. "
                    f"Try a smaller learning rate (now {getattr(self.optimizer, 'lr', '?')}).")
            self.history.loss.extend(chunk)
        if bar is not None:
            bar.update(start + len(pending) - bar.n)
            post = {}
            if self.history.loss:
                post["loss"] = f"{self.history.loss[-1]:.4f}"
            if self.history.train_acc:
                post["train"] = f"{self.history.train_acc[-1]:.4f}"
                if self.history.test_acc:
                    post["test"] = f"{self.history.test_acc[-1]:.4f}"
            bar.set_postfix(post, refresh=False)

    def _check_params_finite(self, i):
        if self.record_loss:
            return
        xp = self.xp
        if not all(bool(xp.all(xp.isfinite(p))) for p in self.net.params.values()):
            raise TrainingDivergedError(f"the parameters became NaN/inf by iteration {i}; "
                                        f"try a smaller learning rate (now {getattr(self.optimizer, 'lr', '?')}).")

    @scoped
    def _eval(self, i, bar):
        self._check_params_finite(i)
        tr = self._accuracy(self.x_train, self.t_train, self.labels_train)
        te, te_loss = self.evaluate_test() if self.has_test else (None, None)
        h = self.history
        h.eval_iters.append(i)
        h.train_acc.append(tr)
        if te is not None:
            h.test_acc.append(te)
            h.test_loss.append(te_loss)
        if self.log is not None:
            epoch = i // self.iter_per_epoch
            line = f"epoch {epoch:>3} (iter {i:>6}): train acc {tr:.4f}" + (
                f", test acc {te:.4f}, test loss {te_loss:.4f}" if te is not None else "")
            (bar.write if bar is not None else self.log)(line)

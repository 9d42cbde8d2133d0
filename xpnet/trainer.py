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

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field

from .atomic import write_atomic
from .device import Device, device_of, is_host_data, scoped
from .functions import one_hot
from .optimizers import get_optimizer
from .validation import check_features, check_labels, non_negative_int, positive_int

__all__ = ["Trainer", "History", "TrainingDivergedError"]


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite."""


@dataclass
class History:
    """What a run recorded: the book's ``train_loss_list``, ``train_acc_list``, ``test_acc_list``."""

    loss: list = field(default_factory=list)  # per iteration (when recorded)
    train_acc: list = field(default_factory=list)  # per evaluation (epoch)
    test_acc: list = field(default_factory=list)
    eval_iters: list = field(default_factory=list)  # the iteration of each evaluation
    wall_time_s: float = 0.0  # the loop and its per-epoch evaluations
    final_train_acc: float | None = None  # after the last iteration (not part of the per-epoch lists)
    final_test_acc: float | None = None
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

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


def progress_bar(tqdm, total, file=None):
    """The training bar: a fixed width (the terminal's, at most ``BAR_MAX_COLS``) and a short format,
    so percentage, counts, times and the loss/train/test postfix stay on one line at 80 columns."""
    import shutil

    kw = {"total": total, "unit": "it", "leave": True, "file": file}
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
                 record_loss=True, report_every=100, final_eval=True, seed=0, progress=None, log=print):
        self.net = net
        params = getattr(net, "params", None)
        missing = [m for m in ("gradient", "accuracy") if not callable(getattr(net, m, None))]
        if not isinstance(params, dict) or not params or missing:
            raise TypeError(f"Trainer needs a net in the book's form: a params dict of arrays and gradient(x, t), "
                            f"accuracy(x, t) methods; {type(net).__name__} lacks "
                            f"{', '.join((['params'] if not isinstance(params, dict) or not params else []) + missing)}")
        first = next(iter(params.values()))
        dev = net.device if isinstance(getattr(net, "device", None), Device) else device_of(first)
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
            if self.fast:  # one-hot training targets built once: a step gathers them with one take
                self._t_train_onehot = one_hot(self.labels_train, self.num_classes, self.dtype, self.xp)
        n = self.x_train.shape[0]
        self.iter_per_epoch = max(n // self.batch_size, 1)
        self.eval_interval = eval_interval or self.iter_per_epoch
        self.record_loss = record_loss
        self.report_every = min(report_every, self.eval_interval)
        self.progress, self.log, self.final_eval = progress, log, final_eval
        self.history = History(config=self._config())

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
        if not bool(xp.all(xp.isfinite(x))):
            raise ValueError(f"x_{split} holds NaN or infinite values: clean the data before training")
        if not dev.owns(t):
            if not is_host_data(t):
                raise ValueError(f"t_{split} is not on the net's device {dev.name!r}")
            t = dev.asarray(t)
        n = x.shape[0]
        c = getattr(self.net, "num_classes", None)
        if c is None:  # a reader's net: the labels say how many classes there are
            c = t.shape[1] if t.ndim == 2 else int(xp.max(t)) + 1 if t.shape[0] else 1
        form = check_labels(t, n, c, xp, name=f"t_{split}")
        return x, t, (xp.argmax(t, axis=1) if form == "onehot" else t)

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

    def _accuracy(self, x, t, labels):
        n, bs = x.shape[0], self.eval_batch_size
        if self.fast:
            return self.net.count_correct(x, labels, bs) / n
        correct = 0  # a reader's net: its own accuracy(), batch by batch, weighted by batch size
        for i in range(0, n, bs):
            j = min(i + bs, n)
            correct += round(float(self.net.accuracy(x[i:j, ...], t[i:j, ...])) * (j - i))
        return correct / n

    # -- the loop ------------------------------------------------------------------------
    @scoped
    def fit(self) -> History:
        """Run the protocol: evaluate every ``eval_interval`` steps, report every ``report_every``."""
        hist = self.history = History(config=self._config())  # each fit records its own run
        tqdm = _use_tqdm(self.progress)
        bar = progress_bar(tqdm, self.iters) if tqdm else None
        self._rng = self.device.rng(self.seed)
        t0 = time.perf_counter()
        try:
            i = 0
            while i < self.iters:
                if i % self.eval_interval == 0:
                    self._eval(i, bar)
                end = min(self.iters, (i // self.report_every + 1) * self.report_every,
                          (i // self.eval_interval + 1) * self.eval_interval)
                self._report(self.run_steps(end - i), i, bar)
                i = end
            self.device.synchronize()
        finally:
            if bar is not None:
                bar.close()
        hist.wall_time_s = time.perf_counter() - t0
        self._check_params_finite(self.iters)
        if self.final_eval:
            hist.final_train_acc, hist.final_test_acc = self.evaluate()
        return hist

    @scoped
    def run_steps(self, k: int) -> list:
        """``k`` training steps and nothing else; returns the recorded losses (0-d device arrays
        for xpnet's nets, whatever ``lastLayer.loss`` holds for a reader's).

        The whole hot loop: draw indices on the device, gather the batch, forward and backward,
        update in place. No host transfer, no validation (the data was checked on arrival).
        """
        net, xp, opt = self.net, self.xp, self.optimizer
        X, n, bs = self.x_train, self.x_train.shape[0], self.batch_size
        rng = getattr(self, "_rng", None) or self.device.rng(self.seed)
        self._rng = rng
        params, take, record = net.params, xp.take, self.record_loss
        losses = []
        block = max(1, min(k, 256))  # indices for up to 256 steps drawn in one call, then sliced
        if self.fast:
            T = self._t_train_onehot
            plan = opt.scaled_update() if callable(getattr(opt, "scaled_update", None)) else None
            scale, apply = plan if plan is not None else (1.0, opt.update)
            step, last = net.backprop, net.lastLayer
        else:
            T = self.t_train
            last = getattr(net, "lastLayer", None)
            read_last = last is not None and hasattr(last, "loss")
        widths = [w.shape for w in params.values() if getattr(w, "ndim", 0) == 2]
        largest = max((a * b for a, b in widths), default=0) * 2 * bs
        with self.device.step_scope(largest, k):
            for i in range(k):
                j = i % block
                if j == 0:
                    drawn = rng.integers(n, min(block, k - i) * bs)
                idx = drawn[j * bs:(j + 1) * bs]
                x, t = take(X, idx, axis=0), take(T, idx, axis=0)
                if self.fast:
                    apply(params, step(x, t, scale))
                    if record:
                        losses.append(last.loss)
                else:
                    opt.update(params, net.gradient(x, t))
                    if record:
                        losses.append(last.loss if read_last else net.loss(x, t))
        return losses

    def _report(self, pending, start, bar):
        """Bring a chunk of losses to the host (one transfer), check them, show progress."""
        if not pending and bar is None:
            return
        if pending:
            if all(self.device.owns(v) for v in pending):
                chunk = [float(v) for v in self.device.to_numpy(self.xp.stack(pending)).tolist()]
            else:
                chunk = [float(v) for v in pending]
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

    def _eval(self, i, bar):
        self._check_params_finite(i)
        tr, te = self.evaluate()
        h = self.history
        h.eval_iters.append(i)
        h.train_acc.append(tr)
        if te is not None:
            h.test_acc.append(te)
        if self.log is not None:
            epoch = i // self.iter_per_epoch
            line = f"epoch {epoch:>3} (iter {i:>6}): train acc {tr:.4f}" + (
                f", test acc {te:.4f}" if te is not None else "")
            (bar.write if bar is not None else self.log)(line)

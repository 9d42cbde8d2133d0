"""Mini-batch training that stays on the device (the book's ``train_neuralnet.py`` as a class).

The data goes to the device once; mini-batch indices are drawn there; the per-step losses
stay there until a reporting point, where one transfer brings a whole chunk back (and is
checked for NaN/inf). Evaluation runs in batches, so memory stays bounded.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field

from .validation import check_features, check_labels
from .atomic import write_atomic
from .device import is_host_data
from .optimizers import SGD, get_optimizer

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
        dev, xp = net.device, net.xp
        self.device, self.xp = dev, xp
        for name, v in (("batch_size", batch_size), ("iters", iters), ("eval_batch_size", eval_batch_size),
                        ("report_every", report_every)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(optimizer, str) and lr is not None:
            raise ValueError("lr was given with an optimizer object: set the rate on the optimizer itself")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        if lr is None and isinstance(optimizer, str) and optimizer.lower() == "sgd":
            lr = 0.1  # the book's protocol; other optimizers keep their own defaults
        self.optimizer = get_optimizer(optimizer, lr)
        self.x_train, self.t_train = self._place(x_train, t_train, "train")
        self.has_test = x_test is not None
        if self.has_test:
            self.x_test, self.t_test = self._place(x_test, t_test, "test")
        n = self.x_train.shape[0]
        self.batch_size, self.iters = batch_size, iters
        self.iter_per_epoch = max(n // batch_size, 1)
        self.eval_interval = eval_interval or self.iter_per_epoch
        if isinstance(self.eval_interval, bool) or not isinstance(self.eval_interval, int) or self.eval_interval < 1:
            raise ValueError(f"eval_interval must be a positive integer, got {eval_interval!r}")
        self.eval_batch_size, self.record_loss = eval_batch_size, record_loss
        self.report_every = min(report_every, self.eval_interval)
        self.seed, self.progress, self.log, self.final_eval = seed, progress, log, final_eval
        # one-hot training labels, built once, so a step gathers its targets with one take
        with dev.scope():
            classes = xp.arange(net.num_classes, dtype=self.t_train.dtype, device=self.t_train.device)
            self._t_train_onehot = xp.astype(self.t_train[:, None] == classes, net.dtype)
        self.history = History(config=self._config())

    def _place(self, x, t, split):
        """Validate once on arrival and move to the net's device; the step then skips checks."""
        with self.device.scope():
            return self._place_in_scope(x, t, split)

    def _place_in_scope(self, x, t, split):
        net, dev, xp = self.net, self.device, self.xp
        if x is None or t is None:
            raise ValueError(f"x_{split} and t_{split} must both be given")
        if not dev.owns(x):
            if not is_host_data(x):
                raise ValueError(f"x_{split} is not on the net's device {dev.name!r}; pass host (NumPy) data "
                                 "or arrays of that device")
            x = dev.asarray(x)
        if not xp.isdtype(x.dtype, "real floating"):
            raise TypeError(f"x_{split} must be floating point (scale images to [0, 1]), got {x.dtype}")
        if x.dtype != net.dtype:  # converted once, on arrival, never inside the step
            x = xp.astype(x, net.dtype)
        check_features(x, net.sizes[0], f"x_{split}")
        if x.ndim > 1 and x.shape[0] == 0:
            raise ValueError(f"x_{split} holds no samples")
        if x.ndim != 2:
            x = xp.reshape(x, (-1, net.sizes[0]))
        t = dev.asarray(t) if is_host_data(t) and not dev.owns(t) else t
        if not dev.owns(t):
            raise ValueError(f"t_{split} is not on the net's device {dev.name!r}")
        if check_labels(t, x.shape[0], net.num_classes, xp) == "onehot":
            t = xp.argmax(t, axis=1)
        return x, t

    def _config(self) -> dict:
        opt = self.optimizer
        return {"net": self.net.config, "device": self.device.name, "optimizer": type(opt).__name__,
                "lr": getattr(opt, "lr", None), "batch_size": self.batch_size, "iters": self.iters,
                "eval_interval": self.eval_interval, "seed": self.seed,
                "n_train": int(self.x_train.shape[0]), "n_test": int(self.x_test.shape[0]) if self.has_test else 0}

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(self):
        """(train accuracy, test accuracy or None), in batches, on the device."""
        with self.device.scope():
            return self._evaluate()

    def _evaluate(self):
        net = self.net
        tr = net._count_correct(self.x_train, self.t_train, "index", self.eval_batch_size) / self.x_train.shape[0]
        te = None
        if self.has_test:
            te = net._count_correct(self.x_test, self.t_test, "index", self.eval_batch_size) / self.x_test.shape[0]
        return tr, te

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> History:
        """Run the protocol: evaluate every ``eval_interval`` steps, report every ``report_every``."""
        with self.device.scope():  # on cuda:N every array op, reports included, runs on GPU N
            return self._fit()

    def _fit(self) -> History:
        hist = self.history = History(config=self._config())  # each fit records its own run
        tqdm = _use_tqdm(self.progress)
        bar = tqdm(total=self.iters, unit="it", leave=True, dynamic_ncols=True) if tqdm else None
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

    def run_steps(self, k: int) -> list:
        """``k`` training steps and nothing else; returns the losses as 0-d device arrays.

        The whole hot loop: draw indices on the device, gather the batch, forward and backward,
        update in place. No host transfer, no validation (the data was checked on arrival).
        """
        net, xp, opt = self.net, self.xp, self.optimizer
        X, T1 = self.x_train, self._t_train_onehot
        n, bs = X.shape[0], self.batch_size
        rng = getattr(self, "_rng", None) or self.device.rng(self.seed)
        self._rng = rng
        params, update = net.params, opt.update
        step, take, record = net._forward_backward, xp.take, self.record_loss
        # plain SGD: fold -lr into the loss gradient, so the update is one in-place subtraction
        fold = type(opt) is SGD  # exactly SGD: a subclass may have its own update
        scale = opt.lr if fold else 1.0
        losses = []
        largest = max(a * b for a, b in zip(net.sizes[:-1], net.sizes[1:])) * 2 * bs
        block = max(1, min(k, 256))  # indices for up to 256 steps drawn in one call, then sliced
        with self.device.step_scope(largest):
            for i in range(k):
                j = i % block
                if j == 0:
                    drawn = rng.integers(n, min(block, k - i) * bs)
                idx = drawn[j * bs:(j + 1) * bs]
                loss = step(take(X, idx, axis=0), take(T1, idx, axis=0), record, scale)
                if fold:
                    opt.update_folded(params, net.grads)
                else:
                    update(params, net.grads)
                if record:
                    losses.append(loss)
        return losses

    def _report(self, pending, start, bar):
        """Bring a chunk of losses to the host (one transfer), check them, show progress."""
        if not pending and bar is None:
            return
        if pending:
            chunk = [float(v) for v in self.device.to_numpy(self.xp.stack(pending)).tolist()]
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


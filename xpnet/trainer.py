"""Mini-batch training that stays on the device: the book's ``common/trainer.py``, and more.

Two ways in (``trainer_args`` tells them apart): the book's call, then ``train()`` or
``train_step()``, printing and recording what the book's does; or xpnet's keywords and ``fit()``,
with checkpoints, ``resume``, a progress bar and data parallelism. Either speaks the book's
protocol to any net, so a reader's own net trains too; a net with xpnet's fast path
(``protocols.FastNet``) gets it: no checks in the step, SGD's learning rate folded into the loss
gradient (``scaled_update``). The data goes to the device once, batches are drawn there, and the
per-step losses stay there until one transfer brings a chunk back to be checked for NaN/inf.
"""

from __future__ import annotations

import math
import os
import time

from .backend import device_of, scoped
from .checkpoint import load_run, save_run
from .distributed import Communicator, averaging, fault_ends_job, same_on_every_process
from .evaluation import accuracy, accuracy_and_loss
from .exceptions import (CheckpointError, CheckpointWriteError, DistributedError, TrainingDivergedError,
                         TrainingInterrupted)
from .history import History
from .interrupts import signals_to_stop
from .nets import last_layer_of
from .progress import epoch_line, progress_bar, show_progress, tqdm_for
from .protocols import is_fast_net, require_book_net
from .splits import class_count, place
from .trainer_args import Default as _D, book_schedule, optimizer_of, split_forms, wrong_form
from .validation import non_negative_int, positive_int
from .verdicts import GRADCHECK_HINT, chance_level, check_grads_fit, check_losses, check_params, warn_outside

__all__ = ["Trainer", "History", "TrainingDivergedError", "TrainingInterrupted", "CheckpointWriteError",
           "progress_bar"]


class Trainer:
    """Train ``net`` on (x_train, t_train), evaluating on the train and test sets every epoch.

    The data: ``net`` (the book's ``network``, also its keyword) with ``params``, ``gradient``
    and ``accuracy``; ``x_train``, ``t_train`` (samples along the first axis, any rank; integer
    labels or one-hot rows), ``x_test``, ``t_test`` (optional in xpnet's form); host (NumPy)
    arrays or arrays of the net's device. ``optimizer``: a name (any case) or an object with
    ``update(params, grads)``; ``seed``: the mini-batch draws (default 0); ``eval_batch_size``:
    rows per evaluation batch (10000; a net's own ``eval_batch_size`` where it has one, as the convnets'
    100), bounding memory. These three go with either form.

    The book's form (``train()``, ``train_step()``): ``epochs`` (20) of
    ``max_iter = int(epochs * iter_per_epoch)`` steps, ``iter_per_epoch = max(train_size /
    mini_batch_size, 1)``; ``mini_batch_size`` (100); ``optimizer_param`` (``{'lr': 0.01}``), the
    optimizer's settings; ``evaluate_sample_num_per_epoch`` (None: all), how many samples of each
    set the epoch check evaluates; ``verbose`` (True): print the book's lines. As in the book,
    each step's loss is computed once more after the update, and that is the one recorded.

    xpnet's form (``fit()``; the defaults are the book's ``train_neuralnet.py``): ``lr`` (0.1
    for SGD, the optimizer's own default otherwise); ``batch_size`` (100, drawn with
    replacement); ``iters`` (10000); ``eval_interval`` (an epoch, N / batch_size steps);
    ``record_loss`` (True: every step's loss); ``report_every`` (100): steps between loss
    transfers and checks; ``final_eval`` (True): accuracies and test loss after the last step;
    ``progress`` (None: a tqdm bar on a terminal); ``log`` (``print``; None for silence): one line
    per evaluation; ``communicator`` (None: one process): data parallelism, see ``distributed``.
    """

    def __init__(self, net=None, x_train=None, t_train=None, x_test=None, t_test=None, *book_args,
                 optimizer=_D("sgd"), lr=_D(None), batch_size=_D(100), iters=_D(10000), eval_interval=_D(None),
                 eval_batch_size=_D(None), record_loss=_D(True), report_every=_D(100), final_eval=_D(True),
                 seed=_D(0), progress=_D(None), log=_D(print), communicator=_D(None), network=None,
                 epochs=_D(20), mini_batch_size=_D(100), optimizer_param=_D({"lr": 0.01}),
                 evaluate_sample_num_per_epoch=_D(None), verbose=_D(True)):
        self.book, o, given = split_forms(book_args, {
            "optimizer": optimizer, "lr": lr, "batch_size": batch_size, "iters": iters, "eval_interval": eval_interval,
            "eval_batch_size": eval_batch_size, "record_loss": record_loss, "report_every": report_every,
            "final_eval": final_eval, "seed": seed, "progress": progress, "log": log, "communicator": communicator,
            "epochs": epochs, "mini_batch_size": mini_batch_size, "optimizer_param": optimizer_param,
            "evaluate_sample_num_per_epoch": evaluate_sample_num_per_epoch, "verbose": verbose})
        if network is not None and net is not None:
            raise TypeError("Trainer got net and network (the book's name for it): pass the net once")
        self.net = net = network if network is not None else net
        # data parallel: each of comm.size processes takes its share of a global batch of
        # size * batch_size drawn from the shared seed; gradients are averaged in one allreduce
        comm = o["communicator"]
        self.comm = comm if comm is not None else Communicator()
        if self.comm.rank != 0:
            o["progress"], o["log"] = False, None  # one voice: rank 0 reports and writes
        require_book_net(net, "Trainer")
        first = next(iter(net.params.values()))
        self.fast = is_fast_net(net)  # xpnet's nets: a step checked once, on arrival
        self._hint = "" if self.fast and all(type(v).__module__.startswith("xpnet.") for v in net.layers.values()) \
            else GRADCHECK_HINT  # layers of the user's own: a failure may be a wrong backward
        dev = net.device if self.fast else device_of(first)
        if self.comm.device is not None and self.comm.device.name != dev.name:
            raise ValueError(f"communicator: process {self.comm.rank} of {self.comm.size} reduces on "
                             f"{self.comm.device.name} but the net is on {dev.name}: build the net on "
                             f"communicator.device (on GPUs each process of a machine takes its own)")
        self.device, self.xp, self.dtype = dev, dev.xp, first.dtype
        self.batch_size = positive_int(*(("mini_batch_size", o["mini_batch_size"]) if self.book else
                                         ("batch_size", o["batch_size"])))
        self.iters = positive_int("iters", o["iters"])
        self.eval_batch_size = positive_int("eval_batch_size", o["eval_batch_size"], allow_none=True) or \
            getattr(net, "eval_batch_size", 10000)  # a convnet's: the images its im2col handles fastest
        report_every = positive_int("report_every", o["report_every"])
        eval_interval = positive_int("eval_interval", o["eval_interval"], allow_none=True)
        self.seed = non_negative_int("seed", o["seed"], allow_none=True)
        self.optimizer = optimizer_of(self.book, o, given)
        d, c = (net.n_features, net.num_classes) if self.fast else (None, None)
        with dev.scope():  # checked once, on arrival: the steps check nothing
            self.train_set = place(x_train, t_train, "train", dev, self.dtype, d, c)
            self.test_set = place(x_test, t_test, "test", dev, self.dtype, d, c) \
                if x_test is not None or t_test is not None else None
            self.num_classes = class_count(self.train_set, self.test_set, c, self.xp)
            if self.fast:  # one-hot targets built once: a step gathers them with one take
                for split in (self.train_set, self.test_set):
                    if split is not None:
                        split.with_onehot(self.num_classes, self.dtype, self.xp)
        n = len(self.train_set)
        self.epochs = self.verbose = self.evaluate_sample_num_per_epoch = None
        if self.book:
            if self.test_set is None:
                raise TypeError("the book's Trainer evaluates on a test set every epoch: pass x_test and t_test")
            # the book's float arithmetic; eval_interval: the steps between its epoch checks
            self.iter_per_epoch, self.iters, self.eval_interval = book_schedule(n, self.batch_size, o["epochs"])
            self.epochs, self.verbose = o["epochs"], bool(o["verbose"])
            self.evaluate_sample_num_per_epoch = positive_int("evaluate_sample_num_per_epoch",
                                                              o["evaluate_sample_num_per_epoch"], allow_none=True)
            o.update(record_loss=True, progress=False, log=None, final_eval=False)
        else:
            self.iter_per_epoch = max(n // (self.batch_size * self.comm.size), 1)  # an epoch of global batches
            self.eval_interval = eval_interval or self.iter_per_epoch
        self.record_loss = o["record_loss"]
        self.report_every = min(report_every, self.eval_interval)
        self.progress, self.log, self.final_eval = o["progress"], o["log"], o["final_eval"]
        self.data_dir = None  # where the data came from, when a caller says (the CLI): the history records it
        self.history = History(config=self._config())
        self.step = 0  # iterations done
        self._rng = None  # the device generator drawing the batches, made at the first step
        self._resume_at = None  # set by Trainer.resume: the next fit continues from there
        self._last_saved = None  # the step of the last checkpoint written
        self._data_fingerprint = None  # taken at the first checkpoint (and checked by a resume)
        if self.comm.size > 1:
            self._same_run_everywhere()

    def _same_run_everywhere(self) -> None:
        """Data parallelism needs every process to run the same training: one small collective
        compares the settings and the data's and net's fingerprints. An unseeded net (``seed``
        None) takes rank 0's initial weights, an unseeded run rank 0's batches."""
        import hashlib

        opt, dev = self.optimizer, self.device
        weights = hashlib.blake2b(digest_size=16)
        for p in self.net.params.values():
            weights.update(dev.to_numpy(p).tobytes())
        meta = opt.state_dict()["meta"] if callable(getattr(opt, "state_dict", None)) else {"class": type(opt).__name__}
        settings = {**{"optimizer" if k == "class" else k: v for k, v in meta.items()}, "seed": self.seed,
                    "batch_size": self.batch_size, "iters": self.iters,
                    "eval_interval": self.eval_interval, "eval_batch_size": self.eval_batch_size,
                    "report_every": self.report_every, "record_loss": self.record_loss, "final_eval": self.final_eval,
                    "net": self._config()["net"], **self._sizes(), "data": self._fingerprint()}
        every = same_on_every_process(self.comm, settings, {"weights": weights.hexdigest(),
                                                            "seed": int.from_bytes(os.urandom(7), "little")})
        if self.seed is None:
            self.seed = every[0]["seed"]  # the global batches drawn alike on every process
        other = next((r for r, e in enumerate(every) if e["weights"] != every[0]["weights"]), None)
        if other is None:
            return
        if getattr(self.net, "seed", None) is not None:
            raise DistributedError(f"the net's initial weights differ between the processes (rank {other}'s are not "
                                   "rank 0's) although it was built with a seed: build it with one seed on every "
                                   "process (or seed=None: then rank 0's weights are given to all)",
                                   rank=self.comm.rank)
        with dev.scope():  # rank 0's weights to every process: the others add zeros to them
            for p in self.net.params.values():
                if self.comm.rank != 0:
                    p[...] = 0
                self.comm.allreduce_sum_(p, dev)

    # -- the book's names ----------------------------------------------------------------
    network = property(lambda self: self.net, doc="The net, under the book's name.")
    current_iter = property(lambda self: self.step, doc="Steps done (the book's name).")
    max_iter = property(lambda self: self.iters, doc="Steps a run takes (the book's name).")
    current_epoch = property(lambda self: len(self.history.eval_iters),
                             doc="Evaluations done: the book counts an epoch at each.")
    train_size = property(lambda self: len(self.train_set), doc="Training samples.")
    x_train = property(lambda self: self.train_set.x, doc="The training samples on the device.")
    t_train = property(lambda self: self.train_set.t, doc="Their labels, as given.")
    x_test = property(lambda self: self.test_set.x if self.test_set is not None else None)
    t_test = property(lambda self: self.test_set.t if self.test_set is not None else None)
    train_loss_list = property(lambda self: self.history.train_loss_list, doc="Each step's loss.")
    train_acc_list = property(lambda self: self.history.train_acc_list, doc="Each epoch's training accuracy.")
    test_acc_list = property(lambda self: self.history.test_acc_list, doc="Each epoch's test accuracy.")

    def _form(self, book: bool, method: str) -> None:
        if self.book != book:
            raise wrong_form(method, book)

    def _config(self) -> dict:
        opt, net = self.optimizer, self.net
        return {"net": getattr(net, "config", None) or {"class": type(net).__name__},
                "device": self.device.name, "optimizer": type(opt).__name__,
                "lr": getattr(opt, "lr", None), "batch_size": self.batch_size, "iters": self.iters,
                "eval_interval": self.eval_interval, "seed": self.seed,
                **self._sizes(), **({"data_dir": self.data_dir} if self.data_dir else {})}

    def _sizes(self) -> dict:
        return {"n_train": len(self.train_set), "n_test": len(self.test_set) if self.test_set is not None else 0}

    # -- evaluation ----------------------------------------------------------------------
    @scoped
    def evaluate(self):
        """(train accuracy, test accuracy or None), in batches, on the device."""
        te = self._accuracy(self.test_set) if self.test_set is not None else None
        return self._accuracy(self.train_set), te

    @scoped
    def evaluate_test(self):
        """(test accuracy, mean test loss) from one forward pass per batch of the test set."""
        return accuracy_and_loss(self.net, self.test_set, self.eval_batch_size, self.comm, self.fast)

    def _accuracy(self, split):
        return accuracy(self.net, split, self.eval_batch_size, self.comm, self.fast)

    # -- the book's loop -----------------------------------------------------------------
    def train_step(self) -> None:
        """The book's ``train_step``: one step on a random mini-batch, its loss recorded (and
        printed when ``verbose``), and the epoch check ``current_iter % iter_per_epoch == 0``."""
        self._form(True, "train_step")
        self._book_steps(1)

    @scoped
    def train(self) -> None:
        """The book's ``train``: ``max_iter`` steps, then the accuracy on the whole test set."""
        self._form(True, "train")
        self._book_steps(self.max_iter)
        test_acc = self.history.final_test_acc = self._accuracy(self.test_set)
        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print("test acc:" + str(test_acc))

    @scoped
    def _book_steps(self, k: int) -> None:
        """``k`` of the book's steps, run in chunks that end at the steps its epoch check passes."""
        end, period = self.step + k, self.eval_interval
        while self.step < end:
            i = self.step
            check = -(-i // period) * period  # the first step from i on whose epoch check passes
            j = min(end, check + 1, i + self.report_every)
            losses = self._report(self.run_steps(j - i), i, None)
            self.step = self.history.step = j
            if self.verbose:
                for loss in losses:
                    print("train loss:" + str(loss))
            if (j - 1) % self.iter_per_epoch == 0:  # the book's epoch check, after the step it counts
                self._book_epoch(j)

    def _book_epoch(self, i):
        m = self.evaluate_sample_num_per_epoch
        train_acc, test_acc = self._accuracy(self.train_set.head(m)), self._accuracy(self.test_set.head(m))
        self.history.record_eval(i, train_acc, test_acc)
        if self.verbose:
            print("=== epoch:" + str(self.current_epoch) + ", train acc:" + str(train_acc) + ", test acc:"
                  + str(test_acc) + " ===")

    # -- xpnet's loop --------------------------------------------------------------------
    @scoped
    def fit(self, checkpoint=None) -> History:
        """Run the protocol: evaluate every ``eval_interval`` steps, report every ``report_every``.

        ``checkpoint``: a path written atomically at every evaluation, at the end, and when
        SIGINT/SIGTERM arrives (then the current chunk of at most ``report_every`` steps ends,
        the checkpoint is written and ``TrainingInterrupted`` raised). ``Trainer.resume(path,
        ...)`` continues such a run to exactly the parameters of an uninterrupted one (on the CPU,
        same data and seed). A failed write raises ``CheckpointWriteError``; the last good
        checkpoint stays. Without a checkpoint a signal ends the chunk too, and the
        ``TrainingInterrupted`` raised carries the ``history`` so far; a second Ctrl-C stops at once.
        """
        self._form(False, "fit")
        with fault_ends_job(self.comm):  # the other processes would wait in the next allreduce forever
            return self._fit(checkpoint)

    def _fit(self, checkpoint=None) -> History:
        if self._resume_at is None:  # each fit records its own run; a resumed one goes on
            self.history = History(config=self._config())
            self._rng = self.device.rng(self.seed)
            self.step = 0
            self._last_saved = None
        self._resume_at = None
        hist = self.history
        tqdm = tqdm_for(self.progress)
        bar = progress_bar(tqdm, self.iters, initial=self.step) if tqdm else None
        t0 = time.perf_counter() - hist.wall_time_s
        # a signal during the final evaluation lets it finish: the run is done, and saved whole
        with signals_to_stop() as stop:
            try:
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
                    if self.comm.size > 1:  # all stop at the same step, or none
                        asked = self.comm.allreduce_scalars([stop.signum is not None])[0] > 0
                        if asked and stop.signum is None:  # another process got the signal first
                            stop.ask()
                    if stop.signum is not None:
                        self._interrupted(checkpoint, t0, stop.name)
                self.device.synchronize()
            finally:
                if bar is not None:
                    bar.close()
            hist.wall_time_s = time.perf_counter() - t0
            self._check_params_finite(self.iters)
            if self.final_eval:
                hist.final_train_acc = self._accuracy(self.train_set)
                if self.test_set is not None:
                    hist.final_test_acc, hist.final_test_loss = self.evaluate_test()
                hist.verdict = chance_level(hist.final_train_acc, self.num_classes, self.iters, self.iter_per_epoch,
                                            self._lr(), self._hint)
                if hist.verdict:
                    warn_outside(hist.verdict)
            if checkpoint is not None:
                self.save_checkpoint(checkpoint)
        return hist

    # -- checkpoints and resuming -----------------------------------------------------
    def save_checkpoint(self, path) -> str:
        """Write the whole run -- parameters, architecture, optimizer state, step, RNG state,
        history -- to ``path`` in one atomic write; returns the path written."""
        self._form(False, "save_checkpoint")
        if self.comm.rank != 0:  # every process holds the same run: one writes it
            return str(path)
        opt = self.optimizer
        if not callable(getattr(opt, "state_dict", None)):
            raise TypeError(f"checkpoints need an optimizer with state_dict(); {type(opt).__name__} has none")
        written = save_run(self.net, path, step=self.step, device=self.device, rng_state=self._generator().get_state(),
                           optimizer_state=opt.state_dict(), history=self.history, settings=self._settings(),
                           last_saved=self._last_saved)
        self._last_saved = self.step
        return written

    def _settings(self) -> dict:
        return {"batch_size": self.batch_size, "iters": self.iters, "eval_interval": self.eval_interval,
                "eval_batch_size": self.eval_batch_size, "report_every": self.report_every,
                "record_loss": self.record_loss, "final_eval": self.final_eval, "seed": self.seed,
                **self._sizes(), "processes": self.comm.size, "data": self._fingerprint()}

    def _fingerprint(self) -> str:
        """The data's fingerprint (train and test), taken once: what a resume checks it gets."""
        if self._data_fingerprint is None:
            parts = [s.fingerprint(self.device) for s in (self.train_set, self.test_set) if s is not None]
            self._data_fingerprint = "+".join(parts)
        return self._data_fingerprint

    @classmethod
    def resume(cls, path, x_train, t_train, x_test=None, t_test=None, *, device=None, iters=None, epochs=None,
               progress=None, log=print, communicator=None, net=None, optimizer=None) -> Trainer:
        """A trainer that continues the run saved at ``path`` (by ``fit(checkpoint=...)``) on the
        same data (checked by size and by a fingerprint of its contents): its next ``fit()``
        picks up at the saved step with the saved optimizer state, random generator and
        history. ``iters`` -- or ``epochs`` of the saved run's batches -- may extend the run
        (the history records the new length).

        The run continues on the device it was trained on (with a ``communicator``: this
        process's ``communicator.device``), whatever the default device here is. ``device``
        may name another whose random generator continues the saved one (cpu and
        array_api_strict; cuda:0 and cuda:1); any other is refused, naming both.

        ``net``: a net xpnet does not rebuild (a reader's own, an ``xpnet.Net`` of any layers),
        built again as it was, filled with the saved parameters; ``optimizer``: an instance of a
        user's own optimizer class (an ``xpnet.Optimizer`` subclass declaring its state in
        ``settings``, ``buffers`` and ``counters``) with the saved settings."""
        from .optimizers import Optimizer

        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: a {type(optimizer).__name__} cannot take the saved state; a run resumes with "
                            "an xpnet.Optimizer (a subclass declares its state in settings, buffers and counters)")
        run = load_run(path, device=device, communicator=communicator, net=net, optimizer=optimizer)
        settings = dict(run.settings, **({} if iters is None else {"iters": iters}))
        tr = cls(run.net, x_train, t_train, x_test, t_test, optimizer=run.optimizer, progress=progress, log=log,
                 communicator=communicator, **settings)
        run.check_data(*tr._sizes().values(), tr._fingerprint())
        if epochs is not None:
            if iters is not None:
                raise TypeError("Trainer.resume takes iters or epochs, not both")
            tr.iters = positive_int("epochs", epochs) * tr.iter_per_epoch
        if run.step > tr.iters:
            raise ValueError(f"{path} is at step {run.step}, past iters={tr.iters}; pass a larger iters to go on")
        tr._rng = tr.device.rng(tr.seed)
        try:
            tr._rng.set_state(run.rng_state)
        except ValueError as e:
            raise CheckpointError(f"{path}: the saved state of the batches' generator does not load ({e}); the file "
                                  "was edited or damaged") from None
        tr.history, tr.step, tr._resume_at = run.history, run.step, run.step
        tr.data_dir = run.history.config.get("data_dir")
        tr.history.config = tr._config()
        tr._last_saved = run.step
        return tr

    def _interrupted(self, checkpoint, t0, signal_name):
        self.history.wall_time_s = time.perf_counter() - t0
        if checkpoint is None:  # nothing to resume from, but the history so far is not lost
            raise TrainingInterrupted(f"{signal_name} at step {self.step}: the run so far is in the exception's "
                                      f"history (and trainer.history); fit(checkpoint=path) would make it resumable",
                                      self.step, None, signal_name, self.history)
        written = self.save_checkpoint(checkpoint)
        raise TrainingInterrupted(f"{signal_name} at step {self.step}: the run is saved in {written}; continue it "
                                  f"with Trainer.resume", self.step, written, signal_name, self.history)

    # -- the steps -----------------------------------------------------------------------
    @scoped
    def run_steps(self, k: int) -> list:
        """``k`` training steps and nothing else; returns the recorded losses (0-d device arrays
        for xpnet's nets, whatever ``lastLayer.loss`` holds for a reader's).

        The whole hot loop: draw indices on the device, gather the batch, forward and backward,
        update in place. No host transfer, no validation (the data was checked on arrival).
        """
        net, opt, data = self.net, self.optimizer, self.train_set
        X, n, bs = data.x, len(data), self.batch_size
        rng = self._generator()
        params, take, record = net.params, self.device.take_rows, self.record_loss
        after = self.book  # the book records each step's loss after its update, from one more forward pass
        losses = []
        block = max(1, min(k, 256))  # indices for up to 256 steps drawn in one call, then sliced
        comm = self.comm
        world, share = comm.size, comm.rank * bs  # this process's part of each global batch
        if self.fast:
            T = data.onehot
            plan = opt.scaled_update() if callable(getattr(opt, "scaled_update", None)) else None
            scale, apply = plan if plan is not None else (1.0, opt.update)
            step, last = net.backprop, net.lastLayer
            read_loss = net.last_loss if getattr(net, "weight_decay_lambda", 0) else None  # + the penalty, as net.loss
            if world > 1:  # the average over processes: 1/size folded into the loss gradient too
                scale, apply = scale / world, averaging(apply, comm, self.device)
        else:
            if world > 1:
                raise TypeError("distributed training needs xpnet's nets (backprop, count_correct)")
            T = data.t
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
                    grads = step(x, t, scale)
                    if i == 0:
                        check_grads_fit(grads, params)
                    apply(params, grads)
                    if record:
                        if after:
                            last.forward_onehot(net.forward(x), t)
                        losses.append(last.loss if read_loss is None else read_loss())
                else:
                    grads = net.gradient(x, t)
                    if i == 0:  # once per chunk: a wrong backward named, not broadcast into the update
                        check_grads_fit(grads, params)
                    opt.update(params, grads)
                    if record:
                        losses.append(last.loss if read_last and not after else net.loss(x, t))
        return losses

    def _generator(self):
        """The device generator drawing the batches, made from ``seed`` at the first step."""
        if self._rng is None:
            self._rng = self.device.rng(self.seed)
        return self._rng

    def _largest_product(self):
        """FLOPs of the step's largest product: the net's own account (xpnet's nets), else from its
        parameters -- any 4-d one (a convolution's filters) counts as large."""
        per_sample = getattr(self.net, "product_size_per_sample", None)
        if per_sample is None:
            params = list(self.net.params.values())
            widths = [w.shape for w in params if getattr(w, "ndim", 0) == 2]
            per_sample = math.inf if any(getattr(w, "ndim", 0) == 4 for w in params) else \
                max((a * b for a, b in widths), default=0)
        return 2 * per_sample * self.batch_size

    def _report(self, pending, start, bar) -> list:
        """Bring a chunk of losses to the host (one transfer), check them, show progress;
        returns them as Python floats."""
        chunk = []
        if pending:
            if all(self.device.owns(v) for v in pending):
                chunk = [float(v) for v in self.device.to_numpy(self.xp.stack(pending)).tolist()]
            else:
                chunk = [float(v) for v in pending]
            if self.comm.size > 1:  # each process saw its share: the global batch's loss is the mean
                chunk = [v / self.comm.size for v in self.comm.allreduce_scalars(chunk)]
            check_losses(chunk, start, self._lr(), self._hint)
            self.history.loss.extend(chunk)
        if bar is not None:
            show_progress(bar, start + len(pending), self.history)
        return chunk

    def _check_params_finite(self, i):
        if not self.record_loss:  # else every loss was checked
            check_params(self.net.params, self.xp, i, self._lr(), self._hint)

    def _lr(self):
        return getattr(self.optimizer, "lr", "?")

    @scoped
    def _eval(self, i, bar):
        self._check_params_finite(i)
        tr = self._accuracy(self.train_set)
        te, te_loss = self.evaluate_test() if self.test_set is not None else (None, None)
        self.history.record_eval(i, tr, te, te_loss)
        if self.log is not None:
            (bar.write if bar is not None else self.log)(epoch_line(i, self.iter_per_epoch, tr, te, te_loss))

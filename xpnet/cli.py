"""The ``xpnet`` command: ``train``, ``evaluate``, ``predict``, ``devices``, ``gradcheck`` and ``bench``."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from .validation import int_at_least

__all__ = ["main"]


class _Fail(Exception):
    """A user-facing error: printed as one line, exit status 2."""


_positive_int = int_at_least(1, "positive")
_seed = int_at_least(0, "non-negative")


def _float_arg(ok, expected: str):
    """An argparse type: a float for which ``ok(value)`` holds, else the message 'expected ...'."""
    def parse(s):
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {s!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {s!r}")
        return v
    return parse


_positive_float = _float_arg(lambda v: 0 < v < float("inf"), "a positive finite number")
_ratio = _float_arg(lambda v: 0 <= v < 1, "a ratio in [0, 1) (the share of units dropped)")
_non_negative_float = _float_arg(lambda v: 0 <= v < float("inf"), "a finite number >= 0")


def _sizes(s):
    if any(part.strip().startswith("-") for part in s.split(",")):  # 784,-5,10 is not 784-5-10
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {s!r}")
    try:
        v = [int(p) for p in s.replace("-", ",").split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected layer sizes like 784,100,10, got {s!r}") from None
    if len(v) < 2 or min(v) < 1:
        raise argparse.ArgumentTypeError(f"expected at least two positive layer sizes, got {s!r}")
    return v


def _weight_init(s):
    from .nets import WEIGHT_INITS

    if s.lower() in WEIGHT_INITS:
        return s.lower()
    return _float_arg(lambda v: 0 < v < float("inf"),
                      f"a positive number (the std) or one of {', '.join(WEIGHT_INITS)}")(s)


def _device_arg(s):
    import xpnet

    try:
        return xpnet.device(s)
    except (ValueError, TypeError, xpnet.DeviceUnavailableError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


DEVICE_HELP = ("auto, cpu, cuda, cuda:N, array_api_strict, torch, torch:cuda[:N] "
               "(default: $XPNET_DEVICE when set, else auto: cuda:0 when CuPy sees a GPU, else cpu)")


def _default_device():
    """(the Device ``xpnet.device(None)`` picks, why): ``$XPNET_DEVICE`` when set, else auto."""
    import xpnet

    env = os.environ.get("XPNET_DEVICE")
    try:
        dev = xpnet.device(None)
    except (ValueError, TypeError, xpnet.DeviceUnavailableError) as e:
        raise _Fail(f"environment variable XPNET_DEVICE={env!r} is not a usable device ({e}); "
                    f"set it to one of the usable devices (`xpnet devices`), unset it, or pass --device") from None
    return dev, (f"from XPNET_DEVICE={env}" if env else
                 "auto, XPNET_DEVICE is not set: cuda:0 when CuPy sees a GPU, else cpu")


def _device(args):
    """The device of ``--device``, else the default one (``$XPNET_DEVICE``, else auto)."""
    return args.device if args.device is not None else _default_device()[0]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: ...)" after every option that has a default worth showing."""

    def _get_help_string(self, action):
        h = action.help or ""
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS \
                or "default" in h:
            return h
        return super()._get_help_string(action)


def _parser():
    from . import __version__

    fmt = _HelpFormatter
    p = argparse.ArgumentParser(prog="xpnet", description="Backprop from scratch on any Array API device.",
                                formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"xpnet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", formatter_class=fmt,
                       help="train a net on MNIST or another IDX dataset (the book's protocol by default)",
                       description="Train a net (the book's TwoLayerNet by default) and write history.json, "
                                   "model.npz and curves.png to a run folder.")
    t.add_argument("--device", type=_device_arg, default=None, help=DEVICE_HELP)
    t.add_argument("--net", choices=list(NETS), default=None,
                   help="mlp (the default): the book's TwoLayerNet (MultiLayerNet with --sizes); simpleconv: its "
                        "chapter 7 SimpleConvNet; deepconv: its chapter 8 DeepConvNet (these two train as the book "
                        "does: adam, lr 0.001, 20 epochs, unless told)")
    t.add_argument("--hidden", type=_positive_int, default=None,
                   help="hidden units (default: 50 for mlp and deepconv, 100 for simpleconv, as the book)")
    t.add_argument("--sizes", type=_sizes,
                   help="all layer sizes, e.g. 784,100,100,10: a MultiLayerNet (overrides --hidden)")
    t.add_argument("--activation", choices=["relu", "sigmoid", "tanh"], default=None,
                   help="activation of --sizes nets (default: relu)")
    t.add_argument("--weight-init", type=_weight_init, default=None, help="std of the initial weights, "
                   "'he' (or 'relu') or 'xavier' (or 'sigmoid') (default: 0.01; deepconv: He's, always)")
    length = t.add_mutually_exclusive_group()
    length.add_argument("--iters", type=_positive_int, default=None,
                        help="training iterations (default: 10000, the book's protocol)")
    length.add_argument("--epochs", type=_positive_int, default=None,
                        help="train for N epochs instead: N * (training samples // batch size) iterations")
    t.add_argument("--batch-size", type=_positive_int, default=None, help="mini-batch size (default: 100)")
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (default: 0.1 for sgd, the optimizer's own default otherwise)")
    t.add_argument("--optimizer", choices=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"], default=None,
                   help="optimizer (default: sgd for mlp, adam for the convnets)")
    t.add_argument("--batchnorm", action="store_true",
                   help="batch normalisation after each hidden Affine (the book's MultiLayerNetExtend)")
    t.add_argument("--dropout", type=_ratio, default=None, metavar="RATIO",
                   help="dropout after each hidden activation, dropping this share of units (e.g. 0.15)")
    t.add_argument("--weight-decay", type=_non_negative_float, default=None, metavar="LAMBDA",
                   help="L2 weight decay: 0.5 * LAMBDA * sum(W**2) added to the loss (e.g. 0.1; default: 0)")
    t.add_argument("--seed", type=_seed, default=None, help="seed of the initial weights and the batches (default: 0)")
    t.add_argument("--dtype", choices=["float32", "float64"], default=None, help="precision of the net (default: "
                   "float32)")
    t.add_argument("--eval-interval", type=_positive_int,
                   help="iterations between evaluations (default: an epoch, samples // batch size)")
    t.add_argument("--data-dir", help=DATA_HELP)
    t.add_argument("--out", help="output folder (default: a new folder under runs/); must not hold an earlier run")
    t.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR (its settings come from its "
                                                   "checkpoint; --iters or --epochs may extend it)")
    t.add_argument("--overwrite", action="store_true", help="let --out replace an earlier run held there")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes of an MPI launch (mpiexec -n N xpnet train --distributed): "
                        "--batch-size is per process, the global batch N times it; rank 0 writes the run")
    t.add_argument("--quiet", action="store_true",
                   help="print only the final line (test accuracy, wall time, run folder) and errors: "
                        "no progress bar, no per-epoch lines")
    t.add_argument("--no-plot", action="store_true", help="do not draw the PNG plot")

    e = sub.add_parser("evaluate", formatter_class=fmt, help="accuracy and loss of a saved model (model.npz)",
                       description="Load a checkpoint written by `xpnet train` and print its test accuracy and "
                                   "test loss (and the training set's with --train).")
    e.add_argument("model", metavar="MODEL", help="a checkpoint written by `xpnet train` (model.npz)")
    e.add_argument("--data-dir", help=DATA_HELP)
    e.add_argument("--device", type=_device_arg, default=None, help=DEVICE_HELP)
    e.add_argument("--train", action="store_true", help="also evaluate on the training set")

    pr = sub.add_parser("predict", formatter_class=fmt, help="predicted classes of images, from a saved model",
                        description="Print the predicted class and its probability for images: rows of a "
                                    "dataset (--data-dir/--split/--index, with their true labels) or an .npy "
                                    "file (--images).")
    pr.add_argument("model", metavar="MODEL", help="a checkpoint written by `xpnet train` (model.npz)")
    src = pr.add_mutually_exclusive_group()
    src.add_argument("--images", metavar="FILE",
                     help="an .npy file of images, shape (N, 784) or (N, 28, 28) (one image: (784,) or "
                          "(28, 28)); uint8 0..255 or float in [0, 1]")
    src.add_argument("--data-dir", help=DATA_HELP)
    pr.add_argument("--split", choices=["test", "train"], default="test", help="which split of the dataset")
    pr.add_argument("--index", type=_index_spec, default=None,
                    help="rows to predict: 7, 0:10, 0:100:10 or 3,5,9 (default: 0:10 of a dataset, all of "
                         "--images)")
    pr.add_argument("--probs", action="store_true", help="also print the probability of every class")
    pr.add_argument("--device", type=_device_arg, default=None, help=DEVICE_HELP)

    sub.add_parser("devices", help="list the devices usable here, the default one and why",
                   description="List the devices xpnet can use here, why the others are not usable, and "
                               "which one is the default ($XPNET_DEVICE, else auto).")

    g = sub.add_parser("gradcheck", formatter_class=fmt,
                       help="the book's gradient check of TwoLayerNet on 3 MNIST images")
    g.add_argument("--device", type=_device_arg, default=None, help=DEVICE_HELP)
    g.add_argument("--data-dir", help=DATA_HELP)
    g.add_argument("--seed", type=_seed, default=0, help="seed of the net's weights")

    bench = _benchmark_package() is not None
    sub.add_parser("bench", add_help=False,  # its options are the benchmark's own, `-h` among them
                   help="time xpnet against the book's code, tuned NumPy and PyTorch (options: xpnet bench -h)"
                   if bench else f"not here: {BENCH_ELSEWHERE}")
    return p


DATA_HELP = ("directory with an IDX dataset: train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), "
             "t10k-... (MNIST, Fashion-MNIST, ...; checked against a SHA256SUMS file there when present) "
             "(default: $XPNET_DATA_DIR, else the bundled MNIST)")


def _index_spec(s):
    """'7', '0:10', '0:100:10', '3,5,9' -> a list of (start, stop, step) or int items, resolved later."""
    items = []
    for part in s.split(","):
        part = part.strip()
        try:
            if ":" in part:
                bits = [int(b) if b.strip() else None for b in part.split(":")]
                if len(bits) > 3 or (len(bits) == 3 and bits[2] is not None and bits[2] <= 0):
                    raise ValueError
                items.append(slice(*bits))
            else:
                items.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected rows like 7, 0:10, 0:100:10 or 3,5,9, got {s!r}") from None
    return items


def _load(data_dir, flatten=True):
    """(x_train, t_train), (x_test, t_test) from ``--data-dir`` (any IDX dataset, checked against
    the SHA256SUMS file there when present), else MNIST ($XPNET_DATA_DIR or the bundled copy);
    images (N, C, H, W) unless ``flatten``; ``data.unverified_because`` for train to say."""
    import warnings

    from .datasets import load_idx_dataset, load_mnist
    from .exceptions import DatasetError, UnverifiedDataWarning

    try:
        with warnings.catch_warnings():  # said below, in the CLI's words
            warnings.simplefilter("ignore", UnverifiedDataWarning)
            data = load_idx_dataset(data_dir, flatten=flatten) if data_dir else load_mnist(flatten=flatten)
    except DatasetError as e:
        raise _Fail(f"--data-dir {data_dir}: {e}" if data_dir else str(e)) from None
    return data


def _classes(*labels) -> int:
    """The number of classes the labels need (the largest label + 1)."""
    return max(int(t.max()) + 1 if t.size else 1 for t in labels)


class _Elsewhere:
    """The run folder as seen from a rank other than 0: rank 0 owns and writes it."""

    def __init__(self, path):
        self.path = Path(path)
        self.checkpoint = self.path / "model.npz"

    def drop_views(self):
        pass

    def discard_if_unused(self):
        pass

    def release(self):
        pass


class _Log:
    """Lines to stdout that survive ``xpnet train | head``: once the reader is gone, the run goes
    on silently and still writes its files."""

    def __init__(self):
        self.gone = False

    def __call__(self, line: str) -> None:
        if self.gone:
            return
        try:
            print(line, flush=True)
        except BrokenPipeError:
            self.gone = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # later writes (and the exit flush) go nowhere
            os.close(devnull)


def _train(args, comm) -> int:
    import xpnet
    from .exceptions import RunFolderError
    from .runs import RunFolder
    from .trainer import CheckpointWriteError, Trainer, TrainingDivergedError, TrainingInterrupted

    lead = comm is None or comm.rank == 0  # in a distributed run rank 0 speaks and writes
    quiet = args.quiet or not lead
    log = _Log() if lead else (lambda *_, **__: None)
    say = (lambda *_, **__: None) if quiet else log
    # a distributed run: this process's own GPU; a resumed one: its own device unless --device says
    dev = comm.device if comm is not None else args.device if args.resume else _device(args)
    if args.out is not None and not args.out.strip():
        raise _Fail("--out is empty: name the folder for the run, or leave --out out for a new one under runs/")
    from .threads import blas_threads_setting

    try:  # read at every step: a bad value is named now, not after the first checkpoint
        blas_threads_setting()
    except ValueError as e:
        raise _Fail(str(e)) from None
    if args.resume and (args.out or args.overwrite):
        raise _Fail("--resume DIR continues the run in DIR: leave out --out and --overwrite")
    given = {k: getattr(args, k) for k in _RUN_OPTIONS if getattr(args, k) not in (None, False)}  # told, not defaults
    if not args.resume:
        for k, v in _RUN_DEFAULTS.items():
            setattr(args, k, v if getattr(args, k) is None else getattr(args, k))
    try:  # the folder first: a bad --out fails now, not after the run
        if not lead:
            folder = _Elsewhere(args.resume or args.out or "runs")
        else:
            folder = RunFolder.resume(args.resume) if args.resume else \
                RunFolder.new(args.out, label=dev.name.replace(":", ""), overwrite=args.overwrite)
    except RunFolderError as e:
        raise _Fail(str(e)) from None
    try:
        from .checkpoint import takes_images

        images = takes_images(folder.checkpoint) if args.resume else args.net != "mlp"
        data_dir = args.data_dir or (_saved_data_dir(folder.checkpoint) if args.resume else None)
        data = _load(data_dir, flatten=not images)
        (x_train, t_train), (x_test, t_test) = data
        progress, epoch_log = (False, None) if quiet else (None, log)
        if args.resume:
            try:
                trainer = Trainer.resume(folder.checkpoint, x_train, t_train, x_test, t_test, device=dev,
                                         iters=args.iters, epochs=args.epochs, progress=progress, log=epoch_log,
                                         communicator=comm)  # epochs: of the saved run's batch size
            except (ValueError, TypeError, xpnet.DeviceUnavailableError) as e:
                raise _Fail(str(e)) from None
            changes = _resume_changes(given, trainer)
            if changes:
                raise _Fail(f"--resume {folder.path} continues the run with its own settings; {', '.join(changes)} "
                            f"would change it: leave {'them' if len(changes) > 1 else 'it'} out, or start a new run "
                            "with --out (--iters and --epochs may extend the run)")
            net = trainer.net
            told = "iters" if args.iters else "epochs" if args.epochs else None
            length = f" (--{told} makes it {trainer.iters})" if told else ""
            say(f"xpnet train: resuming {folder.path} at step {trainer.step} of {trainer.iters}{length} ({net} on "
                f"{net.device.name}, {type(trainer.optimizer).__name__}; settings from its checkpoint)")
        else:
            per_epoch = max(len(x_train) // (args.batch_size * (comm.size if comm is not None else 1)), 1)  # global
            iters = args.iters or (args.epochs * per_epoch if args.epochs else None)
            conv = args.net != "mlp"
            optimizer = args.optimizer or ("adam" if conv else "sgd")
            iters = iters or (20 * per_epoch if conv else 10000)  # the book's protocols
            c = _classes(t_train, t_test)  # the classes: from the data
            kw = {"device": dev, "dtype": args.dtype, "seed": args.seed}
            net = _conv_net(args, x_train, c, kw) if conv else _mlp(args, x_train.shape[1], c, kw)
            trainer = Trainer(net, x_train, t_train, x_test, t_test, optimizer=optimizer, lr=args.lr,
                              batch_size=args.batch_size, iters=iters, eval_interval=args.eval_interval, seed=args.seed,
                              progress=progress, log=epoch_log, communicator=comm)
            procs = f" x {comm.size} processes ({comm.engine})" if comm is not None else ""
            say(f"xpnet train: {net} on {dev.name}, {optimizer} lr {trainer.optimizer.lr}, batch {args.batch_size}"
                f"{procs}, {iters} iterations" + (f" ({args.epochs} epochs)" if args.epochs else "")
                + f"; run folder {folder.path}")
        trainer.data_dir = os.path.abspath(data_dir) if data_dir else None  # evaluate and predict default to it
        if lead and data.unverified_because:  # once every check has passed: an error stays one line
            print(f"xpnet train: note: {data.unverified_because}", file=sys.stderr)
        trainer.history.config = trainer._config()
        folder.drop_views()  # the checkpoint is the truth until the views are written again
        try:
            import warnings

            with warnings.catch_warnings():  # the CLI says it in its own words, below
                warnings.simplefilter("ignore", RuntimeWarning)
                hist = trainer.fit(checkpoint=folder.checkpoint)
        except TrainingInterrupted as e:
            if lead:
                _write_views(trainer.history, folder, args, say)
                print(f"xpnet train: {e}; from the command line: xpnet train --resume {folder.path}", file=sys.stderr)
            return 143 if e.signal_name == "SIGTERM" else 130  # the shells' 128 + the signal's number
        except CheckpointWriteError as e:
            raise _Fail(str(e)) from None
        except TrainingDivergedError as e:
            raise _Fail(str(e)) from None
        if lead:
            _write_views(hist, folder, args, say)
    except BaseException:
        folder.discard_if_unused()
        raise
    finally:
        folder.release()  # the folder is another process's to take from now on
    if not lead:
        return 0
    loss = f", test loss {hist.final_test_loss:.4f}" if hist.final_test_loss is not None else ""
    log(f"final test accuracy {hist.final_test_acc:.4f}{loss} (train {hist.final_train_acc:.4f}); "
        f"wall time {hist.wall_time_s:.2f} s" + (f"; saved in {folder.path}" if quiet else ""))
    say(f"checkpoint: {folder.checkpoint}\nhistory: {folder.history}")
    if hist.verdict:
        print(f"xpnet train: {hist.verdict}", file=sys.stderr)
        return 1
    return 0


NETS = {"mlp": "TwoLayerNet or MultiLayerNet", "simpleconv": "SimpleConvNet", "deepconv": "DeepConvNet"}
_RUN_DEFAULTS = {"net": "mlp", "batch_size": 100, "weight_decay": 0.0, "seed": 0, "dtype": "float32"}
_RUN_OPTIONS = ("net", "hidden", "sizes", "activation", "weight_init", "batchnorm", "dropout", "weight_decay",
                "optimizer", "lr", "batch_size", "seed", "dtype", "eval_interval")


def _resume_changes(given: dict, trainer) -> list:
    """``--lr 0.5 (the run's: 0.1)`` for each option given with ``--resume`` that differs from
    the saved run: a resumed run keeps its settings, and an option dropped silently misleads."""
    cfg, opt = trainer.net.config, trainer.optimizer
    kind = {"SimpleConvNet": "simpleconv", "DeepConvNet": "deepconv"}.get(cfg.get("class"), "mlp")
    sizes = cfg.get("sizes") or [None, cfg.get("hidden_size")]
    saved = {"net": kind, "hidden": sizes[1] if len(sizes) == 3 or kind != "mlp" else None, "sizes": cfg.get("sizes"),
             "activation": cfg.get("activation"), "weight_init": cfg.get("weight_init", cfg.get("weight_init_std")),
             "batchnorm": cfg.get("use_batchnorm", False),
             "dropout": cfg.get("dropout_ratio") if cfg.get("use_dropout") else None,
             "weight_decay": cfg.get("weight_decay_lambda", 0.0), "optimizer": type(opt).__name__.lower(),
             "lr": getattr(opt, "lr", None), "batch_size": trainer.batch_size, "seed": trainer.seed,
             "dtype": cfg.get("dtype"), "eval_interval": trainer.eval_interval}
    out = []
    for k, v in given.items():
        if v != saved[k]:
            shown = lambda a: ",".join(map(str, a)) if isinstance(a, list) else a  # noqa: E731
            out.append(f"--{k.replace('_', '-')}{'' if v is True else ' ' + str(shown(v))} (the run's: "
                       f"{shown(saved[k])})")
    return out


def _mlp(args, d, c, kw):
    import xpnet

    sizes = args.sizes or [d, args.hidden or 50, c]
    if sizes[0] != d or sizes[-1] != c:
        raise _Fail(f"--sizes must start with {d} (pixels per image) and end with {c} (classes) for this "
                    f"data, got {','.join(map(str, sizes))}")
    activation, init = args.activation or "relu", 0.01 if args.weight_init is None else args.weight_init
    if args.batchnorm or args.dropout is not None:
        ratio = 0.5 if args.dropout is None else args.dropout
        return xpnet.MultiLayerNetExtend(sizes, activation, init, use_batchnorm=args.batchnorm,
                                         use_dropout=args.dropout is not None, dropout_ratio=ratio,
                                         weight_decay_lambda=args.weight_decay, **kw)
    if args.sizes or args.weight_decay or activation != "relu":
        return xpnet.MultiLayerNet(sizes, activation, init, weight_decay_lambda=args.weight_decay, **kw)
    return xpnet.TwoLayerNet(sizes[0], sizes[1], sizes[2], init, **kw)


def _conv_net(args, x_train, c, kw):
    """The book's SimpleConvNet or DeepConvNet for the data's images (N, C, H, W)."""
    import xpnet

    mlp_only = [name for name, given in (("--sizes", args.sizes), ("--activation", args.activation),
                                         ("--batchnorm", args.batchnorm), ("--dropout", args.dropout is not None),
                                         ("--weight-decay", args.weight_decay)) if given]
    if args.net == "deepconv" and args.weight_init is not None:
        mlp_only.append("--weight-init")
    if mlp_only:
        raise _Fail(f"{mlp_only[0]} does not apply to --net {args.net} (the book's {NETS[args.net]}, whose layers "
                    "are fixed): leave it out, or train --net mlp")
    try:
        if args.net == "simpleconv":
            return xpnet.SimpleConvNet(x_train.shape[1:], hidden_size=args.hidden or 100, output_size=c,
                                       weight_init_std=0.01 if args.weight_init is None else args.weight_init, **kw)
        return xpnet.DeepConvNet(x_train.shape[1:], hidden_size=args.hidden or 50, output_size=c, **kw)
    except ValueError as e:  # images too small for the book's filters and poolings
        raise _Fail(f"--net {args.net}: {e}") from None


def cmd_train(args) -> int:
    if not args.distributed:
        return _train(args, None)
    from .exceptions import DistributedError

    try:
        comm = _device(args).communicator()
    except DistributedError as e:
        if e.rank:  # every process raised it together: rank 0 says it, once
            return 2
        raise _Fail(str(e)) from None
    try:
        return _train(args, comm)
    except SystemExit:
        raise
    except DistributedError as e:
        if e.rank is None:
            raise
        if e.rank == 0:  # every process raised it together: rank 0 says it, once
            print(f"xpnet train: error: {e}", file=sys.stderr)
        return 2
    except BaseException as e:  # one rank's fault ends the job on every rank, at once, saying why
        why = str(e) if isinstance(e, _Fail) else f"{type(e).__name__}: {e}"
        print(f"xpnet train: rank {comm.rank} of {comm.size} failed: {why}; ending the job", file=sys.stderr)
        comm.abort(2 if isinstance(e, _Fail) else 1)
        raise


def _write_views(hist, folder, args, log) -> None:
    """history.json and the plot, from the run's state at its last checkpoint."""
    hist.save_json(folder.history)
    if args.no_plot:
        log("plot: skipped (--no-plot)")
        return
    from .exceptions import PlotUnavailable
    from .plot import plot_history

    try:
        log(f"plot: {plot_history(hist, folder.plot)}")
    except PlotUnavailable as e:
        log(f"plot: skipped ({e})")


def _model_path(path):
    """MODEL, or its model.npz when MODEL is the run folder ``train`` printed."""
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "model.npz")):
        return os.path.join(path, "model.npz")
    return path


def _load_model(path, dev):
    from .checkpoint import load_net
    from .exceptions import CheckpointError

    try:
        return load_net(_model_path(path), device=dev)
    except CheckpointError as e:
        raise _Fail(f"MODEL: {e}") from None


def _saved_data_dir(path):
    """The --data-dir a run was trained on, from its checkpoint's record (None: MNIST, or unknown)."""
    from .checkpoint import checkpoint_meta

    try:
        saved = checkpoint_meta(_model_path(os.fspath(path))).get("history", {}).get("config", {}).get("data_dir")
    except (OSError, ValueError, AttributeError):
        return None
    return saved if isinstance(saved, str) else None


def _data_dir(args):
    """--data-dir, else the one MODEL was trained on (said), else None (MNIST)."""
    if args.data_dir:
        return args.data_dir
    saved = _saved_data_dir(args.model)
    if saved:
        print(f"data: --data-dir {saved} (where {args.model} was trained; --data-dir chooses other data)")
    return saved


def _pixels(net) -> int:
    """Values per image the net takes: its first Affine's rows, or a convnet's C * H * W."""
    return net.n_features if net.n_features is not None else math.prod(net.input_dim)


def _check_fits(net, x, labels, what):
    if x.shape[1] != _pixels(net):
        raise _Fail(f"the model takes {_pixels(net)} pixels per image but {what} has {x.shape[1]}: "
                    f"use the data the model was trained on")
    if labels is not None and labels.size and int(labels.max()) >= net.num_classes:
        raise _Fail(f"{what} has labels up to {int(labels.max())} but the model knows {net.num_classes} classes: "
                    f"use the data the model was trained on")


def _outputs(net, dev, x, t=None, batch=10000):
    """(predicted classes, their probabilities, every class's probability, correct count, mean loss)
    of host images ``x`` (labels ``t`` optional), computed on the device in batches; host lists back."""
    from .functions import softmax

    xp = dev.xp
    pred, top, probs, correct, loss = [], [], [], 0, 0.0
    with dev.scope():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            xb = dev.asarray(xb if net.n_features is not None else xb.reshape((-1,) + net.input_dim), dtype=net.dtype)
            p = softmax(net.predict(xb), xp)
            k = xp.argmax(p, axis=1)
            pred += dev.to_numpy(k).tolist()
            top += dev.to_numpy(xp.max(p, axis=1)).tolist()
            probs += dev.to_numpy(p).tolist()
            if t is not None:
                tb = dev.asarray(t[i:i + batch])
                correct += int(xp.sum(xp.astype(k == tb, xp.int64)))
                loss += float(net.loss(xb, tb)) * xb.shape[0]
    return pred, top, probs, correct, (loss / len(x) if t is not None and len(x) else None)


def cmd_evaluate(args) -> int:
    dev = _device(args)
    net = _load_model(args.model, dev)
    args.data_dir = _data_dir(args)
    splits = _load(args.data_dir)
    what = f"--data-dir {args.data_dir}" if args.data_dir else "MNIST"
    chosen = (("test", splits[1]), ("train", splits[0]))[:2 if args.train else 1]
    for name, (x, t) in chosen:
        _check_fits(net, x, t, f"{what} ({name})")
    print(f"model: {args.model} ({net}) on {dev.name}")
    for name, (x, t) in chosen:
        _, _, _, correct, loss = _outputs(net, dev, x, t)
        print(f"{name + ':':<6} accuracy {correct / len(t):.4f}, loss {loss:.4f} ({len(t)} images)")
    return 0


def _load_images(file, d):
    from .datasets import load_images_npy
    from .exceptions import DatasetError

    try:
        return load_images_npy(file, d)
    except DatasetError as e:
        raise _Fail(f"--images {e}") from None


def _rows(spec, n, what):
    """The row numbers an --index spec selects among ``n`` rows (negative counts from the end)."""
    if spec is None:
        return list(range(n))
    rows = []
    for item in spec:
        if isinstance(item, slice):
            sel = list(range(*item.indices(n)))
            if not sel:
                raise _Fail(f"--index {item.start or ''}:{item.stop or ''} selects no rows of {what} "
                            f"({n} images, 0..{n - 1})")
            rows += sel
        else:
            if not -n <= item < n:
                raise _Fail(f"--index {item} is out of range: {what} has {n} images (0..{n - 1})")
            rows.append(item % n)
    return rows


def cmd_predict(args) -> int:
    dev = _device(args)
    net = _load_model(args.model, dev)
    if args.images:
        x, t = _load_images(args.images, _pixels(net)), None
        what = f"--images {args.images}"
        spec = args.index
    else:
        args.data_dir = _data_dir(args)
        train, test = _load(args.data_dir)
        x, t = test if args.split == "test" else train
        what = f"the {args.split} split of " + (args.data_dir if args.data_dir else "MNIST")
        _check_fits(net, x, t, what)
        spec = args.index if args.index is not None else [slice(0, 10)]
    rows = _rows(spec, len(x), what)
    pred, top, probs, _, _ = _outputs(net, dev, x[rows])
    head = f"{'index':>7} {'predicted':>9} {'probability':>11}" + (f" {'label':>5}" if t is not None else "")
    if args.probs:
        head += "  " + " ".join(f"{'p' + str(k):>6}" for k in range(len(probs[0]) if probs else 0))
    print(head)
    right = 0
    for r, k, pk, pr in zip(rows, pred, top, probs):
        line = f"{r:>7} {k:>9} {pk:>11.4f}"
        if t is not None:
            line += f" {int(t[r]):>5}"
            right += k == int(t[r])
        if args.probs:
            line += "  " + " ".join(f"{v:>6.4f}" for v in pr)
        if t is not None and k != int(t[r]):
            line += "  wrong"
        print(line)
    if t is not None:
        print(f"correct: {right} of {len(rows)}")
    return 0


def cmd_devices(args) -> int:
    from .backend import device_report

    try:
        dev, why = _default_device()
    except _Fail:
        dev = why = None
    print(f"default: {dev.name} ({why})" if dev else "default: none (XPNET_DEVICE is not usable, see below)")
    for name, ok, why_not in device_report():
        print(f"  {'yes' if ok else 'no ':<3} {name:<18} {why_not}")
    if dev is None:
        _default_device()  # the one-line error, exit status 2
    return 0


def cmd_gradcheck(args) -> int:
    import xpnet

    (x_train, t_train), (_, t_test) = _load(args.data_dir)
    dev = _device(args)
    d, c = x_train.shape[1], _classes(t_train, t_test)
    net = xpnet.TwoLayerNet(d, 50, c, device=dev, dtype="float64", seed=args.seed)
    x, t = dev.asarray(x_train[:3], dtype="float64"), dev.asarray(t_train[:3])
    t0 = time.perf_counter()
    report = xpnet.gradcheck(net, x, t, locate=False)
    print(f"TwoLayerNet {d}-50-{c} on {dev.name}, 3 images, float64 ({time.perf_counter() - t0:.1f} s)")
    for key, r in report.items():
        print(f"{key}: max abs diff {r.max_abs:.3e}, max rel {r.max_rel:.3e}  {'ok' if r.passed else 'FAIL'}")
    print("PASSED" if report.passed else "FAILED")
    return 0 if report.passed else 1


BENCH_ELSEWHERE = ("the benchmark ships with xpnet's source, not the wheel: from the root of a source checkout "
                   "(git clone, then pip install -e '.[train]'), run `python -m benchmarks` or `python -m xpnet bench`")


def _benchmark_package():
    """Where the ``benchmarks`` package would be imported from (its spec), or None when it would not."""
    import importlib.util

    try:
        return importlib.util.find_spec("benchmarks")
    except (ImportError, ValueError):  # a broken entry on sys.path, or a half-imported module
        return None


def cmd_bench(args) -> int:
    import importlib

    spec = _benchmark_package()
    if spec is None:
        raise _Fail(BENCH_ELSEWHERE)
    bench = importlib.import_module("benchmarks")
    if not (callable(getattr(bench, "main", None)) and callable(getattr(bench, "run_cli", None))):
        raise _Fail(f"the `benchmarks` package importable here ({spec.origin}) is not xpnet's benchmark; "
                    f"{BENCH_ELSEWHERE}")
    return bench.main(args.bench_args, prog="xpnet bench")


def main(argv=None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":  # the benchmark parses its own options
        args.bench_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        rc = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "devices": cmd_devices,
              "gradcheck": cmd_gradcheck, "bench": cmd_bench}[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return rc
    except _Fail as e:
        print(f"xpnet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `xpnet ... | head`: the reader left. Stop quietly, as a program killed by SIGPIPE does
        # (status 128 + 13); stdout goes to /dev/null so the exit's final flush cannot complain.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

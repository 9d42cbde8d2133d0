"""The ``xpnet`` command: ``train``, ``devices``, ``gradcheck`` and ``bench``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

__all__ = ["main"]


class _Fail(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _int_at_least(low: int, what: str):
    """An argparse type for integers >= ``low``, with a message instead of a traceback."""

    def parse(s):
        try:
            v = int(s)
        except ValueError:
            v = None
        if v is None or v < low:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {s!r}")
        return v

    return parse


_positive_int = _int_at_least(1, "positive")
_seed = _int_at_least(0, "non-negative")


def _positive_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {s!r}")
    return v


def _sizes(s):
    try:
        v = [int(p) for p in s.replace("-", ",").split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected layer sizes like 784,100,10, got {s!r}") from None
    if len(v) < 2 or min(v) < 1:
        raise argparse.ArgumentTypeError(f"expected at least two positive layer sizes, got {s!r}")
    return v


def _weight_init(s):
    if s.lower() in ("he", "xavier"):
        return s.lower()
    return _positive_float(s)


def _device_arg(s):
    import xpnet

    try:
        return xpnet.device(s)
    except (ValueError, TypeError, xpnet.DeviceUnavailableError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _parser():
    p = argparse.ArgumentParser(prog="xpnet", description="Backprop from scratch on any Array API device.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a net on MNIST (the book's protocol by default)")
    t.add_argument("--device", type=_device_arg, default="auto", help="auto (default), cpu, cuda, cuda:N, torch, ...")
    t.add_argument("--hidden", type=_positive_int, default=50, help="hidden units of the two-layer net (50)")
    t.add_argument("--sizes", type=_sizes, help="all layer sizes, e.g. 784,100,100,10 (overrides --hidden)")
    t.add_argument("--activation", choices=["relu", "sigmoid"], default="relu")
    t.add_argument("--weight-init", type=_weight_init, default=0.01, help="std (0.01), 'he' or 'xavier'")
    t.add_argument("--iters", type=_positive_int, default=None, help="training steps (10000)")
    t.add_argument("--batch-size", type=_positive_int, default=100)
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (default: 0.1 for sgd, the optimizer's own default otherwise)")
    t.add_argument("--optimizer", choices=["sgd", "momentum", "adagrad", "adam"], default="sgd")
    t.add_argument("--seed", type=_seed, default=0)
    t.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    t.add_argument("--eval-interval", type=_positive_int, help="iterations between evaluations (an epoch)")
    t.add_argument("--data-dir", help="directory with the MNIST IDX files (default: bundled copy)")
    t.add_argument("--out", help="output folder (default: a new folder under runs/); must not hold an earlier run")
    t.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR (its settings come from its "
                                                   "checkpoint; --iters may extend it)")
    t.add_argument("--overwrite", action="store_true", help="let --out replace an earlier run held there")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--no-plot", action="store_true", help="do not draw the PNG plot")

    sub.add_parser("devices", help="list the devices usable here, and why the others are not")

    g = sub.add_parser("gradcheck", help="the book's gradient check of TwoLayerNet on 3 MNIST images")
    g.add_argument("--device", type=_device_arg, default="auto")
    g.add_argument("--data-dir", help="directory with the MNIST IDX files")
    g.add_argument("--seed", type=_seed, default=0)

    b = sub.add_parser("bench", help="time xpnet against the book's code, tuned NumPy and PyTorch "
                                    "(from a source checkout: the code is benchmarks/, beside the package)")
    b.add_argument("--quick", action="store_true", help="a tiny configuration (seconds): checks that it runs")
    b.add_argument("--repeats", type=_positive_int, default=3)
    b.add_argument("--steps", type=_positive_int, default=2000, help="timed steps per per-step measurement")
    b.add_argument("--devices", default=None, help="xpnet devices to time (default: cpu and every GPU)")
    b.add_argument("--no-protocol", action="store_true", help="skip the whole 10000-iteration protocol")
    b.add_argument("--no-jax", action="store_true", help="leave out the jitted JAX contender")
    b.add_argument("--json", default="bench-results.json", help="where to write the table as JSON")
    return p


def _load(data_dir):
    from .datasets import DatasetError, load_mnist

    try:
        return load_mnist(path=data_dir)
    except DatasetError as e:
        raise _Fail(str(e)) from None


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


def cmd_train(a) -> int:
    import xpnet
    from .runs import RunFolder, RunFolderError
    from .trainer import CheckpointWriteError, Trainer, TrainingDivergedError, TrainingInterrupted

    log = _Log()
    dev = a.device
    a.iters_given = a.iters is not None
    if a.iters is None:
        a.iters = 10000
    if a.resume and (a.out or a.overwrite):
        raise _Fail("--resume DIR continues the run in DIR: leave out --out and --overwrite")
    try:  # the folder first: a bad --out fails now, not after the run
        folder = RunFolder.resume(a.resume) if a.resume else \
            RunFolder.new(a.out, label=dev.name.replace(":", ""), overwrite=a.overwrite)
    except RunFolderError as e:
        raise _Fail(str(e)) from None
    try:
        (x_train, t_train), (x_test, t_test) = _load(a.data_dir)
        progress = False if a.quiet else None
        if a.resume:
            try:
                trainer = Trainer.resume(folder.checkpoint, x_train, t_train, x_test, t_test, device=dev,
                                         iters=a.iters if a.iters_given else None, progress=progress, log=log)
            except (ValueError, TypeError) as e:
                raise _Fail(str(e)) from None
            net = trainer.net
            log(f"xpnet train: resuming {folder.path} at step {trainer.step} of {trainer.iters} ({net} on "
                f"{net.device.name}, {type(trainer.optimizer).__name__}; settings from its checkpoint)")
        else:
            sizes = a.sizes or [x_train.shape[1], a.hidden, 10]
            if sizes[0] != x_train.shape[1] or sizes[-1] != 10:
                raise _Fail(f"--sizes must start with {x_train.shape[1]} (pixels) and end with 10 (classes), "
                            f"got {sizes}")
            net = xpnet.MultiLayerNet(sizes, a.activation, a.weight_init, device=dev, dtype=a.dtype, seed=a.seed) \
                if a.sizes else xpnet.TwoLayerNet(sizes[0], sizes[1], sizes[2], a.weight_init, device=dev,
                                                  dtype=a.dtype, seed=a.seed)
            trainer = Trainer(net, x_train, t_train, x_test, t_test, optimizer=a.optimizer, lr=a.lr,
                              batch_size=a.batch_size, iters=a.iters, eval_interval=a.eval_interval, seed=a.seed,
                              progress=progress, log=log)
            log(f"xpnet train: {net} on {dev.name}, {a.optimizer} lr {trainer.optimizer.lr}, batch {a.batch_size}, "
                f"{a.iters} iterations; run folder {folder.path}")
        folder.drop_views()  # the checkpoint is the truth until the views are written again
        try:
            import warnings

            with warnings.catch_warnings():  # the CLI says it in its own words, below
                warnings.simplefilter("ignore", RuntimeWarning)
                hist = trainer.fit(checkpoint=folder.checkpoint)
        except TrainingInterrupted as e:
            _write_views(trainer.history, folder, a, log)
            print(f"xpnet train: {e}", file=sys.stderr)
            return 130
        except CheckpointWriteError as e:
            raise _Fail(str(e)) from None
        except TrainingDivergedError as e:
            raise _Fail(str(e)) from None
    except BaseException:
        folder.discard_if_unused()
        raise
    _write_views(hist, folder, a, log)
    log(f"final test accuracy {hist.final_test_acc:.4f} (train {hist.final_train_acc:.4f}); "
        f"wall time {hist.wall_time_s:.2f} s")
    log(f"checkpoint: {folder.checkpoint}\nhistory: {folder.history}")
    if hist.verdict:
        print(f"xpnet train: {hist.verdict}", file=sys.stderr)
        return 1
    return 0


def _write_views(hist, folder, a, log) -> None:
    """history.json and the plot, from the run's state at its last checkpoint."""
    hist.save_json(folder.history)
    if a.no_plot:
        log("plot: skipped (--no-plot)")
        return
    from .plot import PlotUnavailable, plot_history

    try:
        log(f"plot: {plot_history(hist, folder.plot)}")
    except PlotUnavailable as e:
        log(f"plot: skipped ({e})")


def cmd_devices(a) -> int:
    from .device import device, device_report

    print(f"default (auto): {device('auto').name}")
    for name, ok, why in device_report():
        print(f"  {'yes' if ok else 'no ':<3} {name:<18} {why}")
    return 0


def cmd_gradcheck(a) -> int:
    import xpnet

    (x_train, t_train), _ = _load(a.data_dir)
    dev = a.device
    net = xpnet.TwoLayerNet(784, 50, 10, device=dev, dtype="float64", seed=a.seed)
    x, t = dev.asarray(x_train[:3], dtype="float64"), dev.asarray(t_train[:3])
    t0 = time.perf_counter()
    report = xpnet.gradcheck(net, x, t, locate=False)
    print(f"TwoLayerNet 784-50-10 on {dev.name}, 3 MNIST images, float64 ({time.perf_counter() - t0:.1f} s)")
    for key, r in report.items():
        print(f"{key}: max abs diff {r.max_abs:.3e}, max rel {r.max_rel:.3e}  {'ok' if r.passed else 'FAIL'}")
    print("PASSED" if report.passed else "FAILED")
    return 0 if report.passed else 1


BENCH_UNAVAILABLE = ("the benchmark ships with xpnet's source, not the wheel: clone xpnet's repository, then "
                     "from its root run `pip install -e '.[train]'` and `python -m benchmarks` (or `xpnet bench`)")


def _benchmarks_dir() -> Path:
    """Where the comparison code sits in a source checkout: beside the package, not in it."""
    import xpnet

    return Path(xpnet.__file__).resolve().parent.parent / "benchmarks"


def _import_benchmarks(d: Path):
    """The ``benchmarks`` package of the checkout at ``d`` (reused when already imported from there)."""
    import importlib.util

    mod = sys.modules.get("benchmarks")
    if mod is not None and Path(getattr(mod, "__file__", None) or "").resolve().parent == d:
        return mod
    name = "benchmarks" if mod is None else "_xpnet_checkout_benchmarks"  # never shadow another package
    spec = importlib.util.spec_from_file_location(name, d / "__init__.py", submodule_search_locations=[str(d)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[name]
        raise
    return mod


def cmd_bench(a) -> int:
    d = _benchmarks_dir()
    if not (d / "__init__.py").is_file():
        raise _Fail(BENCH_UNAVAILABLE)
    return _import_benchmarks(d).run_cli(a)


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    try:
        return {"train": cmd_train, "devices": cmd_devices, "gradcheck": cmd_gradcheck,
                "bench": cmd_bench}[a.command](a)
    except _Fail as e:
        print(f"xpnet {a.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

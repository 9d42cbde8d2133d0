"""xpnet's side-by-side benchmark: the comparison code, beside the package, not in it.

It times xpnet (its Trainer, and the book-style loop a reader writes with its public API)
against the book's chapter-5 code, a hand-tuned NumPy float32 step, idiomatic PyTorch, a jitted
JAX step (when installed) and the matrix products alone, in one process, interleaved round by
round. It ships with the source, not the wheel. From a checkout::

    python -m benchmarks [--quick] [--no-protocol] [--json out.json] ...
    xpnet bench ...            # the same, through the installed command (editable install)

- ``harness.py``: rounds, tables, the speed targets, ``run()``;
- ``contenders.py``: the reference contenders (book, hand-tuned NumPy, PyTorch, JAX);
- ``xpnet_contenders.py``: xpnet's contenders, public API only.
"""

from __future__ import annotations

import argparse

from .harness import run, run_cli, step_flops

__all__ = ["add_arguments", "main", "parser", "run", "run_cli", "step_flops"]


def _positive_int(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def _count(s):
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {s}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options; ``xpnet bench`` declares the same ones (checked by the tests)."""
    p.add_argument("--quick", action="store_true", help="a tiny configuration (seconds): checks that it runs")
    p.add_argument("--repeats", type=_positive_int, default=3)
    p.add_argument("--steps", type=_positive_int, default=2000, help="timed steps per per-step measurement")
    p.add_argument("--devices", default=None, help="xpnet devices to time (default: cpu and every GPU)")
    p.add_argument("--no-protocol", action="store_true", help="skip the whole 10000-iteration protocol")
    p.add_argument("--no-jax", action="store_true", help="leave out the jitted JAX contender")
    p.add_argument("--json", default="bench-results.json", help="where to write the table as JSON")
    p.add_argument("--only", choices=["book"], default=None, help="time only the book net's per-step table")
    p.add_argument("--busy", type=_count, default=0, metavar="N",
                   help="also time the book net's step with N processes spinning on the CPU (a busy machine)")
    return p


def parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="time xpnet against the book's code, a hand-tuned NumPy step, PyTorch and JAX"))


def main(argv=None) -> int:
    return run_cli(parser().parse_args(argv))

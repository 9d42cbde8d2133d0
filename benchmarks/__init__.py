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
import os

# before anything imports jax: by default JAX takes 75 % of GPU memory at start, starving the other contenders
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from xpnet.cli import add_bench_arguments as add_arguments  # noqa: E402 - one list of options for both commands

from .harness import run, run_cli, step_flops  # noqa: E402

__all__ = ["add_arguments", "main", "parser", "run", "run_cli", "step_flops"]


def parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="time xpnet against the book's code, a hand-tuned NumPy step, PyTorch and JAX"))


def main(argv=None) -> int:
    return run_cli(parser().parse_args(argv))

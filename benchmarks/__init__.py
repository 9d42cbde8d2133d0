"""xpnet's side-by-side benchmark: the comparison code, beside the package, not in it.

It times xpnet (its Trainer, and the book-style loop a reader writes with its public API)
against the book's chapter-5 code, a hand-tuned NumPy float32 step, idiomatic PyTorch, a jitted
JAX step (when installed) and the matrix products alone, in one process, interleaved round by
round. It ships with the source, not the wheel. From the root of a checkout::

    python -m benchmarks [--quick] [--no-protocol] [--json out.json] ...
    python -m xpnet bench ...  # the same: xpnet's command runs it where ``benchmarks`` imports

- ``harness.py``: rounds, tables, the speed targets, the options, ``run()``;
- ``contenders.py``: the reference contenders (book, hand-tuned NumPy, PyTorch, JAX);
- ``xpnet_contenders.py``: xpnet's contenders, public API only.
"""

from __future__ import annotations

import os

# before anything imports jax: by default JAX takes 75 % of GPU memory at start, starving the other contenders
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from .harness import add_arguments, main, parser, run, run_cli, step_flops  # noqa: E402

__all__ = ["add_arguments", "main", "parser", "run", "run_cli", "step_flops"]

"""What a run shows while it goes: tqdm's bar (when installed and stderr is a terminal) and a line per evaluation."""

from __future__ import annotations

import shutil
import sys

__all__ = ["progress_bar", "show_progress", "epoch_line", "tqdm_for", "BAR_FORMAT", "BAR_MAX_COLS"]

# A bar that fits 80 columns with its postfix: "100%|####| 10000/10000 00:04<00:00, loss=0.1234, ..."
BAR_FORMAT = "{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {elapsed}<{remaining}{postfix}"
BAR_MAX_COLS = 100


def tqdm_for(progress):
    """tqdm's bar class for a ``progress`` setting (True, False, or None: only on a terminal),
    or None for no bar (also when tqdm is not installed)."""
    if progress is False:
        return None
    if progress is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def progress_bar(tqdm, total, file=None, initial=0):
    """The training bar: a fixed width (the terminal's, at most ``BAR_MAX_COLS``) and a short format,
    so percentage, counts, times and the loss/train/test postfix stay on one line at 80 columns."""
    kw = {"total": total, "initial": initial, "unit": "it", "leave": True, "file": file}
    if "notebook" not in getattr(tqdm, "__module__", ""):  # a notebook's widget sizes itself
        kw.update(ncols=min(shutil.get_terminal_size((80, 24)).columns, BAR_MAX_COLS), bar_format=BAR_FORMAT)
    return tqdm(**kw)


def show_progress(bar, step: int, history) -> None:
    """Move ``bar`` to ``step`` with the last loss and accuracies of ``history`` beside it (set
    before the move, whose refresh shows them: set after, they lagged one report behind)."""
    post = {}
    if history.loss:
        post["loss"] = f"{history.loss[-1]:.4f}"
    if history.train_acc:
        post["train"] = f"{history.train_acc[-1]:.4f}"
        if history.test_acc:
            post["test"] = f"{history.test_acc[-1]:.4f}"
    bar.set_postfix(post, refresh=False)
    bar.update(step - bar.n)


def epoch_line(step: int, iter_per_epoch: int, train_acc: float, test_acc=None, test_loss=None) -> str:
    """The line ``fit`` logs at an evaluation: its epoch and step, the accuracies, the test loss."""
    return f"epoch {step // iter_per_epoch:>3} (iter {step:>6}): train acc {train_acc:.4f}" + (
        f", test acc {test_acc:.4f}, test loss {test_loss:.4f}" if test_acc is not None else "")

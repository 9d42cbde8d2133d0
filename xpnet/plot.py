"""Loss and accuracy curves as a PNG (matplotlib is an optional extra: ``xpnet[plot]``)."""

from __future__ import annotations

import os

from .atomic import write_atomic

__all__ = ["plot_history", "PlotUnavailable"]


class PlotUnavailable(ImportError):
    pass


def plot_history(history, path) -> str:
    """Draw the per-iteration loss and the per-epoch train/test accuracy side by side."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PlotUnavailable("matplotlib is not installed: pip install 'xpnet[plot]'") from e
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    if history.loss:
        ax1.plot(range(len(history.loss)), history.loss, lw=0.6)
    ax1.set(xlabel="iteration", ylabel="loss", title="training loss")
    ax2.plot(history.eval_iters, history.train_acc, marker="o", ms=3, label="train")
    if history.test_acc:
        ax2.plot(history.eval_iters, history.test_acc, marker="s", ms=3, ls="--", label="test")
    ax2.set(xlabel="iteration", ylabel="accuracy", ylim=(0, 1.0), title="accuracy")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    path = os.fspath(path)
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path

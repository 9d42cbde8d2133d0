"""Loss and accuracy curves as a PNG (matplotlib is an optional extra: ``xpnet[plot]``).

Two panels, epochs on both x axes: the training loss on a log scale (each iteration faint, a
moving average over it, and the test loss per evaluation when the history has one), and the
train/test accuracy on a y axis that starts a little under the lowest accuracy after the first
epoch, so 0.90-0.99 and the gap between train and test are readable. The title is the run: net,
device, optimizer, learning rate, batch size and the final test accuracy.
"""

from __future__ import annotations

import math
import os

from .atomic import write_atomic
from .exceptions import PlotUnavailable

__all__ = ["plot_history", "run_label", "PlotUnavailable"]


def _cfg(history) -> dict:
    return getattr(history, "config", None) or {}


def iters_per_epoch(history) -> float:
    """Iterations per epoch (training samples // batch size), else the evaluation interval, else 1."""
    cfg = _cfg(history)
    n, bs = cfg.get("n_train"), cfg.get("batch_size")
    if n and bs:
        return max(n // bs, 1)
    return cfg.get("eval_interval") or 1


def run_label(history) -> str:
    """One line naming the run: 'TwoLayerNet 784-50-10 relu float32 on cpu, SGD lr 0.1, batch 100, ...'."""
    cfg = _cfg(history)
    net = cfg.get("net") or {}
    parts = [net.get("class", "net")]
    if net.get("sizes"):
        parts.append("-".join(str(s) for s in net["sizes"]))
    parts += [str(net[k]) for k in ("activation", "dtype") if net.get(k)]
    label = " ".join(parts)
    if cfg.get("device"):
        label += f" on {cfg['device']}"
    if cfg.get("optimizer"):
        label += f", {cfg['optimizer']}" + (f" lr {cfg['lr']:g}" if isinstance(cfg.get("lr"), (int, float)) else "")
    if cfg.get("batch_size"):
        label += f", batch {cfg['batch_size']}"
    if cfg.get("iters"):
        label += f", {cfg['iters']} iterations"
    final = getattr(history, "final_test_acc", None)
    if final is not None:
        label += f": final test accuracy {final:.4f}"
    return label


def _smooth(values, window):
    """A trailing moving average (the first points average what there is)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_history(history, path) -> str:
    """Draw the loss (log scale) and the train/test accuracy per epoch side by side; returns the path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PlotUnavailable("matplotlib is not installed: pip install 'xpnet[plot]'") from e
    per_epoch = iters_per_epoch(history)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    fig.suptitle(run_label(history), fontsize=10)

    loss = list(history.loss)
    if loss:
        xs = [i / per_epoch for i in range(len(loss))]
        positive = all(v > 0 and math.isfinite(v) for v in loss)
        ax1.plot(xs, loss, lw=0.5, alpha=0.3, color="C0", label="train loss (each iteration)")
        window = max(1, min(len(loss) // 20 or 1, int(per_epoch) // 3 or 1, 200))
        ax1.plot(xs, _smooth(loss, window), lw=1.6, color="C0", label=f"train loss (mean of {window})")
        if positive:
            ax1.set_yscale("log")
    test_loss = getattr(history, "test_loss", None)
    if test_loss and len(test_loss) == len(history.eval_iters):
        ax1.plot([i / per_epoch for i in history.eval_iters], test_loss, marker="s", ms=3, ls="--",
                 color="C1", label="test loss")
    ax1.set(xlabel="epoch", ylabel="loss" + (" (log scale)" if loss and ax1.get_yscale() == "log" else ""),
            title="loss")
    ax1.grid(True, which="both", alpha=0.25)
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(loc="upper right", fontsize=8)

    epochs = [i / per_epoch for i in history.eval_iters]
    ax2.plot(epochs, history.train_acc, marker="o", ms=3, color="C0", label="train")
    if history.test_acc:
        ax2.plot(epochs, history.test_acc, marker="s", ms=3, ls="--", color="C1", label="test")
    # the points after the first evaluation set the scale (the first, at iteration 0, is chance level)
    later = [v for vs in (history.train_acc, history.test_acc) for v in vs[1:]]
    final_iter = (_cfg(history).get("iters") or (history.eval_iters[-1] if history.eval_iters else 0))
    finals = [(a, name) for a, name in ((getattr(history, "final_train_acc", None), "train"),
                                         (getattr(history, "final_test_acc", None), "test")) if a is not None]
    for (a, name), color, marker in zip(finals, ("C0", "C1"), ("o", "s")):
        ax2.plot([final_iter / per_epoch], [a], marker=marker, ms=7, mfc="none", color=color, ls="none")
        ax2.annotate(f"{name} {a:.4f}", (final_iter / per_epoch, a), textcoords="offset points",
                     xytext=(-6, -14 if name == "test" else 6), ha="right", fontsize=8, color=color)
        later.append(a)
    low = min(later) if later else min(history.train_acc + history.test_acc, default=0.0)
    bottom = max(0.0, low - max(0.2 * (1.0 - low), 0.01))
    ax2.set_ylim(bottom, 1.0 + 0.02 * (1.0 - bottom))
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy (final values circled)")
    if len(history.train_acc) > 1 and history.train_acc[0] < bottom:
        ax2.annotate(f"epoch 0: {history.train_acc[0]:.2f}", (0, bottom), textcoords="offset points",
                     xytext=(4, 4), fontsize=8, color="gray")
    ax2.grid(True, alpha=0.25)
    ax2.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = os.fspath(path)
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path

"""How a run fails without an error of its own, caught and named: a loss that became NaN or
infinite, parameters that did (when no loss is recorded), and a collapse that produced no NaN
but left the accuracy at chance level. Each message names the iteration and the fix."""

from __future__ import annotations

import math

from .exceptions import TrainingDivergedError

__all__ = ["check_losses", "check_params", "chance_level"]


def check_losses(losses, first_iter: int, lr) -> None:
    """Raise ``TrainingDivergedError`` at the first loss of ``losses`` (host floats of the
    iterations from ``first_iter`` on) that is NaN or infinite."""
    bad = next((j for j, v in enumerate(losses) if not math.isfinite(v)), None)
    if bad is not None:
        raise TrainingDivergedError(f"the loss became {losses[bad]} at iteration {first_iter + bad}; training "
                                    f"diverged. Try a smaller learning rate (now {lr}).")


def check_params(params: dict, xp, by_iter: int, lr) -> None:
    """Raise ``TrainingDivergedError`` when a parameter holds NaN or infinity (one reduction each)."""
    if not all(bool(xp.all(xp.isfinite(p))) for p in params.values()):
        raise TrainingDivergedError(f"the parameters became NaN/inf by iteration {by_iter}; "
                                    f"try a smaller learning rate (now {lr}).")


def chance_level(train_acc: float, num_classes: int, iters: int, iter_per_epoch, lr) -> str:
    """Why a finished run did not learn, or "": a huge learning rate, say, can leave the accuracy
    at chance level without a NaN, and that must not pass for a result."""
    c = num_classes
    if c > 1 and train_acc <= 1.5 / c and iters >= max(200, iter_per_epoch):  # long enough to learn
        return (f"the run did not learn: training accuracy {train_acc:.4f} after {iters} steps is at "
                f"chance level for {c} classes; it diverged or is stuck -- try a smaller learning rate "
                f"(now {lr}) or another weight_init")
    return ""

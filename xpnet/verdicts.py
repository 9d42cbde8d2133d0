"""How a run fails without an error of its own, caught and named: a loss that became NaN or
infinite, parameters that did (when no loss is recorded), and a collapse that produced no NaN
but left the accuracy at chance level. Each message names the iteration and the fix."""

from __future__ import annotations

import math
import os
import sys
import warnings

from .exceptions import TrainingDivergedError

__all__ = ["check_losses", "check_params", "chance_level", "check_grads_fit", "warn_outside", "GRADCHECK_HINT"]

GRADCHECK_HINT = " (or a backward is wrong: xpnet.gradcheck(net, x, t) checks each layer of your net)"
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def check_losses(losses, first_iter: int, lr, hint: str = "") -> None:
    """Raise ``TrainingDivergedError`` at the first loss of ``losses`` (host floats of the
    iterations from ``first_iter`` on) that is NaN or infinite."""
    bad = next((j for j, v in enumerate(losses) if not math.isfinite(v)), None)
    if bad is not None:
        raise TrainingDivergedError(f"the loss became {losses[bad]} at iteration {first_iter + bad}; training "
                                    f"diverged. Try a smaller learning rate (now {lr}){hint}.")


def check_params(params: dict, xp, by_iter: int, lr, hint: str = "") -> None:
    """Raise ``TrainingDivergedError`` when a parameter holds NaN or infinity (one reduction each)."""
    if not all(bool(xp.all(xp.isfinite(p))) for p in params.values()):
        raise TrainingDivergedError(f"the parameters became NaN/inf by iteration {by_iter}; "
                                    f"try a smaller learning rate (now {lr}){hint}.")


def chance_level(train_acc: float, num_classes: int, iters: int, iter_per_epoch, lr, hint: str = "") -> str:
    """Why a finished run did not learn, or "": a huge learning rate, say, can leave the accuracy
    at chance level without a NaN, and that must not pass for a result."""
    c = num_classes
    if c > 1 and train_acc <= 1.5 / c and iters >= max(200, iter_per_epoch):  # long enough to learn
        return (f"the run did not learn: training accuracy {train_acc:.4f} after {iters} steps is at "
                f"chance level for {c} classes; it diverged or is stuck -- try a smaller learning rate "
                f"(now {lr}) or another weight_init{hint}")
    return ""


def check_grads_fit(grads, params: dict) -> None:
    """A step's gradients are the parameters' keys and shapes: a wrong backward is named here,
    pointing at gradcheck, before an optimizer broadcasts a (1, n) gradient over (m, n) silently."""
    if not isinstance(grads, dict) or grads.keys() != params.keys():
        have = sorted(grads) if isinstance(grads, dict) else type(grads).__name__
        raise ValueError(f"the net's gradient gave {have} for the parameters {sorted(params)}: each parameter needs "
                         f"its gradient{GRADCHECK_HINT}")
    for k, p in params.items():
        if tuple(getattr(grads[k], "shape", ())) != tuple(p.shape):
            raise ValueError(f"the net's gradient of {k!r} has shape {tuple(getattr(grads[k], 'shape', ()))}, the "
                             f"parameter {tuple(p.shape)}: a layer's backward is wrong; xpnet.gradcheck(net, x, t) "
                             "names the layer")


def warn_outside(message: str) -> None:
    """A ``RuntimeWarning`` attributed to the first caller outside xpnet: the user's line."""
    level, frame = 1, sys._getframe(0)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, RuntimeWarning, stacklevel=level)

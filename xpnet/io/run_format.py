"""What a training run's checkpoint records beside the net, and its check as a whole before a
run continues from it: a resumed run that starts from a damaged record trains on, silently wrong.

The record (the checkpoint's state meta, format ``xpnet-run-1``): ``step``, ``device``, ``rng``
(the batches' generator), ``optimizer`` (its class, settings and counters; its arrays are the
checkpoint's ``state/optimizer/<buffer>/<param>``), ``history`` and ``trainer`` (the settings
below, the sizes of the data and its fingerprint, the processes that trained it).
"""

from __future__ import annotations

import math
import numbers

from ..exceptions import CheckpointError

__all__ = ["RUN_FORMAT", "RUN_FIELDS", "SETTINGS", "check_run_record"]

RUN_FORMAT = "xpnet-run-1"
RUN_FIELDS = ("format", "step", "device", "rng", "optimizer", "history", "trainer")


def _int(low):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _flag(v):
    return isinstance(v, bool)


def _seed(v):
    return v is None or _int(0)(v)


def _text(v):
    return isinstance(v, str) and 0 < len(v) <= 200


SETTINGS = {"batch_size": _int(1), "iters": _int(1), "eval_interval": _int(1), "eval_batch_size": _int(1),
            "report_every": _int(1), "record_loss": _flag, "final_eval": _flag, "seed": _seed,
            "n_train": _int(1), "n_test": _int(0), "processes": _int(1), "data": _text}


def _number(v, low=-math.inf, high=math.inf):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and low <= v <= high


def check_run_record(meta: dict, path) -> None:
    """Refuse a run record that is incomplete or does not add up, naming the field: a step that
    is negative, past ``iters`` or not the history's; missing or unknown fields and settings; a
    history of other than numbers, or of evaluations after the step."""
    def damaged(why):
        return CheckpointError(f"{path}: the saved training run is damaged: {why}; the file was edited or damaged "
                               "(an earlier checkpoint of the run, or a fresh run, is the way on)")

    missing = [k for k in RUN_FIELDS if k not in meta]
    if missing:
        raise damaged(f"its record lacks {', '.join(map(repr, missing))}")
    unknown = sorted(set(meta) - set(RUN_FIELDS))
    if unknown:
        raise damaged(f"its record has unknown fields {unknown[:5]}")
    settings = meta["trainer"]
    if not isinstance(settings, dict):
        raise damaged(f"'trainer' is a {type(settings).__name__}, not an object")
    for name, ok in SETTINGS.items():
        if name not in settings:
            raise damaged(f"the trainer settings lack {name!r}")
        if not ok(settings[name]):
            raise damaged(f"the trainer setting {name!r} is {str(settings[name])[:60]!r}")
    extra = sorted(set(settings) - set(SETTINGS))
    if extra:
        raise damaged(f"unknown trainer settings {extra[:5]}")
    step = meta["step"]
    if not _int(0)(step):
        raise damaged(f"the step is {str(step)[:40]!r}, not a count of steps done")
    if step > settings["iters"]:
        raise damaged(f"it is at step {step}, past its own iters={settings['iters']}")
    if not isinstance(meta["rng"], dict) or not isinstance(meta["optimizer"], dict):
        raise damaged("'rng' and 'optimizer' must be objects")
    _check_history(meta["history"], step, settings, damaged)


def _check_history(h, step: int, settings: dict, damaged) -> None:
    if not isinstance(h, dict):
        raise damaged(f"the history is a {type(h).__name__}, not an object")
    if h.get("step") != step:
        raise damaged(f"the history was recorded at step {str(h.get('step'))[:40]}, the checkpoint at step {step}")
    for name in ("loss", "train_acc", "test_acc", "eval_iters", "test_loss"):
        v = h.get(name, [])
        if not isinstance(v, list):
            raise damaged(f"the history's {name!r} is a {type(v).__name__}, not a list")
        low, high = (0, 1) if name.endswith("acc") else (0, step) if name == "eval_iters" else (-math.inf, math.inf)
        bad = next((x for x in v if not _number(x, low, high) or (name == "eval_iters" and not _int(0)(x))), None)
        if bad is not None or (name in ("loss", "test_loss") and not all(math.isfinite(x) for x in v)):
            what = "steps up to the checkpoint's" if name == "eval_iters" else \
                "accuracies in [0, 1]" if name.endswith("acc") else "finite numbers"
            raise damaged(f"the history's {name!r} holds {str(bad)[:40]!r}; it must hold {what}")
    evals = h.get("eval_iters", [])
    if any(b <= a for a, b in zip(evals, evals[1:])):
        raise damaged("the history's evaluations are not in the order of their steps")
    lists = {name: len(h.get(name, [])) for name in ("train_acc", "test_acc", "test_loss")}
    tested = len(evals) if settings["n_test"] else 0
    if lists["train_acc"] != len(evals) or lists["test_acc"] != tested or lists["test_loss"] != tested:
        raise damaged(f"the history has {len(evals)} evaluations but {lists['train_acc']} training and "
                      f"{lists['test_acc']} test accuracies")
    n_loss = len(h.get("loss", []))
    if n_loss != (step if settings["record_loss"] else 0):
        raise damaged(f"the history holds {n_loss} losses for {step} steps"
                      + ("" if settings["record_loss"] else " of a run that records none"))

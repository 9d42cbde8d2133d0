"""What a training run recorded: the book's three lists, and what xpnet keeps beside them.

The book's ``Trainer`` keeps ``train_loss_list``, ``train_acc_list`` and ``test_acc_list``; a
``History`` holds the same lists (as ``loss``, ``train_acc``, ``test_acc``, and under the book's
names too: the very same list objects), plus when each evaluation ran, the test loss, the final
accuracies and the run's settings, so that it saves to JSON and goes into a checkpoint whole.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from .atomic import write_atomic

__all__ = ["History"]


@dataclass
class History:
    """What a run recorded; ``train_loss_list`` is ``loss``, under the book's name (and so on)."""

    loss: list = field(default_factory=list)  # per iteration (when recorded)
    train_acc: list = field(default_factory=list)  # per evaluation (epoch)
    test_acc: list = field(default_factory=list)
    eval_iters: list = field(default_factory=list)  # the iteration of each evaluation
    test_loss: list = field(default_factory=list)  # per evaluation, over the whole test set
    step: int = 0  # iterations done when this was written
    verdict: str = ""  # "" (fine) or why the run did not learn (chance-level accuracy)
    wall_time_s: float = 0.0  # the loop and its per-epoch evaluations
    final_train_acc: float | None = None  # after the last iteration (not part of the per-epoch lists)
    final_test_acc: float | None = None
    final_test_loss: float | None = None
    config: dict = field(default_factory=dict)

    @property
    def train_loss_list(self) -> list:
        return self.loss

    @property
    def train_acc_list(self) -> list:
        return self.train_acc

    @property
    def test_acc_list(self) -> list:
        return self.test_acc

    def record_eval(self, step: int, train_acc: float, test_acc=None, test_loss=None) -> None:
        """An evaluation after ``step`` steps (a test accuracy and loss when there is a test set)."""
        self.eval_iters.append(step)
        self.train_acc.append(train_acc)
        if test_acc is not None:
            self.test_acc.append(test_acc)
        if test_loss is not None:
            self.test_loss.append(test_loss)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        """A history saved by ``to_dict`` (a checkpoint's); unknown keys are refused."""
        if not isinstance(d, dict):
            raise ValueError(f"a saved history must be a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            raise ValueError(f"a saved history has unknown fields {extra}")
        return cls(**d)

    def save_json(self, path) -> None:
        data = json.dumps(self.to_dict(), indent=1).encode()
        write_atomic(path, lambda f: f.write(data))

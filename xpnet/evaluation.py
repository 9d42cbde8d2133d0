"""Accuracy and loss over a whole split, in batches on the device, so memory stays bounded.

A net with xpnet's fast path (``protocols.FastNet``) is evaluated on the trusted rows of a
``Split``, with one host transfer per split; a reader's net through its own ``accuracy(x, t)``
and ``loss(x, t)``, batch by batch, weighted by batch size. With a communicator of several
processes, each evaluates its shard of the rows and the counts are summed.
"""

from __future__ import annotations

from .distributed import shard
from .nets import last_layer_of
from .protocols import takes_onehot

__all__ = ["accuracy", "accuracy_and_loss"]


def accuracy(net, split, batch_size: int, comm, fast: bool) -> float:
    """The fraction of ``split`` that ``net`` classifies right."""
    n = len(split)
    if fast:
        a, b = shard(n, comm)
        correct = net.count_correct(split.x[a:b, ...], split.labels[a:b], batch_size)
        return comm.allreduce_scalars([correct])[0] / n
    correct = 0
    for i in range(0, n, batch_size):
        j = min(i + batch_size, n)
        correct += round(float(net.accuracy(split.x[i:j, ...], split.t[i:j, ...])) * (j - i))
    return correct / n


def accuracy_and_loss(net, split, batch_size: int, comm, fast: bool) -> tuple[float, float]:
    """(accuracy, mean loss) on ``split``: one forward pass per batch where the net's loss layer
    takes one-hot rows (``split.onehot``), else the net's own ``accuracy`` and ``loss``."""
    x, n, last = split.x, len(split), last_layer_of(net)
    if not (fast and takes_onehot(last) and split.onehot is not None):
        loss = sum(float(net.loss(x[i:min(i + batch_size, n), ...], split.t[i:min(i + batch_size, n), ...]))
                   * (min(i + batch_size, n) - i) for i in range(0, n, batch_size)) / n
        return accuracy(net, split, batch_size, comm, fast), loss
    xp, correct, loss = net.device.xp, None, None
    lo, hi = shard(n, comm)
    for i in range(lo, hi, batch_size):
        j = min(i + batch_size, hi)
        scores = net.forward(x[i:j, ...])
        c = xp.sum(xp.astype(xp.argmax(scores, axis=1) == split.labels[i:j], xp.int64))
        last.forward_onehot(scores, split.onehot[i:j, ...])
        part = last.loss * (j - i)
        correct = c if correct is None else correct + c
        loss = part if loss is None else loss + part
    c, total = (int(correct), float(loss)) if correct is not None else (0, 0.0)
    c, total = comm.allreduce_scalars([c, total])
    penalty = net.penalty() if getattr(net, "weight_decay_lambda", 0) else 0.0  # weight decay, as net.loss has it
    return c / n, total / n + float(penalty)

"""A data split on the net's device, checked once where it enters, so that a step checks nothing.

``place`` takes host (NumPy) arrays or arrays of the device, refuses what would train wrongly
(integers for images, NaN, labels out of range, the wrong number of features), converts to the
net's dtype once, and derives the integer labels every evaluation compares against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .backend import is_host_data
from .functions import one_hot
from .validation import check_features, check_finite, check_labels, check_no_grad, index_labels, label_column

__all__ = ["Split", "place", "class_count"]


@dataclass
class Split:
    """One split's arrays on the device: ``x`` in the net's dtype, ``t`` as given (integer
    labels or one-hot rows), ``labels`` the integer classes, ``onehot`` the one-hot rows in the
    net's dtype (made by ``with_onehot``, for a step that gathers its targets with one take)."""

    x: Any
    t: Any
    labels: Any
    onehot: Any = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def head(self, m: int | None) -> Split:
        """The first ``m`` samples (all for None), as the book's ``x_train[:m]``."""
        if m is None or m >= len(self):
            return self
        return Split(self.x[:m, ...], self.t[:m, ...], self.labels[:m],
                     None if self.onehot is None else self.onehot[:m, ...])

    def fingerprint(self, device) -> str:
        """A digest of the labels and of about 1000 evenly spaced samples, exactly as placed: a run
        resumed on other data of the same size (shuffled, rescaled, another dataset) is refused,
        at the cost of one small transfer rather than hashing every sample."""
        import hashlib

        every = max(1, len(self) // 1024)
        h = hashlib.blake2b(digest_size=16)
        for a in (self.x[::every, ...], self.t):
            host = device.to_numpy(a)
            h.update(f"{tuple(a.shape)} {host.dtype.str};".encode())
            h.update(host.tobytes())
        return h.hexdigest()

    def with_onehot(self, num_classes: int, dtype, xp) -> Split:
        """The targets as rows of ``dtype``: one-hot rows of integer labels; rows given (one-hot
        or soft, label-smoothed ones) kept as they are, never rebuilt from their argmax."""
        if self.t.ndim == 2 and xp.isdtype(self.t.dtype, "real floating"):
            self.onehot = xp.astype(self.t, dtype, copy=True)
        else:
            self.onehot = one_hot(self.labels, num_classes, dtype, xp)
        return self


def place(x, t, split: str, device, dtype, n_features: int | None = None, num_classes: int | None = None) -> Split:
    """``x_<split>`` and ``t_<split>`` checked and on ``device``: ``x`` in ``dtype``, reshaped to
    (N, n_features) when the net says its ``n_features`` (images (N, 1, 28, 28) included);
    ``num_classes`` (or, for a reader's net, the labels themselves) bounds the labels."""
    xp = device.xp
    if x is None or t is None:
        raise ValueError(f"x_{split} and t_{split} must both be given")
    check_no_grad(x, f"x_{split}")
    check_no_grad(t, f"t_{split}")
    if not device.owns(x):
        if not is_host_data(x):
            raise ValueError(f"x_{split} is not on the net's device {device.name!r}; pass host (NumPy) data "
                             "or arrays of that device")
        x = device.asarray(x)
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"x_{split} must be floating point (scale images to [0, 1]), got {x.dtype}")
    if x.dtype != dtype:  # converted once, on arrival, never inside the step
        x = xp.astype(x, dtype)
    if n_features is not None:
        check_features(x, n_features, f"x_{split}")
        if x.ndim != 2:
            x = xp.reshape(x, (-1, n_features))
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x_{split} holds no samples (shape {tuple(x.shape)}): pass at least one, "
                         f"samples along the first axis")
    check_finite(x, f"x_{split}", xp)
    if not device.owns(t):
        if not is_host_data(t):
            raise ValueError(f"t_{split} is not on the net's device {device.name!r}")
        t = device.asarray(t)
    t = label_column(t, x.shape[0], xp)
    c = num_classes
    if c is None:  # a reader's net: the labels say how many classes there are
        c = t.shape[1] if t.ndim == 2 else int(xp.max(t)) + 1 if t.shape[0] else 1
    form = check_labels(t, x.shape[0], c, xp, name=f"t_{split}")
    return Split(x, t, xp.argmax(t, axis=1) if form == "onehot" else index_labels(t, xp))


def class_count(train: Split, test: Split | None, num_classes: int | None, xp) -> int:
    """The number of classes: the net's when it says, else the one-hot width or the largest label + 1."""
    if num_classes is not None:
        return num_classes
    if train.t.ndim == 2:
        return train.t.shape[1]
    top = int(xp.max(train.labels))
    if test is not None:
        top = max(top, int(xp.max(test.labels)))
    return top + 1

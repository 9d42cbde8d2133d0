"""Activation and loss functions (the book's ``common/functions.py``), Array API only.

Every function takes an optional ``xp``: layers pass the namespace they resolved once, so
the hot path never pays ``array_namespace`` (1-2 us a call); a direct call resolves it from
the inputs.  Nothing here upcasts: a float32 input gives a float32 result.
"""

from __future__ import annotations

from array_api_compat import array_namespace

from .validation import check_labels

__all__ = [
    "identity_function",
    "sigmoid",
    "sigmoid_grad",
    "relu",
    "relu_grad",
    "softmax",
    "log_softmax",
    "one_hot",
    "cross_entropy_error",
    "softmax_cross_entropy",
]


def identity_function(x, xp=None):
    return x


def sigmoid(x, xp=None):
    """1 / (1 + exp(-x)), without overflow for large |x| (exp only sees -|x|)."""
    xp = xp or array_namespace(x)
    e = xp.exp(-xp.abs(x))
    inv = 1.0 / (1.0 + e)
    return xp.where(x >= 0, inv, e * inv)


def sigmoid_grad(x, xp=None):
    y = sigmoid(x, xp)
    return (1.0 - y) * y


def relu(x, xp=None):
    xp = xp or array_namespace(x)
    return xp.maximum(x, 0.0)


def relu_grad(x, xp=None):
    xp = xp or array_namespace(x)
    return xp.astype(x > 0, x.dtype)


def softmax(x, xp=None):
    """Softmax over the last axis: each row of a batch is normalised on its own."""
    xp = xp or array_namespace(x)
    e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
    e /= xp.sum(e, axis=-1, keepdims=True)
    return e


def log_softmax(x, xp=None):
    xp = xp or array_namespace(x)
    z = x - xp.max(x, axis=-1, keepdims=True)
    return z - xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True))


def one_hot(t, num_classes: int, dtype=None, xp=None, eye=None):
    """Integer labels ``(N,)`` as one-hot rows ``(N, num_classes)``: rows of the identity matrix.

    ``eye`` may pass a kept ``eye(num_classes)`` of ``dtype`` (a net builds it once)."""
    xp = xp or array_namespace(t)
    dtype = dtype if dtype is not None else xp.float32
    if eye is None:
        eye = xp.eye(num_classes, dtype=dtype, device=t.device)
    return xp.take(eye, t, axis=0)


def _batch_and_onehot(y, t, xp, check):
    """(scores of shape (N, C), one-hot targets (N, C)) from one sample or a batch, and integer
    or one-hot labels -- validated as the book's functions never were."""
    if y.ndim == 1:  # one sample, as the book allows
        y = xp.reshape(y, (1, y.shape[0]))
        t = xp.reshape(t, (1, -1)) if t.ndim == 1 and xp.isdtype(t.dtype, "real floating") \
            else xp.reshape(t, (1,))
    if y.ndim != 2:
        raise ValueError(f"expected scores of shape (N, C) or (C,), got {y.ndim}-d shape {tuple(y.shape)}")
    n, c = y.shape
    if check_labels(t, n, c, xp, check_range=check) == "index":
        t = one_hot(t, c, y.dtype, xp)
    elif t.dtype != y.dtype:
        t = xp.astype(t, y.dtype)
    return y, t


def cross_entropy_error(y, t, xp=None, check=True):
    """Mean cross entropy of probabilities ``y`` against one-hot or integer labels ``t``.

    ``y`` is clipped at the dtype's smallest normal number instead of the book's
    ``y + 1e-7``, which biases the loss of confident predictions.
    """
    xp = xp or array_namespace(y, t)
    y, t = _batch_and_onehot(y, t, xp, check)
    tiny = xp.finfo(y.dtype).smallest_normal
    return -xp.sum(t * xp.log(xp.maximum(y, tiny))) / y.shape[0]


def softmax_cross_entropy(x, t, xp=None, check=True):
    """Cross entropy of ``softmax(x)`` computed from the logits (log-sum-exp, exact)."""
    xp = xp or array_namespace(x, t)
    x, t = _batch_and_onehot(x, t, xp, check)
    return -xp.sum(t * log_softmax(x, xp)) / x.shape[0]

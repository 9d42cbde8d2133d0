"""Activation and loss functions (the book's ``common/functions.py``), Array API only.

Every function takes an optional ``xp``: layers pass the namespace they resolved once, so
the hot path never pays for ``array_namespace``; a direct call resolves it from
the inputs.  Nothing here upcasts: a float32 input gives a float32 result.
"""

from __future__ import annotations

from array_api_compat import array_namespace

from .validation import check_labels, check_samples, label_column, index_labels, is_kind, positive_int, shape_str

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
    return xp.maximum(x, xp.zeros((), dtype=x.dtype, device=x.device))  # no host scalar to copy over


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


def one_hot(t, num_classes: int, dtype=None, xp=None, eye=None, check=True):
    """Integer labels ``(N,)`` as one-hot rows ``(N, num_classes)``: rows of the identity matrix.

    Labels are checked: an integer dtype (uint8 from MNIST files included), shape (N,), values in
    [0, num_classes - 1] -- the identity's rows would silently wrap a -1 around to the last class.
    ``check=False`` skips the checks (the range scan is a reduction) for labels already
    validated, as the nets' and the trainer's are. ``eye`` may pass a kept
    ``eye(num_classes)`` of ``dtype`` (a net builds it once)."""
    xp = xp or array_namespace(t)
    if check:
        num_classes = positive_int("num_classes", num_classes)
        if not hasattr(t, "shape") or not hasattr(t, "dtype"):
            raise TypeError(f"one_hot: t must be an array of integer class labels, got {type(t).__name__}; "
                            f"put it on the device with dev.asarray(labels)")
        if not is_kind(xp, t.dtype, "integral"):
            raise TypeError(f"one_hot: t must hold integer class labels, got dtype {t.dtype}; convert whole-number "
                            f"labels with xp.astype(t, xp.int64) (one-hot rows need no one_hot)")
        if t.ndim != 1:
            raise ValueError(f"one_hot: t must be a 1-d array of class labels (N,), got shape {shape_str(t.shape)}")
        check_labels(t, t.shape[0], num_classes, xp)
    dtype = dtype if dtype is not None else xp.float32
    if eye is None:
        eye = xp.eye(num_classes, dtype=dtype, device=t.device)
    return xp.take(eye, index_labels(t, xp), axis=0)


def _batch_and_onehot(y, t, xp, check, name):
    """(scores of shape (N, C), one-hot targets (N, C)) from one sample or a batch, and integer
    or one-hot labels -- validated as the book's functions never were."""
    if not hasattr(y, "ndim") or not hasattr(y, "dtype"):
        raise TypeError(f"{name} must be an array of scores (N, C), got {type(y).__name__}; "
                        f"put it on the device with dev.asarray(data, dtype=...)")
    if y.ndim == 1:  # one sample, as the book allows
        y = xp.reshape(y, (1, y.shape[0]))
        if getattr(t, "ndim", None) == 0:  # its integer label
            t = xp.reshape(t, (1,))
        elif getattr(t, "ndim", None) == 1 and t.shape[0] == y.shape[1] and is_kind(xp, t.dtype, "real floating"):
            t = xp.reshape(t, (1, -1))  # its one-hot row; anything else is refused by check_labels
    if y.ndim != 2:
        raise ValueError(f"{name}: expected scores of shape (N, C) or (C,), got {y.ndim}-d shape {tuple(y.shape)}")
    n, c = y.shape
    check_samples(n, name, "the mean cross entropy")
    t = label_column(t, n, xp) if hasattr(t, "dtype") else t
    if check_labels(t, n, c, xp, check_range=check) == "index":
        t = one_hot(t, c, y.dtype, xp, check=False)
    elif t.dtype != y.dtype:
        t = xp.astype(t, y.dtype)
    return y, t


def cross_entropy_error(y, t, xp=None, check=True):
    """Mean cross entropy of probabilities ``y`` against one-hot or integer labels ``t``.

    ``y`` is clipped at the dtype's smallest normal number instead of the book's
    ``y + 1e-7``, which biases the loss of confident predictions.
    """
    xp = xp or array_namespace(y, t)
    y, t = _batch_and_onehot(y, t, xp, check, "y")
    tiny = xp.finfo(y.dtype).smallest_normal
    return -xp.sum(t * xp.log(xp.maximum(y, tiny))) / y.shape[0]


def softmax_cross_entropy(x, t, xp=None, check=True):
    """Cross entropy of ``softmax(x)`` computed from the logits (log-sum-exp, exact)."""
    xp = xp or array_namespace(x, t)
    x, t = _batch_and_onehot(x, t, xp, check, "x")
    return -xp.sum(t * log_softmax(x, xp)) / x.shape[0]

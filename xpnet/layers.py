"""Computational-graph layers of the book's chapters 5 and 6, written once for every Array API backend.

Each layer keeps the book's names and signatures (``forward(...)``, ``backward(dout)``), minus
its traps: ``backward`` never writes into the caller's ``dout``; no Python-scalar-vs-array
dependence; no float64 upcasts.  Parameterised layers resolve their namespace once, from their
parameters; parameter-free layers resolve it on their first call and keep it. Layers that
behave differently in training and in testing (``Dropout``, ``BatchNormalization``) take the
book's ``forward(x, train_flg=True)``; nets pass the flag to every layer whose forward has it.
"""

from __future__ import annotations

from array_api_compat import array_namespace

import contextlib
import math

from .backend import device_of, scope_of
from .fast import Kept, column_sums, conv_kernels, row_sums, total, zero_of
from .validation import check_features, check_labels, check_samples, label_column, shape_str, unit_interval
from .functions import one_hot, sigmoid
from .util import col2im, conv_output_size, im2col, padded, windows

__all__ = ["MulLayer", "AddLayer", "Relu", "Sigmoid", "Tanh", "Affine", "SoftmaxWithLoss", "Dropout",
           "BatchNormalization", "Convolution", "Pooling", "layer_param_names", "layer_state_names"]

BOOK_PARAM_NAMES = ("W", "b", "gamma", "beta")


def layer_param_names(layer) -> list:
    """What a layer's parameters are: the names it declares in ``param_names``, else the book's
    parameter names (W, b, gamma, beta) it holds as floating arrays. Gradients are ``d<name>``.
    Cached arrays (``x``, ``out``, ``mask``, running statistics) are never parameters."""
    declared = getattr(layer, "param_names", None)
    if declared is not None:
        return [declared] if isinstance(declared, str) else list(declared)
    names = []
    for k in BOOK_PARAM_NAMES:
        v = getattr(layer, k, None)
        if hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, type):
            try:
                if array_namespace(v).isdtype(v.dtype, "real floating"):
                    names.append(k)
            except TypeError:
                pass
    return names


def layer_state_names(layer) -> list:
    """The arrays a layer learns without gradients and needs at test time (BatchNormalization's
    running statistics): what it declares in ``state_names``, else the book's ``running_mean`` and
    ``running_var`` where it has them. Checkpoints save them; the gradient check puts them back
    after its trial forward passes."""
    declared = getattr(layer, "state_names", None)
    if declared is not None:
        return [declared] if isinstance(declared, str) else list(declared)
    return [n for n in ("running_mean", "running_var") if hasattr(layer, n)]


@contextlib.contextmanager
def held(layers):
    """While entered, forward passes through ``layers`` repeat their random choices (each layer
    with ``hold_mask``, as Dropout, keeps its mask) and leave no trace: the layers' state arrays
    (``layer_state_names``: running statistics) are put back on exit. What a gradient check needs
    to compare losses of one function."""
    layers = list(layers)
    saved = []
    for layer in layers:
        state = {}
        for name in layer_state_names(layer):
            v = getattr(layer, name, None)
            state[name] = v if v is None else array_namespace(v).asarray(v, copy=True)
        saved.append((layer, state))
    with contextlib.ExitStack() as stack:
        for layer in layers:
            if callable(getattr(layer, "hold_mask", None)):
                stack.enter_context(layer.hold_mask())
        try:
            yield
        finally:
            for layer, state in saved:
                for name, v in state.items():
                    setattr(layer, name, v)


def _unbroadcast(grad, like):
    """Sum ``grad`` down to the shape of the forward operand ``like`` (numbers included)."""
    shape = getattr(like, "shape", None)
    gshape = getattr(grad, "shape", ())
    if shape is None:  # a Python number took part: its gradient is a number-like total
        if gshape == ():
            return grad
        xp = array_namespace(grad)
        return xp.sum(grad)
    if gshape == shape:
        return grad
    xp = array_namespace(grad)
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and gshape[i + lead] != 1
    )
    g = xp.sum(grad, axis=axes, keepdims=True) if axes else grad
    return xp.reshape(g, shape)


def _before_forward(layer) -> RuntimeError:
    """A backward with no forward to differentiate (a fresh layer, or a copy's)."""
    return RuntimeError(f"{type(layer).__name__}.backward was called before its forward: backward differentiates "
                        "the last forward, so run forward on the batch first")


class MulLayer:
    """out = x * y; works on numbers and on arrays (broadcasting included)."""

    def __init__(self):
        self.x = None
        self.y = None

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        if self.x is None:
            raise _before_forward(self)
        return _unbroadcast(dout * self.y, self.x), _unbroadcast(dout * self.x, self.y)


class AddLayer:
    """out = x + y; the gradient passes through unchanged (as new objects, never aliases)."""

    def __init__(self):
        self.x_like = None
        self.y_like = None

    def forward(self, x, y):
        self.x_like, self.y_like = x, y
        return x + y

    def backward(self, dout):
        if self.x_like is None:
            raise _before_forward(self)
        return _unbroadcast(dout * 1, self.x_like), _unbroadcast(dout * 1, self.y_like)


class _LazyNamespace:
    """For parameter-free layers: the namespace comes from the first input and is kept."""

    xp = None

    def _bind(self, x):
        self.xp = array_namespace(x)
        return self.xp


class Relu(_LazyNamespace):
    """max(x, 0).  Backward multiplies by the 0/1 mask of the output on a fresh array instead of
    the book's in-place ``dout[mask] = 0``, which silently corrupted the caller's gradient."""

    _kept = None  # fast.Kept: set by __init__

    def __init__(self, xp=None):
        self.xp = xp
        self.out = None
        self._kept = Kept()

    def forward(self, x):
        xp = self.xp or self._bind(x)
        self.out = out = xp.maximum(x, zero_of(x, xp, self._kept))
        return out

    def backward(self, dout):
        # the 0/1 mask as numbers: a boolean-mask write (or array-api-compat's ``sign`` on CuPy and
        # torch, which writes NaNs through one) reads a count back to the host on every call
        if self.out is None:
            raise _before_forward(self)
        return dout * self.xp.astype(self.out > 0, dout.dtype)

    @property
    def mask(self):  # the book's attribute: True where the input was <= 0
        return self.out <= 0


class Tanh(_LazyNamespace):
    """tanh(x); backward uses the saved output: dx = dout * (1 - y**2)."""

    def __init__(self, xp=None):
        self.xp = xp
        self.out = None

    def forward(self, x):
        xp = self.xp or self._bind(x)
        self.out = out = xp.tanh(x)
        return out

    def backward(self, dout):
        y = self.out
        if y is None:
            raise _before_forward(self)
        return dout * (1.0 - y * y)


class Sigmoid(_LazyNamespace):
    """Stable sigmoid; backward uses the saved output: dx = dout * y * (1 - y)."""

    def __init__(self, xp=None):
        self.xp = xp
        self.out = None

    def forward(self, x):
        xp = self.xp or self._bind(x)
        self.out = out = sigmoid(x, xp)
        return out

    def backward(self, dout):
        y = self.out
        if y is None:
            raise _before_forward(self)
        return dout * ((1.0 - y) * y)


class Affine:
    """out = x @ W + b, for x of shape (N, ...) flattened to (N, D) like the book's.

    ``compute_dx=False`` skips ``dout @ W.T`` -- the input gradient of a first layer that
    nobody reads (the largest of the four products of the book's step).
    """

    _kept = None  # fast.Kept: set by __init__

    def __init__(self, W, b, compute_dx: bool = True):
        xp = array_namespace(W, b)
        if W.ndim != 2 or b.shape != (W.shape[1],):
            raise ValueError(
                f"Affine needs W of shape (D, M) and b of shape (M,), got W {shape_str(W.shape)} "
                f"and b {shape_str(b.shape)}"
            )
        self.xp = xp
        self.W, self.b = W, b
        self.compute_dx = compute_dx
        self._kept = Kept()
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        W = self.W
        shape = x.shape
        if x.ndim != 2 or shape[1] != W.shape[0]:
            check_features(x, W.shape[0])  # raises unless only the layout differs
            x = self.xp.reshape(x, (-1, W.shape[0]))
        if x.dtype != W.dtype:
            raise TypeError(
                f"Affine input x has dtype {x.dtype} but W has {W.dtype}; convert one of them "
                "instead of mixing precisions"
            )
        self.original_x_shape = shape
        self.x = x
        out = x @ W
        out += self.b  # in place: one temporary fewer
        return out

    def backward(self, dout):
        x = self.x
        if x is None:
            raise _before_forward(self)
        self.dW = x.T @ dout
        self.db = column_sums(dout, self.xp, self._kept)
        if not self.compute_dx:
            return None
        dx = dout @ self.W.T
        return dx if dx.shape == self.original_x_shape else self.xp.reshape(dx, self.original_x_shape)


class SoftmaxWithLoss(_LazyNamespace):
    """Softmax followed by cross entropy, with the fused backward ``(y - t) / N``.

    ``t`` may be integer labels of shape (N,) or one-hot (probability) rows of shape (N, C).
    The loss is computed from the logits with log-sum-exp, so it is exact where the book's
    ``log(y + 1e-7)`` is biased. As in the book, ``loss`` holds the last batch's loss after
    ``forward`` -- also after a net's ``gradient()`` -- but it is computed when first read, so
    a training step that never reads it never pays for it.
    """

    _kept = None  # fast.Kept: set by __init__

    def __init__(self, xp=None):
        self.xp = xp
        self.y = None
        self.t = None
        self._t_onehot = None
        self._kept = Kept()
        self._loss = None
        self._pieces = None  # (x - rowmax, row sums of exp): what the loss needs, kept until read

    @property
    def loss(self):
        """The last batch's mean cross entropy (a 0-d array of the scores' dtype and device)."""
        if self._loss is None and self._pieces is not None:
            z, s = self._pieces
            xp = self.xp
            with scope_of(z):  # read by the book's loop, outside any scope: on cuda:N, on GPU N
                # -sum(t * log softmax) with log softmax = z - log(s), for rows of t that sum to 1
                per_row = xp.log(s)[:, 0] - xp.vecdot(self._t_onehot, z)
                self._loss = total(per_row, xp, self._kept) / z.shape[0]
            self._pieces = None
        return self._loss

    @loss.setter
    def loss(self, value):  # the book's layers assign it; a subclass may too
        self._loss, self._pieces = value, None

    def forward(self, x, t, check: bool = True):
        """The book's forward: validates ``t`` (either label form; ``check=False`` skips the
        value scans -- integer range, one-hot rows summing to 1 -- of labels already checked)
        and returns the loss."""
        xp = self.xp or self._bind(x)
        if getattr(x, "ndim", None) != 2:
            raise ValueError(f"SoftmaxWithLoss expects scores of shape (N, C), got "
                             f"{shape_str(x.shape) if hasattr(x, 'shape') else type(x).__name__}")
        n, c = x.shape
        check_samples(n, "x", "SoftmaxWithLoss's mean loss")
        t = label_column(t, n, xp) if hasattr(t, "dtype") else t
        t1 = one_hot(t, c, x.dtype, xp, check=False) if check_labels(t, n, c, xp, check) == "index" else t
        if t1.dtype != x.dtype:  # float64 one-hot rows from np.eye on a float32 net, say
            t1 = xp.astype(t1, x.dtype)
        self.forward_onehot(x, t1)
        self.t = t
        return self.loss

    def forward_onehot(self, x, t_onehot):
        """Softmax of ``x`` for trusted one-hot targets of ``x``'s dtype (the nets' fast path:
        no checks); returns the probabilities, and the loss waits in ``loss`` until read."""
        xp = self.xp or self._bind(x)
        z = x - xp.max(x, axis=1, keepdims=True)
        e = xp.exp(z)
        s = row_sums(e, xp, self._kept)  # (N, 1)
        e /= s
        self.y, self.t = e, t_onehot
        self._t_onehot = t_onehot
        self._loss, self._pieces = None, (z, s)
        return e

    def backward(self, dout=1):
        y = self.y
        if y is None:
            raise _before_forward(self)
        dx = y - self._t_onehot
        dx *= dout / y.shape[0]
        return dx


class Dropout(_LazyNamespace):
    """The book's dropout: in training, ``x * mask`` with ``mask = rand(*x.shape) > dropout_ratio``
    (no rescaling); in testing, ``x * (1 - dropout_ratio)``.

    The standard has no random numbers, so the mask is drawn with the device's own generator
    (``Device.rng``), made at the first forward from ``seed`` (or given as ``rng``): one seed gives
    the same masks run after run, and a checkpoint saves the generator's state so a resumed run
    draws the masks it would have drawn. ``hold_mask()`` keeps one mask while it is entered (the
    gradient check compares losses at the same mask).
    """

    def __init__(self, dropout_ratio=0.5, *, seed=None, rng=None):
        self.dropout_ratio = unit_interval("dropout_ratio", dropout_ratio)
        self.seed, self.rng = seed, rng
        self.xp = None
        self._keep = None  # the mask as 0/1 numbers of the input's dtype: what the maths multiplies by
        self._held = False

    @property
    def mask(self):
        """The book's attribute: True where the input is kept (None before the first training forward)."""
        if self._keep is None:
            return None
        with scope_of(self._keep):
            return self._keep > 0

    @mask.setter
    def mask(self, mask):
        """Sets the mask to use (a boolean or 0/1 array of the input's shape), e.g. to repeat one."""
        xp = array_namespace(mask)
        self._keep = mask if xp.isdtype(mask.dtype, "real floating") else xp.astype(mask, xp.float64)
        self.xp = xp

    def generator(self, x):
        """The generator the masks come from, made on ``x``'s device at the first use."""
        if self.rng is None:
            self.rng = device_of(x).rng(self.seed)
        return self.rng

    @contextlib.contextmanager
    def hold_mask(self):
        """While entered, a training forward reuses the last mask (drawing one if there is none,
        or none of the input's shape)."""
        self._held = True
        try:
            yield self
        finally:
            self._held = False

    def forward(self, x, train_flg=True):
        xp = self.xp or self._bind(x)
        if not train_flg:
            return x * (1.0 - self.dropout_ratio)
        keep = self._keep
        if not (self._held and keep is not None and keep.shape == x.shape):
            keep = self._keep = xp.astype(self.generator(x).uniform(x.shape, x.dtype) > self.dropout_ratio, x.dtype)
        elif keep.dtype != x.dtype:
            keep = self._keep = xp.astype(keep, x.dtype)
        return x * keep

    def backward(self, dout):
        if self._keep is None:
            raise _before_forward(self)
        return dout * self._keep


class BatchNormalization:
    """The book's batch normalisation (Ioffe & Szegedy): ``gamma * (x - mu) / sqrt(var + 10e-7) + beta``.

    As in the book: input of rank 4 is flattened to (N, C*H*W) and normalised per feature; the
    variance is the biased one; in training the running statistics move by ``running = momentum *
    running + (1 - momentum) * batch``, and testing (``train_flg=False``) uses them. torch's
    ``BatchNorm1d`` differs: momentum 0.1 on the other side, the unbiased variance in the running
    statistic, epsilon 1e-5. Backward is the book's full chain (dmu's two terms included).
    """

    state_names = ("running_mean", "running_var")
    eps = 10e-7  # the book's

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        xp = array_namespace(gamma, beta)
        if gamma.ndim != 1 or beta.shape != gamma.shape:
            raise ValueError(f"BatchNormalization needs gamma and beta of one shape (D,), got gamma "
                             f"{shape_str(gamma.shape)} and beta {shape_str(beta.shape)}")
        self.xp, self.gamma, self.beta = xp, gamma, beta
        self.momentum = unit_interval("momentum", momentum)
        self.input_shape = None  # rank 4 after a convolution, rank 2 after an Affine
        self.running_mean, self.running_var = running_mean, running_var  # what testing uses
        self.batch_size = self.xc = self.xn = self.std = None  # what backward needs
        self.dgamma = self.dbeta = None

    def forward(self, x, train_flg=True):
        self.input_shape = x.shape
        if x.ndim != 2:
            x = self.xp.reshape(x, (x.shape[0], -1))
        out = self._forward(x, train_flg)
        return self.xp.reshape(out, self.input_shape) if out.shape != self.input_shape else out

    def _forward(self, x, train_flg):
        xp = self.xp
        if x.shape[1] != self.gamma.shape[0]:
            raise ValueError(f"BatchNormalization has {self.gamma.shape[0]} features (gamma's length) but its "
                             f"input has {x.shape[1]} per sample, shape {shape_str(self.input_shape)}")
        if self.running_mean is None:
            D = x.shape[1]
            self.running_mean = xp.zeros(D, dtype=x.dtype, device=x.device)
            self.running_var = xp.zeros(D, dtype=x.dtype, device=x.device)

        if train_flg:
            if x.shape[0] < 1:
                check_samples(x.shape[0], "x", "the batch statistics")
            mu = xp.mean(x, axis=0)
            xc = x - mu
            var = xp.mean(xc**2, axis=0)
            std = xp.sqrt(var + self.eps)
            xn = xc / std

            self.batch_size = x.shape[0]
            self.xc, self.xn, self.std = xc, xn, std
            m = self.momentum
            self.running_mean = m * self.running_mean + (1 - m) * mu
            self.running_var = m * self.running_var + (1 - m) * var
        else:
            xc = x - self.running_mean
            xn = xc / xp.sqrt(self.running_var + self.eps)

        return self.gamma * xn + self.beta

    def backward(self, dout):
        if self.xc is None:
            raise _before_forward(self)
        if dout.ndim != 2:
            dout = self.xp.reshape(dout, (dout.shape[0], -1))
        dx = self._backward(dout)
        return self.xp.reshape(dx, self.input_shape) if dx.shape != self.input_shape else dx

    def _backward(self, dout):
        xp = self.xp
        dbeta = xp.sum(dout, axis=0)
        dgamma = xp.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -xp.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2.0 / self.batch_size) * self.xc * dvar
        dmu = xp.sum(dxc, axis=0)
        dx = dxc - dmu / self.batch_size

        self.dgamma = dgamma
        self.dbeta = dbeta
        return dx


class Convolution:
    """The book's convolution: filters ``W`` (FN, C, FH, FW) and biases ``b`` (FN,) over images
    (N, C, H, W), as one matrix product of ``im2col``'s columns with the filters.

    The book's attributes are kept (``x``, ``col``, ``col_W``, ``dW``, ``db``); ``compute_dx=False``
    skips the input gradient (``col2im``) of a first layer, which nobody reads. ``b`` may be a
    number and ``W`` of another float dtype than the images (ch07's ``apply_filter.py`` passes
    float64 filters and ``b=0`` for float32 images): the standard's promotion then decides.
    Where the device has its own convolution (torch's ``conv2d``: ``fast.conv_kernels``), it
    computes the same numbers; ``col`` and ``col_W`` are then made when first read.
    """

    def __init__(self, W, b, stride=1, pad=0, compute_dx: bool = True):
        xp = array_namespace(W)
        if W.ndim != 4:
            raise ValueError(f"Convolution needs filters W of shape (FN, C, FH, FW), got {shape_str(W.shape)}")
        if hasattr(b, "shape") and b.shape not in ((W.shape[0],), ()):
            raise ValueError(f"Convolution needs b of shape ({W.shape[0]},) for {W.shape[0]} filters, got "
                             f"{shape_str(b.shape)}")
        self.xp, self.W, self.b = xp, W, b
        self.stride, self.pad, self.compute_dx = stride, pad, compute_dx
        self.x, self._col, self._col_W, self._kernels = None, None, None, None
        self.dW = self.db = None

    @property
    def col(self):
        """The book's im2col columns of the last input (N*out_h*out_w, C*FH*FW)."""
        if self._col is None and self.x is not None:
            FN, C, FH, FW = self.W.shape
            self._col = im2col(self.x, FH, FW, self.stride, self.pad)
        return self._col

    @property
    def col_W(self):
        """The filters as the book's columns (C*FH*FW, FN)."""
        if self._col_W is None and self.x is not None:
            self._col_W = self.xp.reshape(self.W, (self.W.shape[0], -1)).T
        return self._col_W

    def forward(self, x):
        xp = self.xp
        FN, C, FH, FW = self.W.shape
        if x.ndim != 4 or x.shape[1] != C:
            raise ValueError(f"Convolution with filters of {C} channels needs images (N, {C}, H, W), got "
                             f"{shape_str(x.shape)}")
        N, _, H, W = x.shape
        out_h = conv_output_size(H, FH, self.stride, self.pad)
        out_w = conv_output_size(W, FW, self.stride, self.pad)
        self._kernels = kernels = conv_kernels(x, self.W, self.b)
        if kernels is not None:  # the device's own convolution
            self.x, self._col, self._col_W = x, None, None
            return kernels.conv2d(x, self.W, self.b, self.stride, self.pad)

        col = im2col(x, FH, FW, self.stride, self.pad)
        col_W = xp.reshape(self.W, (FN, -1)).T
        if col.dtype != col_W.dtype:  # the standard's promotion, which torch's matmul does not do itself
            dt = xp.result_type(col.dtype, col_W.dtype)
            col, col_W = xp.astype(col, dt), xp.astype(col_W, dt)
        out = col @ col_W + self.b
        out = xp.permute_dims(xp.reshape(out, (N, out_h, out_w, -1)), (0, 3, 1, 2))

        self.x, self._col, self._col_W = x, col, col_W
        return out

    def backward(self, dout):
        xp = self.xp
        FN, C, FH, FW = self.W.shape
        if self.x is None:
            raise _before_forward(self)
        if self._kernels is not None:
            dx, self.dW, self.db = self._kernels.conv2d_backward(dout, self.x, self.W, self.stride, self.pad,
                                                                 self.compute_dx)
            return dx
        dout = xp.reshape(xp.permute_dims(dout, (0, 2, 3, 1)), (-1, FN))

        self.db = xp.sum(dout, axis=0) if getattr(self.b, "ndim", 0) else xp.sum(dout)
        self.dW = xp.reshape((self.col.T @ dout).T, (FN, C, FH, FW))

        if not self.compute_dx:  # a first layer: its input gradient is read by nobody
            return None
        dcol = dout @ self.col_W.T
        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)


class Pooling:
    """The book's max pooling over ``pool_h`` x ``pool_w`` windows, moved by ``stride``.

    Ties go to the first maximum of a window (row by row), as ``argmax`` and torch do. ``pad > 0``
    works (the book's raises "cannot reshape"): padding never wins a window, as in torch's
    ``max_pool2d``. Written without a fancy-index scatter, which the standard lacks: forward keeps
    a running maximum over the windows' strided slices and, for each window, the offset of its
    first maximum; backward adds ``dout`` back through the same slices where that offset won.
    ``arg_max`` gives the winners in the book's layout. Where the device has its own max pooling
    (torch's ``max_pool2d``: ``fast.conv_kernels``), it computes the same numbers.
    """

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        self.pool_h, self.pool_w, self.stride, self.pad = pool_h, pool_w, stride, pad
        self.x = None
        self._winner = None  # (N, C, out_h, out_w): the offset k = y * pool_w + x of each window's maximum
        self._kernels, self._indices = None, None  # the device's own pooling, and where its maxima are
        self.xp = None

    def forward(self, x):
        self.xp = array_namespace(x)
        if x.ndim != 4:
            raise ValueError(f"Pooling takes images (N, C, H, W), got {shape_str(x.shape)}")
        N, C, H, W = x.shape
        out_h = conv_output_size(H, self.pool_h, self.stride, self.pad)
        out_w = conv_output_size(W, self.pool_w, self.stride, self.pad)
        kernels = conv_kernels(x)
        self._kernels = kernels if kernels is not None and kernels.pools(self.pool_h, self.pool_w, self.pad) else None
        if self._kernels is not None:
            out, self._indices = self._kernels.max_pool2d(x, self.pool_h, self.pool_w, self.stride, self.pad)
            self.x, self._winner = x, None
            return out
        out, self._winner = self._winners(x, out_h, out_w)
        self.x = x
        return out

    def _winners(self, x, out_h, out_w):
        """(maxima, winners): the portable forward."""
        xp = self.xp
        img = padded(x, self.pad, -math.inf)
        out = winner = None
        for y, xo, v in windows(img, self.pool_h, self.pool_w, self.stride, out_h, out_w):
            if out is None:
                out, winner = v, xp.zeros(v.shape, dtype=xp.int32, device=x.device)
                continue
            better = v > out  # strictly: a tie keeps the earlier offset
            winner = xp.where(better, xp.asarray(y * self.pool_w + xo, dtype=xp.int32, device=x.device), winner)
            out = xp.maximum(out, v)
        return out, winner

    @property
    def arg_max(self):
        """The book's attribute: each window's winning offset, flat in the order (N, out_h, out_w, C)."""
        if self._winner is None and self.x is not None:  # after the device's own pooling: found when read
            self._winner = self._winners(self.x, *self._indices.shape[2:])[1]
        if self._winner is None:
            return None
        return self.xp.reshape(self.xp.permute_dims(self._winner, (0, 2, 3, 1)), (-1,))

    def backward(self, dout):
        xp = self.xp
        if self.x is None:
            raise _before_forward(self)
        if self._kernels is not None:
            return self._kernels.max_pool2d_backward(dout, self.x, self._indices, self.pool_h, self.pool_w,
                                                     self.stride, self.pad)
        N, C, H, W = self.x.shape
        out_h, out_w = dout.shape[2], dout.shape[3]
        p, s = self.pad, self.stride
        dimg = xp.zeros((N, C, H + 2 * p, W + 2 * p), dtype=dout.dtype, device=dout.device)
        zero = xp.zeros((), dtype=dout.dtype, device=dout.device)
        for y, xo, _ in windows(dimg, self.pool_h, self.pool_w, s, out_h, out_w):
            won = self._winner == y * self.pool_w + xo
            dimg[:, :, y:y + s * (out_h - 1) + 1:s, xo:xo + s * (out_w - 1) + 1:s] += xp.where(won, dout, zero)
        return dimg[:, :, p:H + p, p:W + p] if p else dimg

"""The reference contenders of the benchmark, each a real implementation of the same training step.

- the book's chapter-5 code as a reader runs it: the tests' copy of it (``tests.book``, with the
  book's licence), handed the array module (NumPy, or CuPy for "the book's code on a GPU");
- a hand-tuned NumPy float32 step (preallocated buffers, ``out=``, fused gradient);
- idiomatic PyTorch (``nn.Sequential``, ``F.cross_entropy``, ``optim.SGD``), and on CUDA the
  same step captured whole in a CUDA graph;
- a jitted JAX step (when JAX is installed).

xpnet's own contenders (its Trainer, and the book-style loop a reader writes with its public
API) are in ``xpnet_contenders.py``.

Every contender has ``steps(k)`` (k training steps) and ``evaluate()`` (train, test accuracy).
"""

from __future__ import annotations

import contextlib
import types

import numpy as np

from tests.book import book_net_with  # the book's code, kept once beside its licence


class BookContender:
    """train_neuralnet.py's loop: choice, gradient, update, and the loss recorded every step.

    ``scope``: a context in which ``module`` computes on the intended device (CuPy works on the
    *current* GPU: an xpnet device's ``scope``); everything the contender does runs inside it."""

    def __init__(self, params, data, lr, batch_size, seed, module=np, scope=contextlib.nullcontext):
        (x, t), (xt, tt) = data
        self.np, self.scope = module, scope
        self.name = "book NumPy float64" if module is np else f"book code on {module.__name__} float64"
        with scope():
            self.x, self.xt = module.asarray(x, dtype=module.float64), module.asarray(xt, dtype=module.float64)
            eye = module.eye(10)
            self.t, self.tt = eye[module.asarray(t)], eye[module.asarray(tt)]  # the book trains on one-hot labels
            self.net = book_net_with(params, module)
            module.random.seed(seed)
        self.lr, self.bs = lr, batch_size
        self.train_loss_list = []

    def steps(self, k):
        np_, net, x, t, n, lr = self.np, self.net, self.x, self.t, self.x.shape[0], self.lr
        train_loss_list = []  # this call's losses only: memory stays flat
        with self.scope():
            for _ in range(k):
                batch_mask = np_.random.choice(n, self.bs)
                x_batch, t_batch = x[batch_mask], t[batch_mask]
                grad = net.gradient(x_batch, t_batch)
                for key in ("W1", "b1", "W2", "b2"):
                    net.params[key] -= lr * grad[key]
                train_loss_list.append(net.loss(x_batch, t_batch))
            if np_ is not np:
                np_.cuda.get_current_stream().synchronize()
        self.train_loss_list = train_loss_list

    def evaluate(self):
        with self.scope():
            return float(self.net.accuracy(self.x, self.t)), float(self.net.accuracy(self.xt, self.tt))


# ---------------------------------------------------------------------------------------
# hand-tuned NumPy float32: the best a careful NumPy programmer writes without a framework
# ---------------------------------------------------------------------------------------
def draw_batches(rng, n, batch_size, k, block=256):
    """Batch indices for k steps, drawn ``block`` steps per call: the same numbers as one
    ``rng.integers(0, n, batch_size)`` per step (checked in the tests), for a fraction of the cost."""
    for s in range(0, k, block):
        m = min(block, k - s)
        drawn = rng.integers(0, n, m * batch_size)
        for j in range(m):
            yield drawn[j * batch_size:(j + 1) * batch_size]


class TunedNumpyContender:
    """The step a careful NumPy programmer writes by hand, as fast as NumPy goes.

    Every intermediate lives in a buffer allocated once; every operation writes with ``out=``;
    the batch is gathered with ``take(..., out=, mode='clip')`` (no bounds pass, no copy); the
    one-hot targets are built once and pre-scaled by ``lr / B``, so the fused softmax-cross-
    entropy gradient comes out already multiplied by the learning rate and each update is one
    in-place subtraction; bias gradients and the softmax's row sums are products with a ones
    vector (a BLAS call beats a short reduction); no input gradient
    for the first layer; ReLU and its backward in place. The loss is computed every step
    (log-sum-exp, as xpnet computes it) and kept, like the loops it is compared with.
    Same maths, same float32, same batch indices as the book-style loop.
    """

    name = "hand-tuned NumPy float32"

    def __init__(self, params, data, lr, batch_size, seed):
        (x, t), (xt, tt) = data
        self.x, self.xt = np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(xt, dtype=np.float32)
        self.t, self.tt = np.asarray(t), np.asarray(tt)
        L = len(params) // 2
        self.Ws = [np.array(params[f"W{i}"], dtype=np.float32) for i in range(1, L + 1)]
        self.bs_ = [np.array(params[f"b{i}"], dtype=np.float32) for i in range(1, L + 1)]
        B, C, n = batch_size, self.Ws[-1].shape[1], self.x.shape[0]
        self.B, self.lr, self.rng = B, float(lr), np.random.default_rng(seed)
        self.scale = np.float32(lr / B)
        self.t1 = np.zeros((n, C), np.float32)  # one-hot targets times lr/B, built once
        self.t1[np.arange(n), self.t] = self.scale
        f32 = np.float32
        self.xb, self.tb = np.empty((B, self.x.shape[1]), f32), np.empty((B, C), f32)
        self.acts = [np.empty((B, W.shape[1]), f32) for W in self.Ws]  # outputs of each Affine
        self.douts = [np.empty((B, W.shape[0]), f32) for W in self.Ws[1:]]  # input gradients, not the first
        self.masks = [np.empty((B, W.shape[0]), bool) for W in self.Ws[1:]]
        self.dWs = [np.empty_like(W) for W in self.Ws]
        self.dbs = [np.empty_like(b) for b in self.bs_]
        self.ones = np.ones(B, f32)  # bias gradients: ones @ g (a BLAS call beats a column reduction)
        self.ones_b, self.ones_c = np.ones((B, 1), f32), np.ones((C, 1), f32)
        self.col, self.rcol = np.empty((B, 1), f32), np.empty((B, 1), f32)
        self.losses = np.empty(0, f32)

    def steps(self, k):
        X, T1, B, scale = self.x, self.t1, self.B, self.scale
        Ws, bs, acts, douts, masks, dWs, dbs = self.Ws, self.bs_, self.acts, self.douts, self.masks, self.dWs, self.dbs
        xb, tb, ones, ones_b, ones_c = self.xb, self.tb, self.ones, self.ones_b, self.ones_c
        col, rcol = self.col, self.rcol
        take, matmul, add, sub, mul, maximum = np.take, np.matmul, np.add, np.subtract, np.multiply, np.maximum
        rowmax, exp, log, vdot, greater = np.maximum.reduce, np.exp, np.log, np.vdot, np.greater
        L = len(Ws)
        last = L - 1
        z = acts[-1]
        losses = np.empty(k, np.float32)
        inv_b, inv_lr = np.float32(1.0 / B), np.float32(1.0 / self.lr)
        for s, idx in enumerate(draw_batches(self.rng, X.shape[0], B, k)):
            take(X, idx, axis=0, out=xb, mode="clip")
            take(T1, idx, axis=0, out=tb, mode="clip")
            a = xb
            for i in range(L):
                h = acts[i]
                matmul(a, Ws[i], out=h)
                add(h, bs[i], out=h)
                if i < last:
                    maximum(h, 0, out=h)
                a = h
            # softmax with cross-entropy, fused: z <- exp(z - max), loss by log-sum-exp
            rowmax(z, axis=1, keepdims=True, out=col)
            sub(z, col, out=z)
            zt = vdot(z, tb)  # (lr/B) * sum of the target logits (shifted)
            exp(z, out=z)
            matmul(z, ones_c, out=col)  # row sums
            np.divide(scale, col, out=rcol)
            log(col, out=col)
            losses[s] = vdot(col, ones_b) * inv_b - zt * inv_lr
            # gradient of the mean loss, times lr: (softmax - onehot) * lr/B
            mul(z, rcol, out=z)
            sub(z, tb, out=z)
            g = z
            for i in range(last, -1, -1):
                prev = acts[i - 1] if i else xb
                if i:  # the input gradient, before W changes
                    d = douts[i - 1]
                    matmul(g, Ws[i].T, out=d)
                matmul(prev.T, g, out=dWs[i])
                matmul(ones, g, out=dbs[i])
                sub(Ws[i], dWs[i], out=Ws[i])
                sub(bs[i], dbs[i], out=bs[i])
                if i:
                    m = masks[i - 1]
                    greater(prev, 0, out=m)
                    mul(d, m, out=d)
                    g = d
        self.losses = losses

    def evaluate(self):
        return numpy_accuracy(self.Ws, self.bs_, self.x, self.t), numpy_accuracy(self.Ws, self.bs_, self.xt, self.tt)


def numpy_accuracy(Ws, bs, x, t):
    """Accuracy of the ReLU net with weights ``Ws`` and biases ``bs`` on ``x``, 10 000 rows at a time."""
    correct = 0
    for j in range(0, x.shape[0], 10000):
        a = x[j:j + 10000]
        for i, (W, b) in enumerate(zip(Ws, bs)):
            a = a @ W
            a += b
            if i < len(Ws) - 1:
                np.maximum(a, 0, out=a)
        correct += int((a.argmax(axis=1) == t[j:j + 10000]).sum())
    return correct / x.shape[0]


class TunedNumpyOneThreadContender(TunedNumpyContender):
    """The same hand-tuned step with the BLAS held to one thread (threadpoolctl), as xpnet's
    trainer does for small products: shown so that what the thread policy buys is visible."""

    name = "hand-tuned NumPy f32, 1 BLAS thread"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from threadpoolctl import ThreadpoolController

        self._controller = ThreadpoolController()  # scanned once (a scan costs ~100 us)

    def steps(self, k):
        with self._controller.limit(limits=1, user_api="blas"):
            super().steps(k)


def book_style_steps(net, X, T, lr, rng, batch_size, k, second_loss=False):
    """``k`` steps of the loop a reader of the book writes (its ``train_neuralnet.py``): a batch
    drawn each step and gathered by fancy indexing, ``grads = net.gradient(x, t)``, the update
    ``net.params[key] -= lr * grads[key]``, and the loss from ``net.lastLayer.loss`` or, as the
    book does, a second forward pass ``net.loss(x, t)``. Returns the book's ``train_loss_list``."""
    n, keys = X.shape[0], tuple(net.params)
    train_loss_list = []
    for _ in range(k):
        idx = rng.integers(0, n, batch_size)
        x, t = X[idx], T[idx]
        grads = net.gradient(x, t)
        for key in keys:
            net.params[key] -= lr * grads[key]
        loss = net.loss(x, t) if second_loss else net.lastLayer.loss
        train_loss_list.append(loss)
    return train_loss_list


class TunedNumpyNet:
    """The cheapest ``gradient()`` a float32 NumPy net of the book's form can have: the
    hand-tuned step's preallocated buffers and ``out=`` products, one-hot rows taken from a kept
    identity, no input gradient for the first layer, the loss left in ``lastLayer.loss``.

    Its gradients are buffers it overwrites at the next call -- a shortcut no library can take
    (a reader who keeps last step's ``grads`` would see them change) -- so the book-style loop
    around it bounds what the loop can reach with *any* ``gradient()``: what remains above the
    hand-tuned step is the reader's own lines."""

    def __init__(self, params, batch_size):
        f32 = np.float32
        L = len(params) // 2
        self.params = {k: np.array(v, dtype=f32) for k, v in params.items()}
        self.Ws = [self.params[f"W{i}"] for i in range(1, L + 1)]
        self.bs_ = [self.params[f"b{i}"] for i in range(1, L + 1)]
        B, C = batch_size, self.Ws[-1].shape[1]
        self.B, self.inv_b = B, f32(1.0 / B)
        self.eye, self.tb = np.eye(C, dtype=f32), np.empty((B, C), f32)
        self.acts = [np.empty((B, W.shape[1]), f32) for W in self.Ws]
        self.douts = [np.empty((B, W.shape[0]), f32) for W in self.Ws[1:]]
        self.masks = [np.empty((B, W.shape[0]), bool) for W in self.Ws[1:]]
        self.grads = {k: np.empty_like(v) for k, v in self.params.items()}
        self.dWs = [self.grads[f"W{i}"] for i in range(1, L + 1)]
        self.dbs = [self.grads[f"b{i}"] for i in range(1, L + 1)]
        self.ones, self.ones_b, self.ones_c = np.ones(B, f32), np.ones((B, 1), f32), np.ones((C, 1), f32)
        self.col, self.lcol = np.empty((B, 1), f32), np.empty((B, 1), f32)
        self.lastLayer = types.SimpleNamespace(loss=None)

    def gradient(self, x, t):
        if x.shape[0] != self.B:
            raise ValueError(f"this net's buffers hold batches of {self.B}, got {x.shape[0]}")
        Ws, bs, acts, douts, masks, dWs, dbs = self.Ws, self.bs_, self.acts, self.douts, self.masks, self.dWs, self.dbs
        tb, col, lcol, inv_b, matmul = self.tb, self.col, self.lcol, self.inv_b, np.matmul
        L = len(Ws)
        np.take(self.eye, t, axis=0, out=tb, mode="clip")
        a = x
        for i in range(L):
            h = acts[i]
            matmul(a, Ws[i], out=h)
            np.add(h, bs[i], out=h)
            if i < L - 1:
                np.maximum(h, 0, out=h)
            a = h
        z = acts[-1]  # softmax with cross entropy, fused; the loss by log-sum-exp
        np.maximum.reduce(z, axis=1, keepdims=True, out=col)
        np.subtract(z, col, out=z)
        zt = np.vdot(z, tb)
        np.exp(z, out=z)
        matmul(z, self.ones_c, out=col)
        np.log(col, out=lcol)
        self.lastLayer.loss = (np.vdot(lcol, self.ones_b) - zt) * inv_b
        np.divide(inv_b, col, out=col)
        np.multiply(z, col, out=z)
        np.multiply(tb, inv_b, out=tb)
        np.subtract(z, tb, out=z)  # (softmax - onehot) / B
        g = z
        for i in range(L - 1, -1, -1):
            prev = acts[i - 1] if i else x
            if i:
                matmul(g, Ws[i].T, out=douts[i - 1])
            matmul(prev.T, g, out=dWs[i])
            matmul(self.ones, g, out=dbs[i])
            if i:
                np.greater(prev, 0, out=masks[i - 1])
                np.multiply(douts[i - 1], masks[i - 1], out=douts[i - 1])
                g = douts[i - 1]
        return self.grads


class LeanNumpyNet:
    """The cheapest ``gradient()`` with the book's contract: fresh gradient arrays every call (a
    reader may keep them), written as plain NumPy expressions with no checks, the first layer's
    input gradient skipped, one-hot rows from a kept identity, the loss left in ``lastLayer.loss``.
    The book-style loop around it bounds what a library's ``gradient()`` can reach in that loop."""

    def __init__(self, params, batch_size):
        L = len(params) // 2
        self.params = {k: np.array(v, dtype=np.float32) for k, v in params.items()}
        self.Ws = [self.params[f"W{i}"] for i in range(1, L + 1)]
        self.bs_ = [self.params[f"b{i}"] for i in range(1, L + 1)]
        C = self.Ws[-1].shape[1]
        self.eye, self.ones_c = np.eye(C, dtype=np.float32), np.ones((C, 1), np.float32)
        self.ones, self.inv_b = np.ones(batch_size, np.float32), np.float32(1.0 / batch_size)
        self.lastLayer = types.SimpleNamespace(loss=None)

    def gradient(self, x, t):
        Ws, L = self.Ws, len(self.Ws)
        acts, a = [], x
        for i in range(L):
            a = a @ Ws[i]
            a += self.bs_[i]
            if i < L - 1:
                np.maximum(a, 0, out=a)
            acts.append(a)
        z = a - a.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e @ self.ones_c
        e /= s
        t1 = self.eye[t]
        self.lastLayer.loss = (np.log(s).sum() - np.vdot(z, t1)) * self.inv_b
        g = e - t1
        g *= self.inv_b
        grads = {}
        for i in range(L - 1, -1, -1):
            prev = acts[i - 1] if i else x
            grads[f"W{i + 1}"] = prev.T @ g
            grads[f"b{i + 1}"] = self.ones @ g
            if i:
                g = (g @ Ws[i].T) * (prev > 0)
        return grads


def numpy_net_loop_name(lean=False, one_thread=False):
    return f"book loop, {'lean' if lean else 'tuned'} NumPy net" + (", 1 thread" if one_thread else "")


TUNED_NET_LOOP, LEAN_NET_LOOP, LEAN_NET_LOOP_1T = (numpy_net_loop_name(), numpy_net_loop_name(lean=True),
                                                   numpy_net_loop_name(lean=True, one_thread=True))


class NumpyNetLoopContender:
    """The book-style loop (``book_style_steps``, the very lines of xpnet's book-style loop)
    around a NumPy net: ``TunedNumpyNet`` (gradients in reused buffers: the loop's bound for any
    ``gradient()``) or, with ``lean``, ``LeanNumpyNet`` (fresh arrays: the bound for a
    ``gradient()`` with the book's contract). ``one_thread`` holds the BLAS to one thread,
    xpnet's policy for products of this size, for a comparison at equal threads."""

    def __init__(self, params, data, lr, batch_size, seed, lean=False, one_thread=False):
        (x, t), (xt, tt) = data
        self.net = (LeanNumpyNet if lean else TunedNumpyNet)(params, batch_size)
        self.x, self.t = np.ascontiguousarray(x, dtype=np.float32), np.asarray(t)
        self.xt, self.tt = np.ascontiguousarray(xt, dtype=np.float32), np.asarray(tt)
        self.lr, self.bs, self.rng = lr, batch_size, np.random.default_rng(seed)
        self.name = numpy_net_loop_name(lean, one_thread)
        self._controller = None
        if one_thread:
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController()
        self.train_loss_list = []

    def steps(self, k):
        if self._controller is None:
            self.train_loss_list = book_style_steps(self.net, self.x, self.t, self.lr, self.rng, self.bs, k)
            return
        with self._controller.limit(limits=1, user_api="blas"):
            self.train_loss_list = book_style_steps(self.net, self.x, self.t, self.lr, self.rng, self.bs, k)

    def evaluate(self):
        net = self.net
        return numpy_accuracy(net.Ws, net.bs_, self.x, self.t), numpy_accuracy(net.Ws, net.bs_, self.xt, self.tt)


class YardstickContender:
    """A fixed yardstick: a hand-tuned step that stays as it is (per-step ``integers`` and
    ``T[idx]``, allocating reductions and masks), timed on the reference machine beside xpnet's
    trainer (``harness.REFERENCE_US``), so that the trainer's ratio to it in the same rounds
    carries the trainer's target to any machine."""

    name = "hand-tuned f32, yardstick"

    def __init__(self, params, data, lr, batch_size, seed):
        (x, t), _ = data
        self.x, self.t = np.ascontiguousarray(x, dtype=np.float32), np.asarray(t)
        self.Ws = [np.array(params[f"W{i}"], dtype=np.float32) for i in range(1, len(params) // 2 + 1)]
        self.bs_ = [np.array(params[f"b{i}"], dtype=np.float32) for i in range(1, len(params) // 2 + 1)]
        B = batch_size
        self.B, self.lr, self.rng = B, np.float32(lr), np.random.default_rng(seed)
        self.acts = [np.empty((B, W.shape[1]), np.float32) for W in self.Ws]
        self.douts = [np.empty((B, W.shape[0]), np.float32) for W in self.Ws[1:]]
        self.dWs = [np.empty_like(W) for W in self.Ws]
        self.xb = np.empty((B, self.x.shape[1]), np.float32)
        self.rows = np.arange(B)

    def steps(self, k):
        X, T, B, lr, rows = self.x, self.t, self.B, self.lr, self.rows
        Ws, bs, acts, douts, dWs, xb = self.Ws, self.bs_, self.acts, self.douts, self.dWs, self.xb
        L = len(Ws)
        losses = np.empty(k, np.float32)
        inv_b = np.float32(1.0 / B)
        for s in range(k):
            idx = self.rng.integers(0, X.shape[0], B)
            np.take(X, idx, axis=0, out=xb, mode="clip")
            tb = T[idx]
            a = xb
            for i in range(L):
                np.matmul(a, Ws[i], out=acts[i])
                acts[i] += bs[i]
                if i < L - 1:
                    np.maximum(acts[i], 0, out=acts[i])
                a = acts[i]
            z = acts[-1]
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
            losses[s] = -np.log(z[rows, tb]).mean()
            z[rows, tb] -= 1
            z *= inv_b
            g = z
            for i in range(L - 1, -1, -1):
                np.matmul((acts[i - 1] if i else xb).T, g, out=dWs[i])
                db = g.sum(axis=0)
                if i:
                    dprev = douts[i - 1]
                    np.matmul(g, Ws[i].T, out=dprev)
                    dprev *= acts[i - 1] > 0
                dWs[i] *= lr
                Ws[i] -= dWs[i]
                db *= lr
                bs[i] -= db
                if i:
                    g = dprev


# ---------------------------------------------------------------------------------------
# idiomatic PyTorch: nn.Sequential, F.cross_entropy, optim.SGD
# ---------------------------------------------------------------------------------------
class TorchContender:
    def __init__(self, params, data, lr, batch_size, seed, device="cpu"):
        import torch

        self.torch = torch
        self.name = "idiomatic PyTorch " + device
        (x, t), (xt, tt) = data
        dev = torch.device(device)
        self.dev = dev
        self.x, self.t = torch.as_tensor(x, dtype=torch.float32, device=dev), torch.as_tensor(t, device=dev)
        self.xt, self.tt = torch.as_tensor(xt, dtype=torch.float32, device=dev), torch.as_tensor(tt, device=dev)
        n = len(params) // 2
        mods = []
        for i in range(1, n + 1):
            W = params[f"W{i}"]
            lin = torch.nn.Linear(W.shape[0], W.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.as_tensor(W.T, dtype=torch.float32))
                lin.bias.copy_(torch.as_tensor(params[f"b{i}"], dtype=torch.float32))
            mods.append(lin)
            if i < n:
                mods.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*mods).to(dev)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.bs = batch_size
        self.gen = torch.Generator(device=dev)
        self.gen.manual_seed(seed)
        self.losses = []

    def steps(self, k):
        torch, F = self.torch, self.torch.nn.functional
        model, opt, n = self.model, self.opt, self.x.shape[0]
        losses = []  # this call's losses only: memory stays flat
        for _ in range(k):
            idx = torch.randint(0, n, (self.bs,), generator=self.gen, device=self.dev)
            opt.zero_grad()
            loss = F.cross_entropy(model(self.x[idx]), self.t[idx])
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        self.losses = losses
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)

    def evaluate(self):
        torch = self.torch
        with torch.no_grad():
            def acc(x, t):
                c = sum(int((self.model(x[j:j + 10000]).argmax(1) == t[j:j + 10000]).sum())
                        for j in range(0, x.shape[0], 10000))
                return c / x.shape[0]

            return acc(self.x, self.t), acc(self.xt, self.tt)


class TorchGraphContender(TorchContender):
    """The idiomatic PyTorch step -- sampling, forward, backward, SGD -- captured once as a CUDA
    graph and replayed (PyTorch's documented whole-network capture). CUDA only."""

    def __init__(self, params, data, lr, batch_size, seed, device="cuda"):
        super().__init__(params, data, lr, batch_size, seed, device)
        torch = self.torch
        self.name = "PyTorch CUDA graph"
        torch.cuda.manual_seed(seed)  # the default generator is capture-safe
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                self._body()
        torch.cuda.current_stream().wait_stream(s)
        self.graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.static_loss = self._body()

    def _body(self):
        torch, F = self.torch, self.torch.nn.functional
        idx = torch.randint(0, self.x.shape[0], (self.bs,), device=self.dev)
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(self.x[idx]), self.t[idx])
        loss.backward()
        self.opt.step()
        return loss

    def steps(self, k):
        losses = []  # this call's losses only: memory stays flat
        for _ in range(k):
            self.graph.replay()
            losses.append(self.static_loss.detach().clone())
        self.losses = losses
        self.torch.cuda.synchronize(self.dev)


class JaxContender:
    """A jitted JAX step (sampling, value_and_grad, SGD) with donated parameters."""

    def __init__(self, params, data, lr, batch_size, seed):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.name = f"jitted JAX {jax.default_backend()}"
        (x, t), (xt, tt) = data
        self.x, self.t = jnp.asarray(x, dtype=jnp.float32), jnp.asarray(t)
        self.xt, self.tt = jnp.asarray(xt, dtype=jnp.float32), jnp.asarray(tt)
        n_layers = len(params) // 2
        self.params = [(jnp.asarray(params[f"W{i}"], jnp.float32), jnp.asarray(params[f"b{i}"], jnp.float32))
                       for i in range(1, n_layers + 1)]
        self.key = jax.random.PRNGKey(seed)
        n, bs = x.shape[0], batch_size

        def predict(ps, a):  # full float32 products, as every other contender (JAX's GPU default is TF32)
            for W, b in ps[:-1]:
                a = jax.nn.relu(jnp.matmul(a, W, precision="highest") + b)
            W, b = ps[-1]
            return jnp.matmul(a, W, precision="highest") + b

        def loss_fn(ps, xb, tb):
            logp = jax.nn.log_softmax(predict(ps, xb))
            return -jnp.mean(jnp.take_along_axis(logp, tb[:, None], axis=1))

        def step(ps, key, X, T):
            key, sub = jax.random.split(key)
            idx = jax.random.randint(sub, (bs,), 0, n)
            loss, g = jax.value_and_grad(loss_fn)(ps, X[idx], T[idx])
            ps = jax.tree_util.tree_map(lambda p, d: p - lr * d, ps, g)
            return ps, key, loss

        self._step = jax.jit(step, donate_argnums=(0,))
        self._correct = jax.jit(lambda ps, a, tb: jnp.sum(jnp.argmax(predict(ps, a), axis=1) == tb))
        self.losses = []

    def steps(self, k):
        ps, key, X, T, step = self.params, self.key, self.x, self.t, self._step
        losses = []
        for _ in range(k):
            ps, key, loss = step(ps, key, X, T)
            losses.append(loss)
        self.params, self.key, self.losses = ps, key, losses
        self.jax.block_until_ready(ps)

    def evaluate(self):
        def acc(x, t):
            c = sum(int(self._correct(self.params, x[j:j + 10000], t[j:j + 10000]))
                    for j in range(0, x.shape[0], 10000))
            return c / x.shape[0]

        return acc(self.x, self.t), acc(self.xt, self.tt)

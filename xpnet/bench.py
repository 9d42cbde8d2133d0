"""Side-by-side benchmark: xpnet against the book's code, a hand-tuned NumPy step and PyTorch.

Everything runs in one process, on the same data, protocol and seed, with the contenders
interleaved round by round so that machine noise hits them alike. Reported: medians, min-max
spread, each time as a ratio to xpnet, the measured float32 matmul rate and the FLOP count
of the work (so the distance to the hardware floor is visible). ``xpnet bench`` runs it.

The reference contenders are written here, not imported: the book's chapter-5 code as a reader
runs it (float64, one-hot labels, a second forward pass for the recorded loss), and the best
step a careful NumPy programmer writes (float32, preallocated buffers, ``out=``, fused
softmax-cross-entropy gradient, no input gradient for the first layer).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time
import tracemalloc
from collections import OrderedDict

import numpy as np

from .trainer import write_atomic

# ---------------------------------------------------------------------------------------
# the book's code (ch. 5: common/layers.py, two_layer_net.py, train_neuralnet.py), float64
# ---------------------------------------------------------------------------------------


def _book_softmax(x):
    if x.ndim == 2:
        x = x.T
        x = x - np.max(x, axis=0)
        y = np.exp(x) / np.sum(np.exp(x), axis=0)
        return y.T
    x = x - np.max(x)
    return np.exp(x) / np.sum(np.exp(x))


def _book_cross_entropy_error(y, t):
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


class _BookRelu:
    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class _BookAffine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        self.x = x
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx.reshape(*self.original_x_shape)


class _BookSoftmaxWithLoss:
    def forward(self, x, t):
        self.t = t
        self.y = _book_softmax(x)
        self.loss = _book_cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:
            return (self.y - self.t) / batch_size
        dx = self.y.copy()
        dx[np.arange(batch_size), self.t] -= 1
        return dx / batch_size


class BookTwoLayerNet:
    def __init__(self, params):
        self.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
        self.layers = OrderedDict()
        self.layers["Affine1"] = _BookAffine(self.params["W1"], self.params["b1"])
        self.layers["Relu1"] = _BookRelu()
        self.layers["Affine2"] = _BookAffine(self.params["W2"], self.params["b2"])
        self.lastLayer = _BookSoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.lastLayer.forward(self.predict(x), t)

    def accuracy(self, x, t):
        y = np.argmax(self.predict(x), axis=1)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        return {"W1": self.layers["Affine1"].dW, "b1": self.layers["Affine1"].db,
                "W2": self.layers["Affine2"].dW, "b2": self.layers["Affine2"].db}


class BookContender:
    """train_neuralnet.py's loop: choice, gradient, update, and the loss recorded every step."""

    name = "book NumPy float64"

    def __init__(self, params, data, lr, batch_size, seed):
        (x, t), (xt, tt) = data
        self.x, self.xt = x.astype(np.float64), xt.astype(np.float64)
        self.t, self.tt = np.eye(10)[t], np.eye(10)[tt]  # the book trains on one-hot labels
        self.net = BookTwoLayerNet(params)
        self.lr, self.bs, self.rng = lr, batch_size, np.random.default_rng(seed)
        self.train_loss_list = []

    def steps(self, k):
        net, x, t, n, lr = self.net, self.x, self.t, self.x.shape[0], self.lr
        for _ in range(k):
            batch_mask = self.rng.choice(n, self.bs)
            x_batch, t_batch = x[batch_mask], t[batch_mask]
            grad = net.gradient(x_batch, t_batch)
            for key in ("W1", "b1", "W2", "b2"):
                net.params[key] -= lr * grad[key]
            self.train_loss_list.append(net.loss(x_batch, t_batch))

    def evaluate(self):
        return self.net.accuracy(self.x, self.t), self.net.accuracy(self.xt, self.tt)


# ---------------------------------------------------------------------------------------
# hand-tuned NumPy float32: the best a careful NumPy programmer writes without a framework
# ---------------------------------------------------------------------------------------
class TunedNumpyContender:
    name = "hand-tuned NumPy float32"

    def __init__(self, params, data, lr, batch_size, seed):
        (x, t), (xt, tt) = data
        self.x, self.t, self.xt, self.tt = x.astype(np.float32), t, xt.astype(np.float32), tt
        self.Ws = [np.array(params[f"W{i}"], dtype=np.float32) for i in range(1, len(params) // 2 + 1)]
        self.bs_ = [np.array(params[f"b{i}"], dtype=np.float32) for i in range(1, len(params) // 2 + 1)]
        B = batch_size
        self.B, self.lr, self.rng = B, np.float32(lr), np.random.default_rng(seed)
        self.acts = [np.empty((B, W.shape[1]), np.float32) for W in self.Ws]  # outputs of each Affine
        self.douts = [np.empty((B, W.shape[0]), np.float32) for W in self.Ws[1:]]
        self.dWs = [np.empty_like(W) for W in self.Ws]
        self.xb = np.empty((B, self.x.shape[1]), np.float32)
        self.rows = np.arange(B)
        self.losses = np.empty(0, np.float32)

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
            ssum = z.sum(axis=1, keepdims=True)
            z /= ssum
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
        self.losses = losses

    def _acc(self, x, t):
        correct = 0
        for j in range(0, x.shape[0], 10000):
            a = x[j:j + 10000]
            for i, (W, b) in enumerate(zip(self.Ws, self.bs_)):
                a = a @ W
                a += b
                if i < len(self.Ws) - 1:
                    np.maximum(a, 0, out=a)
            correct += int((a.argmax(axis=1) == t[j:j + 10000]).sum())
        return correct / x.shape[0]

    def evaluate(self):
        return self._acc(self.x, self.t), self._acc(self.xt, self.tt)


class TunedNumpyOneThreadContender(TunedNumpyContender):
    """The same hand-tuned step with OpenBLAS held to one thread, as xpnet does for small
    products: shown so that what the thread policy buys is visible on its own."""

    name = "hand-tuned NumPy f32, 1 BLAS thread"

    def steps(self, k):
        from .device import _blas_controller

        with _blas_controller().limit(limits=1, user_api="blas"):
            super().steps(k)


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
        for _ in range(k):
            idx = torch.randint(0, n, (self.bs,), generator=self.gen, device=self.dev)
            opt.zero_grad()
            loss = F.cross_entropy(model(self.x[idx]), self.t[idx])
            loss.backward()
            opt.step()
            self.losses.append(loss.detach())
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


# ---------------------------------------------------------------------------------------
# xpnet itself: the Trainer's own hot loop
# ---------------------------------------------------------------------------------------
class XpnetContender:
    def __init__(self, params, data, lr, batch_size, seed, device="cpu", sizes=None):
        from .nets import MultiLayerNet
        from .trainer import Trainer

        (x, t), (xt, tt) = data
        sizes = sizes or [params["W1"].shape[0]] + [params[f"W{i}"].shape[1] for i in range(1, len(params) // 2 + 1)]
        self.net = MultiLayerNet(sizes, device=device, dtype="float32", _host_params=params)
        self.name = f"xpnet {self.net.device.name}"
        self.trainer = Trainer(self.net, x, t, xt, tt, lr=lr, batch_size=batch_size, seed=seed, log=None,
                               progress=False, final_eval=False, iters=10000)
        self.losses = []

    def steps(self, k):
        self.losses = self.trainer.run_steps(k)
        self.trainer.device.synchronize()

    def evaluate(self):
        return self.trainer.evaluate()

    def protocol(self, iters, eval_interval):
        tr = self.trainer
        tr.iters, tr.eval_interval, tr.report_every = iters, eval_interval, min(100, eval_interval)
        return tr.fit()


# ---------------------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------------------
def matmul_rate(n=1024, seconds=0.5) -> float:
    """Measured float32 GFLOP/s of an n x n x n product (the best of several timed batches)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b, c = a.copy(), np.empty_like(a)
    np.matmul(a, b, out=c)
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        for _ in range(3):
            np.matmul(a, b, out=c)
        best = max(best, 3 * 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def step_flops(sizes, batch) -> int:
    """FLOPs of the products of one step: forward, weight gradients, input gradients but the first."""
    f = sum(2 * batch * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    dx = sum(2 * batch * a * b for a, b in zip(sizes[1:-1], sizes[2:]))
    return 2 * f + dx


def matmul_floor(sizes, batch, rounds=200) -> float:
    """Seconds per step of the step's matrix products alone (preallocated, out=)."""
    rng = np.random.default_rng(0)
    acts = [rng.standard_normal((batch, s)).astype(np.float32) for s in sizes]
    Ws = [rng.standard_normal((a, b)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    outs = [np.empty((batch, b), np.float32) for b in sizes[1:]]
    dWs = [np.empty_like(W) for W in Ws]
    dxs = [np.empty((batch, a), np.float32) for a in sizes[1:-1]]

    def once():
        for i, W in enumerate(Ws):
            np.matmul(acts[i], W, out=outs[i])
        for i in range(len(Ws) - 1, -1, -1):
            np.matmul(acts[i].T, outs[i], out=dWs[i])
            if i:
                np.matmul(outs[i], Ws[i].T, out=dxs[i - 1])

    once()
    t0 = time.perf_counter()
    for _ in range(rounds):
        once()
    return (time.perf_counter() - t0) / rounds


def _init_params(sizes, std, seed):
    rng = np.random.default_rng(seed)
    p = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        p[f"W{i}"] = (std if std != "he" else np.sqrt(2.0 / a)) * rng.standard_normal((a, b))
        p[f"b{i}"] = np.zeros(b)
    return p


def _stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def time_steps(contenders, steps, repeats, warmup=20):
    """Per-step seconds of each contender, interleaved round by round."""
    for c in contenders:
        c.steps(warmup)
    times = {c.name: [] for c in contenders}
    for _ in range(repeats):
        for c in contenders:
            gc.collect()
            t0 = time.perf_counter()
            c.steps(steps)
            times[c.name].append((time.perf_counter() - t0) / steps)
    return {k: _stats(v) for k, v in times.items()}


def time_protocol(make, iters, eval_interval, repeats):
    """Whole protocol (steps + an evaluation of train and test every epoch), fresh nets each run."""
    out = {}
    for _ in range(repeats):
        for name, factory in make.items():
            gc.collect()
            t0 = time.perf_counter()
            c = factory()
            acc = None
            if isinstance(c, XpnetContender):
                h = c.protocol(iters, eval_interval)
                acc = h.test_acc[-1]
            else:
                for i in range(0, iters, eval_interval):
                    acc = c.evaluate()[1]
                    c.steps(min(eval_interval, iters - i))
            dt = time.perf_counter() - t0
            final = c.evaluate()[1]
            rec = out.setdefault(name, {"times": [], "final_test_acc": [], "last_epoch_test_acc": []})
            rec["times"].append(dt)
            rec["final_test_acc"].append(final)
            rec["last_epoch_test_acc"].append(acc)
    return {k: {**_stats(v["times"]), "final_test_acc": v["final_test_acc"],
                "last_epoch_test_acc": v["last_epoch_test_acc"]} for k, v in out.items()}


def xpnet_memory(data, params, iters, eval_interval):
    """Peak traced memory of xpnet's protocol, and growth of the step once warm (bytes)."""
    c = XpnetContender(params, data, 0.1, 100, 0)
    c.steps(200)
    tracemalloc.start()
    c.steps(1000)  # each call keeps its own 1000 recorded losses: equal calls, equal memory
    after_warm = tracemalloc.get_traced_memory()[0]
    c.steps(1000)
    c.steps(1000)
    after_more = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    c.protocol(iters, eval_interval)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # whole process, all contenders
    return {"step_growth_bytes_per_1000_steps": (after_more - after_warm) / 2.0, "protocol_peak_bytes": peak,
            "process_max_rss_bytes": rss}


# ---------------------------------------------------------------------------------------
def run(quick=False, repeats=3, steps=2000, devices=None, protocol=True, log=print):
    from . import __version__
    from .datasets import load_mnist
    from .device import devices as available

    if devices is None:  # every compute device; array_api_strict is a test namespace, not one
        devices = [d for d in available() if d != "array_api_strict"]
    try:
        import torch

        torch_version = torch.__version__
        torch_devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    except ImportError:
        torch_version, torch_devices = None, []
    (x, t), (xt, tt) = load_mnist()
    if quick:
        x, t, xt, tt = x[:2000], t[:2000], xt[:500], tt[:500]
        repeats, steps = 1, min(steps, 30)
    data = ((x, t), (xt, tt))
    rate = matmul_rate(seconds=0.2 if quick else 1.0)
    res = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                       "torch": torch_version, "xpnet": __version__, "matmul_gflops_f32": rate},
           "quick": quick, "repeats": repeats, "steps": steps}
    log(f"machine: {res['machine']['platform']}, {os.cpu_count()} cpus, NumPy {np.__version__}, "
        f"torch {torch_version}; float32 matmul {rate:.1f} GFLOP/s")

    def contenders(sizes, batch, std, with_book):
        p = _init_params(sizes, std, 0)
        fs = OrderedDict()
        for d in devices:
            fs[f"xpnet {d}"] = lambda d=d: XpnetContender(p, data, 0.1, batch, 0, device=d)
        if with_book:
            fs["book NumPy float64"] = lambda: BookContender(p, data, 0.1, batch, 0)
        fs["hand-tuned NumPy float32"] = lambda: TunedNumpyContender(p, data, 0.1, batch, 0)
        if with_book and _has_threadpoolctl():
            fs[TunedNumpyOneThreadContender.name] = lambda: TunedNumpyOneThreadContender(p, data, 0.1, batch, 0)
        for td in torch_devices:
            fs[f"idiomatic PyTorch {td}"] = lambda td=td: TorchContender(p, data, 0.1, batch, 0, td)
        return fs

    tables = {}
    # 1. the book's net, per step
    book_sizes = [784, 50, 10]
    fs = contenders(book_sizes, 100, 0.01, True)
    tables["book_step"] = _table("book net 784-50-10, batch 100: per step", time_steps(
        [f() for f in fs.values()], steps, repeats), step_flops(book_sizes, 100), rate, log)
    # 2. the tiny net: only dispatch overhead
    tiny_data = _tiny_data()
    p_tiny = _init_params([16, 8, 10], 0.1, 0)
    tiny = [XpnetContender(p_tiny, tiny_data, 0.1, 4, 0, device="cpu"),
            TunedNumpyContender(p_tiny, tiny_data, 0.1, 4, 0)]
    tables["tiny_step"] = _table("tiny net 16-8-10, batch 4: per step", time_steps(tiny, steps, repeats),
                                 step_flops([16, 8, 10], 4), rate, log)
    # 3. a larger MLP where the products dominate, against its matmul floor
    big = [784, 256, 256, 10] if quick else [784, 1024, 1024, 10]
    bb = 64 if quick else 512
    fs_big = contenders(big, bb, "he", False)
    big_steps = max(steps // 20, 5)
    tb = time_steps([f() for f in fs_big.values()], big_steps, repeats, warmup=3)
    floor = [matmul_floor(big, bb, rounds=big_steps) for _ in range(repeats)]
    tb["matmul floor (products only)"] = _stats(floor)
    tables["big_step"] = _table(f"MLP {'-'.join(map(str, big))}, batch {bb}: per step", tb,
                                step_flops(big, bb), rate, log)
    # 4. the whole protocol
    if protocol:
        iters = 200 if quick else 10000
        interval = 50 if quick else 600
        tp = time_protocol(fs, iters, interval, repeats)
        evals = len(range(0, iters, interval))
        flops = iters * step_flops(book_sizes, 100) + evals * (x.shape[0] + xt.shape[0]) * 2 * (784 * 50 + 50 * 10)
        tables["protocol"] = _table(f"book protocol: {iters} steps + {evals} evaluations of "
                                    f"{x.shape[0] + xt.shape[0]} images, whole run", tp, flops, rate, log, unit="s")
        mem = xpnet_memory(data, _init_params(book_sizes, 0.01, 0), iters, interval)
        tables["memory"] = mem
        log(f"xpnet memory: step growth {mem['step_growth_bytes_per_1000_steps']:.0f} B per 1000 steps "
            f"(after warm-up); protocol peak {mem['protocol_peak_bytes'] / 2**20:.1f} MiB above the loaded "
            f"data (tracemalloc); whole benchmark process max RSS {mem['process_max_rss_bytes'] / 2**20:.0f} MiB")
    res["tables"] = tables
    return res


def _has_threadpoolctl():
    from .device import _blas_controller

    return _blas_controller() is not None


def _tiny_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 16)).astype(np.float32)
    t = rng.integers(0, 10, 1000)
    return (x, t), (x[:200], t[:200])


def _table(title, stats, flops, rate, log, unit="us"):
    ref_key = next((k for k in stats if k.startswith("xpnet cpu")), next(iter(stats)))
    ref = stats[ref_key]["median"]
    floor_s = flops / (rate * 1e9)
    log(f"\n{title}  ({flops / 1e6:.1f} MFLOP, floor at {rate:.0f} GFLOP/s: "
        f"{_fmt(floor_s, unit)})")
    log(f"  {'contender':<36} {'median':>10} {'min-max':>21} {'ratio to ' + ref_key:>22}")
    for k, s in stats.items():
        s["ratio_to_xpnet"] = s["median"] / ref
        extra = ""
        if "final_test_acc" in s:
            extra = f"   test acc {statistics.median(s['final_test_acc']):.4f}"
        log(f"  {k:<36} {_fmt(s['median'], unit):>10} {_fmt(s['min'], unit):>10}-{_fmt(s['max'], unit):<10} "
            f"{s['ratio_to_xpnet']:>21.2f}x{extra}")
    return {"title": title, "flops": flops, "floor_s": floor_s, "reference": ref_key, "rows": stats}


def _fmt(seconds, unit):
    return f"{seconds * 1e6:.0f} us" if unit == "us" else f"{seconds:.2f} s"


def run_cli(a) -> int:
    devices = [d.strip() for d in a.devices.split(",")] if a.devices else None
    res = run(quick=a.quick, repeats=a.repeats, steps=a.steps, devices=devices, protocol=not a.no_protocol)
    data = json.dumps(res, indent=1, default=float).encode()
    write_atomic(a.json, lambda f: f.write(data))
    print(f"\nwritten: {a.json}")
    return 0

"""The timing harness: rounds, tables, targets (``run``) for ``python -m benchmarks``.

Everything runs in one process, on the same data, protocol and seed, with the contenders
interleaved round by round so that machine noise hits them alike. Reported: medians, min-max
spread, each time as a ratio to the hand-tuned NumPy float32 step and to xpnet's trainer, the
measured float32 matmul rate and the FLOP count of the work (so the distance to the hardware
floor is visible), and the two speed targets.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import OrderedDict

import numpy as np

import xpnet
from xpnet.atomic import write_atomic
from xpnet.validation import format_bytes, int_at_least

from .contenders import (LEAN_NET_LOOP, LEAN_NET_LOOP_1T, TUNED_NET_LOOP, BookContender, JaxContender,
                         NumpyNetLoopContender, TorchContender, TorchGraphContender, TunedNumpyContender,
                         TunedNumpyOneThreadContender, YardstickContender)
from .conv import conv_contenders, conv_targets
from .xpnet_contenders import BookLoopContender, XpnetContender

TUNED, TUNED_1T = TunedNumpyContender.name, TunedNumpyOneThreadContender.name
BOOK_LOOP = "xpnet, book-style loop"
BOOK_LOOP_LOSS = "xpnet, book-style loop + net.loss"
TARGET_BOOK_LOOP = 1.10  # the book-style loop's per-step time over the hand-tuned step's, at most
# the trainer's and the yardstick's per-step times (us) on the reference machine (2 vCPUs): the trainer's target
REFERENCE_US = {"trainer": 299.0, "yardstick": 375.0}

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


class MatmulFloor:
    """The step's matrix products alone (preallocated, ``out=``), timed like a contender."""

    name = "matmul floor (products only)"

    def __init__(self, sizes, batch):
        rng = np.random.default_rng(0)
        self.acts = [rng.standard_normal((batch, s)).astype(np.float32) for s in sizes]
        self.Ws = [rng.standard_normal((a, b)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
        self.outs = [np.empty((batch, b), np.float32) for b in sizes[1:]]
        self.dWs = [np.empty_like(W) for W in self.Ws]
        self.dxs = [np.empty((batch, a), np.float32) for a in sizes[1:-1]]

    def steps(self, k):
        acts, Ws, outs, dWs, dxs = self.acts, self.Ws, self.outs, self.dWs, self.dxs
        for _ in range(k):
            for i, W in enumerate(Ws):
                np.matmul(acts[i], W, out=outs[i])
            for i in range(len(Ws) - 1, -1, -1):
                np.matmul(acts[i].T, outs[i], out=dWs[i])
                if i:
                    np.matmul(outs[i], Ws[i].T, out=dxs[i - 1])


ACCEL_MLP, ACCEL_BATCH = [784, 4096, 4096, 10], 4096  # the large MLP measured on accelerators


def is_accelerator(device: str) -> bool:
    return device.startswith(("cuda", "torch:cuda"))


def device_matmul_rate(device, n=4096, seconds=0.5) -> float:
    """Measured float32 GFLOP/s of an n x n x n product on an xpnet device, through its own
    namespace and synchronized (the best of several timed batches): an accelerator's floor."""
    dev = xpnet.device(device)
    with dev.scope():  # CuPy computes on the current GPU: make it this device's
        a = dev.asarray(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32))
        c = a @ a
        dev.synchronize()
        best, t_end = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            for _ in range(3):
                c = a @ a
            dev.synchronize()
            best = max(best, 3 * 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
        del c
    return best


class DeviceMatmulFloor:
    """The step's matrix products alone on an xpnet device (its namespace, synchronized after
    each call of ``steps``): what the products cost there, without the rest of the step. All of
    it runs in the device's scope (CuPy computes on the current GPU)."""

    def __init__(self, sizes, batch, device):
        self.dev = dev = xpnet.device(device)
        self.name = f"matmul floor on {dev.name}"
        rng = np.random.default_rng(0)
        with dev.scope():
            self.acts = [dev.asarray(rng.standard_normal((batch, s)).astype(np.float32)) for s in sizes]
            self.Ws = [dev.asarray(rng.standard_normal((a, b)).astype(np.float32))
                       for a, b in zip(sizes[:-1], sizes[1:])]

    def steps(self, k):
        acts, Ws = self.acts, self.Ws
        with self.dev.scope():
            for _ in range(k):
                outs = [acts[i] @ W for i, W in enumerate(Ws)]
                for i in range(len(Ws) - 1, -1, -1):
                    acts[i].T @ outs[i]
                    if i:
                        outs[i] @ Ws[i].T
            self.dev.synchronize()


def accelerator_table(accelerators, sizes, batch, data, steps, repeats, log, split=5, pause=0.02,
                      torch_devices=(), with_jax=False, rate_n=4096) -> dict:
    """The large MLP on the accelerators: xpnet on each, idiomatic PyTorch (eager and in a CUDA
    graph) and jitted JAX where present, the products alone; each row as achieved GFLOP/s and
    its fraction of the first accelerator's measured float32 matmul rate. ``with_jax``: JAX is
    wanted and importable (``run`` checks); it joins when its backend is a GPU."""
    accelerators = [xpnet.device(d).name for d in accelerators]  # "cuda" and "cuda:0": one name
    rates = {d: device_matmul_rate(d, n=rate_n, seconds=0.5) for d in accelerators}
    rate = rates[accelerators[0]]
    p = _init_params(sizes, "he", 0)
    cs = [XpnetContender(p, data, 0.1, batch, 0, device=d) for d in accelerators]
    if "cuda" in torch_devices:
        cs += [TorchContender(p, data, 0.1, batch, 0, "cuda"), TorchGraphContender(p, data, 0.1, batch, 0)]
    if with_jax:
        import jax

        backend = jax.default_backend()
        if backend == "gpu":
            cs.append(JaxContender(p, data, 0.1, batch, 0))
        else:
            _skipped(log, f"jitted JAX {backend} in the accelerator table", f"JAX's backend is {backend}, not a GPU")
    cs += [DeviceMatmulFloor(sizes, batch, d) for d in accelerators]
    stats = time_steps(cs, max(steps // 10, 5), repeats, warmup=3, split=split, pause=pause)
    flops = step_flops(sizes, batch)
    title = f"MLP {'-'.join(map(str, sizes))}, batch {batch}, float32, on the accelerators: per step"
    log(f"\n{title}  ({flops / 1e9:.1f} GFLOP; measured float32 matmul rate: "
        + ", ".join(f"{d} {r / 1e3:.1f} TFLOP/s" for d, r in rates.items()) + ")")
    log(f"  {'contender':<36} {'median':>10} {'min-max':>21} {'TFLOP/s':>9} {'of the rate':>12}")
    for k, st in stats.items():
        st["tflops"] = flops / st["median"] / 1e12
        st["fraction_of_rate"] = flops / st["median"] / (rate * 1e9)
        log(f"  {k:<36} {_fmt(st['median'], 'us'):>10} {_fmt(st['min'], 'us'):>10}-{_fmt(st['max'], 'us'):<10} "
            f"{st['tflops']:>9.2f} {st['fraction_of_rate']:>11.0%}")
    return {"title": title, "flops": flops, "matmul_gflops_f32": rates, "rows": stats}


def _init_params(sizes, std, seed):
    rng = np.random.default_rng(seed)
    p = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        p[f"W{i}"] = (std if std != "he" else np.sqrt(2.0 / a)) * rng.standard_normal((a, b))
        p[f"b{i}"] = np.zeros(b)
    return p


def _stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def _settle(pause):
    """Before a timing: a garbage collection and a short pause, so that neither the previous
    contender's garbage nor the threads it left spinning weigh on the next; ``pause=None``
    (a quick check, not a measurement) skips both."""
    if pause is not None:
        gc.collect()
        time.sleep(pause)


def time_steps(contenders, steps, repeats, warmup=20, split=5, pause=0.02):
    """Per-step seconds of each contender: ``repeats * split`` rounds of ``steps / split`` steps,
    the order rotating every round and each timing settled (``_settle(pause)``), so that
    neither a noisy moment nor a previous contender favours anyone."""
    for c in contenders:
        c.steps(warmup)
    times = {c.name: [] for c in contenders}
    per_round = max(steps // split, 1)
    order = list(contenders)
    for r in range(repeats * split):
        for c in order[r % len(order):] + order[:r % len(order)]:
            _settle(pause)
            t0 = time.perf_counter()
            c.steps(per_round)
            times[c.name].append((time.perf_counter() - t0) / per_round)
    return {k: _stats(v) for k, v in times.items()}


def time_protocol(make, repeats, pause=0.05):
    """Whole protocol (steps + an evaluation of train and test every epoch), fresh nets each run.

    ``make`` maps labels to factories of contenders built for the protocol; xpnet's runs
    ``Trainer.fit()``, the others the same loop of evaluations and steps. Each row goes under
    the contender's own name, as in the per-step tables."""
    out = {}
    names = list(make)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            factory, iters, eval_interval = make[name]
            _settle(pause)
            t0 = time.perf_counter()
            c = factory()
            acc = None
            if isinstance(c, XpnetContender):
                h = c.protocol()
                acc = h.test_acc[-1]
            else:
                for i in range(0, iters, eval_interval):
                    acc = c.evaluate()[1]
                    c.steps(min(eval_interval, iters - i))
            dt = time.perf_counter() - t0
            final = c.evaluate()[1]
            rec = out.setdefault(c.name, {"times": [], "final_test_acc": [], "last_epoch_test_acc": []})
            rec["times"].append(dt)
            rec["final_test_acc"].append(final)
            rec["last_epoch_test_acc"].append(acc)
    return {k: {**_stats(v["times"]), "final_test_acc": v["final_test_acc"],
                "last_epoch_test_acc": v["last_epoch_test_acc"]} for k, v in out.items()}


def xpnet_memory(data, params, iters, eval_interval, block=1000):
    """Peak traced memory of xpnet's protocol, and growth of the step once warm (bytes per 1000
    steps, measured over two blocks of ``block`` steps)."""
    c = XpnetContender(params, data, 0.1, 100, 0, iters=iters, eval_interval=eval_interval)
    c.steps(max(block // 5, 1))
    tracemalloc.start()
    c.steps(block)  # each call keeps its own recorded losses: equal calls, equal memory
    after_warm = tracemalloc.get_traced_memory()[0]
    c.steps(block)
    c.steps(block)
    after_more = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    c.protocol()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # whole process, all contenders
    except ImportError:  # not on Windows
        rss = 0
    return {"step_growth_bytes_per_1000_steps": (after_more - after_warm) / 2.0 * 1000 / block,
            "protocol_peak_bytes": peak,
            "process_max_rss_bytes": rss}


# ---------------------------------------------------------------------------------------
_SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


@contextlib.contextmanager
def busy_cpu(n: int, seconds: float = 900.0):
    """``n`` background processes spinning on the CPU: a busy machine. Each stops by itself after
    ``seconds`` (so none outlives a killed benchmark for long) and all are killed on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN.format(seconds=float(seconds))],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(n)]
    try:
        time.sleep(0.3)  # let them start spinning
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


# ---------------------------------------------------------------------------------------
def run(quick=False, repeats=3, steps=2000, devices=None, protocol=True, with_jax=True, log=print,
        only=None, busy=0, conv_steps=50):
    """Every table (``only="book"``: the book net's per-step table alone); ``busy=N`` times the
    book net's step once more with N processes spinning on the CPU. A contender whose optional
    tool (CuPy, torch, JAX, threadpoolctl) or device is missing is skipped with a line saying why."""
    devices, skips = _usable_devices(devices)
    why_no_torch = _why_missing("torch")
    torch_version, torch_devices = None, []
    if why_no_torch is None:
        import torch

        torch_version = torch.__version__
        torch_devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        skips["idiomatic PyTorch cpu"] = why_no_torch
    if "cuda" not in torch_devices:
        for name in ("idiomatic PyTorch cuda", "PyTorch CUDA graph"):
            skips[name] = why_no_torch or f"torch {torch_version} sees no CUDA GPU"
    why_no_threadpoolctl = _why_missing("threadpoolctl")
    if why_no_threadpoolctl:
        skips[TUNED_1T] = skips[LEAN_NET_LOOP_1T] = why_no_threadpoolctl
    gpus = [d for d in devices if d.startswith("cuda")]
    if not gpus:
        skips["book code on cupy float64"] = "no CuPy device (cuda:N) among the devices timed"
    why_no_jax = _why_missing("jax") if with_jax else "--no-jax"
    if why_no_jax:
        skips["jitted JAX"] = why_no_jax
    (x, t), (xt, tt) = xpnet.load_mnist()
    split, pause, warmup = 5, 0.02, 20
    if quick:  # a check that everything runs, not a measurement
        x, t, xt, tt = x[:2000], t[:2000], xt[:500], tt[:500]
        repeats, steps, split, pause, warmup = 1, min(steps, 30), 1, None, 2
    data = ((x, t), (xt, tt))
    rate = matmul_rate(seconds=0.2 if quick else 1.0)
    res = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                       "torch": torch_version, "xpnet": xpnet.__version__, "matmul_gflops_f32": rate},
           "quick": quick, "repeats": repeats, "steps": steps, "skipped": skips}
    log(f"machine: {res['machine']['platform']}, {os.cpu_count()} cpus, NumPy {np.__version__}, "
        f"torch {torch_version}; float32 matmul {rate:.1f} GFLOP/s")
    for name, why in skips.items():
        _skipped(log, name, why)

    def contenders(sizes, batch, std, with_book, data=data, proto=None):
        p = _init_params(sizes, std, 0)
        kw = {"iters": proto[0], "eval_interval": proto[1]} if proto else {}
        fs = OrderedDict()
        for d in devices:
            fs[f"xpnet {d}"] = lambda d=d: XpnetContender(p, data, 0.1, batch, 0, device=d, **kw)
        if with_book:
            fs[BOOK_LOOP] = lambda: BookLoopContender(p, data, 0.1, batch, 0)
            fs[BOOK_LOOP_LOSS] = lambda: BookLoopContender(p, data, 0.1, batch, 0, second_loss=True)
            fs["book NumPy float64"] = lambda: BookContender(p, data, 0.1, batch, 0)
        fs[TUNED] = lambda: TunedNumpyContender(p, data, 0.1, batch, 0)
        if with_book:  # the reader's loop around the fastest NumPy gradient()s: what a gradient() can reach
            fs[TUNED_NET_LOOP] = lambda: NumpyNetLoopContender(p, data, 0.1, batch, 0)
            fs[LEAN_NET_LOOP] = lambda: NumpyNetLoopContender(p, data, 0.1, batch, 0, lean=True)
        if with_book and why_no_threadpoolctl is None:
            fs[TUNED_1T] = lambda: TunedNumpyOneThreadContender(p, data, 0.1, batch, 0)
            fs[LEAN_NET_LOOP_1T] = lambda: NumpyNetLoopContender(p, data, 0.1, batch, 0, lean=True, one_thread=True)
        for td in torch_devices:
            fs[f"idiomatic PyTorch {td}"] = lambda td=td: TorchContender(p, data, 0.1, batch, 0, td)
        if "cuda" in torch_devices:
            fs["PyTorch CUDA graph"] = lambda: TorchGraphContender(p, data, 0.1, batch, 0)
        if with_book and gpus:  # on the first GPU timed, in its scope
            import cupy

            fs["book code on cupy float64"] = lambda: BookContender(p, data, 0.1, batch, 0, module=cupy,
                                                                    scope=xpnet.device(gpus[0]).scope)
        if why_no_jax is None:
            fs["jitted JAX"] = lambda: JaxContender(p, data, 0.1, batch, 0)
        return fs

    tables = {}
    # 1. the book's net, per step (with the yardstick for the trainer's target)
    book_sizes = [784, 50, 10]
    fs = contenders(book_sizes, 100, 0.01, True)
    book = [f() for f in fs.values()] + [YardstickContender(_init_params(book_sizes, 0.01, 0), data, 0.1, 100, 0)]
    tables["book_step"] = _table("book net 784-50-10, batch 100: per step", time_steps(
        book, steps, repeats, warmup=warmup, split=split, pause=pause), step_flops(book_sizes, 100), rate, log)
    res["targets"] = _targets(tables["book_step"], log)
    if busy:
        with busy_cpu(busy):
            tables["book_step_busy"] = _table(
                f"book net 784-50-10, batch 100: per step, with {busy} processes spinning on the CPU",
                time_steps(book, steps, repeats, warmup=warmup, split=split, pause=pause), step_flops(book_sizes, 100),
                rate, log)
        res["busy_processes"] = busy
    if only == "book":
        res["tables"] = tables
        return res
    # 2. the tiny net: only dispatch overhead
    tiny_data = _tiny_data()
    p_tiny = _init_params([16, 8, 10], 0.1, 0)
    tiny = [XpnetContender(p_tiny, tiny_data, 0.1, 4, 0, device="cpu"),
            BookLoopContender(p_tiny, tiny_data, 0.1, 4, 0),
            BookLoopContender(p_tiny, tiny_data, 0.1, 4, 0, second_loss=True),
            NumpyNetLoopContender(p_tiny, tiny_data, 0.1, 4, 0, lean=True),
            TunedNumpyContender(p_tiny, tiny_data, 0.1, 4, 0)]
    tables["tiny_step"] = _table("tiny net 16-8-10, batch 4: per step",
                                 time_steps(tiny, steps, repeats, warmup=warmup, split=split, pause=pause),
                                 step_flops([16, 8, 10], 4), rate, log)
    # 3. a larger MLP where the products dominate, against its matmul floor
    big = [784, 256, 256, 10] if quick else [784, 1024, 1024, 10]
    bb = 64 if quick else 512
    fs_big = contenders(big, bb, "he", False)
    big_steps = max(steps // 10, 5)
    tb = time_steps([f() for f in fs_big.values()] + [MatmulFloor(big, bb)], big_steps, repeats, warmup=3,
                    split=split, pause=pause)
    tables["big_step"] = _table(f"MLP {'-'.join(map(str, big))}, batch {bb}: per step", tb,
                                step_flops(big, bb), rate, log)
    # 3b. the large MLP on the accelerators, against their own matmul rate
    accelerators = [d for d in devices if is_accelerator(d)]
    if accelerators:
        sizes, batch = ([784, 256, 256, 10], 256) if quick else (ACCEL_MLP, ACCEL_BATCH)
        tables["accelerator_mlp"] = accelerator_table(accelerators, sizes, batch, data, steps, repeats, log,
                                                      split=split, pause=pause, torch_devices=torch_devices,
                                                      with_jax=why_no_jax is None, rate_n=1024 if quick else 4096)
    # 3c. the book's convnets (chapters 7 and 8): SimpleConvNet and DeepConvNet (``conv_steps`` steps
    # a repeat, a fifth of them for DeepConvNet; 0 leaves them out)
    (xi, ti), (xti, tti) = xpnet.load_mnist(flatten=False)
    if quick:
        xi, ti, xti, tti = xi[:500], ti[:500], xti[:100], tti[:100]
    conv_devices = [d for d in devices if d in ("cpu", "torch") or is_accelerator(d)]
    for kind, title, k_steps in (("simple", "SimpleConvNet (ch07) 1x28x28, batch 100, float32", conv_steps),
                                 ("deep", "DeepConvNet (ch08) 1x28x28, batch 100, float32", max(conv_steps // 5, 1))):
        if not conv_steps:
            break
        fs_conv = conv_contenders(kind, ((xi, ti), (xti, tti)), 100, conv_devices, torch_devices, quick=quick)
        k_steps = 2 if quick else k_steps
        stats = time_steps([f() for f in fs_conv.values()], k_steps, repeats, warmup=1 if quick else 2,
                           split=min(5, k_steps), pause=pause)
        tables[f"conv_{kind}"] = _table(f"{title}: per step (gradient, Adam, loss)", stats, 0, rate, log, unit="ms")
        tables[f"conv_{kind}"]["targets"] = conv_targets(kind, stats, log)
    # 4. the whole protocol
    if protocol:
        iters = 60 if quick else 10000
        interval = 20 if quick else 600
        fp = contenders(book_sizes, 100, 0.01, True, proto=(iters, interval))
        for name in (BOOK_LOOP_LOSS, TUNED_NET_LOOP, LEAN_NET_LOOP, LEAN_NET_LOOP_1T):  # the per-step table's
            fp.pop(name, None)  # business: the second pass's cost, the loop's bounds
        tp = time_protocol({k: (f, iters, interval) for k, f in fp.items()}, repeats,
                           pause=None if quick else 0.05)
        evals = len(range(0, iters, interval))
        flops = iters * step_flops(book_sizes, 100) + evals * (x.shape[0] + xt.shape[0]) * 2 * (784 * 50 + 50 * 10)
        tables["protocol"] = _table(f"book protocol: {iters} steps + {evals} evaluations of "
                                    f"{x.shape[0] + xt.shape[0]} images, whole run", tp, flops, rate, log, unit="s")
        mem = xpnet_memory(data, _init_params(book_sizes, 0.01, 0), iters, interval, block=100 if quick else 1000)
        tables["memory"] = mem
        log(f"xpnet memory: step growth {format_bytes(mem['step_growth_bytes_per_1000_steps'])} per 1000 steps "
            f"(after warm-up); protocol peak {format_bytes(mem['protocol_peak_bytes'])} above the loaded "
            f"data (tracemalloc); whole benchmark process max RSS {format_bytes(mem['process_max_rss_bytes'])}")
    res["tables"] = tables
    return res


def _targets(table, log):
    """The two speed targets (benchmarks/README.md), read off the book-step table (same process, same rounds)."""
    rows = table["rows"]
    out = {"reference": table["reference"], "reference_median_s": rows[table["reference"]]["median"]}
    loop = rows[BOOK_LOOP]["ratio_to_tuned"]
    out["book_loop"] = {"ratio_to_tuned": loop, "target": TARGET_BOOK_LOOP, "met": loop <= TARGET_BOOK_LOOP}
    out["book_loop_with_net_loss"] = {"ratio_to_tuned": rows[BOOK_LOOP_LOSS]["ratio_to_tuned"]}
    tr = rows.get("xpnet cpu")
    log(f"\ntargets (book net, per step, medians of the same rounds; hand-tuned = {table['reference']!r}):")
    log(f"  book-style loop            {_fmt(rows[BOOK_LOOP]['median'], 'us'):>8} = {loop:.2f}x hand-tuned "
        f"(target <= {TARGET_BOOK_LOOP:.2f}x: {'met' if loop <= TARGET_BOOK_LOOP else 'NOT met'})")
    log(f"  book-style loop + net.loss {_fmt(rows[BOOK_LOOP_LOSS]['median'], 'us'):>8} = "
        f"{out['book_loop_with_net_loss']['ratio_to_tuned']:.2f}x hand-tuned (the book's second forward pass)")
    bounds = {}
    for key, name, what in (("reused_buffers", TUNED_NET_LOOP, "tuned net (gradients in reused buffers)"),
                            ("fresh_arrays", LEAN_NET_LOOP, "lean net (fresh gradient arrays, the book's contract)")):
        if name in rows:  # the same loop around the fastest gradient() NumPy allows
            r = rows[name]["ratio_to_tuned"]
            bounds[key] = {"ratio_to_tuned": r, "target_reachable": r <= TARGET_BOOK_LOOP}
            log(f"  the same loop, {what}: {_fmt(rows[name]['median'], 'us')} = {r:.2f}x hand-tuned "
                f"({'within' if r <= TARGET_BOOK_LOOP else 'above'} the target)")
    out["book_loop_bounds"] = bounds
    if LEAN_NET_LOOP_1T in rows:  # at one BLAS thread, xpnet's policy for products of this size
        r = rows[BOOK_LOOP]["median"] / rows[LEAN_NET_LOOP_1T]["median"]
        out["book_loop"]["ratio_to_lean_loop_one_thread"] = r
        log(f"  book-style loop / the same loop on the lean net, both on one BLAS thread: {r:.2f}x "
            f"(what xpnet's gradient() costs beyond the cheapest one with its contract)")
    if tr is not None:
        to_yardstick = tr["median"] / rows[YardstickContender.name]["median"]
        reference = REFERENCE_US["trainer"] / REFERENCE_US["yardstick"]
        absolute_ok = tr["median"] * 1e6 <= 1.05 * REFERENCE_US["trainer"]  # the machine's noise: 5 %
        out["trainer_step"] = {"median_s": tr["median"], "ratio_to_tuned": tr["ratio_to_tuned"],
                               "ratio_to_yardstick": to_yardstick, "reference_ratio_to_yardstick": reference,
                               "reference_us": dict(REFERENCE_US), "no_slower": to_yardstick <= reference,
                               "no_slower_absolute": absolute_ok}
        log(f"  trainer step (xpnet cpu)   {_fmt(tr['median'], 'us'):>8} = {tr['ratio_to_tuned']:.2f}x hand-tuned; "
            f"target: no slower than {REFERENCE_US['trainer']:.0f} us, its time on the reference machine (2 vCPUs), "
            f"within 5 % noise: {'met' if absolute_ok else 'NOT met'} (meaningful on a machine like it); "
            f"{to_yardstick:.2f}x the yardstick in the same rounds, against {reference:.2f}x on the reference "
            f"machine (any machine: {'met' if to_yardstick <= reference else 'NOT met'})")
    return out


def _usable_devices(devices):
    """The devices to time by canonical name (``xpnet.device(spec).name``: "cuda" and "cuda:0"
    are one row, named alike in every table), and {row: why} for those unusable here."""
    skips = {}
    if devices is None:  # every compute device; array_api_strict is a test namespace, not one
        report = [r for r in xpnet.device_report() if r[0] != "array_api_strict"]
        skips = {f"xpnet {name}": why for name, ok, why in report if not ok}
        devices = [name for name, ok, _ in report if ok]
    names = []
    for spec in devices:
        try:
            name = xpnet.device(spec).name
        except xpnet.DeviceUnavailableError as e:
            skips[f"xpnet {spec}"] = str(e)
            continue
        if name not in names:
            names.append(name)
    return names, skips


def _why_missing(module):
    """None when the optional ``module`` imports here, else why not, in a few words."""
    try:
        importlib.import_module(module)
    except Exception as e:  # not installed, or broken (jaxlib not matching jax, a CUDA library missing)
        if isinstance(e, ModuleNotFoundError) and e.name == module:
            return f"{module} is not installed"
        return f"import {module} failed: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
    return None


def _skipped(log, name, why):
    log(f"skipped: {name} ({why})")


def _tiny_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 16)).astype(np.float32)
    t = rng.integers(0, 10, 1000)
    return (x, t), (x[:200], t[:200])


def _table(title, stats, flops, rate, log, unit="us"):
    # the reference: the faster of the hand-tuned rows in this run (BLAS threads or one thread)
    tuned_key = min((k for k in (TUNED, TUNED_1T) if k in stats), key=lambda k: stats[k]["median"], default=None)
    tuned = stats[tuned_key]["median"] if tuned_key else None
    ref_key = next((k for k in stats if k.startswith("xpnet cpu")), None)
    ref = stats[ref_key]["median"] if ref_key else None
    floor_s = flops / (rate * 1e9)
    log(f"\n{title}" + (f"  ({flops / 1e6:.1f} MFLOP, floor at {rate:.0f} GFLOP/s: {_fmt(floor_s, unit)})"
                         if flops else ""))
    if tuned_key:
        log(f"  (vs hand-tuned: ratio to the faster hand-tuned row of this run, {tuned_key!r})")
    log(f"  {'contender':<36} {'median':>10} {'min-max':>21} {'vs hand-tuned':>14} {'vs xpnet cpu':>13}")
    for k, s in stats.items():
        s["ratio_to_tuned"] = s["median"] / tuned if tuned else None
        s["ratio_to_xpnet"] = s["median"] / ref if ref else None
        extra = ""
        if "final_test_acc" in s:
            extra = f"   test acc {statistics.median(s['final_test_acc']):.4f}"
        log(f"  {k:<36} {_fmt(s['median'], unit):>10} {_fmt(s['min'], unit):>10}-{_fmt(s['max'], unit):<10} "
            f"{_ratio(s['ratio_to_tuned']):>14} {_ratio(s['ratio_to_xpnet']):>13}{extra}")
    return {"title": title, "flops": flops, "floor_s": floor_s, "reference": tuned_key,
            "xpnet_reference": ref_key, "rows": stats}


def _ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def _fmt(seconds, unit):
    if unit == "ms":
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us" if unit == "us" else f"{seconds:.2f} s"


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The benchmark's options (``python -m benchmarks``, and ``xpnet bench``, which hands them here)."""
    positive = int_at_least(1, "positive")
    p.add_argument("--quick", action="store_true", help="a tiny configuration (seconds): checks that it runs")
    p.add_argument("--repeats", type=positive, default=3)
    p.add_argument("--steps", type=positive, default=2000, help="timed steps per per-step measurement")
    p.add_argument("--devices", default=None, help="xpnet devices to time (default: cpu and every GPU)")
    p.add_argument("--no-protocol", action="store_true", help="skip the whole 10000-iteration protocol")
    p.add_argument("--no-jax", action="store_true", help="leave out the jitted JAX contender")
    p.add_argument("--json", default="bench-results.json", help="where to write the table as JSON")
    p.add_argument("--only", choices=["book"], default=None, help="time only the book net's per-step table")
    p.add_argument("--conv-steps", type=int_at_least(0, "non-negative"), default=50, metavar="N",
                   help="timed SimpleConvNet steps a repeat (DeepConvNet: a fifth); 0 leaves the convnets out")
    p.add_argument("--busy", type=int_at_least(0, "non-negative"), default=0, metavar="N",
                   help="also time the book net's step with N processes spinning on the CPU (a busy machine)")
    return p


def parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="time xpnet against the book's code, a hand-tuned NumPy step, PyTorch and JAX"))


def main(argv=None, prog: str = "python -m benchmarks") -> int:
    """Parse ``argv`` (default: the command line) and run; ``prog`` names the command in messages."""
    return run_cli(parser(prog).parse_args(argv))


def run_cli(args) -> int:
    """Run with the options of ``add_arguments`` (an argparse namespace); write the JSON."""
    devices = [d.strip() for d in args.devices.split(",")] if args.devices else None
    res = run(quick=args.quick, repeats=args.repeats, steps=args.steps, devices=devices,
              protocol=not args.no_protocol, with_jax=not args.no_jax, only=args.only, busy=args.busy,
              conv_steps=args.conv_steps)
    data = json.dumps(res, indent=1, default=float).encode()
    write_atomic(args.json, lambda f: f.write(data))
    print(f"\nwritten: {args.json}")
    return 0

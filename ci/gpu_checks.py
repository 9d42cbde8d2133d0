"""The GPU job's checks that are whole runs rather than unit tests (``ci/gpu.sh checks``).

- ``protocol``: the book's protocol (TwoLayerNet float32, 10 000 steps of 100, an evaluation every
  600) trains to >= 0.965 test accuracy; its checkpoint loads on the CPU and gives the same
  accuracy (within 5 of 10 000 predictions: cuBLAS and OpenBLAS round differently);
- ``steady``: 10 000 more steps with no implicit host transfer (``cupyx.allow_synchronize(False)``
  on CUDA) and flat memory (CuPy's pool on CUDA, ``tracemalloc`` on the CPU);
- ``one_process``: the data-parallel path with one process (NCCL on CUDA, MPI on the CPU) takes
  the same steps as the plain trainer.

One line per check, and ``--json`` writes them all. ``--device cpu`` runs the same checks where no
GPU is, which is how this script itself is tested; ``--versions`` prints what the machine runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

import xpnet
from xpnet.atomic import write_atomic

CHECKS = ("protocol", "steady", "one_process")
MIN_ACCURACY = 0.965
MAX_DIFFERENT_PREDICTIONS = 5


def versions() -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__, "xpnet": xpnet.__version__,
           "devices": xpnet.devices()}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        out["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        out["nvidia_smi"] = f"not run: {e}"
    for name in ("cupy", "torch", "jax", "array_api_compat", "array_api_strict", "mpi4py"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except Exception as e:  # noqa: BLE001 - a version report names what is missing and why
            out[name] = f"missing ({type(e).__name__}: {e})"
    try:
        import cupy

        rt = cupy.cuda.runtime
        out["cuda_runtime"] = rt.runtimeGetVersion()
        out["cuda_driver"] = rt.driverGetVersion()
        out["gpu"] = rt.getDeviceProperties(0)["name"].decode()
    except Exception as e:  # noqa: BLE001
        out["cuda"] = f"unavailable ({type(e).__name__}: {e})"
    return out


def _trainer(dev, data, **kw):
    (x, t), (xt, tt) = data
    net = xpnet.TwoLayerNet(784, 50, 10, device=dev, dtype="float32", seed=0)
    return xpnet.Trainer(net, x, t, xt, tt, lr=0.1, batch_size=100, seed=0, log=None, progress=False, **kw)


def xp_argmax(net, x):
    """The predicted classes of host images ``x``, on the net's device."""
    dev = net.device
    return dev.xp.argmax(net.predict(dev.asarray(x.astype(np.float32))), axis=1)


def check_protocol(dev, data, iters, folder) -> dict:
    tr = _trainer(dev, data, iters=iters, eval_interval=600)
    path = os.path.join(folder, "model.npz")
    t0 = time.perf_counter()
    h = tr.fit(checkpoint=path)
    wall = time.perf_counter() - t0
    (_, _), (xt, tt) = data
    on_device = np.asarray(tr.net.device.to_numpy(xp_argmax(tr.net, xt)))
    cpu_net = xpnet.load_checkpoint(path, device="cpu").net
    on_cpu = np.argmax(cpu_net.predict(xt.astype(np.float32)), axis=1)
    differ = int(np.count_nonzero(on_device != on_cpu))
    acc_cpu = float(np.mean(on_cpu == tt))
    ok = h.final_test_acc >= MIN_ACCURACY and differ <= MAX_DIFFERENT_PREDICTIONS
    return {"ok": ok, "device": dev.name, "iters": iters, "wall_s": wall, "test_acc": h.final_test_acc,
            "test_acc_cpu_from_checkpoint": acc_cpu, "predictions_differing": differ,
            "why": "" if ok else f"test accuracy {h.final_test_acc:.4f} (>= {MIN_ACCURACY} wanted), "
                                 f"{differ} predictions differ on the CPU (<= {MAX_DIFFERENT_PREDICTIONS} wanted)"}


def check_steady(dev, data, steps) -> dict:
    tr = _trainer(dev, data, iters=steps)
    tr.run_steps(1000)  # warm-up: kernels compiled, pools filled, lazy state built
    dev.synchronize()
    guard_name, guard, memory, stop = _guards(dev)
    samples = []
    try:
        with dev.scope():  # the memory readings are of this device's pool, not the current one's
            with guard():
                for done in range(0, steps, 100):
                    tr.run_steps(100)  # each call returns its own losses: hold none of them
                    if done % 1000 == 0:
                        samples.append(memory())
            dev.synchronize()
            samples.append(memory())
    finally:
        stop()
    # from the reading after the first 1000 steps: which batch's buffers happen to be alive at the
    # first reading varies by a few hundred KiB on the CPU; a leak grows with the steps after it
    growth = samples[-1] - samples[min(1, len(samples) - 1)]
    ok = growth <= 64 * 1024
    return {"ok": ok, "device": dev.name, "steps": steps, "memory_bytes_every_1000_steps": samples,
            "growth_bytes": growth, "host_sync_guard": guard_name,
            "why": "" if ok else f"memory grew {growth} bytes over {steps} steps"}


def _guards(dev):
    """(the name of a guard that fails on implicit device-to-host waits, a function making one, a
    reading of the device memory in use, a function that ends the readings), for CuPy, torch on
    CUDA and the CPU."""
    if dev.name.startswith("cuda"):
        import cupy
        import cupyx

        allow = getattr(cupyx, "allow_synchronize", None)  # deprecated since CuPy 10, still there
        if allow is None:
            raise RuntimeError("this CuPy has no cupyx.allow_synchronize: the host-transfer check cannot run")
        return "cupyx.allow_synchronize(False)", lambda: allow(False), cupy.get_default_memory_pool().used_bytes, \
            lambda: None
    if dev.name.startswith("torch:cuda"):
        import torch

        @contextlib.contextmanager
        def sync_is_an_error():
            torch.cuda.set_sync_debug_mode("error")
            try:
                yield
            finally:
                torch.cuda.set_sync_debug_mode("default")

        return 'torch.cuda.set_sync_debug_mode("error")', sync_is_an_error, \
            lambda: torch.cuda.memory_allocated(dev.native), lambda: None
    tracemalloc.start()
    return "none (CPU: nothing to transfer)", contextlib.nullcontext, lambda: tracemalloc.get_traced_memory()[0], \
        tracemalloc.stop


def check_one_process(dev, data, steps) -> dict:
    try:
        comm = dev.communicator()
    except Exception as e:  # noqa: BLE001 - reported, with its reason, as the check's result
        return {"ok": False, "device": dev.name, "why": f"no communicator: {type(e).__name__}: {e}"}
    dev = comm.device or dev  # the GPU this process was given (cuda:N + its place on the machine)
    # the engine itself: the trainer reduces only when there are several processes, so reduce a
    # buffer of the book net's size (39 760 float32) here and check the sum over the processes
    n = 39760
    buf = dev.asarray(np.arange(n, dtype=np.float32) % 97)
    comm.allreduce_sum_(buf, dev)
    dev.synchronize()
    reduced_ok = bool(np.array_equal(dev.to_numpy(buf), (np.arange(n, dtype=np.float32) % 97) * comm.size))
    t0 = time.perf_counter()
    for _ in range(100):
        comm.allreduce_sum_(buf, dev)
    dev.synchronize()
    allreduce_s = (time.perf_counter() - t0) / 100
    plain, dist = _trainer(dev, data, iters=steps), _trainer(dev, data, iters=steps, communicator=comm)
    times = {}
    for name, tr in (("plain", plain), ("distributed", dist)):
        tr.run_steps(10)
        dev.synchronize()
        t0 = time.perf_counter()
        tr.run_steps(steps)
        dev.synchronize()
        times[name] = (time.perf_counter() - t0) / steps
    diff = max(float(np.max(np.abs(dev.to_numpy(plain.net.params[k]) - dev.to_numpy(dist.net.params[k]))))
               for k in plain.net.params)
    ok = diff <= 1e-5 and reduced_ok
    why = [] if reduced_ok else [f"an allreduce of {n} float32 did not give {comm.size} x the buffer"]
    if diff > 1e-5:
        why.append(f"parameters differ by {diff:.3g} from the plain trainer's")
    return {"ok": ok, "device": dev.name, "engine": getattr(comm, "engine", type(comm).__name__), "size": comm.size,
            "allreduce_correct": reduced_ok, "allreduce_s_39760_float32": allreduce_s, "steps": steps,
            "max_abs_param_difference": diff, "step_s_plain": times["plain"],
            "step_s_distributed": times["distributed"], "why": "; ".join(why)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--versions", action="store_true", help="print the machine's versions and stop")
    ap.add_argument("--iters", type=int, default=10000, help="steps of the protocol and of the steady run")
    ap.add_argument("--checks", default="protocol,steady,one_process",
                    help="which checks, comma-separated (one_process wants an MPI launcher: mpiexec -n 1 ...)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    chosen = [c.strip() for c in a.checks.split(",") if c.strip()]
    unknown = sorted(set(chosen) - set(CHECKS))
    if unknown:
        ap.error(f"unknown checks {', '.join(unknown)}: choose from {', '.join(CHECKS)}")
    if a.versions:
        res = versions()
        for k, v in res.items():
            print(f"{k}: {v}")
    else:
        dev = xpnet.device(a.device)
        data = xpnet.load_mnist()
        res = {}
        with tempfile.TemporaryDirectory() as folder:
            checks = {"protocol": lambda: check_protocol(dev, data, a.iters, folder),
                      "steady": lambda: check_steady(dev, data, a.iters),
                      "one_process": lambda: check_one_process(dev, data, min(a.iters, 200))}
            for name in chosen:
                run = checks[name]
                try:
                    res[name] = run()
                except Exception as e:  # noqa: BLE001 - one check failing must not hide the others
                    res[name] = {"ok": False, "device": dev.name, "why": f"{type(e).__name__}: {e}"}
                r = res[name]
                print(f"{name}: {'ok' if r['ok'] else 'FAILED'}  " + json.dumps({k: v for k, v in r.items() if k != 'ok'}),
                      flush=True)
    if a.json:
        data = json.dumps(res, indent=1, default=str).encode()
        write_atomic(a.json, lambda f: f.write(data))
    return 0 if a.versions or all(r["ok"] for r in res.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The GPU job's checks that are whole runs rather than unit tests (``ci/gpu.sh checks``).

- ``protocol``: the book's protocol (TwoLayerNet float32, 10 000 steps of 100, an evaluation every
  600) trains to >= 0.965 test accuracy; its checkpoint loads on the CPU and gives the same
  accuracy (within 5 of 10 000 predictions: cuBLAS and OpenBLAS round differently);
- ``steady``: 10 000 more steps with no implicit host transfer (``cupyx.allow_synchronize(False)``
  on CUDA) and flat memory (CuPy's pool on CUDA, ``tracemalloc`` on the CPU);
- ``resume``: a run stopped at half its steps and resumed ends bit for bit where the
  uninterrupted run does: (a) a CPU run, resumed without a device on a machine whose default
  device is the GPU, continues on the CPU; (b) a run on the device under test, resumed there, and
  its checkpoint loads on the CPU; (c) the CPU run resumed with ``device=<the GPU>`` either
  continues there or is refused with a ValueError naming both devices (which one is reported);
- ``one_process``: the data-parallel path with one process (NCCL on CUDA, MPI on the CPU) takes
  the same steps as the plain trainer; skipped, saying why, where no MPI launcher started the
  process, mpi4py is missing or CuPy has no NCCL.

Each check is ok, FAILED or skipped (with the reason), one line each; ``--json`` holds them all,
rewritten after every check so that a run cut off by a time limit keeps the finished ones. The
exit status is 1 when a check FAILED, else 0 (a skip is not a failure). ``--device cpu`` runs the
checks where no GPU is, which is how this script itself is tested (and with
``PYTHONPATH=tests/fakecupy`` on a simulated GPU); ``--versions`` prints what the machine runs,
``--probe cuda,torch:cuda`` whether each device is usable (``usable: <spec> -> <device>`` or
``unusable: <spec>: <why>``: the test suite would leave an unusable one out and pass).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

import xpnet
from xpnet.atomic import write_atomic
from xpnet.distributed import launched_by_mpi

CHECKS = ("protocol", "steady", "resume", "one_process")
MIN_ACCURACY = 0.965
MAX_DIFFERENT_PREDICTIONS = 5
RESUME_SAMPLES = (6000, 1000)  # the resume check compares steps, not accuracies: a slice of MNIST will do


def versions() -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__, "xpnet": xpnet.__version__,
           "devices": xpnet.devices()}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        out["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        out["nvidia_smi"] = f"not run: {e}"
    for name in ("cupy", "torch", "jax", "array_api_compat", "array_api_strict", "mpi4py", "hypothesis", "xdist"):
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
    out["mpiexec"] = shutil.which("mpiexec") or "none on PATH"
    return out


def _trainer(dev, data, **kw):
    (x, t), (xt, tt) = data
    net = xpnet.TwoLayerNet(784, 50, 10, device=dev, dtype="float32", seed=0)
    return xpnet.Trainer(net, x, t, xt, tt, lr=0.1, batch_size=100, seed=0, log=None, progress=False, **kw)


def xp_argmax(net, x):
    """The predicted classes of host images ``x``, on the net's device."""
    dev = net.device
    with dev.scope():  # on cuda:1 the current GPU is still cuda:0
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
    return {"status": "ok" if ok else "FAILED", "device": dev.name, "iters": iters, "wall_s": wall,
            "test_acc": h.final_test_acc, "test_acc_cpu_from_checkpoint": acc_cpu, "predictions_differing": differ,
            "why": "" if ok else f"test accuracy {h.final_test_acc:.4f} (>= {MIN_ACCURACY} wanted), "
                                 f"{differ} predictions differ on the CPU (<= {MAX_DIFFERENT_PREDICTIONS} wanted)"}


def check_steady(dev, data, steps) -> dict:
    tr = _trainer(dev, data, iters=steps)
    tr.run_steps(min(steps, 1000))  # warm-up: kernels compiled, pools filled, lazy state built
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
    return {"status": "ok" if ok else "FAILED", "device": dev.name, "steps": steps,
            "memory_bytes_every_1000_steps": samples, "growth_bytes": growth, "host_sync_guard": guard_name,
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


def check_resume(dev, data, iters, folder) -> dict:
    """Parts (a), (b) and (c) of the module's ``resume``; each part's failure is reported on its own."""
    (x, t), (xt, tt) = data
    n, m = RESUME_SAMPLES
    flat = (x[:n], t[:n], xt[:m], tt[:m])
    sub = (flat[:2], flat[2:])
    half = iters // 2
    cpu = xpnet.device("cpu")

    def finished(tr, checkpoint=None):
        tr.fit(checkpoint=checkpoint)
        return {k: np.asarray(tr.device.to_numpy(v)) for k, v in tr.net.params.items()}

    def stopped_at_half(d, path):
        """The first half of the run, its checkpoint at ``path``; resumed below with iters=<the whole>."""
        finished(_trainer(d, sub, iters=half, eval_interval=half), path)

    def resumed(path, **kw):
        return xpnet.Trainer.resume(path, *flat, iters=iters, log=None, progress=False, **kw)

    def same(a, b):
        return all(np.array_equal(a[k], b[k]) for k in a)  # bit for bit, not within a tolerance

    cpu_path, moved_path, dev_path = (os.path.join(folder, f"resume-{w}.npz") for w in ("cpu", "moved", "dev"))

    def cpu_run():  # (a)
        whole = finished(_trainer(cpu, sub, iters=iters, eval_interval=half))
        stopped_at_half(cpu, cpu_path)
        shutil.copy(cpu_path, moved_path)  # (c) resumes this copy of the half-way checkpoint
        tr = resumed(cpu_path)
        if tr.device.name != "cpu":
            return False, f"resumed without a device on {tr.device.name}, not on the CPU it was trained on"
        if not same(finished(tr, cpu_path), whole):
            return False, "resumed on the CPU but its parameters differ from the uninterrupted run's"
        return True, f"resumed on the CPU (default device here: {xpnet.device().name}), bit-identical"

    def device_run():  # (b)
        if dev.name == "cpu":
            return True, "not run: the device under test is the CPU, (a) covers it"
        whole = finished(_trainer(dev, sub, iters=iters, eval_interval=half))
        stopped_at_half(dev, dev_path)
        tr = resumed(dev_path, device=dev.name)
        if tr.device.name != dev.name:
            return False, f"resumed with device={dev.name!r} on {tr.device.name}"
        got = finished(tr, dev_path)
        if not same(got, whole):
            return False, f"resumed on {dev.name} but its parameters differ from the uninterrupted run's"
        net = xpnet.load_net(dev_path, device="cpu")
        if net.device.name != "cpu" or not same({k: np.asarray(v) for k, v in net.params.items()}, got):
            return False, (f"bit-identical on {dev.name}, but its checkpoint loads on {net.device.name} or with "
                           "other parameters")
        return True, f"resumed on {dev.name}, bit-identical; its checkpoint loads on the CPU with the same parameters"

    def moved_run():  # (c)
        if dev.name == "cpu":
            return True, "not run: the device under test is the CPU, there is nowhere to move to"
        try:
            tr = resumed(moved_path, device=dev.name)
        except ValueError as e:
            said = str(e).replace(moved_path, "<checkpoint>")  # the devices must be named, not found in the path
            if "cpu" in said and dev.name in said:
                return True, f"refused: {said}"
            return False, f"refused with a ValueError that does not name both cpu and {dev.name}: {said}"
        if tr.device.name != dev.name:
            return False, f"the CPU run resumed with device={dev.name!r} went to {tr.device.name}"
        finished(tr)
        return True, f"moved: the CPU run continued on {dev.name} from step {half} to {iters}"

    parts, why = {}, []
    for name, part in (("cpu_resumed_without_device", cpu_run), ("device_resumed_on_itself", device_run),
                       ("cpu_resumed_on_device", moved_run)):
        try:
            ok, said = part()
        except Exception as e:  # noqa: BLE001 - one part failing must not hide the others
            ok, said = False, f"{type(e).__name__}: {e}"
        parts[name] = said
        if not ok:
            why.append(f"{name}: {said}")
    return {"status": "FAILED" if why else "ok", "device": dev.name, "default_device": xpnet.device().name,
            "iters": iters, "checkpoint_at": half, **parts, "why": "; ".join(why)}


def _no_engine(dev) -> str:
    """Why the one-process check cannot run here ("" when it can): these are missing tools, not faults."""
    if not launched_by_mpi():
        return "no MPI launcher started this process (run it as mpiexec -n 1 python ci/gpu_checks.py ...)"
    if importlib.util.find_spec("mpi4py") is None:
        return "no MPI for Python: mpi4py is not installed"
    if dev.name.startswith("cuda"):
        try:
            from cupy.cuda import nccl
        except ImportError as e:
            return f"no NCCL: this CuPy cannot import cupy.cuda.nccl ({e})"
        if not getattr(nccl, "available", hasattr(nccl, "NcclCommunicator")):
            return "no NCCL: this CuPy was built without it (cupy.cuda.nccl.available is False)"
    return ""


def check_one_process(dev, data, steps) -> dict:
    missing = _no_engine(dev)
    if missing:
        return {"status": "skipped", "device": dev.name, "why": missing}
    comm = dev.communicator()
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
    engine = getattr(comm, "engine", type(comm).__name__)
    return {"status": "ok" if ok else "FAILED", "device": dev.name, "engine": engine, "size": comm.size,
            "allreduce_correct": reduced_ok, "allreduce_s_39760_float32": allreduce_s, "steps": steps,
            "max_abs_param_difference": diff, "step_s_plain": times["plain"],
            "step_s_distributed": times["distributed"], "why": "; ".join(why)}


def probe(specs) -> None:
    for spec in specs:
        try:
            print(f"usable: {spec} -> {xpnet.device(spec).name}")
        except Exception as e:  # noqa: BLE001 - the reason is the answer
            print(f"unusable: {spec}: {type(e).__name__}: {e}")


def _write(path, res) -> None:
    data = json.dumps(res, indent=1, default=str).encode()
    write_atomic(path, lambda f: f.write(data))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--versions", action="store_true", help="print the machine's versions and stop")
    ap.add_argument("--probe", metavar="DEVICES", help="say whether each of these comma-separated devices is usable, "
                                                       "and stop")
    ap.add_argument("--iters", type=int, default=10000,
                    help="steps of the protocol and of the steady run (one_process: at most 200)")
    ap.add_argument("--resume-iters", type=int, default=600,
                    help=f"steps of each resume run, stopped and resumed at half (on {RESUME_SAMPLES[0]} training "
                         f"and {RESUME_SAMPLES[1]} test images)")
    ap.add_argument("--checks", default=",".join(CHECKS),
                    help="which checks, comma-separated (one_process wants an MPI launcher: mpiexec -n 1 ...)")
    ap.add_argument("--json", default=None, help="where to write the results (after every check)")
    a = ap.parse_args(argv)
    chosen = [c.strip() for c in a.checks.split(",") if c.strip()]
    unknown = sorted(set(chosen) - set(CHECKS))
    if unknown:
        ap.error(f"unknown checks {', '.join(unknown)}: choose from {', '.join(CHECKS)}")
    if a.probe:
        probe([d.strip() for d in a.probe.split(",") if d.strip()])
        return 0
    if a.versions:
        res = versions()
        for k, v in res.items():
            print(f"{k}: {v}")
        if a.json:
            _write(a.json, res)
        return 0
    dev = xpnet.device(a.device)
    data = xpnet.load_mnist()
    res = {}
    with tempfile.TemporaryDirectory() as folder:
        checks = {"protocol": lambda: check_protocol(dev, data, a.iters, folder),
                  "steady": lambda: check_steady(dev, data, a.iters),
                  "resume": lambda: check_resume(dev, data, a.resume_iters, folder),
                  "one_process": lambda: check_one_process(dev, data, min(a.iters, 200))}
        for name in chosen:
            try:
                res[name] = checks[name]()
            except Exception as e:  # noqa: BLE001 - one check failing must not hide the others
                res[name] = {"status": "FAILED", "device": dev.name, "why": f"{type(e).__name__}: {e}"}
            r = res[name]
            said = f"{r['status']}: {r['why']}" if r["status"] == "skipped" else r["status"]
            print(f"{name}: {said}  " + json.dumps({k: v for k, v in r.items() if k != "status"}, default=str),
                  flush=True)
            if a.json:
                _write(a.json, res)
    return 1 if any(r["status"] == "FAILED" for r in res.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-step time of data-parallel training at 1 and N MPI processes, communication beside compute.

Run from a checkout (``pip install -e ".[mpi]"``):

    python -m benchmarks.distributed                      # 1 process
    mpiexec -n 2 python -m benchmarks.distributed         # 2 processes (the same global batch)

Each run prints, per net, the step time (median of rounds of ``--steps`` steps), the time of the
step's one allreduce alone (the packed gradients), and rank 0 appends a JSON line to ``--json``.
The global batch is the same at every process count (strong scaling): efficiency = T1 / (N * TN).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

import xpnet
from xpnet.trainer import Trainer

NETS = {"book 784-50-10": ([784, 50, 10], 100), "MLP 784-4096-4096-10": ([784, 4096, 4096, 10], 256)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", default="distributed-results.jsonl")
    a = p.parse_args(argv)
    dev = xpnet.device("cpu")
    comm = dev.communicator() if "OMPI_COMM_WORLD_SIZE" in os.environ or "PMI_SIZE" in os.environ else None
    size, rank = (comm.size, comm.rank) if comm else (1, 0)
    (x, t), (xt, tt) = xpnet.load_mnist()
    out = {"processes": size, "machine": f"{platform.platform()}, {os.cpu_count()} cpus",
           "blas_threads_env": os.environ.get("XPNET_BLAS_THREADS"), "nets": {}}
    for name, (sizes, global_batch) in NETS.items():
        steps = a.steps if sizes[1] < 1000 else max(a.steps // 20, 5)
        net = xpnet.MultiLayerNet(sizes, weight_init="he", device=dev, dtype="float32", seed=0)
        tr = Trainer(net, x, t, xt, tt, batch_size=global_batch // size, iters=10**9, log=None, progress=False,
                     communicator=comm)
        tr.run_steps(min(steps, 20))
        step_times = []
        for _ in range(a.rounds):
            if comm:
                comm.barrier()
            t0 = time.perf_counter()
            tr.run_steps(steps)
            step_times.append((time.perf_counter() - t0) / steps)
        n_params = sum(int(np.prod(v.shape)) for v in net.params.values())
        buf = np.zeros(n_params, np.float32)
        comm_times = []
        if comm:
            for _ in range(a.rounds):
                comm.barrier()
                t0 = time.perf_counter()
                for _ in range(steps):
                    comm.allreduce_sum_(buf, dev)
                comm_times.append((time.perf_counter() - t0) / steps)
        row = {"global_batch": global_batch, "per_process_batch": global_batch // size, "params": n_params,
               "step_s": statistics.median(step_times), "step_min_s": min(step_times),
               "allreduce_s": statistics.median(comm_times) if comm_times else 0.0}
        out["nets"][name] = row
        if rank == 0:
            print(f"{name}: {size} process(es), batch {global_batch} = {size} x {global_batch // size}: "
                  f"step {row['step_s'] * 1e6:.0f} us (min {row['step_min_s'] * 1e6:.0f}), one allreduce of "
                  f"{n_params} float32 alone {row['allreduce_s'] * 1e6:.0f} us", flush=True)
    if rank == 0:
        with open(a.json, "a") as f:
            f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()

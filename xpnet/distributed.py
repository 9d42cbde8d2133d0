"""Data-parallel training on a trusted engine: MPI (mpi4py) for CPU processes, NCCL for CUDA GPUs.

Never a home-made transport. ``Device.communicator()`` picks the engine for a device; the trainer
only calls the methods below, so its loop has no branch on the engine. A ``Communicator`` of size
1 is the single-process case and does nothing.

Launch with ``mpiexec -n 4 xpnet train --distributed`` (``pip install "xpnet[mpi]"`` brings mpi4py
and the Open MPI wheels; no system MPI is needed).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys

import numpy as np

from .exceptions import DistributedError, TrainingInterrupted

__all__ = ["Communicator", "MpiCommunicator", "NcclCommunicator", "DistributedError", "launched_by_mpi",
           "gpu_of_process", "one_gpu_each", "choose_gpu", "averaging", "shard", "fault_ends_job"]

_LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "SLURM_NTASKS")


def launched_by_mpi() -> bool:
    """True inside a process started by mpiexec/mpirun/srun (their environment says so)."""
    return any(v in os.environ for v in _LAUNCHER_VARS)


def gpu_of_process(first: int, local_rank: int, local_size: int, visible: int) -> int:
    """The GPU index of process ``local_rank`` of the ``local_size`` processes on one machine,
    when the run was given GPU ``first`` and the process sees ``visible`` GPUs: ``first``,
    ``first + 1``, ... where each process sees them all; ``first`` where each sees fewer than
    there are processes -- a launcher that gives every process its own GPU
    (``CUDA_VISIBLE_DEVICES`` per rank, SLURM ``--gpus-per-task=1``). ``one_gpu_each`` then
    proves the GPUs taken differ: NCCL refuses two processes on one GPU."""
    if first >= visible:
        raise DistributedError(f"cuda:{first} is not visible: this machine shows {visible} GPU(s), cuda:0.."
                               f"cuda:{visible - 1}")
    if first + local_size <= visible:
        return first + local_rank
    return first


def one_gpu_each(first: int, local_size: int, visible: int, bus_ids) -> None:
    """Raise before any engine starts unless the processes of one machine took different GPUs
    (``bus_ids``: the PCI bus id of each one's GPU, by local rank)."""
    if len(set(bus_ids)) == len(bus_ids):
        return
    most = max(visible - first, 1)
    raise DistributedError(
        f"{local_size} processes on this machine from cuda:{first} need cuda:{first}..cuda:{first + local_size - 1}"
        f", but only {visible} GPU(s) are visible: launch at most {most} per machine (mpiexec -n {most}), "
        "one GPU each" + (", or start from --device cuda:0" if first else ""))


def choose_gpu(mpi, first: int, visible: int, bus_id) -> int:
    """This process's GPU (``gpu_of_process``), checked against those of the machine's other
    processes (``bus_id(index)``: the PCI bus id of a GPU). Every rank raises the same error,
    or none does: an error on one rank alone would leave the others waiting for it."""
    gpu, why = None, None
    try:
        gpu = gpu_of_process(first, mpi.local_rank, mpi.local_size, visible)
    except DistributedError as e:
        why = str(e)
    mpi.agree(why)
    try:
        one_gpu_each(first, mpi.local_size, visible, mpi.allgather_local(bus_id(gpu)))
    except DistributedError as e:
        raise DistributedError(str(e), rank=mpi.rank) from None
    return gpu


def shard(n: int, comm) -> tuple[int, int]:
    """The rows ``[lo, hi)`` of ``n`` that process ``comm.rank`` of ``comm.size`` evaluates."""
    return n * comm.rank // comm.size, n * (comm.rank + 1) // comm.size


@contextlib.contextmanager
def fault_ends_job(comm):
    """A fault inside the block on one of several processes ends them all (the others would wait
    in their next collective forever), saying which process failed and why. An orderly stop --
    ``SystemExit``, or ``TrainingInterrupted``, on which every process agrees -- goes through."""
    if comm.size == 1:
        yield
        return
    try:
        yield
    except (SystemExit, TrainingInterrupted):
        raise
    except BaseException as e:
        print(f"xpnet: rank {comm.rank} of {comm.size} failed: {type(e).__name__}: {e}; ending the job",
              file=sys.stderr)
        comm.abort(1)
        raise


def averaging(apply, comm, device):
    """``apply(params, grads)`` after one allreduce of every gradient, packed in a single buffer
    of ``device`` (allocated at the first step: every step then writes into the same memory).
    The sum is what the update sees; the trainer folds the 1/size into the loss gradient."""
    xp = device.xp
    flat, views = None, None

    def reduced(params, grads):
        nonlocal flat, views
        if flat is None:
            keys = list(grads)
            sizes = [math.prod(grads[key].shape) for key in keys]
            flat = xp.empty((sum(sizes),), dtype=grads[keys[0]].dtype, device=device.native)
            bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
            views = [(key, bounds[i], bounds[i + 1], grads[key].shape) for i, key in enumerate(keys)]
        for key, a, b, _ in views:
            flat[a:b] = xp.reshape(grads[key], (-1,))
        comm.allreduce_sum_(flat, device)
        apply(params, {key: xp.reshape(flat[a:b], shape) for key, a, b, shape in views})

    return reduced


def same_on_every_process(comm, settings: dict, extra: dict) -> list:
    """Every process's ``settings`` and ``extra`` in one collective; a setting that differs from
    rank 0's is named on every process at once (``DistributedError`` with ``rank``), before a
    step -- averaged over processes it gives a silently wrong run, and other sizes or counts give
    a heap corruption in MPI, an MPI_ERR_TRUNCATE or a hang. Returns every process's ``extra``."""
    every = comm.allgather((settings, extra))
    first = every[0][0]
    for r, (theirs, _) in enumerate(every):
        diff = [k for k in sorted(set(first) | set(theirs)) if theirs.get(k) != first.get(k)]
        if diff:
            named = "; ".join(f"{k} is {str(first.get(k))[:60]} on rank 0 but {str(theirs.get(k))[:60]} on rank {r}"
                              for k in diff[:3])
            raise DistributedError(f"the processes are not running the same training: {named}; start every process "
                                   "with the same settings, data and net (one command line for all)", rank=comm.rank)
    return [e for _, e in every]


class Communicator:
    """One process: every collective is the identity. The base of the real engines."""

    rank, size = 0, 1
    engine = "none"
    device = None  # the device this process computes on; None: any (one process)

    def allreduce_sum_(self, buf, device) -> None:
        """Sum ``buf`` (an array of ``device``) over all processes, in place."""

    def allreduce_scalars(self, values) -> list:
        """Sums of a few Python numbers over all processes (counts, losses, flags)."""
        return [float(v) for v in values]

    def allgather(self, value) -> list:
        """``value`` of every process, by rank (a few Python objects)."""
        return [value]

    def barrier(self) -> None:
        pass

    def abort(self, code: int = 1) -> None:
        """End every process of the job now (a fault on one rank must not leave the others hanging)."""
        sys.exit(code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank {self.rank} of {self.size}, {self.engine})"


class MpiCommunicator(Communicator):
    """MPI through mpi4py over ``COMM_WORLD``; device arrays are reduced through host views
    (NumPy arrays as they are, torch CPU tensors through ``.numpy()``, which shares memory).

    ``local_rank`` and ``local_size`` place the process among those sharing its machine (MPI's
    shared-memory split), which is how each process of a GPU run picks its own GPU."""

    engine = "mpi"

    def __init__(self, device=None):
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise DistributedError("distributed training needs mpi4py: pip install 'xpnet[mpi]' "
                                   f"(mpi4py and the Open MPI wheels; {e})") from None
        self._mpi = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)  # this machine's processes
        self.local_rank, self.local_size = self.local.Get_rank(), self.local.Get_size()
        self.device = device

    def allgather_local(self, value) -> list:
        """``value`` of every process on this machine, by local rank (a few Python objects)."""
        return self.local.allgather(value)

    def agree(self, error: str | None) -> None:
        """Raise the same ``DistributedError`` on every process when any of them has ``error``:
        a setup step that fails on one rank must not leave the others waiting in a collective."""
        errors = self.comm.allgather(error)
        bad = [(r, e) for r, e in enumerate(errors) if e]
        if bad:
            r, e = bad[0]
            raise DistributedError(f"rank {r} of {self.size}: {e}" if self.size > 1 else e, rank=self.rank)

    def allgather(self, value) -> list:
        return self.comm.allgather(value)

    def allreduce_sum_(self, buf, device) -> None:
        host = device.host_view(buf)
        self.comm.Allreduce(self._mpi.IN_PLACE, host, op=self._mpi.SUM)

    def allreduce_scalars(self, values) -> list:
        a = np.asarray([float(v) for v in values], dtype=np.float64)
        self.comm.Allreduce(self._mpi.IN_PLACE, a, op=self._mpi.SUM)
        return a.tolist()

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


class NcclCommunicator(Communicator):
    """NCCL through CuPy's bindings, one GPU per process (``device``, chosen by the device module
    with ``gpu_of_process``); the unique id is broadcast over ``mpi``, an ``MpiCommunicator``.

    Every rank learns of a setup error on any rank (NCCL missing, no unique id) and raises it;
    a failure inside NCCL's own start, where the others may already wait, ends the job."""

    engine = "nccl"

    def __init__(self, mpi: MpiCommunicator, device):
        self._mpi, self.device = mpi, device
        self.rank, self.size = mpi.rank, mpi.size
        self.local_rank, self.local_size = mpi.local_rank, mpi.local_size
        nccl, why = _nccl_bindings()
        uid = None
        if nccl is not None and self.rank == 0:
            try:
                uid = nccl.get_unique_id()
            except Exception as e:  # noqa: BLE001 - every rank must hear of it, not only this one
                why = f"NCCL could not make a unique id ({type(e).__name__}: {e})"
        mpi.agree(why)
        self._nccl = nccl
        self._dtypes = {np.dtype(name): getattr(nccl, const) for name, const in _NCCL_DTYPES.items()
                        if hasattr(nccl, const)}
        uid = mpi.comm.bcast(uid, root=0)
        try:
            with device.scope():
                self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        except Exception as e:  # noqa: BLE001 - the other ranks may be inside ncclCommInitRank: end them all
            print(f"xpnet: rank {self.rank} of {self.size}: NCCL failed to start on {device.name} "
                  f"({type(e).__name__}: {e}); ending the job", file=sys.stderr)
            mpi.abort(1)
            raise

    def allreduce_sum_(self, buf, device) -> None:
        import cupy

        dt = self._dtypes.get(np.dtype(buf.dtype))
        if dt is None:
            raise TypeError(f"NCCL cannot reduce {buf.dtype} arrays; use one of "
                            f"{', '.join(sorted(str(d) for d in self._dtypes))}")
        stream = cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, dt, self._nccl.NCCL_SUM, stream)

    def allreduce_scalars(self, values) -> list:
        return self._mpi.allreduce_scalars(values)

    def allgather(self, value) -> list:
        return self._mpi.allgather(value)

    def barrier(self) -> None:
        self._mpi.barrier()

    def abort(self, code: int = 1) -> None:
        self._mpi.abort(code)


# NumPy dtype name -> CuPy's NCCL constant (cupy_backends/cuda/libs/nccl.pxd)
_NCCL_DTYPES = {"int8": "NCCL_INT8", "uint8": "NCCL_UINT8", "int32": "NCCL_INT32", "uint32": "NCCL_UINT32",
                "int64": "NCCL_INT64", "uint64": "NCCL_UINT64", "float16": "NCCL_FLOAT16",
                "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64"}


def _nccl_bindings():
    """(CuPy's NCCL module, "") or (None, why not). ``import cupy.cuda.nccl`` succeeds without
    NCCL: CuPy then sets ``nccl.available = False`` and leaves the names out."""
    try:
        from cupy.cuda import nccl
    except ImportError as e:
        return None, f"CuPy cannot load NCCL ({e}); install it: pip install 'xpnet[cuda12]' (or [cuda13])"
    if not getattr(nccl, "available", True) or not hasattr(nccl, "NcclCommunicator"):
        return None, ("CuPy was installed without NCCL, which GPU data parallelism needs: pip install "
                      "nvidia-nccl-cu12 (or -cu13, matching your CuPy), or pip install 'xpnet[cuda12]'")
    return nccl, ""


def mpi_communicator(dev):
    """The MPI communicator of a CPU device's distributed run (``Device.communicator``)."""
    if not launched_by_mpi():
        raise DistributedError("--distributed needs an MPI launcher: mpiexec -n 2 xpnet train --distributed "
                               "(pip install 'xpnet[mpi]' brings mpiexec); without it, train without --distributed")
    return MpiCommunicator(dev)

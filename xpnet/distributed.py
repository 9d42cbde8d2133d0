"""Data-parallel training on a trusted engine: MPI (mpi4py) for CPU processes, NCCL for CUDA GPUs.

Never a home-made transport. ``Device.communicator()`` picks the engine for a device; the trainer
only calls the methods below, so its loop has no branch on the engine. A ``Communicator`` of size
1 is the single-process case and does nothing.

Launch with ``mpiexec -n 4 xpnet train --distributed`` (``pip install "xpnet[mpi]"`` brings mpi4py
and the Open MPI wheels; no system MPI is needed).
"""

from __future__ import annotations

import os
import sys

import numpy as np

__all__ = ["Communicator", "MpiCommunicator", "DistributedError", "launched_by_mpi", "gpu_of_process"]

_LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "SLURM_NTASKS")


class DistributedError(RuntimeError):
    """A distributed run cannot start or go on; the message says what to do."""


def launched_by_mpi() -> bool:
    """True inside a process started by mpiexec/mpirun/srun (their environment says so)."""
    return any(v in os.environ for v in _LAUNCHER_VARS)


def gpu_of_process(first: int, local_rank: int, local_size: int, visible: int) -> int:
    """The GPU index of process ``local_rank`` of the ``local_size`` processes on one machine,
    when the run was given GPU ``first``: one GPU each, ``first``, ``first + 1``, ... (NCCL refuses
    two processes on one GPU). Raises before any engine starts when the machine has too few."""
    if first >= visible:
        raise DistributedError(f"cuda:{first} is not visible: this machine shows {visible} GPU(s), cuda:0.."
                               f"cuda:{visible - 1}")
    if first + local_size > visible:
        most = visible - first
        raise DistributedError(
            f"{local_size} processes on this machine from cuda:{first} need cuda:{first}..cuda:{first + local_size - 1}"
            f", but only {visible} GPU(s) are visible: launch at most {most} per machine (mpiexec -n {most}), "
            "one GPU each" + (", or start from --device cuda:0" if first else ""))
    return first + local_rank


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
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self.device = device

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

    Written to CuPy's documented API (``cupy.cuda.nccl.NcclCommunicator``); it has not yet run on
    a GPU here."""

    engine = "nccl"

    def __init__(self, mpi: MpiCommunicator, device):
        try:
            from cupy.cuda import nccl
        except ImportError as e:
            raise DistributedError(f"NCCL needs CuPy built with NCCL support ({e})") from None
        self._mpi, self._nccl, self.device = mpi, nccl, device
        self.rank, self.size = mpi.rank, mpi.size
        self.local_rank, self.local_size = mpi.local_rank, mpi.local_size
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = mpi.comm.bcast(uid, root=0)
        with device.scope():
            self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)

    def allreduce_sum_(self, buf, device) -> None:
        import cupy

        nccl = self._nccl
        dt = {np.dtype("float32"): nccl.NCCL_FLOAT32, np.dtype("float64"): nccl.NCCL_FLOAT64}[np.dtype(buf.dtype)]
        stream = cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, dt, nccl.NCCL_SUM, stream)

    def allreduce_scalars(self, values) -> list:
        return self._mpi.allreduce_scalars(values)

    def barrier(self) -> None:
        self._mpi.barrier()

    def abort(self, code: int = 1) -> None:
        self._mpi.abort(code)

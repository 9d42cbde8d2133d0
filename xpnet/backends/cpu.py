"""``cpu``: NumPy, whose 2.x main namespace is an Array API namespace itself."""

from __future__ import annotations

import numpy as np

from ..threads import SERIAL_PRODUCT_FLOPS, blas_libraries, cpu_thread_scope
from .base import Device, null_scope

_CHOOSERS: dict = {}  # the ThreadChoosers of NumPy's steps, one per size of a step's largest product


class NumpyDevice(Device):
    """``cpu``: NumPy, whose 2.x main namespace is an Array API namespace itself."""

    __slots__ = ()
    kind = "numpy"

    def __init__(self):
        # array-api-compat's wrapper would only add a call layer around NumPy 2.
        super().__init__("cpu", np, native="cpu", array_type=np.ndarray)

    def take_rows(self, x, indices):
        return x.take(indices, axis=0)  # the method: np.take's dispatch costs a few us a step

    def to_numpy(self, x) -> np.ndarray:
        return np.asarray(x)  # already host memory: no copy

    def host_view(self, x):
        return x

    def communicator(self):
        from ..distributed import mpi_communicator

        return mpi_communicator(self)

    def step_scope(self, largest_product_flops: float, steps: int = 1):
        """The BLAS thread count for ``steps`` steps whose largest product has this size
        (``cpu_thread_scope``: the policy NumPy and torch on the CPU share)."""
        if largest_product_flops < SERIAL_PRODUCT_FLOPS:
            return null_scope()  # OpenBLAS runs these on one thread whatever the setting
        return cpu_thread_scope(blas_libraries(), largest_product_flops, steps, _CHOOSERS)

"""The MPI launcher the multi-process tests start: mpiexec on PATH or beside this Python (the
Open MPI wheel of ``xpnet[mpi]`` puts it there); they skip, saying why, without it or mpi4py."""

import os
import shutil
import sys
from pathlib import Path

import pytest

MPIEXEC = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
try:
    import mpi4py  # noqa: F401

    NO_MPI = None if os.path.exists(MPIEXEC) else "no mpiexec on PATH (pip install 'xpnet[mpi]' brings Open MPI's)"
except ImportError:
    NO_MPI = "the MPI tests need mpi4py: pip install 'xpnet[mpi]'"
_skip_without_mpi = pytest.mark.skipif(NO_MPI is not None, reason=NO_MPI or "")


def needs_mpi(test):
    """An MPI job's test: skipped, saying why, without a launcher; ``slow`` (it starts processes)."""
    return pytest.mark.slow(_skip_without_mpi(test))

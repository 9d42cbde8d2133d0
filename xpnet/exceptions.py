"""Every error (and warning) xpnet raises on purpose, in one place (as scikit-learn's ``exceptions.py``).

Each subclasses the builtin a caller would already catch -- a bad file is a ``ValueError``, a full
disk an ``OSError``, a stop by signal a ``KeyboardInterrupt`` -- so ``except ValueError`` keeps
working; the message always names what went wrong and what to do.
"""

from __future__ import annotations

__all__ = ["DeviceUnavailableError", "DatasetError", "CheckpointError", "CheckpointWriteError",
           "TrainingDivergedError", "TrainingInterrupted", "DistributedError", "RunFolderError",
           "PlotUnavailable", "UnverifiedDataWarning"]


class DeviceUnavailableError(RuntimeError):
    """The requested device cannot be used here; the message says why and what can."""


class DatasetError(ValueError):
    """A dataset file is missing, truncated, corrupted or of the wrong kind."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or not an xpnet checkpoint."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, say); the previous one is intact."""


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a run after ``step`` steps: ``history`` holds it so far, and
    ``checkpoint`` (None when the run wrote none) the file to resume it from."""

    def __init__(self, message: str, step: int, checkpoint: str | None, signal_name: str | None = None,
                 history=None):
        super().__init__(message)
        self.step, self.checkpoint, self.signal_name, self.history = step, checkpoint, signal_name, history

    def __str__(self) -> str:
        return self.args[0]


class DistributedError(RuntimeError):
    """A distributed run cannot start or go on; the message says what to do. ``rank`` is set
    when every process raised the same error together (only rank 0 need say it)."""

    def __init__(self, message: str, rank: int | None = None):
        super().__init__(message)
        self.rank = rank


class RunFolderError(Exception):
    """The output folder cannot be used as asked; the message says why and what to do."""


class PlotUnavailable(ImportError):
    """Plotting needs matplotlib: ``pip install 'xpnet[plot]'``."""


class UnverifiedDataWarning(UserWarning):
    """A dataset was loaded without any digest to check it against: it may not be what its
    names say. The message names the files and how to verify them."""

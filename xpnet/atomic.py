"""Saving without ever leaving a half-written file (history, checkpoints, plots, benchmark JSON)."""

from __future__ import annotations

import errno
import os
import uuid

__all__ = ["write_atomic"]


def write_atomic(path, write) -> None:
    """Write a file via a temporary in the same directory, then rename: never a half file.

    The temporary is opened with mode 0666 so the umask applies as for ``open()`` (``mkstemp``
    would leave 0600, and changing the umask to read it is not thread-safe).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise NotADirectoryError(errno.ENOTDIR, f"{directory} is a file, not a folder", directory)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{uuid.uuid4().hex}{os.path.splitext(path)[1]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

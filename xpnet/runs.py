"""A training run's folder: one checkpoint, its history and its plot, never mixed with another run.

The checkpoint (``model.npz``) is the truth: it holds the parameters, the architecture, the
optimizer and random-generator state, the step and the history, written atomically at every
evaluation. ``history.json`` and ``curves.png`` are views of it, written at the end of a run or
when it is interrupted; while a run goes on, stale views of an earlier step are removed, so the
files in a folder always belong to the same run and step. One live process writes a folder at
a time: it holds ``.xpnet-lock`` (an advisory lock, which the system drops when the process
dies, so a stale file from a killed run blocks nothing).
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import time
from pathlib import Path

from .atomic import write_atomic
from .exceptions import RunFolderError

__all__ = ["RunFolder", "RunFolderError", "CHECKPOINT", "HISTORY", "PLOT"]

CHECKPOINT, HISTORY, PLOT, LOCK = "model.npz", "history.json", "curves.png", ".xpnet-lock"
_RUN_FILES = (CHECKPOINT, HISTORY, PLOT)


class RunFolder:
    """Where one run's files go. Use ``RunFolder.new``, ``RunFolder.resume`` or ``RunFolder.reuse``."""

    def __init__(self, path: Path, created: list):
        self.path = path
        self._created = created  # folders this run made (removed again if it leaves nothing)
        self._lock_fd = None

    checkpoint = property(lambda self: self.path / CHECKPOINT)
    history = property(lambda self: self.path / HISTORY)
    plot = property(lambda self: self.path / PLOT)

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def new(cls, out=None, *, label: str = "run", overwrite: bool = False) -> RunFolder:
        """A folder for a fresh run: ``out``, or a new timestamped one under ``runs/``.

        An ``out`` holding an earlier run is refused unless ``overwrite`` (then its run files
        go); the folder is proven writable before any data is loaded."""
        if out is None:
            base, stamp = Path("runs"), time.strftime("%Y%m%d-%H%M%S")
            for k in range(1000):
                path = base / (f"{stamp}-{label}" + (f"-{k}" if k else ""))
                if not path.exists():
                    break
            else:
                raise RunFolderError(f"could not find a free folder name under {base}/; pass --out")
        else:
            path = Path(out)
        created = cls._make(path)
        folder = cls(path, created)
        folder._lock()
        folder._refuse_odd_files("--out")
        if not created and folder.holds_a_run():
            if not overwrite:
                folder.release()
                raise RunFolderError(
                    f"{path} holds an earlier run ({folder.describe()}): continue it with --resume {path}, "
                    f"replace it with --overwrite, or choose another --out")
            for name in _RUN_FILES:
                (path / name).unlink(missing_ok=True)
        folder._prepare("--out")
        return folder

    @classmethod
    def resume(cls, path) -> RunFolder:
        """The folder of an earlier run to continue (it must hold its checkpoint)."""
        path = Path(path)
        if not path.is_dir():
            raise RunFolderError(f"--resume {path}: {'no such folder' if not path.exists() else 'not a folder'}; "
                                 f"pass the --out folder of the run to continue")
        folder = cls(path, [])
        folder._lock()
        folder._refuse_odd_files("--resume")
        if not folder.checkpoint.is_file():
            folder.release()
            raise RunFolderError(f"--resume {path}: it holds no {CHECKPOINT} (a run writes one at its first "
                                 f"evaluation); start a fresh run instead")
        folder._prepare("--resume")
        return folder

    @staticmethod
    def _make(path: Path) -> list:
        try:  # a name too long for the file system fails already in exists()
            if path.exists() and not path.is_dir():
                raise RunFolderError(f"--out {path} exists and is not a folder; choose another --out")
            created, p = [], path
            while not p.exists():
                created.append(p)
                p = p.parent
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            short = f"{str(path)[:60]}..." if len(str(path)) > 80 else str(path)
            raise RunFolderError(f"--out {short}: cannot create it ({e.strerror or e}); choose a folder you can "
                                 f"write to" + (", with a shorter name" if e.errno == errno.ENAMETOOLONG else "")) \
                from None
        return created

    def _lock(self) -> None:
        """Take the folder for this process, or name the live process that has it."""
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one run per folder is then the user's care
            return
        try:
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            self.discard_if_unused()
            raise RunFolderError(f"{self.path} is not writable ({e.strerror or e}); choose a folder you can "
                                 f"write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunFolderError(f"{self.path} is being written by a run still going ({holder}): wait for it to end "
                                 f"or stop it, or choose another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._lock_fd = fd

    def release(self) -> None:
        """Let another process have the folder (the system does it too when this one ends)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            (self.path / LOCK).unlink(missing_ok=True)
            os.close(fd)

    def _refuse_odd_files(self, option: str) -> None:
        """A folder (or a pipe) where the run writes a file would fail it at the end: named now."""
        for name in _RUN_FILES:
            p = self.path / name
            if p.exists() and not p.is_file():
                self.release()
                raise RunFolderError(f"{option} {self.path}: {p} is a {'folder' if p.is_dir() else 'special file'}, "
                                     f"where the run writes its {name}; move it away or choose another folder")

    def _prepare(self, option: str) -> None:
        """Leftovers of a killed run go; the folder must take its files now, not after the run."""
        for tmp in self.path.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)

        probe = self.path / ".xpnet-write-test"
        try:
            write_atomic(probe, lambda f: f.write(b"ok"))
            probe.unlink()
        except OSError as e:
            self.discard_if_unused()
            self.release()
            raise RunFolderError(f"{option} {self.path} is not writable ({e.strerror or e}); choose a folder you "
                                 f"can write to") from None

    # -- state ---------------------------------------------------------------------------
    def holds_a_run(self) -> bool:
        return any((self.path / name).exists() for name in _RUN_FILES)

    def describe(self) -> str:
        from .checkpoint import load_checkpoint
        from .exceptions import CheckpointError

        try:
            meta = load_checkpoint(self.checkpoint, device="cpu").meta
            return f"step {meta.get('step')} of {meta.get('trainer', {}).get('iters')}"
        except (CheckpointError, OSError, ValueError):
            return ", ".join(name for name in _RUN_FILES if (self.path / name).exists())

    def drop_views(self) -> None:
        """Remove history.json and curves.png of an earlier step: the checkpoint holds the truth."""
        for name in (HISTORY, PLOT):
            (self.path / name).unlink(missing_ok=True)

    def discard_if_unused(self) -> None:
        """A run that failed before its first checkpoint leaves no folder it made behind."""
        if self.checkpoint.exists():
            return
        self.release()
        for p in self._created:  # innermost first
            try:
                p.rmdir()
            except OSError:
                break
        self._created = []

    def remove(self) -> None:  # for tests and tools: the whole folder
        shutil.rmtree(self.path)

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

"""One writer per run folder: a lock file holding the owner's process id."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

__all__ = ["RunLock", "RunFolderInUse", "LOCK_NAME"]

LOCK_NAME = ".pyvae.lock"


class RunFolderInUse(FileExistsError):
    """Another live process holds the run folder's lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class RunLock:
    """Hold ``folder/.pyvae.lock`` while writing a run folder (a context manager).

    Another live process's lock is refused with :class:`RunFolderInUse` naming its pid; a lock
    left by a process that died is taken over, with a warning. Re-entrant in one process
    (the CLI holds it around ``fit``, which takes it too)."""

    _held: dict[Path, int] = {}  # lock file -> depth, in this process

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder).resolve() / LOCK_NAME

    def acquire(self) -> RunLock:
        if self._held.get(self.path):
            self._held[self.path] += 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self._held[self.path] = 1
            return self
        raise RuntimeError(f"could not take the lock {self.path}")

    def _take_over_if_stale(self) -> None:
        try:
            pid = int(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and pid != os.getpid() and _alive(pid):
            raise RunFolderInUse(
                f"{self.path.parent} is in use by process {pid} (a run folder has one writer "
                f"at a time); wait for it to finish, stop it, or use another folder"
            )
        warnings.warn(
            f"taking over {self.path}: the process that held it ({pid or 'unknown'}) is gone",
            RuntimeWarning,
            stacklevel=4,
        )
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        depth = self._held.get(self.path, 0)
        if depth > 1:
            self._held[self.path] = depth - 1
            return
        self._held.pop(self.path, None)
        if depth:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

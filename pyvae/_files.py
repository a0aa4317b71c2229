"""Files written safely and read back checked: atomic writes, torch payloads of tensors
and plain data, NumPy arrays and raw bytes.

A leaf module: it imports nothing from pyvae, so every module may use it. Every writer
goes through :func:`atomic_write` (a temporary file in the same folder, flushed to disk,
then one rename), so a crash during a write leaves the previous file in place and never a
half-written one; an existing file is replaced only with ``overwrite=True``. Every reader
refuses pickled code (``torch.load(weights_only=True)``, ``np.load(allow_pickle=False)``).
"""

from __future__ import annotations

import errno
import os
import re
import socket
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "atomic_write",
    "remove_stale_temporaries",
    "check_file",
    "write_bytes",
    "write_payload",
    "read_payload",
    "write_array",
    "write_arrays",
    "read_array",
]


#: The host name as it appears in a temporary file's name (letters, digits and "-").
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
#: A temporary file of :func:`atomic_write`: ``.NAME.HOST.PID.XXXXXXXX.tmp``.
_TEMPORARY = re.compile(
    r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp$"
)
#: What torch's zip writer says when a write falls short (a full disk, a quota).
_SHORT_WRITE = ("unexpected pos", "file write failed")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; an absurd pid
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporary files that writes to ``folder`` left when their process was
    killed (SIGKILL, a power cut): those of :func:`atomic_write` whose process, on this
    machine, is gone, and those of older pyvae releases (``.NAME.XXXXXXXX.tmp``, no
    process id) for the file ``name``. Returns the removed paths."""
    folder = Path(folder)
    legacy = re.compile(rf"^\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp$") if name else None
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        stale = bool(match and match["host"] == _HOST and not _alive(int(match["pid"])))
        if stale or (legacy is not None and legacy.match(entry.name)):
            try:
                os.remove(entry.path)
                removed.append(Path(entry.path))
            except OSError:  # gone already, or not ours to remove
                pass
    return removed


def _disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    return isinstance(error, RuntimeError) and any(s in str(error) for s in _SHORT_WRITE)


def atomic_write(
    path: str | os.PathLike, write: Callable[[str], Any], overwrite: bool = False
) -> Path:
    """Call ``write(tmp_path)`` and then move the result to ``path`` in one rename.

    Refuses a folder as ``path``, and an existing file unless ``overwrite``; makes the
    missing parent folders. The temporary file is named ``.NAME.HOST.PID.XXXXXXXX.tmp``;
    those a killed process left in the folder are removed first
    (``remove_stale_temporaries``). A full disk is an ``OSError`` (ENOSPC) naming
    ``path``, with the previous file left as it was. Returns ``path`` as a
    :class:`~pathlib.Path`.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file path such as {path / 'model.pt'}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    for parent in (path.parent, *path.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot write {path}: {parent} is a file, not a folder")
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    prefix = f".{path.name}.{_HOST}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if _disk_full(e):
            kept = "the previous file is unchanged" if path.exists() else "nothing was written"
            raise OSError(
                errno.ENOSPC,
                f"No space left on device: {path} was not written ({kept}); free some space "
                "and save again",
            ) from None
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), overwrite)


def write_payload(
    path: str | os.PathLike,
    format: str,
    version: int,
    contents: Mapping[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write ``{"format": format, "version": version, **contents}`` (tensors and plain
    data) atomically with ``torch.save``; :func:`read_payload` reads it back."""
    payload = {"format": format, "version": version, **contents}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp), overwrite)


def check_file(path: Path, what: str, example: str) -> None:
    """A clear error unless ``path`` is an existing file: missing (FileNotFoundError) or a
    folder (IsADirectoryError, naming ``example`` or the ``.pt`` files in it)."""
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt"))
        name = example if example in found or not found else found[0]
        others = f" (it holds {', '.join(found)})" if len(found) > 1 else ""
        raise IsADirectoryError(
            f"{path} is a folder, not a {what}: pass the file in it, e.g. {path / name}{others}"
        )
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")


def read_payload(
    path: str | os.PathLike,
    format: str,
    version: int,
    what: str,
    map_location: Any = "cpu",
    example: str = "model.pt",
) -> dict[str, Any]:
    """The contents of a file written by :func:`write_payload` with this ``format`` and
    ``version``, read with ``torch.load(weights_only=True)`` (no code is unpickled).

    ``what`` names the kind of file in the errors ("model file", "checkpoint"): a missing
    file raises FileNotFoundError, a folder IsADirectoryError (naming ``example``, the
    file to pass instead); a corrupt,
    truncated or code-holding file, one of another format or of another version raise
    ValueError.
    """
    path = Path(path)
    check_file(path, what, example)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError:  # unreadable by this user
        raise
    except Exception as e:  # unpickling refused, truncated or corrupt file
        raise ValueError(
            f"{path} is not a loadable pyvae {what} (truncated, corrupt or not made by pyvae; "
            f"files holding code are refused; {type(e).__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != format:
        raise ValueError(f"{path} is not a pyvae {what}")
    found = payload.get("version")
    if found != version:
        raise ValueError(
            f"{path} has pyvae {what} format version {found}, this pyvae reads version "
            f"{version}: use the pyvae release that wrote it"
        )
    return payload


def write_array(path: str | os.PathLike, array: Any, overwrite: bool = False) -> Path:
    """Write one array to a ``.npy`` file atomically (``np.save``)."""
    array = np.asarray(array)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)

    return atomic_write(path, write, overwrite)


def write_arrays(
    path: str | os.PathLike, arrays: Mapping[str, Any], overwrite: bool = False
) -> Path:
    """Write named arrays (or numbers) to a ``.npz`` file atomically (``np.savez``)."""
    arrays = {key: np.asarray(value) for key, value in arrays.items()}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write, overwrite)


def read_array(
    path: str | os.PathLike, key: str | None = None, key_name: str = "key=..."
) -> np.ndarray:
    """The array in a ``.npy`` file, or in a ``.npz`` file (its one array, or ``key``;
    ``key_name`` is how the error names that choice). Pickled objects are refused."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    name = path.name.lower()
    if name.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    if name.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            if key is None and len(keys) != 1:
                raise ValueError(f"{path} holds the arrays {keys}: choose one with {key_name}")
            if key is not None and key not in keys:
                raise ValueError(f"{path} has no array {key!r}; its arrays: {keys}")
            return z[key or keys[0]]
    raise ValueError(f"{path}: unknown file type; use .npy or .npz")

"""Files written safely and read back checked: atomic writes, torch payloads of tensors
and plain data, NumPy arrays and raw bytes.

A leaf module: it imports nothing from pyvae, so every module may use it. Every writer
goes through :func:`atomic_write` (a temporary file in the same folder, flushed to disk,
then one rename), so a crash during a write leaves the previous file in place and never a
half-written one; an existing file is replaced only with ``overwrite=True``. Every reader
refuses pickled code (``torch.load(weights_only=True)``, ``np.load(allow_pickle=False)``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "atomic_write",
    "write_bytes",
    "write_payload",
    "read_payload",
    "write_array",
    "write_arrays",
    "read_array",
]


def atomic_write(
    path: str | os.PathLike, write: Callable[[str], Any], overwrite: bool = False
) -> Path:
    """Call ``write(tmp_path)`` and then move the result to ``path`` in one rename.

    Refuses a folder as ``path``, and an existing file unless ``overwrite``; makes the
    missing parent folders. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file path such as {path / 'model.pt'}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
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


def read_payload(
    path: str | os.PathLike,
    format: str,
    version: int,
    what: str,
    map_location: Any = "cpu",
) -> dict[str, Any]:
    """The contents of a file written by :func:`write_payload` with this ``format`` and
    ``version``, read with ``torch.load(weights_only=True)`` (no code is unpickled).

    ``what`` names the kind of file in the errors ("model file", "checkpoint"): a missing
    file raises FileNotFoundError; a corrupt, truncated or code-holding one, one of another
    format or of another version raise ValueError.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
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

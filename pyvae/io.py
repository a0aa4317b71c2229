"""Saving and loading VAEs safely: tensors and plain data only, never pickled code.

A saved file is written with ``torch.save`` and read with ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers, so loading a file cannot run
code. Writes are atomic (a temporary file in the same folder, then a rename), and an
existing file is never overwritten unless asked.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from .config import build_part, find_class
from .model import VAE

__all__ = ["save", "load", "read", "atomic_write", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def atomic_write(path: str | os.PathLike, write, overwrite: bool = False) -> Path:
    """Call ``write(tmp_path)`` and then move the result to ``path`` in one rename."""
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


def save(vae: VAE, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save ``vae``'s parameters and its config (how to rebuild each part) to ``path``."""
    payload = {
        "format": "pyvae",
        "version": FORMAT_VERSION,
        "config": vae.config,
        "state_dict": {k: v.detach().cpu() for k, v in vae.state_dict().items()},
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp), overwrite=overwrite)


def read(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The checked contents of a pyvae file: ``format``, ``version``, ``config``,
    ``state_dict`` (and whatever else the writer added)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # unpickling refused, truncated or corrupt file
        raise ValueError(
            f"{path} is not a loadable pyvae file (truncated, corrupt or not made by pyvae; "
            f"files holding code are refused; {type(e).__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != "pyvae":
        raise ValueError(f"{path} is not a pyvae model file")
    version = payload.get("version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} has pyvae format version {version}, this pyvae reads version "
            f"{FORMAT_VERSION}: use the pyvae release that wrote it"
        )
    return payload


def load(
    path: str | os.PathLike,
    vae: VAE | None = None,
    classes: Iterable[type] = (),
    map_location: Any = "cpu",
) -> VAE:
    """Load a VAE saved by :func:`save`.

    The VAE (its class: :class:`VAE` or a variant) and its parts are rebuilt from the
    saved config: pyvae's own classes are known; pass your own prior, likelihood, network
    or VAE subclass as ``classes=[...]``. For a part whose constructor arguments were not
    recorded (a plain ``nn.Module``), pass ``vae=``: a freshly built VAE of the same
    structure, into which the parameters are loaded.
    """
    payload = read(path, map_location)
    config = payload["config"]
    if vae is None:
        cls = find_class(config.get("class", "pyvae.model.VAE"), classes)
        if not (isinstance(cls, type) and issubclass(cls, VAE)):
            raise ValueError(f"{path}: {config['class']!r} is not a pyvae.VAE class")
        missing = [part for part in cls.parts if config.get(part) is None]
        if missing:
            raise ValueError(
                f"{path}: the {' and '.join(missing)} of this VAE cannot be rebuilt from the "
                "file (its constructor arguments were not recorded): build the same VAE "
                "again and pass it as load(path, vae=...), or make the class inherit "
                "pyvae.config.Configurable"
            )
        parts = {part: build_part(config[part], classes) for part in cls.parts}
        vae = cls(**parts, input_shape=config["input_shape"], **config.get("options", {}))
    try:
        vae.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"{path} does not fit the given VAE: {str(e)[:500]}") from None
    vae.eval()
    return vae

"""Saving and loading VAEs safely: tensors and plain data only, never pickled code.

A saved file is written with ``torch.save`` and read with ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers, so loading a file cannot run
code. Writes are atomic (a temporary file in the same folder, then a rename), and an
existing file is never overwritten unless asked.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .model import VAE

__all__ = ["save", "load", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def atomic_write(path: str | os.PathLike, write, overwrite: bool = False) -> Path:
    """Call ``write(tmp_path)`` and then move the result to ``path`` in one rename."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def save(vae: VAE, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save ``vae``'s parameters and (if it was made by ``VAE.build``) how to rebuild it."""
    payload = {
        "format": "pyvae",
        "version": FORMAT_VERSION,
        "config": vae.config,
        "state_dict": {k: v.detach().cpu() for k, v in vae.state_dict().items()},
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp), overwrite=overwrite)


def load(path: str | os.PathLike, vae: VAE | None = None, map_location: Any = "cpu") -> VAE:
    """Load a VAE saved by :func:`save`.

    A VAE made by ``VAE.build`` with part names is rebuilt from its saved config. For a
    VAE with parts of your own, pass ``vae=``: a freshly built VAE of the same structure
    (your classes), into which the saved parameters are loaded.
    """
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # unpickling refused or corrupt file
        raise ValueError(f"{path} is not a loadable pyvae file: {e}") from None
    if not isinstance(payload, dict) or payload.get("format") != "pyvae":
        raise ValueError(f"{path} is not a pyvae model file")
    if payload.get("version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} was saved by a newer pyvae (format {payload['version']})")
    if vae is None:
        config = payload["config"]
        if config is None:
            raise ValueError(
                f"{path} holds a VAE with custom parts: build the same VAE again and pass it "
                "as load(path, vae=...)"
            )
        vae = VAE.build(**config)
    vae.load_state_dict(payload["state_dict"])
    vae.config = payload["config"] if vae.config is None else vae.config
    vae.eval()
    return vae

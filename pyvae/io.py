"""Saving and loading VAEs safely: tensors and plain data only, never pickled code.

A saved file is written with ``torch.save`` and read with ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers, so loading a file cannot run
code. Writes are atomic (a temporary file in the same folder, then a rename), and an
existing file is never overwritten unless asked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._files import atomic_write, read_payload, write_payload
from .config import build_part, find_class

if TYPE_CHECKING:
    from .models.vae import VAE

__all__ = ["save", "load", "read", "atomic_write", "FORMAT_VERSION"]

FORMAT = "pyvae"
FORMAT_VERSION = 1
#: The base class every loaded VAE must derive from, found by name (see
#: :func:`pyvae.config.find_class`) so that this module does not import the model.
BASE_CLASS = "pyvae.model.VAE"


def save(vae: VAE, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save ``vae``'s parameters and its config (how to rebuild each part) to ``path``."""
    contents = {
        "config": vae.config,
        "state_dict": {k: v.detach().cpu() for k, v in vae.state_dict().items()},
    }
    return write_payload(path, FORMAT, FORMAT_VERSION, contents, overwrite)


def read(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The checked contents of a pyvae file: ``format``, ``version``, ``config``,
    ``state_dict`` (and whatever else the writer added)."""
    return read_payload(path, FORMAT, FORMAT_VERSION, "model file", map_location)


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
        cls = find_class(config.get("class", BASE_CLASS), classes)
        if not (isinstance(cls, type) and issubclass(cls, find_class(BASE_CLASS))):
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

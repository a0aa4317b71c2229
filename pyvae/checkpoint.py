"""Training checkpoints: everything ``fit`` needs to continue exactly where it stopped.

A checkpoint holds the VAE's config and parameters, the optimizer's state, the random
number generators' states, the epoch, the step count and the history, as tensors and plain
data only (read back with ``torch.load(weights_only=True)``: no code is unpickled). It is
written atomically (a temporary file, then a rename), so a crash or a kill during a save
leaves the previous checkpoint in place.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._files import atomic_write, check_file
from .checks import check_map_location

__all__ = ["CHECKPOINT_NAME", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "pyvae-checkpoint"
VERSION = 1


def rng_state() -> dict[str, Any]:
    """The states of torch's (CPU and CUDA), NumPy's and Python's generators, as plain data."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": list(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators from :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, **contents: Any) -> Path:
    """Write ``contents`` (tensors and plain data) atomically to ``path``, replacing the
    previous checkpoint only once the new one is complete."""
    payload = {"format": FORMAT, "version": VERSION, **contents}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp), overwrite=True)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing anything else."""
    path = Path(path)
    check_file(path, "checkpoint", CHECKPOINT_NAME)
    check_map_location(map_location)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError:  # unreadable by this user
        raise
    except Exception as e:
        raise ValueError(
            f"{path} is not a loadable pyvae checkpoint (truncated, corrupt or not made by "
            f"pyvae; files holding code are refused; {type(e).__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pyvae checkpoint")
    if payload.get("version") != VERSION:
        raise ValueError(
            f"{path} has checkpoint version {payload.get('version')}, this pyvae reads {VERSION}"
        )
    return payload

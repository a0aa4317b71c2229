"""``fit``'s arguments, checked once into a :class:`TrainConfig`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import pyro.optim
import torch
from pyro.infer.elbo import ELBO

from ..callbacks import Callback
from ..checks import check_device, check_int, check_number

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one ``fit`` run (see :func:`pyvae.fit` for each), checked by
    :meth:`check`: each bad value is refused with the fix before any work."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    elbo: ELBO | None = None
    optim: pyro.optim.PyroOptim | None = None
    beta: float = 1.0
    warmup_epochs: float = 0
    seed: int | None = None
    device: str | torch.device | None = None
    progress: bool = True
    callbacks: Sequence[Callback] = field(default_factory=tuple)
    checkpoint_dir: Path | None = None
    checkpoint_every: int = 1
    resume: bool = False
    clip_norm: float | None = None
    distributed: bool = False

    @classmethod
    def check(cls, **arguments: Any) -> TrainConfig:
        """A :class:`TrainConfig` of ``fit``'s keyword ``arguments``, each checked."""
        defaults = {
            f.name: f.default if f.default is not MISSING else f.default_factory()
            for f in fields(cls)
        }
        a = {**defaults, **arguments}
        a["epochs"] = check_int("epochs", a["epochs"], 0)
        a["batch_size"] = check_int("batch_size", a["batch_size"], 1)
        a["checkpoint_every"] = check_int("checkpoint_every", a["checkpoint_every"], 1)
        a["lr"] = check_number("lr", a["lr"], above=0)
        a["beta"] = check_number("beta", a["beta"], at_least=0)
        a["warmup_epochs"] = check_number("warmup_epochs", a["warmup_epochs"], at_least=0)
        if a["seed"] is not None:
            a["seed"] = check_int("seed", a["seed"], 0)
        if a["clip_norm"] is not None:
            a["clip_norm"] = check_number("clip_norm", a["clip_norm"], above=0)
        elbo, optim = a["elbo"], a["optim"]
        if elbo is not None and not isinstance(elbo, ELBO):
            raise TypeError(f"elbo must be a Pyro ELBO instance such as Trace_ELBO(), got {elbo!r}")
        if optim is not None and not isinstance(optim, pyro.optim.PyroOptim):
            raise TypeError(
                f"optim must be a Pyro optimizer such as pyro.optim.Adam(...), got {optim!r}"
            )
        a["callbacks"] = _callbacks(a["callbacks"])
        a["device"] = check_device(a["device"])
        directory = a["checkpoint_dir"]
        a["checkpoint_dir"] = Path(os.fspath(directory)) if directory is not None else None
        if a["resume"] and directory is None:
            raise ValueError("resume=True needs checkpoint_dir=... (where the checkpoint is)")
        if directory is not None and optim is not None:
            raise ValueError(
                "checkpoints need fit's default optimizer (torch Adam); drop optim=... or "
                "checkpoint_dir=..."
            )
        return cls(**a)

    def resume_key(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote the checkpoint
        (``epochs``, ``progress``, ``callbacks`` and ``checkpoint_every`` may change)."""
        return {
            "lr": self.lr,
            "beta": self.beta,
            "warmup_epochs": self.warmup_epochs,
            "batch_size": self.batch_size,
            "clip_norm": self.clip_norm,
            "elbo": "default" if self.elbo is None else type(self.elbo).__qualname__,
            **({"seed": self.seed} if self.seed is not None else {}),
        }


def _callbacks(callbacks: Any) -> tuple[Callback, ...]:
    if callbacks is None:
        return ()
    if isinstance(callbacks, Callback):
        raise TypeError("callbacks must be a list of Callback objects: write callbacks=[cb]")
    callbacks = tuple(callbacks)
    for cb in callbacks:
        missing = [
            h
            for h in ("on_train_begin", "on_epoch_end", "on_train_end")
            if not callable(getattr(cb, h, None))
        ]
        if missing:
            raise TypeError(
                f"callback {cb!r} has no {', '.join(missing)}: subclass "
                "pyvae.callbacks.Callback, which defines every hook"
            )
    return callbacks

"""Checkpoints, resume and interrupts of a run: one component with lifecycle hooks.

:class:`Checkpointer` writes ``checkpoint.pt`` (:mod:`pyvae.checkpoint`) at the end of
every ``every``-th epoch and when the run is interrupted, always the state of the last
completed step (the :class:`Position` the loop commits after each step), and reads it
back on resume, refusing a run whose settings or data differ from the ones that wrote it.
It holds the run folder's :class:`~pyvae.train.lock.RunLock` while the run lasts.
"""

from __future__ import annotations

import contextvars
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .lock import RunLock

__all__ = [
    "Position",
    "Checkpointer",
    "NoCheckpoints",
    "ResumeMismatch",
    "data_fingerprint",
    "RESUME_HINT",
]

#: How the message after an interruption says to continue, ``{directory}`` filled in:
#: ``fit``'s own call by default; the command line sets its ``--resume``.
RESUME_HINT: contextvars.ContextVar[str] = contextvars.ContextVar(
    "RESUME_HINT", default="continue with fit(..., checkpoint_dir={directory!r}, resume=True)"
)


@dataclass
class Position:
    """Where a run is: the epoch in progress (1-based), its batches done, the steps taken,
    the epoch's loss so far, its order of the items, and torch's random state right after
    the last completed step (or epoch), which a checkpoint saves."""

    epoch: int = 1
    batches_done: int = 0
    step_count: int = 0
    total: float = 0.0
    order: torch.Tensor | None = None
    torch_rng: torch.Tensor | None = None

    def step_done(self, loss_share: float) -> None:
        self.batches_done += 1
        self.step_count += 1
        self.total += loss_share

    def epoch_done(self) -> None:
        self.epoch, self.batches_done, self.total, self.order = self.epoch + 1, 0, 0.0, None


class ResumeMismatch(ValueError):
    """A resumed run's settings differ from the checkpoint's; ``differences`` maps each
    setting to ``(in the checkpoint, now)``."""

    def __init__(self, path: Path, differences: dict[str, tuple[Any, Any]]):
        self.path, self.differences = path, differences
        listed = "; ".join(
            f"{k}: {then!r} there, {now!r} now" for k, (then, now) in differences.items()
        )
        super().__init__(
            f"{path} was written by a run with other settings ({listed}); resume with the "
            "same arguments (only epochs, progress, callbacks and checkpoint_every may "
            "change), or use another checkpoint_dir"
        )


def data_fingerprint(x: torch.Tensor, transform: Any, side: dict[str, torch.Tensor]) -> str:
    """A hash of the training data: its items' bytes, shape and dtype, the side
    information and the per-batch transform (its ``repr``, or its class)."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in {"x": x, **side}.items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    own_repr = type(transform).__repr__ is not object.__repr__  # else it shows an address
    h.update((repr(transform) if own_repr else type(transform).__qualname__).encode())
    return h.hexdigest()


class NoCheckpoints:
    """The checkpointer of a run without ``checkpoint_dir``: every hook does nothing."""

    def begin(self, trainer: Any) -> None:
        pass

    def step_done(self, position: Position) -> None:
        pass

    def epoch_done(self, trainer: Any, last: bool) -> None:
        pass

    def interrupted(self, trainer: Any, forced: bool) -> None:
        pass

    def end(self) -> None:
        pass


class Checkpointer(NoCheckpoints):
    """Checkpoints in ``directory`` (see the module's docstring).

    Args:
        directory: the run folder (``checkpoint.pt`` is written there).
        every: save after every ``every``-th epoch (and the last).
        resume: read the checkpoint there, if any, before the first step.
        settings: what a resumed run must share with this one (the training settings and
            ``data``, a :func:`data_fingerprint`).
        strategy: the run's strategy (the main process writes; the others take part).
    """

    def __init__(
        self, directory: Path, every: int, resume: bool, settings: dict[str, Any], strategy: Any
    ):
        self.directory, self.path = directory, directory / CHECKPOINT_NAME
        self.every, self.resume, self.settings, self.strategy = every, resume, settings, strategy
        self.lock = RunLock(directory) if strategy.is_main else None

    # ------------------------------------------------------------------ hooks
    def begin(self, trainer: Any) -> None:
        """Take the run folder's lock; on resume, restore the run from the checkpoint."""
        if self.lock is not None:
            self.lock.acquire()
        try:
            saved = self.strategy.read(load_checkpoint, self.path) if self.resume else None
            if saved is not None:
                self._restore(trainer, saved)
        except BaseException:
            self.end()
            raise

    def step_done(self, position: Position) -> None:
        position.torch_rng = torch.get_rng_state()

    def epoch_done(self, trainer: Any, last: bool) -> None:
        epoch = trainer.position.epoch - 1
        if last or epoch % self.every == 0:
            self._save(trainer)

    def interrupted(self, trainer: Any, forced: bool) -> None:
        """Save the last completed step, where every process stopped there together."""
        if forced or not self.strategy.can_save_on_interrupt():
            return
        self._save(trainer)
        if self.strategy.is_main:
            p = trainer.position
            hint = RESUME_HINT.get().format(directory=str(self.directory))
            print(
                f"\nInterrupted in epoch {p.epoch} after {p.batches_done} batches. Saved "
                f"{self.path} (the last completed step); {hint}.",
                file=sys.stderr,
            )

    def end(self) -> None:
        if self.lock is not None:
            self.lock.release()

    # ------------------------------------------------------------------ files
    def _save(self, trainer: Any) -> None:
        p = trainer.position
        rng = rng_state()
        if p.torch_rng is not None:
            rng["torch"] = p.torch_rng
        in_progress = None
        if p.batches_done:
            in_progress = {"order": p.order.cpu(), "batches_done": p.batches_done, "total": p.total}
        contents = dict(
            in_progress=in_progress,
            config=trainer.vae.config,
            state_dict=trainer.vae.state_dict(),
            optimizer=trainer.step.state_dict(),
            objective=_objective(trainer).state_dict() if _stateful(trainer) else None,
            rng=rng,
            epoch=p.epoch - 1,
            step_count=p.step_count,
            history=trainer.history,
            train=self.settings,
        )
        self.strategy.save(save_checkpoint, self.path, contents)

    def _restore(self, trainer: Any, saved: dict[str, Any]) -> None:
        if saved["config"] != trainer.vae.config:
            raise ValueError(
                f"{self.path} was written for another VAE ({saved['config']}); build the same "
                "VAE to resume, or use another checkpoint_dir"
            )
        if set(saved["history"]) != set(trainer.history):
            raise ValueError(
                f"{self.path} recorded {sorted(saved['history'])}; resume with the same "
                "arguments (val=... given or not) as the run that wrote it"
            )
        recorded = saved.get("train")  # absent in checkpoints of pyvae 0.1.0
        if recorded is not None:
            differ = {
                k: (recorded.get(k), v)
                for k, v in self.settings.items()
                if k in recorded and recorded[k] != v
            }
            if differ:
                raise ResumeMismatch(self.path, differ)
            self.settings = {**recorded, **self.settings}
        trainer.vae.load_state_dict(saved["state_dict"])
        trainer.step.load_state_dict(saved["optimizer"])
        if _stateful(trainer):  # an objective with its own parameters (FactorVAE's critic)
            if saved.get("objective") is None:
                raise ValueError(
                    f"{self.path} holds no state of the objective "
                    f"{type(_objective(trainer)).__name__}; resume with the ELBO that wrote it"
                )
            _objective(trainer).load_state_dict(saved["objective"])
        trainer.history = saved["history"]
        position = Position(epoch=saved["epoch"] + 1, step_count=saved["step_count"])
        if saved.get("in_progress") is not None:
            done = saved["in_progress"]
            position.order = done["order"].to(trainer.strategy.device)
            position.batches_done, position.total = done["batches_done"], done["total"]
        trainer.position = position
        set_rng_state(saved["rng"])
        position.torch_rng = torch.get_rng_state()


def _objective(trainer: Any) -> Any:
    """The run's ELBO (the step's objective's)."""
    return getattr(getattr(trainer.step, "objective", None), "elbo", None)


def _stateful(trainer: Any) -> bool:
    """Whether the run's ELBO has a state of its own to checkpoint (``state_dict``)."""
    return callable(getattr(_objective(trainer), "state_dict", None))

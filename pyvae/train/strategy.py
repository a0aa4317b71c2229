"""Where a run's steps happen: :class:`Local` (this process) or, in
:mod:`pyvae.train.ddp`, ``DDP`` (one of several processes). The loop asks its strategy,
never whether it is distributed; the local strategy is the trivial twin (a sum over one
process is the value itself, every process is the main one)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pyro
import torch

from ..data import batches, side_batches
from .guard import guarded_loss_and_grads

__all__ = ["Local"]


class Local:
    """Training in this process, on ``device``.

    Attributes:
        rank, world, is_main: 0, 1, True.
        device: where the VAE and the data are.
    """

    rank, world, is_main = 0, 1, True
    stop = None  # the run's StopSignals (the twin of DDP's; a single process shares nothing)
    find_unused_parameters = True  # DDP's setting; nothing to find here

    def __init__(self, device: torch.device):
        self.device = device

    def seed(self, seed: int | None) -> int | None:
        """Seed torch, NumPy and Python (``pyro.set_rng_seed``); returns the seed."""
        if seed is not None:
            pyro.set_rng_seed(seed)
        return seed

    def sum(self, value: float) -> float:
        """The sum of ``value`` over the processes."""
        return value

    def any(self, flag: bool) -> bool:
        """True if ``flag`` is true in some process."""
        return bool(flag)

    def broadcast(self, obj: Any) -> Any:
        """The main process's ``obj``."""
        return obj

    def order(self, epoch_order: Any) -> torch.Tensor:
        """An epoch's order of the items (``epoch_order(device)``)."""
        return epoch_order(self.device)

    def shard(
        self,
        x: torch.Tensor,
        transform: Any,
        side: Mapping[str, torch.Tensor],
        batch_size: int,
        order: torch.Tensor,
    ) -> Iterator[tuple[torch.Tensor, dict]]:
        """This process's part of each batch of ``order``: ``(x, side)``, transformed."""
        xs = batches(x, transform, batch_size, order=order)
        return zip(xs, side_batches(side, batch_size, order=order), strict=False)

    def loss_and_grads(self, objective: Any, where: str, x: torch.Tensor, **kw: Any) -> Any:
        """The loss of the batch, its gradients accumulated in the parameters."""
        return guarded_loss_and_grads(objective.loss_and_grads, where, x, **kw)

    def elbo(self, vae: Any, data: Any) -> float:
        """The ELBO of ``data`` in nats per example (``vae.elbo``)."""
        return float(vae.elbo(data))

    def stop_agreed(self, requested: bool, after_step: bool) -> bool:
        """Whether to stop now, given that this process was asked to (``requested``)."""
        return requested

    def can_save_on_interrupt(self) -> bool:
        """Whether a checkpoint can be written after a ``KeyboardInterrupt``."""
        return True

    def save(self, write: Any, path: Any, contents: dict) -> None:
        """Write a checkpoint (``write(path, **contents)``)."""
        write(path, **contents)

    def read(self, read: Any, path: Any) -> dict | None:
        """Read a checkpoint (``read(path)``), None where there is none."""
        return read(path) if path.exists() else None

"""The KL weight schedule: linear warm-up to beta."""

from __future__ import annotations

__all__ = ["kl_weight_schedule"]


def kl_weight_schedule(step: int, steps_per_epoch: int, beta: float, warmup_epochs: float) -> float:
    """The KL weight at training step ``step`` (0-based): a linear ramp from 0 to ``beta``
    over ``warmup_epochs`` epochs, then ``beta``."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, step / (warmup_epochs * steps_per_epoch))

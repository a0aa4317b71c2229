"""The finiteness guard: a training step whose loss or gradients are NaN or infinite is
refused before its update, with an error that names where it happened."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from pyro.infer.util import zero_grads

from ..checks import STEP_ADVICE, non_finite_step

__all__ = ["non_finite_error", "guarded_loss_and_grads", "grad_norms", "finite_or_refuse"]


def non_finite_error(e: BaseException) -> bool:
    """A Pyro/torch argument check that refused NaN or inf values (raised on the first
    step, while Pyro's validation is on)."""
    text = str(e).lower()
    return isinstance(e, ValueError) and ("nan" in text or "inf" in text)


def guarded_loss_and_grads(
    loss_and_grads: Callable[..., Any], where: str, *args: Any, **kwargs: Any
) -> torch.Tensor | float:
    """``loss_and_grads(*args, **kwargs)``, with a validation error about NaN or inf
    raised as ``FloatingPointError`` naming ``where``."""
    try:
        return loss_and_grads(*args, **kwargs)
    except ValueError as e:
        if not non_finite_error(e):
            raise
        raise FloatingPointError(f"NaN or inf inside the model at {where}: {STEP_ADVICE}") from e


def grad_norms(
    params: list[torch.Tensor], clip_norm: float | None, foreach: bool | None = None
) -> list[torch.Tensor]:
    """The gradients' norms as 0-dim tensors on the device (one fused kernel; a NaN or inf
    in a gradient shows in its norm), or their total norm after clipping them to
    ``clip_norm`` (``torch.nn.utils.clip_grad_norm_``)."""
    if not params:
        return []
    if clip_norm is not None:
        return [torch.nn.utils.clip_grad_norm_(params, clip_norm, foreach=foreach)]
    return list(torch._foreach_norm([p.grad for p in params]))


def finite_or_refuse(
    loss: torch.Tensor | float,
    params: Iterable[torch.Tensor],
    where: str,
    clip_norm: float | None = None,
) -> float:
    """The loss as a float, once it and every gradient are known to be finite; else clear
    the gradients and raise ``FloatingPointError`` naming ``where`` (before any update).

    The loss and the norms come off the device in one transfer (one synchronisation)."""
    params = [p for p in params if p.grad is not None]
    norms = grad_norms(params, clip_norm)
    if isinstance(loss, torch.Tensor):
        ref = norms[0] if norms else loss
        loss, *values = torch.stack([loss.detach().to(ref), *norms]).tolist()
    else:
        values = torch.stack(norms).tolist() if norms else []
    if math.isfinite(loss) and all(map(math.isfinite, values)):
        return loss
    zero_grads(params)
    raise non_finite_step(loss, where)

"""What the VAE and its variants share: the check of a minibatch, the KL weight of the
latent sites, and building a prior from its name."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from pyro import poutine

from .._registry import lookup
from ..priors import PRIORS, Prior, VampPrior

__all__ = ["check_batch", "kl_weighted", "build_prior"]


def check_batch(x: Any) -> None:
    """A ``TypeError`` unless ``x`` is a tensor (a minibatch ``(B, *input_shape)``)."""
    if not isinstance(x, torch.Tensor):
        hint = (
            " (a DataLoader over (x, label) gives lists: use x, _ = batch)"
            if isinstance(x, (list, tuple))
            else ""
        )
        raise TypeError(
            f"x must be a tensor of shape (batch, *input_shape), got {type(x).__name__}{hint}"
        )


@contextlib.contextmanager
def kl_weighted(weight: float) -> Iterator[None]:
    """Scale the latent sites by ``weight`` (the KL weight beta); weight 0 masks them out,
    since ``poutine.scale`` refuses 0."""
    if weight == 1:
        yield
    elif weight == 0:
        with poutine.mask(mask=False):
            yield
    else:
        with poutine.scale(scale=weight):
            yield


def build_prior(
    prior: str | Prior,
    z_dim: int,
    input_shape: Sequence[int],
    prior_kwargs: Mapping[str, Any] | None = None,
    dim_name: str = "z_dim",
) -> Prior:
    """The prior named ``prior`` (one of :data:`pyvae.priors.PRIORS`, made with
    ``prior_kwargs``; a VampPrior's pseudo-inputs get ``input_shape``) or ``prior``
    itself, checked to be on ``z_dim`` dimensions (called ``dim_name`` in the error)."""
    if isinstance(prior, str):
        kwargs = dict(prior_kwargs or {})
        cls = lookup("prior", PRIORS, prior)
        if issubclass(cls, VampPrior):
            kwargs.setdefault("input_shape", tuple(input_shape))
        prior = cls(z_dim, **kwargs)
    if not isinstance(prior, Prior) or prior.z_dim != z_dim:
        got = f" with z_dim={prior.z_dim}" if isinstance(prior, Prior) else ""
        raise ValueError(
            f"the prior must be a Prior on {dim_name}={z_dim}, got {type(prior).__name__}{got}"
        )
    return prior

"""The conditional VAE: p(x | z, c) and q(z | x, c) for a context c given with each item.

c is a class label (``num_classes=K``: integer labels, seen by the networks one-hot) or any
tensor of ``context_dim`` values per item (``context_dim=D``). It is given, not modelled:
it has no sample site, and generation is conditioned on it (``sample(n, c=...)``).
The semi-supervised VAE (:mod:`pyvae.models.semisupervised`) builds on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import pyro_method
from torch import nn

from .. import likelihoods as _likelihoods
from .. import priors as _priors
from ..capabilities import (
    ANOMALY_LATENT,
    CHECKPOINT,
    CLOSED_FORM_KL,
    CUDA_GRAPH,
    DISENTANGLEMENT,
    DISTRIBUTED,
    EVALUATE,
    FACTOR_VAE,
    FAST_PATH,
    LATENT_CODES,
    LOG_LIKELIHOOD,
    LOSSLESS,
    PLOTS,
    POSTERIOR_INFERENCE,
    STACKED,
    TC_DECOMPOSITION,
)
from ..checks import check_finite, check_int
from ._shared import check_batch, kl_weighted
from .vae import VAE

__all__ = ["ConditionalVAE"]


def _context_size(num_classes: int | None, context_dim: int | None) -> int:
    if (num_classes is None) == (context_dim is None):
        raise ValueError(
            "give exactly one of num_classes=K (c is a class label) or context_dim=D "
            f"(c is D values per item); got num_classes={num_classes}, context_dim={context_dim}"
        )
    if num_classes is not None:
        return check_int("num_classes", num_classes, 2)
    return check_int("context_dim", context_dim)


def _broadcast_cat(a: torch.Tensor, b: torch.Tensor, item_dims: int) -> torch.Tensor:
    """Concatenate ``a`` and ``b`` along dimension ``-item_dims`` after broadcasting their
    batch dimensions (all but the last ``item_dims``)."""
    batch = torch.broadcast_shapes(a.shape[:-item_dims], b.shape[:-item_dims])
    a = a.expand(*batch, *a.shape[-item_dims:])
    b = b.expand(*batch, *b.shape[-item_dims:])
    return torch.cat([a, b], dim=-item_dims)


class ConditionalVAE(VAE):
    """A VAE conditioned on a context c per item (Sohn et al. 2015).

    - :meth:`model`: ``z ~ p(z)``, ``x ~ likelihood(decoder([z, c]))``, in plate ``"data"``.
    - :meth:`guide`: ``z ~ Normal(encoder(x joined with c))``, in the same plate.

    Args:
        encoder: sees x joined with c: ``(prod(input_shape) + D,)`` values (x flattened,
            then c), or for images ``(C + D, H, W)`` (c as D constant extra channels, for
            a :class:`~pyvae.nets.ConvEncoder`); which one is read from
            ``encoder.input_shape`` (default: flattened).
        decoder: maps ``[z, c]`` (``z_dim + D`` values) to the likelihood's parameters.
        prior, likelihood: as for :class:`~pyvae.VAE` (not a VampPrior: its pseudo-inputs
            have no context).
        input_shape: the shape of one data item (required: the encoder's input also
            holds c).
        num_classes: c is a class label in ``0..K-1`` (one-hot to the networks), or
        context_dim: c is ``D`` values per item (any shape ``(N, ...)`` of D values).

    ``fit``, ``encode``, ``elbo``, ``log_likelihood`` and ``reconstruct`` read c from the
    data's targets (a dataset with targets, or a pair ``(x, c)``) or take ``c=...``.
    :meth:`build` sizes the built-in networks.
    """

    side_input = "c"
    capabilities = frozenset(
        {CHECKPOINT, DISTRIBUTED, LOSSLESS, CLOSED_FORM_KL, LOG_LIKELIHOOD, EVALUATE}
        | {ANOMALY_LATENT}
        | PLOTS
    )
    unsupported = {
        FAST_PATH: "its model and guide take the context c, which DirectELBO does not",
        CUDA_GRAPH: "its step is not the fast path (DirectELBO) that CUDA graphs replay",
        LATENT_CODES: "the codes do not carry the context c that decoding them needs",
        DISENTANGLEMENT: "its codes are read with the context c, which the metrics do not see",
        STACKED: "its codes are read with the context c, which M2 on the codes would not see",
        TC_DECOMPOSITION: "its model and guide take the context c; the objective is checked "
        "on a plain VAE only",
        FACTOR_VAE: "its model and guide take the context c; the objective is checked on a "
        "plain VAE only",
        POSTERIOR_INFERENCE: "its posterior is p(z|x, c), and the refinement and NUTS are "
        "checked on a plain VAE only",
    }

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: _priors.Prior,
        likelihood: _likelihoods.Likelihood,
        input_shape: Sequence[int] | None = None,
        *,
        num_classes: int | None = None,
        context_dim: int | None = None,
    ):
        if input_shape is None:
            raise ValueError(
                f"{type(self).__name__} needs input_shape=... (the encoder's input holds c too)"
            )
        dim = _context_size(num_classes, context_dim)
        super().__init__(encoder, decoder, prior, likelihood, input_shape)
        if isinstance(prior, _priors.VampPrior):
            raise ValueError(
                "a VampPrior's pseudo-inputs carry no context c: use the normal, mog or flow "
                "prior with a ConditionalVAE"
            )
        self.num_classes = dim if num_classes is not None else None
        self.context_dim = dim
        shape = self.input_shape
        flat, channels = (math.prod(shape) + dim,), (shape[0] + dim, *shape[1:])
        encoder_shape = tuple(getattr(encoder, "input_shape", flat))
        if encoder_shape not in (flat, channels):
            raise ValueError(
                f"the encoder takes input_shape {encoder_shape}, but it sees x {shape} joined "
                f"with c ({dim} values): {flat} (flattened) or {channels} (c as channels)"
            )
        self._c_as_channels = encoder_shape != flat
        decoder_dim = getattr(decoder, "z_dim", self.z_dim + dim)
        if decoder_dim != self.z_dim + dim:
            raise ValueError(
                f"the decoder takes {decoder_dim} values, but it sees [z, c]: "
                f"{self.z_dim} + {dim} = {self.z_dim + dim}"
            )

    @classmethod
    def net_shapes(
        cls,
        input_shape: tuple[int, ...],
        z_dim: int,
        net: str,
        num_classes: int | None = None,
        context_dim: int | None = None,
        **kwargs: Any,
    ) -> tuple[tuple[int, ...], int]:
        """The encoder sees x and c joined (as channels for ``net="conv"``, else flattened);
        the decoder sees ``[z, c]``."""
        dim = _context_size(num_classes, context_dim)
        if net == "conv":
            return (input_shape[0] + dim, *input_shape[1:]), z_dim + dim
        return (math.prod(input_shape) + dim,), z_dim + dim

    @property
    def options(self) -> dict[str, Any]:
        if self.num_classes is not None:
            return {"num_classes": self.num_classes}
        return {"context_dim": self.context_dim}

    # ------------------------------------------------------------------ the context
    def check_side(self, value: torch.Tensor | None, n: int) -> torch.Tensor:
        """The context of all ``n`` items: labels ``(n,)`` (int64, in ``0..K-1``) or
        ``(n, D)`` floats."""
        value = super().check_side(value, n)
        if self.num_classes is not None:
            return self._check_labels(value, allow_unknown=False)
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"c must be real numbers, got dtype {value.dtype}")
        if value[0].numel() != self.context_dim:
            raise ValueError(
                f"c has shape {tuple(value.shape)}: {value[0].numel()} values per item, but "
                f"context_dim={self.context_dim}"
            )
        value = value.reshape(n, self.context_dim).to(torch.get_default_dtype())
        check_finite(value, "the context c")
        return value

    def _check_labels(self, value: torch.Tensor, allow_unknown: bool) -> torch.Tensor:
        low = -1 if allow_unknown else 0
        if value.dim() == 2 and value.shape[1] == 1:
            value = value[:, 0]
        integral = not value.is_complex() and bool((value == value.round()).all())
        if value.dim() != 1 or not integral:
            raise ValueError(
                f"the labels must be one integer per item, got shape {tuple(value.shape)} and "
                f"dtype {value.dtype} (for several label columns pick one: "
                "dataset.with_targets(dataset.targets[:, 0].long()))"
            )
        value = value.long()
        bad = (value < low) | (value >= self.num_classes)
        if bool(bad.any()):
            unknown = " or -1 (unknown)" if allow_unknown else ""
            raise ValueError(
                f"labels must be in 0..{self.num_classes - 1}{unknown}; got "
                f"{sorted(set(value[bad].tolist()))[:5]}"
            )
        return value

    def _context(self, c: Any, batch: int | None = None) -> torch.Tensor:
        """c as the networks see it: ``(batch, D)`` floats for one context per item, or
        ``(D,)`` for one context of all; class labels one-hot."""
        if c is None:
            raise ValueError(f"{type(self).__name__} needs the context c (c=...)")
        c = torch.as_tensor(c, device=self.device)
        if self.num_classes is not None:
            if c.dim() > 1 or c.dim() == 1 and batch is not None and len(c) != batch:
                raise ValueError(
                    f"c has shape {tuple(c.shape)}: give one label, or one per item ({batch})"
                )
            return F.one_hot(c.long(), self.num_classes).to(torch.get_default_dtype())
        per_item = batch is not None and c.dim() >= 1 and len(c) == batch
        if per_item and c[0].numel() == self.context_dim:
            return c.reshape(batch, self.context_dim).to(torch.get_default_dtype())
        if c.numel() != self.context_dim:
            raise ValueError(
                f"c has shape {tuple(c.shape)}: give {self.context_dim} values, or "
                f"{self.context_dim} per item"
            )
        return c.reshape(self.context_dim).to(torch.get_default_dtype())

    def _join(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The encoder's input: ``x`` ``(B, *input_shape)`` joined with the context ``c``
        ``(*batch, B, D)`` (batch dimensions broadcast)."""
        if self._c_as_channels:
            rest = self.input_shape[1:]
            c = c.reshape(*c.shape, *(1,) * len(rest)).expand(*c.shape, *rest)
            return _broadcast_cat(x, c, len(self.input_shape))
        x = x.reshape(*x.shape[: x.dim() - len(self.input_shape)], -1)
        return _broadcast_cat(x, c, 1)

    def _q_params(self, x: torch.Tensor, c: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        c = self._context(c, len(x))
        return self.encoder(self._join(self.likelihood.encoder_input(x), c))

    def _decoder_input(self, z: torch.Tensor, c: Any = None) -> torch.Tensor:
        return _broadcast_cat(z, self._context(c, len(z)), 1)

    def _decode_side(self, x: torch.Tensor, side: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        return {"c": side["c"]}

    def _px(self, z: torch.Tensor, c: torch.Tensor) -> dist.TorchDistribution:
        """p(x | z, c) for codes ``z`` ``(*batch, z_dim)`` and network context ``c``."""
        return self.likelihood(self.decoder(_broadcast_cat(z, c, 1)), len(self.input_shape))

    # ------------------------------------------------------------------ model and guide
    @pyro_method
    def model(
        self,
        x: torch.Tensor | None = None,
        c: Any = None,
        *,
        num_data: int | None = None,
        kl_weight: float = 1.0,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """The generative model p(z) p(x | z, c).

        Args:
            x: observed minibatch ``(B, *input_shape)``; None to generate ``batch_size``
                items.
            c: the context of each item (labels ``(B,)`` or ``(B, ...)`` values), or one
                context for all when generating.
            num_data, kl_weight: as for :meth:`pyvae.VAE.model`.
        Returns:
            x (observed or sampled), shape ``(B, *input_shape)``.
        """
        x, batch, device = self._model_input(x, batch_size)
        c = self._context(c, batch)
        prior = self.p_z()
        with self._plate(batch, num_data, device):
            with kl_weighted(kl_weight):
                z = pyro.sample("z", prior)
            return pyro.sample("x", self._px(z, c), obs=x)

    @pyro_method
    def guide(
        self,
        x: torch.Tensor,
        c: Any = None,
        *,
        num_data: int | None = None,
        kl_weight: float = 1.0,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """q(z | x, c) = Normal(encoder(x joined with c)). Returns z, shape ``(B, z_dim)``."""
        if x is None:
            raise ValueError("the guide needs data x (it is q(z|x, c))")
        check_batch(x)
        loc, scale = self._q_params(x, c)
        with self._plate(x.shape[0], num_data, x.device):
            with kl_weighted(kl_weight):
                return pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def decode(self, z: torch.Tensor, *, c: Any = None) -> dist.TorchDistribution:
        """p(x | z, c) for codes ``z`` ``(N, z_dim)`` and the context of each (or one for
        all); event shape = data shape."""
        z = torch.as_tensor(z, dtype=torch.get_default_dtype(), device=self.device)
        if z.shape[-1:] != (self.z_dim,):
            raise ValueError(f"z must have shape (..., {self.z_dim}), got {tuple(z.shape)}")
        return self._px(z, self._context(c, z.shape[0] if z.dim() > 1 else None))

    @torch.no_grad()
    def sample(
        self, n: int, mean: bool = True, temperature: float = 1.0, *, c: Any = None
    ) -> torch.Tensor:
        """Generate ``n`` items given the context ``c`` (one for all, e.g. ``c=3``, or one per
        item): ``z ~ prior``, then E[x | z, c] (or a draw if ``mean=False``)."""
        check_int("n", n)
        if self.num_classes is not None and c is not None:
            c = torch.as_tensor(c)
            c = self._check_labels(c.reshape(-1), allow_unknown=False).reshape(c.shape)
        z = _priors.tempered(self.p_z(), temperature).sample((n,))
        px = self._px(z, self._context(c, n))
        return px.mean if mean else px.sample()

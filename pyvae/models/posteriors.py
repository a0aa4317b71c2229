"""Richer posteriors q(z|x): inverse autoregressive flow and low-rank full covariance.

Both are :class:`~pyvae.VAE` subclasses whose guide differs from the diagonal Gaussian;
the model p(z) p(x|z), ``fit``, ``elbo``, ``log_likelihood``, ``save``/``load`` and the
plots are the same.

- :class:`IAFVAE` (Kingma et al. 2016): the encoder gives a diagonal Gaussian and a
  context vector h; ``num_steps`` inverse autoregressive flow steps (Pyro's
  ``ConditionalAffineAutoregressive``, the paper's numerically stable sigmoid form)
  conditioned on h transform a draw of it: z_0 ~ N(mu(x), sigma(x)),
  z_t = sigma_t * z_{t-1} + (1 - sigma_t) * m_t with (m_t, sigma_t) autoregressive in
  z_{t-1} and depending on h. Drawing z and scoring the drawn z are one parallel pass
  per step.
- :class:`LowRankVAE`: q(z|x) = N(mu(x), W(x) W(x)^T + diag(sigma(x)^2)) with a
  ``z_dim x rank`` factor W from the encoder (``dist.LowRankMultivariateNormal``): a
  full covariance at the cost of ``rank`` more outputs per latent dimension.

Their encoders have extra outputs (h, or W): :class:`ExtraOutputEncoder` builds a
built-in encoder for ``z_dim + extra_dim`` latent dimensions and reads the extra outputs
from the locations of the last ``extra_dim`` of them (a linear head on the same hidden
layer as the Gaussian's parameters). Called as an encoder it returns the Gaussian's
``(loc, scale)`` only, so priors that use the encoder (the VampPrior) work unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from pyro.nn import pyro_method
from torch import nn

from .. import likelihoods as _likelihoods
from .. import priors as _priors
from .._registry import lookup
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
from ..checks import check_int, finite_or_raise
from ..config import Configurable
from ..nets import NETS
from ._shared import check_batch, kl_weighted
from .vae import VAE

__all__ = ["ExtraOutputEncoder", "IAF", "IAFPosterior", "PosteriorVAE", "IAFVAE", "LowRankVAE"]


class ExtraOutputEncoder(Configurable, nn.Module):
    """A built-in encoder (``net``: ``"mlp"`` or ``"conv"``) with ``extra_dim`` more outputs.

    ``encoder(x) -> (loc, scale)``, each ``(*batch, z_dim)`` (the encoder contract);
    ``encoder.with_extra(x) -> (loc, scale, extra)`` with ``extra`` of shape
    ``(*batch, extra_dim)``. The network is the built-in encoder for
    ``z_dim + extra_dim`` dimensions; ``extra`` is the location output of the last
    ``extra_dim`` (its scale outputs are unused).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        z_dim: int,
        extra_dim: int,
        net: str = "mlp",
        net_kwargs: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.z_dim = check_int("z_dim", z_dim)
        self.extra_dim = check_int("extra_dim", extra_dim, 0)
        encoder_cls = lookup("net", NETS, net)[0]
        self.net = encoder_cls(self.input_shape, self.z_dim + self.extra_dim, **(net_kwargs or {}))

    def with_extra(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loc, scale = self.net(x)
        z = self.z_dim
        return loc[..., :z], scale[..., :z], loc[..., z:]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, scale, _ = self.with_extra(x)
        return loc, scale


def _build(
    input_shape: Sequence[int],
    z_dim: int,
    extra_dim: int,
    prior: str | _priors.Prior,
    likelihood: str | _likelihoods.Likelihood,
    net: str,
    prior_kwargs: Mapping[str, Any] | None,
    likelihood_kwargs: Mapping[str, Any] | None,
    net_kwargs: Mapping[str, Any] | None,
) -> tuple[nn.Module, nn.Module, _priors.Prior, _likelihoods.Likelihood]:
    """The parts :meth:`VAE.build` makes, with an :class:`ExtraOutputEncoder`."""
    base = VAE.build(
        input_shape,
        z_dim,
        prior,
        likelihood,
        net,
        prior_kwargs=prior_kwargs,
        likelihood_kwargs=likelihood_kwargs,
        net_kwargs=net_kwargs,
    )
    encoder = ExtraOutputEncoder(base.input_shape, z_dim, extra_dim, net, net_kwargs)
    return encoder, base.decoder, base.prior, base.likelihood


class IAFPosterior(dist.TransformedDistribution):
    """q(z|x) of an :class:`IAFVAE`: the encoder's Normal through the IAF steps.

    Batch shape ``(N,)``, event shape ``(z_dim,)``. ``sample``, ``rsample`` and
    ``log_prob`` are exact (scoring the z just drawn is one pass per step; scoring any
    other z inverts each step, ``z_dim`` passes). ``mean`` has no closed form: it is a
    Monte Carlo estimate from :attr:`num_mean_samples` draws, so it varies slightly from
    call to call.
    """

    num_mean_samples = 256

    @property
    def mean(self) -> torch.Tensor:
        with torch.no_grad():
            total = torch.zeros_like(self.base_dist.mean)
            for _ in range(self.num_mean_samples):
                total += self.sample()
            return total / self.num_mean_samples


class IAF(Configurable, nn.Module):
    """``num_steps`` inverse autoregressive flow steps on ``z_dim`` dimensions, each
    conditioned on a ``context_dim`` context vector (Pyro's
    ``conditional_affine_autoregressive`` with ``stable=True``: the sigmoid form of
    Kingma et al. 2016). Each step's MADE has ``hidden_dims`` (default ``[10 * z_dim]``)
    and its own random order of the dimensions (saved with the VAE).

    ``iaf(base, context)`` returns an :class:`IAFPosterior` (``base`` itself when
    ``num_steps == 0``). ``context``: ``(*batch, context_dim)``, broadcast over draws.
    """

    def __init__(
        self,
        z_dim: int,
        context_dim: int,
        num_steps: int = 2,
        hidden_dims: Sequence[int] | None = None,
    ):
        super().__init__()
        self.z_dim = check_int("z_dim", z_dim)
        self.context_dim = check_int("context_dim", context_dim)
        self.num_steps = check_int("num_steps", num_steps, 0)
        if num_steps and z_dim < 2:
            raise ValueError("an autoregressive flow needs z_dim >= 2; use num_steps=0")
        hidden = list(hidden_dims) if hidden_dims else [10 * z_dim]
        self.steps = nn.ModuleList(
            T.conditional_affine_autoregressive(z_dim, context_dim, hidden, stable=True)
            for _ in range(num_steps)
        )

    def forward(
        self, base: dist.TorchDistribution, context: torch.Tensor
    ) -> dist.TorchDistribution:
        if not self.num_steps:
            return base
        return IAFPosterior(base, [step.condition(context) for step in self.steps])


class PosteriorVAE(VAE):
    """A VAE whose guide draws z from :meth:`posterior`, a richer q(z|x) than the
    diagonal Normal (the base of :class:`IAFVAE` and :class:`LowRankVAE`)."""

    capabilities = frozenset(
        {CHECKPOINT, DISTRIBUTED, LATENT_CODES, LOG_LIKELIHOOD, EVALUATE, ANOMALY_LATENT} | PLOTS
    )
    unsupported = {
        FAST_PATH: "its q(z|x) is not the diagonal normal that DirectELBO computes",
        CUDA_GRAPH: "its step is not the fast path (DirectELBO) that CUDA graphs replay",
        LOSSLESS: "its q(z|x) is not a diagonal normal, which the coder's buckets need",
        CLOSED_FORM_KL: "its q(z|x) is not a diagonal normal",
        DISENTANGLEMENT: "its E[z|x] is a Monte Carlo estimate (an IAF has no closed-form "
        "mean), and the metrics need the exact posterior means",
        STACKED: "its q(z|x) is not a diagonal normal, whose loc and scale the features hold",
        TC_DECOMPOSITION: "its q(z|x) does not factorise over the latent dimensions, which "
        "the decomposition's estimator needs",
        FACTOR_VAE: "its guide is not a plain VAE's; the objective is checked on a plain VAE only",
        POSTERIOR_INFERENCE: "its q(z|x) is not the diagonal normal that the refinement starts "
        "from and fits",
    }

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """q(z|x) for a batch ``x`` (shape ``(B, *input_shape)``): batch shape ``(B,)``."""
        raise NotImplementedError

    @pyro_method
    def guide(
        self,
        x: torch.Tensor,
        *,
        num_data: int | None = None,
        kl_weight: float = 1.0,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """z ~ :meth:`posterior` in the data plate. Returns z, ``(B, z_dim)``."""
        if x is None:
            raise ValueError("the guide needs data x (it is q(z|x))")
        check_batch(x)
        q = self.posterior(x)
        with self._plate(x.shape[0], num_data, x.device), kl_weighted(kl_weight):
            return pyro.sample("z", q)


class IAFVAE(PosteriorVAE):
    """A VAE whose posterior is an inverse autoregressive flow (Kingma et al. 2016).

    Guide: ``loc, scale, h = encoder.with_extra(x)``;
    ``z ~ IAFPosterior(Normal(loc, scale), steps conditioned on h)`` in the data plate
    (site ``"z"``, as in :class:`~pyvae.VAE`). The model is the VAE's.

    Parts: those of :class:`~pyvae.VAE` (the encoder has ``flow.context_dim`` extra
    outputs: an :class:`ExtraOutputEncoder`) and ``flow``, an :class:`IAF`.
    ``encode(x)`` returns the :class:`IAFPosterior` (its ``mean`` is a Monte Carlo
    estimate); ``reconstruct`` decodes that mean.
    """

    parts = (*VAE.parts, "flow")
    capabilities = PosteriorVAE.capabilities
    unsupported = {
        **PosteriorVAE.unsupported,
        LOSSLESS: "its q(z|x) is a flow, but the coder's buckets follow the diagonal base "
        "distribution",
    }

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: _priors.Prior,
        likelihood: _likelihoods.Likelihood,
        flow: IAF,
        input_shape: Sequence[int] | None = None,
    ):
        super().__init__(encoder, decoder, prior, likelihood, input_shape)
        if not isinstance(flow, IAF) or flow.z_dim != self.z_dim:
            raise ValueError(f"flow must be an IAF on z_dim={self.z_dim}, got {flow!r}")
        if getattr(encoder, "extra_dim", None) != flow.context_dim:
            raise ValueError(
                f"IAFVAE needs an encoder with flow.context_dim={flow.context_dim} extra "
                f"outputs: ExtraOutputEncoder(input_shape, {self.z_dim}, extra_dim="
                f"{flow.context_dim}); got {type(encoder).__name__} with "
                f"{getattr(encoder, 'extra_dim', None)}"
            )
        self.flow = flow

    @classmethod
    def build(
        cls,
        input_shape: Sequence[int],
        z_dim: int = 16,
        prior: str | _priors.Prior = "normal",
        likelihood: str | _likelihoods.Likelihood = "bernoulli",
        net: str = "mlp",
        *,
        num_steps: int = 2,
        context_dim: int | None = None,
        hidden_dims: Sequence[int] | None = None,
        prior_kwargs: Mapping[str, Any] | None = None,
        likelihood_kwargs: Mapping[str, Any] | None = None,
        net_kwargs: Mapping[str, Any] | None = None,
    ) -> IAFVAE:
        """As :meth:`VAE.build`, plus the flow: ``num_steps`` IAF steps whose MADEs have
        ``hidden_dims``, conditioned on a context of ``context_dim`` (default ``z_dim``)
        encoder outputs."""
        context_dim = z_dim if context_dim is None else context_dim
        flow = IAF(z_dim, context_dim, num_steps, hidden_dims)
        parts = _build(
            input_shape,
            z_dim,
            context_dim,
            prior,
            likelihood,
            net,
            prior_kwargs,
            likelihood_kwargs,
            net_kwargs,
        )
        return cls(*parts, flow, input_shape)

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """q(z|x) for a batch ``x`` (shape ``(B, *input_shape)``): batch shape ``(B,)``."""
        loc, scale, context = self.encoder.with_extra(self.likelihood.encoder_input(x))
        return self.flow(dist.Normal(loc, scale).to_event(1), context)

    @torch.no_grad()
    def encode(
        self, x: Any, batch_size: int = 1024, *, refine_steps: int = 0, refine_lr: float = 5e-2
    ) -> dist.TorchDistribution:
        """q(z|x) for each item: an :class:`IAFPosterior`, batch ``(N,)``, event ``(z_dim,)``.
        ``refine_steps`` other than 0 is refused (no ``"posterior_inference"``)."""
        self.refuse_refinement(refine_steps)
        locs, scales, contexts = [], [], []
        for xb, _ in self._batches(x, batch_size):
            loc, scale, context = self.encoder.with_extra(self.likelihood.encoder_input(xb))
            locs.append(finite_or_raise(loc, "the posterior mean"))
            scales.append(finite_or_raise(scale, "the posterior scale"))
            contexts.append(context)
        base = dist.Normal(torch.cat(locs), torch.cat(scales)).to_event(1)
        return self.flow(base, torch.cat(contexts))

    @torch.no_grad()
    def reconstruct(self, x: Any, mean: bool = True, batch_size: int = 1024) -> torch.Tensor:
        """Decode (a Monte Carlo estimate of) E[z|x]: E[x|z], or a draw if ``mean=False``."""
        out = []
        for xb, _ in self._batches(x, batch_size):
            px = self.decode(self.posterior(xb).mean)
            out.append(px.mean if mean else px.sample())
        return torch.cat(out)


class LowRankVAE(PosteriorVAE):
    """A VAE whose posterior has a full (low-rank plus diagonal) covariance.

    Guide: ``loc, scale, w = encoder.with_extra(x)``; ``W = w.reshape(B, z_dim, rank)``;
    ``z ~ LowRankMultivariateNormal(loc, W, scale ** 2)`` in the data plate (site
    ``"z"``). The encoder has ``z_dim * rank`` extra outputs (an
    :class:`ExtraOutputEncoder`); ``rank`` is read from it. ``encode(x)`` returns the
    ``LowRankMultivariateNormal`` (``mean``, ``covariance_matrix``), ``reconstruct``
    decodes its mean.
    """

    capabilities = PosteriorVAE.capabilities | {DISENTANGLEMENT}  # its mean is exact
    unsupported = {
        **PosteriorVAE.unsupported,
        LOSSLESS: "its q(z|x) has a full covariance, but the coder's buckets code each "
        "latent dimension on its own",
    }

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: _priors.Prior,
        likelihood: _likelihoods.Likelihood,
        input_shape: Sequence[int] | None = None,
    ):
        super().__init__(encoder, decoder, prior, likelihood, input_shape)
        extra = getattr(encoder, "extra_dim", 0)
        if not hasattr(encoder, "with_extra") or extra < self.z_dim or extra % self.z_dim:
            raise ValueError(
                f"LowRankVAE needs an encoder with z_dim * rank extra outputs, rank >= 1: "
                f"ExtraOutputEncoder(input_shape, {self.z_dim}, extra_dim={self.z_dim} * rank); "
                f"got {type(encoder).__name__} with {extra} extra outputs"
            )
        self.rank = extra // self.z_dim

    @classmethod
    def build(
        cls,
        input_shape: Sequence[int],
        z_dim: int = 16,
        prior: str | _priors.Prior = "normal",
        likelihood: str | _likelihoods.Likelihood = "bernoulli",
        net: str = "mlp",
        *,
        rank: int = 2,
        prior_kwargs: Mapping[str, Any] | None = None,
        likelihood_kwargs: Mapping[str, Any] | None = None,
        net_kwargs: Mapping[str, Any] | None = None,
    ) -> LowRankVAE:
        """As :meth:`VAE.build`, with a covariance factor of ``rank`` >= 1 columns."""
        check_int("rank", rank)
        parts = _build(
            input_shape,
            z_dim,
            z_dim * rank,
            prior,
            likelihood,
            net,
            prior_kwargs,
            likelihood_kwargs,
            net_kwargs,
        )
        return cls(*parts, input_shape)

    def posterior(self, x: torch.Tensor) -> dist.LowRankMultivariateNormal:
        """q(z|x) for a batch ``x`` (shape ``(B, *input_shape)``): batch shape ``(B,)``."""
        loc, scale, w = self.encoder.with_extra(self.likelihood.encoder_input(x))
        factor = w.reshape(*loc.shape, self.rank)
        return dist.LowRankMultivariateNormal(loc, factor, scale**2)

    @torch.no_grad()
    def encode(
        self, x: Any, batch_size: int = 1024, *, refine_steps: int = 0, refine_lr: float = 5e-2
    ) -> dist.LowRankMultivariateNormal:
        """q(z|x) for each item: batch shape ``(N,)``, event shape ``(z_dim,)``.
        ``refine_steps`` other than 0 is refused (no ``"posterior_inference"``)."""
        self.refuse_refinement(refine_steps)
        qs = [self.posterior(xb) for xb, _ in self._batches(x, batch_size)]
        loc = finite_or_raise(torch.cat([q.loc for q in qs]), "the posterior mean")
        factor = torch.cat([q.cov_factor for q in qs])
        diag = finite_or_raise(torch.cat([q.cov_diag for q in qs]), "the posterior scale")
        return dist.LowRankMultivariateNormal(loc, factor, diag)

"""A VAE with two stochastic layers, written as a Pyro program.

Model (top-down)::

    z2 ~ p(z2)                      the prior, any pyvae prior, on z2_dim dimensions
    z1 ~ N(decoder2(z2))            p(z1|z2), a diagonal Gaussian
    x  ~ likelihood(decoder(z1))    p(x|z1)

Guide (bottom-up, as in the two-layer models of Burda et al. 2016)::

    z1 ~ N(encoder(x))              q(z1|x)
    z2 ~ N(encoder2(z1))            q(z2|z1)

All three sites are in the data plate; fit, the ELBO, the importance-sampled
log-likelihood (with the joint q(z1, z2|x) as proposal), IWAE, save and load work as for
:class:`~pyvae.VAE`, since they all read the Pyro traces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
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
from ..checks import check_int
from ..nets import MLPEncoder
from ._shared import build_prior, check_batch, kl_weighted
from .vae import VAE

__all__ = ["HierarchicalVAE"]


class HierarchicalVAE(VAE):
    """Two stochastic layers: p(z2) p(z1|z2) p(x|z1) and q(z1|x) q(z2|z1).

    Sites ``"z2"``, ``"z1"``, ``"x"`` in the model and ``"z1"``, ``"z2"`` in the guide,
    all in the plate ``"data"``; a KL weight scales both latent layers.

    Parts: ``encoder`` (x -> loc, scale of q(z1|x)), ``decoder`` (z1 -> the likelihood's
    parameters), ``prior`` p(z2), ``likelihood``, ``encoder2`` (z1 -> loc, scale of
    q(z2|z1)) and ``decoder2`` (z2 -> loc, scale of p(z1|z2)); the last two follow the
    encoder contract (e.g. :class:`pyvae.nets.MLPEncoder` on vectors).

    ``z_dim`` is z1's dimension (the code the decoder reads) and ``z2_dim`` the prior's.
    ``encode(x)`` is q(z1|x) and ``decode(z1)`` is p(x|z1), so reconstructions,
    traversals and latent-space plots show z1; ``sample`` draws z2 from the prior, z1
    from p(z1|z2), then decodes. A prior that uses the encoder (the VampPrior) gets
    ``u -> q(z2 | z1 = E[z1|u])``.
    """

    parts = (*VAE.parts, "encoder2", "decoder2")
    capabilities = frozenset(
        {CHECKPOINT, DISTRIBUTED, LATENT_CODES, LOG_LIKELIHOOD, EVALUATE, STACKED} | PLOTS
    )
    unsupported = {
        FAST_PATH: "it has two latent layers, DirectELBO computes one",
        CUDA_GRAPH: "its step is not the fast path (DirectELBO) that CUDA graphs replay",
        LOSSLESS: "its prior over z1 is p(z1|z2), but the coder's buckets are those of N(0, I)",
        CLOSED_FORM_KL: "its KL term is over two layers, p(z1|z2) p(z2)",
        ANOMALY_LATENT: "its prior is over z2, not over the code z1 that encode gives",
        DISENTANGLEMENT: "its code has two layers, z1 and z2, and encode gives z1 alone",
        TC_DECOMPOSITION: "it has two latent sites, z1 and z2; the objective decomposes one",
        FACTOR_VAE: "it has two latent sites, z1 and z2; the discriminator sees one",
        POSTERIOR_INFERENCE: "its posterior is over two layers, z1 and z2; the refinement and "
        "NUTS work on one latent site",
    }

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: _priors.Prior,
        likelihood: _likelihoods.Likelihood,
        encoder2: nn.Module,
        decoder2: nn.Module,
        input_shape: Sequence[int] | None = None,
    ):
        super().__init__(encoder, decoder, prior, likelihood, input_shape)
        for name, module in (("encoder2", encoder2), ("decoder2", decoder2)):
            if not isinstance(module, nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
        z1_dim = getattr(encoder, "z_dim", None)
        if z1_dim is None:
            raise ValueError("HierarchicalVAE needs an encoder with a z_dim attribute (z1's size)")
        self.encoder2 = encoder2
        self.decoder2 = decoder2
        self.z2_dim = prior.z_dim
        self.z_dim = int(z1_dim)

    @classmethod
    def build(
        cls,
        input_shape: Sequence[int],
        z_dim: int = 32,
        z2_dim: int = 16,
        prior: str | _priors.Prior = "normal",
        likelihood: str | _likelihoods.Likelihood = "bernoulli",
        net: str = "mlp",
        *,
        hidden2: Sequence[int] = (100, 100),
        prior_kwargs: Mapping[str, Any] | None = None,
        likelihood_kwargs: Mapping[str, Any] | None = None,
        net_kwargs: Mapping[str, Any] | None = None,
    ) -> HierarchicalVAE:
        """As :meth:`VAE.build` for x <-> z1 (``z_dim``, ``net``, ``net_kwargs``), with a
        prior on ``z2_dim`` dimensions and MLPs with ``hidden2`` units between z1 and z2.
        Burda et al.'s two-layer MNIST model: ``z_dim=100, z2_dim=50, hidden2=(100, 100),
        net_kwargs={"hidden": (200, 200)}`` (with tanh units)."""
        z2_dim = check_int("z2_dim", z2_dim)
        base = VAE.build(
            input_shape,
            z_dim,
            "normal",
            likelihood,
            net,
            likelihood_kwargs=likelihood_kwargs,
            net_kwargs=net_kwargs,
        )
        prior = build_prior(prior, z2_dim, base.input_shape, prior_kwargs, dim_name="z2_dim")
        encoder2 = MLPEncoder((z_dim,), z2_dim, hidden=hidden2)
        decoder2 = MLPEncoder((z2_dim,), z_dim, hidden=hidden2)
        return cls(
            base.encoder, base.decoder, prior, base.likelihood, encoder2, decoder2, input_shape
        )

    def _top_encoder(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u -> (loc, scale) of q(z2 | z1 = E[z1|u]): the encoder a VampPrior on z2 uses."""
        return self.encoder2(self.encoder(u)[0])

    def p_z(self) -> dist.TorchDistribution:
        """The prior p(z2) of the top layer: ``prior(top encoder)`` for a prior that
        declares ``needs_encoder`` (the VampPrior), else ``prior()``."""
        return self.prior(self._top_encoder) if self.prior.needs_encoder else self.prior()

    @pyro_method
    def model(
        self,
        x: torch.Tensor | None = None,
        *,
        num_data: int | None = None,
        kl_weight: float = 1.0,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """p(z2) p(z1|z2) p(x|z1); arguments as :meth:`VAE.model`. Returns x."""
        x, batch, device = self._model_input(x, batch_size)
        prior = self.p_z()
        with self._plate(batch, num_data, device):
            with kl_weighted(kl_weight):
                z2 = pyro.sample("z2", prior)
                loc, scale = self.decoder2(z2)
                z1 = pyro.sample("z1", dist.Normal(loc, scale).to_event(1))
            px = self.likelihood(self.decoder(z1), len(self.input_shape))
            return pyro.sample("x", px, obs=x)

    @pyro_method
    def guide(
        self,
        x: torch.Tensor,
        *,
        num_data: int | None = None,
        kl_weight: float = 1.0,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """q(z1|x) q(z2|z1). Returns z1, shape ``(B, z_dim)``."""
        if x is None:
            raise ValueError("the guide needs data x (it is q(z1, z2|x))")
        check_batch(x)
        loc, scale = self.encoder(self.likelihood.encoder_input(x))
        with self._plate(x.shape[0], num_data, x.device), kl_weighted(kl_weight):
            z1 = pyro.sample("z1", dist.Normal(loc, scale).to_event(1))
            loc2, scale2 = self.encoder2(z1)
            pyro.sample("z2", dist.Normal(loc2, scale2).to_event(1))
        return z1

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True, temperature: float = 1.0) -> torch.Tensor:
        """Generate ``n`` items: z2 ~ p(z2), z1 ~ p(z1|z2), then E[x|z1] (or a draw if
        ``mean=False``). ``temperature`` scales the spread of p(z2) and of p(z1|z2)."""
        check_int("n", n)
        z2 = _priors.tempered(self.p_z(), temperature).sample((n,))
        loc, scale = self.decoder2(z2)
        z1 = dist.Normal(loc, scale * temperature).sample()
        px = self.decode(z1)
        return px.mean if mean else px.sample()

"""β-TCVAE (Chen et al. 2018): the ELBO with its KL term split in three, as a Pyro ELBO.

For a data item x_i with z_i ~ q(z|x_i), the single-sample KL estimate splits exactly as

    log q(z_i|x_i) - log p(z_i)
        = [log q(z_i|x_i) - log q(z_i)]                   index-code mutual information
        + [log q(z_i) - sum_d log q(z_id)]                total correlation (TC)
        + [sum_d log q(z_id) - log p(z_i)]                dimension-wise KL

where q(z) = (1/N) sum_n q(z|x_n) is the aggregate posterior over the N training items and
q(z_d) its marginals, both estimated from the minibatch of B items:

- ``"mws"``, minibatch-weighted sampling (the paper's eq. and code): every
  q(z_i|x_j) weighs 1/(NB), so log q(z_i) ~ logsumexp_j log q(z_i|x_j) - log(NB). Its
  terms carry constant offsets (TC: + (D - 1) log N against a consistent estimate, the
  index-code MI: + log N, the dimension-wise KL: - D log N; they cancel in the sum and
  leave the gradients alone).
- ``"mss"``, minibatch-stratified sampling: q(z_i) = q(z_i|x_i)/N + (1/N) sum_{n != i}
  q(z_i|x_n), the item's own posterior weighed 1/N and each of the B - 1 others
  (N - 1)/(N (B - 1)), an unbiased estimate of q(z_i) (exact when B = N), so each term
  is consistent.

:class:`BetaTCELBO` maximises E[log p(x|z)] - (α MI + β TC + γ dim-wise KL), α = γ = 1 by
default (β = 1 is the ELBO, to the same sample). It runs the guide and model under
``pyro.poutine`` like ``Trace_ELBO``, so it trains any plain :class:`~pyvae.VAE` (any
prior and likelihood) through ``fit(vae, data, elbo=BetaTCELBO(beta=6))`` or
``pyro.infer.SVI(vae.model, vae.guide, optim, BetaTCELBO(beta=6))``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pyro.distributions import Independent
from pyro.infer.elbo import ELBO
from pyro.infer.enum import get_importance_trace
from pyro.infer.util import torch_item
from pyro.util import warn_if_nan

from .capabilities import TC_DECOMPOSITION
from .checks import check_number

__all__ = [
    "ESTIMATORS",
    "BetaTCELBO",
    "kl_decomposition",
    "pairwise_log_prob",
    "latent_site",
    "plate_and_weight",
    "require_from",
]

#: The estimators of log q(z) from a minibatch.
ESTIMATORS = ("mws", "mss")


def pairwise_log_prob(q: Any, z: torch.Tensor) -> torch.Tensor:
    """log q(z_id | x_j) for every pair, shape ``(B, B, D)``: ``[i, j, d]``.

    ``q``: the posteriors of the B items, an ``Independent`` over a distribution of
    batch shape ``(B, D)`` (e.g. ``Normal(loc, scale).to_event(1)``); ``z``: ``(B, D)``.
    """
    base = q.base_dist if isinstance(q, Independent) else None
    if base is None or q.reinterpreted_batch_ndims != 1 or base.batch_shape != z.shape:
        raise ValueError(
            f"the total correlation needs a posterior that factorises over the latent "
            f"dimensions (Normal(loc, scale).to_event(1), batch shape {tuple(z.shape)}); got "
            f"{type(q).__name__} with batch shape {tuple(getattr(q, 'batch_shape', ()))}"
        )
    return base.log_prob(z.unsqueeze(1))


def _log_weights(batch: int, num_data: int, estimator: str, like: torch.Tensor) -> torch.Tensor:
    """log of the weight of q(z_i|x_j) in the estimate of q(z_i), shape ``(B, B)``."""
    if estimator == "mws" or batch < 2:
        return like.new_full((batch, batch), -math.log(num_data * batch))
    w = like.new_full((batch, batch), (num_data - 1) / (num_data * (batch - 1)))
    w.fill_diagonal_(1 / num_data)  # the item's own posterior
    return w.log()


def kl_decomposition(
    log_q: torch.Tensor, log_p: torch.Tensor, num_data: int, estimator: str = "mws"
) -> dict[str, torch.Tensor]:
    """The three parts of each item's KL estimate, each of shape ``(B,)``, in nats.

    Args:
        log_q: ``(B, B, D)``, log q(z_id | x_j) (:func:`pairwise_log_prob`).
        log_p: ``(B,)``, log p(z_i) under the prior.
        num_data: N, the number of training items (the size of q(z)'s mixture).
        estimator: ``"mws"`` or ``"mss"`` (see :mod:`pyvae.tcvae`).

    Returns:
        ``mi``, ``tc``, ``dimwise_kl`` and ``kl`` = log q(z_i|x_i) - log p(z_i), their sum
        (exactly, for the same draws).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    batch = log_q.shape[0]
    if num_data < batch:
        raise ValueError(f"num_data (N = {num_data}) must be at least the batch size {batch}")
    w = _log_weights(batch, num_data, estimator, log_q)
    log_qz_x = log_q.diagonal(dim1=0, dim2=1).sum(0)  # (B,): log q(z_i|x_i)
    log_qz = torch.logsumexp(log_q.sum(-1) + w, dim=1)
    log_prod = torch.logsumexp(log_q + w.unsqueeze(-1), dim=1).sum(-1)
    return {
        "mi": log_qz_x - log_qz,
        "tc": log_qz - log_prod,
        "dimwise_kl": log_prod - log_p,
        "kl": log_qz_x - log_p,
    }


def latent_site(guide_trace: Any, name: str) -> dict[str, Any]:
    """The guide's one sample site, ``name``; a ValueError if it has others or not it."""
    sites = [s for s in guide_trace.nodes.values() if s["type"] == "sample"]
    if [s["name"] for s in sites] != [name]:
        raise ValueError(
            f"this objective needs a guide with one latent site {name!r} (a VAE's z); the "
            f"guide has {[s['name'] for s in sites]}. Name it with latent=..."
        )
    site = sites[0]
    if not site["fn"].has_rsample:
        raise ValueError(f"the latent site {name!r} must be reparameterised (have rsample)")
    return site


def plate_and_weight(site: dict[str, Any]) -> tuple[int, float, float]:
    """The data plate's N and N/B for a site, and the KL weight on it (0 if masked)."""
    frames = [f for f in site["cond_indep_stack"] if f.vectorized]
    if len(frames) != 1 or frames[0].dim != -1:
        raise ValueError(
            f"the latent site {site['name']!r} must lie in one data plate at dim -1 (as in a "
            "VAE's model and guide)"
        )
    scale = frames[0].full_size / frames[0].size
    if site.get("mask") is False:
        return frames[0].full_size, scale, 0.0
    return frames[0].full_size, scale, float(site["scale"]) / scale


def require_from(model: Any, feature: str, instead: str) -> None:
    """``vae.require(feature, instead)`` where ``model`` is a VAE's bound method."""
    vae = getattr(model, "__self__", None)
    if callable(getattr(vae, "require", None)):
        vae.require(feature, instead=instead)


class BetaTCELBO(ELBO):
    """Minus E[log p(x|z)] - (α MI + β TC + γ dim-wise KL), scaled to the dataset.

    Args:
        beta: the weight of the total correlation (6 in the paper's sprites runs).
        alpha: the weight of the index-code mutual information.
        gamma: the weight of the dimension-wise KL.
        estimator: ``"mws"`` (minibatch-weighted sampling) or ``"mss"`` (stratified).
        latent: the name of the latent site (``"z"``).

    Called as any Pyro ELBO with the model's arguments, the minibatch ``x`` and
    ``num_data=N`` (the plate's full size: ``fit`` passes it; without it N is the batch
    size). fit's KL weight (``beta=``, warm-up) multiplies all three terms. The guide must
    have one latent site whose posterior factorises over dimensions in the data plate; a
    VAE's class must support ``"tc_decomposition"``. One draw of z per item.

    With ``"mws"`` and weights other than 1 the loss holds a constant from the
    estimator's offsets, N (α + β (D - 1) - γ D) log N (so does ``fit``'s ``train_elbo``);
    it has no gradient. The ELBO of a trained model is ``vae.elbo``.
    """

    instead = "use a plain pyvae.VAE, or fit(..., beta=...) for a beta-VAE"

    def __init__(
        self,
        beta: float = 6.0,
        alpha: float = 1.0,
        gamma: float = 1.0,
        estimator: str = "mws",
        latent: str = "z",
    ):
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.beta = check_number("beta", beta, at_least=0)
        self.alpha = check_number("alpha", alpha, at_least=0)
        self.gamma = check_number("gamma", gamma, at_least=0)
        self.estimator, self.latent = estimator, latent
        super().__init__(num_particles=1, max_plate_nesting=1)

    def check_vae(self, vae: Any) -> None:
        """Refuse a VAE whose class does not support ``"tc_decomposition"``."""
        vae.require(TC_DECOMPOSITION, instead=self.instead)

    def terms(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """One draw's terms per item, shape ``(B,)`` (``mi``, ``tc``, ``dimwise_kl``,
        ``kl``, in nats), with ``reconstruction_sum`` (the observed sites' log-probability
        summed over the minibatch and scaled by N/B), ``num_data`` (N), ``scale`` (N/B)
        and ``kl_weight``."""
        require_from(model, TC_DECOMPOSITION, self.instead)
        model_trace, guide_trace = self._get_trace(model, guide, args, kwargs)
        site = latent_site(guide_trace, self.latent)
        z = site["value"]
        num_data, scale, weight = plate_and_weight(model_trace.nodes[self.latent])
        log_q = pairwise_log_prob(site["fn"], z)
        log_p = model_trace.nodes[self.latent]["fn"].log_prob(z)
        out: dict[str, Any] = kl_decomposition(log_q, log_p, num_data, self.estimator)
        observed = 0.0
        for name, s in model_trace.nodes.items():
            if s["type"] == "sample" and name != self.latent:
                observed = observed + s["log_prob_sum"]
        out.update(reconstruction_sum=observed, num_data=num_data, scale=scale, kl_weight=weight)
        return out

    def _get_trace(self, model: Any, guide: Any, args: tuple, kwargs: dict):
        """The guide's trace and the model's replayed on it, log-probabilities computed."""
        return get_importance_trace("flat", self.max_plate_nesting, model, guide, args, kwargs)

    def differentiable_loss(self, model: Any, guide: Any, *args: Any, **kwargs: Any):
        """The loss (nats, the minibatch scaled to ``num_data`` items), differentiable."""
        t = self.terms(model, guide, *args, **kwargs)
        penalty = self.alpha * t["mi"] + self.beta * t["tc"] + self.gamma * t["dimwise_kl"]
        loss = -t["reconstruction_sum"] + t["scale"] * t["kl_weight"] * penalty.sum()
        warn_if_nan(loss, "loss")
        return loss

    def loss(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> float:
        """The loss as a float, without gradients."""
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> float:
        """The loss, after back-propagating its gradient into the parameters."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return torch_item(loss)

"""Evaluation: importance-sampled log-likelihood, the ELBO's two terms, bits per dimension,
active latent units, KL per latent dimension and the inference gaps of q(z|x).

The numbers come from the one estimator, :mod:`pyvae.models.estimator`: Pyro traces of
``vae.guide`` and ``vae.model`` run inside an extra ``pyro.plate("particles", S,
dim=-2)``, so S draws of z for a batch of B items are scored in one vectorised pass, for
any prior and likelihood (also your own). A variant's side information (labels, a
context) is passed to both by name, as in ``fit``. A VAE that supports ``"fast_path"``
(:mod:`pyvae.capabilities`) takes a faster path with the same numbers: its parts are
called directly, without recording traces.
"""

from __future__ import annotations

import math
from typing import Any

import pyro.distributions as dist
import torch

from .capabilities import CLOSED_FORM_KL, EVALUATE, POSTERIOR_INFERENCE
from .checks import check_int, check_number, finite_or_raise
from .models.estimator import MAX_ELEMENTS, per_item, scorer
from .posterior import proposal_bounds, refine

__all__ = [
    "log_weights",
    "log_likelihood",
    "elbo_terms",
    "bits_per_dim",
    "active_units",
    "kl_per_dim",
    "inference_gaps",
    "MAX_ELEMENTS",
]

_INSTEAD = "use the VAE's own elbo() and log_likelihood()"


@torch.no_grad()
def log_weights(vae, x: torch.Tensor, num_samples: int, **side: Any) -> torch.Tensor:
    """log p(x, z_s) - log q(z_s | x) for ``num_samples`` draws z_s ~ q(z|x) of each item of
    the batch ``x``: shape ``(num_samples, B)``. ``side``: a variant's side information
    for the batch by name (e.g. ``c=...``, one per item), passed to its model and guide."""
    vae.require(EVALUATE, instead=_INSTEAD)
    recon, kl = scorer(vae, x, **side)(num_samples)
    return recon - kl


@torch.no_grad()
def log_likelihood(
    vae,
    data: Any,
    num_samples: int = 1000,
    batch_size: int = 64,
    max_elements: int = MAX_ELEMENTS,
    **side: Any,
) -> torch.Tensor:
    """Importance-sampled estimate of log p(x) for each item, in nats: shape ``(N,)``.

    ``log p(x) ~ logsumexp_s [log p(x, z_s) - log q(z_s|x)] - log S`` with S =
    ``num_samples`` draws from the encoder's q(z|x) (Burda et al. 2016). It is a
    stochastic lower bound whose expectation rises towards log p(x) as S grows; S = 1 is the
    ELBO. Draws are scored ``batch_size`` items at a time in chunks of as many draws as
    keep decoder outputs under ``max_elements`` values, so S = 5000 fits in memory.
    ``side``: a variant's side information by name, if not in ``data``'s targets.
    """
    vae.require(EVALUATE, instead=_INSTEAD)
    return vae.log_likelihood(data, num_samples, batch_size, max_elements, **side)


@torch.no_grad()
def elbo_terms(
    vae, data: Any, num_samples: int = 1, batch_size: int = 256, **side: Any
) -> dict[str, torch.Tensor]:
    """The ELBO of each item and its two terms, in nats, each of shape ``(N,)``:
    ``reconstruction`` = E_q[log p(x|z)] and ``kl`` = E_q[log q(z|x) - log p(z)] (Monte
    Carlo with ``num_samples`` draws), ``elbo = reconstruction - kl``."""
    vae.require(EVALUATE, instead=_INSTEAD)
    bounds = per_item(vae, data, num_samples, batch_size, **side)
    recon = finite_or_raise(bounds.reconstruction, "the reconstruction term")
    kl = finite_or_raise(bounds.kl, "the KL term")
    return {"elbo": recon - kl, "reconstruction": recon, "kl": kl}


def bits_per_dim(nats: torch.Tensor | float, input_shape: tuple[int, ...]) -> torch.Tensor | float:
    """Convert a log-likelihood or ELBO in nats per example to bits per data dimension
    (the negative, so lower is better): ``-nats / (D ln 2)``."""
    return -nats / (math.prod(input_shape) * math.log(2))


@torch.no_grad()
def active_units(vae, data: Any, threshold: float = 0.01, **side: Any) -> tuple[int, torch.Tensor]:
    """Active latent units (Burda et al. 2016): dimension d is active when
    ``Var_x(E_q[z_d | x]) > threshold``. Returns the count and the variances ``(z_dim,)``.
    ``side``: a variant's side information by name, if not in ``data``'s targets."""
    means = vae.encode(data, **side).mean
    if len(means) < 2:
        raise ValueError("active_units needs at least two items")
    variance = means.var(0)
    return int((variance > threshold).sum()), variance


@torch.no_grad()
def kl_per_dim(vae, data: Any, **side: Any) -> torch.Tensor:
    """Average KL(q(z_d|x) || p(z_d)) per latent dimension, in nats: shape ``(z_dim,)``.

    Closed form; needs a VAE that supports ``"closed_form_kl"`` (a diagonal normal
    q(z|x)) and a prior that factorises over dimensions into normals (as
    ``StandardNormal``). Their sum is the average KL term of the ELBO. ``side``: a
    variant's side information by name, if not in ``data``'s targets.
    """
    vae.require(CLOSED_FORM_KL, instead="use elbo_terms for its total KL")
    prior = vae.p_z()
    base = getattr(prior, "base_dist", None)
    if not isinstance(base, torch.distributions.Normal):
        raise ValueError(
            f"kl_per_dim needs a prior that factorises into normals per dimension; "
            f"{type(vae.prior).__name__} does not (use elbo_terms for the total KL)"
        )
    q = vae.encode(data, **side).base_dist
    p = torch.distributions.Normal(base.loc.expand(q.loc.shape), base.scale.expand(q.loc.shape))
    return torch.distributions.kl_divergence(q, p).mean(0)


def inference_gaps(
    vae,
    data: Any,
    num_samples: int = 1000,
    steps: int = 300,
    lr: float = 0.1,
    num_particles: int = 8,
    batch_size: int = 100,
    **side: Any,
) -> dict[str, torch.Tensor]:
    """How good is q(z|x)? The inference gaps of each item (Cremer, Li & Duvenaud 2018),
    in nats, each of shape ``(N,)``:

    - ``elbo_amortized``: the ELBO of the encoder's q(z|x);
    - ``elbo_optimal``: the ELBO of the best diagonal Gaussian for the item, fitted by
      ``steps`` steps of SVI from the encoder's (:func:`pyvae.posterior.refine`, with
      ``num_particles`` draws a step and learning rate ``lr``), ``batch_size`` items in
      one SVI over local ``(B, z_dim)`` parameters; the encoder's q where that scores
      higher (SVI's Monte Carlo noise can end a little below a start that was optimal);
    - ``log_likelihood``: importance-sampled log p(x) with that optimal Gaussian as the
      proposal (as Cremer et al. use their optimised q), and
      ``log_likelihood_amortized``, the same with the encoder's q (``vae.log_likelihood``'s
      estimate); each a stochastic lower bound on log p(x);
    - ``approximation_gap = log_likelihood - elbo_optimal`` (the family's limit, the KL
      from the best Gaussian to p(z|x)) and ``amortization_gap = elbo_optimal -
      elbo_amortized`` (the encoder's share).

    Every bound is estimated with ``num_samples`` draws per item. ``side``: a variant's
    side information by name, if not in ``data``'s targets.
    """
    vae.require(POSTERIOR_INFERENCE, instead="use elbo_terms and log_likelihood")
    num_samples = check_int("num_samples", num_samples)
    steps, num_particles = check_int("steps", steps, 0), check_int("num_particles", num_particles)
    lr = check_number("lr", lr, above=0)
    keys = ("elbo_amortized", "elbo_optimal", "log_likelihood_amortized", "log_likelihood")
    out: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    for xb, sb in vae._batches(data, batch_size, validate_support=True, **side):
        with torch.no_grad():
            amortized = dist.Normal(*vae._q_params(xb, **sb)).to_event(1)
        fitted = refine(vae, xb, steps, lr, num_particles, start=amortized, **sb)
        a = proposal_bounds(vae, xb, amortized, num_samples, **sb)
        o = proposal_bounds(vae, xb, fitted, num_samples, **sb)
        kept = o.elbo >= a.elbo  # the best Gaussian found: SVI's noise may end below its start
        values = (a.elbo, torch.where(kept, o.elbo, a.elbo), a.log_likelihood)
        values += (torch.where(kept, o.log_likelihood, a.log_likelihood),)
        for key, value in zip(keys, values, strict=True):
            out[key].append(finite_or_raise(value, key.replace("_", " ")))
    gaps = {k: torch.cat(v) for k, v in out.items()}
    gaps["approximation_gap"] = gaps["log_likelihood"] - gaps["elbo_optimal"]
    gaps["amortization_gap"] = gaps["elbo_optimal"] - gaps["elbo_amortized"]
    return gaps

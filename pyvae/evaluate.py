"""Evaluation: importance-sampled log-likelihood, the ELBO's two terms, bits per dimension,
active latent units and KL per latent dimension.

Everything works from Pyro traces of ``vae.guide`` and ``vae.model`` run inside an extra
``pyro.plate("particles", S, dim=-2)``, so S draws of z for a batch of B items are
scored in one vectorised pass, for any prior and likelihood (also your own).
"""

from __future__ import annotations

import math
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from .checks import check_int, finite_or_raise
from .model import VAE

__all__ = [
    "log_weights",
    "log_likelihood",
    "elbo_terms",
    "bits_per_dim",
    "active_units",
    "kl_per_dim",
]

#: Default bound on decoder-output elements per vectorised pass (~128 MB of float32).
MAX_ELEMENTS = 2**25


def _sites(trace) -> list[dict]:
    return [s for s in trace.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)]


def _traces(vae, x: torch.Tensor, num_samples: int):
    """Guide and replayed model traces with ``num_samples`` particles, log-probs computed."""
    with pyro.plate("particles", num_samples, dim=-2):
        guide_trace = poutine.trace(vae.guide).get_trace(x)
        model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    return model_trace, guide_trace


@torch.no_grad()
def log_weights(vae, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """log p(x, z_s) - log q(z_s | x) for ``num_samples`` draws z_s ~ q(z|x) of each item of
    the batch ``x``: shape ``(num_samples, B)``."""
    model_trace, guide_trace = _traces(vae, x, num_samples)
    shape = (num_samples, len(x))
    out = torch.zeros(shape, device=x.device)
    for site in _sites(model_trace):
        out = out + site["log_prob"].expand(shape)
    for site in _sites(guide_trace):
        out = out - site["log_prob"].expand(shape)
    return out


def _chunk(vae, batch: int, num_samples: int, max_elements: int) -> int:
    per_draw = batch * math.prod(vae.input_shape) * getattr(vae.likelihood, "params_per_value", 1)
    return max(1, min(num_samples, max_elements // max(per_draw, 1)))


@torch.no_grad()
def log_likelihood(
    vae,
    data: Any,
    num_samples: int = 1000,
    batch_size: int = 64,
    max_elements: int = MAX_ELEMENTS,
) -> torch.Tensor:
    """Importance-sampled estimate of log p(x) for each item, in nats: shape ``(N,)``.

    ``log p(x) ~ logsumexp_s [log p(x, z_s) - log q(z_s|x)] - log S`` with S =
    ``num_samples`` draws from the encoder's q(z|x) (Burda et al. 2016). It is a
    stochastic lower bound whose expectation rises towards log p(x) as S grows; S = 1 is the
    ELBO. Draws are scored ``batch_size`` items at a time in chunks of as many draws as
    keep decoder outputs under ``max_elements`` values, so S = 5000 fits in memory.
    """
    check_int("num_samples", num_samples)
    check_int("batch_size", batch_size)
    check_int("max_elements", max_elements)
    out = []
    for xb in vae._batches(data, batch_size, validate_support=True):
        chunk = _chunk(vae, len(xb), num_samples, max_elements)
        pieces = []
        for start in range(0, num_samples, chunk):
            s = min(chunk, num_samples - start)
            pieces.append(torch.logsumexp(log_weights(vae, xb, s), dim=0))
        ll = torch.logsumexp(torch.stack(pieces), dim=0) - math.log(num_samples)
        out.append(finite_or_raise(ll, "the log-likelihood"))
    return torch.cat(out)


@torch.no_grad()
def elbo_terms(
    vae, data: Any, num_samples: int = 1, batch_size: int = 256
) -> dict[str, torch.Tensor]:
    """The ELBO of each item and its two terms, in nats, each of shape ``(N,)``:
    ``reconstruction`` = E_q[log p(x|z)] and ``kl`` = E_q[log q(z|x) - log p(z)] (Monte
    Carlo with ``num_samples`` draws), ``elbo = reconstruction - kl``."""
    check_int("num_samples", num_samples)
    check_int("batch_size", batch_size)
    recon, kl = [], []
    for xb in vae._batches(data, batch_size, validate_support=True):
        model_trace, guide_trace = _traces(vae, xb, num_samples)
        shape = (num_samples, len(xb))
        r = torch.zeros(shape, device=xb.device)
        k = torch.zeros(shape, device=xb.device)
        for site in _sites(model_trace):
            if site["is_observed"]:
                r = r + site["log_prob"].expand(shape)
            else:
                k = k - site["log_prob"].expand(shape)
        for site in _sites(guide_trace):
            k = k + site["log_prob"].expand(shape)
        recon.append(finite_or_raise(r.mean(0), "the reconstruction term"))
        kl.append(finite_or_raise(k.mean(0), "the KL term"))
    recon_t, kl_t = torch.cat(recon), torch.cat(kl)
    return {"elbo": recon_t - kl_t, "reconstruction": recon_t, "kl": kl_t}


def bits_per_dim(nats: torch.Tensor | float, input_shape: tuple[int, ...]) -> torch.Tensor | float:
    """Convert a log-likelihood or ELBO in nats per example to bits per data dimension
    (the negative, so lower is better): ``-nats / (D ln 2)``."""
    return -nats / (math.prod(input_shape) * math.log(2))


@torch.no_grad()
def active_units(vae, data: Any, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Active latent units (Burda et al. 2016): dimension d is active when
    ``Var_x(E_q[z_d | x]) > threshold``. Returns the count and the variances ``(z_dim,)``."""
    means = vae.encode(data).mean
    if len(means) < 2:
        raise ValueError("active_units needs at least two items")
    variance = means.var(0)
    return int((variance > threshold).sum()), variance


@torch.no_grad()
def kl_per_dim(vae, data: Any) -> torch.Tensor:
    """Average KL(q(z_d|x) || p(z_d)) per latent dimension, in nats: shape ``(z_dim,)``.

    Closed form; needs a prior that factorises over dimensions into normals (as
    ``StandardNormal``). Their sum is the average KL term of the ELBO.
    """
    if type(vae).model is not VAE.model or type(vae).guide is not VAE.guide:
        raise ValueError(
            f"kl_per_dim needs pyvae.VAE's own model and guide (a diagonal normal q(z|x)); "
            f"{type(vae).__name__} has others: use elbo_terms for its total KL"
        )
    prior = vae.prior(vae.encoder)
    base = getattr(prior, "base_dist", None)
    if not isinstance(base, torch.distributions.Normal):
        raise ValueError(
            f"kl_per_dim needs a prior that factorises into normals per dimension; "
            f"{type(vae.prior).__name__} does not (use elbo_terms for the total KL)"
        )
    q = vae.encode(data).base_dist
    p = torch.distributions.Normal(base.loc.expand(q.loc.shape), base.scale.expand(q.loc.shape))
    return torch.distributions.kl_divergence(q, p).mean(0)

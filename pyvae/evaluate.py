"""Evaluation: importance-sampled log-likelihood, the ELBO's two terms, bits per dimension,
active latent units and KL per latent dimension.

Everything works from Pyro traces of ``vae.guide`` and ``vae.model`` run inside an extra
``pyro.plate("particles", S, dim=-2)``, so S draws of z for a batch of B items are
scored in one vectorised pass, for any prior and likelihood (also your own). A variant's
side information (labels, a context) is passed to both by name, as in ``fit``. A plain
:class:`~pyvae.VAE` (model and guide not overridden) takes a faster path with the same
numbers: its parts are called directly, without recording traces (where the VAE supports
``"fast_path"``, :mod:`pyvae.capabilities`).
"""

from __future__ import annotations

import math
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from .capabilities import CLOSED_FORM_KL, EVALUATE, FAST_PATH
from .checks import check_int, finite_or_raise

__all__ = [
    "log_weights",
    "log_likelihood",
    "elbo_terms",
    "bits_per_dim",
    "active_units",
    "kl_per_dim",
]

_INSTEAD = "use the VAE's own elbo() and log_likelihood()"

#: Default bound on decoder-output elements per vectorised pass (~128 MB of float32).
MAX_ELEMENTS = 2**25


def _sites(trace) -> list[dict]:
    return [s for s in trace.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)]


def _traces(vae, x: torch.Tensor, num_samples: int, **side: Any):
    """Guide and replayed model traces with ``num_samples`` particles, log-probs computed."""
    with pyro.plate("particles", num_samples, dim=-2):
        guide_trace = poutine.trace(vae.guide).get_trace(x, **side)
        model = poutine.replay(vae.model, trace=guide_trace)
        model_trace = poutine.trace(model).get_trace(x, **side)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    for site in _sites(model_trace) + _sites(guide_trace):
        if site["log_prob"].shape[-1:] not in ((), (1,), (len(x),)):
            raise ValueError(
                f"{type(vae).__name__}'s site {site['name']!r} does not hold one value per "
                f"item of the batch ({tuple(site['log_prob'].shape)}): pyvae.evaluate scores "
                "models whose sites lie in one plate over the batch; use the VAE's own "
                "elbo() and log_likelihood()"
            )
    return model_trace, guide_trace


def _scorer(vae, x: torch.Tensor, **side: Any):
    """A function ``score(num_samples) -> (log p(x|z_s), log q(z_s|x) - log p(z_s))`` for
    fresh draws z_s ~ q(z|x) of each item of the batch ``x``, each of shape
    ``(num_samples, B)``.

    For a plain :class:`~pyvae.VAE` the terms come straight from its parts (as
    :class:`~pyvae.objectives.DirectELBO` computes them, with the same draws as the traced
    path), q(z|x) and p(z) built once for the batch; otherwise from Pyro traces of its
    guide and model, which holds for any model and guide."""
    if side or not vae.supports(FAST_PATH):  # side: a variant's side information
        return lambda num_samples: _traced_terms(vae, x, num_samples, **side)
    loc, scale = vae.encoder(vae.likelihood.encoder_input(x))
    q = pyro.distributions.Normal(loc, scale).to_event(1)
    prior = vae.prior(vae.encoder)
    xf = x if x.is_floating_point() else x.float()

    def score(num_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = q.rsample((num_samples,))
        log_px = vae.likelihood(vae.decoder(z), len(vae.input_shape)).log_prob(xf)
        return log_px.expand(num_samples, len(x)), q.log_prob(z) - prior.log_prob(z)

    return score


def _traced_terms(
    vae, x: torch.Tensor, num_samples: int, **side: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (num_samples, len(x))
    model_trace, guide_trace = _traces(vae, x, num_samples, **side)
    recon = torch.zeros(shape, device=x.device)
    kl = torch.zeros(shape, device=x.device)
    for site in _sites(model_trace):
        if site["is_observed"]:
            recon = recon + site["log_prob"].expand(shape)
        else:
            kl = kl - site["log_prob"].expand(shape)
    for site in _sites(guide_trace):
        kl = kl + site["log_prob"].expand(shape)
    return recon, kl


@torch.no_grad()
def log_weights(vae, x: torch.Tensor, num_samples: int, **side: Any) -> torch.Tensor:
    """log p(x, z_s) - log q(z_s | x) for ``num_samples`` draws z_s ~ q(z|x) of each item of
    the batch ``x``: shape ``(num_samples, B)``. ``side``: a variant's side information
    for the batch by name (e.g. ``c=...``, one per item), passed to its model and guide."""
    vae.require(EVALUATE, instead=_INSTEAD)
    recon, kl = _scorer(vae, x, **side)(num_samples)
    return recon - kl


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
    check_int("num_samples", num_samples)
    check_int("batch_size", batch_size)
    check_int("max_elements", max_elements)
    out = []
    for xb, sb in vae._batches(data, batch_size, validate_support=True, **side):
        chunk = _chunk(vae, len(xb), num_samples, max_elements)
        score = _scorer(vae, xb, **sb)
        pieces = []
        for start in range(0, num_samples, chunk):
            recon, kl = score(min(chunk, num_samples - start))
            pieces.append(torch.logsumexp(recon - kl, dim=0))
        ll = torch.logsumexp(torch.stack(pieces), dim=0) - math.log(num_samples)
        out.append(finite_or_raise(ll, "the log-likelihood"))
    return torch.cat(out)


@torch.no_grad()
def elbo_terms(
    vae, data: Any, num_samples: int = 1, batch_size: int = 256, **side: Any
) -> dict[str, torch.Tensor]:
    """The ELBO of each item and its two terms, in nats, each of shape ``(N,)``:
    ``reconstruction`` = E_q[log p(x|z)] and ``kl`` = E_q[log q(z|x) - log p(z)] (Monte
    Carlo with ``num_samples`` draws), ``elbo = reconstruction - kl``."""
    vae.require(EVALUATE, instead=_INSTEAD)
    check_int("num_samples", num_samples)
    check_int("batch_size", batch_size)
    recon, kl = [], []
    for xb, sb in vae._batches(data, batch_size, validate_support=True, **side):
        r, k = _scorer(vae, xb, **sb)(num_samples)
        recon.append(finite_or_raise(r.mean(0), "the reconstruction term"))
        kl.append(finite_or_raise(k.mean(0), "the KL term"))
    recon_t, kl_t = torch.cat(recon), torch.cat(kl)
    return {"elbo": recon_t - kl_t, "reconstruction": recon_t, "kl": kl_t}


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
    prior = vae.prior(vae.encoder)
    base = getattr(prior, "base_dist", None)
    if not isinstance(base, torch.distributions.Normal):
        raise ValueError(
            f"kl_per_dim needs a prior that factorises into normals per dimension; "
            f"{type(vae.prior).__name__} does not (use elbo_terms for the total KL)"
        )
    q = vae.encode(data, **side).base_dist
    p = torch.distributions.Normal(base.loc.expand(q.loc.shape), base.scale.expand(q.loc.shape))
    return torch.distributions.kl_divergence(q, p).mean(0)

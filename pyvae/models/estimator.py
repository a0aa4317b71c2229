"""The one estimator of a VAE's bounds: per item, the ELBO's two terms and the
importance-sampled log-likelihood, from S draws of the latents.

- A *scorer* ``score(n) -> (recon, kl)`` draws n fresh latents z_s ~ q(z|x) for each
  item of a batch and gives log p(x|z_s) and log q(z_s|x) - log p(z_s), each of shape
  ``(n, *batch)``. :func:`scorer` makes one from Pyro traces of a VAE's guide and model
  run inside a ``pyro.plate("particles", n, dim=-2)`` (any model whose sites lie in the
  plate ``"data"``, your own prior and likelihood included) or, for a VAE that supports
  ``"fast_path"`` (:mod:`pyvae.capabilities`), straight from its parts with the same
  draws and no traces (:func:`direct_scorer`).
- :func:`estimate` scores S draws in chunks of as many as the memory budget allows
  (:func:`chunk_size`) and returns the :class:`Bounds` of each item: the mean of each
  term and ``logsumexp_s [log p(x, z_s) - log q(z_s|x)] - log S`` (Burda et al. 2016).
- :func:`per_item` runs a VAE's :meth:`~pyvae.VAE.bounds` over data, batch by batch:
  ``VAE.elbo``, ``VAE.log_likelihood``, :mod:`pyvae.evaluate` and :mod:`pyvae.anomaly`
  all read their numbers from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ..capabilities import FAST_PATH
from ..checks import check_int

__all__ = [
    "MAX_ELEMENTS",
    "Bounds",
    "Scorer",
    "scorer",
    "direct_scorer",
    "traced_terms",
    "chunk_size",
    "estimate",
    "per_item",
]

#: Default bound on decoder-output elements per vectorised pass (~128 MB of float32).
MAX_ELEMENTS = 2**25

#: ``score(n) -> (log p(x|z_s), log q(z_s|x) - log p(z_s))``, each ``(n, *batch)``.
Scorer = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


class Bounds(NamedTuple):
    """Per-item estimates in nats, each of shape ``(*batch,)``: ``reconstruction`` =
    E_q[log p(x|z)], ``kl`` = E_q[log q(z|x) - log p(z)] (Monte Carlo means) and
    ``log_likelihood``, the importance-sampled log p(x); :attr:`elbo` is their ELBO."""

    reconstruction: torch.Tensor
    kl: torch.Tensor
    log_likelihood: torch.Tensor

    @property
    def elbo(self) -> torch.Tensor:
        return self.reconstruction - self.kl


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


def traced_terms(
    vae, x: torch.Tensor, num_samples: int, **side: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """The scorer's terms from Pyro traces: observed sites make the reconstruction term,
    latent sites of the model and guide the KL term; each ``(num_samples, B)``."""
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


def direct_scorer(
    q: dist.TorchDistribution,
    prior: dist.TorchDistribution,
    px: Callable[[torch.Tensor], dist.TorchDistribution],
    x: torch.Tensor,
) -> Scorer:
    """The scorer of draws ``z = q.rsample((n,))`` (the draws of SVI) from q(z|x) = ``q``
    (batch shape ``(*batch,)``), with p(z) = ``prior`` and p(x|z) = ``px(z)``, without
    traces."""

    def score(num_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = q.rsample((num_samples,))
        kl = q.log_prob(z) - prior.log_prob(z)
        return px(z).log_prob(x).expand(kl.shape), kl

    return score


def scorer(vae, x: torch.Tensor, **side: Any) -> Scorer:
    """The scorer of a batch ``x`` ``(B, *input_shape)`` (``side``: a variant's side
    information, one per item): from the parts of a VAE that supports ``"fast_path"``
    (q(z|x) and p(z) built once for the batch), else from Pyro traces of its guide and
    model, which holds for any model and guide with their sites in the plate ``"data"``."""
    if side or not vae.supports(FAST_PATH):  # the fast form takes no side information
        return lambda num_samples: traced_terms(vae, x, num_samples, **side)
    loc, scale = vae.encoder(vae.likelihood.encoder_input(x))
    q = dist.Normal(loc, scale).to_event(1)
    event_dims = len(vae.input_shape)
    xf = x if x.is_floating_point() else x.float()
    return direct_scorer(q, vae.p_z(), lambda z: vae.likelihood(vae.decoder(z), event_dims), xf)


def chunk_size(vae, items: int, num_samples: int, max_elements: int = MAX_ELEMENTS) -> int:
    """How many of ``num_samples`` draws for ``items`` decoder inputs each (a batch, or
    a batch times the classes) to score at once, keeping decoder outputs under
    ``max_elements`` values; at least 1."""
    params = getattr(vae.likelihood, "params_per_value", 1)
    per_draw = items * math.prod(vae.input_shape) * params
    return max(1, min(num_samples, max_elements // max(per_draw, 1)))


def estimate(score: Scorer, num_samples: int, chunk: int) -> Bounds:
    """The :class:`Bounds` from ``num_samples`` draws of ``score``, ``chunk`` at a time:
    the mean of each term, and ``logsumexp_s [recon_s - kl_s] - log S``."""
    recon = kl = 0.0
    pieces = []
    for start in range(0, num_samples, chunk):
        r, k = score(min(chunk, num_samples - start))
        recon, kl = recon + r.sum(0), kl + k.sum(0)
        pieces.append(torch.logsumexp(r - k, dim=0))
    log_likelihood = torch.logsumexp(torch.stack(pieces), dim=0) - math.log(num_samples)
    return Bounds(recon / num_samples, kl / num_samples, log_likelihood)


@torch.no_grad()
def per_item(
    vae,
    data: Any,
    num_samples: int,
    batch_size: int,
    max_elements: int = MAX_ELEMENTS,
    **side: Any,
) -> Bounds:
    """The :class:`Bounds` of every item of ``data`` (each ``(N,)``): ``vae.bounds`` of
    ``batch_size`` items at a time, with ``num_samples`` draws each (data checked whole
    first, the likelihood's support included; ``side``: a variant's side information by
    name, if not in ``data``'s targets)."""
    check_int("num_samples", num_samples)
    check_int("batch_size", batch_size)
    check_int("max_elements", max_elements)
    out = [
        vae.bounds(xb, num_samples, max_elements, **sb)
        for xb, sb in vae._batches(data, batch_size, validate_support=True, **side)
    ]
    return Bounds(*(torch.cat(terms) for terms in zip(*out, strict=True)))

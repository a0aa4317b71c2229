"""The posterior p(z|x) of a trained VAE, item by item.

Because the VAE is a Pyro program, p(z|x) ∝ p(z) p(x|z) can be studied directly:

- :func:`refine` fits a diagonal Gaussian q(z) to each item of a batch by SVI on local
  parameters, a loc and a scale per item ``(B, z_dim)`` started at the encoder's: the
  semi-amortized refinement of Kim et al. (2018) (``vae.encode(x, refine_steps=...)``)
  and, run long, the optimal Gaussian of :func:`pyvae.evaluate.inference_gaps`. The loss
  is the sum of the per-item negative ELBOs (``pyro.infer.Trace_ELBO``), separable over
  items, and Adam's update is per coordinate, so one SVI over B items is B independent
  optimisations. The local parameters are plain tensors: nothing enters Pyro's parameter
  store, and only they are differentiated: the VAE's own parameters get no gradient and
  do not change.
- :func:`proposal_bounds` scores a batch under any proposal q(z) for z (the encoder's, a
  refined one): the ELBO's terms and the importance-sampled log p(x), through
  :func:`pyvae.models.estimator.estimate`, the one estimator of pyvae's bounds.
- :func:`posterior_samples` draws from p(z|x) itself with Pyro's ``MCMC`` and ``NUTS`` on
  the log joint of the VAE's model (x observed, the decoder fixed): one MCMC over a small
  batch, since the items are independent given the decoder, with split r-hat and the
  effective sample size per latent coordinate (:mod:`pyro.ops.stats`).

Every function asks the VAE first (``vae.require("posterior_inference")``,
:mod:`pyvae.capabilities`): the model must have one continuous latent site ``"z"`` in the
plate ``"data"`` and q(z|x) a diagonal normal.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import HMC, MCMC, NUTS, Trace_ELBO
from pyro.ops.stats import effective_sample_size, split_gelman_rubin

from .capabilities import FAST_PATH, POSTERIOR_INFERENCE
from .checks import check_int, check_number
from .models.estimator import MAX_ELEMENTS, Bounds, chunk_size, estimate

__all__ = [
    "PosteriorSamples",
    "refine",
    "check_refinement",
    "proposal_bounds",
    "posterior_samples",
    "METHODS",
    "FINAL_LR",
]

#: :func:`refine`'s learning rate decays exponentially to this fraction of ``lr`` over its
#: steps: Adam's steps are about ``lr`` long whatever the gradient, so a constant rate
#: leaves the Monte Carlo gradient's jitter in the fitted q.
FINAL_LR = 0.01

#: The MCMC kernels :func:`posterior_samples` runs, by name.
METHODS = ("nuts", "hmc")

_INSTEAD = "use a VAE (or a class that declares 'posterior_inference')"


def _require(vae) -> None:
    vae.require(POSTERIOR_INFERENCE, instead=_INSTEAD)


def _batch(vae, x: Any, **side: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``x`` checked whole (support included) as one batch on the VAE's device."""
    parts = list(vae._batches(x, 2**31 - 1, validate_support=True, **side))
    return parts[0]


def check_refinement(
    vae, steps: int, lr: float, num_particles: int = 1, prefix: str = ""
) -> tuple[int, float, int]:
    """:func:`refine`'s settings checked, the VAE asked first: ``steps`` an integer >= 0,
    ``lr`` > 0, ``num_particles`` >= 1 (named ``prefix + name`` in the errors)."""
    _require(vae)
    steps = check_int(prefix + "steps", steps, minimum=0)
    lr = check_number(prefix + "lr", lr, above=0)
    return steps, lr, check_int(prefix + "num_particles", num_particles)


def refine(
    vae,
    x: torch.Tensor,
    steps: int,
    lr: float = 5e-2,
    num_particles: int = 1,
    start: dist.TorchDistribution | None = None,
    **side: Any,
) -> dist.TorchDistribution:
    """A diagonal Gaussian q(z) fitted to each item of the batch ``x`` ``(B, *input_shape)``
    by ``steps`` steps of SVI (``Trace_ELBO`` with ``num_particles`` draws, Adam with
    learning rate ``lr`` decaying to ``FINAL_LR * lr``) on local parameters, a loc and a
    log-scale ``(B, z_dim)``, started at ``start`` (default: the encoder's q(z|x)). Returns
    ``Normal(loc, scale).to_event(1)``, batch shape ``(B,)``, detached. ``side``: the
    batch's side information by name (a variant's), as its model takes it."""
    steps, lr, num_particles = check_refinement(vae, steps, lr, num_particles)
    if start is None:
        with torch.no_grad():
            start = dist.Normal(*vae._q_params(x, **side)).to_event(1)
    base = start.base_dist if isinstance(start, dist.Independent) else start
    loc = base.loc.detach().clone().requires_grad_(True)
    log_scale = base.scale.detach().log().clone().requires_grad_(True)

    def guide(x: torch.Tensor, **side: Any) -> torch.Tensor:
        with vae._plate(len(x), None, x.device):
            return pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))

    # the model's sites lie in the one plate "data" (what "posterior_inference" declares)
    elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1)
    local = [loc, log_scale]
    optim = torch.optim.Adam(local, lr=lr)
    decay = torch.optim.lr_scheduler.ExponentialLR(optim, FINAL_LR ** (1 / max(steps, 1)))
    with torch.enable_grad():
        for _ in range(steps):  # gradients to the local parameters only: the VAE's stay
            loss = elbo.differentiable_loss(vae.model, guide, x, **side)
            loc.grad, log_scale.grad = torch.autograd.grad(loss, local)
            optim.step()
            decay.step()
    return dist.Normal(loc.detach(), log_scale.detach().exp()).to_event(1)


def _log_joint_terms(
    vae, x: torch.Tensor, z: torch.Tensor, **side: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x|z) and log p(z) of codes ``z`` ``(n, B, z_dim)`` for the batch ``x``, each
    ``(n, B)``: from the parts where the VAE supports ``"fast_path"``, else from a trace of
    its model with ``"z"`` conditioned on ``z``."""
    if not side and vae.supports(FAST_PATH):
        xf = x if x.is_floating_point() else x.float()
        px = vae.likelihood(vae.decoder(z), len(vae.input_shape))
        return px.log_prob(xf), vae.p_z().log_prob(z)
    shape = z.shape[:-1]
    with pyro.plate("particles", z.shape[0], dim=-2):
        model = poutine.condition(vae.model, data={"z": z})
        trace = poutine.trace(model).get_trace(x, **side)
    trace.compute_log_prob()
    recon = torch.zeros(shape, device=z.device)
    log_prior = torch.zeros(shape, device=z.device)
    for site in trace.stochastic_nodes + trace.observation_nodes:
        node = trace.nodes[site]
        if node["name"] == "z":
            log_prior = log_prior + node["log_prob"].expand(shape)
        elif node["is_observed"]:
            recon = recon + node["log_prob"].expand(shape)
    return recon, log_prior


@torch.no_grad()
def proposal_bounds(
    vae,
    x: torch.Tensor,
    q: dist.TorchDistribution,
    num_samples: int,
    max_elements: int = MAX_ELEMENTS,
    **side: Any,
) -> Bounds:
    """The ELBO's terms and the importance-sampled log p(x) of each item of the batch
    ``x`` ``(B, *input_shape)`` with ``num_samples`` draws from the proposal ``q`` (batch
    ``(B,)``, event ``(z_dim,)``: the encoder's q(z|x), a :func:`refine`-d one, any
    distribution with ``sample`` and ``log_prob``), each ``(B,)`` in nats
    (:class:`pyvae.models.estimator.Bounds`; ``reconstruction - kl`` is the ELBO of ``q``)."""
    _require(vae)
    num_samples = check_int("num_samples", num_samples)

    def score(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = q.sample((n,))
        recon, log_prior = _log_joint_terms(vae, x, z, **side)
        return recon, q.log_prob(z) - log_prior

    return estimate(score, num_samples, chunk_size(vae, len(x), num_samples, max_elements))


class PosteriorSamples(NamedTuple):
    """Draws of z from p(z|x) for a batch of B items and their diagnostics:
    ``samples`` ``(num_chains * num_samples, B, z_dim)`` (the chains one after another),
    ``chains`` ``(num_chains, num_samples, B, z_dim)``, ``r_hat`` and ``ess`` (split
    Gelman-Rubin and the effective sample size over all chains) ``(B, z_dim)``, and
    ``divergences``, the count of divergent transitions after warm-up, all chains."""

    samples: torch.Tensor
    chains: torch.Tensor
    r_hat: torch.Tensor
    ess: torch.Tensor
    divergences: int


def _kernel(method: str, potential):
    if method == "nuts":
        return NUTS(potential_fn=potential)
    return HMC(potential_fn=potential, num_steps=10)


def posterior_samples(
    vae,
    x: Any,
    method: str = "nuts",
    num_samples: int = 500,
    warmup_steps: int = 500,
    num_chains: int = 1,
    **side: Any,
) -> PosteriorSamples:
    """Draw from the exact posterior p(z|x) ∝ p(z) p(x|z) of each item of ``x`` (a small
    batch, ``(B, *input_shape)``) by MCMC: Pyro's ``NUTS`` (``method="nuts"``) or ``HMC``
    on the log joint of the VAE's model with x observed and the VAE's parameters fixed,
    ``warmup_steps`` steps of adaptation then ``num_samples`` draws per chain. The chain
    moves in coordinates whitened by the encoder's q(z|x), z = loc + scale * w: the
    target is unchanged (a linear map), but its scale is about one whatever the width of
    the posterior, so the sampler's step size and trees stay small. The ``num_chains``
    chains run one after the other (no processes), the first started at the encoder's
    mean (w = 0), the others at draws from q(z|x). Returns :class:`PosteriorSamples`.
    ``side``: a variant's side information by name."""
    _require(vae)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    num_samples = check_int("num_samples", num_samples, minimum=4)  # split r-hat needs 4
    warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
    num_chains = check_int("num_chains", num_chains)
    xb, sb = _batch(vae, x, **side)
    with torch.no_grad():
        loc, scale = vae._q_params(xb, **sb)

    def potential(params: dict[str, torch.Tensor]) -> torch.Tensor:
        z = loc + scale * params["w"]  # whitened by q: the sampler sees scales near 1
        recon, log_prior = _log_joint_terms(vae, xb, z[None], **sb)
        return -(recon + log_prior).sum()  # -log p(x, z), up to the constant log|dz/dw|

    chains, divergences = [], 0
    for chain in range(num_chains):  # NUTS differentiates with respect to w alone
        w0 = torch.zeros_like(loc) if chain == 0 else torch.randn_like(loc)
        mcmc = MCMC(
            _kernel(method, potential),
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            initial_params={"w": w0},
            disable_progbar=True,
        )
        mcmc.run()
        chains.append((loc + scale * mcmc.get_samples()["w"]).detach())
        divergences += len(mcmc.diagnostics()["divergences"]["chain 0"])
    stacked = torch.stack(chains)  # (C, S, B, z_dim)
    return PosteriorSamples(
        samples=stacked.reshape(-1, *stacked.shape[2:]),
        chains=stacked,
        r_hat=split_gelman_rubin(stacked, chain_dim=0, sample_dim=1),
        ess=effective_sample_size(stacked, chain_dim=0, sample_dim=1),
        divergences=divergences,
    )

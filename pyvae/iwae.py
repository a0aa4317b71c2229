"""Importance-weighted training: the IWAE bound (Burda et al. 2016) as a Pyro ELBO.

For each data item x_b and K draws z_kb ~ q(z|x_b),

    L_K(x_b) = logsumexp_k [log p(x_b, z_kb) - log q(z_kb|x_b)] - log K,

a lower bound on log p(x_b) that rises with K (K = 1 is the ELBO). :class:`IWAE` returns
minus the sum of these per-datapoint bounds over the minibatch, scaled by the data
plate's N/B like every other loss in pyvae, so ``fit(vae, data, elbo=IWAE(50))`` trains
any model and guide whose sample sites all sit in the plate ``"data"``.

Why not ``pyro.infer.RenyiELBO(alpha=0)``? It computes the same per-datapoint bound when
the plate does not subsample, but it takes the logsumexp of log-weights that already
carry the plate's scale N/B (and the KL weight), i.e. ``logsumexp_k (N/B) w_kb`` instead
of ``(N/B) logsumexp_k w_kb``: with minibatches (``num_data=N``, as ``fit`` trains) it is
not the IWAE bound (``tests/test_iwae.py`` shows both).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pyro.infer.elbo import ELBO
from pyro.infer.enum import get_importance_trace
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.util import check_if_enumerated, warn_if_nan

from .checks import check_int

__all__ = ["IWAE"]


class IWAE(ELBO):
    """The importance-weighted bound with ``num_particles`` = K draws per data item.

    The K draws are vectorised (a particle plate outside all plates of the model). The
    log-weight of a draw sums the log-probabilities of every sample site of the model,
    minus those of the guide, each per data item: sites keep their own scales (so a KL
    weight beta < 1 from ``fit(beta=...)`` or a warm-up weights the latent sites inside
    the log-weight, and K = 1 is exactly ``Trace_ELBO``'s beta-weighted objective) but not
    the plate's minibatch scale N/B, which multiplies the sum of the bounds instead.

    Args:
        num_particles: K >= 1.
        plate: the name of the data plate (``"data"`` in pyvae's models).
        max_plate_nesting: as for Pyro's ELBOs (guessed from a first run by default).

    Use as any Pyro ELBO: ``fit(vae, data, elbo=IWAE(50))``, ``pyro.infer.SVI(model, guide,
    optim, IWAE(50))``, ``IWAE(5).loss(model, guide, x, num_data=N)``. The gradient is the
    plain reparameterised IWAE gradient; the guide's latent sites must have ``rsample``.
    """

    def __init__(
        self,
        num_particles: int = 50,
        plate: str = "data",
        max_plate_nesting: float = float("inf"),
    ):
        check_int("num_particles", num_particles)
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=True,
        )
        self.plate = plate

    def _guess_max_plate_nesting(self, model, guide, args, kwargs):
        # Pyro guesses by running the model and guide once; do it on a forked random
        # stream, so a seeded run draws the same z whether or not it guessed first.
        devices = {a.device for a in args if isinstance(a, torch.Tensor) and a.is_cuda}
        with torch.random.fork_rng(devices=list(devices)):
            super()._guess_max_plate_nesting(model, guide, args, kwargs)

    def _get_trace(self, model, guide, args, kwargs):
        model_trace, guide_trace = get_importance_trace(
            "flat", self.max_plate_nesting, model, guide, args, kwargs
        )
        if is_validation_enabled():
            check_if_enumerated(guide_trace)
        return model_trace, guide_trace

    def _site_terms(self, site: dict[str, Any], sign: float) -> tuple[torch.Tensor, float]:
        """``sign`` x the site's log-probability per particle and data item, shape
        ``(K, B)`` (``(1, B)`` for K = 1), without the plate's scale; and that scale."""
        frames = [f for f in site["cond_indep_stack"] if f.name == self.plate]
        if not frames or frames[0].dim is None:
            raise ValueError(
                f"IWAE needs every sample site inside the vectorised plate {self.plate!r} "
                f"(it weighs each data item separately); the site {site['name']!r} is not. "
                f"Name the data plate with IWAE(plate=...), or use Trace_ELBO()"
            )
        frame = frames[0]
        plate_scale = frame.full_size / frame.size
        log_prob = site["log_prob"] * (sign / plate_scale)
        nesting = self.max_plate_nesting
        log_prob = log_prob.reshape((1,) * (nesting - log_prob.dim()) + log_prob.shape)
        keep = [-nesting, frame.dim] if self.num_particles > 1 else [frame.dim]
        other = [d for d in range(-nesting, 0) if d not in keep]
        if other:
            log_prob = log_prob.sum(other)
        shape = (self.num_particles if self.num_particles > 1 else 1, frame.size)
        return log_prob.reshape(-1, log_prob.shape[-1]).expand(shape), plate_scale

    def differentiable_loss(self, model, guide, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Minus the sum over the minibatch of the per-datapoint IWAE bounds, times N/B."""
        ((model_trace, guide_trace),) = self._get_traces(model, guide, args, kwargs)
        log_weight, scales = 0.0, set()
        for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
            for site in trace.nodes.values():
                if site["type"] != "sample":
                    continue
                if sign < 0 and not site["fn"].has_rsample:
                    raise ValueError(
                        f"IWAE needs reparameterised guide sites; {site['name']!r} "
                        f"({type(site['fn']).__name__}) has no rsample"
                    )
                term, scale = self._site_terms(site, sign)
                log_weight = log_weight + term
                scales.add(scale)
        if not scales:
            raise ValueError("the model and guide have no sample sites")
        (scale,) = scales  # one data plate: the same N/B for every site
        bound = torch.logsumexp(log_weight, dim=0) - math.log(self.num_particles)
        loss = -bound.sum() * scale
        warn_if_nan(loss, "loss")
        return loss

    def loss(self, model, guide, *args: Any, **kwargs: Any) -> float:
        """Minus the IWAE bound of the minibatch (scaled to the dataset), as a float."""
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args: Any, **kwargs: Any) -> float:
        """The loss, after back-propagating its gradient into the parameters."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return torch_item(loss)

"""Training objectives beyond Pyro's own ELBO classes.

:class:`DirectELBO` is ``Trace_ELBO``'s single-sample estimator written straight from a
:class:`~pyvae.VAE`'s parts, without recording Pyro traces: the same draw of z (the same
``rsample`` call, so the same random numbers), the same scaling of the minibatch and of the
z sites, the same gradients. ``fit`` uses it by default where it is valid (a VAE
that supports ``"fast_path"``, :mod:`pyvae.capabilities`: a plain ``VAE`` whose
``model`` and ``guide`` are not overridden, with the default ELBO and optimizer) because
tracing costs time on every step; anything else goes through Pyro.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyro.distributions as dist
import torch

from .capabilities import FAST_PATH

if TYPE_CHECKING:
    from .models.vae import VAE

__all__ = ["DirectELBO"]


class DirectELBO:
    """``Trace_ELBO()`` for a :class:`~pyvae.VAE`, computed directly from its parts.

    Offers ``loss`` and ``loss_and_grads(model, guide, x, num_data=None, kl_weight=1.0)``
    like a Pyro ELBO (``model`` and ``guide`` must be the VAE's own). The VAE must
    support ``"fast_path"`` (else a :class:`~pyvae.capabilities.CapabilityError`).
    """

    def __init__(self, vae: VAE):
        vae.require(FAST_PATH, instead="use pyro.infer.Trace_ELBO() for other models")
        self.vae = vae

    @staticmethod
    def valid_for(vae: VAE) -> bool:
        """True when the VAE's class declares the model and guide this objective
        reproduces: ``vae.supports("fast_path")``."""
        return vae.supports(FAST_PATH)

    def differentiable_loss(
        self, x: torch.Tensor, num_data: int | None = None, kl_weight: float = 1.0
    ) -> torch.Tensor:
        """-ELBO of the minibatch ``x`` scaled to ``num_data`` items (one draw of z)."""
        vae = self.vae
        if not x.is_floating_point():
            x = x.float()
        loc, scale = vae.encoder(vae.likelihood.encoder_input(x))
        q = dist.Normal(loc, scale).to_event(1)
        z = q.rsample()
        log_px = vae.likelihood(vae.decoder(z), len(vae.input_shape)).log_prob(x)
        elbo = log_px.sum()
        if isinstance(kl_weight, torch.Tensor) or kl_weight != 0:  # a tensor: in a CUDA graph
            elbo = elbo + kl_weight * (vae.p_z().log_prob(z) - q.log_prob(z)).sum()
        return -elbo * ((num_data or len(x)) / len(x))

    def loss(self, model, guide, x, num_data=None, kl_weight=1.0) -> float:
        with torch.no_grad():
            return self.differentiable_loss(x, num_data, kl_weight).item()

    def loss_and_grads(self, model, guide, x, num_data=None, kl_weight=1.0) -> float:
        return self.tensor_loss_and_grads(model, guide, x, num_data, kl_weight).item()

    def tensor_loss_and_grads(self, model, guide, x, num_data=None, kl_weight=1.0) -> torch.Tensor:
        """Like :meth:`loss_and_grads`, but the loss stays a (detached) tensor on the
        device, so the caller decides when to synchronise."""
        loss = self.differentiable_loss(x, num_data, kl_weight)
        loss.backward()
        return loss.detach()

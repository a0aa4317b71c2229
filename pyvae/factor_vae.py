"""FactorVAE (Kim & Mnih 2018): the ELBO minus γ times a discriminator's estimate of the
total correlation, as a Pyro ELBO that trains its own discriminator.

The total correlation TC = KL(q(z) || prod_d q(z_d)) = E_q(z)[log q(z) / prod_d q(z_d)]
is estimated with the density-ratio trick: a classifier D(z) that tells draws of q(z)
(z_i ~ q(z|x_i) over a minibatch) from draws of prod_d q(z_d) (the same draws with each
dimension shuffled across the batch, :func:`permute_dims`) has, at its optimum, logit
log D/(1 - D) = log q(z) - log prod_d q(z_d); so TC ~ mean_i logit D(z_i).

:class:`FactorVAELoss` minimises -ELBO + γ N mean_i logit D(z_i) in the VAE's parameters;
in the same call, its ``loss_and_grads`` takes one step of the discriminator's own Adam
(the paper's lr 1e-4, betas (0.5, 0.9)) on the binary cross-entropy of the same
minibatch's draws (detached) against their permuted copy. (The paper draws the permuted
samples from a second minibatch; like most implementations we use the same one, which
halves the encoder passes.) The discriminator is a plain ``torch.nn.Module`` owned by the
loss, not in Pyro's parameter store, so two models never share one; ``fit``'s checkpoints
save and restore it (:meth:`FactorVAELoss.state_dict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pyro.infer.elbo import ELBO
from pyro.infer.enum import get_importance_trace
from pyro.infer.util import torch_item
from pyro.util import warn_if_nan
from torch import nn
from torch.nn import functional as F

from .capabilities import FACTOR_VAE
from .checks import check_int, check_number
from .tcvae import latent_site, plate_and_weight, require_from

__all__ = ["Discriminator", "FactorVAELoss", "permute_dims"]


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``z`` ``(B, D)`` with each column shuffled across the batch independently: draws
    of the product of the marginals, prod_d q(z_d), from draws of q(z)."""
    noise = torch.rand(z.shape, generator=generator, device=z.device)
    return z.gather(0, noise.argsort(dim=0))


class Discriminator(nn.Module):
    """An MLP ``z (B, D) -> logit (B,)``, the log-odds that z came from q(z) rather than
    from prod_d q(z_d); leaky ReLUs (slope 0.2) as in the paper.

    Args:
        z_dim: D.
        hidden: the hidden layers' widths. Default ``(256,) * 4``, smaller than the
            paper's ``(1000,) * 5`` (six linear layers), which costs about 15 times
            more per step on a CPU.
    """

    def __init__(self, z_dim: int, hidden: Sequence[int] = (256, 256, 256, 256)):
        super().__init__()
        z_dim = check_int("z_dim", z_dim, 1)
        widths = [z_dim, *(check_int("hidden", h, 1) for h in hidden)]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], 1))
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


class FactorVAELoss(ELBO):
    """Minus the FactorVAE objective, ELBO - γ TC, scaled to the dataset, with its own
    discriminator (see :mod:`pyvae.factor_vae`).

    Args:
        z_dim: the latent dimension D (the discriminator's input).
        gamma: the weight of the total correlation (6.4 in the paper's dSprites runs).
        hidden: the discriminator's hidden widths (:class:`Discriminator`).
        lr, betas: its Adam optimizer's (the paper's 1e-4, (0.5, 0.9)).
        latent: the name of the latent site (``"z"``).

    Called as any Pyro ELBO with the model's arguments and ``num_data=N``: with ``fit``
    (``elbo=FactorVAELoss(10)``) or ``pyro.infer.SVI(vae.model, vae.guide, optim,
    FactorVAELoss(10))``. ``loss`` evaluates without training the discriminator;
    ``loss_and_grads`` also steps it. fit's KL weight (``beta=``, warm-up) multiplies the
    KL and the TC term alike. Attributes: ``discriminator``, ``optimizer``, and
    ``last`` (the last step's ``tc`` estimate, per item, and ``discriminator_loss``).
    Not for ``fit(distributed=True)``, which differentiates the loss alone.
    """

    instead = "use a plain pyvae.VAE, or fit(..., beta=...) for a beta-VAE"

    def __init__(
        self,
        z_dim: int,
        gamma: float = 6.4,
        hidden: Sequence[int] = (256, 256, 256, 256),
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        latent: str = "z",
    ):
        self.gamma = check_number("gamma", gamma, at_least=0)
        self.discriminator = Discriminator(z_dim, hidden)
        lr = check_number("lr", lr, above=0)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas)
        self.latent = latent
        self.last: dict[str, float] = {}
        super().__init__(num_particles=1, max_plate_nesting=1)

    def check_vae(self, vae: Any) -> None:
        """Refuse a VAE whose class does not support ``"factor_vae"``, or of another z_dim."""
        vae.require(FACTOR_VAE, instead=self.instead)
        if vae.z_dim != self.discriminator.z_dim:
            raise ValueError(
                f"the discriminator takes z_dim={self.discriminator.z_dim}, the VAE has "
                f"z_dim={vae.z_dim}: build FactorVAELoss({vae.z_dim}, ...)"
            )

    def _get_trace(self, model: Any, guide: Any, args: tuple, kwargs: dict):
        """The guide's trace and the model's replayed on it, log-probabilities computed."""
        return get_importance_trace("flat", self.max_plate_nesting, model, guide, args, kwargs)

    def _loss_and_z(self, model: Any, guide: Any, args: tuple, kwargs: dict):
        require_from(model, FACTOR_VAE, self.instead)
        model_trace, guide_trace = self._get_trace(model, guide, args, kwargs)
        z = latent_site(guide_trace, self.latent)["value"]
        if z.dim() != 2 or z.shape[-1] != self.discriminator.z_dim:
            raise ValueError(
                f"the discriminator takes z of shape (B, {self.discriminator.z_dim}), got "
                f"{tuple(z.shape)}: build FactorVAELoss(z_dim={z.shape[-1]}, ...)"
            )
        _, scale, weight = plate_and_weight(model_trace.nodes[self.latent])
        elbo = model_trace.log_prob_sum() - guide_trace.log_prob_sum()
        self._to(z.device)
        tc = self.discriminator(z)  # (B,): per-item log q(z) / prod_d q(z_d)
        loss = -elbo + self.gamma * weight * scale * tc.sum()
        warn_if_nan(loss, "loss")
        return loss, z, tc

    # No differentiable_loss: the discriminator's step belongs to loss_and_grads, so a
    # caller that only differentiates the loss (distributed training) is refused.
    def loss(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> float:
        """The loss as a float; the discriminator is not trained."""
        with torch.no_grad():
            return torch_item(self._loss_and_z(model, guide, args, kwargs)[0])

    def loss_and_grads(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> float:
        """The loss, its gradients in the VAE's parameters, and one discriminator step."""
        loss, z, tc = self._loss_and_z(model, guide, args, kwargs)
        loss.backward()
        d_loss = self.discriminator_step(z.detach())
        self.last = {"tc": torch_item(tc.detach().mean()), "discriminator_loss": d_loss}
        return torch_item(loss)

    def discriminator_step(self, z: torch.Tensor) -> float:
        """One Adam step of the discriminator on draws ``z`` ``(B, D)`` of q(z) against
        :func:`permute_dims` of them; returns its binary cross-entropy (nats, mean over
        the 2B draws). A non-finite loss is not applied."""
        self.optimizer.zero_grad(set_to_none=True)
        joint, product = self.discriminator(z), self.discriminator(permute_dims(z))
        d_loss = 0.5 * (
            F.binary_cross_entropy_with_logits(joint, torch.ones_like(joint))
            + F.binary_cross_entropy_with_logits(product, torch.zeros_like(product))
        )
        if torch.isfinite(d_loss):
            d_loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return torch_item(d_loss)

    def _to(self, device: torch.device) -> None:
        """Move the discriminator and its optimizer's state to ``device``."""
        if next(self.discriminator.parameters()).device == device:
            return
        self.discriminator.to(device)
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and key != "step":
                    state[key] = value.to(device)

    def state_dict(self) -> dict[str, Any]:
        """The discriminator's parameters and its optimizer's state (for checkpoints)."""
        return {
            "discriminator": self.discriminator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])

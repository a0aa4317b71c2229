"""The training step, one object chosen once per run from one table (:func:`make_step`).

Every step has the same shape, like ``pyro.infer.SVI.step``: the loss and its gradients
(through the run's :class:`~pyvae.train.strategy.Local` or ``DDP`` strategy), the
finiteness guard (:mod:`pyvae.train.guard`), then the optimizer's update.

- :class:`TorchStep`: a torch optimizer over ``vae.parameters()`` (``fit``'s fast path
  with :func:`default_optimizer`).
- :class:`SVIStep`: a Pyro optimizer on the parameters the step's trace touched, as
  ``pyro.infer.SVI``.
- :class:`~pyvae.train.graphed.GraphedStep`: :class:`TorchStep` replayed from a CUDA graph.
"""

from __future__ import annotations

from typing import Any, Protocol

import pyro.optim
import torch
from pyro import poutine
from pyro.infer.elbo import ELBO
from pyro.infer.util import zero_grads
from torch import nn

from ..objectives import DirectELBO
from .graphed import GraphedStep, capturable
from .guard import finite_or_refuse
from .strategy import Local

__all__ = [
    "Step",
    "Objective",
    "TorchStep",
    "SVIStep",
    "make_step",
    "default_optimizer",
    "checked_step",
    "torch_step",
]


class Objective(nn.Module):
    """A VAE's negative ELBO, in the two forms a step needs: ``loss_and_grads(x, **kw)``
    (the ELBO's own estimator and gradients, as ``SVI`` calls it) and ``forward(x, **kw)``
    (a differentiable loss, for ``DistributedDataParallel`` to wrap). The VAE is its
    submodule, so its parameters are the module's.

    ``kw``: ``num_data``, ``kl_weight`` and the variant's side information, as the VAE's
    model and guide take them. The loss is in nats, scaled to ``num_data`` items.
    """

    def __init__(self, vae: nn.Module, elbo: ELBO | DirectELBO):
        super().__init__()
        self.vae, self.elbo = vae, elbo

    def forward(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        if isinstance(self.elbo, DirectELBO):
            return self.elbo.differentiable_loss(x, kwargs["num_data"], kwargs["kl_weight"])
        if not hasattr(self.elbo, "differentiable_loss"):
            raise ValueError(
                f"distributed training differentiates the ELBO as a module and needs an ELBO "
                f"with differentiable_loss (Trace_ELBO, TraceMeanField_ELBO, TraceEnum_ELBO); "
                f"{type(self.elbo).__name__} has none"
            )
        return self.elbo.differentiable_loss(self.vae.model, self.vae.guide, x, **kwargs)

    def loss_and_grads(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor | float:
        if isinstance(self.elbo, DirectELBO):  # the loss stays on the device
            return self.elbo.tensor_loss_and_grads(None, None, x, **kwargs)
        return self.elbo.loss_and_grads(self.vae.model, self.vae.guide, x, **kwargs)


class Step(Protocol):
    """``step(where, x, **kwargs) -> float``: one update on the minibatch ``x``, returning
    its loss (nats, scaled to ``num_data``); raises ``FloatingPointError`` naming
    ``where`` with the parameters not updated if the loss or a gradient is not finite.
    ``checkpointable``: its optimizer's state can be saved (``state_dict``)."""

    checkpointable: bool

    def __call__(self, where: str, x: torch.Tensor, **kwargs: Any) -> float: ...


class TorchStep:
    """A step of a torch optimizer over all of ``objective``'s parameters."""

    checkpointable = True

    def __init__(
        self,
        objective: Objective,
        optimizer: torch.optim.Optimizer,
        strategy: Any,
        clip_norm: float | None = None,
    ):
        self.objective, self.optimizer, self.strategy = objective, optimizer, strategy
        self.clip_norm = clip_norm
        self.params = list(objective.parameters())

    def __call__(self, where: str, x: torch.Tensor, **kwargs: Any) -> float:
        loss = self.strategy.loss_and_grads(self.objective, where, x, **kwargs)
        loss = finite_or_refuse(loss, self.params, where, self.clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a saved optimizer state, keeping this device's kernel choice."""
        flags = {k: self.optimizer.defaults[k] for k in ("fused", "capturable")}
        self.optimizer.load_state_dict(state)
        for group in self.optimizer.param_groups:
            group.update(flags)


class SVIStep:
    """A step of a Pyro optimizer on the parameters the step's trace touched, as
    ``pyro.infer.SVI.step``. Its state is not checkpointed (Pyro optimizers key their
    state by parameter names, which are per instance)."""

    checkpointable = False

    def __init__(
        self,
        objective: Objective,
        optim: pyro.optim.PyroOptim,
        strategy: Any,
        clip_norm: float | None = None,
    ):
        self.objective, self.optim, self.strategy = objective, optim, strategy
        self.clip_norm = clip_norm

    def __call__(self, where: str, x: torch.Tensor, **kwargs: Any) -> float:
        with poutine.trace(param_only=True) as capture:
            loss = self.strategy.loss_and_grads(self.objective, where, x, **kwargs)
        params = {site["value"].unconstrained() for site in capture.trace.nodes.values()}
        loss = finite_or_refuse(loss, params, where, self.clip_norm)
        self.optim(params)
        zero_grads(params)
        return loss


def default_optimizer(vae: nn.Module, lr: float) -> torch.optim.Adam:
    """``fit``'s optimizer: Adam over all of the VAE's parameters, with PyTorch's fused
    kernel (the same update as ``torch.optim.Adam``'s default implementation, in one pass)
    where their device has one, else the default implementation. On CUDA it is
    capturable, so that a CUDA graph can replay it (:class:`GraphedStep`)."""
    params = list(vae.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, capturable=params[0].is_cuda)
    except RuntimeError:  # no fused kernel for these parameters' device or dtype
        return torch.optim.Adam(params, lr=lr)


def make_step(
    vae: Any,
    elbo: ELBO | DirectELBO,
    optim: pyro.optim.PyroOptim | None,
    lr: float,
    strategy: Any,
    clip_norm: float | None = None,
) -> Step:
    """The run's step, from one table:

    ============================  =======================================  ====================
    optimizer                     where                                    step
    ============================  =======================================  ====================
    a Pyro optimizer (``optim``)  anywhere                                 :class:`SVIStep`
    None (``default_optimizer``)  CUDA, one process,                       :class:`GraphedStep`
                                  :func:`~pyvae.train.graphed.capturable`
    None                          otherwise                                :class:`TorchStep`
    ============================  =======================================  ====================
    """
    objective = Objective(vae, elbo)
    if optim is not None:
        return SVIStep(objective, optim, strategy, clip_norm)
    step = TorchStep(objective, default_optimizer(vae, lr), strategy, clip_norm)
    graph = strategy.device.type == "cuda" and strategy.world == 1
    if graph and isinstance(elbo, DirectELBO) and capturable(vae):
        return GraphedStep(vae, elbo, step.optimizer, step, clip_norm)
    return step


class _SVIObjective:  # a pyro.infer.SVI's model, guide and loss, for checked_step
    def __init__(self, svi: Any):
        self.svi = svi

    def loss_and_grads(self, *args: Any, **kwargs: Any) -> float:
        return self.svi.loss_and_grads(self.svi.model, self.svi.guide, *args, **kwargs)


def checked_step(
    svi: Any, where: str, *args: Any, clip_norm: float | None = None, **kwargs: Any
) -> float:
    """``svi.step(*args, **kwargs)`` (a ``pyro.infer.SVI``) that refuses to apply a
    non-finite loss or gradient, with the parameters not updated: :class:`SVIStep`."""
    local = Local(torch.device("cpu"))  # where the data is does not enter the step
    return SVIStep(_SVIObjective(svi), svi.optim, local, clip_norm)(where, *args, **kwargs)


def torch_step(
    vae: Any,
    elbo: ELBO | DirectELBO,
    optimizer: torch.optim.Optimizer,
    where: str,
    *args: Any,
    clip_norm: float | None = None,
    **kwargs: Any,
) -> float:
    """One :class:`TorchStep` of ``optimizer`` over ``vae.parameters()`` on ``elbo``."""
    step = TorchStep(Objective(vae, elbo), optimizer, Local(vae.device), clip_norm)
    return step(where, *args, **kwargs)

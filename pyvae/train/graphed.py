"""The training step as a CUDA graph: captured once, replayed for every full batch.

On a GPU a small VAE's step is bound by launching its hundred-odd kernels one by one from
Python, not by arithmetic. :class:`GraphedStep` records the whole step of ``fit``'s fast
path (:class:`~pyvae.objectives.DirectELBO`'s loss, its gradients, the finiteness check
and the fused Adam update) in a ``torch.cuda.CUDAGraph`` and then replays it with one
launch per step. The replay runs the same kernels on the same tensors as the eager step,
the draws of z included (PyTorch's graph-safe random numbers), so it is the same update.

What stays outside the graph: the first steps (run eagerly, as CUDA graphs need a
warm-up), batches of another size (the last, partial batch of an epoch) and anything
that cannot be captured (e.g. a custom prior that reads a tensor's value into Python,
found before capturing by running the step once with such reads made errors): those
steps run eagerly through :class:`pyvae.train.steps.TorchStep`, with a warning in the last
case.
"""

from __future__ import annotations

import math
import warnings

import pyro
import torch

from ..capabilities import CUDA_GRAPH
from ..checks import non_finite_step
from ..objectives import DirectELBO
from .guard import grad_norms

__all__ = ["GraphedStep", "capturable"]


def capturable(vae) -> bool:
    """Whether ``fit`` replays ``vae``'s step from a CUDA graph: ``vae.supports("cuda_graph")``
    (:mod:`pyvae.capabilities`): its class declares it (the plain VAE, on the fast path)
    and each of its parts declares ``capturable = True`` on its own class, as pyvae's
    built-in parts do except :class:`~pyvae.priors.FlowPrior` (Pyro's transforms cache
    their last input and output, which keeps the previous step's autograd graph alive
    across replays). Other parts run eagerly: a graph replays only what was recorded,
    and pyvae cannot check that a part records everything it does."""
    return vae.supports(CUDA_GRAPH)


class GraphedStep:
    """``fit``'s training step for a plain VAE on CUDA, replayed from a CUDA graph.

    Args:
        vae: the VAE (on a CUDA device).
        elbo: its :class:`~pyvae.objectives.DirectELBO`.
        optimizer: a fused, capturable ``torch.optim.Adam`` over ``vae.parameters()``
            (:func:`pyvae.train.steps.default_optimizer` makes one on CUDA).
        eager_step: ``eager_step(where, x, num_data=..., kl_weight=...) -> float``, the
            eager step used before the capture and for batches the graph does not fit.
        clip_norm: clip the gradients to this total norm (inside the graph).
        warmup: eager steps before the capture.

    Calling it is like calling ``eager_step``: it returns the loss as a float and raises
    ``FloatingPointError`` naming ``where`` if the loss or a gradient is not finite, with
    the parameters not updated (the fused Adam kernel skips the update on the device).
    With a KL weight of 0 the graph multiplies the KL term by 0 rather than leaving it out.
    """

    checkpointable = True

    def __init__(
        self,
        vae,
        elbo: DirectELBO,
        optimizer: torch.optim.Optimizer,
        eager_step,
        clip_norm: float | None = None,
        warmup: int = 3,
    ):
        self.vae, self.elbo, self.optimizer = vae, elbo, optimizer
        self.eager_step, self.clip_norm, self.warmup = eager_step, clip_norm, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False
        self.calls = 0

    def _capture(self, x: torch.Tensor, num_data: int) -> None:
        device = x.device
        self.x = torch.empty_like(x, dtype=torch.get_default_dtype())
        self.kl_weight = torch.ones((), device=device)
        self.num_data = num_data
        params = [p for p in self.vae.parameters() if p.requires_grad]
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with pyro.validation_enabled(False), torch.cuda.graph(graph):
            loss = self.elbo.differentiable_loss(self.x, num_data, self.kl_weight)
            loss.backward()
            params = [p for p in params if p.grad is not None]
            grads = [p.grad for p in params]
            norms = grad_norms(params, self.clip_norm, foreach=True)
            self.checked = torch.stack([loss.detach(), *norms])  # read after each replay
            self.found_inf = (~torch.isfinite(self.checked).all()).float()
            self.optimizer.found_inf = self.found_inf  # the fused kernel skips the update
            try:
                self.optimizer.step()
            finally:
                del self.optimizer.found_inf
        self.graph, self.grads = graph, grads

    def _uncapturable(self, x: torch.Tensor, num_data: int) -> str | None:
        """Why the loss and its gradients cannot be captured (an operation that waits for
        the device, e.g. ``.item()`` in a custom prior), found by running them once with
        such operations made errors; None if nothing stands in the way. A capture that
        fails half-way would leave the random number generator unusable, so this runs
        first."""
        # fork_rng (outside the check, as reading and restoring the generators may wait
        # for the device): the probe's draws do not shift those of training.
        with torch.random.fork_rng(devices=[x.device]), pyro.validation_enabled(False):
            weight = torch.ones((), device=x.device)
            previous = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode("error")
            try:
                self.elbo.differentiable_loss(x, num_data, weight).backward()
            except RuntimeError as e:
                return f"{type(e).__name__}: {str(e)[:200]}"
            finally:
                torch.cuda.set_sync_debug_mode(previous)
                self.optimizer.zero_grad(set_to_none=True)
        return None

    def _give_up(self, why: str) -> None:
        self.failed = True
        warnings.warn(
            f"training continues without a CUDA graph: the step cannot be captured ({why})",
            RuntimeWarning,
            stacklevel=4,
        )

    def _eager(self, where: str, x: torch.Tensor, num_data: int, kl_weight: float) -> float:
        self.optimizer.zero_grad(set_to_none=True)  # the graph's gradients are not theirs
        if self.calls == self.warmup and not self.failed:  # the last warm-up step
            why = self._uncapturable(x, num_data)
            if why is not None:
                self._give_up(why)
        if self.graph is not None or self.failed:
            return self.eager_step(where, x, num_data=num_data, kl_weight=kl_weight)
        # Before the capture: warm-up steps on a side stream, as CUDA graphs need.
        stream = torch.cuda.Stream(x.device)
        stream.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(stream):
            loss = self.eager_step(where, x, num_data=num_data, kl_weight=kl_weight)
        torch.cuda.current_stream(x.device).wait_stream(stream)
        return loss

    def __call__(self, where: str, x: torch.Tensor, *, num_data: int, kl_weight: float) -> float:
        self.calls += 1
        if self.failed or self.calls <= self.warmup:
            return self._eager(where, x, num_data, kl_weight)
        if self.graph is None:
            try:
                self._capture(x, num_data)
            except Exception as e:  # noqa: BLE001 - any capture failure means: stay eager
                torch.cuda.synchronize(x.device)
                self._give_up(f"{type(e).__name__}: {str(e)[:200]}")
                return self._eager(where, x, num_data, kl_weight)
        if x.shape != self.x.shape or num_data != self.num_data:
            return self._eager(where, x, num_data, kl_weight)
        self.x.copy_(x)
        self.kl_weight.fill_(kl_weight)
        self.graph.replay()
        loss, *norms = self.checked.tolist()  # the one synchronisation per step
        if all(map(math.isfinite, [loss, *norms])):
            return loss
        for g in self.grads:
            g.zero_()
        raise non_finite_step(loss, where)

    def state_dict(self) -> dict:
        return self.eager_step.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.eager_step.load_state_dict(state)

    def __repr__(self) -> str:
        state = "failed" if self.failed else "captured" if self.graph is not None else "eager"
        return f"GraphedStep({state}, calls={self.calls})"

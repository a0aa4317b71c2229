"""Data-parallel training: ``fit(..., distributed=True)`` in each process ``torchrun`` starts.

Each process (rank ``r`` of ``W``) holds the whole VAE and the whole dataset and takes its
share of every global minibatch; PyTorch's ``DistributedDataParallel`` (DDP), wrapped
around the ELBO as a module (:class:`ELBOLoss`), averages the gradients, so every rank
applies the same update and the parameters stay identical.

- **Batches.** ``batch_size`` is the *global* batch, as in a single process: rank 0 draws
  each epoch's permutation (as a single process would) and broadcasts it, and rank ``r``
  takes items ``r, r + W, r + 2W, ...`` of each global batch. The steps per epoch, the
  KL warm-up and the meaning of a checkpoint's saved order and position do not depend on
  ``W``. (A ``DistributedSampler`` would pad the data to a multiple of ``W`` by repeating
  items; here every item counts once.)
- **Gradients.** ``fit`` scales a batch of ``B`` items to the dataset (``N / B``). Rank
  ``r``'s loss over its ``b_r`` items, scaled by ``N / b_r``, is weighted by
  ``b_r W / B`` before the backward pass; DDP's average over the ``W`` ranks is then
  ``N / B`` times the gradient summed over the global batch: the single-process gradient.
  A rank with no item in a short last batch computes one item with weight 0, so that
  every rank joins every all-reduce.
- **Randomness.** Rank ``r`` seeds its generators with ``seed + r`` (``seed`` drawn by
  rank 0 when not given): the ranks draw different z.
- **Faults.** After each forward pass the ranks agree, in one small all-reduce, whether
  any failed (a NaN or inf loss, an error) or was asked to stop (Ctrl-C, SIGTERM): all
  raise at the same step instead of waiting for each other forever.
- **Files.** Only rank 0 writes the checkpoint (holding every rank's random state) and
  shows the progress bar; a resume is read by rank 0 and broadcast, so other nodes need
  no shared file system.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyro
import pyro.optim
import torch
import torch.distributed as dist
from pyro import poutine
from pyro.infer.util import zero_grads
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import load_checkpoint, rng_state, save_checkpoint
from .checks import STEP_ADVICE
from .data import ArrayDataset, source
from .model import VAE
from .objectives import DirectELBO
from .train import _finite_or_refuse

__all__ = ["ELBOLoss", "Distributed", "rank", "world_size"]

_LAUNCH = "torchrun --standalone --nproc_per_node=2 your_script.py"


def rank() -> int:
    """This process's rank (0 when not distributed); also before the process group starts,
    from ``torchrun``'s ``RANK`` variable."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    """The number of processes (1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


class ELBOLoss(nn.Module):
    """The negative ELBO of a minibatch as an ``nn.Module`` over a VAE, for DDP to wrap.

    Like Pyro's ``Trace_ELBO()(model, guide)`` (an ``ELBOModule``), but holding the VAE as
    its submodule, so that its parameters are the module's (``vae.model`` is a method).
    ``forward(x, num_data, kl_weight)`` returns the scalar loss of ``x`` (shape
    ``(B, *input_shape)``) scaled to ``num_data`` items, in nats.
    """

    def __init__(self, vae: VAE, elbo: Any):
        super().__init__()
        if not isinstance(elbo, DirectELBO) and not hasattr(elbo, "differentiable_loss"):
            raise ValueError(
                f"distributed training differentiates the ELBO as a module and needs an ELBO "
                f"with differentiable_loss (Trace_ELBO, TraceMeanField_ELBO, TraceEnum_ELBO); "
                f"{type(elbo).__name__} has none"
            )
        self.vae = vae
        self.elbo = elbo

    def forward(
        self, x: torch.Tensor, num_data: int | None = None, kl_weight: float = 1.0
    ) -> torch.Tensor:
        if isinstance(self.elbo, DirectELBO):
            return self.elbo.differentiable_loss(x, num_data, kl_weight)
        return self.elbo.differentiable_loss(
            self.vae.model, self.vae.guide, x, num_data=num_data, kl_weight=kl_weight
        )


def _non_finite_error(e: Exception) -> bool:
    """A Pyro/torch argument check that refused NaN or inf values."""
    text = str(e).lower()
    return isinstance(e, ValueError) and ("nan" in text or "inf" in text)


class Distributed:
    """This process's part in data-parallel training (see the module's docstring).

    Made by :meth:`start`; :func:`pyvae.fit` calls it at a few points of its loop.

    Attributes:
        rank, world: this process's rank and the number of processes.
        device: this process's device: ``cuda:LOCAL_RANK`` or the CPU.
        stop_agreed: all ranks stopped together on a Ctrl-C or SIGTERM (at the same
            batch, so a checkpoint can be saved collectively).
    """

    def __init__(self, device: torch.device):
        self.rank, self.world, self.device = dist.get_rank(), dist.get_world_size(), device
        self.stop_requested = False  # set by a signal handler on this rank
        self.stop_agreed = False  # every rank knows some rank was asked to stop
        self._weight = 1.0  # this rank's weight for the batch being stepped on

    # ------------------------------------------------------------------ starting
    @classmethod
    def start(cls, device: str | torch.device | None = None, **same: Any) -> Distributed:
        """Join the default process group (started here from ``torchrun``'s environment
        unless already running: NCCL on CUDA, gloo on the CPU).

        ``device``: None (``cuda:LOCAL_RANK`` if CUDA is available, else the CPU),
        ``"cuda"`` or ``"cpu"``. ``same``: settings every rank must share (e.g. the data
        size), checked here so a mismatch is an error instead of a hang.
        """
        if not dist.is_available():
            raise ValueError("distributed=True needs a PyTorch built with torch.distributed")
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if not dist.is_initialized():
            missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
                       if v not in os.environ]  # fmt: skip
            if missing:
                raise ValueError(
                    f"distributed=True runs in each of the processes torchrun starts, e.g. "
                    f"`{_LAUNCH}` (not set: {', '.join(missing)}); drop distributed=True "
                    "to train in this process"
                )
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError("device='cuda' but CUDA is not available; use device='cpu'")
            if device.index not in (None, local_rank):
                raise ValueError(
                    f"with distributed=True each process uses cuda:LOCAL_RANK (here "
                    f"cuda:{local_rank}); pass device='cuda', not {str(device)!r}"
                )
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        elif device.type != "cpu":
            raise ValueError(f"distributed=True runs on 'cuda' or 'cpu', got {str(device)!r}")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            atexit.register(_stop_process_group)
        elif dist.get_backend() == "nccl" and device.type != "cuda":
            raise ValueError("the process group uses NCCL, which needs device='cuda'")
        ddp = cls(device)
        ddp.check_same(**same)
        return ddp

    def check_same(self, **settings: Any) -> None:
        """Raise on every rank if the ranks were given different ``settings``."""
        everyone: list[Any] = [None] * self.world
        dist.all_gather_object(everyone, settings)
        differ = sorted({k for s in everyone for k in settings if s.get(k) != settings[k]})
        if differ:
            values = "; ".join(f"{k}: {[s.get(k) for s in everyone]}" for k in differ)
            raise ValueError(
                f"the {self.world} processes were given different settings (by rank: "
                f"{values}); give every process the same data and arguments"
            )

    def seed(self, seed: int | None) -> None:
        """Seed rank r's generators with ``seed + r`` (``seed`` drawn on rank 0 if None)."""
        if seed is None:
            seed = self.broadcast(int(torch.randint(2**30, ())) if self.rank == 0 else None)
        pyro.set_rng_seed(seed + self.rank)

    # ------------------------------------------------------------------ collectives
    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj``, on every rank."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _all_reduce(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def sum(self, value: float) -> float:
        """The sum of ``value`` over the ranks."""
        return self._all_reduce([value])[0]

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on some rank."""
        return self.sum(float(flag)) > 0

    # ------------------------------------------------------------------ an epoch
    def permutation(self, n: int) -> torch.Tensor:
        """The epoch's order of the ``n`` items: rank 0's ``torch.randperm``, broadcast."""
        if self.rank == 0:
            order = torch.randperm(n, device=self.device)
        else:
            order = torch.empty(n, dtype=torch.long, device=self.device)
        dist.broadcast(order, src=0)
        return order

    def batches(
        self, x: torch.Tensor, transform: Callable | None, batch_size: int, order: torch.Tensor
    ) -> Iterator[torch.Tensor]:
        """This rank's share of each global batch of ``order``: its items ``rank, rank +
        W, ...``, transformed. The batch's weight is kept for :meth:`step_function`'s step.

        Where every rank has agreed to stop, raises ``KeyboardInterrupt`` before the next
        batch (before its transform draws random numbers), on every rank at once.
        """
        for start in range(0, len(order), batch_size):
            self._stop_if_agreed()
            chunk = order[start : start + batch_size]
            mine = chunk[self.rank :: self.world]
            self._weight = len(mine) * self.world / len(chunk)
            if len(mine) == 0:  # a short last batch: one item, weight 0
                mine = chunk[:1]
            xb = x[mine]
            yield transform(xb) if transform is not None else xb
        self._stop_if_agreed()

    def _stop_if_agreed(self) -> None:
        if self.stop_agreed:
            raise KeyboardInterrupt

    def elbo(self, vae: VAE, data: Any) -> float:
        """The ELBO of ``data`` in nats per example (as ``vae.elbo``), each rank
        evaluating items ``rank, rank + W, ...``; the same value on every rank."""
        x, transform = source(data)
        mine = x[self.rank :: self.world]
        local = float(vae.elbo(ArrayDataset(mine, transform=transform), reduction="sum"))
        return self.sum(local if len(mine) else 0.0) / len(x)

    def step_function(
        self,
        vae: VAE,
        elbo: Any,
        optimizer: torch.optim.Optimizer | pyro.optim.PyroOptim,
        clip_norm: float | None = None,
        all_parameters_used: bool = False,
    ) -> Callable[..., float]:
        """The training step of ``fit`` over DDP: ``step(where, x, num_data=, kl_weight=)``
        for the batches of :meth:`batches`; returns this rank's loss (scaled to
        ``num_data``), or 0 for a weight-0 batch.

        ``optimizer``: a torch optimizer over ``vae.parameters()``, or a Pyro optimizer
        (then applied, like ``SVI``, to the parameters the step's trace touched).
        ``all_parameters_used``: every step gives every parameter a gradient; else DDP
        looks for unused ones at each step (the prior's at KL weight 0, say), leaving
        their gradients None on every rank, as in a single process.
        """
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        module = DistributedDataParallel(
            ELBOLoss(vae, elbo),
            device_ids=device_ids,
            find_unused_parameters=not all_parameters_used,
        )
        pyro_optim = isinstance(optimizer, pyro.optim.PyroOptim)

        def step(where: str, x: torch.Tensor, *, num_data: int, kl_weight: float) -> float:
            weight, failure, error = self._weight, 0, None
            tracing = poutine.trace(param_only=True) if pyro_optim else contextlib.nullcontext()
            try:
                with tracing as capture:
                    loss = module(x, num_data, kl_weight)
                value = loss.item()
                failure = 0 if math.isfinite(value) else 1
            except Exception as e:  # a failure here must stop every rank, not hang them
                error, failure = e, 1 if _non_finite_error(e) else 2
            self._agree(failure, error, where)
            (loss * weight).backward()  # DDP averages the gradients over the ranks
            if pyro_optim:
                params = {site["value"].unconstrained() for site in capture.trace.nodes.values()}
            else:
                params = list(vae.parameters())
            _finite_or_refuse(value, params, where, clip_norm)  # the same on every rank
            if pyro_optim:
                optimizer(params)
                zero_grads(params)
            else:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            return value if weight else 0.0

        return step

    def _agree(self, failure: int, error: Exception | None, where: str) -> None:
        """One all-reduce: each rank's failure (0 none, 1 NaN/inf, 2 another error) and
        whether some rank was asked to stop. Raises on every rank if one failed."""
        flags = [0.0] * (self.world + 1)
        flags[self.rank], flags[-1] = failure, float(self.stop_requested)
        flags = self._all_reduce(flags)
        self.stop_agreed = self.stop_agreed or flags[-1] > 0
        failed = [r for r in range(self.world) if flags[r]]
        if not failed:
            return
        if failure == 2:
            raise error
        who = f"process{'es' if len(failed) > 1 else ''} {', '.join(map(str, failed))}"
        if all(flags[r] == 1 for r in failed):
            raise FloatingPointError(
                f"the loss became NaN or inf on {who} at {where}: {STEP_ADVICE}"
            ) from error
        raise RuntimeError(f"{who} failed at {where} (see its error); all processes stopped")

    @contextlib.contextmanager
    def stop_together_on_signals(self) -> Iterator[None]:
        """Within: Ctrl-C (SIGINT) or SIGTERM on any rank makes every rank stop after
        its next step, at the same batch, with ``KeyboardInterrupt`` (see
        :meth:`batches`), so that a checkpoint can be saved. torchrun passes a signal it
        receives on to its processes."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request(signum: int, frame: Any) -> None:
            if not self.stop_requested and self.rank == 0:
                print("\nstopping all processes at the next batch", file=sys.stderr)
            self.stop_requested = True

        previous = {s: signal.signal(s, request) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(
        self, path: str | os.PathLike, *, in_progress: dict | None = None, **contents: Any
    ) -> None:
        """Collective: rank 0 writes ``contents`` (as :func:`pyvae.checkpoint.save_checkpoint`),
        adding every rank's random state (``rank_rng``) and, inside an epoch, the epoch's
        summed loss over the ranks."""
        contents["rank_rng"] = [None] * self.world
        dist.all_gather_object(contents["rank_rng"], rng_state())
        if in_progress is not None:
            in_progress = {**in_progress, "total": self.sum(in_progress["total"])}
        if self.rank == 0:
            save_checkpoint(path, in_progress=in_progress, **contents)

    def read_checkpoint(self, path: str | os.PathLike) -> dict[str, Any] | None:
        """Collective: rank 0's checkpoint at ``path`` (None if it has none), on every
        rank, with ``rng`` this rank's random state (if the checkpoint was written by as
        many processes; else fresh streams seeded from it) and, inside an epoch, the
        summed loss so far on rank 0 only (the ranks' sums are added at the epoch's end)."""
        saved: Any = None
        if self.rank == 0:
            try:
                saved = load_checkpoint(path) if Path(path).exists() else None
            except Exception as e:  # every rank raises it, instead of waiting for rank 0
                saved = e
        saved = self.broadcast(saved)
        if isinstance(saved, Exception):
            raise saved
        if saved is None:
            return None
        rank_rng = saved.get("rank_rng")
        if rank_rng is not None and len(rank_rng) == self.world:
            saved["rng"] = rank_rng[self.rank]
        else:  # another number of processes: new streams, the same on every run
            g = torch.Generator()
            g.set_state(saved["rng"]["torch"])
            pyro.set_rng_seed(int(torch.randint(2**30, (), generator=g)) + self.rank)
            saved["rng"] = rng_state()
        if saved.get("in_progress") is not None and self.rank != 0:
            saved["in_progress"]["total"] = 0.0
        return saved


def _stop_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()

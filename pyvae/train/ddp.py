"""The data-parallel strategy: ``fit(..., distributed=True)`` in each process ``torchrun`` starts.

Each process (rank ``r`` of ``W``) holds the whole VAE and the whole dataset and takes its
share of every global minibatch; PyTorch's ``DistributedDataParallel`` (DDP), wrapped
around the ELBO as a module (``ELBOLoss``), averages the gradients, so every rank
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
- **Timeouts.** Every collective waits at most ``PYVAE_DDP_TIMEOUT`` seconds (default
  :data:`DEFAULT_TIMEOUT_S`) for the others: a process that stopped or froze ends the rest
  with an error saying so. A process blocked in such a wait cannot run Python's signal
  handlers; :class:`~pyvae.train.signals.StopSignals` ends it on SIGTERM or Ctrl-C all
  the same, after a grace of a few seconds.
- **Files.** Only rank 0 writes the checkpoint (holding every rank's random state) and
  shows the progress bar; a resume is read by rank 0 and broadcast, so other nodes need
  no shared file system.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyro
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..checkpoint import rng_state
from ..checks import STEP_ADVICE
from ..data import ArrayDataset, source
from .guard import non_finite_error

__all__ = ["DDP", "rank", "world_size", "DEFAULT_TIMEOUT_S"]

_LAUNCH = "torchrun --standalone --nproc_per_node=2 your_script.py"

#: How long a process waits for the others in one collective before it fails (seconds);
#: ``fit(..., distributed=True)`` reads ``PYVAE_DDP_TIMEOUT`` to change it.
DEFAULT_TIMEOUT_S = 120.0


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


def timeout_s() -> float:
    """The collective timeout: ``$PYVAE_DDP_TIMEOUT`` seconds, else :data:`DEFAULT_TIMEOUT_S`."""
    text = os.environ.get("PYVAE_DDP_TIMEOUT")
    if text is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"PYVAE_DDP_TIMEOUT must be a number of seconds > 0, got {text!r}")
    return value


class DDP:
    """This process's part in data-parallel training (see the module's docstring): the
    strategy of :class:`~pyvae.train.trainer.Trainer` when ``fit(..., distributed=True)``.
    Made by :meth:`start`.

    Attributes:
        rank, world, is_main: this process's rank, the number of processes, rank == 0.
        device: ``cuda:LOCAL_RANK`` or the CPU.
        stop: the run's :class:`~pyvae.train.signals.StopSignals` (its ``requested``
            flag is shared with the others at each step).
    """

    def __init__(self, device: torch.device, stop: Any = None):
        self.rank, self.world, self.device = dist.get_rank(), dist.get_world_size(), device
        self.is_main = self.rank == 0
        self.stop = stop
        self._stop_agreed = False  # every rank knows some rank was asked to stop
        self._weight = 1.0  # this rank's weight for the batch being stepped on
        self._module: DistributedDataParallel | None = None
        #: Whether some step may leave a parameter without a gradient (the prior's at KL
        #: weight 0, say): DDP then looks for them at each step; their gradients stay None
        #: on every rank, as in one process.
        self.find_unused_parameters = True

    # ------------------------------------------------------------------ starting
    @classmethod
    def start(cls, device: str | torch.device | None = None, **same: Any) -> DDP:
        """Join the default process group (started here from ``torchrun``'s environment
        unless already running: NCCL on CUDA, gloo on the CPU), with a timeout of
        :func:`timeout_s` for every collective, so a process that stops responding ends
        the others with an error instead of a hang.

        ``device``: None (``cuda:LOCAL_RANK`` if CUDA is available, else the CPU),
        ``"cuda"`` or ``"cpu"``. ``same``: settings every rank must share (e.g. the data
        size), checked here so a mismatch is an error instead of a hang.
        """
        if not dist.is_available():
            raise ValueError("distributed=True needs a PyTorch built with torch.distributed")
        device = _device(device)
        if not dist.is_initialized():
            missing = [
                v
                for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
                if v not in os.environ
            ]
            if missing:
                raise ValueError(
                    f"distributed=True runs in each of the processes torchrun starts, e.g. "
                    f"`{_LAUNCH}` (not set: {', '.join(missing)}); drop distributed=True "
                    "to train in this process"
                )
            timeout = datetime.timedelta(seconds=timeout_s())
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
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

    def seed(self, seed: int | None) -> int:
        """Seed rank r's generators with ``seed + r`` (``seed`` drawn on rank 0 if None);
        returns ``seed``."""
        if seed is None:
            seed = self.broadcast(int(torch.randint(2**30, ())) if self.is_main else None)
        pyro.set_rng_seed(seed + self.rank)
        return seed

    # ------------------------------------------------------------------ collectives
    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj``, on every rank."""
        box = [obj]
        with self._peers("a broadcast between steps"):
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def _all_reduce(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        with self._peers("a sum over the processes"):
            dist.all_reduce(t)
        return t.tolist()

    def sum(self, value: float) -> float:
        """The sum of ``value`` over the ranks."""
        return self._all_reduce([value])[0]

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on some rank."""
        return self.sum(float(flag)) > 0

    # ------------------------------------------------------------------ an epoch
    def order(self, epoch_order: Any) -> torch.Tensor:
        """The epoch's order of the items: rank 0's ``epoch_order``, broadcast."""
        if self.is_main:
            order = epoch_order(self.device)
        else:
            order = torch.empty(len(epoch_order), dtype=torch.long, device=self.device)
        with self._peers("the epoch's start"):
            dist.broadcast(order, src=0)
        return order

    def shard(
        self,
        x: torch.Tensor,
        transform: Any,
        side: Mapping[str, torch.Tensor],
        batch_size: int,
        order: torch.Tensor,
    ) -> Iterator[tuple[torch.Tensor, dict]]:
        """This rank's share of each global batch of ``order``: its items ``rank, rank +
        W, ...``, transformed, and their side information. The batch's weight is kept
        for :meth:`loss_and_grads`."""
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            mine = chunk[self.rank :: self.world]
            self._weight = len(mine) * self.world / len(chunk)
            if len(mine) == 0:  # a short last batch: one item, weight 0
                mine = chunk[:1]
            xb = x[mine]
            yield (
                (transform(xb) if transform is not None else xb),
                {name: value[mine] for name, value in side.items()},
            )

    def elbo(self, vae: Any, data: Any) -> float:
        """The ELBO of ``data`` in nats per example (as ``vae.elbo``), each rank
        evaluating items ``rank, rank + W, ...``; the same value on every rank."""
        x, transform = source(data)
        mine = x[self.rank :: self.world]
        local = float(vae.elbo(ArrayDataset(mine, transform=transform), reduction="sum"))
        return self.sum(local if len(mine) else 0.0) / len(x)

    # ------------------------------------------------------------------ a step
    def _ddp_module(self, objective: Any) -> DistributedDataParallel:
        if self._module is None or self._module.module is not objective:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self._module = DistributedDataParallel(
                objective, device_ids=device_ids, find_unused_parameters=self.find_unused_parameters
            )
        return self._module

    @contextlib.contextmanager
    def _peers(self, where: str) -> Iterator[None]:
        """Within: a collective that fails because another process stopped, or did not
        answer within the timeout, raises ``RuntimeError`` saying so."""
        try:
            yield
        except RuntimeError as e:
            if not _peer_failure(e):
                raise
            raise RuntimeError(
                f"process {self.rank}: another process stopped or stopped responding at "
                f"{where} (no answer within {timeout_s():g} s; PYVAE_DDP_TIMEOUT sets it); "
                f"all processes stop, the last checkpoint is kept ({type(e).__name__})"
            ) from e

    def loss_and_grads(self, objective: Any, where: str, x: torch.Tensor, **kw: Any) -> float:
        """This rank's loss of its share of the batch (0 for a weight-0 share), with the
        gradients averaged over the ranks into the parameters (DDP). After the forward
        pass the ranks agree, in one small all-reduce, whether any failed or was asked to
        stop: a failure raises on every rank at the same step."""
        with self._peers(where):
            return self._loss_and_grads(objective, where, x, **kw)

    def _loss_and_grads(self, objective: Any, where: str, x: torch.Tensor, **kw: Any) -> float:
        module = self._ddp_module(objective)
        weight, failure, error = self._weight, 0, None
        try:
            loss = module(x, **kw)
            value = loss.item()
            failure = 0 if math.isfinite(value) else 1
        except Exception as e:  # a failure here must stop every rank, not hang them
            error, failure = e, 1 if non_finite_error(e) else 2
        self._agree(failure, error, where)
        (loss * weight).backward()  # DDP averages the gradients over the ranks
        return value if weight else 0.0

    def _agree(self, failure: int, error: Exception | None, where: str) -> None:
        """One all-reduce: each rank's failure (0 none, 1 NaN/inf, 2 another error) and
        whether some rank was asked to stop. Raises on every rank if one failed."""
        flags = [0.0] * (self.world + 1)
        flags[self.rank] = failure
        flags[-1] = float(self.stop is not None and self.stop.requested)
        flags = self._all_reduce(flags)
        self._stop_agreed = self._stop_agreed or flags[-1] > 0
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

    def stop_agreed(self, requested: bool, after_step: bool) -> bool:
        """Whether every rank stops now: after a step, as agreed in its all-reduce; else
        (between epochs) in one all-reduce of ``requested``."""
        if not after_step:
            self._stop_agreed = self._stop_agreed or self.any(requested)
        return self._stop_agreed

    def can_save_on_interrupt(self) -> bool:
        """A checkpoint is collective: written only when every rank stopped together."""
        return self._stop_agreed

    # ------------------------------------------------------------------ checkpoints
    def save(self, write: Any, path: str | os.PathLike, contents: dict) -> None:
        """Collective: rank 0 writes ``contents`` with ``write``, adding every rank's
        random state (``rank_rng``) and, inside an epoch, the epoch's summed loss."""
        contents = dict(contents, rank_rng=[None] * self.world)
        with self._peers("a checkpoint"):
            dist.all_gather_object(contents["rank_rng"], contents["rng"])
        if contents.get("in_progress") is not None:
            total = self.sum(contents["in_progress"]["total"])
            contents["in_progress"] = {**contents["in_progress"], "total": total}
        if self.is_main:
            write(path, **contents)

    def read(self, read: Any, path: str | os.PathLike) -> dict[str, Any] | None:
        """Collective: rank 0's checkpoint at ``path`` (None if it has none), on every
        rank, with ``rng`` this rank's random state (if the checkpoint was written by as
        many processes; else fresh streams seeded from it) and, inside an epoch, the
        summed loss so far on rank 0 only (the ranks' sums are added at the epoch's end)."""
        saved: Any = None
        if self.is_main:
            try:
                saved = read(path) if Path(path).exists() else None
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
        if saved.get("in_progress") is not None and not self.is_main:
            saved["in_progress"]["total"] = 0.0
        return saved


def _peer_failure(e: RuntimeError) -> bool:
    """An error of a collective whose peer stopped or timed out (gloo's or NCCL's)."""
    text = str(e)
    signs = ("timeout", "Timed out", "timed out", "pair closure", "Connection closed", "reset")
    return isinstance(e, dist.DistError) or any(sign in text for sign in signs)


def _device(device: str | torch.device | None) -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` (set as current) or the CPU."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
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
    return device


def _stop_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()

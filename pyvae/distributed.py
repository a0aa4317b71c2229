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

from .train.ddp import DDP, DEFAULT_TIMEOUT_S, rank, timeout_s, world_size
from .train.steps import Objective

__all__ = ["DDP", "Distributed", "ELBOLoss", "rank", "world_size", "timeout_s", "DEFAULT_TIMEOUT_S"]

#: The names of pyvae 0.1: the strategy and the ELBO as a module.
Distributed = DDP
ELBOLoss = Objective

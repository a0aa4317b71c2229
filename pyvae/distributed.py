"""Data-parallel training: ``fit(..., distributed=True)`` in each process ``torchrun``
starts. The strategy lives in :mod:`pyvae.train.ddp` (how batches, gradients, random
streams, faults, timeouts and files are shared); this module keeps the public names.
"""

from __future__ import annotations

from .train.ddp import DDP, DEFAULT_TIMEOUT_S, rank, timeout_s, world_size
from .train.steps import Objective

__all__ = ["DDP", "Distributed", "ELBOLoss", "rank", "world_size", "timeout_s", "DEFAULT_TIMEOUT_S"]

#: The names of pyvae 0.1: the strategy and the ELBO as a module.
Distributed = DDP
ELBOLoss = Objective

"""Training: :func:`fit` runs stochastic variational inference on a VAE's model and guide.

The folder, one concept a module:

- :mod:`~pyvae.train.fit`: ``fit``, the facade: checks its arguments into a
  :class:`~pyvae.train.config.TrainConfig` and runs a :class:`~pyvae.train.trainer.Trainer`.
- :mod:`~pyvae.train.trainer`: the loop of epochs and steps, with lifecycle hooks.
- :mod:`~pyvae.train.steps`: the step (``TorchStep``, ``SVIStep``,
  :mod:`~pyvae.train.graphed`'s ``GraphedStep``), chosen once from one table.
- :mod:`~pyvae.train.strategy` and :mod:`~pyvae.train.ddp`: where the steps run (this
  process, or one of several under ``torchrun``).
- :mod:`~pyvae.train.guard`: the finiteness check of each step.
- :mod:`~pyvae.train.checkpointer`, :mod:`~pyvae.train.signals`, :mod:`~pyvae.train.lock`:
  checkpoints and resume, Ctrl-C and SIGTERM, the run folder's lock.
"""

from .checkpointer import ResumeMismatch
from .config import TrainConfig
from .fit import fit
from .schedule import kl_weight_schedule
from .steps import SVIStep, TorchStep, checked_step, default_optimizer, make_step, torch_step
from .trainer import Trainer

__all__ = [
    "fit",
    "kl_weight_schedule",
    "default_optimizer",
    "checked_step",
    "torch_step",
    "make_step",
    "TorchStep",
    "SVIStep",
    "Trainer",
    "TrainConfig",
    "ResumeMismatch",
]

"""Per-epoch hooks for :func:`pyvae.fit`: early stopping, CSV and TensorBoard logs.

A callback is a :class:`Callback` with any of three methods; ``on_epoch_end`` returning
True stops training after that epoch::

    class PrintKL(pyvae.callbacks.Callback):
        def on_epoch_end(self, epoch, history, vae):
            print(epoch, history["val_elbo"][-1])
"""

from __future__ import annotations

import copy
import csv
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["Callback", "EarlyStopping", "CSVLogger", "TensorBoardLogger"]


class Callback:
    """Base class: hooks called by ``fit`` with the VAE and the history so far."""

    def on_train_begin(self, vae: Any, history: dict[str, list]) -> None:
        """Before the first step (raise here to refuse to start)."""

    def on_epoch_end(self, epoch: int, history: dict[str, list], vae: Any) -> bool | None:
        """After each epoch (1-based) is recorded in ``history``; True stops training."""
        return None

    def on_train_end(self, vae: Any, history: dict[str, list]) -> None:
        """After the last epoch, also when training stopped early or failed."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` (default the validation ELBO, higher is better) has not
    improved by more than ``min_delta`` for ``patience`` epochs; with ``restore_best``
    the VAE ends with the parameters of its best epoch."""

    def __init__(
        self,
        monitor: str = "val_elbo",
        patience: int = 5,
        min_delta: float = 0.0,
        restore_best: bool = True,
    ):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.restore_best = restore_best
        self.best = -math.inf
        self.best_epoch = 0
        self._best_state: dict | None = None

    def on_train_begin(self, vae: Any, history: dict[str, list]) -> None:
        if self.monitor not in history:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, which fit does not record here "
                f"(records: {sorted(history)}); pass val=... to fit to get 'val_elbo'"
            )
        self.best, self.best_epoch, self._best_state = -math.inf, 0, None

    def on_epoch_end(self, epoch: int, history: dict[str, list], vae: Any) -> bool:
        value = history[self.monitor][-1]
        if value > self.best + self.min_delta:
            self.best, self.best_epoch = value, epoch
            if self.restore_best:
                self._best_state = copy.deepcopy(vae.state_dict())
        return epoch - self.best_epoch >= self.patience

    def on_train_end(self, vae: Any, history: dict[str, list]) -> None:
        if self.restore_best and self._best_state is not None:
            vae.load_state_dict(self._best_state)


class CSVLogger(Callback):
    """Write one CSV row per epoch (all history columns) to ``path``, flushed each epoch.
    An existing file is refused unless ``overwrite=True``. A resumed run starts the file
    with the epochs it resumes (the history ``fit`` restored), written in one rename, so
    that a failure there leaves the old file whole."""

    def __init__(self, path: str | os.PathLike, overwrite: bool = False):
        self.path = Path(path)
        self.overwrite = overwrite

    def on_train_begin(self, vae: Any, history: dict[str, list]) -> None:
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path} exists; pass CSVLogger(..., overwrite=True)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = list(history)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            with open(tmp, "w", newline="") as f:
                rows = csv.writer(f)
                rows.writerow(self.columns)
                rows.writerows(zip(*(history[c] for c in self.columns), strict=True))
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def on_epoch_end(self, epoch: int, history: dict[str, list], vae: Any) -> None:
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([history[c][-1] for c in self.columns])


class TensorBoardLogger(Callback):
    """Log every history column per epoch to TensorBoard (``pip install tensorboard``;
    view with ``tensorboard --logdir LOG_DIR``)."""

    def __init__(self, log_dir: str | os.PathLike):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "TensorBoardLogger needs the tensorboard package: pip install 'pyvae[tensorboard]'"
            ) from e
        self.writer = SummaryWriter(str(log_dir))

    def on_epoch_end(self, epoch: int, history: dict[str, list], vae: Any) -> None:
        for key, values in history.items():
            if key != "epoch":
                self.writer.add_scalar(key, values[-1], epoch)
        self.writer.flush()

    def on_train_end(self, vae: Any, history: dict[str, list]) -> None:
        self.writer.close()

"""The training loop: epochs of steps, with lifecycle hooks for checkpoints and callbacks.

:class:`Trainer` asks no question about its mode: the step (:mod:`pyvae.train.steps`), the
strategy (:mod:`pyvae.train.strategy`, :mod:`pyvae.train.ddp`) and the checkpointer
(:mod:`pyvae.train.checkpointer`) are objects chosen once, by :meth:`Trainer.build`.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import pyro
import torch
from tqdm.auto import tqdm

from ..capabilities import CHECKPOINT, DISTRIBUTED
from ..contracts import check_parts
from ..models import VAE
from ..objectives import DirectELBO
from .checkpointer import Checkpointer, NoCheckpoints, Position, data_fingerprint
from .config import TrainConfig
from .schedule import kl_weight_schedule
from .signals import StopSignals
from .steps import make_step
from .strategy import Local

__all__ = ["Trainer"]

#: How long a process blocked waiting for the others may leave a Ctrl-C or SIGTERM
#: unanswered before it ends itself (distributed training), in seconds.
BLOCKED_GRACE_S = 10.0


class Trainer:
    """One run of :func:`pyvae.fit`: ``Trainer.build(vae, data, val, config).run()``.

    Attributes:
        vae, config, strategy, step, checkpointer: the parts of the run.
        history: per-epoch lists (see :func:`pyvae.fit`).
        position: where the run is (:class:`~pyvae.train.checkpointer.Position`), as
            committed after each completed step.
    """

    def __init__(
        self,
        vae: VAE,
        data: tuple[torch.Tensor, Any, dict],
        val: Any,
        config: TrainConfig,
        strategy: Any,
        step: Any,
        epoch_order: Any,
        checkpointer: Any,
        stop: StopSignals,
    ):
        self.vae, self.val, self.config = vae, val, config
        self.x, self.transform, self.side = data
        self.strategy, self.step, self.epoch_order = strategy, step, epoch_order
        self.checkpointer, self.stop = checkpointer, stop
        self.steps_per_epoch = math.ceil(len(epoch_order) / config.batch_size)
        self.history: dict[str, list[float]] = {
            "epoch": [],
            "train_elbo": [],
            "kl_weight": [],
            "time_s": [],
        }
        if val is not None:
            self.history["val_elbo"] = []
        self.position = Position()
        self._steps_this_call = 0

    @classmethod
    def build(cls, vae: VAE, data: Any, val: Any, config: TrainConfig) -> Trainer:
        """Check the data, start the strategy, seed, and choose the step and checkpointer."""
        if not isinstance(vae, VAE):
            raise TypeError(f"fit() trains a pyvae.VAE, got {type(vae).__name__}")
        check = getattr(config.elbo, "check_vae", None)  # an objective that needs a kind
        if callable(check):  # of VAE refuses another before any work
            check(vae)
        x, transform, side = vae.checked_data(data)  # side: labels, context; {} for a VAE
        if val is not None:
            vae.checked_data(val)
        strategy = cls._strategy(vae, len(x), val, config)
        resumable = config.checkpoint_dir is not None  # hashed here, before it moves
        fingerprint = data_fingerprint(x, transform, side) if resumable else None
        vae.to(strategy.device)
        x = x.to(strategy.device)  # compact (e.g. uint8); transformed batch by batch
        side = {name: value.to(strategy.device) for name, value in side.items()}
        seed = strategy.seed(config.seed)
        elbo = config.elbo if config.elbo is not None else vae.default_elbo(config.optim is None)
        step = make_step(vae, elbo, config.optim, config.lr, strategy, config.clip_norm)
        kl_always_on = config.beta > 0 and config.warmup_epochs == 0  # every part has gradients
        strategy.find_unused_parameters = not (isinstance(elbo, DirectELBO) and kl_always_on)
        checkpointer = NoCheckpoints()
        if resumable:
            settings = {**config.resume_key(), "data": fingerprint}
            if seed is not None:
                settings["seed"] = seed
            checkpointer = Checkpointer(
                config.checkpoint_dir, config.checkpoint_every, config.resume, settings, strategy
            )
        grace = BLOCKED_GRACE_S if strategy.world > 1 else None
        stop = StopSignals(announce=strategy.is_main, blocked_grace_s=grace)
        strategy.stop = stop
        epoch_order = vae.epoch_order(len(x), side, config.batch_size)
        return cls(
            vae, (x, transform, side), val, config, strategy, step, epoch_order, checkpointer, stop
        )

    @staticmethod
    def _strategy(vae: VAE, n: int, val: Any, config: TrainConfig) -> Any:
        if config.checkpoint_dir is not None:
            vae.require(CHECKPOINT)
        if not config.distributed:
            return Local(torch.device(config.device) if config.device is not None else vae.device)
        from .ddp import DDP  # torch.distributed is loaded only for distributed runs

        vae.require(DISTRIBUTED)

        ddp = DDP.start(
            config.device,
            n=n,
            epochs=config.epochs,
            batch_size=config.batch_size,
            seed=config.seed,
            val=val is not None,
            checkpoint=config.checkpoint_dir is not None,
            resume=config.resume,
        )
        if config.batch_size < ddp.world:
            raise ValueError(
                f"batch_size is the global batch, split between the {ddp.world} processes: "
                f"it must be at least {ddp.world}, got {config.batch_size}"
            )
        return ddp

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, list[float]]:
        """Train for the configured epochs; returns the history."""
        self.checkpointer.begin(self)  # the run folder's lock; on resume, the saved state
        try:
            for cb in self.config.callbacks:
                cb.on_train_begin(self.vae, self.history)
            self._epochs()
        finally:
            self.checkpointer.end()
        return self.history

    def _epochs(self) -> None:
        p = self.position
        left = max(0, self.config.epochs - p.epoch + 1) * self.steps_per_epoch - p.batches_done
        show = self.config.progress and self.strategy.is_main
        bar = tqdm(total=max(left, 0), disable=not show, unit="step", desc="fit")
        self.vae.train()
        try:
            with self.stop, contextlib.ExitStack() as quiet:
                while self.position.epoch <= self.config.epochs:
                    self._train_epoch(bar, quiet)
                    if self._end_epoch(bar):
                        break
        except KeyboardInterrupt:
            self.checkpointer.interrupted(self, forced=self.stop.forced)
            raise
        finally:
            bar.close()
            self.vae.eval()
            for cb in self.config.callbacks:
                cb.on_train_end(self.vae, self.history)

    def _train_epoch(self, bar: tqdm, quiet: contextlib.ExitStack) -> None:
        p, cfg, n = self.position, self.config, len(self.x)
        if p.order is None:
            p.order = self.strategy.order(self.epoch_order)
        self._start = time.perf_counter()
        rest = p.order[p.batches_done * cfg.batch_size :]
        shards = self.strategy.shard(self.x, self.transform, self.side, cfg.batch_size, rest)
        for b, (xb, sb) in enumerate(shards, start=p.batches_done):
            first = self._steps_this_call == 0
            if first:  # the parts' contracts, on the first batch, before any update
                check_parts(self.vae, xb if xb.is_floating_point() else xb.float(), **sb)
            weight = kl_weight_schedule(
                p.step_count, self.steps_per_epoch, cfg.beta, cfg.warmup_epochs
            )
            loss = self.step(
                f"epoch {p.epoch}, batch {b + 1}",
                xb,
                num_data=n,
                kl_weight=weight,
                **self.epoch_order.step_kwargs,
                **sb,
            )
            p.step_done(loss * len(xb) / len(p.order))  # each step estimates the full data
            self.checkpointer.step_done(p)
            self._steps_this_call += 1
            if first:  # the model ran once with Pyro's checks: skip them from now on
                quiet.enter_context(pyro.validation_enabled(False))
            # drawn with the bar's next refresh, not forced every step (that slows training)
            bar.set_postfix(epoch=p.epoch, elbo=f"{-loss / n:.2f}", refresh=False)
            bar.update()
            if self.strategy.stop_agreed(self.stop.requested, after_step=True):
                raise KeyboardInterrupt

    def _end_epoch(self, bar: tqdm) -> bool:
        """Close the epoch: its history (with validation) and the callbacks, as one
        transaction; then the checkpoint. Returns whether a callback stops the run."""
        p, cfg, n = self.position, self.config, len(self.x)
        weight = kl_weight_schedule(
            max(p.step_count - 1, 0), self.steps_per_epoch, cfg.beta, cfg.warmup_epochs
        )
        record = {
            "epoch": p.epoch,
            "train_elbo": -self.strategy.sum(p.total) / n,
            "kl_weight": weight,
        }
        if self.val is not None:
            self.vae.eval()
            record["val_elbo"] = self.strategy.elbo(self.vae, self.val)
            self.vae.train()
            bar.set_postfix(epoch=p.epoch, val_elbo=f"{record['val_elbo']:.2f}")
        record["time_s"] = time.perf_counter() - self._start
        for key, value in record.items():
            self.history[key].append(value)
        try:
            stops = [cb.on_epoch_end(p.epoch, self.history, self.vae) for cb in cfg.callbacks]
        except KeyboardInterrupt:  # the epoch is not closed: resume closes it again
            for key in record:
                self.history[key].pop()
            raise
        stop = self.strategy.any(any(stops))  # one process's callback stops all
        p.epoch_done()
        self.checkpointer.step_done(p)
        self.checkpointer.epoch_done(self, last=stop or p.epoch > cfg.epochs)
        if self.strategy.stop_agreed(self.stop.requested, after_step=False):
            raise KeyboardInterrupt
        return stop

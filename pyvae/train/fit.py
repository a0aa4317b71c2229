"""``fit``: train a VAE by stochastic variational inference (a facade over
:class:`~pyvae.train.trainer.Trainer`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pyro.optim
import torch
from pyro.infer.elbo import ELBO

from ..callbacks import Callback
from ..models import VAE
from .config import TrainConfig
from .trainer import Trainer

__all__ = ["fit"]


def fit(
    vae: VAE,
    data: Any,
    val: Any = None,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    elbo: ELBO | None = None,
    optim: pyro.optim.PyroOptim | None = None,
    beta: float = 1.0,
    warmup_epochs: float = 0,
    seed: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    callbacks: Sequence[Callback] | None = (),
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    clip_norm: float | None = None,
    distributed: bool = False,
) -> dict[str, list[float]]:
    """Train ``vae`` by stochastic variational inference.

    Each step is an SVI step on ``vae.model``/``vae.guide`` with ``num_data=N`` and
    ``kl_weight=w``: the data plate scales the minibatch to the full dataset, so losses
    are per dataset and reported here divided by N, in nats per example. With a Pyro
    ``optim`` the step is ``pyro.infer.SVI``'s; by default it is the same update through
    the fast path described under ``elbo`` and ``optim``.

    Args:
        vae: the model to train (in place).
        data: training data: tensor, NumPy array or Dataset, items of ``vae.input_shape``;
            for a variant that takes side information (``vae.side_input``: labels, a
            context), a dataset with targets or a pair ``(x, targets)``: each batch's part
            is passed to the model and guide by that name.
        val: optional validation data, evaluated (ELBO, beta = 1) after each epoch.
        epochs: number of passes over ``data`` (0 only checks the data), each in the
            order :meth:`pyvae.VAE.epoch_order` draws: every item once, in random order,
            or for the semi-supervised VAE every unlabelled item once with the labelled
            items cycled through each batch.
        batch_size: minibatch size.
        lr: learning rate of the default optimizer (:func:`~pyvae.train.steps.default_optimizer`:
            fused ``torch.optim.Adam`` over the VAE's parameters).
        elbo: a Pyro ELBO, e.g. ``TraceMeanField_ELBO()``. Default: the VAE's own
            (:meth:`pyvae.VAE.default_elbo`): ``Trace_ELBO``'s estimator, computed by
            :class:`pyvae.objectives.DirectELBO` from the VAE's parts without recording
            traces (same draws, same gradients) for a plain ``VAE`` with the default
            optimizer, else a fresh ``Trace_ELBO()``; variants may define another.
        optim: a Pyro optimizer, used through ``pyro.infer.SVI``. Default (None): the
            fast path, :func:`~pyvae.train.steps.default_optimizer`: ``torch.optim.Adam`` over
            ``vae.parameters()`` (fused kernel) stepping on the same ELBO gradients (the
            VAE owns all its parameters, so this is the same update as
            ``pyro.optim.Adam`` with one fused optimizer instead of one per parameter).
            Pyro's argument checks run on the first step, then are skipped.
        beta: weight of the KL term (the z sites); beta-VAE for beta != 1.
        warmup_epochs: ramp the KL weight linearly from 0 to ``beta`` over this many epochs.
        seed: seeds torch, NumPy and Python (``pyro.set_rng_seed``) for a reproducible run.
        device: e.g. ``"cuda"``; default: where the VAE's parameters are.
        progress: show a tqdm progress bar.
        callbacks: :class:`pyvae.callbacks.Callback` objects, e.g. ``EarlyStopping()``,
            ``CSVLogger(path)``, ``TensorBoardLogger(log_dir)``.
        checkpoint_dir: write ``checkpoint.pt`` there every ``checkpoint_every`` epochs
            (atomically: parameters, optimizer, random generators, epoch, history, the
            settings), and on Ctrl-C or SIGTERM, which stop the run after the step in
            progress (a second Ctrl-C stops at once, without saving). The folder has one
            writer: it is locked while the run lasts. Needs the default optimizer.
        clip_norm: if given, rescale the gradients so that their total norm is at most
            this before each update (``torch.nn.utils.clip_grad_norm_``).
        resume: continue from the checkpoint in ``checkpoint_dir`` (if there is one; else
            start afresh). ``epochs`` counts from the start of training, so a resumed run
            ends with exactly the parameters an uninterrupted run would have. Refuses
            settings that differ from the checkpoint's (``lr``, ``beta``,
            ``warmup_epochs``, ``batch_size``, ``clip_norm``, ``elbo``, ``seed`` when
            given, the data) with :class:`~pyvae.train.ResumeMismatch` listing each;
            ``epochs``, ``progress``, ``callbacks`` and ``checkpoint_every`` may change.
        distributed: train in each of the processes ``torchrun`` starts (one per GPU, or
            several on the CPU), with ``DistributedDataParallel`` (see
            :mod:`pyvae.distributed`). ``batch_size`` is then the global batch, split
            between the processes, so the run takes the same steps as one process would.
            Only rank 0 writes the checkpoint and shows the progress bar; the history is
            the same on every rank; callbacks run on every rank (give file-writing ones to
            rank 0 only) and one rank's stop stops all. ``device``: None or ``"cuda"``
            (``cuda:LOCAL_RANK``, NCCL) or ``"cpu"`` (gloo). A process that stops
            responding ends the others after ``PYVAE_DDP_TIMEOUT`` seconds (default 120).
            Needs ``vae.supports("distributed")``.

    Returns:
        history: a dict of per-epoch lists: ``epoch``, ``train_elbo`` (the training
        objective, i.e. the KL-weighted ELBO averaged over the epoch's steps),
        ``kl_weight`` (at the epoch's end), ``val_elbo`` (if ``val`` is given) and
        ``time_s``, all ELBOs in nats per example.
    """
    config = TrainConfig.check(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        elbo=elbo,
        optim=optim,
        beta=beta,
        warmup_epochs=warmup_epochs,
        seed=seed,
        device=device,
        progress=progress,
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        resume=resume,
        clip_norm=clip_norm,
        distributed=distributed,
    )
    return Trainer.build(vae, data, val, config).run()

"""Training: :func:`fit` runs ``pyro.infer.SVI`` on a VAE's model and guide."""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyro
import pyro.optim
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.elbo import ELBO
from pyro.infer.util import torch_item, zero_grads
from tqdm.auto import tqdm

from .callbacks import Callback
from .checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .checks import check_int
from .data import batches, source
from .model import VAE
from .objectives import DirectELBO

__all__ = ["fit", "kl_weight_schedule", "checked_step", "torch_step"]


def kl_weight_schedule(step: int, steps_per_epoch: int, beta: float, warmup_epochs: float) -> float:
    """The KL weight at training step ``step`` (0-based): a linear ramp from 0 to ``beta``
    over ``warmup_epochs`` epochs, then ``beta``."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, step / (warmup_epochs * steps_per_epoch))


_ADVICE = (
    "likely causes: a learning rate too high, a likelihood scale collapsing (use a "
    "floor: min_scale), or extreme data values; the parameters were not updated"
)


def _loss_and_grads(loss_and_grads, model, guide, where: str, *args: Any, **kwargs: Any) -> float:
    try:
        return torch_item(loss_and_grads(model, guide, *args, **kwargs))
    except ValueError as e:
        if "nan" not in str(e).lower() and "inf" not in str(e).lower():
            raise
        raise FloatingPointError(f"NaN or inf inside the model at {where}: {_ADVICE}") from e


def _refuse_non_finite(loss: float, params: Iterable[torch.Tensor], where: str) -> None:
    """Raise (after clearing the gradients) if the loss or a gradient is NaN or inf."""
    params = list(params)
    grads = [p.grad.sum() for p in params if p.grad is not None]
    if math.isfinite(loss) and (not grads or bool(torch.isfinite(torch.stack(grads).sum()))):
        return
    zero_grads(params)
    what = f"the loss became {loss}" if not math.isfinite(loss) else "a gradient became NaN/inf"
    raise FloatingPointError(f"{what} at {where}: {_ADVICE}")


def checked_step(
    svi: SVI, where: str, *args: Any, clip_norm: float | None = None, **kwargs: Any
) -> float:
    """``svi.step(*args, **kwargs)`` that refuses to apply a non-finite loss or gradient.

    Like ``SVI.step`` (gradients of the ELBO, then the Pyro optimizer on the parameters
    the trace touched), but a NaN or infinite loss or gradient raises
    ``FloatingPointError`` naming ``where`` *before* the update, so the parameters stay as
    they were.
    """
    with poutine.trace(param_only=True) as capture:
        loss = _loss_and_grads(svi.loss_and_grads, svi.model, svi.guide, where, *args, **kwargs)
    params = {site["value"].unconstrained() for site in capture.trace.nodes.values()}
    _refuse_non_finite(loss, params, where)
    if clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(list(params), clip_norm)
    svi.optim(params)
    zero_grads(params)
    return loss


def torch_step(
    vae: VAE,
    elbo: ELBO | DirectELBO,
    optimizer: torch.optim.Optimizer,
    where: str,
    *args: Any,
    clip_norm: float | None = None,
    **kwargs: Any,
) -> float:
    """The same step with a torch optimizer over ``vae.parameters()`` (the VAE owns all its
    parameters): one multi-tensor update instead of Pyro's one optimizer per parameter."""
    loss = _loss_and_grads(elbo.loss_and_grads, vae.model, vae.guide, where, *args, **kwargs)
    _refuse_non_finite(loss, vae.parameters(), where)
    if clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(vae.parameters(), clip_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


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
        data: training data: tensor, NumPy array or Dataset, items of ``vae.input_shape``.
        val: optional validation data, evaluated (ELBO, beta = 1) after each epoch.
        epochs: number of passes over ``data`` (0 only checks the data).
        batch_size: minibatch size.
        lr: learning rate of the default optimizer ``pyro.optim.Adam``.
        elbo: a Pyro ELBO, e.g. ``TraceMeanField_ELBO()``. Default: ``Trace_ELBO``'s
            estimator, computed by :class:`pyvae.objectives.DirectELBO` from the VAE's
            parts without recording traces (same draws, same gradients) for a plain
            ``VAE`` with the default optimizer, else a fresh ``Trace_ELBO()``.
        optim: a Pyro optimizer, used through ``pyro.infer.SVI``. Default (None): the
            fast path, ``torch.optim.Adam(vae.parameters(), lr)`` stepping on the same
            ELBO gradients (the VAE owns all its parameters, so this is the same update as
            ``pyro.optim.Adam`` with one multi-tensor optimizer instead of one per
            parameter). Pyro's argument checks run on the first step, then are skipped.
        beta: weight of the KL term (the z sites); beta-VAE for beta != 1.
        warmup_epochs: ramp the KL weight linearly from 0 to ``beta`` over this many epochs.
        seed: seeds torch, NumPy and Python (``pyro.set_rng_seed``) for a reproducible run.
        device: e.g. ``"cuda"``; default: where the VAE's parameters are.
        progress: show a tqdm progress bar.
        callbacks: :class:`pyvae.callbacks.Callback` objects, e.g. ``EarlyStopping()``,
            ``CSVLogger(path)``, ``TensorBoardLogger(log_dir)``.
        checkpoint_dir: write ``checkpoint.pt`` there every ``checkpoint_every`` epochs
            (atomically: parameters, optimizer, random generators, epoch, history), and on
            Ctrl-C. Needs the default optimizer.
        clip_norm: if given, rescale the gradients so that their total norm is at most
            this before each update (``torch.nn.utils.clip_grad_norm_``).
        resume: continue from the checkpoint in ``checkpoint_dir`` (if there is one; else
            start afresh). ``epochs`` counts from the start of training, so a resumed run
            ends with exactly the parameters an uninterrupted run would have.
        distributed: train in each of the processes ``torchrun`` starts (one per GPU, or
            several on the CPU), with ``DistributedDataParallel`` (see
            :mod:`pyvae.distributed`). ``batch_size`` is then the global batch, split
            between the processes, so the run takes the same steps as one process would.
            Only rank 0 writes the checkpoint and shows the progress bar; the history is
            the same on every rank; callbacks run on every rank (give file-writing ones to
            rank 0 only) and one rank's stop stops all. ``device``: None or ``"cuda"``
            (``cuda:LOCAL_RANK``, NCCL) or ``"cpu"`` (gloo).

    Returns:
        history: a dict of per-epoch lists: ``epoch``, ``train_elbo`` (the training
        objective, i.e. the KL-weighted ELBO averaged over the epoch's steps),
        ``kl_weight`` (at the epoch's end), ``val_elbo`` (if ``val`` is given) and
        ``time_s``, all ELBOs in nats per example.
    """
    if not isinstance(vae, VAE):
        raise TypeError(f"fit() trains a pyvae.VAE, got {type(vae).__name__}")
    check_int("epochs", epochs, 0)
    check_int("batch_size", batch_size, 1)
    for name, value in (("lr", lr), ("beta", beta), ("warmup_epochs", warmup_epochs)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, got {value!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not beta >= 0:
        raise ValueError(f"beta must be >= 0, got {beta!r}")
    if not warmup_epochs >= 0:
        raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs!r}")
    if elbo is not None and not isinstance(elbo, ELBO):
        raise TypeError(f"elbo must be a Pyro ELBO instance such as Trace_ELBO(), got {elbo!r}")
    check_int("checkpoint_every", checkpoint_every, 1)
    if clip_norm is not None and not (isinstance(clip_norm, numbers.Real) and clip_norm > 0):
        raise ValueError(f"clip_norm must be a number > 0 or None, got {clip_norm!r}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir=... (where the checkpoint is)")
    if checkpoint_dir is not None and optim is not None:
        raise ValueError(
            "checkpoints need fit's default optimizer (torch Adam); drop optim=... or "
            "checkpoint_dir=..."
        )

    callbacks = list(callbacks or ())
    x, transform = source(data)
    vae.check_data(x, transform)
    if val is not None:
        vae.check_data(*source(val))

    ddp = None
    if distributed:  # one of torchrun's processes: join the others, on cuda:LOCAL_RANK or CPU
        from .distributed import Distributed

        same = {"n": len(x), "epochs": epochs, "batch_size": batch_size, "seed": seed}
        same.update(val=val is not None, checkpoint=checkpoint_dir is not None, resume=resume)
        ddp = Distributed.start(device, **same)
        if batch_size < ddp.world:
            raise ValueError(
                f"batch_size is the global batch, split between the {ddp.world} processes: "
                f"it must be at least {ddp.world}, got {batch_size}"
            )
        device = ddp.device
    device = torch.device(device) if device is not None else vae.device
    vae.to(device)
    x = x.to(device)  # compact (e.g. uint8) on the device; transformed batch by batch
    if seed is not None:
        pyro.set_rng_seed(seed)
    if ddp is not None:
        ddp.seed(seed)  # rank r: seed + r

    n = len(x)
    steps_per_epoch = math.ceil(n / batch_size)
    if elbo is None:  # Trace_ELBO, computed without tracing where that is valid
        direct = optim is None and DirectELBO.valid_for(vae)
        elbo = DirectELBO(vae) if direct else Trace_ELBO()
    if optim is None:  # the fast path: torch's Adam over the VAE's own parameters
        adam = torch.optim.Adam(vae.parameters(), lr=lr)

        def step(where: str, *args: Any, **kwargs: Any) -> float:
            return torch_step(vae, elbo, adam, where, *args, clip_norm=clip_norm, **kwargs)
    else:  # pyro.infer.SVI with the given Pyro optimizer
        svi = SVI(vae.model, vae.guide, optim, elbo)

        def step(where: str, *args: Any, **kwargs: Any) -> float:
            return checked_step(svi, where, *args, clip_norm=clip_norm, **kwargs)

    if ddp is not None:  # the same ELBO and optimizer, over DistributedDataParallel
        all_used = isinstance(elbo, DirectELBO) and beta > 0 and warmup_epochs == 0  # KL on
        step = ddp.step_function(vae, elbo, adam if optim is None else optim, clip_norm, all_used)

    history: dict[str, list[float]] = {"epoch": [], "train_elbo": [], "kl_weight": [], "time_s": []}
    if val is not None:
        history["val_elbo"] = []

    step_count, first_epoch, in_progress = 0, 1, None
    checkpoint = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    saved = None
    if resume and ddp is not None:  # read by rank 0, sent to all
        saved = ddp.read_checkpoint(checkpoint)
    elif resume and checkpoint.exists():
        saved = load_checkpoint(checkpoint)  # on the CPU; load_state_dict moves tensors
    if saved is not None:
        if saved["config"] != vae.config:
            raise ValueError(
                f"{checkpoint} was written for another VAE ({saved['config']}); build the same "
                "VAE to resume, or use another checkpoint_dir"
            )
        vae.load_state_dict(saved["state_dict"])
        adam.load_state_dict(saved["optimizer"])
        if set(saved["history"]) != set(history):
            raise ValueError(
                f"{checkpoint} recorded {sorted(saved['history'])}; resume with the same "
                "arguments (val=... given or not) as the run that wrote it"
            )
        history = saved["history"]
        step_count, first_epoch = saved["step_count"], saved["epoch"] + 1
        in_progress = saved.get("in_progress")
        set_rng_state(saved["rng"])

    def save(epoch_done: int, in_progress: dict | None = None) -> None:
        (save_checkpoint if ddp is None else ddp.save_checkpoint)(  # ddp: rank 0 writes
            checkpoint,
            in_progress=in_progress,
            config=vae.config,
            state_dict=vae.state_dict(),
            optimizer=adam.state_dict(),
            rng=rng_state(),
            epoch=epoch_done,
            step_count=step_count,
            history=history,
        )

    for cb in callbacks:
        cb.on_train_begin(vae, history)

    vae.train()
    steps_this_call = 0
    quiet = contextlib.ExitStack()
    if ddp is not None:  # Ctrl-C and SIGTERM stop all ranks at the same batch
        quiet.enter_context(ddp.stop_together_on_signals())
    total_steps = max(0, epochs - first_epoch + 1) * steps_per_epoch
    main = ddp is None or ddp.rank == 0
    bar = tqdm(total=total_steps, disable=not (progress and main), unit="step", desc="fit")
    epoch, order, done, total = first_epoch - 1, None, 0, 0.0
    try:
        for epoch in range(first_epoch, epochs + 1):
            start = time.perf_counter()
            if in_progress is not None:  # an epoch interrupted by Ctrl-C: finish it
                order = in_progress["order"].to(device)
                done, total = in_progress["batches_done"], in_progress["total"]
                bar.update(done)
                in_progress = None
            else:
                order = torch.randperm(n, device=device) if ddp is None else ddp.permutation(n)
                done, total = 0, 0.0
            rest = order[done * batch_size :]
            shards = batches if ddp is None else ddp.batches  # ddp: this rank's share
            for b, xb in enumerate(shards(x, transform, batch_size, order=rest), start=done):
                weight = kl_weight_schedule(step_count, steps_per_epoch, beta, warmup_epochs)
                loss = step(f"epoch {epoch}, batch {b + 1}", xb, num_data=n, kl_weight=weight)
                if steps_this_call == 0:  # the model ran once with Pyro's checks; now skip them
                    quiet.enter_context(pyro.validation_enabled(False))
                steps_this_call += 1
                step_count += 1
                total += loss * len(xb) / n  # each step estimates the full-data loss
                done = b + 1
                bar.update()
                bar.set_postfix(epoch=epoch, elbo=f"{-loss / n:.2f}")
            history["epoch"].append(epoch)
            history["train_elbo"].append(-(total if ddp is None else ddp.sum(total)) / n)
            history["kl_weight"].append(weight)
            if val is not None:
                vae.eval()
                history["val_elbo"].append(
                    float(vae.elbo(val)) if ddp is None else ddp.elbo(vae, val)
                )
                vae.train()
                bar.set_postfix(epoch=epoch, val_elbo=f"{history['val_elbo'][-1]:.2f}")
            history["time_s"].append(time.perf_counter() - start)
            if checkpoint is not None and (epoch % checkpoint_every == 0 or epoch == epochs):
                save(epoch)
            stop = [cb.on_epoch_end(epoch, history, vae) for cb in callbacks]
            if ddp is not None:  # one rank's callback stops all
                stop = [ddp.any(any(stop))]
            if any(stop):
                break
    except KeyboardInterrupt:
        if checkpoint is not None and (ddp is None or ddp.stop_agreed):
            if order is None or history["epoch"][-1:] == [epoch]:  # between epochs
                save(epoch)
            else:  # inside an epoch: save the position too, so a resume is exact
                position = {"order": order.cpu(), "batches_done": done, "total": total}
                save(epoch - 1, in_progress=position)
            if main:
                print(
                    f"\nInterrupted in epoch {epoch} after {done} batches. Saved {checkpoint}; "
                    f"continue with fit(..., checkpoint_dir={str(checkpoint_dir)!r}, resume=True).",
                    file=sys.stderr,
                )
        raise
    finally:
        quiet.close()
        bar.close()
        vae.eval()
        for cb in callbacks:
            cb.on_train_end(vae, history)
    return history

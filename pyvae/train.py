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
from pyro.infer import SVI
from pyro.infer.elbo import ELBO
from pyro.infer.util import zero_grads
from tqdm.auto import tqdm

from .callbacks import Callback
from .checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .checks import STEP_ADVICE, check_int, non_finite_step
from .cuda_graph import GraphedStep, capturable
from .data import batches, side_batches
from .model import VAE
from .objectives import DirectELBO

__all__ = ["fit", "kl_weight_schedule", "checked_step", "torch_step", "default_optimizer"]


def kl_weight_schedule(step: int, steps_per_epoch: int, beta: float, warmup_epochs: float) -> float:
    """The KL weight at training step ``step`` (0-based): a linear ramp from 0 to ``beta``
    over ``warmup_epochs`` epochs, then ``beta``."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, step / (warmup_epochs * steps_per_epoch))


def _loss_and_grads(
    loss_and_grads, model, guide, where: str, *args: Any, **kwargs: Any
) -> torch.Tensor | float:
    """``loss_and_grads(model, guide, *args, **kwargs)``, with Pyro's NaN/inf validation
    errors (raised on the first step, while validation is on) named as such."""
    try:
        return loss_and_grads(model, guide, *args, **kwargs)
    except ValueError as e:
        if "nan" not in str(e).lower() and "inf" not in str(e).lower():
            raise
        raise FloatingPointError(f"NaN or inf inside the model at {where}: {STEP_ADVICE}") from e


def _finite_or_refuse(
    loss: torch.Tensor | float,
    params: Iterable[torch.Tensor],
    where: str,
    clip_norm: float | None = None,
) -> float:
    """The loss as a float, once it and every gradient are known to be finite; else clear
    the gradients and raise ``FloatingPointError`` naming ``where`` (before any update).

    Clips the gradients to a total norm of ``clip_norm`` if given. The loss and the
    gradients' norms come off the device in one transfer (one synchronisation per step).
    """
    params = [p for p in params if p.grad is not None]
    if clip_norm is not None:
        norms = [torch.nn.utils.clip_grad_norm_(params, clip_norm)]
    else:  # one fused kernel over all gradients; NaN or inf in a gradient -> its norm
        norms = list(torch._foreach_norm([p.grad for p in params])) if params else []
    if isinstance(loss, torch.Tensor):
        loss, *norms = torch.stack([loss.detach().to(norms[0]) if norms else loss, *norms]).tolist()
    else:
        norms = torch.stack(norms).tolist() if norms else []
    if math.isfinite(loss) and all(map(math.isfinite, norms)):
        return loss
    zero_grads(params)
    raise non_finite_step(loss, where)


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
    loss = _finite_or_refuse(loss, params, where, clip_norm)
    svi.optim(params)
    zero_grads(params)
    return loss


def default_optimizer(vae: VAE, lr: float) -> torch.optim.Adam:
    """``fit``'s optimizer: Adam over all of the VAE's parameters, with PyTorch's fused
    kernel (the same update as ``torch.optim.Adam``'s default implementation, in one pass
    over all parameters) where their device has one, else the default implementation. On
    CUDA it is capturable, so that a CUDA graph can replay it
    (:class:`pyvae.cuda_graph.GraphedStep`)."""
    params = list(vae.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, capturable=params[0].is_cuda)
    except RuntimeError:  # no fused kernel for these parameters' device or dtype
        return torch.optim.Adam(params, lr=lr)


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
    parameters): one multi-tensor update instead of Pyro's one optimizer per parameter.

    With :class:`~pyvae.objectives.DirectELBO` the loss stays on the device until the
    finiteness check, so a step synchronises with the device once, as a hand-written
    PyTorch step that logs its loss does. (On CUDA, ``fit`` replays this step from a
    CUDA graph: :class:`pyvae.cuda_graph.GraphedStep`.)"""
    loss_and_grads = (
        elbo.tensor_loss_and_grads if isinstance(elbo, DirectELBO) else elbo.loss_and_grads
    )
    loss = _loss_and_grads(loss_and_grads, vae.model, vae.guide, where, *args, **kwargs)
    loss = _finite_or_refuse(loss, vae.parameters(), where, clip_norm)
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
        lr: learning rate of the default optimizer ``pyro.optim.Adam``.
        elbo: a Pyro ELBO, e.g. ``TraceMeanField_ELBO()``. Default: the VAE's own
            (:meth:`pyvae.VAE.default_elbo`): ``Trace_ELBO``'s estimator, computed by
            :class:`pyvae.objectives.DirectELBO` from the VAE's parts without recording
            traces (same draws, same gradients) for a plain ``VAE`` with the default
            optimizer, else a fresh ``Trace_ELBO()``; variants may define another.
        optim: a Pyro optimizer, used through ``pyro.infer.SVI``. Default (None): the
            fast path, :func:`default_optimizer`: ``torch.optim.Adam`` over
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
    x, transform, side = vae.checked_data(data)  # side: labels, context, ...; {} for a VAE
    if val is not None:
        vae.checked_data(val)

    ddp = None
    if distributed:  # one of torchrun's processes: join the others, on cuda:LOCAL_RANK or CPU
        from .distributed import Distributed

        if side:
            raise ValueError(
                f"distributed=True trains VAEs of x alone; {type(vae).__name__} takes "
                f"{vae.side_input}=... per item, which distributed training does not split yet"
            )
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
    side = {name: value.to(device) for name, value in side.items()}
    if seed is not None:
        pyro.set_rng_seed(seed)
    if ddp is not None:
        ddp.seed(seed)  # rank r: seed + r

    n = len(x)
    epoch_order = vae.epoch_order(n, side, batch_size)  # each item once, or stratified
    steps_per_epoch = math.ceil(len(epoch_order) / batch_size)
    if elbo is None:  # the VAE's own: Trace_ELBO, computed without tracing where valid
        elbo = vae.default_elbo(torch_optimizer=optim is None)
    if optim is None:  # the fast path: torch's Adam over the VAE's own parameters
        adam = default_optimizer(vae, lr)

        def step(where: str, *args: Any, **kwargs: Any) -> float:
            return torch_step(vae, elbo, adam, where, *args, clip_norm=clip_norm, **kwargs)

        graph = device.type == "cuda" and isinstance(elbo, DirectELBO) and capturable(vae)
        if ddp is None and graph:  # replay the step from a CUDA graph
            step = GraphedStep(vae, elbo, adam, step, clip_norm)
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
        flags = {k: adam.defaults[k] for k in ("fused", "capturable")}
        adam.load_state_dict(saved["optimizer"])
        for group in adam.param_groups:  # the kernels for this device, not the saver's
            group.update(flags)
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
                order = epoch_order(device) if ddp is None else ddp.permutation(n)
                done, total = 0, 0.0
            rest = order[done * batch_size :]
            shards = batches if ddp is None else ddp.batches  # ddp: this rank's share
            xs = shards(x, transform, batch_size, order=rest)
            sides = side_batches(side, batch_size, order=rest)  # endless {} for a plain VAE
            for b, (xb, sb) in enumerate(zip(xs, sides, strict=False), start=done):
                weight = kl_weight_schedule(step_count, steps_per_epoch, beta, warmup_epochs)
                where = f"epoch {epoch}, batch {b + 1}"
                loss = step(
                    where, xb, num_data=n, kl_weight=weight, **epoch_order.step_kwargs, **sb
                )
                if steps_this_call == 0:  # the model ran once with Pyro's checks; now skip them
                    quiet.enter_context(pyro.validation_enabled(False))
                steps_this_call += 1
                step_count += 1
                total += loss * len(xb) / len(order)  # each step estimates the full-data loss
                done = b + 1
                # the postfix is drawn with the bar's next refresh (at most 10 per second),
                # not forced every step: a forced redraw per step slows training
                bar.set_postfix(epoch=epoch, elbo=f"{-loss / n:.2f}", refresh=False)
                bar.update()
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

"""Distributed training: two processes (gloo, loopback) against one process on the
global batch; only rank 0 writes; a NaN or a SIGTERM on one rank stops both; mismatched
arguments are refused; the CLI."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
import torch.multiprocessing as mp
from helpers import small_vae
from pyro.infer import Trace_ELBO

from pyvae import ConditionalVAE, data, fit
from pyvae.checkpoint import CHECKPOINT_NAME, load_checkpoint
from pyvae.objectives import DirectELBO
from pyvae.train import kl_weight_schedule

ROOT = Path(__file__).resolve().parent.parent
# 37 = 3 * 12 + 1: each epoch ends with a global batch of one item, so rank 1 has none.
N, BATCH, WORLD, SEED, EPOCHS = 37, 12, 2, 5, 2
ADAM = {"epochs": EPOCHS, "batch_size": BATCH, "seed": SEED, "lr": 1e-2, "warmup_epochs": 1}
SGD_LR = 1e-4
TIMEOUT_S = 240  # a hang fails the test instead of blocking CI


def dataset():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(N, 1, 8, 8, generator=g) < 0.5).float()


def labels():
    return torch.arange(N) % 3


def build_cvae(seed=0):
    pyro.set_rng_seed(seed)
    return ConditionalVAE.build((1, 8, 8), z_dim=2, num_classes=3, net_kwargs={"hidden": (8,)})


def build(seed=0):
    pyro.set_rng_seed(seed)
    return small_vae("mog", z_dim=2, hidden=8, components=2)


class SignalAt:
    """A per-batch transform that sends ``sig`` to its own process at its ``at``-th
    training batch, or returns NaN there if ``sig`` is None."""

    def __init__(self, at, sig=None):
        self.at, self.sig, self.calls = at, sig, 0

    def __call__(self, x):
        if len(x) < N:  # a training batch, not the up-front check of all the data
            self.calls += 1
            if self.calls == self.at:
                if self.sig is None:
                    return x * torch.nan
                os.kill(os.getpid(), self.sig)
        return x


def worker(rank, port, tmp):
    """One of two processes, set up as torchrun sets them up; saves what it saw."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
    )
    torch.set_num_threads(1)
    tmp, x, out = Path(tmp), dataset(), {}

    vae = build(seed=rank)  # rank 1 starts elsewhere: DDP starts both from rank 0's
    out["adam_history"] = fit(
        vae, x, distributed=True, progress=False, checkpoint_dir=tmp / f"rank{rank}", **ADAM
    )
    out["adam"] = vae.state_dict()

    vae = build(seed=rank)
    sgd = pyro.optim.SGD({"lr": SGD_LR})
    fit(vae, x, epochs=EPOCHS, batch_size=BATCH, seed=SEED, warmup_epochs=1,
        elbo=Trace_ELBO(), optim=sgd, distributed=True, progress=False)  # fmt: skip
    out["pyro_sgd"] = vae.state_dict()

    cvae = build_cvae(seed=rank)  # side information: each rank takes its items' labels
    fit(cvae, data.ArrayDataset(x, labels()), epochs=EPOCHS, batch_size=BATCH, seed=SEED,
        warmup_epochs=1, optim=pyro.optim.SGD({"lr": SGD_LR}), distributed=True,
        progress=False)  # fmt: skip
    out["cvae_sgd"] = cvae.state_dict()

    # SIGTERM on rank 1 during its 6th batch (epoch 2, batch 2): both stop, then resume.
    stopped = data.ArrayDataset(x, transform=SignalAt(6 if rank == 1 else 0, signal.SIGTERM))
    try:
        fit(build(), stopped, distributed=True, progress=False, checkpoint_dir=tmp / "s", **ADAM)
    except KeyboardInterrupt:
        out["stopped"] = "KeyboardInterrupt"
    if rank == 0:
        saved = load_checkpoint(tmp / "s" / CHECKPOINT_NAME)
        out["stopped_at"] = [saved["epoch"], saved["in_progress"]["batches_done"]]
    vae = build()
    same = data.ArrayDataset(x, transform=SignalAt(0, signal.SIGTERM))  # the same data
    fit(vae, same, distributed=True, progress=False, checkpoint_dir=tmp / "s", resume=True, **ADAM)
    out["resumed"] = vae.state_dict()

    nan = data.ArrayDataset(x, transform=SignalAt(2 if rank == 1 else 0))  # NaN on rank 1
    try:
        fit(build(), nan, distributed=True, progress=False, **ADAM)
    except FloatingPointError as e:
        out["nan"] = str(e)

    try:  # the ranks disagree: an error on both, before any step
        fit(build(), x, epochs=1 + rank, distributed=True, progress=False)
    except ValueError as e:
        out["mismatch"] = str(e)
    torch.save(out, tmp / f"rank{rank}.pt")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Run :func:`worker` in two processes; returns the folder and what each rank saved."""
    tmp = tmp_path_factory.mktemp("ddp")
    context = mp.start_processes(
        worker, args=(free_port(), str(tmp)), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=max(1.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                pytest.fail(f"the two processes did not finish in {TIMEOUT_S} s (a hang)")
    finally:
        for p in context.processes:
            if p.is_alive():
                p.kill()
    return tmp, [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]


def reference(vae, loss, optimizer, side=None):
    """One process, taking each global batch's gradient: ``loss(vae, xb, kl_weight)``
    (scaled to N items) of each rank's share, weighted by the share's size, summed.

    The z of an item are drawn from the random stream of the rank that held it in the
    two-process run (rank r seeds with SEED + r; rank 0 draws the order), so the
    gradients are the same ones, not just equal in expectation.
    """
    x, streams = dataset(), []
    side = side if side is not None else torch.zeros(N)
    for r in range(WORLD):
        pyro.set_rng_seed(SEED + r)
        streams.append(torch.get_rng_state())

    def on_stream(r, f):
        torch.set_rng_state(streams[r])
        result = f()
        streams[r] = torch.get_rng_state()
        return result

    steps_per_epoch, step = -(-N // BATCH), 0
    for _ in range(EPOCHS):
        order = on_stream(0, lambda: torch.randperm(N))
        for chunk in order.split(BATCH):
            w = kl_weight_schedule(step, steps_per_epoch, 1.0, 1)
            for r in range(WORLD):
                mine = chunk[r::WORLD]
                share = len(mine) / len(chunk)
                if len(mine) == 0:  # the rank still draws z for one item, with weight 0
                    mine = chunk[:1]
                draw = lambda mine=mine, w=w: loss(vae, x[mine], w, side[mine])  # noqa: E731
                (share * on_stream(r, draw)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
    return vae.state_dict()


def direct_loss(vae, xb, kl_weight, side=None):
    return DirectELBO(vae).differentiable_loss(xb, num_data=N, kl_weight=kl_weight)


def trace_elbo_loss(vae, xb, kl_weight, side=None):
    return Trace_ELBO().differentiable_loss(
        vae.model, vae.guide, xb, num_data=N, kl_weight=kl_weight
    )


def conditional_loss(vae, xb, kl_weight, c):
    return Trace_ELBO().differentiable_loss(
        vae.model, vae.guide, xb, num_data=N, kl_weight=kl_weight, c=c
    )


def assert_close(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


def test_two_processes_take_the_steps_of_one_on_the_global_batch(ranks):
    _, (rank0, rank1) = ranks
    for k, v in rank0["adam"].items():
        assert torch.equal(v, rank1["adam"][k]), k  # the same parameters on both ranks
    vae = build()
    expected = reference(vae, direct_loss, torch.optim.Adam(vae.parameters(), lr=ADAM["lr"]))
    assert_close(rank0["adam"], expected)
    assert not torch.equal(rank0["adam"]["decoder.net.0.weight"], build().decoder.net[0].weight)


def test_pyro_elbo_and_pyro_optimizer_take_the_same_steps(ranks):
    """Trace_ELBO through Pyro, and plain SGD, which (unlike Adam) is not blind to a
    wrong scale of the averaged gradient."""
    _, (rank0, rank1) = ranks
    vae = build()
    expected = reference(vae, trace_elbo_loss, torch.optim.SGD(vae.parameters(), lr=SGD_LR))
    assert_close(rank0["pyro_sgd"], expected)
    assert_close(rank1["pyro_sgd"], expected)


def test_a_conditional_vae_takes_the_steps_of_one_process(ranks):
    """Side information is split with the items: each rank gets its items' labels."""
    _, (rank0, rank1) = ranks
    vae = build_cvae()
    c = vae.check_side(labels(), N)
    expected = reference(vae, conditional_loss, torch.optim.SGD(vae.parameters(), lr=SGD_LR), c)
    assert_close(rank0["cvae_sgd"], expected)
    assert_close(rank1["cvae_sgd"], expected)
    assert not torch.equal(rank0["cvae_sgd"]["decoder.net.0.weight"],
                           build_cvae().decoder.net[0].weight)  # fmt: skip


def test_only_rank_0_writes_the_checkpoint_and_the_history_is_the_same(ranks):
    tmp, (rank0, rank1) = ranks
    assert not (tmp / "rank1").exists()
    saved = load_checkpoint(tmp / "rank0" / CHECKPOINT_NAME)
    assert saved["epoch"] == EPOCHS and len(saved["rank_rng"]) == WORLD
    assert not torch.equal(saved["rank_rng"][0]["torch"], saved["rank_rng"][1]["torch"])
    assert rank0["adam_history"]["train_elbo"] == rank1["adam_history"]["train_elbo"]
    assert rank0["adam_history"]["epoch"] == [1, 2]


def test_sigterm_on_one_rank_stops_both_at_one_batch_and_resume_is_exact(ranks):
    tmp, (rank0, rank1) = ranks
    assert rank0["stopped"] == rank1["stopped"] == "KeyboardInterrupt"
    assert rank0["stopped_at"] == [1, 2]  # epoch 1 done, 2 batches of epoch 2
    for k, v in rank0["adam"].items():  # bitwise: the uninterrupted run's parameters
        assert torch.equal(rank0["resumed"][k], v), k
        assert torch.equal(rank1["resumed"][k], v), k


def test_nan_on_one_rank_stops_both_with_an_error(ranks):
    _, (rank0, rank1) = ranks
    for r in (rank0, rank1):
        assert "NaN or inf on process 1 at epoch 1, batch 2" in r["nan"]


def test_ranks_given_different_arguments_both_refuse_to_start(ranks):
    _, (rank0, rank1) = ranks
    for r in (rank0, rank1):
        assert "different settings" in r["mismatch"] and "epochs: [1, 2]" in r["mismatch"]


def test_distributed_needs_torchrun(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="torchrun --standalone --nproc_per_node"):
        fit(build(), dataset(), epochs=1, distributed=True, progress=False)


def test_pyvae_train_distributed_under_torchrun(tmp_path):
    np.save(tmp_path / "x.npy", dataset().numpy())
    out = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    train = "-m pyvae.cli train --distributed --epochs 2 --batch-size 8 --z-dim 2 --quiet".split()
    cmd = [*torchrun, *train, "--dataset", str(tmp_path / "x.npy"), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, text=True, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its two processes
        pytest.fail(f"pyvae train --distributed did not finish in {TIMEOUT_S} s")
    assert proc.returncode == 0, output
    names = {p.name for p in out.iterdir()}
    assert {"model.pt", "config.json", "history.json", "history.csv", CHECKPOINT_NAME} <= names
    assert json.loads((out / "config.json").read_text())["args"]["distributed"] is True
    csv_lines = (out / "history.csv").read_text().splitlines()
    assert len(csv_lines) == 3  # header and two epochs, written once (by rank 0)


class FreezeAt:
    """A per-batch transform that freezes its process (SIGSTOP) at its ``at``-th training
    batch, after writing ``marker``."""

    def __init__(self, at, marker):
        self.at, self.marker, self.calls = at, marker, 0

    def __call__(self, x):
        if len(x) < N:
            self.calls += 1
            if self.calls == self.at:
                Path(self.marker).write_text("frozen")
                os.kill(os.getpid(), signal.SIGSTOP)
        return x


def frozen_worker(rank, port, tmp, timeout_s):
    """Rank 1 freezes at its second batch; rank 0 records how it ends."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                      PYVAE_DDP_TIMEOUT=str(timeout_s))  # fmt: skip
    torch.set_num_threads(1)
    x = data.ArrayDataset(dataset(), transform=FreezeAt(2 if rank == 1 else 0, f"{tmp}/frozen"))
    start = time.monotonic()
    try:
        fit(build(), x, distributed=True, progress=False, **ADAM)
    except RuntimeError as e:
        Path(tmp, "rank0.txt").write_text(f"{time.monotonic() - start:.1f}\n{e}")


def start_frozen(tmp, timeout_s):
    context = mp.start_processes(frozen_worker, args=(free_port(), str(tmp), timeout_s),
                                 nprocs=WORLD, join=False, start_method="spawn")  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp / "frozen").exists():
        assert time.monotonic() < deadline, "rank 1 never reached its second batch"
        time.sleep(0.1)
    return context


def stop_all(context):
    for p in context.processes:
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
        p.join()


def test_a_peer_that_stops_responding_ends_the_others_with_a_clear_error(tmp_path):
    context = start_frozen(tmp_path, timeout_s=4)
    try:
        context.processes[0].join(60)
        assert context.processes[0].exitcode == 0
        elapsed, message = (tmp_path / "rank0.txt").read_text().split("\n", 1)
        assert "another process stopped or stopped responding" in message
        assert "PYVAE_DDP_TIMEOUT" in message
        assert float(elapsed) < 30  # bounded by the timeout, not gloo's 30 minutes
    finally:
        stop_all(context)


def test_sigterm_stops_a_process_blocked_waiting_for_a_frozen_peer(tmp_path):
    context = start_frozen(tmp_path, timeout_s=600)
    try:
        time.sleep(1)  # rank 0 is now blocked in the batch's collective
        sent = time.monotonic()
        os.kill(context.processes[0].pid, signal.SIGTERM)
        context.processes[0].join(60)
        assert context.processes[0].exitcode == 128 + signal.SIGTERM
        assert time.monotonic() - sent < 30
    finally:
        stop_all(context)

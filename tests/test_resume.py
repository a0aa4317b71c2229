"""Resume is exact after a stop at any point, refuses other settings, and a run folder has
one writer."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyro
import pytest
import torch
from helpers import small_vae

import pyvae
from pyvae import data, fit
from pyvae.callbacks import Callback
from pyvae.checkpoint import CHECKPOINT_NAME, load_checkpoint
from pyvae.train import ResumeMismatch
from pyvae.train.lock import LOCK_NAME, RunFolderInUse, RunLock

FROZEN = Path(__file__).parent / "frozen"
EPOCHS, BATCH = 3, 16  # 48 items: 3 batches an epoch


def items():
    """48 grey-level 8x8 images, binarized afresh at each batch (the transform draws)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (48, 1, 8, 8), dtype=torch.uint8, generator=g)
    return data.ArrayDataset(x, transform=data.DynamicBinarize())


def build():
    pyro.set_rng_seed(0)
    return small_vae("mog", z_dim=2, hidden=8, components=2)


def run(vae, tmp=None, **kw):
    kw = {"epochs": EPOCHS, "batch_size": BATCH, "seed": 1, "progress": False, **kw}
    return fit(vae, items(), val=items(), checkpoint_dir=tmp, **kw)


@pytest.fixture(scope="module")
def reference():
    """An uninterrupted run: its parameters and history."""
    pyro.clear_param_store()
    vae = build()
    history = run(vae)
    return vae.state_dict(), history


def assert_resumes_exactly(tmp, reference, stopped_at=None):
    saved = load_checkpoint(tmp / CHECKPOINT_NAME)
    if stopped_at is not None:
        progress = saved["in_progress"]["batches_done"] if saved["in_progress"] else 0
        assert (saved["epoch"], progress) == stopped_at
    assert not (tmp / LOCK_NAME).exists()  # released when the run stopped
    vae = build()
    history = run(vae, tmp, resume=True)
    state, expected = reference
    for k, v in state.items():
        assert torch.equal(vae.state_dict()[k], v), k  # bitwise, on the CPU
    assert history["train_elbo"] == expected["train_elbo"]
    assert history["val_elbo"] == expected["val_elbo"]


class Tripwire:
    """Calls ``action`` at the ``at``-th call of the wrapped function (training calls only)."""

    def __init__(self, fn, at, action):
        self.fn, self.at, self.action, self.calls = fn, at, action, 0

    def __call__(self, *args, **kwargs):
        out = self.fn(*args, **kwargs)
        self.calls += 1
        if self.calls == self.at:
            self.action()
        return out


def raise_ki():
    raise KeyboardInterrupt


def send(sig):
    return lambda: os.kill(os.getpid(), sig)


@pytest.mark.parametrize(
    "action, stopped_at",
    [
        (raise_ki, (1, 0)),  # raised inside the model after z is drawn: that step not done
        (send(signal.SIGTERM), (1, 1)),  # a signal there: the step finishes, then it stops
        (send(signal.SIGINT), (1, 1)),
    ],
)
def test_a_stop_inside_the_model_after_z_is_drawn(tmp_path, reference, action, stopped_at):
    vae = build()
    # decoder calls: the parts' check, epoch 1's 3 steps, its validation, epoch 2's 1st step
    vae.decoder.forward = Tripwire(vae.decoder.forward, 6, action)
    with pytest.raises(KeyboardInterrupt):
        run(vae, tmp_path)
    assert_resumes_exactly(tmp_path, reference, stopped_at)


def test_a_signal_after_an_update_before_its_bookkeeping(tmp_path, reference, monkeypatch):
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", Tripwire(step, 4, send(signal.SIGTERM)))
    with pytest.raises(KeyboardInterrupt):
        run(build(), tmp_path)
    monkeypatch.undo()
    assert_resumes_exactly(tmp_path, reference, (1, 1))  # step 4 is counted once


@pytest.mark.parametrize("action, stopped_at", [(raise_ki, (0, 3)), (send(signal.SIGINT), (1, 0))])
def test_a_stop_during_validation(tmp_path, reference, action, stopped_at):
    vae = build()
    vae.elbo = Tripwire(vae.elbo, 1, action)  # epoch 1's validation
    with pytest.raises(KeyboardInterrupt):
        run(vae, tmp_path)
    saved = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert len(saved["history"]["train_elbo"]) == len(saved["history"]["val_elbo"])
    assert_resumes_exactly(tmp_path, reference, stopped_at)


class StopIn(Callback):
    def __init__(self, action):
        self.action = action

    def on_epoch_end(self, epoch, history, vae):
        if epoch == 2:
            self.action()


@pytest.mark.parametrize("action, stopped_at", [(raise_ki, (1, 3)), (send(signal.SIGTERM), (2, 0))])
def test_a_stop_inside_a_callback(tmp_path, reference, action, stopped_at):
    with pytest.raises(KeyboardInterrupt):
        run(build(), tmp_path, callbacks=[StopIn(action)])
    assert_resumes_exactly(tmp_path, reference, stopped_at)


def test_a_signal_between_epochs(tmp_path, reference):
    vae = build()
    order = vae.epoch_order

    class SignalOnSecondDraw:  # the signal comes as epoch 2's order is drawn
        def __init__(self, inner):
            self.inner, self.step_kwargs = inner, inner.step_kwargs
            self.draw = Tripwire(inner, 2, send(signal.SIGTERM))

        def __len__(self):
            return len(self.inner)

        def __call__(self, device=None):
            return self.draw(device)

    def epoch_order(*args):
        return SignalOnSecondDraw(order(*args))

    vae.epoch_order = epoch_order
    with pytest.raises(KeyboardInterrupt):
        run(vae, tmp_path)
    assert_resumes_exactly(tmp_path, reference, (1, 1))  # after epoch 2's first step


def test_resume_refuses_other_settings_and_lists_each(tmp_path):
    run(build(), tmp_path, epochs=1)
    with pytest.raises(ResumeMismatch) as e:
        run(build(), tmp_path, resume=True, lr=1e-2, beta=0.5)
    assert set(e.value.differences) == {"lr", "beta"}
    assert not (tmp_path / LOCK_NAME).exists()  # a refused run leaves no lock behind
    assert "lr: 0.001 there, 0.01 now" in str(e.value) and "same arguments" in str(e.value)
    for change in (
        {"warmup_epochs": 1},
        {"batch_size": 8},
        {"seed": 2},
        {"clip_norm": 1.0},
        {"elbo": pyro.infer.Trace_ELBO()},
    ):
        with pytest.raises(ResumeMismatch, match=next(iter(change))):
            run(build(), tmp_path, resume=True, **change)
    other = data.ArrayDataset(items().data.flip(0), transform=data.DynamicBinarize())
    with pytest.raises(ResumeMismatch, match="data"):
        fit(build(), other, val=items(), epochs=2, batch_size=BATCH, progress=False,
            checkpoint_dir=tmp_path, resume=True)  # fmt: skip
    history = run(build(), tmp_path, resume=True, epochs=2, seed=None)  # more epochs: fine
    assert history["epoch"] == [1, 2]


def test_a_run_folder_has_one_writer(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(f"{other.pid}\n")
        with pytest.raises(RunFolderInUse, match=f"in use by process {other.pid}"):
            run(build(), tmp_path, epochs=1)
        assert not (tmp_path / CHECKPOINT_NAME).exists()
    finally:
        other.kill()
        other.wait()
    with pytest.warns(RuntimeWarning, match="is gone"):  # its process is dead: stale
        run(build(), tmp_path, epochs=1)
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path):  # re-entrant in one process (the CLI holds it around fit)
        run(build(), tmp_path, epochs=2, resume=True)
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())


def test_files_of_pyvae_0_1_still_load_and_resume(tmp_path):
    vae = pyvae.load(FROZEN / "model-2026-12-01.pt")
    saved = load_checkpoint(FROZEN / "checkpoint-2026-12-01.pt")
    for k, v in saved["state_dict"].items():
        assert torch.equal(vae.state_dict()[k], v), k
    expected = torch.load(FROZEN / "expected-2026-12-01.pt", weights_only=True)
    shutil.copy(FROZEN / "checkpoint-2026-12-01.pt", tmp_path / CHECKPOINT_NAME)
    fresh = pyvae.load(FROZEN / "model-2026-12-01.pt")
    history = fit(fresh, expected["x"], epochs=3, batch_size=16, progress=False,
                  checkpoint_dir=tmp_path, resume=True)  # fmt: skip
    assert history["epoch"] == [1, 2, 3]
    assert history["train_elbo"][:2] == expected["history"]["train_elbo"]
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 3


def test_stop_signals_defer_the_first_signal_and_restore_what_was_there():
    import socket

    from pyvae.train.signals import StopSignals

    before = signal.getsignal(signal.SIGINT)
    a, b = socket.socketpair()
    b.setblocking(False)
    previous_fd = signal.set_wakeup_fd(b.fileno())  # e.g. an event loop's
    try:
        with StopSignals(announce=False, blocked_grace_s=5) as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.requested and not stop.forced  # the first: a request, no exception
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)  # the second: at once
            assert stop.forced
        assert signal.getsignal(signal.SIGINT) is before
        assert signal.set_wakeup_fd(b.fileno()) == b.fileno()  # the event loop's fd is back
    finally:
        signal.set_wakeup_fd(previous_fd)
        a.close()
        b.close()

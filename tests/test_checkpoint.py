"""Checkpoints: atomic writes, exact resume, Ctrl-C, refusal of foreign files."""

import os

import pyro
import pytest
import torch
from helpers import small_vae

from pyvae import data, fit
from pyvae.callbacks import Callback
from pyvae.checkpoint import CHECKPOINT_NAME, load_checkpoint


@pytest.fixture(scope="module")
def sprites():
    return data.load("sprites", n_train=256, n_test=64, size=16)


def build():
    pyro.set_rng_seed(0)
    return small_vae("mog", shape=(1, 16, 16), z_dim=3)


def test_a_resumed_run_ends_exactly_like_an_uninterrupted_one(tmp_path, sprites):
    train, test = sprites
    full = build()
    hist_full = fit(full, train, val=test, epochs=4, batch_size=64, seed=1, progress=False)

    first = build()
    fit(
        first,
        train,
        val=test,
        epochs=2,
        batch_size=64,
        seed=1,
        progress=False,
        checkpoint_dir=tmp_path,
    )
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 2
    resumed = build()  # a new process would build the same VAE again
    hist = fit(
        resumed,
        train,
        val=test,
        epochs=4,
        batch_size=64,
        seed=1,  # the same seed, or none (another is refused)
        progress=False,
        checkpoint_dir=tmp_path,
        resume=True,
    )
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k  # bitwise, on CPU
    assert hist["epoch"] == [1, 2, 3, 4]
    assert hist["val_elbo"] == hist_full["val_elbo"]


def test_resume_without_a_checkpoint_starts_afresh_and_bad_options_are_refused(tmp_path, sprites):
    train, _ = sprites
    hist = fit(build(), train, epochs=1, progress=False, checkpoint_dir=tmp_path, resume=True)
    assert hist["epoch"] == [1] and (tmp_path / CHECKPOINT_NAME).exists()
    with pytest.raises(ValueError, match="checkpoint_dir"):
        fit(build(), train, epochs=1, progress=False, resume=True)
    with pytest.raises(ValueError, match="optimizer"):
        fit(
            build(),
            train,
            epochs=1,
            progress=False,
            checkpoint_dir=tmp_path,
            optim=pyro.optim.Adam({"lr": 1e-3}),
        )
    other = small_vae("normal", shape=(1, 16, 16), z_dim=3)
    with pytest.raises(ValueError, match="another VAE"):
        fit(other, train, epochs=2, progress=False, checkpoint_dir=tmp_path, resume=True)


class Interrupt(Callback):
    def on_epoch_end(self, epoch, history, vae):
        if epoch == 2:
            raise KeyboardInterrupt


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path, sprites, capsys):
    train, _ = sprites
    vae = build()
    with pytest.raises(KeyboardInterrupt):
        fit(
            vae,
            train,
            epochs=5,
            batch_size=64,
            progress=False,
            checkpoint_dir=tmp_path,
            checkpoint_every=10,
            callbacks=[Interrupt()],
        )
    assert "resume=True" in capsys.readouterr().err
    saved = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    # epoch 2's steps are done, but not its end (a callback was interrupted): it is saved
    # as in progress with every batch done, and the resumed run closes it again
    assert saved["epoch"] == 1 and saved["in_progress"]["batches_done"] == 4
    assert saved["history"]["epoch"] == [1]
    assert all(torch.equal(saved["state_dict"][k], v) for k, v in vae.state_dict().items())
    hist = fit(
        build(),
        train,
        epochs=3,
        batch_size=64,
        progress=False,
        checkpoint_dir=tmp_path,
        resume=True,
    )
    assert hist["epoch"] == [1, 2, 3]


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, sprites, monkeypatch):
    train, _ = sprites
    fit(build(), train, epochs=1, progress=False, checkpoint_dir=tmp_path)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        fit(build(), train, epochs=1, progress=False, checkpoint_dir=tmp_path)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before
    assert os.listdir(tmp_path) == [CHECKPOINT_NAME]  # no temporary file left behind


def test_foreign_files_are_not_checkpoints(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a loadable pyvae checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    torch.save({"format": "other"}, tmp_path / "y.pt")
    with pytest.raises(ValueError, match="not a pyvae checkpoint"):
        load_checkpoint(tmp_path / "y.pt")


def test_a_process_killed_while_saving_leaves_the_previous_checkpoint(tmp_path):
    """The child writes a checkpoint, then is killed (SIGKILL) half-way through the next."""
    import signal
    import subprocess
    import sys
    import textwrap

    path = tmp_path / CHECKPOINT_NAME
    script = textwrap.dedent(
        f"""
        import os, signal, torch
        from pyvae.checkpoint import save_checkpoint
        from pyvae.io import atomic_write
        save_checkpoint({str(path)!r}, epoch=1, weights=torch.ones(1000))

        def half_then_die(tmp):
            with open(tmp, "wb") as f:
                f.write(b"half a checkpoint")
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)

        atomic_write({str(path)!r}, half_then_die, overwrite=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    saved = load_checkpoint(path)
    assert saved["epoch"] == 1 and torch.equal(saved["weights"], torch.ones(1000))


class InterruptAtBatch:
    """A per-batch transform (as float) that raises KeyboardInterrupt at one batch."""

    def __init__(self, batch_size, at):
        self.batch_size, self.at, self.calls = batch_size, at, 0

    def __call__(self, x):
        if len(x) == self.batch_size:  # a training batch, not the up-front data check
            self.calls += 1
            if self.calls == self.at:
                raise KeyboardInterrupt
        return x.float()


def test_ctrl_c_inside_an_epoch_resumes_exactly(tmp_path, sprites):
    train, _ = sprites
    ok = data.ArrayDataset(train.data, transform=InterruptAtBatch(64, at=-1))
    full = build()
    fit(full, ok, epochs=3, batch_size=64, seed=1, progress=False)

    stop = data.ArrayDataset(train.data, transform=InterruptAtBatch(64, at=7))  # epoch 2
    with pytest.raises(KeyboardInterrupt):
        fit(build(), stop, epochs=3, batch_size=64, seed=1, progress=False, checkpoint_dir=tmp_path)
    saved = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert saved["epoch"] == 1 and saved["in_progress"]["batches_done"] == 2
    resumed = build()
    hist = fit(
        resumed, ok, epochs=3, batch_size=64, progress=False, checkpoint_dir=tmp_path, resume=True
    )
    assert hist["epoch"] == [1, 2, 3]
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_resume_with_other_arguments_is_refused(tmp_path, sprites):
    train, test = sprites
    fit(build(), train, epochs=1, progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="same arguments"):
        fit(
            build(), train, val=test, epochs=2, progress=False, checkpoint_dir=tmp_path, resume=True
        )

"""pyvae.callbacks through fit(): hook order, stopping, EarlyStopping, CSV and TensorBoard logs."""

import configparser
import copy
import csv
import math
import re
import sys
import types
from pathlib import Path

import pytest
import torch

from pyvae import VAE, data, fit
from pyvae.callbacks import Callback, CSVLogger, EarlyStopping, TensorBoardLogger

FIT = {"batch_size": 64, "lr": 1e-2, "progress": False}


# --------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def sprites():
    return data.load("sprites", n_train=64, n_test=32, size=16)


@pytest.fixture
def image_vae():
    return VAE.build(input_shape=(1, 16, 16), z_dim=3, net_kwargs={"hidden": (16,)})


@pytest.fixture
def vectors():
    g = torch.Generator().manual_seed(1)
    return torch.randn(64, 12, generator=g), torch.randn(16, 12, generator=g)


@pytest.fixture
def vae():
    return VAE.build(input_shape=(12,), z_dim=2, likelihood="gaussian", net_kwargs={"hidden": (8,)})


def state(vae):
    return copy.deepcopy(vae.state_dict())


def same_state(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Recorder(Callback):
    """Records every hook call with a copy of the history it saw."""

    def __init__(self):
        self.events = []
        self.vaes = []

    def on_train_begin(self, vae, history):
        self.events.append(("begin", copy.deepcopy(history)))
        self.vaes.append(vae)

    def on_epoch_end(self, epoch, history, vae):
        self.events.append(("epoch", epoch, copy.deepcopy(history), vae.training))
        self.vaes.append(vae)

    def on_train_end(self, vae, history):
        self.events.append(("end", copy.deepcopy(history), vae.training))
        self.vaes.append(vae)

    def kinds(self):
        return [e[0] if e[0] != "epoch" else e[1] for e in self.events]


class StopAt(Callback):
    def __init__(self, epoch, value=True):
        self.epoch, self.value = epoch, value

    def on_epoch_end(self, epoch, history, vae):
        return self.value if epoch == self.epoch else None


class FakeMonitor(Callback):
    """Overwrite the newest value of ``key`` with a scripted sequence (put it first)."""

    def __init__(self, values, key="val_elbo"):
        self.values, self.key = values, key

    def on_epoch_end(self, epoch, history, vae):
        history[self.key][-1] = self.values[epoch - 1]


class Snapshots(Callback):
    """The VAE's parameters at the end of each epoch."""

    def __init__(self):
        self.states = {}

    def on_epoch_end(self, epoch, history, vae):
        self.states[epoch] = state(vae)


# --------------------------------------------------------------------------- the hooks
def test_hooks_are_called_in_order_with_the_growing_history(vae, vectors):
    x, val = vectors
    rec = Recorder()
    hist = fit(vae, x, val=val, epochs=3, callbacks=[rec], **FIT)
    assert rec.kinds() == ["begin", 1, 2, 3, "end"]
    assert all(v is vae for v in rec.vaes)

    begin = rec.events[0][1]
    assert set(begin) == set(hist) and all(v == [] for v in begin.values())
    for epoch, event in enumerate(rec.events[1:4], start=1):
        _, seen_epoch, seen, training = event
        assert seen_epoch == epoch
        assert seen["epoch"] == list(range(1, epoch + 1))
        assert all(len(v) == epoch for v in seen.values())
        assert {k: v for k, v in seen.items() if k != "time_s"} == {
            k: v[:epoch] for k, v in hist.items() if k != "time_s"
        }
        assert training  # during training
    _, final, training = rec.events[-1]
    assert final == hist
    assert not training  # fit leaves the VAE in eval mode before on_train_end


def test_on_train_begin_runs_before_the_first_step(vae, vectors):
    x, _ = vectors
    before = state(vae)

    class CheckUntrained(Callback):
        def on_train_begin(self, vae, history):
            self.untouched = same_state(vae.state_dict(), before)

    cb = CheckUntrained()
    fit(vae, x, epochs=1, callbacks=[cb], **FIT)
    assert cb.untouched
    assert not same_state(vae.state_dict(), before)  # and training did change it


def test_base_callback_hooks_do_nothing(vae, vectors):
    x, _ = vectors
    hist = fit(vae, x, epochs=2, callbacks=[Callback()], **FIT)
    assert hist["epoch"] == [1, 2]
    assert Callback().on_epoch_end(1, hist, vae) is None


def test_no_epochs_still_calls_begin_and_end(vae, vectors):
    x, _ = vectors
    rec = Recorder()
    hist = fit(vae, x, epochs=0, callbacks=[rec], **FIT)
    assert rec.kinds() == ["begin", "end"]
    assert hist["epoch"] == []


class FailingTransform:
    """A per-batch transform that raises once ``armed`` is set."""

    armed = False

    def __call__(self, x):
        if self.armed:
            raise RuntimeError("the data went away")
        return x.float()


def test_on_train_end_is_called_when_training_raises(vae, vectors):
    x, _ = vectors
    transform = FailingTransform()
    dataset = data.ArrayDataset(x, transform=transform)

    class Arm(Callback):
        def on_epoch_end(self, epoch, history, vae):
            transform.armed = True  # the next batch (epoch 2) fails

    rec = Recorder()
    with pytest.raises(RuntimeError, match="the data went away"):
        fit(vae, dataset, epochs=3, callbacks=[rec, Arm()], **FIT)
    assert rec.kinds() == ["begin", 1, "end"]
    _, final, training = rec.events[-1]
    assert final["epoch"] == [1]
    assert not training


def test_on_train_end_is_called_when_a_callback_raises(vae, vectors):
    x, _ = vectors

    class Boom(Callback):
        def on_epoch_end(self, epoch, history, vae):
            if epoch == 2:
                raise KeyError("boom")

    first, last = Recorder(), Recorder()
    with pytest.raises(KeyError, match="boom"):
        fit(vae, x, epochs=4, callbacks=[first, Boom(), last], **FIT)
    assert first.kinds() == ["begin", 1, 2, "end"]
    assert last.kinds() == ["begin", 1, "end"]


@pytest.mark.parametrize("value", [True, 1])
def test_on_epoch_end_returning_true_stops_after_that_epoch(vae, vectors, value):
    x, val = vectors
    rec = Recorder()
    hist = fit(vae, x, val=val, epochs=10, callbacks=[StopAt(2, value), rec], **FIT)
    assert hist["epoch"] == [1, 2]
    assert all(len(v) == 2 for v in hist.values())
    # every callback still sees the epoch that stopped training, then the end
    assert rec.kinds() == ["begin", 1, 2, "end"]


def test_returning_false_or_none_does_not_stop(vae, vectors):
    x, _ = vectors
    hist = fit(vae, x, epochs=3, callbacks=[StopAt(1, False), StopAt(2, None)], **FIT)
    assert hist["epoch"] == [1, 2, 3]


# --------------------------------------------------------------------------- EarlyStopping
def feed(es, vae, values, key="val_elbo"):
    """Drive an EarlyStopping by hand; return its answers, epoch by epoch."""
    history = {"epoch": [], "train_elbo": [], key: []}
    es.on_train_begin(vae, history)
    answers = []
    for epoch, value in enumerate(values, start=1):
        history["epoch"].append(epoch)
        history["train_elbo"].append(0.0)
        history[key].append(value)
        answers.append(bool(es.on_epoch_end(epoch, history, vae)))
    return answers


def test_early_stopping_waits_patience_epochs_without_improvement(vae):
    es = EarlyStopping(patience=3)
    assert feed(es, vae, [1.0, 2.0, 1.5, 1.9, 2.0, 0.0]) == [False] * 4 + [True, True]
    assert (es.best, es.best_epoch) == (2.0, 2)
    # an improvement resets the count
    es = EarlyStopping(patience=2)
    assert feed(es, vae, [1.0, 0.0, 2.0, 1.0, 3.0, 1.0, 1.0]) == [False] * 6 + [True]
    assert es.best_epoch == 5


def test_early_stopping_min_delta(vae):
    es = EarlyStopping(patience=2, min_delta=0.1)
    # +0.05 and +0.08 are not improvements by more than 0.1
    assert feed(es, vae, [1.0, 1.05, 1.08]) == [False, False, True]
    assert es.best_epoch == 1
    es = EarlyStopping(patience=2, min_delta=0.0)
    assert feed(es, vae, [1.0, 1.05, 1.08, 1.09]) == [False] * 4
    assert es.best_epoch == 4


def test_early_stopping_nan_is_not_an_improvement(vae):
    es = EarlyStopping(patience=2)
    assert feed(es, vae, [1.0, math.nan, math.nan]) == [False, False, True]
    assert es.best == 1.0


def test_early_stopping_another_monitor(vae):
    es = EarlyStopping(monitor="train_elbo", patience=1)
    assert feed(es, vae, [-3.0, -2.0, -2.5], key="train_elbo") == [False, False, True]


def test_early_stopping_starts_afresh_for_each_fit(vae):
    es = EarlyStopping(patience=1)
    feed(es, vae, [5.0, 1.0])
    assert feed(es, vae, [1.0, 2.0]) == [False, False]
    assert (es.best, es.best_epoch) == (2.0, 2)


def test_early_stopping_stops_fit_after_patience_epochs(vae, vectors):
    x, val = vectors
    values = [1.0, 3.0, 2.0, 2.5, 1.0, 0.0, 4.0, 5.0]
    es = EarlyStopping(patience=3)
    hist = fit(vae, x, val=val, epochs=8, callbacks=[FakeMonitor(values), es], **FIT)
    assert hist["epoch"] == [1, 2, 3, 4, 5]  # best at 2, then 3 epochs without improvement
    assert hist["val_elbo"] == values[:5]
    assert (es.best, es.best_epoch) == (3.0, 2)


def test_early_stopping_on_real_validation_elbo(vae, vectors):
    """A learning rate too small to change the ELBO: no improvement after epoch 1."""
    x, val = vectors
    es = EarlyStopping(patience=2, min_delta=5.0)
    hist = fit(vae, x, val=val, epochs=10, callbacks=[es], batch_size=64, lr=1e-9, progress=False)
    assert hist["epoch"] == [1, 2, 3]
    assert es.best_epoch == 1


def test_restore_best_restores_the_best_epochs_parameters(vectors):
    x, val = vectors
    # a learned likelihood scale: PyroParams are restored too
    vae = VAE.build(
        input_shape=(12,),
        z_dim=2,
        likelihood="gaussian",
        likelihood_kwargs={"scale": "learned"},
        net_kwargs={"hidden": (8,)},
    )
    snaps = Snapshots()
    values = [1.0, 3.0, 2.0, 2.5, 1.0]
    es = EarlyStopping(patience=3, restore_best=True)
    fit(vae, x, val=val, epochs=5, callbacks=[FakeMonitor(values), snaps, es], **FIT)
    assert not same_state(snaps.states[2], snaps.states[5])
    assert same_state(vae.state_dict(), snaps.states[2])
    # the restored parameters are the ones used from now on
    codes = vae.encode(val).mean
    fit(vae, x, epochs=1, batch_size=64, lr=1e-12, progress=False)
    torch.testing.assert_close(vae.encode(val).mean, codes)


def test_restore_best_false_keeps_the_last_parameters(vae, vectors):
    x, val = vectors
    snaps = Snapshots()
    es = EarlyStopping(patience=2, restore_best=False)
    fit(vae, x, val=val, epochs=5, callbacks=[FakeMonitor([2.0, 1.0, 1.0]), snaps, es], **FIT)
    assert es.best_epoch == 1
    assert same_state(vae.state_dict(), snaps.states[3])


def test_restore_best_also_when_another_callback_stops(vae, vectors):
    x, val = vectors
    snaps = Snapshots()
    es = EarlyStopping(patience=5)
    callbacks = [FakeMonitor([1.0, 2.0, 0.0]), snaps, es, StopAt(3)]
    hist = fit(vae, x, val=val, epochs=6, callbacks=callbacks, **FIT)
    assert hist["epoch"] == [1, 2, 3]
    assert same_state(vae.state_dict(), snaps.states[2])


def test_early_stopping_without_its_monitor_refuses_to_start(vae, vectors):
    x, _ = vectors
    before = state(vae)
    rec = Recorder()
    with pytest.raises(ValueError, match="val_elbo") as info:
        fit(vae, x, epochs=3, callbacks=[EarlyStopping(), rec], **FIT)
    assert "val=" in str(info.value)
    assert same_state(vae.state_dict(), before)
    assert rec.events == []  # refused before anything ran
    with pytest.raises(ValueError, match="'nope'"):
        fit(vae, x, val=x, epochs=1, callbacks=[EarlyStopping(monitor="nope")], **FIT)
    assert same_state(vae.state_dict(), before)


@pytest.mark.parametrize("patience", [0, -1])
def test_early_stopping_refuses_patience_below_one(patience):
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=patience)


# --------------------------------------------------------------------------- CSVLogger
def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_logger_writes_a_header_and_a_row_per_epoch(image_vae, sprites, tmp_path):
    train, test = sprites
    path = tmp_path / "logs" / "run1" / "history.csv"  # folders are made
    hist = fit(image_vae, train, val=test, epochs=3, callbacks=[CSVLogger(path)], **FIT)
    header, *rows = read_csv(path)
    assert header == list(hist)
    assert set(header) == {"epoch", "train_elbo", "kl_weight", "val_elbo", "time_s"}
    assert len(rows) == 3
    for i, row in enumerate(rows):
        assert [float(v) for v in row] == [hist[c][i] for c in header]
    assert [int(row[0]) for row in rows] == [1, 2, 3]


def test_csv_logger_flushes_every_epoch(vae, vectors, tmp_path):
    x, _ = vectors
    path = tmp_path / "h.csv"

    class Peek(Callback):
        def __init__(self):
            self.rows = []

        def on_epoch_end(self, epoch, history, vae):
            self.rows.append(len(read_csv(path)) - 1)

    peek = Peek()
    fit(vae, x, epochs=3, callbacks=[CSVLogger(path), peek], **FIT)
    assert peek.rows == [1, 2, 3]


def test_csv_logger_keeps_the_rows_of_a_resumed_run(vae, vectors, tmp_path):
    """On resume, on_train_begin gets the restored history: its rows stay in the file."""
    x, val = vectors
    path = tmp_path / "h.csv"
    fit(vae, x, val=val, epochs=2, callbacks=[CSVLogger(path)], checkpoint_dir=tmp_path, **FIT)
    first = read_csv(path)
    logger = CSVLogger(path, overwrite=True)
    hist = fit(
        vae, x, val=val, epochs=3, callbacks=[logger], checkpoint_dir=tmp_path, resume=True, **FIT
    )
    header, *rows = read_csv(path)
    assert read_csv(path)[:3] == first and len(rows) == 3
    assert [[float(v) for v in row] for row in rows] == [
        [hist[c][i] for c in header] for i in range(3)
    ]


def test_csv_logger_leaves_the_old_file_whole_if_it_cannot_write(tmp_path, monkeypatch):
    path = tmp_path / "h.csv"
    path.write_text("epoch\n1\n")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pyvae.callbacks.os.replace", full)
    with pytest.raises(OSError, match="No space"):
        CSVLogger(path, overwrite=True).on_train_begin(None, {"epoch": [1, 2]})
    assert path.read_text() == "epoch\n1\n" and [p.name for p in tmp_path.iterdir()] == ["h.csv"]


def test_csv_logger_with_early_stopping_logs_the_epochs_run(vae, vectors, tmp_path):
    x, val = vectors
    path = tmp_path / "h.csv"
    es = EarlyStopping(patience=1)
    callbacks = [FakeMonitor([1.0, 0.5, 2.0]), CSVLogger(path), es]
    hist = fit(vae, x, val=val, epochs=5, callbacks=callbacks, **FIT)
    header, *rows = read_csv(path)
    assert len(rows) == len(hist["epoch"]) == 2
    assert [float(r[header.index("val_elbo")]) for r in rows] == [1.0, 0.5]


def test_csv_logger_refuses_an_existing_file(vae, vectors, tmp_path):
    x, _ = vectors
    path = tmp_path / "h.csv"
    path.write_text("keep me\n")
    before = state(vae)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fit(vae, x, epochs=2, callbacks=[CSVLogger(path)], **FIT)
    assert path.read_text() == "keep me\n"
    assert same_state(vae.state_dict(), before)  # refused before training


def test_csv_logger_overwrites_when_asked(vae, vectors, tmp_path):
    x, _ = vectors
    path = tmp_path / "h.csv"
    path.write_text("old,content\n1,2\n3,4\n5,6\n7,8\n")
    hist = fit(vae, x, epochs=2, callbacks=[CSVLogger(str(path), overwrite=True)], **FIT)
    header, *rows = read_csv(path)
    assert header == list(hist) and len(rows) == 2


# --------------------------------------------------------------------------- TensorBoardLogger
def test_tensorboard_logger_writes_event_files(vae, vectors, tmp_path):
    pytest.importorskip("tensorboard")
    x, val = vectors
    log_dir = tmp_path / "tb"
    fit(vae, x, val=val, epochs=2, callbacks=[TensorBoardLogger(log_dir)], **FIT)
    events = list(log_dir.glob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)


def test_tensorboard_logger_without_tensorboard_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(ImportError, match="pip install"):
        TensorBoardLogger(tmp_path / "tb")
    assert not (tmp_path / "tb").exists()


def test_tensorboard_install_hint_names_a_declared_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError) as info:
        TensorBoardLogger(tmp_path / "tb")
    extra = re.search(r"pyvae\[(\w+)\]", str(info.value))
    assert extra is not None
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    assert extra.group(1) in cfg["options.extras_require"]


class FakeWriter:
    """Stands in for torch.utils.tensorboard.SummaryWriter."""

    instances = []

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.scalars = []
        self.flushes = 0
        FakeWriter.instances.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def close(self):
        self.closed = True

    def flush(self):
        self.flushes += 1


def test_tensorboard_logger_logs_every_column_per_epoch(monkeypatch, vae, vectors, tmp_path):
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    monkeypatch.setattr(FakeWriter, "instances", [])
    x, val = vectors
    hist = fit(vae, x, val=val, epochs=2, callbacks=[TensorBoardLogger(tmp_path / "tb")], **FIT)
    (writer,) = FakeWriter.instances
    assert writer.log_dir == str(tmp_path / "tb")
    columns = [c for c in hist if c != "epoch"]
    expected = [(c, hist[c][i], i + 1) for i in range(2) for c in columns]
    assert writer.scalars == expected
    assert writer.flushes >= 2  # flushed each epoch

"""What the reproduction recipes share: a resumable folder per row, model selection on the
validation split, a resumable test-set evaluation and the ``--results`` flag.

A row's folder (``~/.cache/pyvae/benchmark-runs/<script>/<row>/`` by default, or under
``$PYVAE_BENCH_RUNS``: outside the work tree) holds, as the run
goes: ``settings.json`` (what the row was started with; a rerun with other settings is
refused rather than mixed in), fit's ``checkpoint.pt``, ``best.pt`` and ``best.json``
(the best epoch so far on the validation split, its score, and whether early stopping
ended training), ``trained.json`` (training is over), the evaluation's partial results,
and ``done.json`` (the finished row): the same command continues from whatever is there,
and a finished row is only printed again.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _results  # benchmarks/_results.py, beside this file
import pyro
import torch

from pyvae.callbacks import Callback
from pyvae.checkpoint import CHECKPOINT_NAME, load_checkpoint
from pyvae.train.checkpointer import RESUME_HINT

__all__ = [
    "EpochTimer",
    "KeepBest",
    "ProgressLine",
    "RowFolder",
    "add_common_flags",
    "chunked_log_likelihood",
    "fit_summary",
    "minutes",
    "setup",
]


def minutes(seconds: float) -> str:
    """A duration in words: ``42 s``, ``12.5 min``, ``3.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def runs_root() -> Path:
    """Where the rows' run folders go by default: ``$PYVAE_BENCH_RUNS``, else
    ``~/.cache/pyvae/benchmark-runs``: outside the work tree, so that a fresh checkout of
    the project (a new session) still finds its runs and continues them."""
    default = Path.home() / ".cache" / "pyvae" / "benchmark-runs"
    return Path(os.environ.get("PYVAE_BENCH_RUNS", default))


def add_common_flags(parser, out: str) -> None:
    """``--out`` (a folder ``out`` under :func:`runs_root`), ``--results``, ``--device``,
    ``--root`` and ``--seed``."""
    default = str(runs_root() / Path(out).name)
    parser.add_argument("--out", default=default, help="the rows' run folders (%(default)s)")
    parser.add_argument(
        "--results",
        default=None,
        help="folder for the results JSON (default: benchmarks/results, or $PYVAE_BENCH_RESULTS)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--root", default="../shared/data", help="the data folder")
    parser.add_argument("--seed", type=int, default=0)


def setup(args) -> None:
    """Apply ``--results``; make an interruption say to rerun the same command."""
    if args.results is not None:
        _results.RESULTS = Path(args.results)
    RESUME_HINT.set(
        "continue with the same command: " + shlex.join([Path(sys.executable).name, *sys.argv])
    )


class RowFolder:
    """One row's run folder: its settings checked against the ones it was started with
    (``ignore``: settings that may change between calls, e.g. the device)."""

    def __init__(self, out: str | Path, row: str, settings: dict[str, Any], ignore=("device",)):
        self.path = Path(out) / row
        self.path.mkdir(parents=True, exist_ok=True)
        file = self.path / "settings.json"
        if file.exists():
            then = json.loads(file.read_text())
            differ = {
                k: (then.get(k), v)
                for k, v in settings.items()
                if k not in ignore and then.get(k) != v
            }
            if differ:
                listed = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in differ.items())
                raise SystemExit(
                    f"{self.path} holds a run with other settings ({listed}). Rerun with "
                    "its settings to continue it, or give another --out (or delete the folder) "
                    "to start afresh."
                )
        file.write_text(json.dumps(settings, indent=1))

    def read(self, name: str) -> Any:
        file = self.path / name
        return json.loads(file.read_text()) if file.exists() else None

    def write(self, name: str, content: Any) -> None:
        file = self.path / name
        tmp = file.with_name(f".{file.name}.tmp")
        tmp.write_text(json.dumps(content, indent=1))
        tmp.replace(file)


class EpochTimer(Callback):
    """The seconds per epoch of this ``fit`` call so far (epochs a resume restored do not
    count), for the time left that the callbacks below print."""

    def on_train_begin(self, vae, history):
        self.first = len(history["epoch"])  # epochs restored by a resume
        self.started = time.perf_counter()

    def seconds_per_epoch(self, epoch: int) -> float:
        return (time.perf_counter() - self.started) / max(epoch - self.first, 1)


class KeepBest(EpochTimer):
    """After each epoch: the validation score (``score(vae, history)``, higher is better),
    printed with the time left; the best epoch's model is saved to ``folder/best.pt``
    and its score to ``best.json``, so that a resumed run keeps choosing among all its
    epochs. With ``patience``, training stops when the best epoch is ``patience`` epochs
    old (early stopping); ``best.json`` then says so (``"stopped": true``).

    ``offset``: epochs before this ``fit`` call (a run in stages); ``total``: the run's
    last epoch (for the time left, an upper bound with early stopping).
    """

    def __init__(
        self,
        folder: RowFolder,
        score: Callable[[Any, dict], float],
        total: int,
        patience: int | None = None,
        offset: int = 0,
        what: str = "validation ELBO",
    ):
        self.folder, self.score, self.total = folder, score, total
        self.patience, self.offset, self.what = patience, offset, what
        self.best = folder.read("best.json")

    def on_epoch_end(self, epoch, history, vae):
        score = float(self.score(vae, history))
        at = self.offset + epoch
        if not math.isfinite(score):
            raise RuntimeError(f"the {self.what} of epoch {at} is {score}")
        if self.best is None or score > self.best["score"]:
            vae.save(self.folder.path / "best.pt", overwrite=True)
            self.best = {"epoch": at, "score": score, "stopped": False}
        stop = self.patience is not None and at - self.best["epoch"] >= self.patience
        self.best["stopped"] = bool(stop)
        self.folder.write("best.json", self.best)
        per_epoch = self.seconds_per_epoch(epoch)
        left = per_epoch * (self.total - at)
        bound = "at most " if self.patience is not None else ""
        print(
            f"  epoch {at:4d}/{self.total}: objective {history['train_elbo'][-1]:8.2f}, "
            f"{self.what} {score:8.2f} (best {self.best['score']:.2f}, epoch "
            f"{self.best['epoch']}); {per_epoch:.1f} s/epoch, {bound}{minutes(left)} left",
            flush=True,
        )
        if stop:
            print(f"  early stopping: no better {self.what} for {self.patience} epochs")
        return stop


class ProgressLine(EpochTimer):
    """After each epoch of a ``fit`` with no validation score (M1 of the m1m2 recipe):
    the epoch of ``total``, the training objective and an estimate of the time left."""

    def __init__(self, total: int):
        self.total = total

    def on_epoch_end(self, epoch, history, vae):
        per_epoch = self.seconds_per_epoch(epoch)
        print(
            f"  epoch {epoch:4d}/{self.total}: objective {history['train_elbo'][-1]:8.2f}; "
            f"{per_epoch:.1f} s/epoch, {minutes(per_epoch * (self.total - epoch))} left",
            flush=True,
        )


def fit_summary(history: dict[str, list] | None, directory: Path | None = None) -> dict:
    """The epochs a ``fit`` ran and their seconds, from its history, or from the
    checkpoint in ``directory`` (a run that stopped early and was interrupted before it
    recorded that)."""
    if history is None:
        history = load_checkpoint(directory / CHECKPOINT_NAME)["history"]
    return {"epochs": len(history["epoch"]), "seconds": float(sum(history["time_s"]))}


@torch.no_grad()
def chunked_log_likelihood(
    vae,
    x: torch.Tensor,
    num_samples: int,
    folder: RowFolder,
    seed: int,
    chunk: int = 1000,
    batch_size: int = 100,
) -> torch.Tensor:
    """``vae.log_likelihood`` of each item of ``x`` (importance sampling with
    ``num_samples`` draws), ``chunk`` items at a time, each chunk's values saved in the
    folder (``test_loglik.pt``) so that an interrupted evaluation continues where it
    stopped; each chunk draws from its own seed, so the values do not depend on where it
    was interrupted."""
    file = folder.path / "test_loglik.pt"
    key = {"num_samples": num_samples, "chunk": chunk, "n": len(x), "seed": seed}
    saved = torch.load(file) if file.exists() else None
    values = saved["values"] if saved is not None and saved["key"] == key else torch.empty(0)
    started, first = time.perf_counter(), len(values)
    while len(values) < len(x):
        i = len(values)
        pyro.set_rng_seed(seed + i // chunk)
        part = vae.log_likelihood(x[i : i + chunk], num_samples, batch_size).cpu()
        values = torch.cat([values, part.double()])
        tmp = file.with_name(".test_loglik.pt.tmp")
        torch.save({"key": key, "values": values}, tmp)
        tmp.replace(file)
        per_item = (time.perf_counter() - started) / (len(values) - first)
        print(
            f"  log-likelihood: {len(values)}/{len(x)} test images, mean "
            f"{values.mean():.2f} so far; {minutes(per_item * (len(x) - len(values)))} left",
            flush=True,
        )
    return values

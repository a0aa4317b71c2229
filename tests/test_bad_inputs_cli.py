"""Bad inputs to the ``pyvae`` command line, as one table.

Each case names the command line, the exit status and a fragment of the error, and the
test checks that the error is one short line in the command line's words (no traceback),
given before any work: nothing in the working folder is written or changed (except the
rows a training run appends to its ``history.csv`` before a full disk stops it).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from pyvae.cli import main

#: The flags of a tiny training run.
TINY = ("--limit", "64", "--epochs", "1", "--z-dim", "2", "--quiet")
TRAIN = ("train", "--dataset", "bin.npy", *TINY)


@dataclass(frozen=True)
class Case:
    """A bad command line: ``argv`` (run in a copy of the working folder), the exit
    status, a fragment of the error, what to prepare first (``setup(folder,
    monkeypatch)``) and the files that may grow."""

    id: str
    argv: tuple[str, ...]
    fragment: str
    code: int = 2
    setup: Callable[[Path, pytest.MonkeyPatch], None] | None = None
    grows: tuple[str, ...] = ()


# --------------------------------------------------------------------------- setups
def _not_writable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "readonly").mkdir()
    real, readonly = os.access, (folder / "readonly").resolve()

    def access(path, mode, **kwargs) -> bool:  # as for a user without write permission
        return False if Path(path).resolve() == readonly else real(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)


def _lock_held(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "run" / ".pyvae.lock").write_text(f"{os.getppid()}\n")  # a live process


def _disk_full(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)


def _no_config(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "run" / "config.json").unlink()


def _corrupt_config(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = folder / "run" / "config.json"
    path.write_text(path.read_text()[:40])


def _edit_dataset(name: str | Callable[[Path], str]) -> Callable:
    def setup(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = folder / "run" / "config.json"
        config = json.loads(path.read_text())
        config["data"]["dataset"] = name(folder) if callable(name) else name
        path.write_text(json.dumps(config))

    return setup


def _changed_data(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np.save(folder / "other.npy", np.zeros((80, 1, 8, 8), np.float32))
    _edit_dataset(lambda f: str(f / "other.npy"))(folder, monkeypatch)


def _same_name_elsewhere(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose config.json names its data as typed ("bin.npy"), used from a folder
    holding another file of that name: the fingerprint tells them apart."""
    _edit_dataset("bin.npy")(folder, monkeypatch)
    (folder / "elsewhere").mkdir()
    np.save(folder / "elsewhere" / "bin.npy", np.ones((80, 1, 8, 8), np.float32))
    monkeypatch.chdir(folder / "elsewhere")


def _no_encoding(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def encode(*args, **kwargs):
        raise AssertionError("compress encoded the data before refusing its output")

    monkeypatch.setattr("pyvae.compress.lossless.encode", encode)


def _compressed(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "x.bin").write_bytes(b"PYVAE-BB not decoded")
    np.save(folder / "x.npy", np.zeros(3))


def _bug(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def elbo_terms(*args, **kwargs):
        raise RuntimeError("something unforeseen")

    monkeypatch.setattr("pyvae.evaluate.elbo_terms", elbo_terms)


def _vector_run(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second run, of 6-dimensional vectors: no background for the 8x8 images' run."""
    argv = ["train", "--dataset", "real.npy", "--likelihood", "gaussian", *TINY, "--out", "vec"]
    assert main(argv) == 0


# --------------------------------------------------------------------------- the table
CASES = [
    # --out: the run folder
    Case("out-is-a-file", (*TRAIN, "--out", "afile"), "--out afile is a file, not a folder"),
    Case("out-under-a-file", (*TRAIN, "--out", "afile/run"), "afile is a file, so no folder"),
    Case(
        "out-not-writable",
        (*TRAIN, "--out", "readonly/run"),
        "no permission to write in",
        setup=_not_writable,
    ),
    Case("out-holds-a-run", (*TRAIN, "--out", "run"), "not empty; choose another --out"),
    Case(
        "out-in-use-resume",
        (*TRAIN, "--out", "run", "--resume"),
        f"--out run is in use by process {os.getppid()}",
        setup=_lock_held,
    ),
    Case(
        "out-in-use-overwrite",  # the loser of two writers deletes nothing
        (*TRAIN, "--out", "run", "--overwrite"),
        "choose another --out",
        setup=_lock_held,
    ),
    # numbers: argparse types, before anything is read
    Case("lr-inf", (*TRAIN, "--out", "new", "--lr", "inf"), "argument --lr: must be a finite"),
    Case("lr-nan", (*TRAIN, "--out", "new", "--lr", "nan"), "argument --lr: must be a finite"),
    Case("lr-zero", (*TRAIN, "--out", "new", "--lr", "0"), "argument --lr: must be a finite"),
    Case("beta-negative", (*TRAIN, "--out", "new", "--beta", "-1"), "argument --beta"),
    Case("warmup-inf", (*TRAIN, "--out", "new", "--warmup-epochs", "inf"), "--warmup-epochs"),
    Case(
        "limit-negative",
        (*TRAIN, "--out", "new", "--limit", "-5"),
        "--limit: must be an integer >= 1",
    ),
    Case(
        "limit-zero", (*TRAIN, "--out", "new", "--limit", "0"), "--limit: must be an integer >= 1"
    ),
    Case("epochs-zero", (*TRAIN, "--out", "new", "--epochs", "0"), "argument --epochs"),
    Case("batch-size-zero", (*TRAIN, "--out", "new", "--batch-size", "0"), "argument --batch-size"),
    Case("z-dim-zero", (*TRAIN, "--out", "new", "--z-dim", "0"), "argument --z-dim"),
    Case("seed-negative", (*TRAIN, "--out", "new", "--seed", "-1"), "argument --seed"),
    Case("scale-word", (*TRAIN, "--out", "new", "--scale", "big"), "argument --scale"),
    Case("scale-negative", (*TRAIN, "--out", "new", "--scale", "-1"), "argument --scale"),
    # --device
    Case(
        "device-absent",
        (*TRAIN, "--out", "new", "--device", "cuda:99"),
        "--device cuda:99, but CUDA is not",
    ),
    Case(
        "device-unknown",
        (*TRAIN, "--out", "new", "--device", "tpu"),
        "--device tpu is not a device; use e.g. --device cpu",
    ),
    # the data
    Case(
        "binary-dataset-to-8bit-likelihood",
        ("train", "--likelihood", "discretized_logistic", *TINY, "--out", "new"),
        "shapes is binary (values 0 and 1): use --likelihood bernoulli",
    ),
    Case("dataset-unknown", ("train", "--dataset", "nope", *TINY, "--out", "new"), "shapes"),
    Case(
        "dataset-missing",
        ("train", "--dataset", "missing.npy", *TINY, "--out", "new"),
        "missing.npy does not exist",
    ),
    Case(
        "corrupt-png",
        ("train", "--dataset", "imgs", *TINY, "--out", "new"),
        "b.png: cannot read the image",
    ),
    Case(
        "grey-8bit-to-bernoulli",
        ("train", "--dataset", "grey.npy", *TINY, "--out", "new"),
        "pass --binarize dynamic",
    ),
    Case(
        "grey-8bit-counted",  # the data's values, not a summary of its distinct ones
        ("train", "--dataset", "grey.npy", *TINY, "--out", "new"),
        "but 192 of the 4096 values of the training data lie outside",
    ),
    Case(
        "counts-to-bernoulli",
        ("train", "--dataset", "counts.csv", *TINY, "--out", "new"),
        "pass --likelihood poisson or negative_binomial",
    ),
    Case(
        "unit-floats-to-bernoulli",
        ("train", "--dataset", "unit.npy", *TINY, "--out", "new"),
        "pass --likelihood continuous_bernoulli",
    ),
    Case(
        "real-to-bernoulli",
        ("train", "--dataset", "real.npy", *TINY, "--out", "new"),
        "pass --likelihood gaussian or laplace",
    ),
    Case(
        "real-to-poisson",
        ("train", "--dataset", "real.npy", "--likelihood", "poisson", *TINY, "--out", "new"),
        "--likelihood poisson needs non-negative integer counts",
    ),
    Case(
        "real-to-beta-binomial",
        ("train", "--dataset", "real.npy", "--likelihood", "beta_binomial", *TINY, "--out", "n"),
        "--likelihood beta_binomial needs 8-bit integers",
    ),
    # --resume
    Case(
        "resume-other-lr",
        (*TRAIN, "--out", "run", "--resume", "--epochs", "2", "--lr", "0.01"),
        "--lr: 0.001 there, 0.01 now",
    ),
    Case(
        "resume-disk-full",
        (*TRAIN, "--out", "run", "--resume", "--epochs", "2"),
        "No space left on device",
        setup=_disk_full,
        grows=("run/history.csv",),
    ),
    # the commands that read a run folder
    Case("not-a-run", ("evaluate", "afile"), "afile is not a run folder"),
    Case("config-missing", ("evaluate", "run"), "no config.json", setup=_no_config),
    Case(
        "config-corrupt",
        ("evaluate", "run"),
        "run/config.json is not valid JSON",
        setup=_corrupt_config,
    ),
    Case(
        "data-changed",
        ("evaluate", "run", "--ll-samples", "0"),
        "is not the data it was trained on",
        setup=_changed_data,
    ),
    Case(
        "data-same-name-elsewhere",
        ("evaluate", "../run", "--ll-samples", "0"),
        "is not the data it was trained on",
        setup=_same_name_elsewhere,
    ),
    Case(
        "data-gone",
        ("encode", "run"),
        "the run's data is missing",
        setup=_edit_dataset(lambda f: str(f / "gone.npy")),
    ),
    Case("ll-samples-negative", ("evaluate", "run", "--ll-samples", "-5"), "--ll-samples"),
    Case("num-samples-zero", ("evaluate", "run", "--num-samples", "0"), "--num-samples"),
    Case("reconstruct-n-zero", ("reconstruct", "run", "-n", "0"), "argument -n: must be"),
    Case("sample-n-zero", ("sample", "run", "-n", "0"), "argument -n: must be"),
    Case("sample-temperature-zero", ("sample", "run", "--temperature", "0"), "--temperature"),
    Case("codes-bits-zero", ("latent-codes", "run", "--bits", "0"), "argument --bits"),
    Case("sample-out-a-folder", ("sample", "run", "--out", "imgs"), "--out imgs is a folder"),
    Case("encode-out-under-a-file", ("encode", "run", "--out", "afile/z.npy"), "afile is a file"),
    # existing outputs: "pass --overwrite", checked before the work
    Case("encode-exists", ("encode", "run", "--out", "afile.npy"), "pass --overwrite"),
    Case("codes-exist", ("latent-codes", "run", "--out", "afile"), "pass --overwrite"),
    Case("score-exists", ("score", "run", "--out", "afile"), "pass --overwrite"),
    # scores that need a second model, and flags for another score
    Case(
        "complexity-no-compressor",
        ("score", "run", "--method", "complexity"),
        "--method complexity needs --compressor NAME, one of png, zlib, bz2, lzma",
    ),
    Case(
        "ratio-no-background",
        ("score", "run", "--method", "likelihood_ratio"),
        "--method likelihood_ratio needs --background RUN2",
    ),
    Case(
        "compressor-for-elbo",
        ("score", "run", "--compressor", "zlib"),
        "--compressor is for --method complexity, not --method elbo",
    ),
    Case(
        "background-for-complexity",
        ("score", "run", "--method", "complexity", "--compressor", "bz2", "--background", "run"),
        "--background is for --method likelihood_ratio, not --method complexity",
    ),
    Case(
        "background-other-shape",
        ("score", "run", "--method", "likelihood_ratio", "--background", "vec"),
        "--background vec models items of shape (6,), but run models (1, 8, 8)",
        setup=_vector_run,
    ),
    Case(
        "background-not-a-run",
        ("score", "run", "--method", "likelihood_ratio", "--background", "imgs"),
        "imgs is not a run folder",
    ),
    Case("reconstruct-exists", ("reconstruct", "run", "--out", "afile"), "pass --overwrite"),
    Case(
        "compress-exists",
        ("compress", "run", "bin.npy", "afile"),
        "afile exists; pass --overwrite",
        setup=_no_encoding,
    ),
    Case(
        "decompress-exists",
        ("decompress", "run", "x.bin", "x.npy"),
        "x.npy exists; pass --overwrite",
        setup=_compressed,
    ),
    # anything else: its type, and where to see more
    Case(
        "unforeseen-error",
        ("evaluate", "run", "--ll-samples", "0"),
        "RuntimeError: something unforeseen (run it again with --debug",
        setup=_bug,
    ),
]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """The working folder the cases start from: data files and one trained run."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("bad-cli")
    rng = np.random.default_rng(0)
    np.save(folder / "bin.npy", (rng.random((80, 1, 8, 8)) < 0.3).astype(np.float32))
    grey = np.where(rng.random((80, 1, 8, 8)) < 0.5, 0, 255).astype(np.uint8)
    grey.reshape(80, -1)[:, :3] = 128  # exactly 3 grey pixels in each image
    np.save(folder / "grey.npy", grey)
    np.save(folder / "unit.npy", rng.random((80, 6)).astype(np.float32))
    np.save(folder / "real.npy", rng.normal(size=(80, 6)).astype(np.float32))
    np.savetxt(folder / "counts.csv", rng.poisson(3, (80, 6)), fmt="%d", delimiter=",")
    (folder / "imgs").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "imgs" / "a.png")
    (folder / "imgs" / "b.png").write_bytes(b"\x89PNG, then not an image")
    (folder / "afile").write_text("a file of the user's")
    (folder / "afile.npy").write_bytes(b"the user's")
    run = ("train", "--dataset", str(folder / "bin.npy"), *TINY, "--out", str(folder / "run"))
    assert main(list(run)) == 0
    return folder


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_before_any_work(case, base, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "w"
    shutil.copytree(base, folder)
    monkeypatch.chdir(folder)
    if case.setup is not None:
        case.setup(folder, monkeypatch)
    before = snapshot(folder)
    assert main(list(case.argv)) == case.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and "error: " in lines[-1]
    assert case.fragment in lines[-1]
    assert "=True" not in lines[-1] and "data.load(" not in lines[-1]  # flags, not Python
    after = snapshot(folder)
    for name in case.grows:  # rows appended to a file; what it held is kept
        assert after.pop(name).startswith(before.pop(name))
    assert after == before


def test_the_table_has_at_least_30_cases():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


def test_debug_shows_the_traceback(base, tmp_path, monkeypatch, capsys):
    shutil.copytree(base, tmp_path / "w")
    monkeypatch.chdir(tmp_path / "w")
    _bug(tmp_path / "w", monkeypatch)
    assert main(["evaluate", "run", "--ll-samples", "0", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "elbo_terms" in err
    assert err.splitlines()[-1].startswith("error: RuntimeError: something unforeseen")

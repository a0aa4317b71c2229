"""The pyvae command."""

import json
import subprocess
import sys

import torch

from pyvae import load
from pyvae.cli import main


def test_train_writes_a_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--epochs", "1", "--limit", "256", "--z-dim", "4", "--out", str(out)]
    assert main([*args, "--prior", "mog"]) == 0
    printed = capsys.readouterr().out
    assert "model.pt" in printed and "test ELBO" in printed
    names = {p.name for p in out.iterdir()}
    assert {"model.pt", "config.json", "history.json", "history.png"} <= names
    assert (out / "reconstructions_and_samples.png").read_bytes()[:4] == b"\x89PNG"
    vae = load(out / "model.pt")
    assert vae.z_dim == 4 and vae.sample(2).shape == (2, 1, 64, 64)
    history = json.loads((out / "history.json").read_text())
    assert len(history["val_elbo"]) == 1
    assert json.loads((out / "config.json").read_text())["vae"]["prior"] == "mog"
    # A second run never writes into a folder that holds results.
    before = (out / "model.pt").read_bytes()
    assert main(args) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "model.pt").read_bytes() == before


def test_bad_options_give_clear_errors(tmp_path, capsys):
    assert main(["train", "--z-dim", "0", "--out", str(tmp_path / "a")]) == 2
    assert "z_dim" in capsys.readouterr().err
    assert main(["train", "--scale", "big", "--out", str(tmp_path / "b")]) == 2
    assert "--scale" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_help_runs_as_a_module():
    out = subprocess.run(
        [sys.executable, "-m", "pyvae.cli", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--prior" in out and "vamp" in out and "--likelihood" in out
    assert torch.__version__  # the module imports cleanly

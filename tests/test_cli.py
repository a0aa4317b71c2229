"""The pyvae command, end to end: train, then evaluate, sample, reconstruct, encode, and
load the saved model in a new process."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from pyvae.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny training run shared by the tests of the commands that read it."""
    out = tmp_path_factory.mktemp("runs") / "run"
    args = ["train", "--epochs", "1", "--limit", "128", "--z-dim", "3", "--prior", "mog"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    return out


def test_train_writes_a_run_folder(run):
    names = {p.name for p in run.iterdir()}
    figures = {"history", "reconstructions", "samples", "traversal", "latent_space"}
    assert {"model.pt", "config.json", "history.json", "history.csv"} <= names
    assert {f"{f}.png" for f in figures} <= names
    for f in figures:
        assert (run / f"{f}.png").read_bytes()[:4] == b"\x89PNG"
    history = json.loads((run / "history.json").read_text())
    assert len(history["val_elbo"]) == 1
    csv_lines = (run / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,") and len(csv_lines) == 2
    config = json.loads((run / "config.json").read_text())
    assert config["vae"]["prior"]["class"] == "pyvae.priors.MixtureOfGaussians"
    assert config["data"]["dataset"] == "shapes"


def test_train_prints_where_it_wrote(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--epochs", "1", "--limit", "64", "--z-dim", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test ELBO" in printed and str(out) in printed and "model.pt" in printed


def test_saved_model_loads_in_a_new_process(run):
    code = f"import pyvae; v = pyvae.load({str(run / 'model.pt')!r}); print(v.sample(2).shape)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "torch.Size([2, 1, 32, 32])" in out.stdout


def test_evaluate_prints_elbo_log_likelihood_and_active_units(run, capsys):
    args = ["evaluate", str(run), "--json", "--num-samples", "2", "--ll-samples", "20"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and result["n"] == 128
    assert result["elbo"] < 0 and result["log_likelihood"] > result["elbo"]
    assert result["elbo"] == pytest.approx(result["reconstruction"] - result["kl"])
    assert result["bits_per_dim"] > 0 and 0 <= result["active_units"] <= 3
    assert main(["evaluate", str(run), "--ll-samples", "5"]) == 0
    out = capsys.readouterr().out
    assert "nats per example" in out and "log-likelihood" in out


def test_score_and_latent_codes_write_files(run, tmp_path, capsys):
    assert main(["score", str(run), "--method", "latent"]) == 0
    scores = np.load(run / "scores-latent.npy")
    assert scores.shape == (128,) and np.isfinite(scores).all()
    # Scoring a file of one's own.
    x = np.zeros((5, 1, 32, 32), dtype=np.uint8)
    np.save(tmp_path / "blank.npy", x)
    out = tmp_path / "s.npy"
    assert main(["score", str(run), "--data", str(tmp_path / "blank.npy"), "--out", str(out)]) == 0
    assert np.load(out).shape == (5,)
    assert main(["latent-codes", str(run), "--bits", "4"]) == 0
    printed = capsys.readouterr().out
    assert "bits/dim" in printed and "MSE" in printed
    with np.load(run / "codes-test-4bit.npz") as codes:
        assert codes["values"].shape == (128, 3) and codes["values"].max() < 16
        assert int(codes["bits"]) == 4


def test_score_complexity_and_likelihood_ratio(run, tmp_path):
    """``complexity`` is -log p(x) - L(x) ln 2 with the compressor's code length L (bits);
    ``likelihood_ratio`` against the run itself as the background cancels to about 0."""
    import pyro
    import torch

    import pyvae
    from pyvae import anomaly
    from pyvae.anomaly import Compressor
    from pyvae.data import make_shapes

    x = make_shapes(6, seed=3)[0].numpy()
    np.save(tmp_path / "x.npy", x)

    def scores(*flags: str):
        out = tmp_path / "s.npy"
        argv = ["score", str(run), "--data", str(tmp_path / "x.npy"), "--num-samples", "200"]
        assert main([*argv, *flags, "--out", str(out), "--overwrite"]) == 0
        return np.load(out)

    nll = scores("--method", "log_likelihood")
    assert np.array_equal(scores("--method", "log_likelihood"), nll)  # --seed 0 by default
    assert not np.array_equal(scores("--method", "log_likelihood", "--seed", "1"), nll)
    code_nats = Compressor("zlib")(x).numpy() * np.log(2)
    assert code_nats.min() > 50  # the compressor's term is large, not a rounding error
    complexity = scores("--method", "complexity", "--compressor", "zlib")
    np.testing.assert_allclose(complexity, nll - code_nats, rtol=1e-5)  # the same draws
    ratio = scores("--method", "likelihood_ratio", "--background", str(run))
    vae = pyvae.load(run / "model.pt")
    pyro.set_rng_seed(0)  # as the command does, after loading
    expected = anomaly.score(vae, torch.as_tensor(x), "likelihood_ratio", 200, background=vae)
    np.testing.assert_allclose(ratio, expected.numpy(), rtol=1e-5)
    assert np.abs(ratio).mean() < 0.1 * nll.mean()  # log p(x) over itself: about 0


def test_sample_reconstruct_encode_write_files(run, capsys):
    assert main(["sample", str(run), "-n", "9", "--out", str(run / "s9.png")]) == 0
    assert (run / "s9.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["reconstruct", str(run), "-n", "4"]) == 0
    assert (run / "reconstructions-test.png").exists()
    assert main(["encode", str(run), "--split", "train"]) == 0
    z = np.load(run / "latents-train.npy")
    assert z.shape == (128, 3) and np.isfinite(z).all()
    # Existing outputs are not overwritten without --overwrite.
    before = (run / "s9.png").read_bytes()
    assert main(["sample", str(run), "-n", "4", "--out", str(run / "s9.png")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (run / "s9.png").read_bytes() == before
    assert main(["sample", str(run), "-n", "4", "--out", str(run / "s9.png"), "--overwrite"]) == 0


def test_train_refuses_a_folder_that_holds_a_run(run, capsys):
    before = (run / "model.pt").read_bytes()
    assert main(["train", "--epochs", "1", "--limit", "64", "--out", str(run)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (run / "model.pt").read_bytes() == before


def test_overwrite_keeps_the_users_other_files(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["train", "--epochs", "1", "--limit", "64", "--z-dim", "2", "--quiet"]
    assert main([*args, "--out", str(out)]) == 2
    assert main([*args, "--out", str(out), "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.pt").exists()


def test_bad_options_give_clear_errors(tmp_path, capsys):
    assert main(["train", "--z-dim", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--z-dim" in capsys.readouterr().err
    assert main(["train", "--scale", "big", "--out", str(tmp_path / "b")]) == 2
    assert "--scale" in capsys.readouterr().err
    assert main(["train", "--dataset", "nope", "--out", str(tmp_path / "c")]) == 2
    assert "shapes" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in "abc")


def test_help_runs_as_a_module():
    out = subprocess.run(
        [sys.executable, "-m", "pyvae.cli", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--prior" in out and "vamp" in out and "--binarize" in out
    top = subprocess.run(
        [sys.executable, "-m", "pyvae.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("train", "evaluate", "sample", "reconstruct", "encode"):
        assert command in top


def test_train_resumes_a_run_from_its_checkpoint(tmp_path):
    out = tmp_path / "r"
    args = ["train", "--limit", "64", "--z-dim", "2", "--quiet", "--out", str(out)]
    assert main([*args, "--epochs", "1"]) == 0
    assert (out / "checkpoint.pt").exists()
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2]
    assert len((out / "history.csv").read_text().splitlines()) == 3  # header + both epochs


def test_train_resume_refuses_other_flags_and_a_busy_folder(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["train", "--limit", "64", "--z-dim", "2", "--quiet", "--out", str(out)]
    assert main([*args, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main([*args, "--epochs", "2", "--resume", "--lr", "0.01", "--batch-size", "32"]) == 2
    err = capsys.readouterr().err
    assert "--lr: 0.001 there, 0.01 now" in err and "--batch-size: 128 there, 32 now" in err
    assert main([*args, "--epochs", "2", "--resume", "--limit", "32"]) == 2  # other data
    assert "the data (--dataset" in capsys.readouterr().err
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".pyvae.lock").write_text(f"{other.pid}\n")
        assert main([*args, "--epochs", "2", "--resume"]) == 2
        assert f"in use by process {other.pid}" in capsys.readouterr().err
    finally:
        other.kill()
        other.wait()
    assert json.loads((out / "history.json").read_text())["epoch"] == [1]  # nothing lost


def test_interrupt_exits_130_with_a_hint(monkeypatch, tmp_path, capsys):
    import pyvae.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pyvae.train, "fit", interrupted)
    assert main(["train", "--limit", "8", "--out", str(tmp_path / "r")]) == 130
    assert "--resume" in capsys.readouterr().err
    from pyvae.cli import _interrupt

    with pytest.raises(KeyboardInterrupt):  # what SIGTERM does
        _interrupt(15, None)


def test_a_run_folder_reads_its_own_data_from_any_folder(tmp_path, monkeypatch, capsys):
    """config.json records the data's absolute path and fingerprint: from another folder
    holding a file of the same name, the run still evaluates its own data."""
    rng = np.random.default_rng(0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "a" / "x.npy", (rng.random((40, 1, 4, 4)) < 0.5).astype(np.uint8))
    np.save(tmp_path / "b" / "x.npy", np.zeros((40, 1, 4, 4), np.uint8))
    monkeypatch.chdir(tmp_path / "a")
    args = ["train", "--dataset", "x.npy", "--epochs", "1", "--z-dim", "2", "--quiet"]
    assert main([*args, "--out", "run"]) == 0
    spec = json.loads((tmp_path / "a" / "run" / "config.json").read_text())["data"]
    assert spec["dataset"] == str(tmp_path / "a" / "x.npy")
    assert set(spec["fingerprint"]) == {"train", "test"}
    assert main(["evaluate", "run", "--json", "--ll-samples", "0"]) == 0
    here = json.loads(capsys.readouterr().out)
    monkeypatch.chdir(tmp_path / "b")
    assert main(["evaluate", str(tmp_path / "a" / "run"), "--json", "--ll-samples", "0"]) == 0
    assert json.loads(capsys.readouterr().out) == here


def test_a_binary_uint8_file_trains_on_its_images(tmp_path):
    """A uint8 file of 0 and 1 is binary, not 8-bit pixels: Bernoulli takes it as it is,
    and --binarize threshold does not turn every image black."""
    x = (np.random.default_rng(0).random((40, 1, 4, 4)) < 0.5).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    args = ["train", "--dataset", str(tmp_path / "x.npy"), "--epochs", "1", "--z-dim", "2"]
    for i, extra in enumerate(([], ["--binarize", "threshold"])):
        assert main([*args, *extra, "--quiet", "--out", str(tmp_path / f"r{i}")]) == 0
        assert main(["encode", str(tmp_path / f"r{i}"), "--split", "train"]) == 0
    from pyvae import data

    train, _ = data.load(tmp_path / "x.npy", binarize="threshold")
    assert data.as_tensor(train).sum() > 0 and train.transform is None


def test_the_documented_sequence_runs_as_written(tmp_path, capsys):
    """train, then evaluate, sample -n 64 and reconstruct on the run folder, as the README
    shows them: sample and reconstruct write next to train's figures, replacing none."""
    out = tmp_path / "run"
    args = ["train", "--limit", "64", "--epochs", "1", "--z-dim", "2", "--out", str(out)]
    assert main([*args, "--quiet"]) == 0
    trained = {p.name: p.read_bytes() for p in out.glob("*.png")}
    assert {"samples.png", "reconstructions.png"} <= set(trained)
    assert main(["evaluate", str(out), "--ll-samples", "5"]) == 0
    assert main(["sample", str(out), "-n", "64"]) == 0
    assert main(["reconstruct", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("samples-64.png", "reconstructions-test.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG" and name in printed
    assert {p.name: p.read_bytes() for p in out.glob("*.png") if p.name in trained} == trained
    # Other options write other files; the same command again asks for --overwrite.
    assert main(["sample", str(out), "-n", "64", "--draw", "--temperature", "0.5"]) == 0
    assert (out / "samples-64-draw-t0.5.png").exists()
    assert main(["sample", str(out), "-n", "64"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_help_shows_every_default(capsys):
    from pyvae.cli import _parser

    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
                continue
            assert action.help, f"pyvae {name} {action.option_strings[0]} has no help"
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 10)" in text and "(default: 128)" in text


def write_wine(path, header=True):
    """A wine-like CSV: a first column of 3 cultivars (1, 2, 3), then real features."""
    rng = np.random.default_rng(0)
    cultivar = np.repeat([1, 2, 3], 20)
    features = rng.normal(cultivar[:, None], 0.3, size=(60, 4)).round(3)
    rows = [[str(c), *map(str, f)] for c, f in zip(cultivar, features, strict=True)]
    names = ["cultivar", "alcohol", "ash", "hue", "proline"]
    lines = [",".join(names)] * header + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_label_column_takes_a_csvs_labels_out_of_the_features(tmp_path, capsys):
    wine = write_wine(tmp_path / "wine.csv")
    common = ["train", "--dataset", str(wine), "--likelihood", "gaussian", "--epochs", "1"]
    assert main([*common, "--z-dim", "2", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: column 'cultivar'" in err and "--label-column cultivar" in err
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["vae"]["input_shape"] == [5]  # the label modelled as a feature
    for label in ("cultivar", "0"):
        out = tmp_path / f"b{label}"
        argv = [*common, "--z-dim", "2", "--label-column", label, "--out", str(out), "--quiet"]
        assert main(argv) == 0
        assert "warning" not in capsys.readouterr().err
        config = json.loads((out / "config.json").read_text())
        assert config["vae"]["input_shape"] == [4]
        assert (out / "latent_space.png").exists()  # coloured by the cultivar
        assert main(["evaluate", str(out), "--ll-samples", "0"]) == 0  # reads its data again
        scores = out / "s.npy"  # a file of one's own, read with the run's label column
        assert main(["score", str(out), "--data", str(wine), "--out", str(scores)]) == 0
        assert np.load(scores).shape == (60,)
    # Without a header, by index; a column that does not exist; a file that is not CSV.
    plain = write_wine(tmp_path / "plain.csv", header=False)
    assert main([*common[:2], str(plain), *common[3:], "--label-column", "-5",
                 "--out", str(tmp_path / "c"), "--quiet"]) == 0  # fmt: skip
    assert main([*common, "--label-column", "colour", "--out", str(tmp_path / "d")]) == 2
    assert "no column 'colour'" in capsys.readouterr().err
    assert main(["train", "--label-column", "0", "--out", str(tmp_path / "e")]) == 2
    assert "--label-column applies to .csv files" in capsys.readouterr().err

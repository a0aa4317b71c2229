"""Smoke tests of the reproduction recipes end to end: benchmarks/likelihood_bmnist.py on a
tiny subset of the real data (skipped without ../shared/data), its rerun (a finished row
is not redone) and benchmarks/tables.py on the result file; benchmarks/ood.py (Bernoulli
and 8-bit beta-binomial rows side by side, the rerun and the table);
benchmarks/disentanglement_metrics.py and benchmarks/disentanglement_sprites.py on
generated sprites (no data needed), the latter's rerun and its table."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pyvae
from pyvae.priors import MixtureOfGaussians

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
TABLES = ROOT / "benchmarks" / "tables.py"

needs_mnist = pytest.mark.skipif(
    not (DATA / "binarized_mnist" / "binarized_mnist_packbits.npz").exists(),
    reason="needs ../shared/data/binarized_mnist",
)


def load_tables():
    """benchmarks/tables.py as a module."""
    sys.path.insert(0, str(ROOT / "benchmarks"))  # tables.py imports _results beside it
    try:
        spec = importlib.util.spec_from_file_location("bench_tables", TABLES)
        tables = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tables)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return tables


def run(*args: str, status: int = 0, **env: str) -> str:
    """The script's output (stdout, and stderr when ``status`` is not 0), which must
    end with ``status``; ``env``: variables to set."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == status, done.stdout + done.stderr
    return done.stdout + (done.stderr if status else "")


@needs_mnist
def test_compression_recipe_codes_with_the_likelihood_tables_mixture_model(tmp_path):
    runs, results = tmp_path / "runs", str(tmp_path / "results")
    compress = ["benchmarks/compression.py", "--dataset", "binarized_mnist", "--prior", "mog"]
    compress += ["--n", "3", "--root", str(DATA), "--results", results]
    missing = run(*compress, status=1, PYVAE_BENCH_RUNS=str(runs))
    assert "train it first with python benchmarks/likelihood_bmnist.py --model mog" in missing
    run(
        "benchmarks/likelihood_bmnist.py", "--model", "mog", "--epochs", "1",
        "--n-train", "200", "--n-val", "50", "--n-test", "5", "--num-samples", "5",
        "--device", "cpu", "--root", str(DATA), "--results", results,
        PYVAE_BENCH_RUNS=str(runs),
    )  # fmt: skip
    out = run(*compress, PYVAE_BENCH_RUNS=str(runs))
    assert "the likelihood table's mog model" in out
    (row,) = json.loads((tmp_path / "results" / "compression.json").read_text())["rows"]
    assert (row["dataset"], row["likelihood"], row["prior"]) == (
        "binarized_mnist",
        "bernoulli",
        "mog",
    )
    assert row["n"] == 3 and row["bits_per_dim"] > row["neg_elbo_bits_per_dim"] > 0
    assert "mog prior" in row["model"]
    assert (runs / "compression" / "binarized_mnist-bernoulli-mog" / "done.json").exists()
    table = "\n".join(load_tables().compression(tmp_path / "results"))
    assert "| binarized_mnist | bernoulli | mog | 3 | " in table


@pytest.mark.skipif(not (DATA / "MNIST").exists(), reason="needs ../shared/data/MNIST")
def test_compression_recipe_trains_8bit_mnist_with_a_mixture_prior(tmp_path):
    compress = ["benchmarks/compression.py", "--dataset", "mnist_8bit", "--root", str(DATA)]
    compress += ["--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    refused = run(*compress, "--prior", "vamp", status=2)
    assert "--prior for mnist_8bit: one of ('normal', 'mog')" in refused
    run(
        *compress,
        "--prior",
        "mog",
        "--epochs",
        "1",
        "--n-train",
        "200",
        "--n-val",
        "50",
        "--n",
        "3",
    )
    (row,) = json.loads((tmp_path / "results" / "compression.json").read_text())["rows"]
    assert (row["dataset"], row["likelihood"], row["prior"]) == (
        "mnist_8bit",
        "beta_binomial",
        "mog",
    )
    assert row["model"] == "MLP 784-200-50, mog prior (500 components)"
    assert row["n"] == 3 and row["bits_per_dim"] > row["neg_elbo_bits_per_dim"] > 0
    vae = pyvae.load(tmp_path / "runs" / "mnist_8bit-beta_binomial-mog" / "best.pt")
    assert isinstance(vae.prior, MixtureOfGaussians) and vae.prior.logits.shape == (500,)


@needs_mnist
def test_likelihood_recipe_runs_resumes_and_tabulates(tmp_path):
    command = [
        "benchmarks/likelihood_bmnist.py",
        "--model", "normal", "--epochs", "1", "--warmup-epochs", "0",
        "--n-train", "200", "--n-val", "50", "--n-test", "20", "--num-samples", "20",
        "--device", "cpu", "--root", str(DATA),
        "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results"),
    ]  # fmt: skip
    first = run(*command)
    assert "epoch    1/1" in first and "test NLL" in first
    row = json.loads((tmp_path / "results" / "likelihood_bmnist.json").read_text())["rows"][0]
    assert row["model"] == "normal" and row["n_test"] == 20 and row["epochs"] == 1
    assert (tmp_path / "runs" / "normal" / "best.pt").exists()
    again = run(*command)
    assert "finished already" in again and "epoch " not in again.split("\n")[1]
    table = "\n".join(load_tables().likelihood(tmp_path / "results"))
    assert "| standard prior | `--model normal --epochs 1 --warmup-epochs 0 " in table  # its flags
    gated = run(*command, "--activation", "glu")  # a row and a folder of its own
    assert "normal-glu: " in gated and "glu units" in gated and "test NLL" in gated
    rows = json.loads((tmp_path / "results" / "likelihood_bmnist.json").read_text())["rows"]
    assert sorted((r["model"], r["activation"]) for r in rows) == [
        ("normal", "glu"),
        ("normal", "relu"),
    ]
    vae = pyvae.load(tmp_path / "runs" / "normal-glu" / "best.pt")
    assert isinstance(vae.encoder.net[1], torch.nn.GLU)
    table = "\n".join(load_tables().likelihood(tmp_path / "results"))
    assert "| standard prior, gated layers | `--model normal " in table


def test_burda_vae_row_differs_from_the_iwae_row_in_its_objective_only():
    """The matched-budget pair: the same networks, schedule and model selection; IWAE's
    bound with K = 50 against the ELBO."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_likelihood", ROOT / "benchmarks" / "likelihood_bmnist.py"
        )
        recipe = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(recipe)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    plan = recipe.stages("iwae", 13, 1e-3)
    assert recipe.stages("burda_vae", 13, 1e-3) == plan
    assert [(first, last) for first, last, _ in plan] == [(0, 1), (1, 4), (4, 13)]
    shapes = [[tuple(p.shape) for p in recipe.build(m).parameters()] for m in ("iwae", "burda_vae")]
    assert shapes[0] == shapes[1] and recipe.build("iwae").z_dim == 50


def test_disentanglement_metrics_writes_a_row_per_code(tmp_path):
    pytest.importorskip("sklearn")
    command = [
        "benchmarks/disentanglement_metrics.py", "--n", "100", "--size", "16",
        "--num-train", "10", "--num-eval", "10", "--batch-size", "8",
        "--vae-items", "40", "--vae-votes", "4", "--results", str(tmp_path),
    ]  # fmt: skip
    printed = run(*command)
    rows = json.loads((tmp_path / "disentanglement_metrics.json").read_text())["rows"]
    by_code = {row["codes"]: row for row in rows}
    assert set(by_code) == {
        "factors", "permuted", "collapsed", "duplicated", "rotated", "noise",
        "conv VAE 16x16, scores()",
    }  # fmt: skip
    assert by_code["factors"]["dci_disentanglement"] > 0.9 and by_code["noise"]["mig"] < 0.1
    assert by_code["permuted"]["mig"] == by_code["factors"]["mig"]
    assert "conv VAE 16x16" in printed


@pytest.mark.skipif(
    not (DATA / "FashionMNIST" / "raw").exists(), reason="needs ../shared/data/FashionMNIST"
)
def test_ood_benchmark_writes_a_row_per_score_and_skips_a_finished_pair(tmp_path):
    command = [
        "benchmarks/ood.py", "--root", str(DATA), "--train", "fashion_mnist",
        "--epochs", "1", "--n-train", "300", "--n-val", "50", "--n-test", "50",
        "--num-samples", "2", "--hidden", "16", "--results", str(tmp_path),
    ]  # fmt: skip
    first = run(*command)
    assert "likelihood_ratio" in first and "AUROC" in first
    grey = run(*command, "--likelihood", "beta_binomial")  # 8-bit images, rows beside
    assert "(beta_binomial)" in grey and "finished already" not in grey
    rows = json.loads((tmp_path / "ood.json").read_text())["rows"]
    scores = {
        "log_likelihood", "elbo", "likelihood_ratio", "complexity_png", "complexity_zlib",
        "typicality_M10",
    }  # fmt: skip
    for likelihood in ("bernoulli", "beta_binomial"):
        assert {r["score"] for r in rows if r["likelihood"] == likelihood} == scores
    assert len(rows) == 2 * len(scores)
    assert all(r["train"] == "fashion_mnist" and r["test"] == "mnist" for r in rows)
    assert all(0 <= r["auroc"] <= 1 and r["n_test"] == 50 and r["epochs"] == 1 for r in rows)
    # Grey levels cost more nats per image than bits: the two kinds are different models.
    nll = {r["likelihood"]: r["mean_nll_in"] for r in rows}
    assert nll["beta_binomial"] > nll["bernoulli"]
    assert "finished already" in run(*command, "--likelihood", "beta_binomial")
    table = "\n".join(load_tables().ood(tmp_path))
    assert "| negative log-likelihood | Bernoulli, binarized |" in table
    assert "| complexity, PNG (Serrà et al. 2020) | beta-binomial, 8-bit |" in table


def test_disentanglement_recipe_runs_resumes_and_tabulates(tmp_path):
    pytest.importorskip("sklearn")
    command = [
        "benchmarks/disentanglement_sprites.py",
        "--models", "factor_vae", "--seeds", "0", "--epochs", "1",
        "--n-train", "256", "--n-test", "200", "--size", "16", "--device", "cpu",
        "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results"),
    ]  # fmt: skip
    first = run(*command)
    assert "1/1 rows" in first and "factor_vae seed 0: test ELBO" in first
    rows = json.loads((tmp_path / "results" / "disentanglement.json").read_text())["rows"]
    assert [(r["model"], r["seed"], r["epochs"], r["gamma"]) for r in rows] == [
        ("factor_vae", 0, 1, 6.4)
    ]
    keys = ("mig", "dci_disentanglement", "sap", "factor_vae", "beta_vae", "test_elbo")
    for key in keys:
        assert isinstance(rows[0][key], float) and math.isfinite(rows[0][key]), key
    assert (tmp_path / "runs" / "factor_vae-seed0" / "checkpoint.pt").exists()
    again = run(*command)
    assert "finished already" in again and "trained" not in again
    table = "\n".join(load_tables().disentanglement(tmp_path / "results"))
    assert "| FactorVAE (γ = 6.4) | 1 |" in table


@needs_mnist
def test_inference_gaps_recipe_runs_and_tabulates(tmp_path):
    command = [
        "benchmarks/inference_gaps.py",
        "--epochs", "1", "--n-train", "200", "--n", "8", "--num-samples", "16",
        "--steps", "20", "--refine-steps", "3", "--batch-size", "4", "--z-dim", "4",
        "--device", "cpu", "--root", str(DATA),
        "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results"),
    ]  # fmt: skip
    out = run(*command)
    assert "amortization_gap" in out and "approximation_gap" in out
    row = json.loads((tmp_path / "results" / "inference_gaps.json").read_text())["rows"][0]
    assert row["model"] == "mlp-z4-1ep" and row["n"] == 8 and row["epochs"] == 1
    assert row["approximation_gap"] == pytest.approx(row["log_likelihood"] - row["elbo_optimal"])
    assert row["amortization_gap"] == pytest.approx(row["elbo_optimal"] - row["elbo_amortized"])
    assert row["amortization_gap"] >= 0  # the optimal q is the best of the fitted and the start
    assert row["refined_elbo"] > row["elbo_amortized"]  # 3 steps already help an untrained q
    table = "\n".join(load_tables().inference_gaps(tmp_path / "results"))
    assert "| mlp-z4-1ep | 1 | 8 |" in table


@pytest.mark.skipif(not (DATA / "MNIST" / "raw").exists(), reason="needs ../shared/data/MNIST")
def test_anomaly_benchmark_writes_every_score_of_a_digit_and_skips_it_after(tmp_path):
    command = [
        "benchmarks/anomaly_mnist.py", "--root", str(DATA), "--digits", "1", "--epochs", "1",
        "--n-train", "300", "--n-test", "300", "--n-fit", "100", "--num-samples", "2",
        "--hidden", "16", "--results", str(tmp_path),
    ]  # fmt: skip
    run(*command)
    rows = json.loads((tmp_path / "anomaly_mnist.json").read_text())["rows"]
    assert {r["score"] for r in rows} >= {
        "log_likelihood", "complexity_png_fitted", "typical_log_likelihood",
        "nll_or_complexity_png",
    }  # fmt: skip
    assert all(r["digit"] == 1 and 0 <= r["auroc"] <= 1 for r in rows)
    before = (tmp_path / "anomaly_mnist.json").read_text()
    run(*command)  # the digit is finished: nothing is trained or written again
    assert (tmp_path / "anomaly_mnist.json").read_text() == before
    table = "\n".join(load_tables().anomaly_mnist(tmp_path))
    assert "two one-sided tests" in table


@pytest.mark.skipif(
    not any((DATA / "MNIST" / "raw").glob("train-images-idx3-ubyte*")),
    reason="needs ../shared/data/MNIST/raw",
)
def test_semisupervised_m1m2_recipe_runs_and_its_baseline_classifies(tmp_path):
    out = run(
        "benchmarks/semisupervised_mnist.py",
        "--recipe", "m1m2", "--epochs", "1", "--m1-epochs", "1", "--subset", "2000",
        "--labels", "100", "--runs", "1", "--root", str(DATA), "--out", str(tmp_path),
    )  # fmt: skip
    assert "M1 (1 epochs, no labels)" in out and "test accuracy" in out
    assert "epoch    1/1: objective" in out  # M1 prints its progress too
    assert (tmp_path / "m1" / "m1.pt").exists()
    done = json.loads((tmp_path / "m1m2-labels100-seed0" / "done.json").read_text())
    # The labels-only classifier sees the test images as the dataset gives them: with 100
    # MNIST labels it is far above chance (it once saw them binarized twice: 12 %).
    assert done["baseline_accuracy"] > 0.5
    assert 0 <= done["accuracy"] <= 1


def test_the_readme_summary_is_the_one_the_result_files_give():
    """The README's results table is what ``tables.py readme`` prints from the committed
    result files: a figure there cannot drift from its measurement."""
    lines = load_tables().readme(ROOT / "benchmarks" / "results")
    readme = (ROOT / "README.md").read_text()
    assert len(lines) > 2
    missing = [line for line in lines if line not in readme.splitlines()]
    assert not missing, "README.md lacks: " + "\n".join(missing)


def test_the_readme_pairs_iwae_with_the_vae_only_at_equal_training(tmp_path):
    """The IWAE line of the summary compares two rows trained for the same epochs, or none."""
    tables = load_tables()

    def row(model: str, epochs: int, nll: float) -> dict:
        return {"model": model, "epochs": epochs, "test_nll": nll, "test_nll_se": 0.2}

    def lines(*rows: dict) -> list[str]:
        (tmp_path / "likelihood_bmnist.json").write_text(json.dumps({"rows": list(rows)}))
        return [line for line in tables.readme(tmp_path) if "IWAE" in line]

    assert lines(row("iwae", 13, 90.1), row("burda_vae", 4, 91.2)) == []
    (line,) = lines(row("iwae", 13, 90.1), row("burda_vae", 13, 91.2))
    assert "13 of Burda et al.'s 3280 epochs" in line
    assert "IWAE 90.10 ± 0.20 nats, VAE 91.20 ± 0.20 nats" in line

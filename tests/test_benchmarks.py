"""Smoke test of a reproduction recipe (benchmarks/likelihood_bmnist.py) end to end on a
tiny subset of the real data, its rerun (a finished row is not redone) and
benchmarks/tables.py on the result file; skipped without ../shared/data."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
TABLES = ROOT / "benchmarks" / "tables.py"

pytestmark = pytest.mark.skipif(
    not (DATA / "binarized_mnist" / "binarized_mnist_packbits.npz").exists(),
    reason="needs ../shared/data/binarized_mnist",
)


def run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


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
    sys.path.insert(0, str(ROOT / "benchmarks"))  # tables.py imports _results beside it
    try:
        spec = importlib.util.spec_from_file_location("bench_tables", TABLES)
        tables = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tables)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    table = "\n".join(tables.likelihood(tmp_path / "results"))
    assert "| standard prior | `--model normal` | 1 |" in table


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
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("bench_tables", TABLES)
        tables = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tables)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    table = "\n".join(tables.inference_gaps(tmp_path / "results"))
    assert "| mlp-z4-1ep | 1 | 8 |" in table

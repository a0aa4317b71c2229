"""Out-of-distribution detection, Fashion-MNIST against MNIST (Nalisnick et al. 2019):
the likelihood paradox and the scores that survive it.

A VAE trained on Fashion-MNIST gives MNIST digits *higher* likelihood than its own test
images. For each pair (train on one dataset, test its test set against the other's), one
run trains the VAE and a background VAE on perturbed inputs (each pixel replaced by a
random bit with rate ``--rate``; Ren et al. 2019) and writes one row per score to
``benchmarks/results/ood.json``: AUROC and AUPRC (out-of-distribution = positive) of

- ``log_likelihood`` (importance-sampled, ``--num-samples``) and ``elbo``;
- ``likelihood_ratio``: -[log p(x) - log p_background(x)];
- ``complexity_png``, ``complexity_zlib``: -log p(x) - L(x), L the code length (nats) of the
  image under PNG or zlib (Serrà et al. 2020);
- ``typicality_M{M}``: the batch test of Nalisnick et al. (2019) on batches of M images
  (Ĥ and the bootstrap from held-out training images), AUROC over batches.

    python benchmarks/ood.py --root ../shared/data          # 35 min on 2 busy cores
    python benchmarks/ood.py --root ../shared/data --n-train 2000 --n-test 200 --epochs 1

With ``--likelihood bernoulli`` (the default) images are binarized (dynamic during
training, one fixed draw for the test sets and the background's training set) and the
background's noise is random bits. With ``beta_binomial`` or ``discretized_logistic``
they are the 8-bit grey levels 0-255 (``data.load(..., values="uint8")``), the
background's noise random grey levels and the compressors see 8-bit images, as in Ren et
al. (2019) and Serrà et al. (2020):

    python benchmarks/ood.py --root ../shared/data --likelihood beta_binomial  # 12 min

The networks are MLPs. Rows carry the ``likelihood`` (rows without one are Bernoulli);
a pair whose rows are in the results file with the same settings is not run again.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import _results  # benchmarks/_results.py, beside this file
import pyro
import torch

from pyvae import VAE, anomaly, data, fit

PAIRS = {"fashion_mnist": "mnist", "mnist": "fashion_mnist"}
SETTINGS = ("epochs", "n_train", "n_test", "num_samples", "rate", "z_dim", "hidden", "seed")
LIKELIHOODS = ("bernoulli", "beta_binomial", "discretized_logistic")


def build(args: argparse.Namespace) -> VAE:
    return VAE.build(
        input_shape=(1, 28, 28),
        z_dim=args.z_dim,
        likelihood=args.likelihood,
        net_kwargs={"hidden": tuple(args.hidden)},
    )


def load(args: argparse.Namespace, name: str, fixed: bool = True) -> tuple[Any, Any]:
    """``name``'s training and test sets as the likelihood needs them: binary (one fixed
    draw if ``fixed``, else a fresh one per epoch) for Bernoulli, else 8-bit values."""
    if args.likelihood != "bernoulli":
        return data.load(name, root=args.root, values="uint8")
    binarize = "static" if fixed else "dynamic"
    return data.load(name, root=args.root, binarize=binarize, seed=args.seed)


def train_pair(args: argparse.Namespace, name: str) -> tuple[VAE, VAE, Any, float]:
    """The VAE on ``name``'s training images and the background VAE on their perturbed
    fixed version; the held-out training images (fixed) and the seconds spent."""
    train, _ = load(args, name, fixed=False)
    static, _ = load(args, name)
    n_train = min(args.n_train, len(train) - args.n_val)
    start = time.perf_counter()
    pyro.set_rng_seed(args.seed)
    vae = build(args)
    fit(vae, train.subset(slice(n_train)), epochs=args.epochs, progress=False, seed=args.seed)
    perturbed = anomaly.perturb(static.subset(slice(n_train)), args.rate, seed=args.seed)
    background = build(args)
    fit(background, perturbed, epochs=args.epochs, progress=False, seed=args.seed)
    held_out = static.subset(slice(len(static) - args.n_val, len(static)))
    return vae, background, held_out, time.perf_counter() - start


def per_item(args: argparse.Namespace, vae: VAE, background: VAE, x: Any) -> dict[str, Any]:
    """Every per-item quantity the scores are made of (nats): -log p, -log p0, the ELBO's
    negative and the compressors' code lengths."""
    k = args.num_samples
    pyro.set_rng_seed(args.seed)
    return {
        "nll": anomaly.score(vae, x, "log_likelihood", num_samples=k),
        "background_nll": anomaly.score(background, x, "log_likelihood", num_samples=k),
        "elbo": anomaly.score(vae, x, "elbo", num_samples=1),
        "png": anomaly.Compressor("png")(x).float() * math.log(2),
        "zlib": anomaly.Compressor("zlib")(x).float() * math.log(2),
    }


def item_scores(q: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The per-item scores (higher = out of distribution), by their definitions."""
    return {
        "log_likelihood": q["nll"],
        "elbo": q["elbo"],
        "likelihood_ratio": q["nll"] - q["background_nll"],
        "complexity_png": q["nll"] - q["png"],
        "complexity_zlib": q["nll"] - q["zlib"],
    }


def typicality(args: argparse.Namespace, vae: VAE, held_out_nll, nll_in, nll_out) -> dict:
    """AUROC and AUPRC of the typicality test's statistic over batches of ``--batch`` items
    of each test set."""
    m = args.batch
    test = anomaly.TypicalityTest(vae, batch_size=m, bootstraps=1000, seed=args.seed)
    test.fit_nll(held_out_nll)
    stats = [test.score_nll(s[: len(s) // m * m].reshape(-1, m)) for s in (nll_in, nll_out)]
    labels = torch.cat([torch.zeros(len(stats[0])), torch.ones(len(stats[1]))])
    both = torch.cat(stats)
    flagged = float((stats[1] > test.threshold).float().mean())
    return {
        "auroc": anomaly.auroc(labels, both),
        "auprc": anomaly.average_precision(labels, both),
        "batches": len(both),
        "flagged_ood_batches": flagged,
        "flagged_in_batches": float((stats[0] > test.threshold).float().mean()),
    }


def run_pair(args: argparse.Namespace, name: str) -> None:
    other = PAIRS[name]
    vae, background, held_out, seconds = train_pair(args, name)
    _, x_in = load(args, name)
    _, x_out = load(args, other)
    x_in, x_out = (d.subset(slice(args.n_test)) for d in (x_in, x_out))
    start = time.perf_counter()
    q_in, q_out = per_item(args, vae, background, x_in), per_item(args, vae, background, x_out)
    s_in, s_out = item_scores(q_in), item_scores(q_out)
    labels = torch.cat([torch.zeros(len(x_in)), torch.ones(len(x_out))])
    results = {}
    for score in s_in:
        both = torch.cat([s_in[score], s_out[score]])
        results[score] = {
            "auroc": anomaly.auroc(labels, both),
            "auprc": anomaly.average_precision(labels, both),
        }
    pyro.set_rng_seed(args.seed)
    held_nll = anomaly.score(vae, held_out, "log_likelihood", num_samples=args.num_samples)
    results[f"typicality_M{args.batch}"] = typicality(
        args, vae, held_nll, q_in["nll"], q_out["nll"]
    )
    scoring = time.perf_counter() - start
    settings = {k: getattr(args, k) for k in SETTINGS}
    common = {
        **settings,
        "train_seconds": round(seconds, 1),
        "score_seconds": round(scoring, 1),
        "mean_nll_in": float(q_in["nll"].mean()),
        "mean_nll_out": float(q_out["nll"].mean()),
    }
    for score, row in results.items():
        key = {"train": name, "test": other, "score": score, "likelihood": args.likelihood}
        _results.write_row("ood", key, {**row, **common})
        print(f"  {score:20s} AUROC {row['auroc']:.3f}  AUPRC {row['auprc']:.3f}", flush=True)
    print(f"  ({seconds:.0f} s training, {scoring:.0f} s scoring)")


def likelihood(row: dict[str, Any]) -> str:
    """A row's likelihood; rows written before the option existed are Bernoulli."""
    return row.get("likelihood", "bernoulli")


def finished(args: argparse.Namespace, name: str) -> bool:
    """Whether ``name``'s rows are in the results file with these settings."""
    path = _results.RESULTS / "ood.json"
    if not path.exists():
        return False
    rows = json.loads(path.read_text())["rows"]
    rows = [r for r in rows if r["train"] == name and likelihood(r) == args.likelihood]
    settings = {k: getattr(args, k) for k in SETTINGS}
    return bool(rows) and all(all(r.get(k) == v for k, v in settings.items()) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data", help="folder with the datasets")
    parser.add_argument("--train", nargs="*", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument(
        "--likelihood",
        default="bernoulli",
        choices=LIKELIHOODS,
        help="bernoulli on binarized images, or one for 8-bit grey levels",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=30_000, help="training images used")
    parser.add_argument("--n-val", type=int, default=2_000, help="held out for typicality")
    parser.add_argument("--n-test", type=int, default=5_000, help="test images per dataset")
    parser.add_argument("--num-samples", type=int, default=50, help="importance samples")
    parser.add_argument("--rate", type=float, default=0.2, help="the background's noise rate")
    parser.add_argument("--z-dim", type=int, default=16)
    parser.add_argument("--hidden", type=int, nargs="*", default=[256])
    parser.add_argument("--batch", type=int, default=10, help="M, the typicality batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=None, help="default: benchmarks/results")
    args = parser.parse_args()
    if args.results:
        _results.RESULTS = Path(args.results)
    for name in args.train:
        print(f"train {name}, test against {PAIRS[name]} ({args.likelihood}):", flush=True)
        if finished(args, name):
            print("  finished already (rows in the results file with these settings)")
            continue
        run_pair(args, name)


if __name__ == "__main__":
    main()

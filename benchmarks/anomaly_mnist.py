"""Anomaly detection on MNIST: train on nine digits, score the held-out one.

The classic protocol: for each digit d, a VAE is trained on the training images of the
other nine digits; the test set's images of digit d are the anomalies, the other test
images are normal. AUROC of pyvae's scores side by side with a PCA reconstruction-error
baseline fitted on the same images, all in one run, and the scores that survive the
likelihood paradox (the digit 1, little ink, is *more* likely than the normal digits):

- ``likelihood_ratio``: -[log p(x) - log p0(x)], p0 a background VAE trained on the same
  nine digits with each pixel replaced by a random bit at rate ``--rate`` (Ren et al. 2019);
- ``complexity_png``, ``complexity_bz2``: -log p(x) - L(x), L the PNG or bz2 code length
  of the image in nats (Serrà et al. 2020; notebook 05 shows the bz2 one);
- ``complexity_png_fitted``: -log p(x) - w L(x), w the least-squares slope of -log p(x) on
  the PNG length over ``--n-fit`` normal training images (no anomaly is seen);
- ``typical_log_likelihood``, ``typical_complexity_png_fitted``: two-sided, the distance
  of the score from its mean over those normal images (the typicality test with batches
  of one item): an image unusually likely is as anomalous as one unusually unlikely;
- ``nll_or_complexity_png``: two one-sided tests at once, the larger of the z-scores (by
  the normal images' mean and standard deviation) of -log p(x) and of the PNG complexity
  score: unusually unlikely (a 0, much ink) or unusually complex for its likelihood (a 1).

    python benchmarks/anomaly_mnist.py --root ../shared/data            # 40 s alone on 2 cores
    python benchmarks/anomaly_mnist.py --root ../shared/data --epochs 1 --digits 0 1   # quick

Images are binarized (dynamic during training; one fixed draw for the test set, for PCA
and for the background's training set), the likelihood is Bernoulli, the networks MLPs
(``--hidden``), z_dim 16; the defaults (2 epochs on 10,000 images, 10 importance samples,
the first 5,000 test images) are modest so that the 20 models train and score in about 40
seconds on the quiet 2-core machine (23 minutes when it was shared by five jobs). Each
digit's rows go to ``benchmarks/results/anomaly_mnist.json``
as it finishes (key: digit and score);
a digit whose rows are there with the same settings is not run again.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import _results  # benchmarks/_results.py, beside this file
import pyro
import torch

from pyvae import VAE, anomaly, data, evaluate, fit


def pca_scores(train: torch.Tensor, test: torch.Tensor, k: int) -> torch.Tensor:
    """Squared reconstruction error of ``test`` from the top-``k`` principal components of
    ``train`` (rows are flattened items)."""
    mean = train.mean(0)
    _, _, v = torch.linalg.svd(train - mean, full_matrices=False)
    basis = v[:k]  # (k, D)
    centred = test - mean
    return ((centred - centred @ basis.T @ basis) ** 2).sum(1)


SCORES = (
    "elbo",
    "reconstruction",
    "latent",
    "log_likelihood",
    "likelihood_ratio",
    "complexity_png",
    "complexity_bz2",
    "complexity_png_fitted",
    "typical_log_likelihood",
    "typical_complexity_png_fitted",
    "nll_or_complexity_png",
    "pca",
)
SETTINGS = (
    "epochs",
    "n_train",
    "n_test",
    "n_fit",
    "num_samples",
    "rate",
    "z_dim",
    "hidden",
    "seed",
)


def train_digit(args: argparse.Namespace, train, fixed_train, digit: int) -> tuple:
    """The VAE and the background VAE trained without ``digit``; the normal mask."""
    normal = torch.nonzero(train.targets != digit).squeeze(1)[: args.n_train]
    net = {"hidden": tuple(args.hidden)}
    pyro.set_rng_seed(args.seed)
    vae = VAE.build((1, 28, 28), z_dim=args.z_dim, likelihood="bernoulli", net_kwargs=net)
    fit(vae, train.subset(normal), epochs=args.epochs, progress=False, seed=args.seed)
    background = VAE.build((1, 28, 28), z_dim=args.z_dim, likelihood="bernoulli", net_kwargs=net)
    perturbed = anomaly.perturb(fixed_train.subset(normal), args.rate, seed=args.seed)
    fit(background, perturbed, epochs=args.epochs, progress=False, seed=args.seed)
    return vae, background, normal


def normal_fit(args, vae, normal_images) -> dict[str, float]:
    """What the calibrated scores learn from normal training images, without seeing any
    anomaly: ``slope``, the least-squares slope of -log p(x) on the PNG length L(x)
    (nats), the weight of L in the calibrated complexity score; ``nll`` and ``complexity``,
    the mean -log p(x) and the mean calibrated score, the centres of the two-sided scores."""
    pyro.set_rng_seed(args.seed)
    nll = anomaly.score(vae, normal_images, "log_likelihood", num_samples=args.num_samples)
    length = anomaly.Compressor("png")(normal_images).float() * math.log(2)
    centred = length - length.mean()
    slope = float((centred * (nll - nll.mean())).sum() / (centred**2).sum())
    complexity = float((nll - slope * length).mean())
    png = nll - length  # the complexity score with weight 1
    return {
        "slope": slope,
        "nll": float(nll.mean()),
        "complexity": complexity,
        "nll_sd": float(nll.std()),
        "png": float(png.mean()),
        "png_sd": float(png.std()),
    }


def digit_scores(args, vae, background, x_test, flat_train, lengths, fitted) -> dict:
    """Every score of the test images ``(N,)``, higher = more anomalous."""
    terms = evaluate.elbo_terms(vae, x_test, num_samples=5)  # = the "elbo" and
    out = {"elbo": -terms["elbo"], "reconstruction": -terms["reconstruction"]}  # "recon." scores
    out["latent"] = anomaly.score(vae, x_test, "latent")
    pyro.set_rng_seed(args.seed)
    nll = anomaly.score(vae, x_test, "log_likelihood", num_samples=args.num_samples)
    nll0 = anomaly.score(background, x_test, "log_likelihood", num_samples=args.num_samples)
    out["log_likelihood"] = nll
    out["likelihood_ratio"] = nll - nll0
    for name, bits in lengths.items():
        out[f"complexity_{name}"] = nll - bits * math.log(2)
    out["complexity_png_fitted"] = nll - fitted["slope"] * lengths["png"] * math.log(2)
    # Two-sided: an image unusually likely (a 1, little ink) is as anomalous as one
    # unusually unlikely (a 0, much ink): the distance from the normal images' mean, the
    # typicality test of Nalisnick et al. (2019) with batches of one item.
    out["typical_log_likelihood"] = (nll - fitted["nll"]).abs()
    out["typical_complexity_png_fitted"] = (
        out["complexity_png_fitted"] - fitted["complexity"]
    ).abs()
    # Two one-sided tests at once: unusually unlikely, or unusually complex for its
    # likelihood, each in standard deviations of the normal training images.
    z_nll = (nll - fitted["nll"]) / fitted["nll_sd"]
    z_png = (out["complexity_png"] - fitted["png"]) / fitted["png_sd"]
    out["nll_or_complexity_png"] = torch.maximum(z_nll, z_png)
    out["pca"] = pca_scores(flat_train, x_test.flatten(1), k=args.z_dim)
    return out


def finished(args: argparse.Namespace, digit: int) -> dict[str, float] | None:
    """The AUROCs of ``digit`` from the results file, if written with these settings."""
    path = _results.RESULTS / "anomaly_mnist.json"
    if not path.exists():
        return None
    settings = {k: getattr(args, k) for k in SETTINGS}
    rows = [r for r in json.loads(path.read_text())["rows"] if r["digit"] == digit]
    same = [r for r in rows if all(r.get(k) == v for k, v in settings.items())]
    found = {r["score"]: r["auroc"] for r in same}
    return found if set(found) == set(SCORES) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data", help="folder with MNIST/raw")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n-train", type=int, default=10_000, help="normal training images")
    parser.add_argument("--hidden", type=int, nargs="*", default=[256])
    parser.add_argument("--num-samples", type=int, default=10, help="for log p(x)")
    parser.add_argument("--n-test", type=int, default=5_000, help="test images scored")
    parser.add_argument("--n-fit", type=int, default=1000, help="normal images for the slope")
    parser.add_argument("--rate", type=float, default=0.2, help="the background's noise rate")
    parser.add_argument("--z-dim", type=int, default=16)
    parser.add_argument("--digits", type=int, nargs="*", default=list(range(10)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=None, help="default: benchmarks/results")
    args = parser.parse_args()
    if args.results:
        _results.RESULTS = Path(args.results)

    train, test = data.load("mnist", root=args.root, binarize="dynamic")
    fixed_train, fixed_test = data.load("mnist", root=args.root, binarize="static", seed=args.seed)
    x_test = fixed_test.data[: args.n_test].float()
    y_test = test.targets[: args.n_test]
    lengths = {
        name: anomaly.Compressor(name)(x_test).float() for name in ("png", "bz2")
    }  # the same for every digit
    print(
        f"MNIST: {args.n_train} of {len(train)} train images, {len(x_test)} of {len(test)} "
        f"test images; {args.epochs} epochs per model"
    )
    names = [s.replace("_", " ")[:10] for s in SCORES]
    header = f"{'digit':>5} | " + " | ".join(f"{n:>10}" for n in names)
    print(header)
    print("-" * len(header))
    rows = []
    for digit in args.digits:
        start = time.perf_counter()
        result = finished(args, digit)
        if result is None:
            vae, background, normal = train_digit(args, train, fixed_train, digit)
            flat_train = fixed_train.data[normal].flatten(1).float()
            fitted = normal_fit(args, vae, fixed_train.data[normal[: args.n_fit]].float())
            scores = digit_scores(args, vae, background, x_test, flat_train, lengths, fitted)
            labels = (y_test == digit).long()
            result = {m: anomaly.auroc(labels, s) for m, s in scores.items()}
            seconds = round(time.perf_counter() - start, 1)
            settings = {k: getattr(args, k) for k in SETTINGS}
            for m, value in result.items():
                _results.write_row(
                    "anomaly_mnist",
                    {"digit": digit, "score": m},
                    {"auroc": value, **settings, "seconds": seconds},
                )
        rows.append(result)
        cells = " | ".join(f"{result[m]:>10.3f}" for m in SCORES)
        print(f"{digit:>5} | {cells}   ({time.perf_counter() - start:.0f} s)", flush=True)
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in SCORES}
    print("-" * len(header))
    print(f"{'mean':>5} | " + " | ".join(f"{mean[m]:>10.3f}" for m in SCORES))


if __name__ == "__main__":
    main()

"""Anomaly detection on MNIST: train on nine digits, score the held-out one.

The classic protocol: for each digit d, a VAE is trained on the training images of the
other nine digits; the test set's images of digit d are the anomalies, the other test
images are normal. AUROC of pyvae's scores side by side with a PCA reconstruction-error
baseline fitted on the same images, all in one run.

    python benchmarks/anomaly_mnist.py --root ../shared/data            # about 10 min, 2 cores
    python benchmarks/anomaly_mnist.py --root ../shared/data --epochs 1 --digits 0 1   # quick

Images are binarized (dynamic during training; one fixed draw for the test set and for
PCA), the likelihood is Bernoulli, the networks MLPs, z_dim 16.
"""

from __future__ import annotations

import argparse
import time

import pyro
import torch

from pyvae import VAE, anomaly, data, fit


def pca_scores(train: torch.Tensor, test: torch.Tensor, k: int) -> torch.Tensor:
    """Squared reconstruction error of ``test`` from the top-``k`` principal components of
    ``train`` (rows are flattened items)."""
    mean = train.mean(0)
    _, _, v = torch.linalg.svd(train - mean, full_matrices=False)
    basis = v[:k]  # (k, D)
    centred = test - mean
    return ((centred - centred @ basis.T @ basis) ** 2).sum(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data", help="folder with MNIST/raw")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--z-dim", type=int, default=16)
    parser.add_argument("--digits", type=int, nargs="*", default=list(range(10)))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train, test = data.load("mnist", root=args.root, binarize="dynamic")
    fixed_train, fixed_test = data.load("mnist", root=args.root, binarize="static", seed=args.seed)
    x_test = fixed_test.data.float()
    y_test = test.targets
    print(f"MNIST: {len(train)} train, {len(test)} test images; {args.epochs} epochs per digit")
    header = f"{'digit':>5} | {'VAE -ELBO':>9} | {'VAE recon':>9} | {'VAE latent':>10} | {'PCA':>6}"
    print(header)
    print("-" * len(header))
    rows = []
    for digit in args.digits:
        start = time.perf_counter()
        normal = train.targets != digit
        pyro.set_rng_seed(args.seed)
        vae = VAE.build(input_shape=(1, 28, 28), z_dim=args.z_dim, likelihood="bernoulli")
        fit(vae, train.subset(normal), epochs=args.epochs, progress=False, seed=args.seed)
        labels = (y_test == digit).long()
        result = {
            method: anomaly.auroc(labels, anomaly.score(vae, x_test, method))
            for method in ("elbo", "reconstruction", "latent")
        }
        flat_train = fixed_train.data[normal].flatten(1).float()
        result["pca"] = anomaly.auroc(
            labels, pca_scores(flat_train, x_test.flatten(1), k=args.z_dim)
        )
        rows.append(result)
        print(
            f"{digit:>5} | {result['elbo']:>9.3f} | {result['reconstruction']:>9.3f} | "
            f"{result['latent']:>10.3f} | {result['pca']:>6.3f}"
            f"   ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    print("-" * len(header))
    print(
        f"{'mean':>5} | {mean['elbo']:>9.3f} | {mean['reconstruction']:>9.3f} | "
        f"{mean['latent']:>10.3f} | {mean['pca']:>6.3f}"
    )


if __name__ == "__main__":
    main()

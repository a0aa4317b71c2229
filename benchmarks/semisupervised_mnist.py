"""Semi-supervised MNIST: test accuracy of M2 (``pyvae.SemiSupervisedVAE``) with few labels.

For each label count L, a fresh M2 is trained by ``fit`` on the MNIST training images of
which L keep their label (L/10 per digit, drawn at random by ``data.hide_labels``) and the
others are unlabelled; its classifier q(y|x) then labels the 10,000 test images
(``predict``). The published figures are printed beside the measured ones for reference
only (they are not measured here): M2 of Kingma et al. (2014) reached about 88 % with 100
labels and 96.4 % with 1000 (errors 11.97 % and 3.60 %); Pyro's SS-VAE tutorial reports
its own runs.

    python benchmarks/semisupervised_mnist.py --root ../shared/data --device cuda
    python benchmarks/semisupervised_mnist.py --epochs 1 --subset 2000 --labels 100   # smoke

Setup (after Kingma et al. and Pyro's example): MLPs with one hidden layer of 500 units
for q(y|x), q(z|x,y) and p(x|y,z), z_dim 50, Bernoulli likelihood on dynamically binarized
images, Adam, batch 128; ``alpha`` (weight of log q(y|x) per labelled image) defaults to
Kingma et al.'s ``0.1 N / L``. No test data is used for any choice during training.
"""

from __future__ import annotations

import argparse
import time

import pyro
import torch

from pyvae import SemiSupervisedVAE, data, fit
from pyvae.callbacks import Callback

PUBLISHED = {100: "~88 (M2, Kingma et al.)", 1000: "96.4 (M2, Kingma et al.)"}


class PrintAccuracy(Callback):
    """Print the test accuracy every ``every`` epochs (for watching only; not used)."""

    def __init__(self, test: data.ArrayDataset, every: int):
        self.test, self.every = test, every

    def on_epoch_end(self, epoch, history, vae):
        if self.every and epoch % self.every == 0:
            accuracy = accuracy_of(vae, self.test)
            objective = history["train_elbo"][-1]
            print(f"    epoch {epoch:3d}: objective {objective:9.2f}, test {100 * accuracy:.2f} %")


def accuracy_of(vae: SemiSupervisedVAE, test: data.ArrayDataset) -> float:
    return (vae.predict(test).cpu() == test.targets).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data", help="folder with MNIST/raw")
    parser.add_argument("--labels", type=int, nargs="+", default=[100, 600, 1000, 3000])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--z-dim", type=int, default=50)
    parser.add_argument("--hidden", type=int, nargs="+", default=[500])
    parser.add_argument(
        "--alpha", type=float, help="weight of log q(y|x) per labelled image (default 0.1 N / L)"
    )
    parser.add_argument(
        "--labelled-share",
        type=float,
        default=0.25,
        help="share of each batch given to labelled images (0: uniform batches)",
    )
    parser.add_argument("--subset", type=int, default=None, help="use the first N train images")
    parser.add_argument("--every", type=int, default=0, help="print test accuracy every k epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train, test = data.load("mnist", root=args.root, binarize="dynamic")
    if args.subset is not None:
        train = train.subset(slice(0, args.subset))
    n = len(train)
    print(
        f"MNIST: {n} train, {len(test)} test images; {args.epochs} epochs, batch "
        f"{args.batch_size}, lr {args.lr}, z_dim {args.z_dim}, hidden {args.hidden}, "
        f"device {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'})"
    )
    rows = []
    for labels in args.labels:
        if labels % 10:
            raise SystemExit(f"--labels must be multiples of 10 (per digit), got {labels}")
        semi = data.hide_labels(train, per_class=labels // 10, seed=args.seed)
        alpha = args.alpha if args.alpha is not None else 0.1 * n / labels
        pyro.set_rng_seed(args.seed)
        m2 = SemiSupervisedVAE.build(
            (1, 28, 28),
            z_dim=args.z_dim,
            num_classes=10,
            alpha=alpha,
            labelled_share=args.labelled_share,
            net_kwargs={"hidden": tuple(args.hidden)},
        )
        print(f"{labels} labels, alpha {alpha:.3g}:", flush=True)
        start = time.perf_counter()
        history = fit(
            m2,
            semi,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            device=args.device,
            seed=args.seed,
            progress=False,
            callbacks=[PrintAccuracy(test, args.every)],
        )
        seconds = time.perf_counter() - start
        accuracy = accuracy_of(m2, test)
        rows.append((labels, alpha, accuracy, history["train_elbo"][-1], seconds))
        print(f"    test accuracy {100 * accuracy:.2f} % after {seconds:.0f} s", flush=True)

    print()
    header = (
        f"{'labels':>6} | {'alpha':>6} | {'test accuracy':>13} | {'objective':>9} | "
        f"{'time':>6} | published"
    )
    print(header)
    print("-" * len(header))
    for labels, alpha, accuracy, objective, seconds in rows:
        print(
            f"{labels:>6} | {alpha:>6.3g} | {100 * accuracy:>11.2f} % | {objective:>9.2f} | "
            f"{seconds:>5.0f}s | {PUBLISHED.get(labels, '')}"
        )


if __name__ == "__main__":
    main()

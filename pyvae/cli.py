"""The ``pyvae`` command line.

pyvae train                      # train on the built-in sprites, write a run folder
pyvae train --prior vamp --z-dim 16 --epochs 20 --out runs/vamp
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _train(args: argparse.Namespace) -> int:
    import pyro

    from . import data, plots
    from .model import VAE
    from .train import fit

    out = Path(args.out or f"runs/{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists() and any(out.iterdir()):
        print(f"error: {out} exists and is not empty; choose another --out", file=sys.stderr)
        return 2
    if args.seed is not None:
        pyro.set_rng_seed(args.seed)
    train, test = data.load(args.dataset)
    if args.limit is not None:
        train = data.ArrayDataset(train.data[: args.limit], None)
        test = data.ArrayDataset(test.data[: args.limit], None)
    likelihood_kwargs = {"scale": args.scale} if args.likelihood in ("gaussian", "laplace") else {}
    vae = VAE.build(
        input_shape=train.shape,
        z_dim=args.z_dim,
        prior=args.prior,
        likelihood=args.likelihood,
        net=args.net,
        likelihood_kwargs=likelihood_kwargs,
    )
    history = fit(
        vae,
        train,
        val=test,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        beta=args.beta,
        warmup_epochs=args.warmup_epochs,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
    )
    out.mkdir(parents=True, exist_ok=True)
    vae.save(out / "model.pt")
    (out / "config.json").write_text(
        json.dumps(
            {"args": {k: v for k, v in vars(args).items() if k != "func"}, "vae": vae.config},
            indent=2,
        )
    )
    (out / "history.json").write_text(json.dumps(history, indent=2))
    plots.reconstructions_and_samples(vae, test).savefig(out / "reconstructions_and_samples.png")
    plots.history(history).savefig(out / "history.png")
    if not args.quiet:
        if history.get("val_elbo"):
            print(f"test ELBO: {history['val_elbo'][-1]:.2f} nats per example")
        print(f"model:   {out / 'model.pt'}")
        print(f"figures: {out / 'reconstructions_and_samples.png'}, {out / 'history.png'}")
    return 0


def _parser() -> argparse.ArgumentParser:
    from .data import DATASETS
    from .model import LIKELIHOODS, NETS, PRIORS

    parser = argparse.ArgumentParser(
        prog="pyvae", description="Variational autoencoders as Pyro models and guides."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser(
        "train",
        help="train a VAE and write a run folder (model, history, figures)",
        description="Train a VAE with SVI and write a run folder: model.pt, config.json, "
        "history.json and PNG figures of reconstructions, samples and the ELBO per epoch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--dataset", default="sprites", choices=sorted(DATASETS), help="dataset")
    t.add_argument("--prior", default="normal", choices=sorted(PRIORS), help="prior p(z)")
    t.add_argument("--likelihood", default="bernoulli", choices=sorted(LIKELIHOODS))
    t.add_argument(
        "--scale",
        default="learned",
        help="Gaussian/Laplace scale: a number, 'learned' or 'decoder'",
    )
    t.add_argument("--net", default="mlp", choices=sorted(NETS), help="encoder/decoder type")
    t.add_argument("--z-dim", type=int, default=10, help="latent dimension")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    t.add_argument("--beta", type=float, default=1.0, help="KL weight (beta-VAE)")
    t.add_argument("--warmup-epochs", type=float, default=0, help="KL warm-up from 0")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    t.add_argument("--device", default=None, help="cpu or cuda (default: cpu)")
    t.add_argument("--out", default=None, help="run folder (default: runs/DATASET-TIME)")
    t.add_argument("--limit", type=int, default=None, help="use only the first N items")
    t.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    t.set_defaults(func=_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyvae`` console script."""
    args = _parser().parse_args(argv)
    if args.scale not in ("learned", "decoder"):
        try:
            args.scale = float(args.scale)
        except ValueError:
            print(
                f"error: --scale must be a number, 'learned' or 'decoder', got {args.scale!r}",
                file=sys.stderr,
            )
            return 2
    try:
        return args.func(args)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

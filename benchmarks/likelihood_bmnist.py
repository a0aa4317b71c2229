"""Test negative log-likelihood on statically binarized MNIST, one model family per run.

Each run trains one row of the table and prints it: the test NLL estimated by importance
sampling with 5000 draws per image from the trained q(z|x) (``vae.log_likelihood``),
the test ELBO, the epochs and the training time. One command per row:

    python benchmarks/likelihood_bmnist.py --model normal --epochs 100 --device cuda
    python benchmarks/likelihood_bmnist.py --model mog    --epochs 100 --device cuda
    python benchmarks/likelihood_bmnist.py --model vamp   --epochs 100 --device cuda
    python benchmarks/likelihood_bmnist.py --model flow   --epochs 100 --device cuda
    python benchmarks/likelihood_bmnist.py --model iaf    --epochs 100 --device cuda
    python benchmarks/likelihood_bmnist.py --model iwae   --epochs 100 --device cuda
    python benchmarks/likelihood_bmnist.py --model iwae --epochs 1 --n-train 500 --n-test 50 \\
        --num-samples 100 --device cpu                        # a quick check that it runs

Data: Larochelle & Murray's fixed binarization (``../shared/data/binarized_mnist``);
training on its 50,000 training and 10,000 validation images, testing on its 10,000
test images. No early stopping: the given number of epochs is run.

Settings, after the papers (what differs is said):

- ``normal``, ``mog``, ``vamp``, ``flow``, ``iaf``: Tomczak & Welling (2018)'s one-layer
  models: z_dim 40, encoder and decoder with two hidden layers of 300 units (theirs are
  gated; here ReLU), Bernoulli likelihood, Adam with learning rate 5e-4, batch 100, KL
  warm-up over 5 % of the epochs (theirs: 100 of at most 2000 epochs, with early
  stopping). ``mog``: 500 learnable Gaussian components; ``vamp``: 500 pseudo-inputs,
  started at training images (theirs: random, clipped to [0, 1]); ``flow``: two spline
  autoregressive transforms (``priors.FlowPrior``); ``iaf``: the IAF posterior
  (Kingma et al. 2016), two steps with 320-320 MADEs and a 40-dimensional context from
  the encoder (their MNIST models are convolutional ResNets).
- ``iwae``: Burda et al. (2016)'s one-layer model: 784-200-200-50 with tanh units,
  trained with the IWAE bound, K = 50, batch 20, Adam with learning rate 1e-3 (theirs
  decays it over 3280 epochs), no warm-up.

Published test NLLs to compare with (nats): a standard VAE about 88.6-89.9, VampPrior
85.57, IWAE (K = 50) 87.10. The runs here are far shorter than the papers' (thousands of
epochs with early stopping), which is the main reason for higher numbers.
"""

from __future__ import annotations

import argparse
import time

import pyro
import torch
from torch import nn

from pyvae import VAE, data, evaluate, fit
from pyvae.iwae import IWAE
from pyvae.posteriors import IAFVAE

MODELS = ("normal", "mog", "vamp", "flow", "iaf", "iwae")


def build(model: str) -> VAE:
    """The row's VAE (see the module docstring for the settings)."""
    shape = (1, 28, 28)
    if model == "iwae":
        return VAE.build(shape, 50, net_kwargs={"hidden": (200, 200), "activation": nn.Tanh})
    net_kwargs = {"hidden": (300, 300)}
    if model == "iaf":
        return IAFVAE.build(
            shape, 40, num_steps=2, context_dim=40, hidden_dims=(320, 320), net_kwargs=net_kwargs
        )
    prior_kwargs = {"components": 500} if model in ("mog", "vamp") else None
    return VAE.build(shape, 40, model, net_kwargs=net_kwargs, prior_kwargs=prior_kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--root", default="../shared/data")
    parser.add_argument("--n-train", type=int, default=None, help="training images (default: all)")
    parser.add_argument("--n-test", type=int, default=None, help="test images (default: all)")
    parser.add_argument("--num-samples", type=int, default=5000, help="importance samples")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the paper's")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train, test = data.load("binarized_mnist", root=args.root)
    if args.n_train is not None:
        train = train.subset(slice(0, args.n_train))
    x_test = data.as_tensor(test)[: args.n_test]
    pyro.set_rng_seed(args.seed)
    vae = build(args.model)
    if args.model == "vamp":
        vae.prior.init_from_data(data.as_tensor(train).float())
    iwae = args.model == "iwae"
    settings = {
        "epochs": args.epochs,
        "batch_size": args.batch_size or (20 if iwae else 100),
        "lr": 1e-3 if iwae else 5e-4,
        "warmup_epochs": 0 if iwae else 0.05 * args.epochs,
        "elbo": IWAE(50) if iwae else None,
    }
    print(
        f"{args.model}: {sum(p.numel() for p in vae.parameters())} parameters, "
        f"{len(train)} training images, {args.epochs} epochs, batch {settings['batch_size']}, "
        f"device {args.device}",
        flush=True,
    )
    start = time.perf_counter()
    history = fit(vae, train, seed=args.seed, device=args.device, progress=False, **settings)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    elbo = float(vae.elbo(x_test, num_samples=10))
    log_lik = evaluate.log_likelihood(vae, x_test, num_samples=args.num_samples, batch_size=100)
    eval_s = time.perf_counter() - start
    nll = -float(log_lik.mean())
    stderr = float(log_lik.std() / len(log_lik) ** 0.5)
    print(f"  final training objective {history['train_elbo'][-1]:.2f} nats per image")
    print(
        f"  test ELBO {elbo:.2f}, test NLL {nll:.2f} +- {stderr:.2f} (IS, {args.num_samples} "
        f"samples, {len(x_test)} images); training {train_s:.0f} s, evaluation {eval_s:.0f} s"
    )
    print(
        f"| {args.model} | {args.epochs} | {nll:.2f} | {-elbo:.2f} | {train_s / 60:.1f} min |",
        flush=True,
    )


if __name__ == "__main__":
    main()

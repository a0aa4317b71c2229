"""How good is q(z|x)? The inference gaps of an MLP VAE on statically binarized MNIST.

Trains one VAE (Cremer, Li & Duvenaud 2018's MNIST architecture: z_dim 50, encoder and
decoder with two hidden layers of 200 units, a fully factorized Gaussian q), then, for the
first ``--n`` test images, ``pyvae.evaluate.inference_gaps``: the ELBO of the encoder's q,
the ELBO of the optimal Gaussian fitted to each image by SVI from the encoder's
(``--steps`` steps), log p(x) by importance sampling with that optimal q as proposal (and
with the encoder's), the approximation and amortization gaps; and semi-amortized
refinement at test time, ``vae.encode(x, refine_steps=--refine-steps)``, scored the same
way. The row goes to ``benchmarks/results/inference_gaps.json`` (key: model, e.g.
``mlp-z50-5ep``: the latent size and the epochs).

    python benchmarks/inference_gaps.py                  # about 3 min on 2 shared CPU cores
    python benchmarks/inference_gaps.py --epochs 20      # a longer-trained row, about 5 min
    python benchmarks/inference_gaps.py --epochs 1 --n-train 200 --n 20 --num-samples 20 \\
        --steps 5 --refine-steps 2 --out /tmp/runs --results /tmp/results   # a smoke run

Resumable: training is checkpointed every epoch in ``--out/<model>/`` (default under
``~/.cache/pyvae/benchmark-runs/inference_gaps/``), and a finished row is printed, not
redone. Training is short (``--epochs``, default 5, on the shared 2-core CPU); Cremer et
al. train for thousands of epochs, so the gaps here are those of a young model.
"""

from __future__ import annotations

import argparse
import time

import pyro
import torch
from _recipe import RowFolder, add_common_flags, fit_summary, minutes, setup
from _results import write_row

import pyvae
from pyvae import VAE, data, evaluate, fit
from pyvae.posterior import proposal_bounds

#: What Cremer et al. (2018) report for MNIST with a fully factorized Gaussian q.
PUBLISHED = (
    "Cremer et al. 2018 (MNIST, FFG q): amortization gap several nats, approximation gap a few"
)


def train(args, folder: RowFolder) -> dict:
    """Train (or continue) the row's VAE; returns what ``trained.json`` holds."""
    if (trained := folder.read("trained.json")) is not None:
        return trained
    train_set, _ = data.load("binarized_mnist", root=args.root)
    train_set = train_set.subset(slice(0, args.n_train))
    pyro.set_rng_seed(args.seed)
    vae = VAE.build((1, 28, 28), args.z_dim, net_kwargs={"hidden": (200, 200)})
    history = fit(
        vae,
        train_set,
        epochs=args.epochs,
        batch_size=100,
        lr=1e-3,
        seed=args.seed,
        device=args.device,
        progress=False,
        checkpoint_dir=folder.path,
        resume=True,
    )
    vae.save(folder.path / "model.pt", overwrite=True)
    trained = {**fit_summary(history), "train_elbo": history["train_elbo"][-1]}
    folder.write("trained.json", trained)
    return trained


def mean_se(values: torch.Tensor) -> tuple[float, float]:
    values = values.double()
    return float(values.mean()), float(values.std() / len(values) ** 0.5)


def measure(args, folder: RowFolder, trained: dict) -> dict:
    """The gaps, and refinement's effect, on the first ``args.n`` test images."""
    vae = pyvae.load(folder.path / "model.pt").to(args.device)
    vae.eval()
    _, test = data.load("binarized_mnist", root=args.root)
    x = data.as_tensor(test)[: args.n].float().to(args.device)
    start = time.perf_counter()
    pyro.set_rng_seed(args.seed)
    gaps = evaluate.inference_gaps(
        vae, x, num_samples=args.num_samples, steps=args.steps, lr=args.lr,
        num_particles=args.num_particles, batch_size=args.batch_size,
    )  # fmt: skip
    refined_elbo, refined_ll = [], []
    for i in range(0, len(x), args.batch_size):
        xb = x[i : i + args.batch_size]
        q = vae.encode(xb, refine_steps=args.refine_steps, refine_lr=args.lr)
        bounds = proposal_bounds(vae, xb, q, args.num_samples)
        refined_elbo.append(bounds.elbo)
        refined_ll.append(bounds.log_likelihood)
    gaps["refined_elbo"] = torch.cat(refined_elbo)
    gaps["refined_log_likelihood"] = torch.cat(refined_ll)
    row: dict = {"n": len(x)}
    for key, values in gaps.items():
        row[key], row[f"{key}_se"] = mean_se(values.cpu())
    return {
        **row,
        "epochs": trained["epochs"],
        "train_seconds": trained["seconds"],
        "train_elbo": trained["train_elbo"],
        "eval_seconds": time.perf_counter() - start,
        "z_dim": args.z_dim,
        "n_train": args.n_train,
        "num_samples": args.num_samples,
        "steps": args.steps,
        "refine_steps": args.refine_steps,
        "lr": args.lr,
        "num_particles": args.num_particles,
        "published": PUBLISHED,
        "device": args.device,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_flags(parser, "benchmarks/runs/inference_gaps")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--z-dim", type=int, default=50)
    parser.add_argument("--n-train", type=int, default=50_000, help="training images")
    parser.add_argument("--n", type=int, default=500, help="test images to measure")
    parser.add_argument("--num-samples", type=int, default=1000, help="draws per bound")
    parser.add_argument("--steps", type=int, default=300, help="SVI steps of the optimal q")
    parser.add_argument("--refine-steps", type=int, default=20, help="refinement's steps")
    parser.add_argument("--lr", type=float, default=0.1, help="the per-item SVI's rate")
    parser.add_argument("--num-particles", type=int, default=8, help="draws per SVI step")
    parser.add_argument("--batch-size", type=int, default=100, help="items per SVI")
    args = parser.parse_args()
    setup(args)
    model = f"mlp-z{args.z_dim}-{args.epochs}ep"
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "results", "root")}
    folder = RowFolder(args.out, model, settings)
    row = folder.read("done.json")
    if row is not None:
        print(f"{model}: finished already ({folder.path})")
    else:
        print(f"{model}: {args.epochs} epochs on {args.n_train} images; {folder.path}")
        trained = train(args, folder)
        print(f"  trained: {trained['epochs']} epochs, {minutes(trained['seconds'])}", flush=True)
        row = measure(args, folder, trained)
        folder.write("done.json", row)
    write_row("inference_gaps", {"model": model}, row, device=args.device)
    for key in ("log_likelihood", "elbo_optimal", "elbo_amortized", "refined_elbo"):
        print(f"  {key:>24}: {row[key]:9.2f} ± {row[key + '_se']:.2f} nats")
    for key in ("approximation_gap", "amortization_gap"):
        print(f"  {key:>24}: {row[key]:9.2f} ± {row[key + '_se']:.2f} nats")
    print(f"  measured in {minutes(row['eval_seconds'])} on {row['n']} test images")


if __name__ == "__main__":
    main()

"""Disentanglement on the built-in sprites: VAE, β-VAE, β-TCVAE and FactorVAE, three seeds.

Each row trains one model with one seed on 64x64 sprites (five known generating factors:
shape, scale, orientation, x, y) and scores it with every metric of
:mod:`pyvae.disentanglement` (``scores``: MIG, DCI disentanglement / completeness /
informativeness and SAP of the held-out sprites' posterior means; the FactorVAE and
β-VAE metrics on sprites drawn with chosen factors, ``sprites_sampler``), with the test
ELBO (nats per image) and the training time. Rows go to
``benchmarks/results/disentanglement.json`` (key: model, seed).

    python benchmarks/disentanglement_sprites.py            # 12 rows, 26 min on 2 shared cores
    python benchmarks/disentanglement_sprites.py --models vae factor_vae --seeds 0 \\
        --epochs 1 --n-train 256 --n-test 128 --out /tmp/runs --results /tmp/results

The models, after the papers' sprites settings (what differs is said):

- ``vae``: ``fit``'s ELBO.
- ``beta_vae``: β = 4, ``fit(beta=4)`` (Higgins et al. 2017).
- ``beta_tcvae``: :class:`pyvae.tcvae.BetaTCELBO`, β = 6 on the total correlation,
  α = γ = 1, minibatch-weighted sampling with N = the training set (Chen et al. 2018).
- ``factor_vae``: :class:`pyvae.factor_vae.FactorVAELoss`, γ = 6.4, its discriminator
  4 x 256 hidden units (the paper's: 5 x 1000) with Adam 1e-4, betas (0.5, 0.9)
  (Kim & Mnih 2018).

All share the network of ``benchmarks/beta_sprites.py`` (MLPs with 256-128 hidden units,
z_dim 10, standard normal prior, Bernoulli likelihood), Adam with learning rate 1e-3 and
batch 128, 15 epochs, one torch thread (the papers: convolutional networks, batch 64 to
2048, many more steps), so the absolute scores are below the papers'; the comparison
between objectives is the point.

Every row is trained first, then every row is scored. Resumable: each row trains in
``--out/<model>-seed<s>/`` (default under
``~/.cache/pyvae/benchmark-runs/disentanglement_sprites/``), checkpointed every epoch
(FactorVAE's discriminator too); the same command continues an interrupted run, and a
finished row is printed, not redone.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import pyro
import torch
from _recipe import RowFolder, add_common_flags, fit_summary, minutes, setup
from _results import write_row

import pyvae
from pyvae import VAE, data, disentanglement, fit
from pyvae.factor_vae import FactorVAELoss
from pyvae.tcvae import BetaTCELBO

#: Each model's weight: β of the KL (β-VAE), of the TC (β-TCVAE), γ of the TC (FactorVAE).
MODELS: dict[str, dict[str, float]] = {
    "vae": {"beta": 1.0},
    "beta_vae": {"beta": 4.0},
    "beta_tcvae": {"beta": 6.0},
    "factor_vae": {"gamma": 6.4},
}
Z_DIM = 10
HIDDEN = (256, 128)


def build(size: int) -> VAE:
    """The network of benchmarks/beta_sprites.py on ``size`` x ``size`` sprites."""
    return VAE.build((1, size, size), z_dim=Z_DIM, net_kwargs={"hidden": HIDDEN})


def objective(model: str) -> tuple[Any, float]:
    """``fit``'s ``elbo`` (None: the ELBO) and ``beta`` for the model."""
    weight = MODELS[model]
    if model == "beta_tcvae":
        return BetaTCELBO(beta=weight["beta"]), 1.0
    if model == "factor_vae":
        return FactorVAELoss(Z_DIM, gamma=weight["gamma"]), 1.0
    return None, weight["beta"]


def train_row(args, folder: RowFolder, model: str, seed: int, train) -> dict:
    """Train (or continue) one row; returns what ``trained.json`` holds."""
    if (trained := folder.read("trained.json")) is not None:
        return trained
    pyro.set_rng_seed(seed)
    vae = build(args.size)
    elbo, beta = objective(model)
    history = fit(
        vae,
        train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        beta=beta,
        elbo=elbo,
        seed=seed,
        device=args.device,
        progress=False,
        checkpoint_dir=folder.path,
        resume=True,
    )
    vae.save(folder.path / "final.pt", overwrite=True)
    summary = fit_summary(history)
    trained = {"epochs": summary["epochs"], "train_seconds": summary["seconds"]}
    folder.write("trained.json", trained)
    return trained


def evaluate_row(args, folder: RowFolder, model: str, seed: int, trained: dict, test) -> dict:
    """The row: every disentanglement score, the test ELBO, the epochs and the time."""
    vae = pyvae.load(folder.path / "final.pt").to(args.device)
    vae.eval()
    start = time.perf_counter()
    pyro.set_rng_seed(seed)
    test_elbo = float(vae.elbo(test, num_samples=10))
    pyro.set_rng_seed(seed)
    sampler = disentanglement.sprites_sampler(args.size)  # for the interventional scores
    metrics = disentanglement.scores(vae, test, sampler, num_items=len(test), seed=seed)
    metrics = {k: float(v) for k, v in metrics.items()}
    return {
        **MODELS[model],
        **metrics,
        "epochs": trained["epochs"],
        "train_seconds": trained["train_seconds"],
        "eval_seconds": time.perf_counter() - start,
        "test_elbo": test_elbo,
        "n_train": args.n_train,
        "n_test": args.n_test,
        "size": args.size,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "device": args.device,
    }


def report(model: str, seed: int, row: dict) -> str:
    shown = ("mig", "dci_disentanglement", "sap", "factor_vae", "beta_vae")
    scores = ", ".join(f"{k} {row[k]:.3f}" for k in shown if k in row)
    return (
        f"  {model} seed {seed}: test ELBO {row['test_elbo']:.1f}; {scores} "
        f"({row['epochs']} epochs, {minutes(row['train_seconds'])} training)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_flags(parser, "disentanglement_sprites")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    setup(args)
    train, test = data.load(
        "sprites", n_train=args.n_train, n_test=args.n_test, size=args.size, seed=args.seed
    )
    rows = [(m, s) for s in args.seeds for m in args.models]  # every model of a seed first
    print(
        f"{len(rows)} rows: {len(train)} training, {len(test)} test sprites of {args.size}x"
        f"{args.size}; {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}; device "
        f"{args.device}; folders under {args.out}",
        flush=True,
    )
    keep = ("out", "results", "root", "models", "seeds")
    settings = {k: v for k, v in vars(args).items() if k not in keep}
    folders = {
        (m, s): RowFolder(args.out, f"{m}-seed{s}", {**settings, "model": m}) for m, s in rows
    }
    try:
        train_all(args, folders, train)
        score_all(args, folders, test)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def train_all(args, folders: dict, train) -> None:
    """Train every row not trained yet (the first pass), with the time left."""
    todo = [key for key, folder in folders.items() if folder.read("trained.json") is None]
    started = time.perf_counter()
    for i, (model, seed) in enumerate(todo):
        trained = train_row(args, folders[model, seed], model, seed, train)
        per_row = (time.perf_counter() - started) / (i + 1)
        print(
            f"  trained {model} seed {seed}: {trained['epochs']} epochs in "
            f"{minutes(trained['train_seconds'])}; {i + 1}/{len(todo)} to train, "
            f"{minutes(per_row * (len(todo) - i - 1))} of training left",
            flush=True,
        )


def score_all(args, folders: dict, test) -> None:
    """Score every trained row not scored yet (the second pass); write its row."""
    started, scored = time.perf_counter(), 0
    for i, ((model, seed), folder) in enumerate(folders.items()):
        row = folder.read("done.json")
        if row is not None:
            print(f"{report(model, seed, row)}: finished already", flush=True)
            continue
        row = evaluate_row(args, folder, model, seed, folder.read("trained.json"), test)
        folder.write("done.json", row)
        path = write_row("disentanglement", {"model": model, "seed": seed}, row, args.device)
        scored += 1
        per_row = (time.perf_counter() - started) / scored
        left = minutes(per_row * (len(folders) - i - 1))
        print(f"{report(model, seed, row)}; {i + 1}/{len(folders)} rows, {left} left", flush=True)
        print(f"  wrote {path}", flush=True)


if __name__ == "__main__":
    # One thread: on the shared 2-core machine, two threads waiting on each other made a
    # step 7 times slower (2.8 s against 0.38 s of wall time, measured under load).
    torch.set_num_threads(1)
    main()

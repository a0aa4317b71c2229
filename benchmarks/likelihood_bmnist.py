"""Test negative log-likelihood on statically binarized MNIST, one model family per command.

Each command trains one row of the table, chooses its epoch on the validation split, and
estimates the test NLL by importance sampling with K = 5000 draws per image from the
trained q(z|x) (``vae.log_likelihood``) on the whole test set (10,000 images); the row
goes to ``benchmarks/results/likelihood_bmnist.json`` (key: model). One command per row:

    python benchmarks/likelihood_bmnist.py --model normal
    python benchmarks/likelihood_bmnist.py --model mog
    python benchmarks/likelihood_bmnist.py --model vamp
    python benchmarks/likelihood_bmnist.py --model vamp --activation glu   # gated layers
    python benchmarks/likelihood_bmnist.py --model flow
    python benchmarks/likelihood_bmnist.py --model iaf
    python benchmarks/likelihood_bmnist.py --model iwae
    python benchmarks/likelihood_bmnist.py --model burda_vae
    python benchmarks/likelihood_bmnist.py --model normal --epochs 2 --n-train 500 \\
        --n-val 100 --n-test 50 --num-samples 100 --out /tmp/runs --results /tmp/results
                                                # a quick check that it runs end to end

Resumable: each row trains in ``--out/<model>/`` (default ``~/.cache/pyvae/benchmark-runs/
likelihood_bmnist/<model>/``, or under ``$PYVAE_BENCH_RUNS``: outside the work tree),
checkpointed every epoch; an interrupted
run (Ctrl-C, SIGTERM, a session's end) continues with the same command, in training or in
the evaluation (saved every 1000 test images), and a finished row is printed, not redone.
The best epoch so far on the validation split is kept there (``best.pt``, its score in
``best.json``), so a resumed run keeps choosing among all its epochs.

Data: Larochelle & Murray's fixed binarization (``../shared/data/binarized_mnist``):
training on its 50,000 training images, model selection (and early stopping) on its
10,000 validation images, testing on its 10,000 test images.

Settings, after the papers (what differs is said); each can be overridden by its flag:

- ``normal``, ``mog``, ``vamp``, ``flow``, ``iaf``: Tomczak & Welling (2018)'s one-layer
  models: z_dim 40, encoder and decoder with two hidden layers of 300 units (theirs are
  gated; here ReLU unless ``--activation glu``), Bernoulli likelihood, Adam with
  learning rate 5e-4, batch 100, KL warm-up over 100 epochs, at most 2000 epochs with
  early stopping on the validation ELBO (patience 50 epochs), the best epoch kept.
  ``mog``: 500 learnable Gaussian components; ``vamp``: 500 pseudo-inputs, started at
  training images (theirs: random, clipped to [0, 1]); ``flow``: two spline
  autoregressive transforms (``priors.FlowPrior``); ``iaf``: the IAF posterior (Kingma
  et al. 2016), two steps with 320-320 MADEs and a 40-dimensional context from the
  encoder (their MNIST models are convolutional ResNets).
- ``iwae``: Burda et al. (2016)'s one-layer model: 784-200-200-50 with tanh units,
  trained with the IWAE bound, K = 50, batch 20, Adam, 3280 epochs in 8 stages, stage i
  (0..7) 3^i epochs at learning rate 1e-3 * 10^(-i/7), no warm-up, no early stopping.
  Each stage is one ``fit`` (its own folder ``stage<i>/``), so Adam's moments start
  afresh at each stage (theirs: not said) and its epsilon is torch's 1e-8 (theirs: 1e-4).
  The epoch kept is the best by the IWAE bound (K = 50) on the validation split (theirs:
  the last, trained on all 60,000 images).
- ``burda_vae``: the same networks, schedule and model selection as ``iwae``, trained with
  the ELBO (one draw of z per image): Burda et al.'s VAE column, so that the two rows with
  the same ``--epochs`` show what the IWAE bound gains for equal training.
- ``--activation glu``: the hidden layers of both networks are gated, h = (W x) *
  sigmoid(V x) (``nets.ACTIVATIONS``), as Tomczak & Welling's are; a row of its own
  (folder ``<model>-glu/``, key model and activation).

Published test NLLs to compare with (nats): a standard VAE about 88.6-89.9, VampPrior
85.57, IWAE (K = 50) 87.10.
"""

from __future__ import annotations

import argparse
import time

import pyro
import torch
from _recipe import (
    KeepBest,
    RowFolder,
    add_common_flags,
    chunked_log_likelihood,
    fit_summary,
    minutes,
    setup,
)
from _results import write_row

import pyvae
from pyvae import VAE, data, fit, nets
from pyvae.iwae import IWAE
from pyvae.posteriors import IAFVAE

MODELS = ("normal", "mog", "vamp", "flow", "iaf", "iwae", "burda_vae")
#: The rows with Burda et al.'s networks, schedule and model selection.
BURDA_MODELS = ("iwae", "burda_vae")
PUBLISHED = {"normal": "88.6-89.9", "vamp": "85.57", "iwae": "87.10"}
#: The papers' settings: Tomczak & Welling (2018) for the one-layer rows, Burda et al. (2016)
TOMCZAK = {
    "epochs": 2000,
    "batch_size": 100,
    "lr": 5e-4,
    "warmup_epochs": 100.0,
    "patience": 50,
    "activation": "relu",
}
BURDA = {
    "epochs": 3280,
    "batch_size": 20,
    "lr": 1e-3,
    "warmup_epochs": 0.0,
    "patience": 0,
    "activation": "tanh",
}
IWAE_K = 50


def recipe(model: str) -> dict:
    """The paper's settings of the row ``model``."""
    return BURDA if model in BURDA_MODELS else TOMCZAK


def build(model: str, activation: str | None = None) -> VAE:
    """The row's VAE (see the module docstring for the settings), with ``activation`` for
    the hidden units (default: the paper's row's)."""
    activation = activation or recipe(model)["activation"]
    shape = (1, 28, 28)
    if model in BURDA_MODELS:
        return VAE.build(shape, 50, net_kwargs={"hidden": (200, 200), "activation": activation})
    net_kwargs = {"hidden": (300, 300), "activation": activation}
    if model == "iaf":
        return IAFVAE.build(
            shape, 40, num_steps=2, context_dim=40, hidden_dims=(320, 320), net_kwargs=net_kwargs
        )
    prior_kwargs = {"components": 500} if model in ("mog", "vamp") else None
    return VAE.build(shape, 40, model, net_kwargs=net_kwargs, prior_kwargs=prior_kwargs)


def stages(model: str, epochs: int, lr: float) -> list[tuple[int, int, float]]:
    """The run's ``fit`` calls: (first epoch - 1, last epoch, learning rate) each. One for
    the one-layer rows; Burda et al.'s schedule for IWAE, cut at ``epochs`` (a longer run
    stays at the last rate)."""
    if model not in BURDA_MODELS:
        return [(0, epochs, lr)]
    out, start = [], 0
    for i in range(8):
        end = min(start + 3**i, epochs) if i < 7 else epochs
        if end > start:
            out.append((start, end, lr * 10 ** (-i / 7)))
        start += 3**i
    return out


def load_data(args):
    train, test = data.load("binarized_mnist", root=args.root)
    train, val = train.subset(slice(0, 50_000)), train.subset(slice(50_000, None))
    if args.n_train is not None:
        train = train.subset(slice(0, args.n_train))
    if args.n_val is not None:
        val = val.subset(slice(0, args.n_val))
    return train, val, data.as_tensor(test)[: args.n_test]


def train_row(args, folder: RowFolder, train, val) -> dict:
    """Train (or continue) the row; returns what ``trained.json`` holds."""
    if (trained := folder.read("trained.json")) is not None:
        return trained
    iwae = args.model in BURDA_MODELS  # chosen by the validation IWAE bound
    x_val = data.as_tensor(val)

    def score(vae, history):
        if not iwae:
            return history["val_elbo"][-1]
        vae.eval()
        value = vae.log_likelihood(x_val, IWAE_K, batch_size=500).mean()
        vae.train()
        return value

    seconds, epochs = 0.0, 0
    plan = stages(args.model, args.epochs, args.lr)
    for i, (first, last, lr) in enumerate(plan):
        sub = folder.path / f"stage{i}"
        done = folder.read(f"stage{i}/stage.json")
        if done is None:
            best = folder.read("best.json")
            if best is not None and best["stopped"]:  # then interrupted before stage.json
                if (sub / "checkpoint.pt").exists():
                    done = fit_summary(None, sub)
                    folder.write(f"stage{i}/stage.json", done)
                    seconds, epochs = seconds + done["seconds"], first + done["epochs"]
                break
            sub.mkdir(exist_ok=True)
            pyro.set_rng_seed(args.seed)
            if i == 0:
                vae = build(args.model, args.activation)
                if args.model == "vamp":
                    vae.prior.init_from_data(data.as_tensor(train).float())
            else:
                vae = pyvae.load(folder.path / f"stage{i - 1}" / "final.pt")
            if len(plan) > 1:
                print(f" stage {i}: epochs {first + 1}-{last}, learning rate {lr:.3g}", flush=True)
            keep = KeepBest(
                folder,
                score,
                total=args.epochs,
                patience=args.patience or None,
                offset=first,
                what=f"validation IWAE bound (K={IWAE_K})" if iwae else "validation ELBO",
            )
            history = fit(
                vae,
                train,
                None if iwae else val,
                epochs=last - first,
                batch_size=args.batch_size,
                lr=lr,
                warmup_epochs=args.warmup_epochs,
                elbo=IWAE(IWAE_K) if args.model == "iwae" else None,
                seed=args.seed + i,
                device=args.device,
                progress=False,
                checkpoint_dir=sub,
                resume=True,
                callbacks=[keep],
            )
            vae.save(sub / "final.pt", overwrite=True)
            done = fit_summary(history)
            folder.write(f"stage{i}/stage.json", done)
        seconds += done["seconds"]
        epochs = first + done["epochs"]
    best = folder.read("best.json")
    trained = {"epochs": epochs, "train_seconds": seconds, **best}
    folder.write("trained.json", trained)
    return trained


def evaluate_row(args, folder: RowFolder, trained: dict, x_test: torch.Tensor) -> dict:
    vae = pyvae.load(folder.path / "best.pt").to(args.device)
    vae.eval()
    start = time.perf_counter()
    pyro.set_rng_seed(args.seed)
    elbo = float(vae.elbo(x_test, num_samples=10))
    log_lik = chunked_log_likelihood(vae, x_test, args.num_samples, folder, args.seed)
    nll = -float(log_lik.mean())
    return {
        "test_nll": nll,
        "test_nll_se": float(log_lik.std() / len(log_lik) ** 0.5),
        "n_test": len(x_test),
        "num_samples": args.num_samples,
        "epochs": trained["epochs"],
        "best_epoch": trained["epoch"],
        "stopped_early": trained["stopped"],
        "max_epochs": args.epochs,
        "val_score": trained["score"],
        "test_elbo": elbo,
        "train_seconds": trained["train_seconds"],
        "eval_seconds_last_call": time.perf_counter() - start,
        "n_train": args.n_train or 50_000,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup_epochs": args.warmup_epochs,
        "patience": args.patience,
        "published_nll": PUBLISHED.get(args.model),
        "device": args.device,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODELS, required=True)
    add_common_flags(parser, "benchmarks/runs/likelihood_bmnist")
    for name, kind in (
        ("epochs", int),
        ("batch-size", int),
        ("lr", float),
        ("warmup-epochs", float),
        ("patience", int),
    ):
        parser.add_argument(f"--{name}", type=kind, default=None, help="default: the paper's")
    parser.add_argument("--n-train", type=int, default=None, help="training images (all)")
    parser.add_argument("--n-val", type=int, default=None, help="validation images (all)")
    parser.add_argument("--n-test", type=int, default=None, help="test images (all)")
    parser.add_argument("--num-samples", type=int, default=5000, help="importance samples")
    parser.add_argument(
        "--activation",
        choices=sorted(nets.ACTIVATIONS),
        default=None,
        help="of the hidden units; default: the paper's row's (relu; tanh for iwae and "
        "burda_vae); glu: gated layers, as Tomczak & Welling's",
    )
    args = parser.parse_args()
    for key, value in recipe(args.model).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    setup(args)

    settings = {k: v for k, v in vars(args).items() if k not in ("out", "results", "root")}
    name = args.model
    if args.activation == recipe(args.model)["activation"]:
        settings.pop("activation")  # the folders of the paper's networks predate the flag
    else:
        name += f"-{args.activation}"
    folder = RowFolder(args.out, name, settings)
    train, val, x_test = load_data(args)
    print(
        f"{name}: {len(train)} training, {len(val)} validation, {len(x_test)} test "
        f"images; {args.activation} units; at most {args.epochs} epochs, batch "
        f"{args.batch_size}, lr {args.lr}, "
        f"warm-up {args.warmup_epochs:g} epochs, patience {args.patience or 'none'}; device "
        f"{args.device}; folder {folder.path}",
        flush=True,
    )
    row = folder.read("done.json")
    if row is None:
        try:
            trained = train_row(args, folder, train, val)
            print(
                f"  trained {trained['epochs']} epochs in {minutes(trained['train_seconds'])}; "
                f"best epoch {trained['epoch']} ({trained['score']:.2f} on validation)",
                flush=True,
            )
            row = evaluate_row(args, folder, trained, x_test)
        except KeyboardInterrupt:
            raise SystemExit(130) from None
        folder.write("done.json", row)
        full = args.n_train is None and args.n_val is None and args.n_test is None
        if full and args.num_samples == 5000 or args.results is not None:
            key = {"model": args.model, "activation": args.activation}
            path = write_row("likelihood_bmnist", key, row, args.device)
            print(f"  wrote {path}")
        else:
            print("  a subset run: no results file written (give --results DIR to write one)")
    else:
        print(f"  finished already ({folder.path / 'done.json'}); delete it to evaluate again")
    print(
        f"  test NLL {row['test_nll']:.2f} +- {row['test_nll_se']:.2f} (IS, {row['num_samples']} "
        f"samples, {row['n_test']} images), test ELBO {row['test_elbo']:.2f}; epoch "
        f"{row['best_epoch']} of {row['epochs']} ({minutes(row['train_seconds'])} training)"
    )
    print(
        f"| {args.model} | {row['epochs']} | {row['test_nll']:.2f} | {-row['test_elbo']:.2f} |",
        flush=True,
    )


if __name__ == "__main__":
    main()

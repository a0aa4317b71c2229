"""Rate and distortion of beta-VAEs on the built-in sprites (known generating factors).

For each beta, a VAE is trained with ``fit(beta=beta)`` (objective E[log p(x|z)] -
beta KL(q(z|x) || p(z))) and evaluated on held-out sprites: the rate R = E_x KL(q(z|x) ||
p(z)) and the distortion D = -E_x E_q[log p(x|z)], both in nats per image (so D + R is
the negative ELBO), the KL of each latent dimension and the number of active units.
beta < 1 buys lower distortion with a higher rate, beta > 1 the reverse; every point lies
on or above the best achievable trade-off curve of the model family (Alemi et al. 2018).

    python benchmarks/beta_sprites.py                  # about 3 minutes on 2 CPU cores
    python benchmarks/beta_sprites.py --betas 0.5 1 4 --epochs 5 --out beta.png

Sprites are 32x32 binary images (shape, scale, orientation, x, y); the VAE has z_dim 10,
MLPs with 256-128 hidden units, a standard normal prior and a Bernoulli likelihood.
"""

from __future__ import annotations

import argparse
import time

import pyro
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

from pyvae import VAE, data, evaluate, fit


def figure(rows: list[dict]) -> Figure:
    """Distortion against rate, one point per beta, with lines of equal ELBO (D + R)."""
    fig = Figure(figsize=(9.5, 4))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    rates = [r["rate"] for r in rows]
    dists = [r["distortion"] for r in rows]
    ax.plot(rates, dists, "-", color="0.7", zorder=1)
    ax.scatter(rates, dists, c=range(len(rows)), cmap="viridis", zorder=2)
    for r in rows:
        ax.annotate(
            f"β={r['beta']:g}",
            (r["rate"], r["distortion"]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=9,
        )
    totals = [r + d for r, d in zip(rates, dists, strict=True)]
    for total in (min(totals), (min(totals) + max(totals)) / 2, max(totals)):
        ax.axline((0, total), slope=-1, color="0.85", linestyle="--", linewidth=0.8, zorder=0)
    ax.set_xlim(0, max(rates) * 1.1)
    ax.set_ylim(min(dists) * 0.9, max(dists) * 1.05)
    ax.set_xlabel("rate R = KL(q(z|x) || p(z))  (nats per image)")
    ax.set_ylabel("distortion D = −E_q log p(x|z)  (nats)")
    ax.set_title("β-VAE on sprites: dashed lines have equal ELBO")
    for i, r in enumerate(rows):
        colour = colormaps["viridis"](i / max(1, len(rows) - 1))
        ax2.plot(
            range(1, len(r["kl_per_dim"]) + 1),
            r["kl_per_dim"],
            "o-",
            color=colour,
            label=f"β={r['beta']:g}",
            markersize=3,
        )
    ax2.set_xlabel("latent dimension (sorted by KL)")
    ax2.set_ylabel("KL(q(z_d|x) || p(z_d))  (nats)")
    ax2.set_title("rate per latent dimension")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.25, 0.5, 1, 2, 4, 8])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--warmup-epochs", type=float, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/images/beta-rate-distortion.png")
    args = parser.parse_args()

    train, test = data.load("sprites", n_train=10000, n_test=2000, size=32, seed=args.seed)
    print(f"{'beta':>5} | {'rate':>6} | {'distortion':>10} | {'-ELBO':>6} | active | time")
    rows = []
    for beta in args.betas:
        start = time.perf_counter()
        pyro.set_rng_seed(args.seed)
        vae = VAE.build((1, 32, 32), z_dim=10, net_kwargs={"hidden": (256, 128)})
        fit(
            vae,
            train,
            epochs=args.epochs,
            beta=beta,
            warmup_epochs=args.warmup_epochs,
            seed=args.seed,
            progress=False,
        )
        terms = evaluate.elbo_terms(vae, test, num_samples=10)
        row = {
            "beta": beta,
            "rate": float(terms["kl"].mean()),
            "distortion": float(-terms["reconstruction"].mean()),
            "active": evaluate.active_units(vae, test)[0],
            "kl_per_dim": evaluate.kl_per_dim(vae, test).sort(descending=True).values.tolist(),
        }
        rows.append(row)
        print(
            f"{beta:>5g} | {row['rate']:>6.2f} | {row['distortion']:>10.2f} | "
            f"{row['rate'] + row['distortion']:>6.2f} | {row['active']:>6} | "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    figure(rows).savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    torch.set_num_threads(min(2, torch.get_num_threads()))
    main()

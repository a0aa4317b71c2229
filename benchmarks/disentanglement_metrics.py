"""The disentanglement metrics on reference codes of the sprites' factors, whose answers
are known, and the time of ``scores`` on a 64x64 convolutional VAE.

    python benchmarks/disentanglement_metrics.py          # about 2 minutes on 2 CPU cores
    python benchmarks/disentanglement_metrics.py --n 300 --size 16 --num-train 20 \\
        --num-eval 10 --vae-items 100 --vae-votes 10 --results /tmp/results  # a quick check

Each reference code is a fixed function of the five factors (shape, scale, orientation,
x, y) of :func:`pyvae.data.sample_sprite_factors`, standardised: ``factors`` (each latent
one factor: every metric near its maximum), ``permuted`` (the same, in another order:
the same scores), ``collapsed`` (the factors and three constant latents: FactorVAE
prunes them, the rest ignore them), ``duplicated`` (the shape twice: no gap for it),
``rotated`` (a random rotation: every latent mixes every factor; informativeness stays)
and ``noise`` (independent of the factors: near 0, or chance for the classifiers). MIG,
DCI and SAP use ``--n`` items; the FactorVAE and β-VAE scores draw ``--num-train`` and
``--num-eval`` batches of ``--batch-size`` items from the same code (no images).

The last row times :func:`pyvae.disentanglement.scores` on an untrained convolutional
VAE (z_dim 10) of ``--size`` x ``--size`` sprites, with ``num_items=--vae-items`` and
``num_train=--vae-votes`` (its defaults, 2000 and 100: it renders and encodes 11600
items); its scores are those of an untrained model, only the time matters.
Rows go to ``results/disentanglement_metrics.json`` (key: the code).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _results
import numpy as np
import torch
from _results import write_row

from pyvae import VAE, data
from pyvae import disentanglement as dis

NAME = "disentanglement_metrics"


class Codes(dis.FactorSampler):
    """Sprites' factors whose "items" are codes ``code(standardised factors)``."""

    num_factors = len(data.SPRITE_FACTORS)

    def __init__(self, code, seed: int = 0):
        self.code = code
        big = data.sample_sprite_factors(100_000, torch.Generator().manual_seed(seed))
        self.mean, self.std = big.mean(0), big.std(0)

    def sample_factors(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return data.sample_sprite_factors(n, generator)

    def render(self, factors: torch.Tensor) -> torch.Tensor:
        return self.code((factors - self.mean) / self.std)


def reference_codes(seed: int) -> dict:
    """The codes by name: functions of standardised factors ``(n, 5)``."""
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(seed)))
    noise = torch.Generator().manual_seed(seed + 1)
    return {
        "factors": lambda v: v,
        "permuted": lambda v: v[:, [3, 1, 4, 0, 2]],
        "collapsed": lambda v: torch.cat([v, torch.zeros(len(v), 3)], 1),
        "duplicated": lambda v: torch.cat([v[:, :1], v], 1),
        "rotated": lambda v: v @ q,
        "noise": lambda v: torch.randn(v.shape, generator=noise),
    }


def metrics(sampler, represent, n: int, args) -> dict:
    """Every metric of ``sampler``'s codes (through ``represent``), as :func:`scores`."""
    factors = sampler.sample_factors(n, torch.Generator().manual_seed(args.seed))
    items = sampler.render(factors)
    z = represent(items) if represent is not None else items
    result = dis.dci(z, factors, seed=args.seed)
    votes = {"num_train": args.num_train, "num_eval": args.num_eval, "seed": args.seed}
    return {
        "mig": dis.mig(z, factors),
        "dci_disentanglement": result.disentanglement,
        "dci_completeness": result.completeness,
        "dci_informativeness": result.informativeness,
        "sap": dis.sap(z, factors, seed=args.seed),
        "factor_vae": dis.factor_vae_score(
            sampler, represent, batch_size=args.batch_size, variance_codes=z, **votes
        ),
        "beta_vae": dis.beta_vae_score(sampler, represent, batch_size=args.batch_size, **votes),
    }


def timing(start: float, cpu: float) -> dict:
    """Wall-clock seconds since ``start`` and CPU seconds (all threads) since ``cpu``: on a
    shared machine the CPU time is the one that does not depend on the others' load."""
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}


def show(name: str, row: dict) -> None:
    cells = " ".join(f"{row[k]:6.3f}" for k in dis.SCORE_KEYS)
    print(f"{name:28s} {cells} {row['seconds']:7.1f} {row['cpu_seconds']:7.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="items for MIG, DCI and SAP")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-train", type=int, default=500)
    parser.add_argument("--num-eval", type=int, default=250)
    parser.add_argument("--size", type=int, default=64, help="the VAE's sprites' side")
    parser.add_argument("--vae-items", type=int, default=2000, help="scores' num_items")
    parser.add_argument("--vae-votes", type=int, default=100, help="scores' num_train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", help="folder of the result file (default: results/)")
    args = parser.parse_args(argv)
    if args.results:
        _results.RESULTS = Path(args.results)
    settings = {"n": args.n, "batch_size": args.batch_size, "num_train": args.num_train}
    settings["num_eval"] = args.num_eval
    print(f"{'codes':28s} " + " ".join(f"{k[:6]:>6s}" for k in dis.SCORE_KEYS) + " seconds cpu_s")
    for name, code in reference_codes(args.seed).items():
        start, cpu = time.perf_counter(), time.process_time()
        row = metrics(Codes(code, args.seed), None, args.n, args)
        row = {**row, **timing(start, cpu), **settings}
        write_row(NAME, {"codes": name}, row)
        show(name, row)
    torch.manual_seed(args.seed)
    vae = VAE.build((1, args.size, args.size), z_dim=10, net="conv")
    start, cpu = time.perf_counter(), time.process_time()
    sizes = {"num_items": args.vae_items, "num_train": args.vae_votes}
    sizes["num_eval"] = args.vae_votes // 2
    out = dis.scores(vae, dis.sprites_sampler(args.size), seed=args.seed, **sizes)
    row = {**out, **timing(start, cpu), "size": args.size, **sizes}
    name = f"conv VAE {args.size}x{args.size}, scores()"
    write_row(NAME, {"codes": name}, row)
    show(name, row)
    assert np.isfinite(list(out.values())).all()


if __name__ == "__main__":
    main()

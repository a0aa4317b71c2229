"""One training step and one evaluation of the mixture-prior and VampPrior models of the
likelihood table, with the prior's density computed two ways, side by side in one run:

- ``DiagonalNormalMixture`` (what ``priors.MixtureOfGaussians`` and ``priors.VampPrior``
  return): all the components' log densities from one ``(B, 2D + 1) x (2D + 1, K)``
  product;
- Pyro's generic ``MixtureSameFamily(Categorical, Normal.to_event(1))``, the same
  distribution through ``(B, K, D)`` tensors.

The models are those of ``benchmarks/likelihood_bmnist.py`` (z 40, 300-300 MLPs, 500
components or pseudo-inputs, batch 100, Bernoulli likelihood, ``fit``'s step); the
evaluation is ``vae.log_likelihood`` of 100 images with 500 draws each (the table's
uses 5000). Prints the median milliseconds per step, the median seconds per evaluation
and the ratios, and writes them to ``benchmarks/results/mixture_prior_step.json``.

    python benchmarks/mixture_prior_step.py                 # CPU
    python benchmarks/mixture_prior_step.py --device cuda   # GPU, where there is one
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyro
import pyro.distributions as dist
import torch
from _results import write_row

from pyvae import VAE, fit, priors


def generic(prior: priors.Prior) -> priors.Prior:
    """``prior`` with its ``forward`` returning the generic MixtureSameFamily."""
    fast = type(prior).forward

    def forward(*args):
        mixture = fast(prior, *args)
        logits, locs, scales = mixture._params
        return dist.MixtureSameFamily(
            dist.Categorical(logits=logits), dist.Normal(locs, scales).to_event(1)
        )

    prior.forward = forward
    return prior


def milliseconds_per_step(vae: VAE, x: torch.Tensor, device: str, repeats: int) -> float:
    """Median over ``repeats`` epochs of ``len(x) / 100`` steps each, after one warm-up."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        fit(vae, x, epochs=1, batch_size=100, lr=5e-4, seed=i, device=device, progress=False)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000 / (len(x) // 100))
    return statistics.median(times[1:])


def seconds_per_evaluation(vae: VAE, x: torch.Tensor, draws: int, repeats: int) -> float:
    """Median over ``repeats`` of the seconds ``vae.log_likelihood`` takes for the batch
    ``x`` with ``draws`` draws per item (decoder outputs chunked to 2^22 values), after
    one warm-up."""
    times = []
    for i in range(repeats + 1):
        pyro.set_rng_seed(i)
        start = time.perf_counter()
        vae.log_likelihood(x, draws, len(x), max_elements=2**22)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=9, help="timed epochs (median)")
    parser.add_argument("--draws", type=int, default=500, help="draws per image, evaluation")
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(100 * args.steps, 1, 28, 28, generator=gen) < 0.15).to(torch.uint8)
    for name in ("mog", "vamp"):
        ms, evaluation = {}, {}
        for kind in ("generic", "diagonal"):
            pyro.set_rng_seed(0)
            vae = VAE.build(
                (1, 28, 28), 40, name, net_kwargs={"hidden": (300, 300)},
                prior_kwargs={"components": 500},
            )  # fmt: skip
            if kind == "generic":
                generic(vae.prior)
            ms[kind] = milliseconds_per_step(vae, x, args.device, args.repeats)
            evaluation[kind] = seconds_per_evaluation(vae, x[:100], args.draws, args.repeats)
        ratio = ms["generic"] / ms["diagonal"]
        eval_ratio = evaluation["generic"] / evaluation["diagonal"]
        print(
            f"{name}: {ms['diagonal']:.1f} ms per step with DiagonalNormalMixture, "
            f"{ms['generic']:.1f} ms with MixtureSameFamily: {ratio:.1f}x faster; "
            f"log-likelihood of 100 images with {args.draws} draws each: "
            f"{evaluation['diagonal']:.2f} s against {evaluation['generic']:.2f} s: "
            f"{eval_ratio:.1f}x faster",
            flush=True,
        )
        row = {
            "ms_per_step_diagonal": ms["diagonal"],
            "ms_per_step_generic": ms["generic"],
            "speedup": ratio,
            "eval_seconds_diagonal": evaluation["diagonal"],
            "eval_seconds_generic": evaluation["generic"],
            "eval_speedup": eval_ratio,
            "eval_draws": args.draws,
            "batch_size": 100,
            "components": 500,
            "z_dim": 40,
        }
        write_row("mixture_prior_step", {"model": name, "device": args.device}, row, args.device)


if __name__ == "__main__":
    main()

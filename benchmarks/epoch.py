"""A full training epoch on the real MNIST training set, data pipeline included.

Three loops over the same 60,000 images with the same VAE (784-400-50 MLPs, Bernoulli on
dynamically binarized pixels, Adam, batch 128), measured side by side in one run:

- pyvae's ``fit`` (uint8 images in memory, converted per batch);
- a hand-written PyTorch loop over a float tensor already in memory (no data cost);
- the same hand-written loop fed by a naive torchvision ``DataLoader`` with ``ToTensor``
  (PIL image by image, the common tutorial pipeline).

It also times pyvae's data pipeline alone (shuffle, index, binarize) to give its share of
the epoch. Seconds per epoch, ratios and peak memory (resident set) are printed.

    python benchmarks/epoch.py --root ../shared/data
"""

from __future__ import annotations

import argparse
import resource
import time

import pyro
import torch
import torchvision
from step_overhead import hand_written_step  # the script next to this one
from torch.utils.data import DataLoader

from pyvae import VAE, data, fit, likelihoods, nets, priors


def build() -> VAE:
    return VAE(
        nets.MLPEncoder((1, 28, 28), 50, hidden=(400,)),
        nets.MLPDecoder(50, (1, 28, 28), hidden=(400,)),
        priors.StandardNormal(50),
        likelihoods.Bernoulli(),
    )


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    b = args.batch_size

    train, _ = data.load("mnist", root=args.root, binarize="dynamic")
    n = len(train)

    # pyvae's data pipeline alone: shuffle, index the uint8 tensor, binarize per batch.
    start = time.perf_counter()
    order = torch.randperm(n)
    for _xb in data.batches(train.data, train.transform, b, order=order):
        pass
    t_pipeline = time.perf_counter() - start

    pyro.set_rng_seed(0)
    vae = build()
    start = time.perf_counter()
    fit(vae, train, epochs=1, batch_size=b, progress=False)
    t_fit = time.perf_counter() - start

    # Hand-written loop over an in-memory float tensor (binarized once).
    x = torch.bernoulli(train.data.float() / 255)
    vae2 = build()
    optimizer = torch.optim.Adam(vae2.parameters(), lr=1e-3)
    start = time.perf_counter()
    for idx in torch.randperm(n).split(b):
        hand_written_step(vae2.encoder, vae2.decoder, optimizer, x[idx], n)
    t_hand = time.perf_counter() - start

    # Hand-written loop fed by torchvision's DataLoader with ToTensor.
    mnist = torchvision.datasets.MNIST(
        args.root, train=True, download=True, transform=torchvision.transforms.ToTensor()
    )
    vae3 = build()
    optimizer = torch.optim.Adam(vae3.parameters(), lr=1e-3)
    start = time.perf_counter()
    for images, _ in DataLoader(mnist, batch_size=b, shuffle=True):
        hand_written_step(vae3.encoder, vae3.decoder, optimizer, torch.bernoulli(images), n)
    t_loader = time.perf_counter() - start

    print(f"MNIST train, {n} images, batch {b}, torch threads {torch.get_num_threads()}")
    print(f"  pyvae fit                       {t_fit:6.2f} s/epoch")
    print(
        f"    of which its data pipeline    {t_pipeline:6.2f} s  ({100 * t_pipeline / t_fit:.1f} %)"
    )
    print(f"  hand-written, tensor in memory  {t_hand:6.2f} s/epoch")
    print(f"  hand-written, DataLoader+ToTensor {t_loader:4.2f} s/epoch")
    print(
        f"  fit / hand-written in memory: {t_fit / t_hand:.2f}x; "
        f"fit / DataLoader: {t_fit / t_loader:.2f}x; peak memory {peak_mb():.0f} MB"
    )


if __name__ == "__main__":
    main()

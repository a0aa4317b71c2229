"""A full training epoch on the real MNIST training set, data pipeline included.

Loops over the same 60,000 images with the same VAE (784-400-50 MLPs, Bernoulli on
dynamically binarized pixels, Adam, batch 128), measured side by side in one run:

- pyvae's ``fit`` (uint8 images on the device, binarized per batch);
- a hand-written PyTorch loop over a float tensor already on the device, binarized once
  before the clock starts (no data cost at all), with ``torch.optim.Adam``'s default
  implementation and with its fused kernel (which ``fit`` uses);
- the same hand-written loop fed by a naive torchvision ``DataLoader`` with ``ToTensor``
  (PIL image by image, the common tutorial pipeline).

It also times pyvae's data pipeline alone (shuffle, index, binarize) to give its share of
the epoch. Seconds per epoch, ratios and peak memory (resident set) are printed.

    python benchmarks/epoch.py --root ../shared/data
    python benchmarks/epoch.py --root ../shared/data --device cuda
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


def timed(fn, device: str) -> float:
    """Seconds for ``fn()``, with the device's queue drained before and after."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def hand_loop(x: torch.Tensor, batch: int, fused: bool) -> None:
    """One epoch of the hand-written step over the float tensor ``x`` (on the device)."""
    vae = build().to(x.device)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3, fused=fused)
    for idx in torch.randperm(len(x), device=x.device).split(batch):
        hand_written_step(vae.encoder, vae.decoder, optimizer, x[idx], len(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    b, device = args.batch_size, args.device

    train, _ = data.load("mnist", root=args.root, binarize="dynamic")
    n = len(train)
    x_uint8 = train.data.to(device)

    def pipeline() -> None:  # pyvae's data pipeline alone: shuffle, index, binarize
        order = torch.randperm(n, device=device)
        for _xb in data.batches(x_uint8, train.transform, b, order=order):
            pass

    pyro.set_rng_seed(0)
    fit(build(), train[:256][0], epochs=1, progress=False, device=device)  # warm up
    t_pipeline = min(timed(pipeline, device) for _ in range(3))
    t_fit = timed(
        lambda: fit(build(), train, epochs=1, batch_size=b, progress=False, device=device), device
    )

    x = torch.bernoulli(train.data.float() / 255).to(device)  # binarized once, untimed
    t_hand = timed(lambda: hand_loop(x, b, fused=False), device)
    t_fused = timed(lambda: hand_loop(x, b, fused=True), device)

    def loader_loop() -> None:  # the hand-written loop fed by torchvision's DataLoader
        mnist = torchvision.datasets.MNIST(
            args.root, train=True, download=True, transform=torchvision.transforms.ToTensor()
        )
        vae = build().to(device)
        optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
        for images, _ in DataLoader(mnist, batch_size=b, shuffle=True):
            xb = torch.bernoulli(images.to(device))
            hand_written_step(vae.encoder, vae.decoder, optimizer, xb, n)

    t_loader = timed(loader_loop, device)

    threads = torch.get_num_threads()
    print(f"MNIST train, {n} images, batch {b}, device {device}, torch threads {threads}")
    print(f"  pyvae fit                            {t_fit:6.2f} s/epoch")
    share = 100 * t_pipeline / t_fit
    print(f"    its data pipeline alone            {t_pipeline:6.2f} s  ({share:.1f} %)")
    print(f"  hand-written, in memory, Adam        {t_hand:6.2f} s/epoch")
    print(f"  hand-written, in memory, fused Adam  {t_fused:6.2f} s/epoch")
    print(f"  hand-written, DataLoader+ToTensor    {t_loader:6.2f} s/epoch")
    print(
        f"  fit / hand-written: {t_fit / t_hand:.2f}x (fused Adam: {t_fit / t_fused:.2f}x); "
        f"fit / DataLoader: {t_fit / t_loader:.2f}x; peak resident memory {peak_mb():.0f} MB"
    )


if __name__ == "__main__":
    main()

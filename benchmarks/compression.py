"""Lossless compression of MNIST by bits-back coding, against general-purpose codecs.

    python benchmarks/compression.py                       # 5-25 min on 2 (busy) cores
    python benchmarks/compression.py --epochs 1 --n 100    # a quick check
    python benchmarks/compression.py --device cuda --epochs 100 --n 10000

For binarized MNIST (the static split of Larochelle & Murray, Bernoulli likelihood) and
8-bit MNIST (values 0..255, discretized logistic likelihood) it trains an MLP VAE on the
training set (or loads one: ``--binarized-run``, ``--mnist-run``: a run folder of
``pyvae train`` or a file of ``vae.save``), compresses the first ``--n`` test images with
:mod:`pyvae.compress.lossless`, decodes them and checks they are identical, and puts the
same images through gzip, bz2 and lzma (Python's, at their highest levels) and PNG
(Pillow), each round trip checked. It prints bits per dimension (per pixel) of each, next
to the model's negative ELBO on the same images. Compression runs on the CPU.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import lzma
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyro
import torch
from PIL import Image

from pyvae import VAE, data, evaluate, fit, load
from pyvae.compress import lossless

Codec = tuple[Callable[[np.ndarray], bytes], Callable[[bytes], np.ndarray]]


def general_codecs(x: np.ndarray, binary: bool) -> dict[str, Codec]:
    """Compressors and decompressors of the images ``x`` (N, 28, 28) uint8, by name."""
    shape = x.shape

    def stream(module, **kw) -> Codec:
        return (
            lambda a: module.compress(a.tobytes(), **kw),
            lambda b: np.frombuffer(module.decompress(b), dtype=np.uint8).reshape(shape),
        )

    def packed(module, **kw) -> Codec:
        def unpack(b: bytes) -> np.ndarray:
            bits = np.unpackbits(np.frombuffer(module.decompress(b), dtype=np.uint8))
            return bits[: math.prod(shape)].reshape(shape)

        return lambda a: module.compress(np.packbits(a).tobytes(), **kw), unpack

    mode = "1" if binary else "L"

    def png(image: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(image.astype(bool) if binary else image).convert(mode).save(
            buffer, format="PNG", optimize=True
        )
        return buffer.getvalue()

    def unpng(blob: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(blob)).convert("L"), dtype=np.uint8) // (
            255 if binary else 1
        )

    lengths: list[int] = []

    def png_each(a: np.ndarray) -> bytes:
        blobs = [png(image) for image in a]
        lengths[:] = [len(b) for b in blobs]
        return b"".join(blobs)

    def unpng_each(blob: bytes) -> np.ndarray:
        ends = np.cumsum(lengths)
        return np.stack([unpng(blob[e - n : e]) for e, n in zip(ends, lengths, strict=True)])

    codecs: dict[str, Codec] = {
        "gzip (level 9)": stream(gzip, compresslevel=9),
        "bz2 (level 9)": stream(bz2, compresslevel=9),
        "lzma (preset 9e)": stream(lzma, preset=9 | lzma.PRESET_EXTREME),
    }
    if binary:
        codecs["gzip, bits packed 8 per byte"] = packed(gzip, compresslevel=9)
        codecs["bz2, bits packed"] = packed(bz2, compresslevel=9)
        codecs["lzma, bits packed"] = packed(lzma, preset=9 | lzma.PRESET_EXTREME)
    codecs["PNG, one file per image"] = (png_each, unpng_each)
    codecs["PNG, all images in one"] = (
        lambda a: png(a.reshape(-1, a.shape[-1])),
        lambda b: unpng(b).reshape(shape),
    )
    return codecs


def model_for(name: str, args: argparse.Namespace) -> tuple[VAE, np.ndarray, str]:
    """The trained (or loaded) VAE, the first ``--n`` test images (N, 28, 28) uint8 and a
    description of the model."""
    if name == "binarized":
        train, test = data.load("binarized_mnist", root=args.root, download=False)
        likelihood, run = "bernoulli", args.binarized_run
    else:
        train, test = data.load("mnist", root=args.root, download=False, values="uint8")
        likelihood, run = "discretized_logistic", args.mnist_run
    images = test.data[: args.n].numpy().reshape(-1, 28, 28)
    if run:
        path = Path(run)
        vae = load(path / "model.pt" if path.is_dir() else path)
        return vae, images, f"loaded from {run}"
    pyro.set_rng_seed(args.seed)
    vae = VAE.build(
        input_shape=(1, 28, 28),
        z_dim=args.z_dim,
        likelihood=likelihood,
        net_kwargs={"hidden": tuple(args.hidden)},
    )
    start = time.perf_counter()
    fit(
        vae,
        train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        device=args.device,
        progress=False,
    )
    vae.to("cpu")
    if args.save:
        vae.save(Path(args.save) / f"{name}.pt", overwrite=True)
    hidden = "-".join(map(str, args.hidden))
    what = (
        f"MLP 784-{hidden}-{args.z_dim}, {likelihood}, {args.epochs} epochs (batch "
        f"{args.batch_size}, Adam {args.lr}) on {len(train)} images "
        f"({time.perf_counter() - start:.0f} s)"
    )
    return vae, images, what


def measure(name: str, args: argparse.Namespace) -> dict[str, float]:
    vae, images, what = model_for(name, args)
    vae.eval()
    binary = name == "binarized"
    dims = images.size
    x = torch.from_numpy(images).reshape(-1, 1, 28, 28)
    print(f"\n{name} MNIST: {len(images)} test images; model: {what}")
    rows: dict[str, float] = {}
    pyro.set_rng_seed(args.seed)
    terms = evaluate.elbo_terms(vae, x, num_samples=args.elbo_samples)
    elbo = terms["elbo"].mean()
    rows["model's negative ELBO"] = float(evaluate.bits_per_dim(elbo, vae.input_shape))

    start = time.perf_counter()
    blob = lossless.encode(vae, x, latent_bits=args.latent_bits)
    encoded = time.perf_counter() - start
    back = lossless.decode(vae, blob)
    decoded = time.perf_counter() - start - encoded
    assert torch.equal(back, x), "pyvae's round trip is not exact"
    info = lossless.info(blob)
    rows["pyvae bits-back (the whole file)"] = 8 * len(blob) / dims
    rows["pyvae bits-back, without initial bits"] = (8 * len(blob) - info["initial_bits"]) / dims
    print(
        f"  bits-back: {encoded:.1f} s to encode, {decoded:.1f} s to decode "
        f"({len(images) / encoded:.0f} and {len(images) / decoded:.0f} images/s); "
        f"initial bits {info['initial_bits']}, header {len(blob) - info['payload_bytes']} bytes"
    )
    for codec, (pack, unpack) in general_codecs(images, binary).items():
        packed = pack(images)
        assert np.array_equal(unpack(packed), images), f"{codec}'s round trip is not exact"
        rows[codec] = 8 * len(packed) / dims
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data", help="folder with MNIST/raw")
    parser.add_argument("--datasets", nargs="*", default=["binarized", "8bit"])
    parser.add_argument("--n", type=int, default=10000, help="test images to compress")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--z-dim", type=int, default=32)
    parser.add_argument("--hidden", type=int, nargs="*", default=[512, 256])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default=None, help="where to train: cpu, cuda")
    parser.add_argument("--latent-bits", type=int, default=lossless.LATENT_BITS)
    parser.add_argument("--elbo-samples", type=int, default=10, help="draws of z per image")
    parser.add_argument("--binarized-run", default=None, help="load this model instead")
    parser.add_argument("--mnist-run", default=None, help="load this 8-bit model instead")
    parser.add_argument("--save", default=None, help="folder to save the trained models in")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    results = {name: measure(name, args) for name in args.datasets}
    names = list(dict.fromkeys(row for rows in results.values() for row in rows))
    header = f"{'bits per dimension':<40}" + "".join(f"{n + ' MNIST':>18}" for n in results)
    print(f"\n{header}\n{'-' * len(header)}")
    for row in names:
        cells = "".join(
            f"{rows[row]:>18.4f}" if row in rows else f"{'-':>18}" for rows in results.values()
        )
        print(f"{row:<40}{cells}")
    for name, rows in results.items():
        ratio = rows["pyvae bits-back, without initial bits"] / rows["model's negative ELBO"]
        best = min(v for k, v in rows.items() if not k.startswith(("pyvae", "model")))
        file = rows["pyvae bits-back (the whole file)"]
        print(
            f"{name}: bits-back / negative ELBO = {ratio:.4f}; "
            f"bits-back / best general-purpose codec = {file / best:.3f}"
        )
    print(f"all round trips exact; {time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()

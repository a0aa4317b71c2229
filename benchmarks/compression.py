"""Lossless compression of MNIST by bits-back coding, against general-purpose codecs.

One command per row of ``benchmarks/results/compression.json`` (key: dataset and
likelihood):

    python benchmarks/compression.py --dataset binarized_mnist
    python benchmarks/compression.py --dataset mnist_8bit                  # beta-binomial
    python benchmarks/compression.py --dataset mnist_8bit --likelihood discretized_logistic
    python benchmarks/compression.py --dataset binarized_mnist --prior mog  # the best model
    python benchmarks/compression.py --dataset mnist_8bit --prior mog      # a mixture prior
    python benchmarks/compression.py --dataset mnist_8bit --epochs 2 --n-train 1000 \\
        --n-val 200 --n 50 --out /tmp/runs --results /tmp/results    # a quick check

For binarized MNIST (the static split of Larochelle & Murray, Bernoulli likelihood) and
8-bit MNIST (values 0..255; a beta-binomial likelihood by default, as in the paper, or the
discretized logistic) it trains an MLP VAE on the training images, keeping the epoch with
the best validation ELBO (or loads one: ``--model``, a run folder of ``pyvae train`` or a
file of ``vae.save``), compresses the first ``--n`` test images (default: all 10,000)
with :mod:`pyvae.compress.lossless`, decodes them and checks they are identical, and puts
the same images through gzip, bz2 and lzma (Python's, at their highest levels) and PNG
(Pillow), each round trip checked. It prints bits per dimension (per pixel) of each, next
to the model's negative ELBO on the same images. Compression runs on the CPU.

Settings, after Townsend, Bird & Barber (2019, BB-ANS): one hidden layer of 100 ReLU
units and z_dim 40 for binarized MNIST, 200 units and z_dim 50 for 8-bit MNIST, standard
normal prior, Adam (learning rate 1e-3), batch 100. The training length is this recipe's:
at most 500 epochs, stopped when the validation ELBO has not improved for 20 epochs, the
best epoch kept. Data: binarized MNIST's 50,000 training and 10,000 validation images;
8-bit MNIST's first 50,000 training images, the last 10,000 for validation; the 10,000
test images of each. Published (Townsend et al. 2019), bits per dimension: BB-ANS 0.19,
bz2 0.25, gzip 0.33 on binarized MNIST; BB-ANS 1.41, bz2 1.42 on 8-bit MNIST.

``--prior mog`` (or ``vamp``) on binarized MNIST compresses with the likelihood table's
model of that prior instead (784-300-300-40 MLPs, 500 components, trained by
``python benchmarks/likelihood_bmnist.py --model mog``, whose run folder it reads and
never writes): the coder supports mixtures of diagonal normals, and these models have a
better ELBO than the standard normal ones. ``--prior mog`` on 8-bit MNIST trains
BB-ANS's network with a learnable mixture of 500 diagonal normals for p(z), with the same
recipe.

Resumable: each row trains in ``--out/<dataset>-<likelihood>/`` (default
``~/.cache/pyvae/benchmark-runs/compression/``, or under ``$PYVAE_BENCH_RUNS``),
checkpointed every epoch; the same
command continues an interrupted run, and a finished row (``done.json``) is printed, not
redone.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import lzma
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyro
import torch
from _recipe import (
    KeepBest,
    RowFolder,
    add_common_flags,
    fit_summary,
    minutes,
    runs_root,
    setup,
)
from _results import write_row
from PIL import Image

import pyvae
from pyvae import VAE, data, evaluate, fit
from pyvae.compress import lossless

Codec = tuple[Callable[[np.ndarray], bytes], Callable[[bytes], np.ndarray]]
#: (hidden units, z_dim) of Townsend et al.'s models
ARCHITECTURE = {"binarized_mnist": ((100,), 40), "mnist_8bit": ((200,), 50)}
LIKELIHOODS = {
    "binarized_mnist": ("bernoulli",),
    "mnist_8bit": ("beta_binomial", "discretized_logistic"),
}
#: Priors whose model is the likelihood table's (benchmarks/likelihood_bmnist.py).
MIXTURE_PRIORS = ("mog", "vamp")
#: The priors this script trains with BB-ANS's networks, by dataset (binarized MNIST's
#: mixture rows are the likelihood table's models).
TRAINED_PRIORS = {"binarized_mnist": ("normal",), "mnist_8bit": ("normal", "mog")}
#: Components of a trained mixture prior (as the likelihood table's)
COMPONENTS = 500
PUBLISHED = {
    "binarized_mnist": {"bb_ans": 0.19, "bz2": 0.25, "gzip": 0.33},
    "mnist_8bit": {"bb_ans": 1.41, "bz2": 1.42},
}


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


def load_data(args):
    """Training, validation and test images; the test images as (N, 28, 28) uint8."""
    if args.dataset == "binarized_mnist":
        train, test = data.load("binarized_mnist", root=args.root, download=False)
    else:
        train, test = data.load("mnist", root=args.root, download=False, values="uint8")
    train, val = train.subset(slice(0, 50_000)), train.subset(slice(50_000, None))
    if args.n_train is not None:
        train = train.subset(slice(0, args.n_train))
    if args.n_val is not None:
        val = val.subset(slice(0, args.n_val))
    images = data.as_tensor(test)[: args.n].numpy().reshape(-1, 28, 28).astype(np.uint8)
    return train, val, images


def likelihood_model(runs: Path, prior: str) -> tuple[VAE, dict]:
    """The trained model of the likelihood table's row ``prior`` (read from its run
    folder under ``runs``, e.g. :func:`runs_root`) and what its ``trained.json`` holds,
    or a clear exit."""
    folder = runs / "likelihood_bmnist" / prior
    if not (folder / "trained.json").exists() or not (folder / "best.pt").exists():
        raise SystemExit(
            f"{folder} holds no trained {prior} model: train it first with "
            f"python benchmarks/likelihood_bmnist.py --model {prior}"
        )
    return pyvae.load(folder / "best.pt"), json.loads((folder / "trained.json").read_text())


def model_name(args) -> str:
    """What the row's model is, for the results file."""
    if args.prior not in TRAINED_PRIORS[args.dataset]:
        return f"MLP 784-300-300-40, {args.prior} prior (likelihood_bmnist.py --model {args.prior})"
    hidden, z_dim = ARCHITECTURE[args.dataset]
    mixture = f", mog prior ({COMPONENTS} components)" if args.prior == "mog" else ""
    return args.model or f"MLP 784-{hidden[0]}-{z_dim}{mixture}"


def train_row(args, folder: RowFolder, train, val) -> dict:
    """Train (or continue) the row's VAE; returns what ``trained.json`` holds."""
    if (trained := folder.read("trained.json")) is not None:
        return trained
    best = folder.read("best.json")
    history = None  # stopped early, then interrupted before trained.json: the checkpoint's
    if best is None or not best["stopped"]:
        hidden, z_dim = ARCHITECTURE[args.dataset]
        pyro.set_rng_seed(args.seed)
        vae = VAE.build(
            (1, 28, 28),
            z_dim,
            args.prior,
            likelihood=args.likelihood,
            net_kwargs={"hidden": hidden},
            prior_kwargs={"components": COMPONENTS} if args.prior == "mog" else None,
        )
        keep = KeepBest(folder, lambda vae, h: h["val_elbo"][-1], args.epochs, args.patience)
        history = fit(
            vae,
            train,
            val,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            device=args.device,
            progress=False,
            checkpoint_dir=folder.path,
            resume=True,
            callbacks=[keep],
        )
    summary = fit_summary(history, folder.path)
    epochs, seconds = summary["epochs"], summary["seconds"]
    trained = {"epochs": epochs, "train_seconds": seconds, **folder.read("best.json")}
    folder.write("trained.json", trained)
    return trained


def measure(args, vae, images: np.ndarray) -> dict:
    """Bits per dimension of bits-back coding, of the model's negative ELBO and of the
    general-purpose codecs on ``images`` (every round trip checked)."""
    vae.to("cpu").eval()
    binary = args.dataset == "binarized_mnist"
    dims = images.size
    x = torch.from_numpy(images).reshape(-1, 1, 28, 28)
    pyro.set_rng_seed(args.seed)
    terms = evaluate.elbo_terms(vae, x, num_samples=args.elbo_samples)
    row = {"neg_elbo_bits_per_dim": float(evaluate.bits_per_dim(terms["elbo"].mean(), (784,)))}
    start = time.perf_counter()
    blob = lossless.encode(vae, x, latent_bits=args.latent_bits)
    encoded = time.perf_counter() - start
    back = lossless.decode(vae, blob)
    decoded = time.perf_counter() - start - encoded
    assert torch.equal(back, x), "pyvae's round trip is not exact"
    info = lossless.info(blob)
    row["bits_per_dim"] = 8 * len(blob) / dims
    row["bits_per_dim_without_initial_bits"] = (8 * len(blob) - info["initial_bits"]) / dims
    row["initial_bits"] = info["initial_bits"]
    row["encode_seconds"], row["decode_seconds"] = encoded, decoded
    print(
        f"  bits-back: {encoded:.1f} s to encode, {decoded:.1f} s to decode "
        f"({len(images) / encoded:.0f} and {len(images) / decoded:.0f} images/s)",
        flush=True,
    )
    codecs = {}
    for codec, (pack, unpack) in general_codecs(images, binary).items():
        packed = pack(images)
        assert np.array_equal(unpack(packed), images), f"{codec}'s round trip is not exact"
        codecs[codec] = 8 * len(packed) / dims
    for name in ("gzip", "bz2", "lzma"):  # each codec's best way (bytes, or bits packed)
        row[name] = min(v for k, v in codecs.items() if k.startswith(name))
    row["png"] = codecs["PNG, one file per image"]
    row["png_one_image"] = codecs["PNG, all images in one"]
    row["codecs"] = codecs
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(ARCHITECTURE), required=True)
    parser.add_argument("--likelihood", default=None, help="default: the paper's")
    add_common_flags(parser, "benchmarks/runs/compression")
    parser.add_argument("--n", type=int, default=10000, help="test images to compress")
    parser.add_argument("--epochs", type=int, default=500, help="at most")
    parser.add_argument("--patience", type=int, default=20, help="epochs; 0: no early stop")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-train", type=int, default=None, help="training images (all)")
    parser.add_argument("--n-val", type=int, default=None, help="validation images (all)")
    parser.add_argument("--latent-bits", type=int, default=lossless.LATENT_BITS)
    parser.add_argument("--elbo-samples", type=int, default=10, help="draws of z per image")
    parser.add_argument("--model", default=None, help="compress with this model; no training")
    parser.add_argument(
        "--prior",
        choices=("normal", *MIXTURE_PRIORS),
        default="normal",
        help="normal: train BB-ANS's model; mog, vamp: the likelihood table's model "
        "(binarized MNIST), mog: BB-ANS's network with a mixture prior (8-bit MNIST)",
    )
    args = parser.parse_args()
    args.likelihood = args.likelihood or LIKELIHOODS[args.dataset][0]
    if args.likelihood not in LIKELIHOODS[args.dataset]:
        parser.error(f"--likelihood for {args.dataset}: one of {LIKELIHOODS[args.dataset]}")
    if args.prior != "normal" and args.model:
        parser.error(f"--prior {args.prior} trains or reads its own model: drop --model")
    if args.dataset == "mnist_8bit" and args.prior not in TRAINED_PRIORS[args.dataset]:
        parser.error(f"--prior for mnist_8bit: one of {TRAINED_PRIORS[args.dataset]}")
    args.patience = args.patience or None
    setup(args)

    settings = {k: v for k, v in vars(args).items() if k not in ("out", "results", "root")}
    if args.prior == "normal":
        settings.pop("prior")  # the folders of the standard normal rows predate the flag
    name = f"{args.dataset}-{args.likelihood}"
    name += "" if args.prior == "normal" else f"-{args.prior}"
    folder = RowFolder(args.out, name, settings)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; folder {folder.path}")
    train, val, images = load_data(args)
    row = folder.read("done.json")
    if row is None:
        try:
            if args.prior not in TRAINED_PRIORS[args.dataset]:
                vae, trained = likelihood_model(runs_root(), args.prior)
                print(f"{name}: the likelihood table's {args.prior} model", flush=True)
            elif args.model:
                path = Path(args.model)
                vae = pyvae.load(path / "model.pt" if path.is_dir() else path)
                trained = {"epochs": None, "epoch": None, "train_seconds": None}
                print(f"{name}: the model {args.model}", flush=True)
            else:
                print(
                    f"{name}: {model_name(args)}, {len(train)} "
                    f"training and {len(val)} validation images; at most {args.epochs} "
                    f"epochs (patience {args.patience}), batch {args.batch_size}, Adam "
                    f"{args.lr}, device {args.device}",
                    flush=True,
                )
                trained = train_row(args, folder, train, val)
                print(
                    f"  trained {trained['epochs']} epochs in "
                    f"{minutes(trained['train_seconds'])}; best epoch {trained['epoch']}",
                    flush=True,
                )
                vae = pyvae.load(folder.path / "best.pt")
        except KeyboardInterrupt:
            raise SystemExit(130) from None
        print(f"  compressing {len(images)} test images on the CPU", flush=True)
        row = {
            **measure(args, vae, images),
            "n": len(images),
            "epochs": trained["epochs"],
            "best_epoch": trained["epoch"],
            "train_seconds": trained["train_seconds"],
            "n_train": len(train),
            "model": model_name(args),
            "published": PUBLISHED[args.dataset],
            "device": args.device,
        }
        folder.write("done.json", row)
        full = args.n_train is None and args.n_val is None and args.n == 10000
        if full or args.results is not None:
            key = {"dataset": args.dataset, "likelihood": args.likelihood, "prior": args.prior}
            print(f"  wrote {write_row('compression', key, row, args.device)}")
        else:
            print("  a subset run: no results file written (give --results DIR to write one)")
    else:
        print(f"  finished already ({folder.path / 'done.json'}); delete it to measure again")
    print(f"\n{name}, {row['n']} test images, bits per dimension:")
    for key in ("bits_per_dim", "bits_per_dim_without_initial_bits", "neg_elbo_bits_per_dim"):
        print(f"  {key:<40}{row[key]:.4f}")
    for codec, value in row["codecs"].items():
        print(f"  {codec:<40}{value:.4f}")
    best = min(row["gzip"], row["bz2"], row["lzma"], row["png"], row["png_one_image"])
    print(
        f"  bits-back / negative ELBO = "
        f"{row['bits_per_dim_without_initial_bits'] / row['neg_elbo_bits_per_dim']:.4f}; "
        f"bits-back / best general-purpose codec = {row['bits_per_dim'] / best:.3f}; "
        f"published: {row['published']}",
        flush=True,
    )


if __name__ == "__main__":
    main()

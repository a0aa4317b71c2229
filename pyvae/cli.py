"""The ``pyvae`` command line.

pyvae train                                   # built-in sprites -> runs/sprites-TIME/
pyvae train --dataset mnist --root DIR --likelihood continuous_bernoulli --net conv
pyvae evaluate RUN                            # test ELBO, log-likelihood, active units
pyvae score RUN --method elbo                 # RUN/scores-elbo.npy (anomaly scores)
pyvae latent-codes RUN --bits 8               # RUN/codes-test-8bit.npz (lossy)
pyvae compress RUN INPUT.npy OUTPUT           # lossless, bits-back coding
pyvae decompress RUN INPUT OUTPUT.npy         # the exact data back
pyvae sample RUN -n 64                        # RUN/samples.png
pyvae reconstruct RUN                         # RUN/reconstructions-test.png
pyvae encode RUN                              # RUN/latents-test.npy (posterior means)
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

RUN_FILES = ("model.pt", "config.json", "history.json", "history.csv")
OBJECTIVES = ("elbo", "meanfield")


def _load_data(spec: dict[str, Any]):
    from . import data

    train, test = data.load(
        spec["dataset"],
        root=spec.get("root"),
        binarize=spec.get("binarize"),
        values=spec.get("values", "unit"),
    )
    limit = spec.get("limit")
    if limit is not None:
        train, test = train.subset(slice(0, limit)), test.subset(slice(0, limit))
    return train, test


def _save_figure(fig, path: Path, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite or choose another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


#: fit's settings that a resumed run must share, as the flags of `pyvae train`.
_RESUME_FLAGS = {
    "lr": "--lr",
    "beta": "--beta",
    "warmup_epochs": "--warmup-epochs",
    "batch_size": "--batch-size",
    "seed": "--seed",
    "elbo": "--objective",
    "data": "the data (--dataset, --root, --binarize, --values, --limit)",
}


def _train(args: argparse.Namespace) -> int:
    import pyro
    from pyro.infer import TraceMeanField_ELBO

    from .callbacks import CSVLogger
    from .model import VAE
    from .train import ResumeMismatch, fit
    from .train.lock import RunLock

    main = not args.distributed or _rank() == 0  # under torchrun only rank 0 writes files
    out = Path(args.out or f"runs/{Path(args.dataset).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    if main and out.exists() and any(out.iterdir()) and not (args.overwrite or args.resume):
        raise FileExistsError(
            f"{out} exists and is not empty; choose another --out, or pass --overwrite to "
            "replace pyvae's files there (other files are left alone)"
        )
    eight_bit = args.likelihood in ("discretized_logistic", "beta_binomial")
    values = args.values or ("uint8" if eight_bit else "unit")
    data_spec = {
        "dataset": args.dataset,
        "root": args.root,
        "binarize": args.binarize,
        "values": values,
        "limit": args.limit,
    }
    train, test = _load_data(data_spec)
    pyro.set_rng_seed(args.seed)
    likelihood_kwargs = {"scale": args.scale} if args.likelihood in ("gaussian", "laplace") else {}
    vae = VAE.build(
        input_shape=train.shape,
        z_dim=args.z_dim,
        prior=args.prior,
        likelihood=args.likelihood,
        net=args.net,
        likelihood_kwargs=likelihood_kwargs,
    )
    with RunLock(out) if main else contextlib.nullcontext():  # one writer per run folder
        if main and args.overwrite and not args.resume:  # pyvae's own files only
            for name in (*RUN_FILES, "checkpoint.pt"):
                (out / name).unlink(missing_ok=True)
        try:
            history = fit(
                vae,
                train,
                val=test,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                elbo=TraceMeanField_ELBO() if args.objective == "meanfield" else None,  # None: fast
                beta=args.beta,
                warmup_epochs=args.warmup_epochs,
                seed=args.seed,
                device=args.device,
                progress=not args.quiet,
                callbacks=[CSVLogger(out / "history.csv", overwrite=args.resume)] if main else [],
                checkpoint_dir=out,
                resume=args.resume,
                distributed=args.distributed,
            )
        except ResumeMismatch as e:
            differ = "; ".join(
                f"{_RESUME_FLAGS.get(k, k)}: {then!r} there, {now!r} now"
                for k, (then, now) in e.differences.items()
            )
            raise ValueError(
                f"--resume continues the run in {out} with the settings it started with; these "
                f"differ ({differ}). Pass the same values (only --epochs may change), or "
                "start a new run with another --out"
            ) from None
        if main:
            _write_run(out, args, data_spec, vae, history, test)
    return 0


def _write_run(out: Path, args: argparse.Namespace, data_spec: dict, vae: Any, history: dict,
               test: Any) -> None:  # fmt: skip
    """The run folder's files: the model, its config, the history and the figures."""
    from . import plots

    vae.to("cpu")
    vae.save(out / "model.pt", overwrite=True)  # a --resume replaces the model once it ends
    run_args = {k: v for k, v in vars(args).items() if k != "func"}
    data = dict(data_spec)
    if data_spec.get("binarize") == "dynamic":  # _load_data uses data.load's seed 0
        data["test_split"] = "binarized once with seed 1 (the train split afresh every batch)"
    config = {"args": run_args, "data": data, "vae": vae.config}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "history.json").write_text(json.dumps(history, indent=2))
    with open(out / "history.csv", "w", newline="") as f:  # all epochs, also after --resume
        rows = csv.writer(f)
        rows.writerow(list(history))
        rows.writerows(zip(*history.values(), strict=True))
    written = [
        _save_figure(fig, out / f"{name}.png", overwrite=True)
        for name, fig in plots.run_figures(vae, history, test).items()
    ]
    if not args.quiet:
        if history.get("val_elbo"):
            print(f"test ELBO: {history['val_elbo'][-1]:.2f} nats per example")
        print(f"run folder: {out}")
        print(f"  model:   {out / 'model.pt'}   (pyvae.load or `pyvae evaluate {out}`)")
        print(f"  figures: {', '.join(p.name for p in written)}")


def _open_run(run: str):
    from .io import load

    folder = Path(run)
    if not (folder / "model.pt").exists():
        raise FileNotFoundError(f"{folder} is not a run folder (no model.pt); run `pyvae train`")
    vae = load(folder / "model.pt")
    config = json.loads((folder / "config.json").read_text())
    return folder, vae, config


def _split(args: argparse.Namespace, config: dict[str, Any]):
    train, test = _load_data(config["data"])
    return train if args.split == "train" else test


def _evaluate(args: argparse.Namespace) -> int:
    import pyro

    from . import evaluate

    folder, vae, config = _open_run(args.run)
    x = _split(args, config)
    pyro.set_rng_seed(args.seed)
    terms = evaluate.elbo_terms(vae, x, num_samples=args.num_samples)
    elbo = float(terms["elbo"].mean())
    result: dict[str, Any] = {
        "split": args.split,
        "n": len(x),
        "elbo": elbo,
        "reconstruction": float(terms["reconstruction"].mean()),
        "kl": float(terms["kl"].mean()),
        "elbo_bits_per_dim": float(evaluate.bits_per_dim(elbo, vae.input_shape)),
        "active_units": evaluate.active_units(vae, x)[0] if len(x) > 1 else None,
    }
    if args.ll_samples > 0:
        ll = float(evaluate.log_likelihood(vae, x, num_samples=args.ll_samples).mean())
        result["log_likelihood"] = ll
        result["log_likelihood_samples"] = args.ll_samples
        result["bits_per_dim"] = float(evaluate.bits_per_dim(ll, vae.input_shape))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.split} set, {len(x)} examples, nats per example:")
    print(
        f"  ELBO            {elbo:10.3f}  (reconstruction {result['reconstruction']:.3f}, "
        f"KL {result['kl']:.3f}; {args.num_samples} draw(s) of z)"
    )
    if "log_likelihood" in result:
        print(
            f"  log-likelihood  {result['log_likelihood']:10.3f}  (importance sampling, "
            f"K={args.ll_samples}); {result['bits_per_dim']:.4f} bits/dim"
        )
    print(f"  active units    {result['active_units']} of {vae.z_dim}")
    return 0


def _score(args: argparse.Namespace) -> int:

    from . import anomaly, data
    from .io import atomic_write

    folder, vae, config = _open_run(args.run)
    if args.data:  # read the file with the run's own conventions for pixels
        spec = config["data"]
        x = data.load(
            args.data,
            binarize=spec.get("binarize"),
            values=spec.get("values", "unit"),
            test_fraction=0,
        )[0]
    else:
        x = _split(args, config)
    scores = anomaly.score(vae, x, args.method).cpu().numpy()
    path = Path(args.out or folder / f"scores-{args.method}.npy")
    atomic_write(path, lambda tmp: _save_npy(tmp, scores), args.overwrite)
    print(f"wrote {path}: {len(scores)} anomaly scores ({args.method}; higher = more unusual)")
    return 0


def _save_npy(tmp: str, array) -> None:
    import numpy as np

    with open(tmp, "wb") as f:
        np.save(f, array)


def _latent_codes(args: argparse.Namespace) -> int:
    import numpy as np

    from . import compress
    from .io import atomic_write

    folder, vae, config = _open_run(args.run)
    x = _split(args, config)
    codes = compress.encode(vae, x, bits=args.bits, limit=args.limit)
    path = Path(args.out or folder / f"codes-{args.split}-{args.bits}bit.npz")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, values=codes.values.numpy(), bits=codes.bits, limit=codes.limit)

    atomic_write(path, write, args.overwrite)
    recon = compress.decode(vae, codes).cpu()
    from .data import as_tensor

    mse = float(((recon - as_tensor(x).float()) ** 2).mean())
    print(
        f"wrote {path}: {len(x)} codes of {vae.z_dim} x {args.bits} bits = "
        f"{codes.num_bytes} bytes ({codes.bits_per_dim(vae.input_shape):.4f} bits/dim); "
        f"reconstruction MSE {mse:.5f}"
    )
    return 0


def _read_array(path: Path, key: str | None):
    """The array in a .npy, .npz (the one array, or ``key``) or IDX file."""
    from ._files import read_array
    from .data import read_idx

    name = path.name.lower()
    if name.endswith((".npy", ".npz")):
        return read_array(path, key, key_name="--key")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if "ubyte" in name or name.endswith((".idx", ".gz")):
        return read_idx(path)
    raise ValueError(f"{path}: unknown file type; use .npy, .npz or IDX (*-ubyte, .gz)")


def _compress(args: argparse.Namespace) -> int:
    from .compress import lossless
    from .io import atomic_write

    _, vae, _ = _open_run(args.run)
    x = _read_array(Path(args.input), args.key)
    blob = lossless.encode(vae, x, latent_bits=args.latent_bits)
    path = atomic_write(args.output, lambda tmp: Path(tmp).write_bytes(blob), args.overwrite)
    info = lossless.info(blob)
    bits, initial, dims = 8 * len(blob), info["initial_bits"], max(x.size, 1)
    print(
        f"wrote {path}: {len(x)} items, {x.nbytes} bytes -> {len(blob)} bytes, "
        f"{bits / dims:.4f} bits/dim ({(bits - initial) / dims:.4f} without the {initial} "
        "initial bits)"
    )
    return 0


def _decompress(args: argparse.Namespace) -> int:
    import numpy as np

    from .compress import lossless
    from .io import atomic_write

    _, vae, _ = _open_run(args.run)
    source = Path(args.input)
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist")
    output = Path(args.output)
    if output.suffix not in (".npy", ".npz"):
        raise ValueError(f"{output}: the output must be a .npy or .npz file")
    if output.exists() and not args.overwrite:  # before the work of decoding
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    x = lossless.decode(vae, source.read_bytes()).numpy()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            if output.suffix == ".npz":
                np.savez(f, **{args.key or "x": x})
            else:
                np.save(f, x)

    atomic_write(output, write, args.overwrite)
    print(f"wrote {output}: {len(x)} items, shape {x.shape}, dtype {x.dtype}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    import pyro

    from . import plots

    folder, vae, _ = _open_run(args.run)
    pyro.set_rng_seed(args.seed)
    x = vae.sample(args.n, mean=not args.draw, temperature=args.temperature)
    path = _save_figure(
        plots.samples_figure(x), Path(args.out or folder / "samples.png"), args.overwrite
    )
    print(f"wrote {path}")
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    from . import plots

    folder, vae, config = _open_run(args.run)
    x = _split(args, config)
    path = Path(args.out or folder / f"reconstructions-{args.split}.png")
    _save_figure(plots.reconstructions(vae, x, n=args.n), path, args.overwrite)
    print(f"wrote {path}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    import numpy as np

    from .io import atomic_write

    folder, vae, config = _open_run(args.run)
    x = _split(args, config)
    z = vae.encode(x).mean.cpu().numpy()
    path = Path(args.out or folder / f"latents-{args.split}.npy")
    with_suffix = path if path.suffix == ".npy" else path.with_suffix(".npy")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, z)

    atomic_write(with_suffix, write, args.overwrite)
    print(f"wrote {with_suffix}: posterior means, shape {z.shape}")
    return 0


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except empty ones (None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    from .data import DATASETS
    from .model import LIKELIHOODS, NETS, PRIORS

    fmt = _Help
    parser = argparse.ArgumentParser(
        prog="pyvae",
        description="Variational autoencoders as Pyro models and guides. Start with "
        "`pyvae train` (built-in data, no download), then look in the run folder it prints.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a VAE and write a run folder (model, config, history, figures)",
        description="Train a VAE with SVI and write a run folder: model.pt, config.json, "
        "history.json/.csv and PNG figures (history, reconstructions, samples, latent "
        "traversals, the latent space coloured by label).",
        formatter_class=fmt,
    )
    t.add_argument(
        "--dataset",
        default="sprites",
        help=f"a name ({', '.join(sorted(DATASETS))}) or a path (.npy, .npz, IDX, .csv, "
        "image folder)",
    )
    t.add_argument("--root", default=None, help="folder of torchvision datasets (offline files)")
    t.add_argument(
        "--binarize",
        default=None,
        choices=["threshold", "static", "dynamic"],
        help="binarize 8-bit images (for --likelihood bernoulli)",
    )
    t.add_argument(
        "--values",
        default=None,
        choices=["unit", "uint8"],
        help="8-bit images as [0, 1] floats or 0..255 (None: uint8 for "
        "discretized_logistic and beta_binomial, else unit)",
    )
    t.add_argument(
        "--limit", type=int, default=None, help="use only the first N items of each split"
    )
    t.add_argument("--prior", default="normal", choices=sorted(PRIORS), help="prior p(z)")
    t.add_argument("--likelihood", default="bernoulli", choices=sorted(LIKELIHOODS))
    t.add_argument(
        "--scale",
        default="learned",
        help="Gaussian/Laplace scale: a number, learned or decoder",
    )
    t.add_argument("--net", default="mlp", choices=sorted(NETS), help="encoder/decoder type")
    t.add_argument("--z-dim", type=int, default=10, help="latent dimension")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    t.add_argument(
        "--objective",
        default="elbo",
        choices=OBJECTIVES,
        help="elbo: Trace_ELBO; meanfield: TraceMeanField_ELBO (analytic KL where known)",
    )
    t.add_argument("--beta", type=float, default=1.0, help="KL weight (beta-VAE)")
    t.add_argument("--warmup-epochs", type=float, default=0, help="KL warm-up from 0 to beta")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    t.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: where the model is: cpu)"
    )
    t.add_argument(
        "--out", default=None, help="run folder (default: runs/DATASET-TIME in the current folder)"
    )
    t.add_argument("--overwrite", action="store_true", help="replace a run in --out")
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint (written every epoch and on Ctrl-C)",
    )
    t.add_argument(
        "--distributed",
        action="store_true",
        help="run as one of the processes of `torchrun --nproc_per_node=N -m pyvae.cli train "
        "--distributed ...` (DistributedDataParallel; --batch-size is the global batch; "
        "rank 0 writes the run folder)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    t.set_defaults(func=_train)

    def run_command(name: str, help: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, formatter_class=fmt)
        p.add_argument("run", help="a run folder written by `pyvae train`")
        p.set_defaults(func=func)
        return p

    e = run_command(
        "evaluate", "print the ELBO of a trained run on its test (or train) data", _evaluate
    )
    e.add_argument("--split", default="test", choices=["test", "train"])
    e.add_argument("--num-samples", type=int, default=10, help="draws of z per example")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", action="store_true", help="print one JSON line")

    e.add_argument(
        "--ll-samples",
        type=int,
        default=100,
        help="importance samples per example for log p(x); 0 skips it",
    )

    a = run_command("score", "write anomaly scores (higher = more unusual) to .npy", _score)
    a.add_argument(
        "--method", default="elbo", choices=["elbo", "log_likelihood", "reconstruction", "latent"]
    )
    a.add_argument("--split", default="test", choices=["test", "train"])
    a.add_argument("--data", default=None, help="score this file instead (.npy, .npz, ...)")
    a.add_argument("--out", default=None, help=".npy path (default: RUN/scores-METHOD.npy)")
    a.add_argument("--overwrite", action="store_true")

    z = run_command(
        "latent-codes",
        "lossy: quantise the posterior means of a split to compact codes",
        _latent_codes,
    )
    z.add_argument("--bits", type=int, default=8, help="bits per latent dimension")
    z.add_argument("--limit", type=float, default=4.0, help="clip codes to +-limit")
    z.add_argument("--split", default="test", choices=["test", "train"])
    z.add_argument("--out", default=None, help=".npz path")
    z.add_argument("--overwrite", action="store_true")

    lc = run_command(
        "compress",
        "lossless: compress a data file with the trained model by bits-back coding",
        _compress,
    )
    lc.add_argument("input", help="items of the model's input shape: .npy, .npz or IDX")
    lc.add_argument("output", help="the compressed file")
    lc.add_argument("--key", default=None, help="the array to compress in an .npz")
    lc.add_argument(
        "--latent-bits", type=int, default=12, help="2**bits buckets per latent dimension"
    )
    lc.add_argument("--overwrite", action="store_true")
    ld = run_command(
        "decompress", "lossless: the exact data back from a `pyvae compress` file", _decompress
    )
    ld.add_argument("input", help="a file written by `pyvae compress` with this run's model")
    ld.add_argument("output", help=".npy (or .npz) file to write")
    ld.add_argument("--key", default=None, help="the array's name in an .npz output (x)")
    ld.add_argument("--overwrite", action="store_true")

    s = run_command("sample", "write an image grid of samples from the prior", _sample)
    s.add_argument("-n", type=int, default=64, help="number of samples")
    s.add_argument("--draw", action="store_true", help="draw x ~ p(x|z) instead of E[x|z]")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--temperature", type=float, default=1.0, help="prior spread multiplier")
    s.add_argument("--out", default=None, help="PNG path (default: RUN/samples.png)")
    s.add_argument("--overwrite", action="store_true")

    r = run_command("reconstruct", "write data items over their reconstructions", _reconstruct)
    r.add_argument("--split", default="test", choices=["test", "train"])
    r.add_argument("-n", type=int, default=16, help="number of items")
    r.add_argument("--out", default=None, help="PNG path (default: RUN/reconstructions-SPLIT.png)")
    r.add_argument("--overwrite", action="store_true")

    c = run_command("encode", "write the posterior means E[z|x] of a split to .npy", _encode)
    c.add_argument("--split", default="test", choices=["test", "train"])
    c.add_argument("--out", default=None, help=".npy path (default: RUN/latents-SPLIT.npy)")
    c.add_argument("--overwrite", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyvae`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    if getattr(args, "scale", "learned") not in ("learned", "decoder"):
        try:
            args.scale = float(args.scale)
        except ValueError:
            print(
                f"error: --scale must be a number, 'learned' or 'decoder', got {args.scale!r}",
                file=sys.stderr,
            )
            return 2
    # SIGTERM (e.g. from a job scheduler) stops training like Ctrl-C: checkpoint, then exit.
    previous = None
    if args.command == "train" and threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return args.func(args)
    except (ValueError, TypeError, ImportError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command == "train" and (not args.distributed or _rank() == 0):
            print("stopped; continue with the same command plus --resume", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _rank() -> int:
    from .distributed import rank

    return rank()


if __name__ == "__main__":
    sys.exit(main())

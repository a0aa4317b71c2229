"""The ``pyvae`` command line.

pyvae train                                   # built-in shapes -> runs/shapes-TIME/
pyvae train --dataset mnist --root DIR --likelihood continuous_bernoulli --net conv
pyvae evaluate RUN                            # test ELBO, log-likelihood, active units
pyvae score RUN --method elbo                 # RUN/scores-elbo.npy (anomaly scores)
pyvae score RUN --method likelihood_ratio --background RUN2   # or complexity --compressor png
pyvae latent-codes RUN --bits 8               # RUN/codes-test-8bit.npz (lossy)
pyvae compress RUN INPUT.npy OUTPUT           # lossless, bits-back coding
pyvae decompress RUN INPUT OUTPUT.npy         # the exact data back
pyvae train --dataset wine.csv --label-column cultivar --likelihood gaussian
pyvae sample RUN -n 64                        # RUN/samples-64.png
pyvae reconstruct RUN                         # RUN/reconstructions-test.png
pyvae encode RUN                              # RUN/latents-test.npy (posterior means)

Bad input is refused before any work, with one line (``error: ...``, naming the flag to
change) and exit status 2; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

RUN_FILES = ("model.pt", "config.json", "history.json", "history.csv")
OBJECTIVES = ("elbo", "meanfield")


# --------------------------------------------------------------------------- argument types
def _integer(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    return parse


def _number(minimum: float, strict: bool) -> Callable[[str], float]:
    """An argparse ``type``: a finite number > ``minimum`` (``strict``) or >= it."""
    relation = ">" if strict else ">="

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        low_ok = value > minimum if strict else value >= minimum
        if not (math.isfinite(value) and low_ok):
            raise argparse.ArgumentTypeError(
                f"must be a finite number {relation} {minimum:g}, got {text!r}"
            )
        return value

    return parse


def _scale(text: str) -> float | str:
    """An argparse ``type`` for ``--scale``: a number > 0, ``learned`` or ``decoder``."""
    if text in ("learned", "decoder"):
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"must be a number > 0, 'learned' or 'decoder', got {text!r}"
        )
    return value


POSITIVE_INT = _integer(1)
NON_NEGATIVE_INT = _integer(0)
POSITIVE_NUMBER = _number(0.0, strict=True)
NON_NEGATIVE_NUMBER = _number(0.0, strict=False)


# --------------------------------------------------------------------------- checks before work
def _check_writable(path: Path, flag: str) -> None:
    """Refuse ``path`` (a folder to make or fill) if no folder can be made or written there."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(
            f"{flag} {path}: {existing} is a file, so no folder can be made there; "
            f"choose another {flag}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(
            f"{flag} {path}: no permission to write in {existing}; choose another {flag}"
        )


def _check_output(path: Path, overwrite: bool, flag: str = "--out") -> None:
    """Refuse an output file before any work: a folder, an existing file (without
    ``--overwrite``) or a place that cannot be written."""
    if path.is_dir():
        raise IsADirectoryError(f"{flag} {path} is a folder; give a file path")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} exists; pass --overwrite to replace it, or choose another {flag}"
        )
    _check_writable(path.parent, flag)


def _check_run_folder(out: Path, args: argparse.Namespace) -> None:
    """Refuse ``--out`` before any work: a file, a folder holding a run (without
    ``--overwrite`` or ``--resume``), or a place that cannot be written."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (args.overwrite or args.resume):
        raise FileExistsError(
            f"{out} exists and is not empty; choose another --out, or pass --overwrite to "
            "replace pyvae's files there (other files are left alone)"
        )
    _check_writable(out, "--out")


#: What each likelihood needs, in words, and the likelihoods for each kind of data.
_NEEDS = {
    "bernoulli": "binary data (values 0 and 1)",
    "continuous_bernoulli": "values in [0, 1]",
    "poisson": "non-negative integer counts",
    "negative_binomial": "non-negative integer counts",
    "discretized_logistic": "8-bit integers 0..255",
    "beta_binomial": "8-bit integers 0..255",
}


def _data_advice(raw: Any, seen: Any, args: argparse.Namespace) -> str:
    """What to pass for data that the chosen likelihood refuses: ``raw`` as stored,
    ``seen`` as the likelihood sees it (its distinct values, at least)."""
    import torch

    if raw.dtype == torch.uint8 and raw.dim() >= 3:  # 8-bit images (not binary)
        if args.likelihood == "bernoulli":
            return (
                "These are 8-bit grey-level images: pass --binarize dynamic (or static, "
                "threshold), or --likelihood continuous_bernoulli, beta_binomial or "
                "discretized_logistic"
            )
        if args.likelihood in ("discretized_logistic", "beta_binomial"):
            return "These are 8-bit images: leave out --values (it is uint8 for this likelihood)"
        if args.likelihood in ("poisson", "negative_binomial"):
            return "For 8-bit images pass --values uint8, or --likelihood beta_binomial"
        return "For 8-bit images leave out --values (or pass --values unit)"
    integral = bool((seen == seen.round()).all())
    if integral and float(seen.min()) >= 0:
        return "These look like counts: pass --likelihood poisson or negative_binomial"
    if float(seen.min()) >= 0 and float(seen.max()) <= 1:
        return "For values in [0, 1] pass --likelihood continuous_bernoulli or gaussian"
    return "For real-valued data pass --likelihood gaussian or laplace"


def _check_support(vae: Any, dataset: Any, split: str, args: argparse.Namespace) -> None:
    """Refuse data outside the likelihood's support, in flag terms, counting the values
    of all of the data (8-bit data through its distinct values and their counts)."""
    import torch

    from .data import as_tensor

    x, transform = dataset.data, dataset.transform
    if x.dtype == torch.uint8 and (transform is None or getattr(transform, "elementwise", False)):
        counts = torch.bincount(x.flatten(), minlength=256)
        values = counts.nonzero().squeeze(1).to(torch.uint8)
        seen, counts = (transform(values) if transform else values), counts[counts > 0]
    else:
        seen = as_tensor(dataset).flatten()
        counts = torch.ones_like(seen, dtype=torch.int64)
    seen = seen if seen.is_floating_point() else seen.float()
    finite = torch.isfinite(seen)  # NaN and inf: check_data's own message
    outside = finite & ~vae.likelihood.support.check(seen)
    if not bool(outside.any()):
        return
    bad = int(counts[outside].sum())
    examples = ", ".join(f"{v:.4g}" for v in seen[outside].unique()[:4].tolist())
    seen = seen[finite]
    needs = _NEEDS.get(args.likelihood, str(vae.likelihood.support))
    raise ValueError(
        f"--likelihood {args.likelihood} needs {needs}, but {bad} of the {int(counts.sum())} "
        f"values of the {split} data lie outside (e.g. {examples}; the data as the "
        f"likelihood sees it: min {float(seen.min()):.4g}, max {float(seen.max()):.4g}). "
        f"{_data_advice(x, seen, args)}."
    )


def _load_data(spec: dict[str, Any]):
    from . import data

    with warnings.catch_warnings():  # `pyvae train` says it in its own words
        warnings.filterwarnings("ignore", "(?s).*looks like a label", UserWarning)
        train, test = data.load(
            spec["dataset"],
            root=spec.get("root"),
            binarize=spec.get("binarize"),
            values=spec.get("values", "unit"),
            label_column=spec.get("label_column"),
        )
    limit = spec.get("limit")
    if limit is not None:
        train, test = train.subset(slice(0, limit)), test.subset(slice(0, limit))
    return train, test


def _label_column(text: str) -> str | int:
    """An argparse ``type`` for ``--label-column``: a column's index (an integer, negative
    from the end) or its name in the header row."""
    try:
        return int(text)
    except ValueError:
        return text


def _save_figure(fig, path: Path, overwrite: bool) -> Path:
    _check_output(path, overwrite)
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
    "data": "the data (--dataset, --root, --binarize, --values, --label-column, --limit)",
}


def _data_name(name: str) -> str:
    """A dataset as config.json records it: a name as typed, a path made absolute, so
    that a run folder reads the same data from any current folder."""
    from .data import DATASETS

    if name.lower().replace("-", "_") in DATASETS:
        return name
    path = Path(os.path.expanduser(name))
    if os.sep in name or path.suffix or path.exists():  # as data.load tells paths apart
        return str(path.resolve())
    return name  # data.load refuses it, listing the names


def _fingerprint(dataset: Any) -> str:
    """The fingerprint of a split (its items, labels and per-batch transform)."""
    from .train.checkpointer import data_fingerprint

    side = {} if dataset.targets is None else {"targets": dataset.targets}
    return data_fingerprint(dataset.data, dataset.transform, side)


def _train(args: argparse.Namespace) -> int:
    main = not args.distributed or _rank() == 0  # under torchrun only rank 0 writes files
    out = Path(args.out or f"runs/{Path(args.dataset).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    if main:
        _check_run_folder(out, args)
    from .checks import check_device

    check_device(args.device, spell=lambda d: f"--device {d}")
    data_spec, train, test, vae = _train_data_and_vae(args)
    if main:
        data_spec["fingerprint"] = {"train": _fingerprint(train), "test": _fingerprint(test)}
    with contextlib.ExitStack() as held:
        if main:
            held.callback(_lock(out).release)  # one writer per run folder
        if main and args.overwrite and not args.resume:  # pyvae's own files only
            for name in (*RUN_FILES, "checkpoint.pt"):
                (out / name).unlink(missing_ok=True)
        history = _fit(args, vae, train, test, out, main)
        if main:
            _write_run(out, args, data_spec, vae, history, test)
    return 0


def _train_data_and_vae(args: argparse.Namespace) -> tuple[dict[str, Any], Any, Any, Any]:
    """``pyvae train``'s data (its spec for config.json, the splits) and the VAE, checked
    against each other before any file is touched."""
    import pyro

    from .data import BINARY_DATASETS
    from .model import VAE

    eight_bit = args.likelihood in ("discretized_logistic", "beta_binomial")
    if eight_bit and args.dataset.lower().replace("-", "_") in BINARY_DATASETS:
        raise ValueError(
            f"--likelihood {args.likelihood} models 8-bit images (0..255), but {args.dataset} "
            "is binary (values 0 and 1): use --likelihood bernoulli"
        )
    values = args.values or ("uint8" if eight_bit else "unit")
    data_spec: dict[str, Any] = {
        "dataset": _data_name(args.dataset),
        "root": str(Path(args.root).expanduser().resolve()) if args.root else None,
        "binarize": args.binarize,
        "values": values,
        "label_column": args.label_column,
        "limit": args.limit,
    }
    if args.label_column is None and (not args.distributed or _rank() == 0):
        _warn_label_like(data_spec["dataset"])
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
    for split, dataset in (("training", train), ("test", test)):
        _check_support(vae, dataset, split, args)
        vae.check_data(dataset.data, dataset.transform)
    return data_spec, train, test, vae


def _warn_label_like(dataset: str) -> None:
    """A warning line on stderr for each column of a CSV file that looks like a label
    (which ``--label-column`` would take out of the features)."""
    from .data import label_like_columns

    if not dataset.lower().endswith(".csv") or not Path(dataset).is_file():
        return
    for column, why in label_like_columns(dataset):
        print(
            f"warning: column {column!r} of {dataset} looks like a label ({why}) and is "
            f"modelled as a feature; pass --label-column {shlex.quote(str(column))} to use it "
            "as the label",
            file=sys.stderr,
        )


def _fit(args: argparse.Namespace, vae: Any, train: Any, test: Any, out: Path, main: bool):
    """``fit`` with the flags, checkpointing into ``out``; a resume with other flags is
    refused in flag terms."""
    from pyro.infer import TraceMeanField_ELBO

    from .callbacks import CSVLogger
    from .train import ResumeMismatch, fit
    from .train.checkpointer import RESUME_HINT

    token = RESUME_HINT.set("continue with the same command plus --resume")
    try:
        return fit(
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
    finally:
        RESUME_HINT.reset(token)


def _lock(out: Path) -> Any:
    """Take the run folder's lock (a :class:`~pyvae.train.lock.RunLock`), refusing in flag
    terms a folder that another live process writes."""
    from .train.lock import LOCK_NAME, RunFolderInUse, RunLock

    lock = RunLock(out)
    try:
        return lock.acquire()
    except RunFolderInUse:
        owner = (out / LOCK_NAME).read_text().strip() if (out / LOCK_NAME).exists() else "?"
        raise FileExistsError(
            f"--out {out} is in use by process {owner}: another `pyvae train` writes there "
            "(one writer at a time); wait for it to finish or stop it, or choose another --out"
        ) from None


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


def _open_run(run: str) -> tuple[Path, Any, dict[str, Any]]:
    """The run folder, its VAE and its config, or an error naming the file at fault."""
    from .io import load

    folder = Path(run)
    if not (folder / "model.pt").exists():
        raise FileNotFoundError(f"{folder} is not a run folder (no model.pt); run `pyvae train`")
    path = folder / "config.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{folder} has a model.pt but no config.json: the run stopped before it wrote "
            f"its folder; continue it with `pyvae train --out {folder} --resume` and the "
            "flags it started with"
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(
            f"{path} is not valid JSON ({e}): it was cut short or edited; restore it, or "
            "train the run again"
        ) from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a run's config: it was not written by `pyvae train`")
    return folder, load(folder / "model.pt"), config


def _data_spec(folder: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The run's data as config.json records it, or an error naming the file."""
    spec = config.get("data")
    if not isinstance(spec, dict):
        raise ValueError(
            f"{folder / 'config.json'} has no 'data' entry (it was not written by `pyvae "
            "train`): pass the data to use, e.g. --data FILE"
        )
    return spec


def _split(args: argparse.Namespace, folder: Path, config: dict[str, Any]) -> Any:
    """The run's own data (the ``--split`` of it), refused if it is not the data the run
    was trained on (the fingerprint in config.json, where recorded)."""
    spec = _data_spec(folder, config)
    try:
        train, test = _load_data(spec)
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"the run's data is missing: {e} (the dataset {folder / 'config.json'} names); "
            "put it back there"
        ) from None
    x = train if args.split == "train" else test
    recorded = (spec.get("fingerprint") or {}).get(args.split)
    if recorded is not None and recorded != _fingerprint(x):
        raise ValueError(
            f"the {args.split} data of {folder} is not the data it was trained on: "
            f"{spec['dataset']} (as {folder / 'config.json'} names it) has changed since "
            "(another fingerprint); put the original data back, or train a new run on this data"
        )
    return x


def _evaluate(args: argparse.Namespace) -> int:
    import pyro

    from . import evaluate

    folder, vae, config = _open_run(args.run)
    x = _split(args, folder, config)
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
    import pyro

    from . import anomaly, data
    from .io import atomic_write

    folder, vae, config = _open_run(args.run)
    path = Path(args.out or folder / f"scores-{args.method}.npy")
    _check_output(path, args.overwrite)
    side_models = _score_side_models(args, vae)  # may load a second run: after the cheap checks
    if args.data:  # read the file with the run's own conventions for pixels and labels
        spec = config.get("data") or {}
        csv_file = str(args.data).lower().endswith(".csv")
        with warnings.catch_warnings():  # `pyvae train` warned of label-like columns
            warnings.filterwarnings("ignore", "(?s).*looks like a label", UserWarning)
            x = data.load(
                args.data,
                binarize=spec.get("binarize"),
                values=spec.get("values", "unit"),
                test_fraction=0,
                label_column=spec.get("label_column") if csv_file else None,
            )[0]
    else:
        x = _split(args, folder, config)
    pyro.set_rng_seed(args.seed)
    scores = anomaly.score(vae, x, args.method, args.num_samples, **side_models).cpu().numpy()
    atomic_write(path, lambda tmp: _save_npy(tmp, scores), args.overwrite)
    print(f"wrote {path}: {len(scores)} anomaly scores ({args.method}; higher = more unusual)")
    return 0


def _score_side_models(args: argparse.Namespace, vae: Any) -> dict[str, Any]:
    """The background run of ``likelihood_ratio`` and the compressor of ``complexity``,
    refused in flag terms where missing or given to another score."""
    from .anomaly import COMPRESSORS, Compressor

    needs = {  # score: (its flag, what the flag names)
        "likelihood_ratio": ("background", "RUN2, a run trained on perturbed copies of the data"),
        "complexity": ("compressor", f"NAME, one of {', '.join(COMPRESSORS)}"),
    }
    for method, (name, what) in needs.items():
        flag, given = f"--{name}", getattr(args, name)
        if args.method == method and given is None:
            raise ValueError(f"--method {method} needs {flag} {what}")
        if args.method != method and given is not None:
            raise ValueError(f"{flag} is for --method {method}, not --method {args.method}")
    if args.compressor is not None:
        return {"compressor": Compressor(args.compressor)}
    if args.background is None:
        return {}
    background = _open_run(args.background)[1]
    if tuple(background.input_shape) != tuple(vae.input_shape):
        raise ValueError(
            f"--background {args.background} models items of shape "
            f"{tuple(background.input_shape)}, but {args.run} models "
            f"{tuple(vae.input_shape)}: train the background run on the same kind of data"
        )
    return {"background": background}


def _save_npy(tmp: str, array) -> None:
    import numpy as np

    with open(tmp, "wb") as f:
        np.save(f, array)


def _latent_codes(args: argparse.Namespace) -> int:
    import numpy as np

    from . import compress
    from .io import atomic_write

    folder, vae, config = _open_run(args.run)
    path = Path(args.out or folder / f"codes-{args.split}-{args.bits}bit.npz")
    _check_output(path, args.overwrite)
    x = _split(args, folder, config)
    codes = compress.encode(vae, x, bits=args.bits, limit=args.limit)

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
    _check_output(Path(args.output), args.overwrite, "OUTPUT")  # before the work of coding
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
    _check_output(output, args.overwrite, "OUTPUT")  # before the work of decoding
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
    path = Path(args.out or folder / _samples_name(args))
    _check_output(path, args.overwrite)
    pyro.set_rng_seed(args.seed)
    x = vae.sample(args.n, mean=not args.draw, temperature=args.temperature)
    _save_figure(plots.samples_figure(x), path, args.overwrite)
    print(f"wrote {path}")
    return 0


def _samples_name(args: argparse.Namespace) -> str:
    """``pyvae sample``'s default file name: ``samples-N.png``, with each option that
    changes the figure (``-draw``, ``-tT``, ``-seedS``), so that it never names the
    ``samples.png`` that ``pyvae train`` writes, and other options write other files."""
    name = f"samples-{args.n}"
    if args.draw:
        name += "-draw"
    if args.temperature != 1:
        name += f"-t{args.temperature:g}"
    if args.seed != 0:
        name += f"-seed{args.seed}"
    return name + ".png"


def _reconstruct(args: argparse.Namespace) -> int:
    from . import plots

    folder, vae, config = _open_run(args.run)
    path = Path(args.out or folder / f"reconstructions-{args.split}.png")
    _check_output(path, args.overwrite)
    x = _split(args, folder, config)
    _save_figure(plots.reconstructions(vae, x, n=args.n), path, args.overwrite)
    print(f"wrote {path}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    import numpy as np

    from .io import atomic_write

    folder, vae, config = _open_run(args.run)
    path = Path(args.out or folder / f"latents-{args.split}.npy")
    with_suffix = path if path.suffix == ".npy" else path.with_suffix(".npy")
    _check_output(with_suffix, args.overwrite)
    x = _split(args, folder, config)
    z = vae.encode(x).mean.cpu().numpy()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, z)

    atomic_write(with_suffix, write, args.overwrite)
    print(f"wrote {with_suffix}: posterior means, shape {z.shape}")
    return 0


#: The help of every ``--split``.
SPLIT_HELP = "the run's test or training data"


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except empty ones (None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyvae",
        description="Variational autoencoders as Pyro models and guides. Start with "
        "`pyvae train` (built-in data, no download), then look in the run folder it prints.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", help="on an error, show its traceback as well"
    )
    _add_train_command(sub, common)
    _add_run_commands(sub, common)
    return parser


def _add_train_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """``pyvae train`` and its flags."""
    from .data import DATASETS

    t = sub.add_parser(
        "train",
        help="train a VAE and write a run folder (model, config, history, figures)",
        description="Train a VAE with SVI and write a run folder: model.pt, config.json, "
        "history.json/.csv and PNG figures (history, reconstructions, samples, latent "
        "traversals, the latent space coloured by label).",
        formatter_class=_Help,
        parents=[common],
    )
    t.add_argument(
        "--dataset",
        default="shapes",
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
        "--label-column",
        type=_label_column,
        default=None,
        metavar="NAME|INDEX",
        help="for a .csv: the column of labels (its header name, or its index from 0; -1 the "
        "last), kept out of the features; the latent-space figure is coloured by it",
    )
    t.add_argument(
        "--limit", type=POSITIVE_INT, default=None, help="use only the first N items of each split"
    )
    _add_model_flags(t)


def _add_model_flags(t: argparse.ArgumentParser) -> None:
    """``pyvae train``'s flags for the model, its training and the run folder."""
    from .model import LIKELIHOODS, NETS, PRIORS

    t.add_argument("--prior", default="normal", choices=sorted(PRIORS), help="prior p(z)")
    t.add_argument("--likelihood", default="bernoulli", choices=sorted(LIKELIHOODS), help="p(x|z)")
    t.add_argument(
        "--scale",
        default="learned",
        type=_scale,
        help="Gaussian/Laplace scale: a number, learned or decoder",
    )
    t.add_argument("--net", default="mlp", choices=sorted(NETS), help="encoder/decoder type")
    t.add_argument("--z-dim", type=POSITIVE_INT, default=10, help="latent dimension")
    t.add_argument("--epochs", type=POSITIVE_INT, default=10, help="passes over the training data")
    t.add_argument(
        "--batch-size", type=POSITIVE_INT, default=128, help="items per minibatch (SVI step)"
    )
    t.add_argument("--lr", type=POSITIVE_NUMBER, default=1e-3, help="Adam learning rate")
    t.add_argument(
        "--objective",
        default="elbo",
        choices=OBJECTIVES,
        help="elbo: Trace_ELBO; meanfield: TraceMeanField_ELBO (analytic KL where known)",
    )
    t.add_argument("--beta", type=NON_NEGATIVE_NUMBER, default=1.0, help="KL weight (beta-VAE)")
    t.add_argument(
        "--warmup-epochs", type=NON_NEGATIVE_NUMBER, default=0, help="KL warm-up from 0 to beta"
    )
    t.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="random seed")
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


def _add_run_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """The commands that read a run folder: evaluate, score, latent-codes, compress,
    decompress, sample, reconstruct, encode."""

    def run_command(name: str, help: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help, description=help, formatter_class=_Help, parents=[common]
        )
        p.add_argument("run", help="a run folder written by `pyvae train`")
        p.set_defaults(func=func)
        return p

    _add_scoring_commands(run_command)
    _add_coding_commands(run_command)


def _add_scoring_commands(run_command: Callable[..., argparse.ArgumentParser]) -> None:
    """evaluate, score and latent-codes."""
    from .anomaly import COMPRESSORS, SCORES

    e = run_command(
        "evaluate", "print the ELBO of a trained run on its test (or train) data", _evaluate
    )
    e.add_argument("--split", default="test", choices=["test", "train"], help=SPLIT_HELP)
    e.add_argument("--num-samples", type=POSITIVE_INT, default=10, help="draws of z per example")
    e.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="random seed")
    e.add_argument("--json", action="store_true", help="print one JSON line")

    e.add_argument(
        "--ll-samples",
        type=NON_NEGATIVE_INT,
        default=100,
        help="importance samples per example for log p(x); 0 skips it",
    )

    a = run_command("score", "write anomaly scores (higher = more unusual) to .npy", _score)
    a.add_argument("--method", default="elbo", choices=SCORES, help="the anomaly score")
    a.add_argument(
        "--num-samples",
        type=POSITIVE_INT,
        default=None,
        help="draws of z per item (default: 10; 1000 for log_likelihood, likelihood_ratio "
        "and complexity)",
    )
    a.add_argument(
        "--background",
        default=None,
        metavar="RUN2",
        help="for likelihood_ratio: a run trained on perturbed copies of the training data "
        "(Ren et al. 2019); the score is log p_RUN2(x) - log p_RUN(x)",
    )
    a.add_argument(
        "--compressor",
        default=None,
        choices=COMPRESSORS,
        help="for complexity: the lossless compressor whose code length L(x) is "
        "subtracted (Serra et al. 2020)",
    )
    a.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="random seed")
    a.add_argument("--split", default="test", choices=["test", "train"], help=SPLIT_HELP)
    a.add_argument("--data", default=None, help="score this file instead (.npy, .npz, ...)")
    a.add_argument("--out", default=None, help=".npy path (default: RUN/scores-METHOD.npy)")
    a.add_argument("--overwrite", action="store_true")

    z = run_command(
        "latent-codes",
        "lossy: quantise the posterior means of a split to compact codes",
        _latent_codes,
    )
    z.add_argument("--bits", type=POSITIVE_INT, default=8, help="bits per latent dimension")
    z.add_argument("--limit", type=POSITIVE_NUMBER, default=4.0, help="clip codes to +-limit")
    z.add_argument("--split", default="test", choices=["test", "train"], help=SPLIT_HELP)
    z.add_argument("--out", default=None, help=".npz path")
    z.add_argument("--overwrite", action="store_true")


def _add_coding_commands(run_command: Callable[..., argparse.ArgumentParser]) -> None:
    """compress, decompress, sample, reconstruct and encode."""
    lc = run_command(
        "compress",
        "lossless: compress a data file with the trained model by bits-back coding",
        _compress,
    )
    lc.add_argument("input", help="items of the model's input shape: .npy, .npz or IDX")
    lc.add_argument("output", help="the compressed file")
    lc.add_argument("--key", default=None, help="the array to compress in an .npz")
    lc.add_argument(
        "--latent-bits", type=POSITIVE_INT, default=12, help="2**bits buckets per latent dimension"
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
    s.add_argument("-n", type=POSITIVE_INT, default=64, help="number of samples")
    s.add_argument("--draw", action="store_true", help="draw x ~ p(x|z) instead of E[x|z]")
    s.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="random seed")
    s.add_argument(
        "--temperature", type=POSITIVE_NUMBER, default=1.0, help="prior spread multiplier"
    )
    s.add_argument(
        "--out",
        default=None,
        help="PNG path (default: RUN/samples-N.png, plus -draw, -tT, -seedS where given; "
        "never the samples.png that `pyvae train` wrote)",
    )
    s.add_argument("--overwrite", action="store_true")

    r = run_command("reconstruct", "write data items over their reconstructions", _reconstruct)
    r.add_argument("--split", default="test", choices=["test", "train"], help=SPLIT_HELP)
    r.add_argument("-n", type=POSITIVE_INT, default=16, help="number of items")
    r.add_argument("--out", default=None, help="PNG path (default: RUN/reconstructions-SPLIT.png)")
    r.add_argument("--overwrite", action="store_true")

    c = run_command("encode", "write the posterior means E[z|x] of a split to .npy", _encode)
    c.add_argument("--split", default="test", choices=["test", "train"], help=SPLIT_HELP)
    c.add_argument("--out", default=None, help=".npy path (default: RUN/latents-SPLIT.npy)")
    c.add_argument("--overwrite", action="store_true")


#: Library phrases and what to pass on the command line instead.
_CLI_WORDS = (
    ("pass overwrite=True to replace it", "pass --overwrite to replace it"),
    (
        "data.load(..., binarize='dynamic', 'static' or 'threshold')",
        "--binarize dynamic, static or threshold",
    ),
    ("data.load(..., values='unit')", "--values unit"),
    ("data.load(..., values='uint8')", "--values uint8"),
    ("binarize= and values= do not apply", "--binarize and --values do not apply"),
    ("binarize applies to 8-bit images", "--binarize applies to 8-bit images"),
    ("label_column applies to .csv files", "--label-column applies to .csv files"),
    ("or name it as label_column", "or pass it as --label-column"),
)

#: The errors whose own message says what went wrong; any other error is shown with its type.
EXPECTED = (ValueError, TypeError, ImportError, OSError, FloatingPointError)


def _message(e: BaseException) -> str:
    """The one line an error is shown as, in the command line's words."""
    if isinstance(e, OSError) and e.strerror and str(e).startswith("[Errno"):
        where = f"{e.filename}: " if e.filename else ""
        text = f"{where}{e.strerror}"
        if e.errno == errno.ENOSPC:
            text += (
                "; free some space and run the command again (the files pyvae wrote before "
                "are kept; a training run continues from its last checkpoint with --resume)"
            )
        elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            text += "; choose a place you can write to (--out)"
    elif isinstance(e, EXPECTED):
        text = str(e) or type(e).__name__
    else:
        text = f"{type(e).__name__}: {e} (run it again with --debug to see where)"
    for python, cli in _CLI_WORDS:
        text = text.replace(python, cli)
    return " ".join(text.split())  # one line


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyvae`` console script; returns the exit status.

    Every error ends in one line, ``error: ...``, and exit status 2 (``--debug`` shows
    the traceback too); Ctrl-C or SIGTERM ends in 130."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help, or argparse printed the usage and the error
        return e.code if isinstance(e.code, int) else int(e.code is not None) * 2
    # SIGTERM (e.g. from a job scheduler) stops training like Ctrl-C: checkpoint, then exit.
    previous = None
    if args.command == "train" and threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.command == "train" and (not args.distributed or _rank() == 0):
            print("stopped; continue with the same command plus --resume", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            traceback.print_exc()
        print(f"error: {_message(e)}", file=sys.stderr)
        return 2
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

"""Bad inputs, by class: each is refused with a short, clear error before any work, and
nothing is written or updated.

Every section is one table of cases, ``pytest.param(make, exception, fragments, id=...)``:
``make(folder)`` prepares the bad input in a fresh folder and returns the call that must
be refused; :func:`assert_refused` checks the exception, the fragments of its message and
that the folder holds the same files, byte for byte, afterwards.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from helpers import small_vae

from pyvae import VAE, _files, likelihoods, load, nets, priors
from pyvae.checkpoint import load_checkpoint
from pyvae.factor_vae import FactorVAELoss
from pyvae.tcvae import BetaTCELBO

Make = Callable[[Path], Callable[[], Any]]


# --------------------------------------------------------------------------- helpers
def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too), by relative path: its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_refused(
    call: Callable[[], Any],
    exception: type[BaseException],
    fragments: str | tuple[str, ...],
    folder: Path,
) -> BaseException:
    """``call()`` raises ``exception`` whose message holds every one of ``fragments``,
    and no file under ``folder`` appeared, changed or went away. Returns the error."""
    before = snapshot(folder)
    with pytest.raises(exception) as error:
        call()
    message = str(error.value)
    for fragment in (fragments,) if isinstance(fragments, str) else fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert snapshot(folder) == before, "the refused call wrote, changed or removed files"
    return error.value


# --------------------------------------------------------------------------- files
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
PLAIN = "plain data (numbers, strings, lists, dicts, None)"


def _saved(folder: Path, vae: Any = None, name: str = "model.pt") -> Path:
    return (vae if vae is not None else small_vae()).save(folder / name)


def _crafted(edit: Callable[[dict], Any], prior: str = "normal") -> Make:
    """A case: a good model file, then a copy whose payload ``edit`` changed, loaded."""

    def make(folder: Path) -> Callable[[], Any]:
        payload = torch.load(_saved(folder, small_vae(prior)), weights_only=True)
        edit(payload)
        torch.save(payload, folder / "crafted.pt")
        return lambda: load(folder / "crafted.pt")

    return make


def _setter(*keys: Any, value: Any) -> Callable[[dict], None]:
    """An edit that sets ``payload[k1][k2]...[kn] = value``."""

    def edit(payload: dict) -> None:
        for key in keys[:-1]:
            payload = payload[key]
        payload[keys[-1]] = value

    return edit


def _fill(name: str, value: float) -> Callable[[dict], None]:
    return lambda payload: payload["state_dict"][name].view(-1)[:3].fill_(value)


def _drop(name: str) -> Callable[[dict], None]:
    return lambda payload: payload["state_dict"].pop(name)


def _loading(**kwargs: Any) -> Make:
    """A case: a good model file loaded with ``kwargs``."""
    return lambda folder: functools.partial(load, _saved(folder), **kwargs)


def _loading_nan_into_a_template(folder: Path) -> Callable[[], Any]:
    vae = small_vae()
    with torch.no_grad():
        vae.encoder.net[0].bias[0] = float("nan")
    payload = {"format": "pyvae", "version": 1, "config": vae.config}
    payload["state_dict"] = vae.state_dict()
    torch.save(payload, folder / "nan.pt")
    return lambda: load(folder / "nan.pt", vae=small_vae())


def _loading_the_folder(folder: Path) -> Callable[[], Any]:
    run = folder / "run"
    _saved(run)
    (run / "config.json").write_text("{}")
    return lambda: load(run)


def _checkpoint(folder: Path) -> Path:
    path = folder / "checkpoint.pt"
    torch.save({"format": "pyvae-checkpoint", "version": 1, "epoch": 0}, path)
    return path


class StudentTPrior(priors.Prior):
    """A user's prior with a number argument (given a tensor in the cases below)."""

    def __init__(self, z_dim: int, df: Any = 4.0):
        super().__init__(z_dim)
        self.df = df

    def forward(self, encoder: Any = None) -> Any:
        zeros = self._zeros()
        return dist.StudentT(self.df, zeros, torch.ones_like(zeros)).to_event(1)


class GatedVAE(VAE):
    """A VAE subclass with an option, as variants have."""

    def __init__(self, encoder, decoder, prior, likelihood, input_shape=None, width=1.0):
        super().__init__(encoder, decoder, prior, likelihood, input_shape)
        self.width = width

    @property
    def options(self) -> dict[str, Any]:
        return {"width": self.width}


def _saving(
    encoder: dict | None = None,
    decoder: dict | None = None,
    prior: Any = None,
    likelihood: Any = None,
    cls: type = VAE,
    **options: Any,
) -> Make:
    """A case: saving a VAE on (4,) data built from these parts (defaults elsewhere)."""

    def make(folder: Path) -> Callable[[], Any]:
        vae = cls(
            nets.MLPEncoder((4,), 2, hidden=(8,), **(encoder or {})),
            nets.MLPDecoder(2, (4,), hidden=(8,), **(decoder or {})),
            prior if prior is not None else priors.StandardNormal(2),
            likelihood if likelihood is not None else likelihoods.Gaussian(),
            **options,
        )
        return lambda: vae.save(folder / "model.pt")

    return make


def _saving_nan(folder: Path) -> Callable[[], Any]:
    vae = small_vae()
    with torch.no_grad():
        vae.decoder.net[-1].weight[0, 0] = float("inf")
    return lambda: vae.save(folder / "model.pt")


def _saving_over(folder: Path) -> Callable[[], Any]:
    _saved(folder)
    return lambda: small_vae().save(folder / "model.pt")


def _saving_below_a_file(folder: Path) -> Callable[[], Any]:
    (folder / "notes").write_text("a file")
    return lambda: small_vae().save(folder / "notes" / "run" / "model.pt")


TORCH_DISK_FULL = RuntimeError(
    "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
)


def _half_then(error: BaseException, file_first: bool = False) -> Callable[..., None]:
    """A writer (for ``torch.save(obj, file)``, or with ``file_first`` for
    ``np.save(file, array)``) that writes a few bytes, then fails."""

    def write(*args: Any, **kwargs: Any) -> None:
        file = args[0] if file_first else args[1]
        if isinstance(file, (str, os.PathLike)):
            Path(file).write_bytes(b"half")
        else:
            file.write(b"half")
        raise error

    return write


def _disk_full(error: BaseException, previous: bool = True) -> Make:
    """A case: saving over a previous model file when the disk is full."""

    def make(folder: Path) -> Callable[[], Any]:
        if previous:
            _saved(folder)

        def call() -> None:
            with mock.patch("torch.save", _half_then(error)):
                small_vae().save(folder / "model.pt", overwrite=True)

        return call

    return make


def _disk_full_array(folder: Path) -> Callable[[], Any]:
    _files.write_array(folder / "scores.npy", np.arange(3))

    def call() -> None:
        with mock.patch(
            "numpy.save", _half_then(OSError(errno.ENOSPC, "No space left"), file_first=True)
        ):
            _files.write_array(folder / "scores.npy", np.arange(5), overwrite=True)

    return call


# Lossless files: one small model and one file, cached; each case crafts a header.
@functools.cache
def _coded() -> tuple[Any, torch.Tensor, bytes]:
    """A small Bernoulli VAE (z_dim 3, 8x8), 6 binary items (uint8) and their file."""
    from pyvae.compress import lossless

    torch.manual_seed(0)
    vae = small_vae()
    x = (torch.rand(6, 1, 8, 8) < 0.3).to(torch.uint8)
    return vae, x, lossless.encode(vae, x)


def _header(edit: Callable[[dict], Any]) -> Make:
    """A case: the small file with its header changed by ``edit`` (and the file's
    checksum made right again), decoded."""

    def make(folder: Path) -> Callable[[], Any]:
        from pyvae.compress import lossless

        vae, _, blob = _coded()
        version, header, words = lossless._unpack(blob)
        header = edit(header) or header
        (folder / "x.bb").write_bytes(lossless._pack(header, words.tobytes(), version))
        return lambda: lossless.decode(vae, (folder / "x.bb").read_bytes())

    return make


def _raw_header(head: bytes) -> Make:
    """A case: the small file with ``head`` as its header bytes."""

    def make(folder: Path) -> Callable[[], Any]:
        from pyvae.compress import lossless

        vae, _, blob = _coded()
        _, _, words = lossless._unpack(blob)
        payload = words.astype("<u4").tobytes()
        body = lossless._PREFIX.pack(lossless.MAGIC, lossless.FORMAT_VERSION, len(head)) + head
        body += lossless._LENGTH.pack(len(payload)) + payload
        (folder / "x.bb").write_bytes(body + hashlib.sha256(body).digest())
        return lambda: lossless.decode(vae, (folder / "x.bb").read_bytes())

    return make


def _field(name: str, value: Any) -> Make:
    return _header(lambda h: h.__setitem__(name, value))


def _count(n: int) -> Make:
    """The count and the shape's first size both set to ``n`` (a consistent header)."""
    return _header(lambda h: h.update(count=n, shape=[n, *h["shape"][1:]]))


def _lossless():
    from pyvae.compress import lossless

    return lossless


def _encoding(x: Callable[[], Any]) -> Make:
    def make(folder: Path) -> Callable[[], Any]:
        from pyvae.compress import lossless

        vae, _, _ = _coded()
        return lambda: lossless.encode(vae, x())

    return make


FILES = [
    # ---- a model file whose config does not fit its tensors: refused before building
    pytest.param(
        _crafted(_setter("config", "encoder", "kwargs", "hidden", value=[40000, 40000])),
        ValueError,
        ("crafted.pt", "larger than the tensors it holds", "the encoder", "nothing was built"),
        id="model-file-config-asks-for-huge-encoder",
    ),
    pytest.param(
        _crafted(_setter("config", "decoder", "kwargs", "hidden", value=[50000, 50000])),
        ValueError,
        ("larger than the tensors it holds", "the decoder (pyvae.nets.MLPDecoder)"),
        id="model-file-config-asks-for-huge-decoder",
    ),
    pytest.param(
        _crafted(_setter("config", "prior", "kwargs", "components", value=10**9), prior="mog"),
        ValueError,
        ("larger than the tensors it holds", "the prior (pyvae.priors.MixtureOfGaussians)"),
        id="model-file-config-asks-for-huge-prior",
    ),
    pytest.param(
        _crafted(_setter("config", "encoder", "args", 0, value=[1, 40000, 40000])),
        ValueError,
        ("larger than the tensors it holds", "the encoder"),
        id="model-file-config-asks-for-huge-input",
    ),
    pytest.param(
        _crafted(_setter("config", "encoder", "kwargs", "hidden", value=[17])),
        ValueError,
        (
            "crafted.pt does not fit the VAE its config describes",
            "encoder.net.0.weight is (16, 64)",
        ),
        id="model-file-config-one-size-off",
    ),
    pytest.param(
        _crafted(_drop("decoder.net.2.bias")),
        ValueError,
        ("does not fit the VAE its config describes", "decoder.net.2.bias missing"),
        id="model-file-tensor-missing",
    ),
    pytest.param(
        _crafted(_setter("state_dict", "extra.weight", value=torch.zeros(2))),
        ValueError,
        ("does not fit", "extra.weight unexpected"),
        id="model-file-tensor-unexpected",
    ),
    pytest.param(
        _crafted(_setter("state_dict", "encoder.net.0.bias", value=[1.0, 2.0])),
        ValueError,
        ("damaged pyvae model file", "encoder.net.0.bias", "not tensors"),
        id="model-file-tensor-not-a-tensor",
    ),
    pytest.param(
        _crafted(lambda p: p.pop("state_dict")),
        ValueError,
        "damaged pyvae model file: its state_dict is missing or not a dict",
        id="model-file-without-tensors",
    ),
    pytest.param(
        _crafted(_setter("config", value=[1, 2])),
        ValueError,
        "its config is missing or not a dict",
        id="model-file-config-a-list",
    ),
    # ---- tensors that are not finite: refused at load, named
    pytest.param(
        _crafted(_fill("encoder.net.0.weight", float("nan"))),
        ValueError,
        ("crafted.pt cannot be loaded", "encoder.net.0.weight", "NaN or infinite"),
        id="model-file-nan-weights",
    ),
    pytest.param(
        _crafted(_fill("decoder.net.2.bias", float("-inf"))),
        ValueError,
        ("decoder.net.2.bias", "NaN or infinite"),
        id="model-file-infinite-bias",
    ),
    pytest.param(
        _loading_nan_into_a_template,
        ValueError,
        ("encoder.net.0.bias", "NaN or infinite"),
        id="model-file-nan-into-a-template",
    ),
    # ---- a config that names parts badly: the file and the part named
    pytest.param(
        _crafted(_setter("config", "encoder", "kwargs", "hiddn", value=[4])),
        ValueError,
        (
            "crafted.pt",
            "the encoder (pyvae.nets.MLPEncoder)",
            "unexpected keyword argument 'hiddn'",
        ),
        id="model-file-config-unexpected-keyword",
    ),
    pytest.param(
        _crafted(_setter("config", "likelihood", "kwargs", "temperature", value=2)),
        ValueError,
        ("crafted.pt", "the likelihood (pyvae.likelihoods.Bernoulli)", "'temperature'"),
        id="model-file-config-unexpected-likelihood-keyword",
    ),
    pytest.param(
        _crafted(_setter("config", "options", value={"width": 2.0})),
        ValueError,
        ("crafted.pt", "the VAE (", "'width'"),
        id="model-file-config-unexpected-option",
    ),
    pytest.param(
        _crafted(_setter("config", "encoder", "kwargs", "hidden", value=[-5])),
        ValueError,
        ("crafted.pt", "the encoder (pyvae.nets.MLPEncoder) cannot be built", "'hidden': [-5]"),
        id="model-file-config-negative-size",
    ),
    pytest.param(
        _crafted(_setter("config", "encoder", "args", value="oops")),
        ValueError,
        ("crafted.pt: the config of the encoder is damaged", "args must be a list"),
        id="model-file-config-args-not-a-list",
    ),
    pytest.param(
        _crafted(_setter("config", "prior", value={"class": "pyvae.priors.StandardNormal"})),
        ValueError,
        ("the config of the prior is damaged", "class, args, kwargs"),
        id="model-file-config-part-without-args",
    ),
    pytest.param(
        _crafted(_setter("config", "input_shape", value=[1, -8, 8])),
        ValueError,
        "input_shape must be a list of sizes",
        id="model-file-config-negative-input-shape",
    ),
    pytest.param(
        _crafted(_setter("config", "prior", "class", value="evil.Prior")),
        ValueError,
        ("'evil.Prior', which pyvae does not know", "classes=[Prior]"),
        id="model-file-config-unknown-class",
    ),
    pytest.param(
        _crafted(_setter("config", "class", value="pyvae.nets.MLPEncoder")),
        ValueError,
        "is not a pyvae.VAE class",
        id="model-file-config-class-not-a-vae",
    ),
    # ---- the file itself, and how it is asked for
    pytest.param(
        _loading_the_folder,
        IsADirectoryError,
        ("is a folder, not a model file: pass the file in it", str(Path("run", "model.pt"))),
        id="model-file-a-run-folder",
    ),
    pytest.param(
        _loading(map_location="cuda"),
        ValueError,
        ("map_location='cuda'", "CUDA is not available", "map_location='cpu'"),
        id="model-file-map-location-cuda-without-cuda",
        marks=NO_CUDA,
    ),
    pytest.param(
        _loading(map_location="cuda:99"),
        ValueError,
        "map_location='cuda:99', but ",
        id="model-file-map-location-missing-cuda-device",
    ),
    pytest.param(
        _loading(map_location="gpu"),
        ValueError,
        "map_location='gpu' is not a device",
        id="model-file-map-location-not-a-device",
    ),
    pytest.param(
        lambda folder: functools.partial(load, folder / "missing.pt"),
        FileNotFoundError,
        "missing.pt does not exist",
        id="model-file-missing",
    ),
    pytest.param(
        _crafted(_setter("version", value=99)),
        ValueError,
        "format version 99",
        id="model-file-future-version",
    ),
    pytest.param(
        lambda folder: functools.partial(load_checkpoint, _checkpoint(folder).parent),
        IsADirectoryError,
        ("not a checkpoint", "checkpoint.pt"),
        id="checkpoint-a-run-folder",
    ),
    pytest.param(
        lambda folder: functools.partial(load_checkpoint, _checkpoint(folder), "cuda"),
        ValueError,
        "CUDA is not available",
        id="checkpoint-map-location-cuda-without-cuda",
        marks=NO_CUDA,
    ),
    # ---- saving parts that could not be loaded again: refused, the argument named
    pytest.param(
        _saving(encoder={"activation": torch.nn.Tanh}),
        TypeError,
        ("the encoder (pyvae.nets.MLPEncoder)", "activation=<class", PLAIN),
        id="save-encoder-activation-a-class",
    ),
    pytest.param(
        _saving(decoder={"activation": torch.nn.ELU}),
        TypeError,
        ("the decoder (pyvae.nets.MLPDecoder)", "activation=", PLAIN),
        id="save-decoder-activation-a-class",
    ),
    pytest.param(
        _saving(prior=StudentTPrior(2, df=torch.tensor(3.0))),
        TypeError,
        ("the prior (", "StudentTPrior)", "df=tensor(3.)", "tensor.tolist()", PLAIN),
        id="save-prior-tensor-keyword",
    ),
    pytest.param(
        _saving(prior=StudentTPrior(2, torch.tensor(3.0))),
        TypeError,
        ("the prior (", "df=tensor(3.)"),
        id="save-prior-tensor-positional",
    ),
    pytest.param(
        _saving(prior=StudentTPrior(2, df=np.array([3.0, 4.0]))),
        TypeError,
        ("the prior (", "df=array([3., 4.])", PLAIN),
        id="save-prior-numpy-array",
    ),
    pytest.param(
        _saving(likelihood=likelihoods.Gaussian(scale=torch.tensor(0.5))),
        TypeError,
        ("the likelihood (pyvae.likelihoods.Gaussian)", "scale=tensor(0.5000)", PLAIN),
        id="save-likelihood-tensor",
    ),
    pytest.param(
        _saving(cls=GatedVAE, width=torch.tensor(2.5)),
        TypeError,
        ("the option width=tensor(2.5000) of GatedVAE", PLAIN),
        id="save-vae-option-tensor",
    ),
    pytest.param(
        _saving_nan,
        ValueError,
        ("cannot save", "model.pt", "decoder.net.2.weight", "NaN or infinite"),
        id="save-infinite-weights",
    ),
    pytest.param(
        _saving_over,
        FileExistsError,
        "pass overwrite=True",
        id="save-over-an-existing-file",
    ),
    pytest.param(
        lambda folder: lambda: small_vae().save(folder),
        IsADirectoryError,
        "is a folder; give a file path",
        id="save-to-a-folder",
    ),
    pytest.param(
        _saving_below_a_file,
        NotADirectoryError,
        ("notes is a file, not a folder",),
        id="save-below-a-file",
    ),
    # ---- a full disk: named, the previous file intact, no temporary left
    pytest.param(
        _disk_full(OSError(errno.ENOSPC, "No space left on device")),
        OSError,
        ("No space left on device", "model.pt was not written", "previous file is unchanged"),
        id="save-disk-full-oserror",
    ),
    pytest.param(
        _disk_full(TORCH_DISK_FULL),
        OSError,
        ("No space left on device", "model.pt was not written", "previous file is unchanged"),
        id="save-disk-full-torch-writer",
    ),
    pytest.param(
        _disk_full(TORCH_DISK_FULL, previous=False),
        OSError,
        ("No space left on device", "nothing was written"),
        id="save-disk-full-first-save",
    ),
    pytest.param(
        _disk_full_array,
        OSError,
        ("No space left on device", "scores.npy was not written"),
        id="write-array-disk-full",
    ),
    # ---- lossless files whose header was altered: refused before any work
    pytest.param(
        _field("latent_bits", 40),
        ValueError,
        "latent_bits 40 is not an integer in [1, 16]",
        id="lossless-latent-bits-40",
    ),
    pytest.param(
        _field("latent_bits", "12"),
        ValueError,
        "latent_bits '12' is not an integer",
        id="lossless-latent-bits-a-string",
    ),
    pytest.param(
        _field("count", 10**7),
        ValueError,
        "count 10000000 does not match its shape [6, 1, 8, 8]",
        id="lossless-count-ten-million",
    ),
    pytest.param(
        _field("count", 0),
        ValueError,
        "count 0 does not match its shape",
        id="lossless-count-zero",
    ),
    pytest.param(
        _count(-1),
        ValueError,
        "count -1 is not a number of items",
        id="lossless-count-negative",
    ),
    pytest.param(
        _count(10**7),
        ValueError,
        ("did not reproduce the data", "header was altered (its count, shape or dtype)"),
        id="lossless-count-and-shape-ten-million",
    ),
    pytest.param(
        _count(0),
        ValueError,
        ("did not reproduce the data", "header was altered (its count, shape or dtype)"),
        id="lossless-count-and-shape-zero",
    ),
    pytest.param(
        _field("shape", [6, 64]),
        ValueError,
        ("did not reproduce the data", "header was altered"),
        id="lossless-another-shape-of-as-many-values",
    ),
    pytest.param(
        _field("shape", [6, 1, 8, 9]),
        ValueError,
        "shape [6, 1, 8, 9] does not hold items of this VAE's input_shape=(1, 8, 8)",
        id="lossless-shape-of-other-items",
    ),
    pytest.param(
        _field("shape", [6]),
        ValueError,
        "shape [6] is not a shape of two or more sizes",
        id="lossless-shape-one-axis",
    ),
    pytest.param(
        _field("dtype", "float32"),
        ValueError,
        ("did not reproduce the data", "header was altered"),
        id="lossless-another-dtype",
    ),
    pytest.param(
        _field("dtype", "complex64"),
        ValueError,
        "dtype 'complex64' is not one of",
        id="lossless-unknown-dtype",
    ),
    pytest.param(
        _header(lambda h: [h]),
        ValueError,
        "its header is a JSON list",
        id="lossless-header-a-list",
    ),
    pytest.param(
        _raw_header(b"\xff\xfe not json"),
        ValueError,
        "its header is not JSON",
        id="lossless-header-not-json",
    ),
    pytest.param(
        _header(lambda h: h.__delitem__("data_sha256")),
        ValueError,
        "its header lacks data_sha256",
        id="lossless-header-field-missing",
    ),
    pytest.param(
        _field("comment", "hello"),
        ValueError,
        "has unknown fields comment",
        id="lossless-header-field-unknown",
    ),
    pytest.param(
        _field("initial_words", 10**12),
        ValueError,
        "initial_words 1000000000000 is out of range",
        id="lossless-initial-words-huge",
    ),
    pytest.param(
        _field("initial_words", 5),
        ValueError,
        "initial_words 5 is not 4",
        id="lossless-initial-words-off",
    ),
    pytest.param(
        _field("count_window", 10**6),
        ValueError,
        "count_window 1000000 is not 256",
        id="lossless-count-window",
    ),
    pytest.param(
        _field("model", 12345),
        ValueError,
        "model 12345 is not a SHA-256",
        id="lossless-model-not-a-hash",
    ),
    pytest.param(
        _field("versions", ["torch"]),
        ValueError,
        "versions ['torch'] are not names",
        id="lossless-versions-a-list",
    ),
    # ---- lossless data that would not come back exactly: refused before coding
    pytest.param(
        _encoding(lambda: torch.tensor([0.0, -0.0, 1.0, 0.0]).repeat(16).reshape(1, 1, 8, 8)),
        ValueError,
        ("-0.0", "x = x + 0.0"),
        id="lossless-negative-zero",
    ),
    pytest.param(
        _encoding(lambda: torch.zeros(1, 8, 8, dtype=torch.uint8)),
        ValueError,
        ("one item of this VAE's input_shape", "x[None]"),
        id="lossless-one-unbatched-item",
    ),
    pytest.param(
        _encoding(lambda: torch.zeros(64, dtype=torch.uint8)),
        ValueError,
        "for a single item use x[None]",
        id="lossless-one-flat-item",
    ),
    pytest.param(
        _encoding(lambda: torch.zeros(8, 8, dtype=torch.uint8)),
        ValueError,
        "for a single item use x[None]",
        id="lossless-one-item-in-another-shape",
    ),
    pytest.param(
        lambda folder: lambda: _lossless().encode(small_vae("flow"), torch.zeros(2, 1, 8, 8)),
        ValueError,
        ("FlowPrior is not supported", "prior='normal'", "'mog', 'vamp'"),
        id="lossless-flow-prior",
    ),
]


@pytest.mark.parametrize("make, exception, fragments", FILES)
def test_bad_files_are_refused_before_any_work(
    tmp_path: Path, make: Make, exception: type, fragments: str | tuple[str, ...]
) -> None:
    assert_refused(make(tmp_path), exception, fragments, tmp_path)


def test_the_files_table_is_big_enough() -> None:
    assert len(FILES) >= 40


def test_the_good_file_of_the_lossless_cases_decodes() -> None:
    """The cases above refuse altered copies of a file that decodes."""
    from pyvae.compress import lossless

    vae, x, blob = _coded()
    assert torch.equal(lossless.decode(vae, blob), x)


def test_a_save_killed_midway_leaves_no_temporary_file_after_the_next_save(
    tmp_path: Path,
) -> None:
    """SIGKILL during a write leaves its temporary file (named with the writer's
    process id); the next save to that folder removes it, as that process is gone."""
    code = (
        "import importlib.util, pathlib, sys, time\n"
        "spec = importlib.util.spec_from_file_location('files', sys.argv[1])\n"
        "files = importlib.util.module_from_spec(spec); spec.loader.exec_module(files)\n"
        "folder = pathlib.Path(sys.argv[2])\n"
        "def write(tmp):\n"
        "    pathlib.Path(tmp).write_bytes(b'half')\n"
        "    (folder / 'ready').touch()\n"
        "    time.sleep(120)\n"
        "files.atomic_write(folder / 'model.pt', write)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code, _files.__file__, str(tmp_path)])
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "ready").exists():
            assert writer.poll() is None and time.monotonic() < deadline, "the writer did not start"
            time.sleep(0.05)
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    (tmp_path / "ready").unlink()
    left = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert len(left) == 1 and f".{writer.pid}." in left[0] and left[0].startswith(".model.pt.")
    small_vae().save(tmp_path / "model.pt")
    assert os.listdir(tmp_path) == ["model.pt"]


def test_only_temporaries_of_gone_processes_are_removed(tmp_path: Path) -> None:
    """Kept: a live process's, another machine's, someone else's file. Removed: a gone
    process's, and the old unnamed kind for the file being written."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = _files._HOST
    names = {
        f".model.pt.{host}.{os.getpid()}.abcd1234.tmp": True,  # this process: alive
        f".model.pt.{host}.{gone.pid}.abcd1234.tmp": False,
        f".scores.npy.{host}.{gone.pid}.x_y_z_12.tmp": False,  # any file of the folder
        f".model.pt.{host}x.{gone.pid}.abcd1234.tmp": True,  # another machine's
        ".model.pt.k2j4h5g6.tmp": False,  # older pyvae, no process id
        ".other.k2j4h5g6.tmp": True,  # older pyvae, another file: unknown, kept
        ".notes.tmp": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    small_vae().save(tmp_path / "model.pt")
    kept = sorted(name for name, keep in names.items() if keep)
    assert sorted(os.listdir(tmp_path)) == sorted([*kept, "model.pt"])


# ---- data given to the library
def test_a_support_error_counts_the_data_not_its_summary_of_distinct_values():
    """8-bit data is checked on its distinct values (fast); a refusal counts the data."""
    from pyvae import VAE, data

    x = torch.zeros(100, 1, 8, 8, dtype=torch.uint8)
    x[:, 0, 0, :3] = 128  # 300 grey pixels of one distinct grey value
    vae = VAE.build((1, 8, 8), z_dim=2)
    with pytest.raises(ValueError, match="300 data values lie outside its support"):
        vae.check_data(*data.source(data.ArrayDataset(x, transform=data.Scale())))


# --------------------------------------------------------------------------- parts and the API
def _api(build: Callable[[], Any]) -> Make:
    """A case that needs no file: ``build()`` must be refused."""
    return lambda folder: build


def _small(input_shape: tuple[int, ...] = (1, 8, 8)) -> Any:
    from pyvae import VAE

    return VAE.build(input_shape, z_dim=2, net_kwargs={"hidden": (8,)})


def _decoding_nan(folder: Path) -> Callable[[], Any]:
    vae = _small()
    return lambda: vae.decode(torch.tensor([[0.0, float("nan")]]))


def _negative_scale_vae() -> Any:
    from pyvae import VAE, likelihoods, nets, priors

    class Negative(nets.MLPEncoder):
        def forward(self, x):
            loc, scale = super().forward(x)
            return loc, -scale

    vae = VAE(
        Negative((1, 8, 8), 2, hidden=(8,)),
        nets.MLPDecoder(2, (1, 8, 8), hidden=(8,)),
        priors.StandardNormal(2),
        likelihoods.Bernoulli(),
    )
    return vae


def _encoding_with_a_negative_scale(folder: Path) -> Callable[[], Any]:
    vae = _negative_scale_vae()
    return lambda: vae.encode(torch.zeros(3, 1, 8, 8))


def _elbo_with_a_negative_scale(folder: Path) -> Callable[[], Any]:
    vae = _negative_scale_vae()
    return lambda: vae.elbo(torch.zeros(3, 1, 8, 8))


def _posterior(what: str, **kwargs: Any) -> Make:
    """A case: a per-item posterior call (gaps, refinement, NUTS, its plot) with ``kwargs``
    on a small VAE; the bad argument is refused before any SVI or MCMC step."""
    from pyvae import evaluate, plots, posterior_samples

    def make(folder: Path) -> Callable[[], Any]:
        vae, x = _small(), torch.zeros(3, 1, 8, 8)
        if what == "gaps":
            return lambda: evaluate.inference_gaps(vae, x, **kwargs)
        if what == "encode":
            return lambda: vae.encode(x, **kwargs)
        if what == "nuts":
            return lambda: posterior_samples(vae, x, **kwargs)
        samples = kwargs.pop("samples", torch.zeros(5, 3, 2))
        return lambda: plots.posterior_comparison(vae, x, samples, **kwargs)

    return make


def _fitting(**kwargs: Any) -> Make:
    from pyvae import fit

    x = torch.zeros(8, 1, 8, 8)
    return lambda folder: lambda: fit(_small(), x, progress=False, checkpoint_dir=None, **kwargs)


def _anomaly() -> Any:
    from pyvae import anomaly

    return anomaly


L, P, N_ = "likelihoods", "priors", "nets"
INF, NAN = float("inf"), float("nan")


def _part(module: str, name: str, *args: Any, **kwargs: Any) -> Make:
    import pyvae

    return _api(lambda: getattr(getattr(pyvae, module), name)(*args, **kwargs))


def _metric(name: str, *args: Any, **kwargs: Any) -> Make:
    """A case: ``pyvae.disentanglement.<name>(*args, **kwargs)``."""
    from pyvae import disentanglement

    return _api(lambda: getattr(disentanglement, name)(*args, **kwargs))


def _codes(n: int = 40, columns: int = 3) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, columns))


def _with_nan() -> np.ndarray:
    z = _codes()
    z[3, 1] = np.nan
    return z


def _sprites_sampler() -> Any:
    from pyvae import disentanglement

    return disentanglement.sprites_sampler(16)


def _scores_without_factors(folder: Path) -> Callable[[], Any]:
    from pyvae import disentanglement

    vae = _small()
    return lambda: disentanglement.scores(vae, torch.zeros(40, 1, 8, 8))


def _render(factors: Any, kind: str = "sprites") -> Make:
    from pyvae import data

    render = data.render_sprites if kind == "sprites" else data.render_shapes
    return _api(lambda: render(factors, 16))


def _load(name: str, **kwargs: Any) -> Make:
    from pyvae import data

    return _api(lambda: data.load(name, **kwargs))


API = [
    pytest.param(
        _part(L, "Gaussian", scale=INF),
        ValueError,
        "a fixed scale must be a finite number > 0",
        id="gaussian-scale-inf",
    ),
    pytest.param(
        _part(L, "Gaussian", scale=-1.0),
        ValueError,
        "a fixed scale must be a finite number > 0",
        id="gaussian-scale-negative",
    ),
    pytest.param(
        _part(L, "Gaussian", scale="big"),
        ValueError,
        "scale must be a positive float or one of",
        id="gaussian-scale-name",
    ),
    pytest.param(
        _part(L, "Gaussian", min_scale=-1),
        ValueError,
        "min_scale must be a finite number > 0",
        id="gaussian-min-scale-negative",
    ),
    pytest.param(
        _part(L, "Laplace", min_scale=NAN),
        ValueError,
        "min_scale must be a finite number > 0",
        id="laplace-min-scale-nan",
    ),
    pytest.param(
        _part(L, "NegativeBinomial", total_count=0),
        ValueError,
        "total_count must be a finite number > 0",
        id="nb-total-count-0",
    ),
    pytest.param(
        _part(L, "NegativeBinomial", total_count=-3),
        ValueError,
        "total_count must be a finite number > 0",
        id="nb-total-count-negative",
    ),
    pytest.param(
        _part(L, "NegativeBinomial", total_count="ten"),
        TypeError,
        "total_count must be a number",
        id="nb-total-count-str",
    ),
    pytest.param(
        _part(L, "DiscretizedLogistic", min_log_scale=INF),
        ValueError,
        "min_log_scale must be a finite number",
        id="dlogistic-min-log-scale-inf",
    ),
    pytest.param(
        _part(L, "BetaBinomial", total_count=0),
        ValueError,
        "total_count must be an integer >= 1",
        id="betabinomial-total-count-0",
    ),
    pytest.param(
        _part(L, "Bernoulli", soft_targets="yes"),
        TypeError,
        "soft_targets must be True or False",
        id="bernoulli-soft-targets-str",
    ),
    pytest.param(
        _part(P, "MixtureOfGaussians", 2, components=2.5),
        ValueError,
        "components must be an integer >= 1",
        id="mog-components-float",
    ),
    pytest.param(
        _part(P, "MixtureOfGaussians", 2, components=0),
        ValueError,
        "components must be an integer >= 1",
        id="mog-components-0",
    ),
    pytest.param(
        _part(P, "VampPrior", 2, (1, 8, 8), components=-1),
        ValueError,
        "components must be an integer >= 1",
        id="vamp-components-negative",
    ),
    pytest.param(
        _part(P, "FlowPrior", 2, num_flows=0),
        ValueError,
        "num_flows must be an integer >= 1",
        id="flow-num-flows-0",
    ),
    pytest.param(
        _part(P, "StandardNormal", 0),
        ValueError,
        "z_dim must be an integer >= 1",
        id="prior-z-dim-0",
    ),
    pytest.param(
        _part(N_, "MLPEncoder", (64,), 2, hidden=(0,)),
        ValueError,
        "hidden layer sizes must be integers >= 1",
        id="mlp-hidden-0",
    ),
    pytest.param(
        _part(N_, "MLPDecoder", 2, (64,), hidden=(8, 2.5)),
        ValueError,
        "hidden layer sizes must be integers >= 1",
        id="mlp-hidden-float",
    ),
    pytest.param(
        _part(N_, "MLPClassifier", (64,), 3, activation="sigmoidal"),
        ValueError,
        "unknown activation 'sigmoidal'",
        id="mlp-activation-unknown",
    ),
    pytest.param(
        _api(lambda: _anomaly().perturb(torch.zeros(4, 3), 1.5)),
        ValueError,
        "rate must be in [0, 1]",
        id="perturb-rate-above-1",
    ),
    pytest.param(
        _api(lambda: _anomaly().perturb(torch.zeros(4, 3), 0.1, support="grey")),
        ValueError,
        "support must be one of",
        id="perturb-support-unknown",
    ),
    pytest.param(
        _api(lambda: _anomaly().Compressor("gzip")),
        ValueError,
        "unknown compressor 'gzip'; choose from png",
        id="compressor-unknown",
    ),
    pytest.param(
        _api(lambda: _anomaly().Compressor("zlib")(torch.full((2, 4), 2.5))),
        ValueError,
        "compressors take images with values 0/1",
        id="compressor-floats-above-1",
    ),
    pytest.param(
        _api(lambda: _anomaly().score(_small(), torch.zeros(2, 1, 8, 8), "likelihood_ratio")),
        ValueError,
        "needs background=",
        id="score-likelihood-ratio-no-background",
    ),
    pytest.param(
        _api(
            lambda: _anomaly().score(
                _small(), torch.zeros(2, 1, 8, 8), "likelihood_ratio", background="bg.pt"
            )
        ),
        TypeError,
        "background must be a VAE, got str",
        id="score-background-not-a-vae",
    ),
    pytest.param(
        _api(
            lambda: _anomaly().score(
                _small(),
                torch.zeros(2, 1, 8, 8),
                "likelihood_ratio",
                background=_small((1, 4, 4)),
            )
        ),
        ValueError,
        "the background models items of shape (1, 4, 4), the VAE items of shape (1, 8, 8)",
        id="score-background-other-shape",
    ),
    pytest.param(
        _api(lambda: _anomaly().TypicalityTest(_small(), batch_size=0)),
        ValueError,
        "batch_size must be an integer >= 1",
        id="typicality-batch-size-0",
    ),
    pytest.param(_fitting(lr=INF), ValueError, "lr must be a finite number", id="fit-lr-inf"),
    pytest.param(_fitting(beta=INF), ValueError, "beta must be a finite number", id="fit-beta-inf"),
    pytest.param(
        _fitting(warmup_epochs=INF),
        ValueError,
        "warmup_epochs must be a finite number",
        id="fit-warmup-inf",
    ),
    pytest.param(
        _fitting(seed="abc"), ValueError, "seed must be an integer >= 0", id="fit-seed-str"
    ),
    pytest.param(
        _fitting(seed=-1), ValueError, "seed must be an integer >= 0", id="fit-seed-negative"
    ),
    pytest.param(
        _fitting(callbacks=[1]), TypeError, "has no on_train_begin", id="fit-callbacks-int"
    ),
    pytest.param(
        _fitting(device="gpu"),
        ValueError,
        "device='gpu' is not a device; use e.g. device='cpu'",
        id="fit-device-name",
    ),
    pytest.param(
        _fitting(device="cuda:7"),
        ValueError,
        "CUDA is not available here",
        id="fit-device-cuda",
        marks=NO_CUDA,
    ),
    pytest.param(
        _fitting(epochs=-1), ValueError, "epochs must be an integer >= 0", id="fit-epochs-negative"
    ),
    pytest.param(
        lambda folder: lambda: BetaTCELBO(estimator="mwss"),
        ValueError,
        "estimator must be one of ('mws', 'mss')",
        id="betatc-estimator",
    ),
    pytest.param(
        lambda folder: lambda: BetaTCELBO(beta=-1), ValueError, "beta must be", id="betatc-beta"
    ),
    pytest.param(
        lambda folder: lambda: FactorVAELoss(3, gamma=INF),
        ValueError,
        "gamma must be",
        id="factorvae-gamma-inf",
    ),
    pytest.param(
        lambda folder: lambda: FactorVAELoss(0), ValueError, "z_dim must be", id="factorvae-z-dim"
    ),
    pytest.param(
        _fitting(elbo=FactorVAELoss(5)),
        ValueError,
        ("the discriminator takes z_dim=5, the VAE has z_dim=2", "FactorVAELoss(2, ...)"),
        id="factorvae-other-z-dim",
    ),
    pytest.param(
        _posterior("gaps", steps=-1), ValueError, "steps must be an integer >= 0", id="gaps-steps"
    ),
    pytest.param(
        _posterior("gaps", lr=0.0), ValueError, "lr must be a finite number > 0", id="gaps-lr-0"
    ),
    pytest.param(
        _posterior("gaps", num_samples=0),
        ValueError,
        "num_samples must be an integer >= 1",
        id="gaps-num-samples-0",
    ),
    pytest.param(
        _posterior("encode", refine_steps=2.5),
        ValueError,
        "refine_steps must be an integer >= 0",
        id="encode-refine-steps-float",
    ),
    pytest.param(
        _posterior("encode", refine_steps=3, refine_lr=INF),
        ValueError,
        "refine_lr must be a finite number > 0",
        id="encode-refine-lr-inf",
    ),
    pytest.param(
        _posterior("nuts", method="gibbs"),
        ValueError,
        "method must be one of ['nuts', 'hmc']",
        id="nuts-method-unknown",
    ),
    pytest.param(
        _posterior("nuts", num_samples=2),
        ValueError,
        "num_samples must be an integer >= 4",
        id="nuts-num-samples-2",
    ),
    pytest.param(
        _posterior("plot", samples=torch.zeros(5, 2)),
        ValueError,
        "samples must have shape (S, B, 2)",
        id="posterior-plot-samples-2d",
    ),
    pytest.param(
        _posterior("plot", dims=(0, 0)),
        ValueError,
        "dims must be two distinct latent dimensions",
        id="posterior-plot-dims-same",
    ),
    pytest.param(_decoding_nan, ValueError, "NaN or infinite", id="decode-nan-z"),
    pytest.param(_encoding_with_a_negative_scale, ValueError, "scale", id="encode-negative-scale"),
    pytest.param(
        _elbo_with_a_negative_scale,
        ValueError,
        ("VAE.elbo: a part gave a distribution invalid values", "encoder's scale"),
        id="elbo-negative-scale",
    ),
    # ---- disentanglement metrics: codes and factors checked before any estimate
    pytest.param(
        _metric("mig", _codes(40), _codes(39)),
        ValueError,
        ("one row per item", "40 rows of latents and 39 of factors"),
        id="mig-rows-differ",
    ),
    pytest.param(
        _metric("dci", _with_nan(), _codes()),
        ValueError,
        "latents has 1 NaN or infinite values",
        id="dci-nan-latents",
    ),
    pytest.param(
        _metric("sap", _codes(5), _codes(5)),
        ValueError,
        "need at least 20 items",
        id="sap-too-few-items",
    ),
    pytest.param(
        _metric("mig", _codes()[:, 0], _codes()),
        ValueError,
        ("latents must have shape (N, columns)", "x[:, None]"),
        id="mig-1d-latents",
    ),
    pytest.param(
        _metric("mig", _codes(columns=1), _codes()),
        ValueError,
        "need at least 2 latent dimensions",
        id="mig-one-latent",
    ),
    pytest.param(
        _metric("mig", _codes(), np.c_[_codes(), np.ones(40)]),
        ValueError,
        ("factor column(s) [3] are constant", "drop those columns"),
        id="mig-constant-factor",
    ),
    pytest.param(
        _metric("dci", _codes(), _codes(), model="forest"),
        ValueError,
        "model must be 'gbt' or 'lasso'",
        id="dci-model-unknown",
    ),
    pytest.param(
        _metric("dci", _codes(), _codes(columns=1)),
        ValueError,
        "and 2 factor(s)",
        id="dci-one-factor",
    ),
    pytest.param(
        _metric("dci", _codes(), _codes(), test_fraction=1.0),
        ValueError,
        "test_fraction must be < 1",
        id="dci-test-fraction-1",
    ),
    pytest.param(
        _metric("sap", _codes(), _codes(), discrete=(5,)),
        ValueError,
        "discrete names columns [5], but factors has 3 columns",
        id="sap-discrete-column-missing",
    ),
    pytest.param(
        _metric("factor_vae_score", _codes()),
        TypeError,
        "sampler must have sample_factors(n, generator) and render(factors)",
        id="factor-vae-not-a-sampler",
    ),
    pytest.param(
        _metric("beta_vae_score", _sprites_sampler(), batch_size=1),
        ValueError,
        "batch_size must be an integer >= 2",
        id="beta-vae-batch-1",
    ),
    pytest.param(
        _metric("factor_vae_score", _sprites_sampler(), lambda x: x, batch_size=4),
        ValueError,
        ("represent must map", "to codes of shape", "vae.encode(x).mean"),
        id="factor-vae-represent-not-codes",
    ),
    pytest.param(
        _scores_without_factors,
        ValueError,
        "data must be a FactorSampler (e.g. sprites_sampler()) or data whose targets",
        id="scores-no-factors",
    ),
    pytest.param(
        _render(torch.zeros(4, 3)),
        ValueError,
        "need factors of shape (n, 5)",
        id="render-sprites-columns",
    ),
    pytest.param(
        _render(torch.tensor([[3.0, 0.5, 0.0, 0.5, 0.5]])),
        ValueError,
        "the shape column must hold 0, 1 or 2",
        id="render-sprites-shape-3",
    ),
    pytest.param(
        _render(torch.zeros(4, 5), "shapes"),
        ValueError,
        "need factors of shape (n, 4)",
        id="render-shapes-columns",
    ),
    pytest.param(
        _render(torch.tensor([[0.5, 0.5, 0.5, 0.5]]), "shapes"),
        ValueError,
        "the shape column must hold 0, 1 or 2",
        id="render-shapes-shape-half",
    ),
    pytest.param(
        _load("shapes", binarize="static"),
        ValueError,
        "shapes is binary already",
        id="load-shapes-binarize",
    ),
]


@pytest.mark.parametrize("make, exception, fragments", API)
def test_bad_parts_and_arguments_are_refused_before_any_work(
    make: Make, exception: type[BaseException], fragments: Any, tmp_path: Path
) -> None:
    error = assert_refused(make(tmp_path), exception, fragments, tmp_path)
    assert len(str(error)) < 600, "a short message, not a tensor dump"

"""Lossless compression with bits-back coding on an ANS stack (BB-ANS).

A trained VAE is a lossless compressor of discrete data (Townsend, Bird & Barber 2019,
"Practical lossless compression with latent variables using bits back coding"). Items
are coded one after another on one stack of an asymmetric numeral system (ANS); for each
item ``x``:

1. *pop* a latent ``z`` off the stack with the discretised posterior Q(z|x): this takes
   about ``-log2 Q(z|x)`` bits off the stack (the bits back),
2. *push* ``x`` with the likelihood p(x|z),
3. *push* ``z`` with the discretised prior P(z).

Each item adds ``-log2 p(x|z) - log2 P(z) + log2 Q(z|x)`` bits, on average over z ~ Q
the negative ELBO in bits (of the discretised latents). :func:`decode` runs the steps
backwards, last item first. The first pop needs bits on the stack: :func:`encode` starts
it with a fixed block of pseudo-random words, the *initial bits*, a one-off overhead per
file (:func:`info` reports it as ``initial_bits``) that chaining spreads over all items.

Latents: each of the ``z_dim`` dimensions is cut into ``K = 2**latent_bits`` buckets
(``pyvae/compress/_buckets.py``). Under the standard normal prior (``prior="normal"``)
they have equal mass (edges ``Phi^-1(k/K)``), so P is uniform (``latent_bits`` bits per
dimension) and bucket k stands for the latent ``Phi^-1((k + 1/2) / K)``. Under a mixture
of diagonal normals (``prior="mog"`` and ``"vamp"``:
:class:`pyvae.priors.DiagonalNormalMixture`) they have equal mass under each dimension's
marginal, and P is the exact mass of the discretised mixture, coded one dimension after
another, each given the buckets before. Q gives each bucket its mass under the
encoder's ``N(loc_d, scale_d)`` (over the buckets within 6 standard deviations of
``loc_d``). The first bucket index goes onto the stack scrambled (times an odd number
modulo K), so that the next item, which pops its latent from these bits, finds them as
good as random. Flow priors are refused.

Data, by likelihood (the probabilities of the values come from the VAE's own likelihood,
in float64):

- ``Bernoulli``: binary data {0, 1} (not ``soft_targets=True``);
- ``DiscretizedLogistic``: 8-bit data 0..255 (probabilities from its CDF);
- ``BetaBinomial``: integers 0..n (8-bit data: n = 255), probabilities from its pmf in
  log-gamma form, normalised over 0..n;
- ``Poisson`` and ``NegativeBinomial``: counts 0..2**31-1. Each count is coded in a
  window of ``COUNT_WINDOW`` (256) values starting at ``max(0, floor(mean) - 128)`` of its
  predicted distribution, plus an escape symbol carrying the probability outside the
  window; an escaped count x is then written as the bit length of x + 1 (5 bits) and its
  bits below the leading one (``5 + floor(log2(x + 1))`` bits, through uniform symbols),
  so any count is coded exactly and rare large ones cost a few bits more.

Encoder and decoder must compute the same probabilities bit for bit: the networks run on
the CPU in eval mode, one item at a time and single-threaded, and the probabilities are
computed in float64 by the same code. The file records the model's fingerprint (a hash
of its config and tensors), the sizes, a SHA-256 of the data (its values, shape and
dtype) and a SHA-256 of the file; every header field is checked before any work;
:func:`decode` refuses another model or a damaged file, and checks what it decoded
against the data's hash, so a mismatch (e.g. another torch build or CPU) is an error,
never wrong data.

The VAE must support ``"lossless"`` (:mod:`pyvae.capabilities`): a plain
:class:`~pyvae.VAE`, or a :class:`~pyvae.ConditionalVAE`, whose context c is given to
:func:`encode` and again to :func:`decode` (``c=...``, or read from the data's targets
when encoding); it is not coded, only its hash is recorded. Models whose latents are not
one z with a diagonal normal posterior (hierarchical, IAF, low-rank, semi-supervised) are
refused.

Entropy coding is done by ``constriction`` (its ``AnsCoder`` stack, categorical, uniform
and custom models): ``pip install 'pyvae[lossless]'``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import struct
from typing import Any

import numpy as np
import torch

from ..capabilities import LOSSLESS
from ..checks import check_int, finite_or_raise
from ..data import as_tensor, targets
from ..likelihoods import Bernoulli, BetaBinomial, DiscretizedLogistic, Poisson
from ._buckets import latent_buckets

__all__ = ["encode", "decode", "info", "fingerprint", "FORMAT_VERSION", "LATENT_BITS"]

MAGIC = b"PYVAE-BB"
#: Version 2: the data hash covers the shape and dtype too. Files of version 1 still decode.
FORMAT_VERSION = 2
READS = (1, 2)
#: Default bits per latent dimension: 2**12 equal-mass buckets under the prior.
LATENT_BITS = 12
#: Values of a count coded directly (the rest go through the escape symbol).
COUNT_WINDOW = 256
MAX_COUNT = 2**31 - 1
#: The smallest probability a value gets in a table (constriction's, with 24-bit precision).
MIN_PROBABILITY = 2.0**-24
#: The dtypes an input may have (the decoded data gets the input's dtype back).
DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64")
_PREFIX = struct.Struct("<8sHI")  # magic, format version, header length
_LENGTH = struct.Struct("<Q")  # payload length
_DIGEST = 32  # SHA-256 of everything before it
#: A side input per item (a ConditionalVAE's context c), each of shape (1, ...), or None.
Side = dict[str, torch.Tensor] | None
_INSTEAD = "use a VAE, or pyvae.compress.encode for lossy latent codes"
#: The header's fields (``side_sha256`` only for a VAE with side information).
HEADER_FIELDS = frozenset(
    {
        "model",
        "count",
        "shape",
        "dtype",
        "data_sha256",
        "latent_bits",
        "count_window",
        "initial_words",
        "versions",
    }
)
OPTIONAL_FIELDS = frozenset({"side_sha256"})


def _constriction():
    try:
        import constriction
    except ImportError:
        raise ImportError(
            "lossless compression needs the constriction package: pip install 'pyvae[lossless]'"
        ) from None
    return constriction


def _versions() -> dict[str, str]:
    """The versions that decide the probabilities: a file records its encoder's."""
    from importlib.metadata import version

    from .._version import __version__

    return {
        "pyvae": __version__,
        "torch": torch.__version__,
        "constriction": version("constriction"),
    }


def fingerprint(vae) -> str:
    """SHA-256 (hex) of ``vae``'s config and of every tensor of its state dict: two VAEs
    with the same fingerprint compute the same probabilities."""
    digest = hashlib.sha256(json.dumps(vae.config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name} {t.dtype} {tuple(tensor.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- coding
class _Values:
    """The values 0..size-1 (Bernoulli: {0, 1}), coded with one categorical per data
    value whose probabilities are ``exp(log_prob)`` of the likelihood."""

    def __init__(self, size: int, models):
        self.size = size
        self.categorical = models.Categorical(perfect=False)

    def _values(self, p) -> torch.Tensor:
        """The alphabet, shaped to broadcast against ``p``'s batch shape: (size, 1, ...)."""
        shape = (-1,) + (1,) * len(p.batch_shape)
        return torch.arange(self.size, dtype=torch.float64).reshape(shape)

    def table(self, p) -> np.ndarray:
        """Probabilities (D, size) in float64 of every value of every data dimension."""
        probs = p.log_prob(self._values(p)).exp().reshape(self.size, -1)
        return np.ascontiguousarray(probs.T.numpy())

    def push(self, coder, x: torch.Tensor, p) -> None:
        coder.encode_reverse(x.numpy().astype(np.int32), self.categorical, self.table(p))

    def pop(self, coder, p) -> torch.Tensor:
        return torch.from_numpy(coder.decode(self.categorical, self.table(p)).astype(np.int64))


class _Bins(_Values):
    """The 256 values of DiscretizedLogistic, with probabilities from CDF differences
    (one sigmoid per value instead of its log_prob's several)."""

    def table(self, p) -> np.ndarray:
        cdf = p.cdf(self._values(p)[:-1]).reshape(self.size - 1, -1).T  # (D, 255)
        zero, one = (
            torch.zeros(len(cdf), 1, dtype=cdf.dtype),
            torch.ones(len(cdf), 1, dtype=cdf.dtype),
        )
        return torch.diff(cdf, prepend=zero, append=one).numpy()


def _log_beta(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log B(a, b) = lgamma(a) + lgamma(b) - lgamma(a + b)."""
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)


class _BetaBinomialValues(_Values):
    """The values 0..n of BetaBinomial (``size = n + 1``), with the probabilities of its
    pmf ``C(n, k) B(k + alpha, n - k + beta) / B(alpha, beta)`` computed in float64 from
    log-gamma functions, normalised over 0..n, floored at :data:`MIN_PROBABILITY` (so a
    value of vanishing probability costs at most ~24 bits) and normalised again."""

    def table(self, p) -> np.ndarray:
        alpha = p.concentration1.reshape(-1, 1).double()  # (D, 1)
        beta = p.concentration0.reshape(-1, 1).double()
        n = self.size - 1
        k = torch.arange(self.size, dtype=torch.float64)  # (n + 1,)
        log_choose = math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
        log_pmf = log_choose + _log_beta(k + alpha, n - k + beta) - _log_beta(alpha, beta)
        log_pmf = finite_or_raise(log_pmf, "the beta-binomial probabilities")  # (D, n + 1)
        probs = torch.softmax(log_pmf, dim=1).clamp_min(MIN_PROBABILITY)
        return np.ascontiguousarray((probs / probs.sum(1, keepdim=True)).numpy())


class _Counts(_Values):
    """Counts coded in a window of ``window`` values around each predicted mean, plus an
    escape symbol (index ``window``) followed by a length-prefixed binary code of the
    count."""

    def __init__(self, window: int, models):
        super().__init__(window, models)
        self.models = models

    def _window(self, p) -> tuple[torch.Tensor, np.ndarray]:
        """The first value of each window (D,) and the table (D, window + 1)."""
        mean = finite_or_raise(p.mean, "the predicted mean count")
        low = (mean.floor() - self.size // 2).clamp(0, MAX_COUNT - self.size)
        probs = p.log_prob(low + self._values(p)).exp().reshape(self.size, -1).T
        escape = (1 - probs.sum(1, keepdim=True)).clamp_min(0)
        return low.reshape(-1).long(), np.ascontiguousarray(torch.cat([probs, escape], 1).numpy())

    def push(self, coder, x: torch.Tensor, p) -> None:
        low, table = self._window(p)
        symbols = x - low
        escaped = (symbols < 0) | (symbols >= self.size)
        symbols[escaped] = self.size
        for value in reversed(x[escaped].tolist()):  # popped after the symbols, in order
            self._push_count(coder, value)
        coder.encode_reverse(symbols.numpy().astype(np.int32), self.categorical, table)

    def pop(self, coder, p) -> torch.Tensor:
        low, table = self._window(p)
        symbols = torch.from_numpy(coder.decode(self.categorical, table).astype(np.int64))
        x = low + symbols
        escaped = symbols == self.size
        counts = [self._pop_count(coder) for _ in range(int(escaped.sum()))]
        x[escaped] = torch.tensor(counts, dtype=torch.int64)
        return x

    # An escaped count x through uniform symbols: the bit length of n = x + 1 (5 bits),
    # then the bits of n below its leading 1 in chunks of at most 16 bits.
    def _chunks(self, length: int) -> list[int]:
        bits = length - 1
        return [b for b in (min(bits, 16), max(bits - 16, 0)) if b > 0]

    def _push_count(self, coder, value: int) -> None:
        n = value + 1
        length = n.bit_length()
        rest, shift = n - (1 << (length - 1)), 0
        for bits in self._chunks(length):
            coder.encode_reverse(
                (rest >> shift) & ((1 << bits) - 1), self.models.Uniform(1 << bits)
            )
            shift += bits
        coder.encode_reverse(length - 1, self.models.Uniform(32))

    def _pop_count(self, coder) -> int:
        length = int(coder.decode(self.models.Uniform(32))) + 1
        chunks = self._chunks(length)
        rest, shift = 0, sum(chunks)
        for bits in reversed(chunks):
            shift -= bits
            rest |= int(coder.decode(self.models.Uniform(1 << bits))) << shift
        return (1 << (length - 1)) + rest - 1


def _check_parts(vae) -> None:
    """A clear error unless the VAE is on the CPU and its likelihood is supported (its
    prior: ``_buckets.latent_buckets``)."""
    if vae.device.type != "cpu":
        raise ValueError(
            f"the VAE is on {vae.device}: lossless coding runs on the CPU, so that encoder "
            "and decoder compute the same probabilities; move it with vae.to('cpu')"
        )
    likelihood = vae.likelihood
    supported = (Bernoulli, DiscretizedLogistic, BetaBinomial, Poisson)
    if not isinstance(likelihood, supported) or getattr(likelihood, "soft_targets", False):
        what = type(likelihood).__name__
        if getattr(likelihood, "soft_targets", False):
            what = "Bernoulli(soft_targets=True) (it scores grey levels, not discrete data)"
        raise ValueError(
            f"lossless coding needs a likelihood of discrete data; {what} is not supported. "
            "Supported: bernoulli (binary data), discretized_logistic and beta_binomial "
            "(8-bit data 0..255), poisson and negative_binomial (counts)"
        )


class _BitsBack:
    """The BB-ANS steps for one VAE: :meth:`push` an item, :meth:`pop` it back."""

    def __init__(self, vae, latent_bits: int, count_window: int):
        _check_parts(vae)
        self.models = _constriction().stream.model
        self.vae = vae
        self.event_dim = len(vae.input_shape)
        self.buckets = 2**latent_bits
        with _reproducible(vae):  # VampPrior runs the encoder: as when coding
            prior = vae.p_z()
        self.latents = latent_buckets(vae, prior, self.buckets, self.models)
        self.values: _Values = _Values(2, self.models)  # Bernoulli
        if isinstance(vae.likelihood, Poisson):
            self.values = _Counts(count_window, self.models)
        if isinstance(vae.likelihood, DiscretizedLogistic):
            self.values = _Bins(256, self.models)
        if isinstance(vae.likelihood, BetaBinomial):
            self.values = _BetaBinomialValues(vae.likelihood.total_count + 1, self.models)

    def posterior(self, x: torch.Tensor, side: Side = None) -> list[tuple[int, Any]]:
        """Q(bucket | x) of each latent dimension for ``x`` (*input_shape): a list of
        ``(first bucket, model)`` over the buckets within 6 posterior standard deviations
        of the mean (all but 2e-9 of its mass); ``side``: the item's side information,
        each of shape ``(1, ...)``. Only buckets in the window get a
        probability, so far buckets do not take constriction's minimum probability (2**-24
        each), which over 2**latent_bits buckets would now and then pop a far-off z."""
        loc, scale = self.vae._q_params(x.float()[None], **(side or {}))
        loc = finite_or_raise(loc, "the posterior mean").double().reshape(-1)
        scale = finite_or_raise(scale, "the posterior scale").double().reshape(-1)
        inner = self.latents.inner_edges  # (z_dim, K - 1)
        first = torch.searchsorted(inner, (loc - 6 * scale)[:, None], right=True)[:, 0]
        last = torch.searchsorted(inner, (loc + 6 * scale)[:, None], right=True)[:, 0]
        first = first.clamp(max=self.buckets - 2)  # at least two buckets
        width = (last - first + 1).clamp(min=2)
        low, high = int(first.min()), int((first + width).max())  # all the windows
        t = (self.latents.edges[:, low : high + 1] - loc[:, None]) / scale[:, None]
        tail = torch.special.ndtr(-t.abs())  # the smaller tail: exact far from the mean
        below = torch.where(t < 0, tail, 1 - tail)  # Phi(t)
        mass = torch.where(  # buckets above the mean from the upper tail, others from Phi
            t[:, :-1] > 0, tail[:, :-1] - tail[:, 1:], below[:, 1:] - below[:, :-1]
        ).numpy()
        return [
            (f, self.models.Categorical(mass[d, f - low : f - low + w], perfect=False))
            for d, (f, w) in enumerate(zip(first.tolist(), width.tolist(), strict=True))
        ]

    def likelihood(self, buckets: np.ndarray, side: Side = None):
        """p(x | z) for the latent buckets (z_dim,), per data value, in float64."""
        index = torch.from_numpy(buckets.astype(np.int64))[:, None]
        z = self.latents.centres.gather(1, index).reshape(1, -1).float()
        raw = self.vae.decoder(self.vae._decoder_input(z, **(side or {})))
        raw = finite_or_raise(raw, "the decoder output").double()
        return self.vae.likelihood(raw, self.event_dim).base_dist

    def push(self, coder, x: torch.Tensor, side: Side = None) -> None:
        """Add item ``x`` (int64, *input_shape) with its side information to the stack."""
        posterior = self.posterior(x, side)
        buckets = np.array(
            [first + coder.decode(model) for first, model in posterior], dtype=np.int32
        )
        self.values.push(coder, x.reshape(-1), self.likelihood(buckets, side))
        self.latents.push(coder, buckets)

    def pop(self, coder, side: Side = None) -> torch.Tensor:
        """Take the last item off the stack: int64, shape ``input_shape``."""
        buckets = self.latents.pop(coder)
        p = self.likelihood(buckets, side)
        x = self.values.pop(coder, p).reshape(self.vae.input_shape)
        posterior = self.posterior(x, side)[::-1]
        for bucket, (first, model) in zip(buckets[::-1], posterior, strict=True):
            coder.encode_reverse(int(bucket) - first, model)
        return x


@contextlib.contextmanager
def _reproducible(vae):
    """Eval mode and one torch thread while coding (restored afterwards): the same
    floating-point operations in the same order in :func:`encode` and :func:`decode`."""
    threads, training = torch.get_num_threads(), vae.training
    torch.set_num_threads(1)
    vae.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_num_threads(threads)
        vae.train(training)


def _initial_words(count: int) -> np.ndarray:
    """``count`` fixed pseudo-random 32-bit words (SHA-256 in counter mode), the last
    one non-zero: the stack's starting content."""
    stream = b"".join(
        hashlib.sha256(b"pyvae bits-back initial bits %d" % i).digest()
        for i in range((4 * count) // _DIGEST + 1)
    )
    words = np.frombuffer(stream[: 4 * count], dtype="<u4").astype(np.uint32)
    words[-1] |= np.uint32(1 << 31)
    return words


def _data_digest(
    items: torch.Tensor, shape: list[int], dtype: str, version: int = FORMAT_VERSION
) -> str:
    """SHA-256 (hex) of the items' values and (from format version 2) of the shape and
    dtype they are given back in."""
    digest = hashlib.sha256()
    if version >= 2:
        digest.update(json.dumps([list(shape), dtype]).encode() + b"\n")
    digest.update(items.to(torch.int64).numpy().astype("<i8").tobytes())
    return digest.hexdigest()


def _side(vae, data: Any, n: int, side: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The side information of the ``n`` items (``{}`` for a VAE of x alone): given by
    name, else (when ``data`` is not None) read from its targets; checked."""
    name = vae.side_input
    if set(side) - {name}:
        takes = f"takes only {name}=..." if name else "takes no side information"
        raise TypeError(f"{type(vae).__name__} {takes}; got {', '.join(sorted(side))}=...")
    if name is None:
        return {}
    value = side.get(name)
    if value is None and data is not None:
        value = targets(data)
    return {name: vae.check_side(value, n).cpu()}


def _side_digest(side: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name, value in sorted(side.items()):
        v = value.detach().cpu().contiguous().to(torch.float64)
        digest.update(f"{name} {tuple(value.shape)}".encode())
        digest.update(v.numpy().astype("<f8").tobytes())
    return digest.hexdigest()


def _item_side(side: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    return {name: value[i : i + 1] for name, value in side.items()}


def _items(vae, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(data as given, its items as int64 (N, *input_shape))``, or a clear error."""
    if isinstance(data, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(data))
    elif isinstance(data, torch.Tensor):
        x = data.detach().cpu()
    else:
        x = as_tensor(data[0] if isinstance(data, (tuple, list)) else data)
    name = str(x.dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise TypeError(f"data of dtype {name} cannot be coded; supported: {', '.join(DTYPES)}")
    single = math.prod(x.shape) == math.prod(vae.input_shape)
    if tuple(x.shape) == vae.input_shape:
        raise ValueError(
            f"data of shape {tuple(x.shape)} is one item of this VAE's input_shape: the "
            "first axis counts the items, so for a single item use x[None]"
        )
    if x.dim() < 2 or math.prod(x.shape[1:]) != math.prod(vae.input_shape):
        hint = "; for a single item use x[None]" if single else ""
        raise ValueError(
            f"data of shape {tuple(x.shape)} does not hold items of this VAE's "
            f"input_shape={vae.input_shape} (the first axis counts the items){hint}"
        )
    items = x.reshape(len(x), *vae.input_shape)
    if len(x):
        vae.check_data(items, validate_support=True)
        if items.is_floating_point() and bool((torch.signbit(items) & (items == 0)).any()):
            raise ValueError(
                "the data holds -0.0, which is coded as the integer 0 and would come back "
                "as 0.0: replace it first (x = x + 0.0 turns -0.0 into 0.0)"
            )
        if isinstance(vae.likelihood, Poisson) and float(items.max()) > MAX_COUNT:
            raise ValueError(
                f"counts up to {MAX_COUNT} can be coded; the data holds {items.max().item()}"
            )
    return x, items.to(torch.int64)


# --------------------------------------------------------------------------- the file
def _pack(header: dict[str, Any], payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    head = json.dumps(header, sort_keys=True).encode()
    body = _PREFIX.pack(MAGIC, version, len(head)) + head
    body += _LENGTH.pack(len(payload)) + payload
    return body + hashlib.sha256(body).digest()


def _unpack(data: bytes) -> tuple[int, dict[str, Any], np.ndarray]:
    """The format version, the checked header and the payload words of a file, or a
    clear error."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected the bytes of a compressed file, got {type(data).__name__}")
    data = bytes(data)
    if data[: len(MAGIC)] != MAGIC:
        raise ValueError("not a pyvae lossless file (it does not start with PYVAE-BB)")
    size = len(data)
    if size < _PREFIX.size:
        raise ValueError(f"the file is truncated: {size} bytes")
    _, version, head_size = _PREFIX.unpack_from(data)
    if version not in READS:
        raise ValueError(
            f"the file has format version {version}, this pyvae reads versions "
            f"{', '.join(map(str, READS))}: use the pyvae release that wrote it"
        )
    start = _PREFIX.size + head_size
    if size < start + _LENGTH.size + _DIGEST:
        raise ValueError(f"the file is truncated or corrupted: {size} bytes, header incomplete")
    (payload_size,) = _LENGTH.unpack_from(data, start)
    expected = start + _LENGTH.size + payload_size + _DIGEST
    if size != expected:
        problem = "truncated" if size < expected else "corrupted (extra bytes)"
        raise ValueError(f"the file is {problem}: {size} bytes where its header says {expected}")
    if hashlib.sha256(data[:-_DIGEST]).digest() != data[-_DIGEST:]:
        raise ValueError("the file is corrupted: its checksum (SHA-256) does not match")
    try:
        header = json.loads(data[_PREFIX.size : start])
    except ValueError:  # not UTF-8, not JSON
        raise ValueError("the file is corrupted: its header is not JSON") from None
    _check_header(header)
    payload = data[start + _LENGTH.size : -_DIGEST]
    if payload_size % 4:
        raise ValueError("the file is corrupted: the payload is not whole 32-bit words")
    return version, header, np.frombuffer(payload, dtype="<u4").astype(np.uint32)


def _corrupted(what: str) -> ValueError:
    return ValueError(f"the file is corrupted: its header's {what}")


def _is_int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _is_sha256(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def _check_header(header: Any) -> None:
    """A ValueError naming the first header field that is missing, unknown or out of its
    range (the checks that need no model; :func:`decode` checks the rest)."""
    if not isinstance(header, dict):
        raise ValueError(f"the file is corrupted: its header is a JSON {type(header).__name__}")
    missing, unknown = HEADER_FIELDS - set(header), set(header) - HEADER_FIELDS - OPTIONAL_FIELDS
    if missing or unknown:
        what = [f"lacks {', '.join(sorted(missing))}"] if missing else []
        what += [f"has unknown fields {', '.join(sorted(unknown))}"] if unknown else []
        raise ValueError(f"the file is corrupted: its header {' and '.join(what)}")
    for name in ("model", "data_sha256", *OPTIONAL_FIELDS & set(header)):
        if not _is_sha256(header[name]):
            raise _corrupted(f"{name} {header[name]!r} is not a SHA-256 in hex")
    if not _is_int(header["latent_bits"], 1, 16):
        raise _corrupted(f"latent_bits {header['latent_bits']!r} is not an integer in [1, 16]")
    if header["count_window"] != COUNT_WINDOW:
        raise _corrupted(f"count_window {header['count_window']!r} is not {COUNT_WINDOW}")
    if not _is_int(header["initial_words"], 3, 2**16):
        raise _corrupted(f"initial_words {header['initial_words']!r} is out of range")
    if header["dtype"] not in DTYPES:
        raise _corrupted(f"dtype {header['dtype']!r} is not one of {', '.join(DTYPES)}")
    shape, count = header["shape"], header["count"]
    if not _is_int(count, 0, 2**62):
        raise _corrupted(f"count {count!r} is not a number of items")
    if not (
        isinstance(shape, list) and len(shape) >= 2 and all(_is_int(s, 0, 2**62) for s in shape)
    ):
        raise _corrupted(f"shape {shape!r} is not a shape of two or more sizes")
    if shape[0] != count:
        raise _corrupted(f"count {count} does not match its shape {shape}")
    versions = header["versions"]
    if not (isinstance(versions, dict) and all(isinstance(v, str) for v in versions.values())):
        raise _corrupted(f"versions {versions!r} are not names and versions")


def info(data: bytes) -> dict[str, Any]:
    """The checked header of a compressed file: ``count``, ``shape``, ``dtype``,
    ``model`` (the encoder's :func:`fingerprint`), ``latent_bits``, ``initial_bits``
    (the one-off overhead), ``payload_bytes`` and ``total_bytes``."""
    _, header, words = _unpack(data)
    return {
        **header,
        "initial_bits": 32 * header["initial_words"],
        "payload_bytes": 4 * len(words),
        "total_bytes": len(data),
    }


def encode(vae, data: Any, *, latent_bits: int = LATENT_BITS, **side: Any) -> bytes:
    """Compress ``data`` losslessly with ``vae`` by bits-back coding: the bytes of a file.

    Args:
        vae: a trained VAE that supports ``"lossless"`` (a :class:`pyvae.VAE` or a
            :class:`pyvae.ConditionalVAE`) on the CPU with a standard normal or mixture
            (``"mog"``, ``"vamp"``) prior and a Bernoulli, DiscretizedLogistic,
            BetaBinomial, Poisson or NegativeBinomial likelihood.
        data: items (N, ...) of ``vae.input_shape`` (or any shape with as many values per
            item), a tensor, a NumPy array or a dataset, with values in the likelihood's
            support; N = 0 is allowed.
        latent_bits: each latent dimension is cut into 2**latent_bits buckets (1..16).
        side: a ConditionalVAE's context ``c=...`` (one per item), if not in ``data``'s
            targets; it is not coded (:func:`decode` needs it again).
    Returns:
        The file: a header (format version, model fingerprint, count, shape, dtype, data
        hash) and the ANS stack, about the negative ELBO in bits per item plus
        :func:`info`'s ``initial_bits`` once. :func:`decode` gives ``data`` back exactly.
    """
    vae.require(LOSSLESS, instead=_INSTEAD)
    if check_int("latent_bits", latent_bits) > 16:
        raise ValueError(f"latent_bits must be an integer in [1, 16], got {latent_bits!r}")
    _check_parts(vae)
    x, items = _items(vae, data)
    side = _side(vae, data, len(items), side)
    codec = _BitsBack(vae, latent_bits, COUNT_WINDOW)  # a mixture prior's buckets: ~1 s
    words = math.ceil(vae.z_dim * latent_bits / 32) + 2  # enough for the first pop
    coder = _constriction().stream.stack.AnsCoder(_initial_words(words))
    with _reproducible(vae):
        for i, item in enumerate(items):
            codec.push(coder, item, _item_side(side, i))
    header = {
        "model": fingerprint(vae),
        "count": len(x),
        "shape": list(x.shape),
        "dtype": str(x.dtype).removeprefix("torch."),
        "data_sha256": _data_digest(items, list(x.shape), str(x.dtype).removeprefix("torch.")),
        "latent_bits": latent_bits,
        "count_window": COUNT_WINDOW,
        "initial_words": words,
        "versions": _versions(),
    }
    if side:
        header["side_sha256"] = _side_digest(side)
    return _pack(header, coder.get_compressed().astype("<u4").tobytes())


def decode(vae, data: bytes, **side: Any) -> torch.Tensor:
    """The data :func:`encode` compressed into ``data``, exactly: a tensor of the
    original shape and dtype. ``vae`` must be the VAE that encoded it (same config and
    tensors); another model, or a truncated or corrupted file, is a ``ValueError``.
    ``side``: a ConditionalVAE's context ``c=...`` of each item, as given to
    :func:`encode` (checked against the hash the file records)."""
    vae.require(LOSSLESS, instead=_INSTEAD)
    version, header, words = _unpack(data)
    if header["model"] != fingerprint(vae):
        raise ValueError(
            "this file was compressed with another model (fingerprint "
            f"{header['model'][:12]}..., this VAE has {fingerprint(vae)[:12]}...): "
            "decode it with the VAE that encoded it"
        )
    count, shape = header["count"], header["shape"]
    if math.prod(shape[1:]) != math.prod(vae.input_shape):
        raise _corrupted(
            f"shape {shape} does not hold items of this VAE's input_shape={vae.input_shape}"
        )
    words_needed = math.ceil(vae.z_dim * header["latent_bits"] / 32) + 2
    if header["initial_words"] != words_needed:
        raise _corrupted(f"initial_words {header['initial_words']} is not {words_needed}")
    side = _side(vae, None, count, side)
    if header.get("side_sha256") != (_side_digest(side) if side else None):
        raise ValueError(
            f"the {vae.side_input} given is not the one this file was encoded with: decode "
            f"with the same {vae.side_input}=... as encode"
        )
    codec = _BitsBack(vae, header["latent_bits"], header["count_window"])
    coder = _constriction().stream.stack.AnsCoder(words)
    try:
        with _reproducible(vae):
            items = []
            for i in reversed(range(count)):
                if coder.is_empty():  # each item ends with a push: never empty in between
                    raise ValueError(
                        f"the file is corrupted: it holds fewer items than its header's "
                        f"count {count}"
                    )
                items.append(codec.pop(coder, _item_side(side, i)))
        items.reverse()
        x = torch.stack(items) if items else torch.zeros(0, *vae.input_shape, dtype=torch.int64)
        left = coder.get_compressed()
        same = np.array_equal(left, _initial_words(header["initial_words"]))
        same = same and _data_digest(x, shape, header["dtype"], version) == header["data_sha256"]
    except KeyError:  # a latent outside its posterior window: the probabilities differ
        same = False
    if not same:
        raise ValueError(
            "decoding did not reproduce the data (its hash does not match): the file's "
            "header was altered (its count, shape or dtype), or this machine computes the "
            "model's probabilities differently from the one that encoded it (encoded with "
            f"{header['versions']}, decoded with {_versions()}; or another CPU)"
        )
    return x.reshape(shape).to(getattr(torch, header["dtype"]))

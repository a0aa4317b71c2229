"""Anomaly and out-of-distribution detection: data a trained VAE explains badly is unusual.

Scores are per item, **higher = more anomalous**:

- ``"elbo"``: the negative ELBO, -E_q[log p(x|z) + log p(z) - log q(z|x)];
- ``"log_likelihood"``: the negative importance-sampled log p(x) (tighter, slower);
- ``"reconstruction"``: the negative reconstruction probability of An & Cho (2015),
  -E_q[log p(x|z)], averaged over ``num_samples`` draws z ~ q(z|x);
- ``"latent"``: the negative prior density of the code, -log p(E_q[z|x]);
- ``"likelihood_ratio"``: -[log p_θ(x) - log p_θ0(x)] (Ren et al. 2019), with θ0 a
  ``background=`` VAE trained on inputs with random pixels (:func:`perturb`);
- ``"complexity"``: -log p_θ(x) - L(x) (Serrà et al. 2020), with L(x) the code length of x
  under a general-purpose ``compressor=`` (:class:`Compressor`), both in nats.

A likelihood favours simple inputs (few ink pixels, flat backgrounds) whatever their
class; the last two scores subtract a generic model's view of that simplicity.
:class:`TypicalityTest` asks instead whether a *batch* of items is typical (Nalisnick et
al. 2019). :class:`Detector` fits a threshold on normal data (a quantile, or a target
false-positive rate) and flags new data. :func:`auroc` and :func:`average_precision` use
scikit-learn (``pip install 'pyvae[metrics]'``).
"""

from __future__ import annotations

import bz2
import io
import lzma
import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from . import data as _data
from .capabilities import ANOMALY_LATENT, EVALUATE, LOG_LIKELIHOOD
from .checks import check_int, check_number
from .evaluate import elbo_terms

__all__ = [
    "SCORES",
    "COMPRESSORS",
    "score",
    "perturb",
    "Compressor",
    "Detector",
    "TypicalityTest",
    "auroc",
    "average_precision",
]

SCORES = (
    "elbo",
    "log_likelihood",
    "reconstruction",
    "latent",
    "likelihood_ratio",
    "complexity",
)
#: The general-purpose compressors of :class:`Compressor`: three of Python's standard
#: library and PNG (needs Pillow, ``pip install pillow``).
COMPRESSORS = ("png", "zlib", "bz2", "lzma")
LN2 = math.log(2)


def _check_method(method: str) -> None:
    if method not in SCORES:
        raise ValueError(f"unknown score {method!r}; valid scores: {', '.join(SCORES)}")


def _check_false_positive_rate(rate: float) -> None:
    if not 0 < rate < 1:
        raise ValueError(f"false_positive_rate must be in (0, 1), got {rate!r}")


def _check_side_models(method: str, background: Any, compressor: Any) -> None:
    """A score's background model or compressor: given where it is needed, only there."""
    if method == "likelihood_ratio" and background is None:
        raise ValueError(
            "the 'likelihood_ratio' score needs background=...: a VAE of the same kind "
            "trained on perturbed inputs, e.g. fit(background, anomaly.perturb(train, 0.2))"
        )
    if method == "complexity" and compressor is None:
        raise ValueError(
            "the 'complexity' score needs compressor=...: anomaly.Compressor('png') or one "
            f"of the names {', '.join(COMPRESSORS)}"
        )
    if background is not None and method != "likelihood_ratio":
        raise ValueError(f"background= is for the 'likelihood_ratio' score, not {method!r}")
    if compressor is not None and method != "complexity":
        raise ValueError(f"compressor= is for the 'complexity' score, not {method!r}")


@torch.no_grad()
def score(
    vae,
    data: Any,
    method: str = "elbo",
    num_samples: int | None = None,
    *,
    background: Any = None,
    compressor: Compressor | str | Callable[[Any], torch.Tensor] | None = None,
    **side: Any,
) -> torch.Tensor:
    """Anomaly scores of each item of ``data`` (shape ``(N,)``, higher = more unusual).

    ``num_samples``: draws of z per item (default 10; 1000 for the scores built on the
    importance-sampled log-likelihood: ``"log_likelihood"``, ``"likelihood_ratio"``,
    ``"complexity"``). ``background``: the VAE θ0 of ``"likelihood_ratio"``, scored with
    the same ``num_samples``. ``compressor``: the code length L(x) of ``"complexity"``, a
    :class:`Compressor`, one of :data:`COMPRESSORS` or a callable ``data -> (N,)`` code
    lengths in **bits**. ``side``: a variant's side information by name (e.g. ``c=...``),
    if not in ``data``'s targets. ``"latent"`` needs a VAE that supports
    ``"anomaly.latent"`` (:mod:`pyvae.capabilities`). All scores are in nats.
    """
    _check_method(method)
    _check_side_models(method, background, compressor)
    if method == "latent":
        vae.require(ANOMALY_LATENT, instead="use the 'elbo' or 'log_likelihood' score")
    elif method in ("log_likelihood", "likelihood_ratio", "complexity"):
        vae.require(LOG_LIKELIHOOD, instead="use the 'elbo' score")
    else:
        vae.require(EVALUATE, instead="use the 'log_likelihood' score")
    if background is not None:
        if not callable(getattr(background, "require", None)):
            raise TypeError(f"background must be a VAE, got {type(background).__name__}")
        background.require(LOG_LIKELIHOOD, instead="use a plain VAE as the background")
        if tuple(background.input_shape) != tuple(vae.input_shape):
            raise ValueError(
                f"the background models items of shape {tuple(background.input_shape)}, the "
                f"VAE items of shape {tuple(vae.input_shape)}: train the background on the "
                "same kind of data, e.g. fit(background, anomaly.perturb(train, 0.2))"
            )
    if isinstance(compressor, str):
        compressor = Compressor(compressor)
    elif compressor is not None and not callable(compressor):
        raise TypeError(f"compressor must be a Compressor or a callable, got {compressor!r}")
    if num_samples is None:
        num_samples = 1000 if method in ("log_likelihood", "likelihood_ratio", "complexity") else 10
    if method == "latent":
        z = vae.encode(data, **side).mean
        return -vae.p_z().log_prob(z)
    if method in ("elbo", "reconstruction"):
        terms = elbo_terms(vae, data, num_samples=num_samples, **side)
        return -terms["elbo"] if method == "elbo" else -terms["reconstruction"]
    nll = -vae.log_likelihood(data, num_samples=num_samples, **side)
    if method == "likelihood_ratio":
        return nll + background.log_likelihood(data, num_samples=num_samples, **side)
    if method == "complexity":
        return nll - torch.as_tensor(compressor(data), dtype=nll.dtype).to(nll.device) * LN2
    return nll


# --------------------------------------------------------------------------- perturbation
PERTURB_SUPPORTS = ("auto", "binary", "8bit", "unit")


def _support(x: torch.Tensor, support: str) -> str:
    if support not in PERTURB_SUPPORTS:
        raise ValueError(f"support must be one of {list(PERTURB_SUPPORTS)}, got {support!r}")
    if support != "auto":
        return support
    if len(x) and bool(((x == 0) | (x == 1)).all()):
        return "binary"
    if not x.is_floating_point() or (len(x) and float(x.max()) > 1):
        return "8bit"
    return "unit"


def perturb(data: Any, rate: float, seed: int | None = None, support: str = "auto") -> torch.Tensor:
    """``data`` with each value replaced, with probability ``rate``, by a uniform random
    value of the data's support: the inputs of the background model θ0 of the likelihood
    ratio (Ren et al. 2019 use rates 0.1-0.3), trained with plain ``fit``.

    Args:
        data: tensor, NumPy array or dataset (its transform applied), shape ``(N, ...)``.
        rate: the share of values replaced, in [0, 1].
        seed: seeds the draws (default: torch's global generator).
        support: ``"binary"`` (random 0 or 1), ``"8bit"`` (random integers 0-255),
            ``"unit"`` (uniform in [0, 1)) or ``"auto"``: binary if the data holds only 0
            and 1, 8-bit if it is integral or above 1, else unit.

    Returns:
        a new tensor of ``data``'s shape and dtype.
    """
    rate = check_number("rate", rate, at_least=0)
    if rate > 1:
        raise ValueError(f"rate must be in [0, 1] (a share of the values), got {rate!r}")
    if seed is not None:
        seed = check_int("seed", seed, minimum=0)
    x = _data.as_tensor(data)
    kind = _support(x, support)
    g = torch.Generator(device=x.device)
    g.manual_seed(seed) if seed is not None else g.seed()
    replace = torch.rand(x.shape, generator=g, device=x.device) < rate
    if kind == "unit":
        noise = torch.rand(x.shape, generator=g, device=x.device)
    else:
        high = 2 if kind == "binary" else 256
        noise = torch.randint(0, high, x.shape, generator=g, device=x.device)
    return torch.where(replace, noise.to(x.dtype), x)


# --------------------------------------------------------------------------- compressors
def _images(data: Any) -> tuple[np.ndarray, bool]:
    """Items as uint8 arrays ``(N, H, W)`` or ``(N, H, W, C)`` (vectors as ``(N, 1, D)``)
    and whether they are binary."""
    x = _data.as_tensor(data).detach().cpu()
    if len(x) == 0:
        raise ValueError("the data to compress is empty")
    binary = bool(((x == 0) | (x == 1)).all())
    # Integral floats above 1 are 8-bit values already (data.load(..., values="uint8")).
    grey_floats = x.is_floating_point() and bool((x == x.round()).all()) and float(x.max()) > 1
    if x.is_floating_point() and not (binary or grey_floats):
        if float(x.min()) < 0 or float(x.max()) > 1:
            raise ValueError(
                "compressors take images with values 0/1, integers 0-255 or floats in "
                f"[0, 1]; got floats in [{float(x.min()):g}, {float(x.max()):g}]"
            )
        x = torch.round(x * 255)
    elif not binary and (int(x.min()) < 0 or int(x.max()) > 255):
        raise ValueError(
            f"compressors take 8-bit images (0-255); got integers in [{int(x.min())}, "
            f"{int(x.max())}]"
        )
    x = x.to(torch.uint8)
    if x.dim() == 4:  # (N, C, H, W)
        x = x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)
    elif x.dim() != 3:
        x = x.reshape(len(x), 1, -1)
    return x.contiguous().numpy(), binary


class Compressor:
    """Code length of each item under a general-purpose lossless compressor, in bits: the
    L(x) of the input-complexity score (Serrà et al. 2020).

    Each item is compressed on its own: 8-bit images as bytes (integers 0-255, as integer
    or float dtype; other floats in [0, 1] are rounded to 0-255 first), binary images as
    packed bits (one bit per value; PNG's 1-bit mode). The lengths include the
    compressor's fixed header, a constant that changes no ranking.

    Args:
        name: one of :data:`COMPRESSORS`: ``"png"`` (Pillow), ``"zlib"``, ``"bz2"``,
            ``"lzma"``.
        level: the compression level (zlib, bz2 and PNG: 1-9; lzma's preset: 0-9).

    >>> anomaly.Compressor("png")(images)          # (N,) float64 bits
    """

    def __init__(self, name: str = "png", level: int = 9):
        if name not in COMPRESSORS:
            raise ValueError(f"unknown compressor {name!r}; choose from {', '.join(COMPRESSORS)}")
        self.level = check_int("level", level, minimum=0 if name == "lzma" else 1)
        if self.level > 9:
            raise ValueError(f"level must be at most 9, got {level!r}")
        if name == "png":
            try:
                import PIL.Image  # noqa: F401
            except ImportError as e:
                raise ImportError(
                    "the PNG compressor needs Pillow: pip install pillow (or use 'zlib')"
                ) from e
        self.name = name

    def __repr__(self) -> str:
        return f"Compressor({self.name!r}, level={self.level})"

    def compress(self, image: np.ndarray, binary: bool) -> bytes:
        """The compressed bytes of one uint8 image ``(H, W)`` or ``(H, W, C)``."""
        if self.name == "png":
            from PIL import Image

            picture = Image.fromarray(image.astype(bool) if binary else image)
            out = io.BytesIO()
            picture.save(out, format="PNG", compress_level=self.level)
            return out.getvalue()
        raw = np.packbits(image.reshape(-1)).tobytes() if binary else image.tobytes()
        if self.name == "lzma":
            return lzma.compress(raw, preset=self.level)
        return (zlib if self.name == "zlib" else bz2).compress(raw, self.level)

    def __call__(self, data: Any) -> torch.Tensor:
        """Code lengths of the items of ``data`` ``(N, ...)`` in bits, shape ``(N,)``."""
        images, binary = _images(data)
        sizes = [8 * len(self.compress(image, binary)) for image in images]
        return torch.tensor(sizes, dtype=torch.float64)


# --------------------------------------------------------------------------- Detector
class Detector:
    """Flags items whose anomaly score exceeds a threshold fitted on normal data.

    Args:
        vae: a trained VAE.
        method: one of :data:`SCORES`.
        false_positive_rate: the share of normal data that may be flagged; the threshold
            is the ``1 - false_positive_rate`` quantile of the normal scores.
        num_samples: draws of z per item for the score.
        background: the background VAE of ``"likelihood_ratio"``.
        compressor: the compressor of ``"complexity"`` (see :func:`score`).

    >>> detector = Detector(vae, "elbo", false_positive_rate=0.05).fit(normal_val)
    >>> flags = detector.predict(new_data)          # bool tensor (N,)
    """

    def __init__(
        self,
        vae,
        method: str = "elbo",
        false_positive_rate: float = 0.05,
        num_samples: int | None = None,
        background: Any = None,
        compressor: Compressor | str | Callable[[Any], torch.Tensor] | None = None,
    ):
        _check_method(method)
        _check_side_models(method, background, compressor)
        _check_false_positive_rate(false_positive_rate)
        self.vae, self.method, self.num_samples = vae, method, num_samples
        self.background, self.compressor = background, compressor
        self.false_positive_rate = false_positive_rate
        self.threshold: float | None = None

    def score(self, data: Any) -> torch.Tensor:
        """Anomaly scores of ``data`` (higher = more unusual)."""
        return score(
            self.vae,
            data,
            self.method,
            self.num_samples,
            background=self.background,
            compressor=self.compressor,
        )

    def fit(self, normal: Any) -> Detector:
        """Set the threshold from normal (not anomalous) data; returns self."""
        scores = self.score(normal)
        self.threshold = float(torch.quantile(scores.double(), 1 - self.false_positive_rate))
        return self

    def predict(self, data: Any) -> torch.Tensor:
        """True for each item whose score exceeds the fitted threshold."""
        if self.threshold is None:
            raise RuntimeError("call fit(normal_data) before predict")
        return self.score(data) > self.threshold


# --------------------------------------------------------------------------- typicality
class TypicalityTest:
    """Is a **batch** of M items typical of the training distribution? (Nalisnick et al.
    2019, "Detecting out-of-distribution inputs to deep generative models using
    typicality".)

    The statistic of a batch x_1..x_M is ``|mean_i(-log p(x_i)) - Ĥ|`` (nats), with Ĥ the
    entropy estimate: the mean negative log-likelihood of in-distribution data. A batch
    of the model's most likely items (blank images, say) is as atypical as one of
    unlikely items. The threshold is the ``1 - false_positive_rate`` quantile of the
    statistic over ``bootstraps`` batches of M items drawn with replacement from normal
    held-out data. It judges batches, not items: one score per batch.

    Args:
        vae: a trained VAE (its importance-sampled ``log_likelihood``).
        batch_size: M, the items per tested batch.
        false_positive_rate: the share of in-distribution batches flagged.
        bootstraps: the number of bootstrap batches.
        num_samples: importance samples per item for log p(x).
        seed: seeds the bootstrap draws.

    >>> test = TypicalityTest(vae, batch_size=10).fit(normal_val)
    >>> test.score(batches)        # (B,) statistics of B batches (B, 10, *input_shape)
    >>> test.p_values(batches)     # (B,) bootstrap p-values; test.predict(batches): bool
    """

    def __init__(
        self,
        vae,
        batch_size: int,
        false_positive_rate: float = 0.01,
        bootstraps: int = 1000,
        num_samples: int = 1000,
        seed: int = 0,
    ):
        vae.require(LOG_LIKELIHOOD, instead="use a VAE with an importance-sampled log p(x)")
        self.batch_size = check_int("batch_size", batch_size)
        _check_false_positive_rate(false_positive_rate)
        self.bootstraps = check_int("bootstraps", bootstraps)
        self.num_samples = check_int("num_samples", num_samples)
        self.seed = check_int("seed", seed, minimum=0)
        self.vae, self.false_positive_rate = vae, false_positive_rate
        self.entropy: float | None = None
        self.threshold: float | None = None
        self.bootstrap_statistics: torch.Tensor | None = None

    def nll(self, data: Any) -> torch.Tensor:
        """-log p(x) of each item of ``data``, nats, shape ``(N,)``."""
        return score(self.vae, data, "log_likelihood", self.num_samples)

    def fit(self, normal: Any, train: Any = None) -> TypicalityTest:
        """Fit Ĥ on ``train`` if given (Nalisnick et al. use the training set), else on
        ``normal``, and the bootstrap threshold on ``normal`` (held-out in-distribution
        data); returns self."""
        nll = self.nll(normal)
        return self.fit_nll(nll, None if train is None else self.nll(train))

    def fit_nll(self, nll: torch.Tensor, train_nll: torch.Tensor | None = None) -> TypicalityTest:
        """:meth:`fit` from per-item negative log-likelihoods ``(N,)`` already computed."""
        nll = torch.as_tensor(nll, dtype=torch.float64).flatten()
        if len(nll) == 0:
            raise ValueError("fit needs normal data: got an empty set")
        ref = nll if train_nll is None else torch.as_tensor(train_nll, dtype=torch.float64)
        self.entropy = float(ref.mean())
        g = torch.Generator().manual_seed(self.seed)
        draws = torch.randint(0, len(nll), (self.bootstraps, self.batch_size), generator=g)
        stats = (nll[draws].mean(1) - self.entropy).abs()
        self.bootstrap_statistics = stats.sort().values
        self.threshold = float(torch.quantile(stats, 1 - self.false_positive_rate))
        return self

    def _batches_nll(self, batches: Any) -> torch.Tensor:
        if isinstance(batches, torch.Tensor) and batches.dim() >= 2:
            b, m = batches.shape[:2]
            if m != self.batch_size:
                raise ValueError(self._size_error(m))
            return self.nll(batches.reshape(b * m, *batches.shape[2:])).reshape(b, m)
        if not isinstance(batches, Sequence) or isinstance(batches, str):
            raise TypeError(
                "batches must be a tensor (B, M, *input_shape) or a sequence of B batches, "
                f"got {type(batches).__name__}"
            )
        sizes = [len(b) for b in batches]
        if bad := [s for s in sizes if s != self.batch_size]:
            raise ValueError(self._size_error(bad[0]))
        return torch.stack([self.nll(b) for b in batches])

    def _size_error(self, m: int) -> str:
        return (
            f"a batch of {m} items, but this test was fitted for batches of "
            f"{self.batch_size}: regroup the data or build TypicalityTest(batch_size={m})"
        )

    def score_nll(self, nll: torch.Tensor) -> torch.Tensor:
        """The statistic of each batch from its items' -log p(x), ``(B, M)`` -> ``(B,)``."""
        if self.entropy is None:
            raise RuntimeError("call fit(normal_data) before scoring batches")
        nll = torch.as_tensor(nll, dtype=torch.float64)
        if nll.dim() != 2 or nll.shape[1] != self.batch_size:
            raise ValueError(self._size_error(nll.shape[-1] if nll.dim() else 1))
        return (nll.mean(1) - self.entropy).abs()

    def score(self, batches: Any) -> torch.Tensor:
        """The statistic ``|mean(-log p) - Ĥ|`` of each batch, nats, shape ``(B,)``:
        ``batches`` a tensor ``(B, M, *input_shape)`` or a sequence of B batches of M."""
        if self.entropy is None:
            raise RuntimeError("call fit(normal_data) before scoring batches")
        return self.score_nll(self._batches_nll(batches))

    def p_values(self, batches: Any) -> torch.Tensor:
        """Bootstrap p-value of each batch, ``(1 + #{bootstrap >= statistic}) / (1 +
        bootstraps)``, shape ``(B,)``: small = atypical."""
        return self.p_values_of(self.score(batches))

    def p_values_of(self, statistics: torch.Tensor) -> torch.Tensor:
        """p-values of statistics ``(B,)`` already computed by :meth:`score`."""
        boot = self.bootstrap_statistics
        if boot is None:
            raise RuntimeError("call fit(normal_data) before computing p-values")
        above = len(boot) - torch.searchsorted(boot, statistics.double(), right=False)
        return (1 + above).double() / (1 + len(boot))

    def predict(self, batches: Any) -> torch.Tensor:
        """True for each batch whose statistic exceeds the bootstrap threshold."""
        return self.score(batches) > self.threshold


# --------------------------------------------------------------------------- metrics
def _metric(name: str, labels: Any, scores: Any) -> float:
    try:
        from sklearn import metrics
    except ImportError as e:
        raise ImportError(
            f"{name} needs scikit-learn: pip install 'pyvae[metrics]' (or scikit-learn)"
        ) from e
    labels = torch.as_tensor(labels).cpu().numpy()
    scores = torch.as_tensor(scores).detach().cpu().numpy()
    if labels.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(
            f"labels (shape {labels.shape}) and scores (shape {scores.shape}) must be 1-D "
            "and of one length"
        )
    if set(labels.tolist()) != {0, 1}:
        raise ValueError("labels must contain both classes: 0 (normal) and 1 (anomaly)")
    return float(getattr(metrics, name)(labels, scores))


def auroc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (1 = anomaly)."""
    return _metric("roc_auc_score", labels, scores)


def average_precision(labels: Any, scores: Any) -> float:
    """Average precision of ``scores`` for binary ``labels`` (1 = anomaly)."""
    return _metric("average_precision_score", labels, scores)

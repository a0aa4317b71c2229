"""Likelihoods p(x|z): from the decoder's raw output to a distribution over the data.

The contract. A likelihood is a :class:`Likelihood` (a :class:`~pyro.nn.PyroModule`) with

- ``params_per_value`` (int, k): how many decoder outputs it needs per data value. A
  decoder for data of shape ``(C, *rest)`` returns a tensor of shape
  ``(*batch, k * C, *rest)``: the k parameters are stacked along the first data axis
  (channels for images, features for vectors). :meth:`Likelihood.split` undoes that.
- ``support``: a ``torch.distributions.constraints`` constraint the data must satisfy.
- ``forward(raw, event_dim)``: returns a Pyro distribution whose event shape is the data
  shape (``event_dim = len(data shape)``).
- optionally ``encoder_input(x)``: how data is fed to the encoder (default: as float).

:meth:`Likelihood.validate` checks data against ``support`` before any training, with an
error that says what to do. A likelihood of your own is a few lines::

    class StudentT(likelihoods.Likelihood):
        params_per_value = 2
        support = constraints.real

        def forward(self, raw, event_dim):
            loc, raw_scale = self.split(raw, event_dim)
            scale = F.softplus(raw_scale) + 1e-3
            return dist.StudentT(4.0, loc, scale).to_event(event_dim)
"""

from __future__ import annotations

import math
from typing import ClassVar

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule, PyroParam
from torch.distributions import constraints
from torch.distributions.utils import _sum_rightmost, broadcast_all

from .checks import check_finite, check_int, check_number
from .config import Configurable

_EMPTY = torch.Size()

__all__ = [
    "Likelihood",
    "Bernoulli",
    "IndependentBernoulli",
    "ContinuousBernoulli",
    "Gaussian",
    "Laplace",
    "Poisson",
    "NegativeBinomial",
    "DiscretizedLogistic",
    "DiscretizedLogisticDistribution",
    "BetaBinomial",
]


def _describe(x: torch.Tensor) -> str:
    """A short summary of a tensor's values for error messages."""
    xf = x.detach().float()
    finite = xf[torch.isfinite(xf)]
    if finite.numel() == 0:
        return "no finite values"
    return f"min {finite.min().item():.4g}, max {finite.max().item():.4g}, dtype {x.dtype}"


def _above_one_hint(x: torch.Tensor) -> str:
    """Advice for data above 1 given to a likelihood on [0, 1]: 8-bit pixels, counts or
    real values."""
    integral = not x.is_floating_point() or bool((x == x.round()).all())
    if integral and float(x.min()) >= 0:
        if x.dtype == torch.uint8 or (x.dim() >= 3 and float(x.max()) <= 255):
            return (
                "Values above 1 look like 8-bit pixels: scale them to [0, 1] (divide by "
                "255, or data.load(..., values='unit')). "
            )
        return (
            "Integers above 1 look like counts: use likelihoods.Poisson() or "
            "NegativeBinomial() (likelihood='poisson' or 'negative_binomial'). "
        )
    return "For real values use likelihoods.Gaussian() or Laplace() (likelihood='gaussian'). "


class Likelihood(Configurable, PyroModule):
    """Base class of likelihoods p(x|z); see the module docstring for the contract.

    ``capturable``: as for :class:`pyvae.priors.Prior`, declared by each class itself.
    """

    capturable: ClassVar[bool] = False

    params_per_value: int = 1
    support: constraints.Constraint = constraints.real
    #: What to do when data falls outside ``support``; shown in the error message.
    support_hint: str = ""

    def __init__(self):
        super().__init__()

    def forward(self, raw: torch.Tensor, event_dim: int) -> dist.TorchDistribution:
        """Return p(x|z) from the decoder output ``raw`` (shape ``(*batch, k*C, *rest)``)."""
        raise NotImplementedError

    def split(self, raw: torch.Tensor, event_dim: int) -> tuple[torch.Tensor, ...]:
        """Split ``raw`` into ``params_per_value`` tensors of the data's shape."""
        return raw.chunk(self.params_per_value, dim=raw.dim() - event_dim)

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's view of data ``x`` (default: ``x`` as a float tensor)."""
        return x if x.is_floating_point() else x.float()

    def validate(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` if ``x`` has NaN/inf or lies outside this likelihood's support."""
        check_finite(x, f"{type(self).__name__} likelihood: the data")
        ok = self.support.check(x.float() if not x.is_floating_point() else x)
        if not bool(ok.all()):
            bad = x[~ok].flatten()[:5].tolist()
            hint = self.support_hint
            if float(x.max()) > 1 and not bool(self.support.check(torch.tensor(2.0))):
                hint = _above_one_hint(x) + hint
            raise ValueError(
                f"{type(self).__name__} likelihood: {int((~ok).sum())} data values lie outside "
                f"its support ({self.support}); first offending values {bad}, data "
                f"{_describe(x)}. {hint}".rstrip()
            )

    def extra_repr(self) -> str:
        return f"params_per_value={self.params_per_value}"


class Bernoulli(Likelihood):
    """Bernoulli with logits from the decoder, for binary data in {0, 1}.

    Grey-level data (values strictly between 0 and 1, e.g. MNIST scaled to [0, 1]) is
    refused by default, because the Bernoulli log-probability of a grey level is not a
    likelihood. Either binarize the data, use :class:`ContinuousBernoulli` (a proper
    density on [0, 1]), or pass ``soft_targets=True`` to score grey levels with binary
    cross-entropy as many VAE papers do (then the ELBO is not a bound on a probability).
    """

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    def __init__(self, soft_targets: bool = False):
        super().__init__()
        if not isinstance(soft_targets, bool):
            raise TypeError(f"soft_targets must be True or False, got {soft_targets!r}")
        self.soft_targets = soft_targets

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.unit_interval if self.soft_targets else constraints.boolean

    support_hint = (
        "Bernoulli needs binary data in {0, 1}. For grey levels in [0, 1], binarize the data "
        "(e.g. data.load(..., binarize='dynamic', 'static' or 'threshold')), "
        "use likelihoods.ContinuousBernoulli() (likelihood='continuous_bernoulli'), or "
        "likelihoods.Bernoulli(soft_targets=True) to score them with binary cross-entropy."
    )

    def forward(self, raw: torch.Tensor, event_dim: int) -> dist.TorchDistribution:
        fn = dist.Bernoulli(logits=raw, validate_args=False if self.soft_targets else None)
        return IndependentBernoulli(fn, event_dim) if event_dim else fn

    def extra_repr(self) -> str:
        return f"soft_targets={self.soft_targets}"


class IndependentBernoulli(dist.Independent):
    """``Bernoulli(logits=...).to_event(n)`` whose ``log_prob`` sums the binary
    cross-entropy over the event dims before negating it: the same numbers as
    ``Independent``'s, with one pass fewer over the data-sized tensor (in training and
    in importance sampling, where that tensor is the largest)."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        base = self.base_dist
        if base._validate_args:
            base._validate_sample(value)
        logits, value = broadcast_all(base.logits, value)
        bce = F.binary_cross_entropy_with_logits(logits, value, reduction="none")
        return -_sum_rightmost(bce, self.reinterpreted_batch_ndims)


class ContinuousBernoulli(Likelihood):
    """Continuous Bernoulli (Loaiza-Ganem & Cunningham 2019) for data in [0, 1]."""

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    support = constraints.unit_interval
    support_hint = "ContinuousBernoulli needs data in [0, 1]: scale images by 1/255."

    def forward(self, raw: torch.Tensor, event_dim: int) -> dist.TorchDistribution:
        return dist.ContinuousBernoulli(logits=raw).to_event(event_dim)


class Gaussian(Likelihood):
    """Gaussian with the decoder giving the mean, for real-valued data.

    ``scale`` is a positive float (fixed), ``"learned"`` (one global learnable scale) or
    ``"decoder"`` (a scale per data value from the decoder: ``params_per_value == 2``).
    Learned scales are kept above ``min_scale`` so they cannot collapse to 0.
    """

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    family = dist.Normal
    support = constraints.real
    support_hint = "The data must be finite real numbers."
    scale_options = ("learned", "decoder")

    def __init__(self, scale: float | str = 1.0, min_scale: float = 1e-3):
        super().__init__()
        if isinstance(scale, str):
            if scale not in self.scale_options:
                raise ValueError(
                    f"scale must be a positive float or one of {list(self.scale_options)}, "
                    f"got {scale!r}"
                )
        else:
            fixed = scale.item() if isinstance(scale, torch.Tensor) and scale.dim() == 0 else scale
            check_number("a fixed scale", fixed, above=0)  # a 0-dim tensor is kept as given
        self.scale_mode = scale if isinstance(scale, str) else "fixed"
        self.min_scale = check_number("min_scale", min_scale, above=0)
        self.params_per_value = 2 if scale == "decoder" else 1
        if scale == "learned":
            init = max(1.0, 2 * self.min_scale)
            self.scale = PyroParam(torch.tensor(init), constraints.greater_than(self.min_scale))
        elif self.scale_mode == "fixed":
            self.register_buffer("fixed_scale", torch.tensor(float(scale)))

    def forward(self, raw: torch.Tensor, event_dim: int) -> dist.TorchDistribution:
        if self.scale_mode == "decoder":
            loc, raw_scale = self.split(raw, event_dim)
            scale = F.softplus(raw_scale) + self.min_scale
        else:
            loc = raw
            scale = self.scale if self.scale_mode == "learned" else self.fixed_scale
            scale = scale.expand(loc.shape)
        return self.family(loc, scale).to_event(event_dim)

    def extra_repr(self) -> str:
        return f"scale={self.scale_mode}"


class Laplace(Gaussian):
    """Laplace with the decoder giving the location; ``scale`` options as :class:`Gaussian`."""

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    family = dist.Laplace


class Poisson(Likelihood):
    """Poisson with rate ``softplus(decoder output)``, for counts (non-negative integers).

    The encoder sees ``log1p(x)``, the usual variance-stabilising view of counts.
    """

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    support = constraints.nonnegative_integer
    support_hint = "Poisson needs non-negative integer counts; for real data use Gaussian."

    def forward(self, raw: torch.Tensor, event_dim: int) -> dist.TorchDistribution:
        return dist.Poisson(F.softplus(raw) + 1e-8).to_event(event_dim)

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log1p(x.float())


class NegativeBinomial(Poisson):
    """Negative binomial for over-dispersed counts: mean ``softplus(decoder output)`` and a
    learned global ``total_count`` r (inverse dispersion; variance = mean + mean^2 / r)."""

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    support_hint = "NegativeBinomial needs non-negative integer counts."

    def __init__(self, total_count: float = 10.0):
        super().__init__()
        total_count = check_number("total_count", total_count, above=0)
        self.total_count = PyroParam(torch.tensor(total_count), constraints.positive)

    def forward(self, raw: torch.Tensor, event_dim: int) -> dist.TorchDistribution:
        mean = F.softplus(raw) + 1e-8
        r = self.total_count
        return dist.NegativeBinomial(total_count=r, logits=mean.log() - r.log()).to_event(event_dim)


class DiscretizedLogisticDistribution(dist.TorchDistribution):
    """A logistic distribution discretized to the integers 0..255 (8-bit pixel values).

    ``loc`` is on the [-1, 1] scale that maps 0..255 linearly; ``log_scale`` likewise.
    The end bins 0 and 255 take the tails, so the probabilities sum to exactly 1.
    """

    arg_constraints = {"loc": constraints.real, "log_scale": constraints.real}
    support = constraints.integer_interval(0, 255)
    has_rsample = False

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor, validate_args=None):
        self.loc, self.log_scale = torch.broadcast_tensors(loc, log_scale)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(DiscretizedLogisticDistribution, _instance)
        new.loc = self.loc.expand(batch_shape)
        new.log_scale = self.log_scale.expand(batch_shape)
        super(DiscretizedLogisticDistribution, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        """The (undiscretized) location on the 0..255 scale, clipped to the support."""
        return ((self.loc + 1) * 127.5).clamp(0, 255)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        # Bin edges straight from the integer values, so neighbouring bins share them exactly.
        inv_s = torch.exp(-self.log_scale)
        plus = inv_s * ((value + 0.5) / 127.5 - 1.0 - self.loc)
        minus = inv_s * ((value - 0.5) / 127.5 - 1.0 - self.loc)
        log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the bin at 0
        log_one_minus_cdf_minus = -F.softplus(minus)  # log(1 - sigmoid(minus)): the bin at 255
        cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
        mid = inv_s * (value / 127.5 - 1.0 - self.loc)
        log_pdf_mid = mid - self.log_scale - 2.0 * F.softplus(mid)
        # Where the bin mass underflows, use the density at the bin centre times its width.
        log_mid_bin = torch.where(
            cdf_delta > 1e-5,
            torch.log(cdf_delta.clamp_min(1e-12)),
            log_pdf_mid - math.log(127.5),
        )
        return torch.where(
            value < 0.5,
            log_cdf_plus,
            torch.where(value > 254.5, log_one_minus_cdf_minus, log_mid_bin),
        )

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        """P(X <= value) for integer values: the logistic CDF at ``value + 1/2`` (1 from 255 on)."""
        plus = torch.exp(-self.log_scale) * ((value + 0.5) / 127.5 - 1.0 - self.loc)
        return torch.where(value < 254.5, torch.sigmoid(plus), torch.ones_like(plus))

    def sample(self, sample_shape: torch.Size = _EMPTY) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
            u = u.clamp(1e-5, 1 - 1e-5)
            y = self.loc.expand(shape) + self.log_scale.exp().expand(shape) * (
                torch.log(u) - torch.log1p(-u)
            )
            return ((y + 1) * 127.5).round().clamp(0, 255)


class DiscretizedLogistic(Likelihood):
    """Discretized logistic for 8-bit data (integers 0..255), as in PixelCNN++ (one
    component): the decoder gives a location and a log-scale per value.

    The encoder sees ``x / 127.5 - 1`` (values in [-1, 1]).
    """

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    params_per_value = 2
    support = constraints.integer_interval(0, 255)
    support_hint = (
        "DiscretizedLogistic needs 8-bit integer values 0..255 (do not divide images by 255); "
        "for data in [0, 1] use ContinuousBernoulli or Gaussian."
    )

    def __init__(self, min_log_scale: float = -7.0):
        super().__init__()
        self.min_log_scale = check_number("min_log_scale", min_log_scale)

    def forward(self, raw: torch.Tensor, event_dim: int) -> dist.TorchDistribution:
        loc, log_scale = self.split(raw, event_dim)
        log_scale = log_scale.clamp_min(self.min_log_scale)
        return DiscretizedLogisticDistribution(loc, log_scale).to_event(event_dim)

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() / 127.5 - 1.0


class BetaBinomial(Likelihood):
    """Beta-binomial for 8-bit data (integers 0..n, ``n = total_count``, 255 by default):
    the decoder gives two values per data value, mapped to the concentrations
    ``alpha = softplus(raw_alpha) + min_concentration`` and likewise ``beta``.

    ``p(x) = C(n, x) B(x + alpha, n - x + beta) / B(alpha, beta)`` for x in 0..n, a Beta
    mixture of binomials: mean ``n alpha / (alpha + beta)``, variance above the binomial's
    for the same mean. The encoder sees ``x / n`` (values in [0, 1]).
    """

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    params_per_value = 2

    def __init__(self, total_count: int = 255, min_concentration: float = 1e-3):
        super().__init__()
        self.total_count = check_int("total_count", total_count)
        if not (math.isfinite(float(min_concentration)) and float(min_concentration) > 0):
            raise ValueError(f"min_concentration must be finite and > 0, got {min_concentration!r}")
        self.min_concentration = float(min_concentration)
        # n as a tensor that follows .to(device): no host-to-device copy per step.
        self.register_buffer("_n", torch.tensor(float(self.total_count)), persistent=False)

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.integer_interval(0, self.total_count)

    @property
    def support_hint(self) -> str:  # type: ignore[override]
        n = self.total_count
        return (
            f"BetaBinomial needs integer values 0..{n} (for 8-bit images do not divide by "
            "255: data.load(..., values='uint8')); for data in [0, 1] use ContinuousBernoulli "
            "or Gaussian."
        )

    def concentrations(self, raw: torch.Tensor, event_dim: int) -> tuple[torch.Tensor, ...]:
        """``(alpha, beta)``, each of the data's shape, from the decoder output ``raw``."""
        raw_alpha, raw_beta = self.split(raw, event_dim)
        floor = self.min_concentration
        return F.softplus(raw_alpha) + floor, F.softplus(raw_beta) + floor

    def forward(self, raw: torch.Tensor, event_dim: int) -> dist.TorchDistribution:
        alpha, beta = self.concentrations(raw, event_dim)
        n = self._n.to(alpha.dtype)
        return dist.BetaBinomial(alpha, beta, n).to_event(event_dim)

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() / self.total_count

    def extra_repr(self) -> str:
        return f"total_count={self.total_count}, min_concentration={self.min_concentration}"


#: Names accepted by :meth:`pyvae.VAE.build` (``likelihood=...``), and the classes they make.
LIKELIHOODS: dict[str, type[Likelihood]] = {
    "bernoulli": Bernoulli,
    "continuous_bernoulli": ContinuousBernoulli,
    "gaussian": Gaussian,
    "laplace": Laplace,
    "poisson": Poisson,
    "negative_binomial": NegativeBinomial,
    "discretized_logistic": DiscretizedLogistic,
    "beta_binomial": BetaBinomial,
}
__all__ += ["LIKELIHOODS"]  # listed here, beside its table

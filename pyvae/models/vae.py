"""The VAE: a Pyro model p(z) p(x|z) and a Pyro guide q(z|x) built from swappable parts."""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO
from pyro.nn import PyroModule, pyro_method
from torch import nn

from .. import likelihoods as _likelihoods
from .. import nets as _nets
from .. import priors as _priors
from .._registry import lookup
from ..capabilities import (
    CUDA_GRAPH,
    DESCRIPTIONS,
    EVALUATE,
    FAST_PATH,
    FEATURES,
    MODEL_DEPENDENT,
    POSTERIOR_INFERENCE,
    CapabilityError,
    check_feature,
)
from ..checks import check_finite, check_int, finite_or_raise, short_part_errors
from ..config import class_name, part_spec
from ..data import RandomOrder, batches, distinct_values, side_batches, source, targets
from ..likelihoods import LIKELIHOODS
from ..nets import NETS
from . import estimator
from ._shared import build_prior, check_batch, kl_weighted

__all__ = ["VAE"]

_instance_ids = itertools.count()


def _forget_params(prefix: str) -> None:
    """Drop a garbage-collected VAE's entries from Pyro's global parameter store."""
    store = pyro.get_param_store()
    for name in [n for n in store.keys() if n.startswith(prefix + ".")]:
        del store[name]


class VAE(PyroModule):
    """A variational autoencoder as a Pyro model and guide.

    - :meth:`model`: ``z ~ prior``, ``x ~ likelihood(decoder(z))`` in a plate ``"data"``.
    - :meth:`guide`: ``z ~ Normal(*encoder(x))`` in the same plate.

    Args:
        encoder: ``x -> (loc, scale)`` of q(z|x) (see :mod:`pyvae.nets`).
        decoder: ``z -> raw`` parameters sized for ``likelihood``.
        prior: a :class:`pyvae.priors.Prior`.
        likelihood: a :class:`pyvae.likelihoods.Likelihood`.
        input_shape: the shape of one data item; taken from ``encoder.input_shape`` if
            not given.

    Each VAE owns its parameters: they live in its modules under a name unique to the
    instance, so two VAEs in one process never share or overwrite parameters, and a VAE
    built again starts from fresh ones.

    Variants (in their own modules) subclass it: a subclass with more parts lists them in
    :attr:`parts` (constructor arguments of the same names) and returns its other
    plain-data constructor arguments from :attr:`options`, so :func:`pyvae.load`
    rebuilds it. A variant whose model and guide take per-item side information (labels,
    a context) names their keyword argument in :attr:`side_input`; :func:`pyvae.fit` and
    the methods that take data then pass it, read from the data's targets, and a variant
    with its own training objective returns it from :meth:`default_elbo`.

    What a class supports is declared in :attr:`capabilities` (names from
    :mod:`pyvae.capabilities`); consumers ask :meth:`supports` or call :meth:`require`.
    A subclass that overrides :meth:`model` or :meth:`guide` without declaring its own
    ``capabilities`` loses those that depend on them
    (:data:`pyvae.capabilities.MODEL_DEPENDENT`).
    """

    #: The features this class supports (see :mod:`pyvae.capabilities`): all of them.
    capabilities: ClassVar[frozenset[str]] = FEATURES

    #: Why this class lacks a feature, by feature name, for :meth:`require`'s message.
    unsupported: ClassVar[Mapping[str, str]] = {}

    #: The parts :attr:`config` records and :func:`pyvae.load` rebuilds, by the names of
    #: the constructor arguments they are passed as.
    parts: ClassVar[tuple[str, ...]] = ("encoder", "decoder", "prior", "likelihood")

    #: The keyword argument through which :meth:`model` and :meth:`guide` take each item's
    #: side information (``"y"`` for labels, ``"c"`` for a context), or None for a VAE of
    #: x alone. ``fit``, ``encode``, ``elbo``, ... read it from the data's targets
    #: (:func:`pyvae.data.targets`) unless it is passed by that name.
    side_input: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if "capabilities" in cls.__dict__:  # declared: checked, kept as declared
            cls.capabilities = frozenset(check_feature(f) for f in cls.capabilities)
            return
        own = [name for name in ("model", "guide") if name in cls.__dict__]
        lost = cls.capabilities & MODEL_DEPENDENT
        if own and lost:
            cls.capabilities = cls.capabilities - MODEL_DEPENDENT
            why = (
                f"it defines its own {' and '.join(own)} and does not declare its "
                "capabilities (list those that still hold in the class attribute "
                "capabilities)"
            )
            cls.unsupported = {**cls.unsupported, **dict.fromkeys(lost, why)}

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: _priors.Prior,
        likelihood: _likelihoods.Likelihood,
        input_shape: Sequence[int] | None = None,
    ):
        name = f"vae{next(_instance_ids)}"
        super().__init__(name=name)
        for part, value, cls in [
            ("encoder", encoder, nn.Module),
            ("decoder", decoder, nn.Module),
            ("prior", prior, _priors.Prior),
            ("likelihood", likelihood, _likelihoods.Likelihood),
        ]:
            if not isinstance(value, cls):
                raise TypeError(
                    f"{part} must be a {cls.__module__}.{cls.__qualname__}, got "
                    f"{type(value).__name__}"
                )
        if input_shape is None:
            input_shape = getattr(encoder, "input_shape", None)
            if input_shape is None:
                raise ValueError(
                    "cannot tell the data shape: pass input_shape=... or give the encoder "
                    "an input_shape attribute"
                )
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.likelihood = likelihood
        self.input_shape = tuple(int(s) for s in input_shape)
        self.z_dim = prior.z_dim
        weakref.finalize(self, _forget_params, name)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        input_shape: Sequence[int],
        z_dim: int = 16,
        prior: str | _priors.Prior = "normal",
        likelihood: str | _likelihoods.Likelihood = "bernoulli",
        net: str = "mlp",
        *,
        prior_kwargs: Mapping[str, Any] | None = None,
        likelihood_kwargs: Mapping[str, Any] | None = None,
        net_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> VAE:
        """Build a VAE (or a variant: ``cls``) from names (or instances) of its parts.

        Args:
            input_shape: shape of one data item, e.g. ``(1, 28, 28)`` or ``(50,)``.
            z_dim: latent dimension (>= 1).
            prior: one of ``PRIORS`` (``normal``, ``mog``, ``vamp``, ``flow``) or a Prior.
            likelihood: one of ``LIKELIHOODS`` or a Likelihood.
            net: one of ``NETS`` (``mlp``, ``conv``).
            prior_kwargs, likelihood_kwargs, net_kwargs: extra arguments for the parts,
                e.g. ``prior_kwargs={"components": 50}``,
                ``likelihood_kwargs={"scale": "learned"}``, ``net_kwargs={"hidden": (256,)}``.
            kwargs: further constructor arguments of a variant, e.g. ``num_classes=10``
                (their networks' sizes come from :meth:`net_shapes`).
        """
        z_dim = check_int("z_dim", z_dim)
        for part, value, base in (
            ("prior", prior, _priors.Prior),
            ("likelihood", likelihood, _likelihoods.Likelihood),
        ):
            if isinstance(value, type):
                raise TypeError(
                    f"{part} must be a name or an instance, got the class {value.__name__}: "
                    f"write {value.__name__}(...)"
                )
            if not isinstance(value, (str, base)):
                raise TypeError(f"{part} must be a name or a {base.__name__}, got {value!r}")
        try:
            input_shape = tuple(int(s) for s in input_shape)
        except TypeError:
            raise TypeError(f"input_shape must be a tuple of ints, got {input_shape!r}") from None
        if not input_shape or min(input_shape) < 1:
            raise ValueError(f"input_shape must be non-empty and positive, got {input_shape}")
        net_kwargs = dict(net_kwargs or {})
        if isinstance(likelihood, str):
            likelihood = lookup("likelihood", LIKELIHOODS, likelihood)(**(likelihood_kwargs or {}))
        if isinstance(net, str):
            enc_cls, dec_cls = lookup("net", NETS, net)
        else:
            raise TypeError(f"net must be one of {sorted(NETS)}; for your own nets use VAE(...)")
        out_shape = _nets.decoder_output_shape(input_shape, likelihood.params_per_value)
        encoder_shape, decoder_dim = cls.net_shapes(input_shape, z_dim, net, **kwargs)
        encoder = enc_cls(encoder_shape, z_dim, **net_kwargs)
        decoder = dec_cls(decoder_dim, out_shape, **net_kwargs)
        prior = build_prior(prior, z_dim, input_shape, prior_kwargs)
        return cls(encoder, decoder, prior, likelihood, input_shape=input_shape, **kwargs)

    @classmethod
    def net_shapes(
        cls, input_shape: tuple[int, ...], z_dim: int, net: str, **kwargs: Any
    ) -> tuple[tuple[int, ...], int]:
        """The encoder's input shape and the decoder's input size that :meth:`build` gives
        the networks: ``(input_shape, z_dim)`` here; variants that feed the networks more
        (a label, a context) override it. ``kwargs`` are the variant's constructor
        arguments given to :meth:`build`."""
        return input_shape, z_dim

    @property
    def options(self) -> dict[str, Any]:
        """Constructor arguments other than the parts and ``input_shape``, as plain data
        (none for the plain VAE; variants with options override this)."""
        return {}

    @property
    def config(self) -> dict[str, Any]:
        """How to rebuild this VAE: its class, the input shape, its :attr:`options` and,
        for each of its :attr:`parts`, the part's class and constructor arguments (None
        for a part whose arguments were not recorded, e.g. a plain ``nn.Module``; see
        :class:`pyvae.config.Configurable`)."""
        return {
            "class": class_name(type(self)),
            "input_shape": list(self.input_shape),
            "options": self.options,
            **{part: part_spec(getattr(self, part)) for part in self.parts},
        }

    # ------------------------------------------------------------------ capabilities
    def supports(self, feature: str) -> bool:
        """Whether this VAE supports ``feature`` (a name from :mod:`pyvae.capabilities`):
        its class declares it in :attr:`capabilities`, and for ``cuda_graph`` every one of
        its :attr:`parts` declares ``capturable = True`` on its own class. An unknown
        name is a ``ValueError``."""
        return self._why_not(check_feature(feature)) is None

    def require(self, feature: str, instead: str | None = None) -> None:
        """Raise a :class:`~pyvae.capabilities.CapabilityError` naming the class, the
        feature, why, and ``instead`` (what to use instead), unless this VAE
        :meth:`supports` ``feature``."""
        why = self._why_not(check_feature(feature))
        if why is None:
            return
        message = f"{type(self).__name__} does not support {DESCRIPTIONS[feature]}"
        message += f": {why}" if why else ""
        raise CapabilityError(message + (f"; {instead}" if instead else ""))

    def _why_not(self, feature: str) -> str | None:
        """None if this VAE supports ``feature``, else why not ("" if not known)."""
        if feature not in type(self).capabilities:
            return type(self).unsupported.get(feature, "")
        if feature == CUDA_GRAPH:
            fast = self._why_not(FAST_PATH)
            if fast is not None:
                return f"a CUDA graph replays the fast path, which it does not support ({fast})"
            parts = {part: getattr(self, part) for part in self.parts}
            eager = [
                f"{part} ({type(module).__name__})"
                for part, module in parts.items()
                if not vars(type(module)).get("capturable", False)
            ]
            if eager:
                return (
                    f"its parts {', '.join(eager)} do not declare capturable = True on their "
                    "own class (a CUDA graph replays only what was recorded)"
                )
        return None

    # ------------------------------------------------------------------ model and guide
    @property
    def device(self) -> torch.device:
        """The device of the VAE's parameters."""
        return next(itertools.chain(self.parameters(), self.buffers())).device

    def _plate(self, batch: int, num_data: int | None, device: torch.device):
        return pyro.plate(
            "data", num_data or batch, subsample=torch.arange(batch, device=device), dim=-1
        )

    def _model_input(
        self, x: torch.Tensor | None, batch_size: int | None
    ) -> tuple[torch.Tensor | None, int, torch.device]:
        """The model's ``x`` (as floats, or None to generate), batch size and device."""
        if x is None:
            if batch_size is None:
                raise ValueError("model(None) generates data and needs batch_size=...")
            return None, batch_size, self.device
        check_batch(x)
        return (x if x.is_floating_point() else x.float()), x.shape[0], x.device

    def p_z(self) -> dist.TorchDistribution:
        """The prior p(z): ``prior(encoder)`` for a prior that declares ``needs_encoder``
        (the VampPrior), else ``prior()``. So the model reads the encoder, and its trace
        lists the encoder's parameters, only where p(z) depends on them."""
        return self.prior(self.encoder) if self.prior.needs_encoder else self.prior()

    @pyro_method
    def model(
        self,
        x: torch.Tensor | None = None,
        *,
        num_data: int | None = None,
        kl_weight: float = 1.0,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """The generative model p(z) p(x|z).

        Args:
            x: observed minibatch, shape ``(B, *input_shape)``; ``None`` to generate
                ``batch_size`` new items.
            num_data: size of the full dataset; the plate scales the minibatch's
                log-probabilities by ``num_data / B`` (default: no scaling).
            kl_weight: weight beta of the z sites (KL term); 0 switches it off.
        Returns:
            x (observed or sampled), shape ``(B, *input_shape)``.
        """
        x, batch, device = self._model_input(x, batch_size)
        prior = self.p_z()
        with self._plate(batch, num_data, device):
            with kl_weighted(kl_weight):
                z = pyro.sample("z", prior)
            px = self.likelihood(self.decoder(z), len(self.input_shape))
            return pyro.sample("x", px, obs=x)

    @pyro_method
    def guide(
        self,
        x: torch.Tensor,
        *,
        num_data: int | None = None,
        kl_weight: float = 1.0,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """The variational posterior q(z|x) = Normal(encoder(x)), diagonal.

        Takes the same arguments as :meth:`model`. Returns z, shape ``(B, z_dim)``.
        """
        if x is None:
            raise ValueError("the guide needs data x (it is q(z|x))")
        check_batch(x)
        loc, scale = self.encoder(self.likelihood.encoder_input(x))
        with self._plate(x.shape[0], num_data, x.device):
            with kl_weighted(kl_weight):
                return pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def default_elbo(self, torch_optimizer: bool = True) -> Any:
        """The objective :func:`pyvae.fit` trains with when given none: ``Trace_ELBO``'s
        estimator, computed without recording traces (:class:`pyvae.objectives.DirectELBO`)
        when ``fit`` steps a torch optimizer (``torch_optimizer``) and this VAE supports
        ``"fast_path"``, else a fresh ``pyro.infer.Trace_ELBO()``. Variants
        with another objective override it."""
        from ..objectives import DirectELBO

        if torch_optimizer and self.supports(FAST_PATH):
            return DirectELBO(self)
        return Trace_ELBO()

    # ------------------------------------------------------------------ side information
    def checked_data(
        self, data: Any, validate_support: bool = True, **side: Any
    ) -> tuple[torch.Tensor, Any, dict[str, torch.Tensor]]:
        """``data`` checked whole (:meth:`check_data`) as ``(x, per-batch transform, side)``:
        ``side`` holds the keyword arguments :meth:`model` and :meth:`guide` take per item,
        each of shape ``(N, ...)``: ``{}`` for a VAE of x alone; for a variant, its
        :attr:`side_input` given by name (``y=...``) or read from the data's targets,
        checked by :meth:`check_side`."""
        x, transform = source(data)
        self.check_data(x, transform, validate_support=validate_support)
        name = self.side_input
        if set(side) - {name}:
            takes = f"takes only {name}=..." if name else "takes no side information"
            raise TypeError(f"{type(self).__name__} {takes}; got {', '.join(sorted(side))}=...")
        if name is None:
            return x, transform, {}
        value = side[name] if side.get(name) is not None else targets(data)
        return x, transform, {name: self.check_side(value, len(x))}

    def check_side(self, value: Any, n: int) -> torch.Tensor:
        """The side information of all ``n`` items (None if the data has none) as a tensor
        ``(n, ...)``, checked; variants with a :attr:`side_input` extend it to check and
        convert it into the form their :meth:`model` takes."""
        name = self.side_input
        if value is None:
            raise ValueError(
                f"{type(self).__name__} needs {name} for each item: pass {name}=..., a pair "
                f"(x, {name}) or a dataset with targets (data.ArrayDataset(x, targets={name}))"
            )
        value = torch.as_tensor(value)
        if value.dim() == 0 or len(value) != n:
            raise ValueError(f"{n} items but {name} has shape {tuple(value.shape)}: one per item")
        return value

    def epoch_order(self, n: int, side: Mapping[str, torch.Tensor], batch_size: int) -> RandomOrder:
        """How :func:`pyvae.fit` orders the ``n`` items (with side information ``side``, as
        :meth:`checked_data` returns it) into batches each epoch: a fresh random order
        (:class:`pyvae.data.RandomOrder`). Variants that need stratified batches (the
        semi-supervised VAE) override it."""
        return RandomOrder(n)

    # ------------------------------------------------------------------ using a trained VAE
    def _batches(self, data: Any, batch_size: int, validate_support: bool = False, **side: Any):
        """Check ``data`` whole, then yield ``(x, side)`` per batch on this VAE's device:
        the transformed items and the keyword arguments of their side information."""
        check_int("batch_size", batch_size)
        x, transform, side = self.checked_data(data, validate_support, **side)
        xs = batches(x, transform, batch_size, self.device)
        return zip(xs, side_batches(side, batch_size, self.device), strict=False)  # {} endless

    def _q_params(self, x: torch.Tensor, **side: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The (loc, scale) of q(z|x) for a batch (variants add their side information)."""
        return self.encoder(self.likelihood.encoder_input(x))

    def _decoder_input(self, z: torch.Tensor, **side: Any) -> torch.Tensor:
        """What the decoder sees for codes ``z`` ``(B, z_dim)``: ``z`` here; variants join
        their side information (one per code)."""
        return z

    def _decode_side(self, x: torch.Tensor, side: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """The keyword arguments of :meth:`decode` for codes of the items ``x`` with side
        information ``side`` (as :meth:`_batches` yields them): none for a VAE of x alone;
        variants give their context, or the labels."""
        return {}

    @torch.no_grad()
    @short_part_errors
    def encode(
        self,
        x: Any,
        batch_size: int = 1024,
        *,
        refine_steps: int = 0,
        refine_lr: float = 5e-2,
        **side: Any,
    ) -> dist.TorchDistribution:
        """q(z|x) for each item of ``x``: a Normal with batch shape ``(N,)``, event ``(z_dim,)``.

        ``refine_steps > 0``: semi-amortized inference (Kim et al. 2018) at test time:
        each item's q is then refined from the encoder's by that many SVI steps with
        learning rate ``refine_lr`` on its own loc and scale
        (:func:`pyvae.posterior.refine`; needs ``"posterior_inference"``), a tighter ELBO
        for the same family. ``side``: a variant's side information by name (e.g.
        ``c=...``), if not in ``x``'s targets."""
        from ..posterior import check_refinement, refine

        if refine_steps:
            check_refinement(self, refine_steps, refine_lr, prefix="refine_")
        locs, scales = [], []
        for xb, sb in self._batches(x, batch_size, validate_support=bool(refine_steps), **side):
            loc, scale = self._q_params(xb, **sb)
            loc = finite_or_raise(loc, "the posterior mean")
            scale = positive_or_raise(finite_or_raise(scale, "the posterior scale"))
            if refine_steps:
                q = refine(self, xb, refine_steps, refine_lr, start=dist.Normal(loc, scale), **sb)
                loc, scale = q.base_dist.loc, q.base_dist.scale
            locs.append(loc)
            scales.append(scale)
        return dist.Normal(torch.cat(locs), torch.cat(scales)).to_event(1)

    def refuse_refinement(self, refine_steps: int) -> None:
        """For a subclass's own ``encode``: refuse ``refine_steps`` other than 0 unless the
        class supports ``"posterior_inference"`` (its error names the class)."""
        if refine_steps:
            self.require(POSTERIOR_INFERENCE, instead="call encode without refine_steps")

    @torch.no_grad()
    @short_part_errors
    def decode(self, z: torch.Tensor) -> dist.TorchDistribution:
        """p(x|z) for latent codes ``z`` of shape ``(*batch, z_dim)``; event shape = data shape."""
        z = torch.as_tensor(z, dtype=torch.get_default_dtype(), device=self.device)
        if z.shape[-1:] != (self.z_dim,):
            raise ValueError(f"z must have shape (..., {self.z_dim}), got {tuple(z.shape)}")
        bad = int((~torch.isfinite(z)).any(-1).sum())
        if bad:
            raise ValueError(
                f"z holds NaN or infinite values in {bad} code(s); decode finite codes"
            )
        return self.likelihood(self.decoder(z), len(self.input_shape))

    @torch.no_grad()
    @short_part_errors
    def reconstruct(
        self, x: Any, mean: bool = True, batch_size: int = 1024, **side: Any
    ) -> torch.Tensor:
        """Decode the posterior mean of each item: E[x|z] (or a draw if ``mean=False``)."""
        out = []
        for xb, sb in self._batches(x, batch_size, **side):  # batch by batch: bounded memory
            loc, _ = self._q_params(xb, **sb)
            px = self.decode(finite_or_raise(loc, "the posterior mean"), **sb)
            out.append(px.mean if mean else px.sample())
        return torch.cat(out)

    @torch.no_grad()
    @short_part_errors
    def sample(self, n: int, mean: bool = True, temperature: float = 1.0) -> torch.Tensor:
        """Generate ``n`` items: ``z ~ prior``, then E[x|z] (or a draw if ``mean=False``).

        ``temperature`` scales the prior's spread (see :func:`pyvae.priors.tempered`)."""
        check_int("n", n)
        z = _priors.tempered(self.p_z(), temperature).sample((n,))
        px = self.decode(z)
        return px.mean if mean else px.sample()

    @torch.no_grad()
    @short_part_errors
    def elbo(
        self,
        x: Any,
        num_samples: int = 1,
        batch_size: int = 256,
        reduction: str = "mean",
        **side: Any,
    ) -> torch.Tensor:
        """The evidence lower bound in nats per example.

        ``E_q[log p(x|z) + log p(z) - log q(z|x)]`` estimated with ``num_samples`` draws
        of z per item (vectorised) by :meth:`bounds`, from Pyro traces of :meth:`guide`
        and :meth:`model`, so it holds for any prior and likelihood. ``reduction``:
        ``"mean"`` (a scalar, the dataset's ELBO per example), ``"sum"`` or ``"none"``
        (one value per item, shape ``(N,)``). ``side``: a variant's side information by
        name (e.g. ``c=...``, ``y=...``), if not in ``x``'s targets.
        """
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        bounds = estimator.per_item(self, x, num_samples, batch_size, **side)
        finite_or_raise(bounds.reconstruction, "the reconstruction term")
        out = bounds.reconstruction - finite_or_raise(bounds.kl, "the KL term")
        if reduction == "mean":
            return out.mean()
        return out.sum() if reduction == "sum" else out

    @torch.no_grad()
    @short_part_errors
    def log_likelihood(
        self,
        x: Any,
        num_samples: int = 1000,
        batch_size: int = 64,
        max_elements: int = estimator.MAX_ELEMENTS,
        **side: Any,
    ) -> torch.Tensor:
        """Importance-sampled log p(x) per item, in nats, shape ``(N,)``:
        ``logsumexp_s [log p(x, z_s) - log q(z_s|x)] - log S`` with S = ``num_samples``
        draws from q(z|x) (Burda et al. 2016), a stochastic lower bound that rises towards
        log p(x) as S grows (S = 1 is the ELBO). Draws are scored ``batch_size`` items at a
        time in chunks that keep decoder outputs under ``max_elements`` values
        (:func:`pyvae.models.estimator.estimate`), so S = 5000 fits in memory."""
        bounds = estimator.per_item(self, x, num_samples, batch_size, max_elements, **side)
        return finite_or_raise(bounds.log_likelihood, "the log-likelihood")

    @torch.no_grad()
    def bounds(
        self,
        x: torch.Tensor,
        num_samples: int = 1,
        max_elements: int = estimator.MAX_ELEMENTS,
        **side: Any,
    ) -> estimator.Bounds:
        """The ELBO's terms and the importance-sampled log p(x) of each item of the batch
        ``x`` ``(B, *input_shape)`` from ``num_samples`` draws, each ``(B,)``
        (:class:`pyvae.models.estimator.Bounds`): scored from Pyro traces of the guide and
        model, or from the parts where this VAE supports ``"fast_path"``
        (:func:`pyvae.models.estimator.scorer`). ``side``: the batch's side information.
        A variant whose sites do not all lie in the plate ``"data"`` overrides it."""
        self.require(EVALUATE, instead="override VAE.bounds for this model")
        chunk = estimator.chunk_size(self, len(x), num_samples, max_elements)
        return estimator.estimate(estimator.scorer(self, x, **side), num_samples, chunk)

    def save(self, path: str, overwrite: bool = False):
        """Save this VAE to ``path`` safely (see :func:`pyvae.io.save`)."""
        from ..io import save

        return save(self, path, overwrite=overwrite)

    # ------------------------------------------------------------------ checks
    def check_data(
        self, x: torch.Tensor, transform: Any = None, validate_support: bool = True
    ) -> None:
        """Raise a clear error if ``x`` (after the per-batch ``transform``, if any) does not
        fit this VAE: empty, wrong item shape, NaN/inf, outside the likelihood's support.

        An elementwise transform of 8-bit data (:class:`pyvae.data.Scale`,
        :class:`pyvae.data.DynamicBinarize`) is checked on the data's distinct values
        (:func:`pyvae.data.distinct_values`) instead of on a transformed copy of it all."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a tensor, got {type(x).__name__}")
        if x.dim() == 0 or len(x) == 0:
            raise ValueError("the data is empty: it needs at least one item")
        if transform is None:
            self._check_shape(x)
            check_finite(x)
            if validate_support:
                self.likelihood.validate(x)
            return
        sample = distinct_values(x) if getattr(transform, "elementwise", False) else None
        if sample is not None:  # an elementwise transform keeps the shape
            self._check_shape(x)
            try:
                return self.check_data(transform(sample), None, validate_support)
            except ValueError:  # refused: say it with the counts of the data, not the summary
                return self.check_data(
                    torch.cat(list(batches(x, transform, 65536))), None, validate_support
                )
        for chunk in batches(x, transform, 65536):
            self.check_data(chunk, None, validate_support)

    def _check_shape(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            hint = ""
            shape = self.input_shape
            if tuple(x.shape) == shape:
                hint = "; for a single item use x.unsqueeze(0)"
            elif len(shape) == 3 and tuple(x.shape[1:]) == (*shape[1:], shape[0]):
                hint = (
                    "; the items look channels-last (H, W, C): pass x.permute(0, 3, 1, 2) "
                    "(a NumPy array: x.transpose(0, 3, 1, 2))"
                )
            elif math.prod(x.shape[1:]) == math.prod(self.input_shape):
                shape = ", ".join(map(str, self.input_shape))
                hint = (
                    f"; reshape it with x.reshape(-1, {shape}) (for a Dataset: "
                    f"pyvae.data.as_tensor(dataset).reshape(-1, {shape}))"
                )
            raise ValueError(
                f"data items have shape {tuple(x.shape[1:])} (data shape {tuple(x.shape)}) "
                f"but this VAE was built for input_shape={self.input_shape}{hint}"
            )


def positive_or_raise(scale: torch.Tensor) -> torch.Tensor:
    """``scale``, or a ValueError if the encoder gave a scale <= 0 for some item."""
    bad = scale <= 0
    if bool(bad.any()):
        items = int(bad.reshape(len(bad), -1).any(1).sum())
        raise ValueError(
            f"the encoder returned a posterior scale <= 0 for {items} item(s): end its scale "
            "output with a softplus (and a small floor), as pyvae.nets' encoders do"
        )
    return scale

"""The semi-supervised VAE: Kingma et al. (2014)'s M2, with labels as a discrete latent y.

Generative story: ``y ~ Uniform(K classes)``, ``z ~ p(z)``, ``x ~ p(x | y, z)`` (the
decoder of a :class:`~pyvae.conditional.ConditionalVAE` whose context is ``y``). Guide:
``q(y | x)`` (a classifier) and ``q(z | x, y)``. A label is observed where it is known
and enumerated where it is not (:data:`pyvae.data.UNLABELLED`, -1): ``TraceEnum_ELBO``
sums the guide's ``y`` over the K classes exactly, so an unlabelled item contributes
``U(x) = sum_y q(y|x) [L(x, y) - log q(y|x)]`` and a labelled one ``L(x, y)`` (the ELBO of
log p(x, y)). Training adds ``alpha * log q(y|x)`` on the labelled items
(:class:`SemiSupervisedELBO`, the default objective of ``fit``), so the classifier also
learns from the labels directly; :meth:`SemiSupervisedVAE.predict` then labels new data.

A batch is split into its labelled and its unlabelled items, each with its own plate
(``"labelled"``: sites ``y_labelled`` (observed), ``z_labelled``, ``x_labelled``;
``"unlabelled"``: ``y_unlabelled`` (enumerated), ``z_unlabelled``, ``x_unlabelled``).
Splitting (rather than one plate with ``obs_mask``) enumerates y only for the items whose
label is unknown: the networks run K times on those and once on the others, and no masked
enumerated site has to be reasoned about.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from pyro.nn import pyro_method
from torch import nn

from .. import likelihoods as _likelihoods
from .. import priors as _priors
from .._registry import lookup
from ..capabilities import (
    ANOMALY_LATENT,
    CHECKPOINT,
    CLOSED_FORM_KL,
    CUDA_GRAPH,
    DISENTANGLEMENT,
    DISTRIBUTED,
    EVALUATE,
    FACTOR_VAE,
    FAST_PATH,
    LATENT_CODES,
    LOG_LIKELIHOOD,
    LOSSLESS,
    PLOTS,
    POSTERIOR_INFERENCE,
    STACKED,
    TC_DECOMPOSITION,
)
from ..checks import check_int, finite_or_raise
from ..data import UNLABELLED, LabelledBatches, RandomOrder, batches, source
from ..nets import CLASSIFIERS
from . import estimator
from ._shared import check_batch, kl_weighted
from .conditional import ConditionalVAE
from .vae import VAE

__all__ = ["SemiSupervisedVAE", "SemiSupervisedELBO"]


class SemiSupervisedVAE(ConditionalVAE):
    """Kingma et al. (2014)'s M2: a VAE with a discrete latent class y, observed where known.

    Args:
        encoder, decoder, prior, likelihood, input_shape: as for
            :class:`~pyvae.conditional.ConditionalVAE` with ``num_classes`` classes: the
            encoder sees x joined with one-hot y, the decoder ``[z, one-hot y]``.
        classifier: ``x -> logits`` ``(*batch, num_classes)`` of q(y|x) (e.g.
            :class:`pyvae.nets.MLPClassifier`).
        num_classes: the number K of classes (labels ``0..K-1``; -1 = unknown).
        alpha: weight of ``log q(y|x)`` per labelled item in the training objective,
            relative to the ELBO's per-item weight 1 (see :class:`SemiSupervisedELBO`).
            Kingma et al. weight the *mean* over labelled items by ``0.1 * N``, i.e.
            ``0.1 * N / N_labelled`` per item (50 for 100 labels among 50,000 items).
            On MNIST with 100 labels that weight let the decoder ignore y and the
            accuracy fall below a classifier trained on the labels alone; of 0.1, 1, 10,
            30 and 100 times ``N / N_labelled``, 100 did best on held-out labelled images
            (``benchmarks/semisupervised_mnist.py``). Choose it on validation labels.
        labelled_share: the share of each training batch given to labelled items
            (:meth:`epoch_order`: stratified batches, each part scaled by its own size, so
            the objective is unchanged, only how each step estimates it); 0: uniform batches.

    Labels come from the data's targets (``data.hide_labels`` makes semi-supervised data
    from a labelled dataset) or ``y=...``: one integer per item, -1 where unknown; data
    without targets is all unlabelled.
    """

    side_input = "y"
    parts = (*VAE.parts, "classifier")
    capabilities = frozenset({CHECKPOINT, LOG_LIKELIHOOD} | PLOTS)
    unsupported = {
        FAST_PATH: "its objective sums over the unknown labels (SemiSupervisedELBO)",
        CUDA_GRAPH: "its step is not the fast path (DirectELBO) that CUDA graphs replay",
        DISTRIBUTED: "its stratified batches scale the labelled and unlabelled items by "
        "their own counts in the batch, which splitting each batch between processes "
        "would change",
        LOSSLESS: "its model has the discrete latent y beside z, which the coder does not code",
        LATENT_CODES: "its q(z|x) is a mixture over the classes, and decoding a code needs "
        "the label",
        CLOSED_FORM_KL: "its q(z|x) is a mixture over the classes",
        ANOMALY_LATENT: "its latent is (y, z) and q(z|x) a mixture over the classes",
        DISENTANGLEMENT: "its latent is (y, z) and q(z|x) a mixture over the classes",
        STACKED: "its q(z|x) is a mixture over the classes, not a diagonal normal",
        TC_DECOMPOSITION: "its latent is (y, z), with y enumerated; the objective decomposes "
        "one continuous latent",
        FACTOR_VAE: "its latent is (y, z), with y enumerated; the discriminator sees one "
        "continuous latent",
        POSTERIOR_INFERENCE: "its latent is (y, z) with a discrete y, which NUTS and the "
        "Gaussian refinement cannot take",
        EVALUATE: "its sites lie in two plates, of the labelled and of the unlabelled items",
    }

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: _priors.Prior,
        likelihood: _likelihoods.Likelihood,
        classifier: nn.Module,
        input_shape: Sequence[int] | None = None,
        *,
        num_classes: int,
        alpha: float = 50.0,
        labelled_share: float = 0.25,
    ):
        super().__init__(encoder, decoder, prior, likelihood, input_shape, num_classes=num_classes)
        if not isinstance(classifier, nn.Module):
            got = type(classifier).__name__
            raise TypeError(f"classifier must be a torch.nn.Module, got {got}")
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
        if not (isinstance(labelled_share, (int, float)) and 0 <= labelled_share < 1):
            raise ValueError(f"labelled_share must be a number in [0, 1), got {labelled_share!r}")
        self.classifier = classifier
        self.alpha = float(alpha)
        self.labelled_share = float(labelled_share)

    @classmethod
    def build(
        cls,
        input_shape: Sequence[int],
        z_dim: int = 16,
        prior: str | _priors.Prior = "normal",
        likelihood: str | _likelihoods.Likelihood = "bernoulli",
        net: str = "mlp",
        *,
        num_classes: int,
        alpha: float = 50.0,
        labelled_share: float = 0.25,
        net_kwargs: Mapping[str, Any] | None = None,
        classifier_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> SemiSupervisedVAE:
        """Build M2 from names, like :meth:`pyvae.VAE.build`; the classifier is
        :data:`pyvae.nets.CLASSIFIERS` ``[net]`` with ``net_kwargs`` updated by
        ``classifier_kwargs``.

        >>> m2 = SemiSupervisedVAE.build((1, 28, 28), z_dim=50, num_classes=10)
        """
        check_int("num_classes", num_classes, 2)
        classifier = None
        if isinstance(net, str):  # else VAE.build says what net must be
            net_cls = lookup("net", CLASSIFIERS, net)
            options = {**(net_kwargs or {}), **(classifier_kwargs or {})}
            classifier = net_cls(tuple(input_shape), num_classes, **options)
        return super().build(
            input_shape,
            z_dim,
            prior,
            likelihood,
            net,
            net_kwargs=net_kwargs,
            num_classes=num_classes,
            alpha=alpha,
            labelled_share=labelled_share,
            classifier=classifier,
            **kwargs,
        )

    @property
    def options(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "alpha": self.alpha,
            "labelled_share": self.labelled_share,
        }

    def default_elbo(self, torch_optimizer: bool = True) -> SemiSupervisedELBO:
        """M2's training objective: :class:`SemiSupervisedELBO` with this VAE's ``alpha``."""
        return SemiSupervisedELBO(self)

    # ------------------------------------------------------------------ labels
    def check_side(self, value: Any, n: int) -> torch.Tensor:
        """The labels of all ``n`` items as int64 ``(n,)``, -1 where unknown (all, if the
        data has no labels)."""
        if value is None:
            return torch.full((n,), UNLABELLED)
        return self._check_labels(super(ConditionalVAE, self).check_side(value, n), True)

    def _labels(self, y: Any, batch: int, device: torch.device) -> torch.Tensor:
        if y is None:
            return torch.full((batch,), UNLABELLED, device=device)
        y = torch.as_tensor(y, device=device).long()
        if y.shape != (batch,):
            raise ValueError(f"y must hold one label per item, shape ({batch},); got {y.shape}")
        return y

    def _one_hot(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y, self.num_classes).to(torch.get_default_dtype())

    @staticmethod
    def _split(y: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """``("labelled", indices)`` and ``("unlabelled", indices)`` of a batch, if any."""
        known = y != UNLABELLED
        parts = [("labelled", known.nonzero().squeeze(1))]
        parts.append(("unlabelled", (~known).nonzero().squeeze(1)))
        return [(part, index) for part, index in parts if len(index)]

    @staticmethod
    def _scale(part: str, size: int, batch: int, num_data: int | None, num_labelled: int | None):
        """The minibatch scale of a part of ``size`` items in a batch of ``batch``: the
        dataset's size over the batch's (``num_data / batch``) for a uniform batch; with
        ``num_labelled`` (stratified batches, :class:`pyvae.data.LabelledBatches`) each
        part's own, ``num_labelled / size`` or ``(num_data - num_labelled) / size``."""
        if num_labelled is None:
            return (num_data or batch) / batch
        if num_data is None:
            raise ValueError("num_labelled needs num_data (the size of the whole dataset)")
        return (num_labelled if part == "labelled" else num_data - num_labelled) / size

    def epoch_order(self, n: int, side: Mapping[str, torch.Tensor], batch_size: int) -> RandomOrder:
        """Stratified batches (:class:`pyvae.data.LabelledBatches`) with
        ``max(1, round(labelled_share * batch_size))`` labelled items each, when the data
        has both labelled and unlabelled items; else a random order."""
        labels = side["y"]
        known = int((labels != UNLABELLED).sum())
        share = max(1, round(self.labelled_share * batch_size))
        if self.labelled_share == 0 or known in (0, n) or share >= batch_size:
            return RandomOrder(n)
        return LabelledBatches(labels, batch_size, share)

    # ------------------------------------------------------------------ model and guide
    @pyro_method
    def model(
        self,
        x: torch.Tensor | None = None,
        y: Any = None,
        *,
        num_data: int | None = None,
        num_labelled: int | None = None,
        kl_weight: float = 1.0,
        batch_size: int | None = None,
    ) -> None:
        """p(y) p(z) p(x | y, z), with p(y) uniform over the classes.

        Args:
            x: observed minibatch ``(B, *input_shape)``; None to generate ``batch_size``
                items (with the labels ``y``, or labels drawn from p(y)).
            y: labels ``(B,)``, -1 where unknown; None: all unknown.
            num_data: size of the full dataset: every site is scaled by ``num_data / B``.
            num_labelled: the number of labelled items in the dataset, for stratified
                batches: the labelled sites are scaled by ``num_labelled / B_labelled``
                and the unlabelled by ``(num_data - num_labelled) / B_unlabelled``.
            kl_weight: weight of the z sites (0 switches them off).
        """
        x, batch, device = self._model_input(x, batch_size)
        y = self._labels(y, batch, device)
        p_y = dist.Categorical(logits=torch.zeros(self.num_classes, device=device))
        p_z = self.p_z()
        for part, index in self._split(y):
            weight = self._scale(part, len(index), batch, num_data, num_labelled)
            with poutine.scale(scale=weight), pyro.plate(part, len(index), dim=-1):
                obs = y[index] if part == "labelled" else None
                label = pyro.sample(f"y_{part}", p_y, obs=obs)
                with kl_weighted(kl_weight):
                    z = pyro.sample(f"z_{part}", p_z)
                px = self._px(z, self._one_hot(label))
                pyro.sample(f"x_{part}", px, obs=None if x is None else x[index])

    @pyro_method
    def guide(
        self,
        x: torch.Tensor,
        y: Any = None,
        *,
        num_data: int | None = None,
        num_labelled: int | None = None,
        kl_weight: float = 1.0,
        batch_size: int | None = None,
    ) -> None:
        """q(y | x) q(z | x, y): y is given where known; elsewhere ``y_unlabelled ~
        Categorical(classifier(x))``, marked for parallel enumeration (``TraceEnum_ELBO``
        sums over the K classes); z ~ Normal(encoder(x joined with one-hot y))."""
        if x is None:
            raise ValueError("the guide needs data x (it is q(y, z | x))")
        check_batch(x)
        batch = x.shape[0]
        y = self._labels(y, batch, x.device)
        inputs = self.likelihood.encoder_input(x)
        for part, index in self._split(y):
            weight = self._scale(part, len(index), batch, num_data, num_labelled)
            with poutine.scale(scale=weight), pyro.plate(part, len(index), dim=-1):
                if part == "labelled":
                    label = y[index]
                else:
                    q_y = dist.Categorical(logits=self.classifier(inputs[index]))
                    label = pyro.sample("y_unlabelled", q_y, infer={"enumerate": "parallel"})
                loc, scale = self.encoder(self._join(inputs[index], self._one_hot(label)))
                with kl_weighted(kl_weight):
                    pyro.sample(f"z_{part}", dist.Normal(loc, scale).to_event(1))

    @pyro_method
    def classification_loss(
        self,
        x: torch.Tensor,
        y: Any = None,
        *,
        num_data: int | None = None,
        num_labelled: int | None = None,
        **_: Any,
    ) -> torch.Tensor:
        """``-sum log q(y|x)`` over the labelled items of the batch, scaled like the
        ELBO's labelled part (``num_data / B``, or ``num_labelled / B_labelled`` for
        stratified batches; nats; 0 when no label is known)."""
        batch = x.shape[0]
        y = self._labels(y, batch, x.device)
        known = (y != UNLABELLED).nonzero().squeeze(1)
        if len(known) == 0:
            return x.new_zeros((), dtype=torch.get_default_dtype())
        logits = self.classifier(self.likelihood.encoder_input(x[known]))
        nll = F.cross_entropy(logits, y[known], reduction="sum")
        return nll * self._scale("labelled", len(known), batch, num_data, num_labelled)

    # ------------------------------------------------------------------ classification
    @torch.no_grad()
    def predict_proba(self, x: Any, batch_size: int = 1024) -> torch.Tensor:
        """q(y|x): the class probabilities of each item, shape ``(N, num_classes)``."""
        check_int("batch_size", batch_size)
        data, transform = source(x)
        self.check_data(data, transform, validate_support=False)
        out = []
        for xb in batches(data, transform, batch_size, self.device):
            logits = self.classifier(self.likelihood.encoder_input(xb))
            out.append(finite_or_raise(logits, "the classifier's output").softmax(-1))
        return torch.cat(out)

    @torch.no_grad()
    def predict(self, x: Any, batch_size: int = 1024) -> torch.Tensor:
        """The most probable class of each item under q(y|x), int64 ``(N,)`` (labels in
        the data are not used)."""
        return self.predict_proba(x, batch_size).argmax(-1)

    def _decode_side(self, x: torch.Tensor, side: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """The label of each item where it is known, else the most probable under q(y|x)."""
        return {"y": self._known_or_predicted(x, side["y"])}

    def _known_or_predicted(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        unknown = y == UNLABELLED
        if not bool(unknown.any()):
            return y
        logits = self.classifier(self.likelihood.encoder_input(x))
        return torch.where(unknown, logits.argmax(-1), y)

    # ------------------------------------------------------------------ using a trained M2
    @torch.no_grad()
    def encode(
        self,
        x: Any,
        batch_size: int = 1024,
        y: Any = None,
        *,
        refine_steps: int = 0,
        refine_lr: float = 5e-2,
    ) -> dist.MixtureSameFamily:
        """q(z|x) = sum_y q(y|x) q(z|x, y) for each item: a mixture over the classes
        (all weight on the label where it is known), batch shape ``(N,)``, event
        ``(z_dim,)``; ``.mean`` is the posterior mean. ``refine_steps`` other than 0 is
        refused (no ``"posterior_inference"``)."""
        self.refuse_refinement(refine_steps)
        probs, locs, scales = [], [], []
        classes = self._one_hot(torch.arange(self.num_classes, device=self.device))
        for xb, sb in self._batches(x, batch_size, y=y):
            inputs = self.likelihood.encoder_input(xb)
            loc, scale = self.encoder(self._join(inputs, classes[:, None]))  # (K, B, z_dim)
            p = self.classifier(inputs).softmax(-1)
            known = sb["y"] != UNLABELLED
            p = torch.where(known[:, None], self._one_hot(sb["y"].clamp(min=0)), p)
            probs.append(p)
            locs.append(finite_or_raise(loc.transpose(0, 1), "the posterior mean"))
            scales.append(finite_or_raise(scale.transpose(0, 1), "the posterior scale"))
        components = dist.Normal(torch.cat(locs), torch.cat(scales)).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(probs=torch.cat(probs)), components)

    @torch.no_grad()
    def reconstruct(
        self, x: Any, mean: bool = True, batch_size: int = 1024, y: Any = None
    ) -> torch.Tensor:
        """Decode E[z | x, y] with each item's label y, or where it is unknown the most
        probable label under q(y|x): E[x | z, y] (or a draw if ``mean=False``)."""
        out = []
        for xb, sb in self._batches(x, batch_size, y=y):
            label = self._known_or_predicted(xb, sb["y"])
            loc, _ = super()._q_params(xb, c=label)
            px = self._px(finite_or_raise(loc, "the posterior mean"), self._one_hot(label))
            out.append(px.mean if mean else px.sample())
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, *, y: Any = None) -> dist.TorchDistribution:
        """p(x | z, y) for codes ``z`` ``(N, z_dim)`` and labels ``y`` (one for all, or one
        per code)."""
        if y is None:
            raise ValueError("decode needs the labels y (one for all, or one per code)")
        return super().decode(z, c=y)

    @torch.no_grad()
    def sample(
        self, n: int, mean: bool = True, temperature: float = 1.0, *, y: Any = None
    ) -> torch.Tensor:
        """Generate ``n`` items of class ``y`` (one label for all, or one per item; default:
        labels drawn from p(y), uniform): ``z ~ prior``, then E[x | z, y]."""
        check_int("n", n)
        if y is None:
            y = torch.randint(self.num_classes, (n,), device=self.device)
        return super().sample(n, mean, temperature, c=y)

    @torch.no_grad()
    def bounds(
        self,
        x: torch.Tensor,
        num_samples: int = 1,
        max_elements: int = estimator.MAX_ELEMENTS,
        y: Any = None,
    ) -> estimator.Bounds:
        """The bounds of each item of a batch (:meth:`pyvae.VAE.bounds`), each ``(B,)``, in
        nats, from ``num_samples`` draws of z per item and class: of log p(x, y) where the
        label is known (``L(x, y)``) and of log p(x) where it is not, the classes summed
        over exactly (``U(x)``, and ``log sum_y p(x, y)``). ``reconstruction`` is
        E_q[log p(x|y, z)] and ``kl`` E_q[log q(y, z|x) - log p(y, z)] (q(y|x) all on a
        known label), so ``elbo = reconstruction - kl``; ``vae.elbo`` and
        ``vae.log_likelihood`` read them."""
        x = x if x.is_floating_point() else x.float()
        y = self._labels(y, len(x), x.device)
        out = [x.new_zeros(len(x)) for _ in estimator.Bounds._fields]
        log_p_y = -math.log(self.num_classes)
        inputs = self.likelihood.encoder_input(x)
        classes = self._one_hot(torch.arange(self.num_classes, device=x.device))
        prior = self.p_z()
        for part, index in self._split(y):
            c = self._one_hot(y[index]) if part == "labelled" else classes[:, None]  # (K, 1, K)
            loc, scale = self.encoder(self._join(inputs[index], c))  # (B, z) or (K, B, z)
            q = dist.Normal(loc, scale).to_event(1)
            score = estimator.direct_scorer(q, prior, lambda z, c=c: self._px(z, c), x[index])
            chunk = estimator.chunk_size(self, math.prod(loc.shape[:-1]), num_samples, max_elements)
            recon, kl, ll = estimator.estimate(score, num_samples, chunk)
            kl, ll = kl - log_p_y, ll + log_p_y
            if part == "unlabelled":  # over q(y|x): U(x) = E[L(x, y) - log q(y|x)], log p(x)
                log_q = self.classifier(inputs[index]).log_softmax(-1).T  # (K, B)
                q_y = log_q.exp()
                recon, kl, ll = (q_y * recon).sum(0), (q_y * (kl + log_q)).sum(0), ll.logsumexp(0)
            for terms, value in zip(out, (recon, kl, ll), strict=True):
                terms[index] = value
        return estimator.Bounds(*out)


@contextlib.contextmanager
def _all_labelled_is_fine():
    """A batch whose labels are all known has nothing to enumerate: no warning for that."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "TraceEnum_ELBO found no sample sites", UserWarning)
        yield


class SemiSupervisedELBO(TraceEnum_ELBO):
    """M2's training objective (Kingma et al. 2014, eq. 9): ``TraceEnum_ELBO`` over the
    model and guide of a :class:`SemiSupervisedVAE` (labels observed where known, summed
    over where not) plus ``alpha * log q(y|x)`` on the labelled items, scaled like the
    minibatch. The loss is its negative, in nats for the whole dataset.

    The full-data objective, which every step estimates without bias (uniform batches
    scaled by ``num_data / B``, or stratified ones with each part scaled by its own count)::

        J = sum_{x unlabelled} U(x) + sum_{(x, y) labelled} [L(x, y) + alpha log q(y|x)]

    with ``L(x, y) = E_q(z|x,y)[log p(x|y,z) + log p(z) - log q(z|x,y)] + log p(y)`` and
    ``U(x) = sum_y q(y|x) [L(x, y) - log q(y|x)]``. This is the objective of Pyro's
    SS-VAE (``examples/vae/ss_vae_M2.py``, enumerated y with the auxiliary loss, whose
    ``aux_loss_multiplier`` is ``alpha``) summed over an epoch: on one batch the two agree,
    loss and every gradient (``tests/test_semisupervised.py``). Pyro steps the labelled
    items as batches of their own and the auxiliary term as a second step; here they
    share the batch.

    Args:
        vae: the :class:`SemiSupervisedVAE` whose classifier gives q(y|x).
        alpha: weight of ``log q(y|x)`` per labelled item (default: ``vae.alpha``); 0 gives
            the plain ELBO.
        kwargs: for ``TraceEnum_ELBO`` (``max_plate_nesting`` defaults to 1).
    """

    def __init__(self, vae: SemiSupervisedVAE, alpha: float | None = None, **kwargs: Any):
        kwargs.setdefault("max_plate_nesting", 1)
        super().__init__(**kwargs)
        self.vae = vae
        self.alpha = vae.alpha if alpha is None else float(alpha)

    def _classification(self, x: torch.Tensor, y: Any = None, **kwargs: Any) -> torch.Tensor:
        if self.alpha == 0:
            return x.new_zeros((), dtype=torch.get_default_dtype())
        return self.alpha * self.vae.classification_loss(x, y, **kwargs)

    def loss(self, model, guide, *args: Any, **kwargs: Any) -> float:
        with torch.no_grad():
            extra = float(self._classification(*args, **kwargs))
        with _all_labelled_is_fine():
            return super().loss(model, guide, *args, **kwargs) + extra

    def differentiable_loss(self, model, guide, *args: Any, **kwargs: Any) -> torch.Tensor:
        with _all_labelled_is_fine():
            loss = super().differentiable_loss(model, guide, *args, **kwargs)
        return loss + self._classification(*args, **kwargs)

    def loss_and_grads(self, model, guide, *args: Any, **kwargs: Any) -> float:
        with _all_labelled_is_fine():
            loss = super().loss_and_grads(model, guide, *args, **kwargs)
        extra = self._classification(*args, **kwargs)
        if extra.requires_grad:
            extra.backward()
        return loss + extra.item()

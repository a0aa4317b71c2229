"""What a VAE class supports, declared rather than guessed.

Each :class:`~pyvae.VAE` class lists the features it supports in its class attribute
``capabilities`` (a frozenset of the names below); consumers ask ``vae.supports(name)``
or call ``vae.require(name)``, which raises one :class:`CapabilityError` naming the class,
the feature and what to use instead, before any work is done.

=========================  =================================================================
name                       the VAE supports ...
=========================  =================================================================
``fast_path``              ``fit``'s traceless step: :class:`~pyvae.objectives.DirectELBO`
                           (Trace_ELBO's estimator from the parts) with a torch optimizer,
                           and the traceless scoring of :mod:`pyvae.models.estimator`
``cuda_graph``             replaying that step from a CUDA graph (also needs every part to
                           declare ``capturable = True`` on its own class)
``distributed``            ``fit(distributed=True)`` (DistributedDataParallel)
``checkpoint``             ``fit(checkpoint_dir=..., resume=True)``
``lossless``               bits-back coding, :mod:`pyvae.compress.lossless`
``latent_codes``           quantised latent codes, :func:`pyvae.compress.encode`
``closed_form_kl``         :func:`pyvae.evaluate.kl_per_dim` (diagonal normal q(z|x))
``log_likelihood``         importance-sampled log p(x): ``vae.log_likelihood`` and the
                           ``"log_likelihood"`` anomaly score
``evaluate``               :mod:`pyvae.evaluate`'s scores from Pyro traces (``log_weights``,
                           ``elbo_terms``, ``log_likelihood``) and the ``"elbo"`` and
                           ``"reconstruction"`` anomaly scores: every site of the model and
                           guide lies in the plate ``"data"`` over the batch
``anomaly.latent``         the ``"latent"`` anomaly score, -log p(E[z|x])
``tc_decomposition``       :class:`~pyvae.tcvae.BetaTCELBO`: one latent site z whose
                           posterior factorises over its dimensions, in the plate ``"data"``
``factor_vae``             :class:`~pyvae.factor_vae.FactorVAELoss`: one latent site z in
                           the plate ``"data"``
``posterior_inference``    per-item posterior inference on the model's one latent site
                           ``"z"``: :func:`pyvae.evaluate.inference_gaps`,
                           :func:`pyvae.posterior_samples` (NUTS),
                           ``vae.encode(x, refine_steps=...)`` and
                           :func:`pyvae.plots.posterior_comparison`; needs a diagonal normal
                           q(z|x) from ``_q_params`` and a continuous z alone
``plots.samples``          :func:`pyvae.plots.samples`
``plots.reconstructions``  :func:`pyvae.plots.reconstructions`
``plots.traversal``        :func:`pyvae.plots.traversal`
``plots.interpolation``    :func:`pyvae.plots.interpolation`
``plots.latent_space``     :func:`pyvae.plots.latent_space`
``disentanglement``        :func:`pyvae.disentanglement.scores`: the disentanglement metrics
                           of the posterior means ``encode(x).mean``, exact, of a code ``z``
                           that the decoder reads alone
``stacked``                :func:`pyvae.stacked.latent_features`: the items as their
                           diagonal normal q(z|x) from ``encode`` (M1 of M1+M2)
=========================  =================================================================

The features in :data:`MODEL_DEPENDENT` rely on the class's own ``model`` and ``guide``
(they reproduce or assume them): a subclass that overrides either loses them unless it
lists them in its own ``capabilities`` again.

This module imports nothing from pyvae.
"""

from __future__ import annotations

__all__ = [
    "CapabilityError",
    "FAST_PATH",
    "CUDA_GRAPH",
    "DISTRIBUTED",
    "CHECKPOINT",
    "LOSSLESS",
    "LATENT_CODES",
    "CLOSED_FORM_KL",
    "LOG_LIKELIHOOD",
    "EVALUATE",
    "ANOMALY_LATENT",
    "TC_DECOMPOSITION",
    "FACTOR_VAE",
    "POSTERIOR_INFERENCE",
    "PLOTS_SAMPLES",
    "PLOTS_RECONSTRUCTIONS",
    "PLOTS_TRAVERSAL",
    "PLOTS_INTERPOLATION",
    "PLOTS_LATENT_SPACE",
    "DISENTANGLEMENT",
    "STACKED",
    "PLOTS",
    "FEATURES",
    "MODEL_DEPENDENT",
    "DESCRIPTIONS",
    "check_feature",
]


class CapabilityError(ValueError):
    """A VAE was asked for a feature its class does not support."""


FAST_PATH = "fast_path"
CUDA_GRAPH = "cuda_graph"
DISTRIBUTED = "distributed"
CHECKPOINT = "checkpoint"
LOSSLESS = "lossless"
LATENT_CODES = "latent_codes"
CLOSED_FORM_KL = "closed_form_kl"
LOG_LIKELIHOOD = "log_likelihood"
EVALUATE = "evaluate"
ANOMALY_LATENT = "anomaly.latent"
TC_DECOMPOSITION = "tc_decomposition"
FACTOR_VAE = "factor_vae"
POSTERIOR_INFERENCE = "posterior_inference"
PLOTS_SAMPLES = "plots.samples"
PLOTS_RECONSTRUCTIONS = "plots.reconstructions"
PLOTS_TRAVERSAL = "plots.traversal"
PLOTS_INTERPOLATION = "plots.interpolation"
PLOTS_LATENT_SPACE = "plots.latent_space"
DISENTANGLEMENT = "disentanglement"
STACKED = "stacked"

#: The plots, all of them.
PLOTS = frozenset(
    {
        PLOTS_SAMPLES,
        PLOTS_RECONSTRUCTIONS,
        PLOTS_TRAVERSAL,
        PLOTS_INTERPOLATION,
        PLOTS_LATENT_SPACE,
    }
)

#: What each feature is, in the words an error message uses.
DESCRIPTIONS: dict[str, str] = {
    FAST_PATH: "fit's traceless fast path (pyvae.objectives.DirectELBO)",
    CUDA_GRAPH: "CUDA-graph replay of the training step",
    DISTRIBUTED: "distributed training (fit(distributed=True))",
    CHECKPOINT: "checkpoints (fit(checkpoint_dir=...))",
    LOSSLESS: "lossless coding (pyvae.compress.lossless)",
    LATENT_CODES: "quantised latent codes (pyvae.compress.encode)",
    CLOSED_FORM_KL: "the closed-form KL per latent dimension (pyvae.evaluate.kl_per_dim)",
    LOG_LIKELIHOOD: "the importance-sampled log-likelihood (vae.log_likelihood)",
    EVALUATE: "pyvae.evaluate's scores from Pyro traces (log_weights, elbo_terms, ...)",
    ANOMALY_LATENT: "the 'latent' anomaly score (pyvae.anomaly.score)",
    TC_DECOMPOSITION: "the beta-TCVAE objective (pyvae.tcvae.BetaTCELBO)",
    FACTOR_VAE: "the FactorVAE objective (pyvae.factor_vae.FactorVAELoss)",
    POSTERIOR_INFERENCE: "per-item posterior inference (inference_gaps, posterior_samples, "
    "encode(refine_steps=...))",
    PLOTS_SAMPLES: "pyvae.plots.samples",
    PLOTS_RECONSTRUCTIONS: "pyvae.plots.reconstructions",
    PLOTS_TRAVERSAL: "pyvae.plots.traversal",
    PLOTS_INTERPOLATION: "pyvae.plots.interpolation",
    PLOTS_LATENT_SPACE: "pyvae.plots.latent_space",
    DISENTANGLEMENT: "the disentanglement metrics of the posterior means (pyvae.disentanglement)",
    STACKED: "the latent codes as features for M1+M2 (pyvae.stacked.latent_features)",
}

#: Every feature name.
FEATURES = frozenset(DESCRIPTIONS)

#: The features that rely on a class's own ``model`` and ``guide``: lost by a subclass
#: that overrides either, unless it declares them again.
MODEL_DEPENDENT = frozenset(
    {FAST_PATH, CUDA_GRAPH, DISTRIBUTED, LOSSLESS, CLOSED_FORM_KL, ANOMALY_LATENT}
    | {TC_DECOMPOSITION, FACTOR_VAE}
    | {POSTERIOR_INFERENCE}
)


def check_feature(feature: str) -> str:
    """``feature`` if it is one of :data:`FEATURES`, else a ``ValueError`` (a typo)."""
    if feature not in FEATURES:
        raise ValueError(
            f"unknown feature {feature!r}; the features are: {', '.join(sorted(FEATURES))}"
        )
    return feature

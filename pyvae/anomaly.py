"""Anomaly detection: data a trained VAE explains badly is unusual.

Scores are per item, **higher = more anomalous**:

- ``"elbo"``: the negative ELBO, -E_q[log p(x|z) + log p(z) - log q(z|x)];
- ``"log_likelihood"``: the negative importance-sampled log p(x) (tighter, slower);
- ``"reconstruction"``: the negative reconstruction probability of An & Cho (2015),
  -E_q[log p(x|z)], averaged over ``num_samples`` draws z ~ q(z|x);
- ``"latent"``: the negative prior density of the code, -log p(E_q[z|x]).

:class:`Detector` fits a threshold on normal data (a quantile, or a target false-positive
rate) and flags new data. :func:`auroc` and :func:`average_precision` use scikit-learn
(``pip install 'pyvae[metrics]'``).
"""

from __future__ import annotations

from typing import Any

import torch

from .capabilities import ANOMALY_LATENT, EVALUATE, LOG_LIKELIHOOD
from .evaluate import elbo_terms

__all__ = ["SCORES", "score", "Detector", "auroc", "average_precision"]

SCORES = ("elbo", "log_likelihood", "reconstruction", "latent")


@torch.no_grad()
def score(
    vae, data: Any, method: str = "elbo", num_samples: int | None = None, **side: Any
) -> torch.Tensor:
    """Anomaly scores of each item of ``data`` (shape ``(N,)``, higher = more unusual).

    ``num_samples``: draws of z per item (default 10; 1000 for ``"log_likelihood"``).
    ``side``: a variant's side information by name (e.g. ``c=...``), if not in ``data``'s
    targets. ``"latent"`` needs a VAE that supports ``"anomaly.latent"``
    (:mod:`pyvae.capabilities`).
    """
    if method not in SCORES:
        raise ValueError(f"unknown score {method!r}; valid scores: {', '.join(SCORES)}")
    if method == "latent":
        vae.require(ANOMALY_LATENT, instead="use the 'elbo' or 'log_likelihood' score")
    elif method == "log_likelihood":
        vae.require(LOG_LIKELIHOOD, instead="use the 'elbo' score")
    else:
        vae.require(EVALUATE, instead="use the 'log_likelihood' score")
    if num_samples is None:
        num_samples = 1000 if method == "log_likelihood" else 10
    if method == "log_likelihood":
        return -vae.log_likelihood(data, num_samples=num_samples, **side)
    if method == "latent":
        z = vae.encode(data, **side).mean
        return -vae.p_z().log_prob(z)
    terms = elbo_terms(vae, data, num_samples=num_samples, **side)
    return -terms["elbo"] if method == "elbo" else -terms["reconstruction"]


class Detector:
    """Flags items whose anomaly score exceeds a threshold fitted on normal data.

    Args:
        vae: a trained VAE.
        method: one of :data:`SCORES`.
        false_positive_rate: the share of normal data that may be flagged; the threshold
            is the ``1 - false_positive_rate`` quantile of the normal scores.
        num_samples: draws of z per item for the score.

    >>> detector = Detector(vae, "elbo", false_positive_rate=0.05).fit(normal_val)
    >>> flags = detector.predict(new_data)          # bool tensor (N,)
    """

    def __init__(
        self,
        vae,
        method: str = "elbo",
        false_positive_rate: float = 0.05,
        num_samples: int | None = None,
    ):
        if method not in SCORES:
            raise ValueError(f"unknown score {method!r}; valid scores: {', '.join(SCORES)}")
        if not 0 < false_positive_rate < 1:
            raise ValueError(f"false_positive_rate must be in (0, 1), got {false_positive_rate!r}")
        self.vae, self.method, self.num_samples = vae, method, num_samples
        self.false_positive_rate = false_positive_rate
        self.threshold: float | None = None

    def score(self, data: Any) -> torch.Tensor:
        """Anomaly scores of ``data`` (higher = more unusual)."""
        return score(self.vae, data, self.method, self.num_samples)

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

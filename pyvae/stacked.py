"""Kingma et al. (2014)'s stacked model M1+M2: M2 trained on the latent codes of a VAE.

M1 is a plain :class:`pyvae.VAE` trained on all the items, labels unused. Each item's
posterior q(z1|x) then stands in for the item: M2 (:class:`pyvae.SemiSupervisedVAE`, with a
Gaussian likelihood) is trained on the posterior means (or, the paper's way, on a fresh draw
of z1 each time a batch is read: ``draw=True``, behind at equal epochs in the benchmark) and
classifies the means. On MNIST with 100 labels the paper reports 88.0 % for M2 on
pixels and 96.7 % for M1+M2; ``benchmarks/semisupervised_mnist.py --recipe m1m2`` measures
it here.

    >>> m1 = pyvae.VAE.build((1, 28, 28), z_dim=50)
    >>> pyvae.fit(m1, train)                                  # labels unused
    >>> codes = latent_features(m1, data.hide_labels(train, per_class=10))  # the means
    >>> m2 = pyvae.SemiSupervisedVAE.build((50,), z_dim=50, num_classes=10,
    ...                                    likelihood=likelihoods.Gaussian(scale="decoder"))
    >>> pyvae.fit(m2, codes)
    >>> m2.predict(latent_features(m1, test))                 # labels (N,)
"""

from __future__ import annotations

from typing import Any

import torch

from .capabilities import STACKED
from .data import ArrayDataset, targets

__all__ = ["PosteriorDraw", "latent_features"]


class PosteriorDraw:
    """Per-batch transform of Gaussian posteriors to draws: items ``(2, D)`` holding
    ``[loc, scale]`` become ``loc + scale * eps``, ``(D,)``, a fresh ``eps ~ N(0, I)`` on
    every read."""

    elementwise = False  # it changes the item's shape: data checks see transformed batches

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        loc, scale = x.unbind(-2)
        return loc + scale * torch.randn_like(scale)

    def __repr__(self) -> str:
        return "PosteriorDraw()"


@torch.no_grad()
def latent_features(
    vae: Any, data: Any, *, draw: bool = False, batch_size: int = 1024
) -> ArrayDataset:
    """The items of ``data`` as ``vae``'s posteriors q(z|x), a dataset of ``(z_dim,)`` items
    with the targets of ``data`` (labels, -1 where hidden, are kept).

    ``draw=False``: the posterior means (to train M2 on, and to classify); ``draw=True``:
    each read gives fresh draws z ~ q(z|x) (:class:`PosteriorDraw`), the paper's way of
    training M2. ``vae``: a model whose :meth:`~pyvae.VAE.encode` returns a
    diagonal Normal (the ``"stacked"`` capability)."""
    vae.require(STACKED, instead="train M1 as a pyvae.VAE")
    q = vae.encode(data, batch_size=batch_size)
    loc, scale = q.mean.cpu(), q.stddev.cpu()
    labels = targets(data)
    if not draw:
        return ArrayDataset(loc, labels)
    return ArrayDataset(torch.stack([loc, scale], dim=1), labels, transform=PosteriorDraw())

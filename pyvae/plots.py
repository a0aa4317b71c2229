"""Figures as matplotlib ``Figure`` objects: notebooks show them, ``fig.savefig`` saves them.

Figures are made without pyplot, so nothing is drawn twice in a notebook and no global
figure list grows when many are made; they show themselves in Jupyter as PNG.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from .data import as_tensor


class _Figure(Figure):
    """A matplotlib Figure that Jupyter displays as PNG even when pyplot was never imported."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


__all__ = ["image_grid", "reconstructions_and_samples", "history"]


def _to_image(x: torch.Tensor, nrow: int) -> np.ndarray:
    """(N, C, H, W) in [0, 1] or 0..255 -> (H', W', C) grid for imshow."""
    x = x.detach().float().cpu()
    if x.max() > 1.0:
        x = x / 255.0
    grid = make_grid(x.clamp(0, 1), nrow=nrow, padding=2, pad_value=0.5)
    return grid.permute(1, 2, 0).numpy()


def image_grid(x: Any, nrow: int = 8, title: str | None = None, ax=None) -> Figure:
    """Show images ``(N, C, H, W)`` (C = 1 or 3) as a grid."""
    x = as_tensor(x)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"image_grid needs images (N, 1 or 3, H, W), got {tuple(x.shape)}")
    if ax is None:
        fig = _Figure(figsize=(6, 6))
        ax = fig.subplots()
    else:
        fig = ax.figure
    ax.imshow(_to_image(x, nrow), cmap="gray" if x.shape[1] == 1 else None)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def reconstructions_and_samples(vae, x: Any, n: int = 8) -> Figure:
    """Left: ``n`` data items (top rows) over their reconstructions; right: 8x8 samples."""
    x = as_tensor(x)[:n]
    recon = vae.reconstruct(x).cpu()
    samples = vae.sample(64).cpu()
    fig = _Figure(figsize=(12, 6))
    ax1, ax2 = fig.subplots(1, 2)
    x = x.float()
    if x.max() > 1 and recon.max() <= 1:
        x = x / 255.0
    image_grid(torch.cat([x, recon]), nrow=n, title="data (top) / reconstructions", ax=ax1)
    image_grid(samples, nrow=8, title="samples from the prior", ax=ax2)
    fig.tight_layout()
    return fig


def history(hist: dict) -> Figure:
    """ELBO per epoch (nats per example) from the history ``fit`` returns."""
    fig = _Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(hist["epoch"], hist["train_elbo"], marker="o", label="train (KL-weighted)")
    if "val_elbo" in hist:
        ax.plot(hist["epoch"], hist["val_elbo"], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO (nats per example)")
    ax.legend()
    fig.tight_layout()
    return fig

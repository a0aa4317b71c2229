"""Datasets: the built-in ``sprites`` (generated, no download) and conversion of user data.

``fit``, ``encode`` and ``elbo`` accept a tensor, a NumPy array, an :class:`ArrayDataset`
or any ``torch.utils.data.Dataset`` (whose items are ``x`` or ``(x, label, ...)``);
:func:`as_tensor` turns each into one tensor of shape ``(N, *item_shape)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "ArrayDataset",
    "as_tensor",
    "load",
    "make_sprites",
    "DATASETS",
    "SPRITE_FACTORS",
    "SPRITE_SHAPES",
]

#: The generating factors of ``sprites``, in the column order of its labels.
SPRITE_FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")
SPRITE_SHAPES = ("square", "ellipse", "heart")


class ArrayDataset(Dataset):
    """Data held in memory as one tensor (compact dtypes such as uint8 are kept).

    Attributes:
        data: tensor ``(N, *shape)``.
        targets: labels ``(N,)`` or ``(N, F)`` or None.
        factor_names: names of the label columns, if any.
    """

    def __init__(
        self,
        data: torch.Tensor,
        targets: torch.Tensor | None = None,
        factor_names: Sequence[str] | None = None,
    ):
        if targets is not None and len(targets) != len(data):
            raise ValueError(f"{len(data)} items but {len(targets)} targets")
        self.data = data
        self.targets = targets
        self.factor_names = tuple(factor_names) if factor_names else None

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one item."""
        return tuple(self.data.shape[1:])

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        if self.targets is None:
            return self.data[i]
        return self.data[i], self.targets[i]

    def __repr__(self) -> str:
        return f"ArrayDataset(n={len(self)}, shape={self.shape}, dtype={self.data.dtype})"


def as_tensor(data: Any) -> torch.Tensor:
    """Turn user data into one tensor ``(N, *item_shape)``.

    Accepts a tensor, a NumPy array, an :class:`ArrayDataset` or a ``Dataset`` whose items
    are tensors/arrays or tuples starting with one. float64 becomes float32; integer
    dtypes are kept (converted to float per batch).
    """
    if isinstance(data, ArrayDataset):
        x = data.data
    elif isinstance(data, torch.Tensor):
        x = data
    elif isinstance(data, np.ndarray):
        if data.dtype == object:
            raise TypeError("a NumPy array of dtype object is not numeric data")
        x = torch.from_numpy(np.ascontiguousarray(data))
    elif isinstance(data, Dataset):
        try:
            n = len(data)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError("a Dataset without len() is not supported; pass a tensor") from None
        if n == 0:
            raise ValueError("the dataset is empty: it needs at least one item")
        items = [data[i] for i in range(n)]
        items = [it[0] if isinstance(it, (tuple, list)) else it for it in items]
        x = torch.stack([torch.as_tensor(np.asarray(it)) for it in items])
    else:
        raise TypeError(
            f"cannot use {type(data).__name__} as data: pass a torch.Tensor, a NumPy array "
            "or a torch.utils.data.Dataset"
        )
    if x.dtype == torch.float64:
        x = x.float()
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    if x.is_complex():
        raise TypeError("complex data is not supported")
    return x


def make_sprites(n: int, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``n`` dSprites-style binary images with known generating factors.

    Each image is one white shape (square, ellipse or heart) on black, with a random
    scale, orientation and position. Returns ``images`` (uint8 in {0, 1}, shape
    ``(n, 1, size, size)``) and ``factors`` (float32, shape ``(n, 5)``; columns
    :data:`SPRITE_FACTORS`: shape index, scale in [0.5, 1], orientation in radians
    [0, 2 pi), x and y position in [0, 1]).
    """
    if n < 0 or size < 8:
        raise ValueError(f"need n >= 0 and size >= 8, got n={n}, size={size}")
    g = torch.Generator().manual_seed(seed)
    shape = torch.randint(len(SPRITE_SHAPES), (n,), generator=g)
    scale = 0.5 + 0.5 * torch.rand(n, generator=g)
    angle = 2 * math.pi * torch.rand(n, generator=g)
    pos = torch.rand(n, 2, generator=g)
    images = torch.empty(n, 1, size, size, dtype=torch.uint8)
    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # pixel centres in (0, 1)
    for start in range(0, n, 2048):  # chunks bound the memory used
        sl = slice(start, min(n, start + 2048))
        radius = 0.18 * scale[sl].view(-1, 1, 1)  # half-size in image units
        # Centres keep the shape inside the image.
        cx = (0.2 + 0.6 * pos[sl, 0]).view(-1, 1, 1)
        cy = (0.2 + 0.6 * pos[sl, 1]).view(-1, 1, 1)
        dx, dy = grid.view(1, 1, -1) - cx, grid.view(1, -1, 1) - cy
        cos, sin = angle[sl].cos().view(-1, 1, 1), angle[sl].sin().view(-1, 1, 1)
        u, v = (cos * dx + sin * dy) / radius, (-sin * dx + cos * dy) / radius
        square = (u.abs() <= 0.8) & (v.abs() <= 0.8)
        ellipse = u**2 + (v / 0.5) ** 2 <= 1.0
        hu, hv = 1.1 * u, -1.1 * v + 0.2
        heart = (hu**2 + hv**2 - 1) ** 3 - hu**2 * hv**3 <= 0
        which = shape[sl].view(-1, 1, 1)
        mask = torch.where(which == 0, square, torch.where(which == 1, ellipse, heart))
        images[sl, 0] = mask.to(torch.uint8)
    factors = torch.stack([shape.float(), scale, angle, pos[:, 0], pos[:, 1]], dim=1)
    return images, factors


def _load_sprites(
    n_train: int = 10000, n_test: int = 2000, size: int = 64, seed: int = 0
) -> tuple[ArrayDataset, ArrayDataset]:
    x, y = make_sprites(n_train + n_test, size=size, seed=seed)
    return (
        ArrayDataset(x[:n_train], y[:n_train], SPRITE_FACTORS),
        ArrayDataset(x[n_train:], y[n_train:], SPRITE_FACTORS),
    )


#: Built-in datasets by name: each a function returning ``(train, test)``.
DATASETS = {"sprites": _load_sprites}


def load(name: str, **kwargs: Any) -> tuple[ArrayDataset, ArrayDataset]:
    """Load a dataset by name and return ``(train, test)``.

    Built in (generated, no download): ``"sprites"`` — binary 64x64 shapes with labels
    for their generating factors (``n_train=10000, n_test=2000, size=64, seed=0``).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](**kwargs)

"""Datasets: built-in, torchvision, local files and in-memory data.

:func:`load` returns ``(train, test)`` :class:`ArrayDataset` objects. Image data stays
compact in memory (uint8) and is converted per batch, on the training device, by the
dataset's ``transform`` (e.g. to [0, 1], or a fresh binarization each time).

``fit``, ``encode``, ``elbo`` and the plots accept an :class:`ArrayDataset`, a tensor, a
NumPy array, a pair ``(x, targets)`` of them or any ``torch.utils.data.Dataset`` whose items
are ``x`` or ``(x, label, ...)``. Variants that take per-item side information (labels
``y``, a context ``c``) read it from the data's targets (:func:`targets`).
"""

from __future__ import annotations

import csv
import gzip
import itertools
import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .checks import check_finite, check_int

__all__ = [
    "ArrayDataset",
    "Scale",
    "DynamicBinarize",
    "as_tensor",
    "distinct_values",
    "source",
    "targets",
    "batches",
    "side_batches",
    "RandomOrder",
    "LabelledBatches",
    "hide_labels",
    "UNLABELLED",
    "load",
    "label_like_columns",
    "make_sprites",
    "sample_sprite_factors",
    "render_sprites",
    "make_shapes",
    "render_shapes",
    "read_idx",
    "DATASETS",
    "TORCHVISION_DATASETS",
    "SPRITE_FACTORS",
    "SPRITE_SHAPES",
    "SHAPE_FACTORS",
    "BINARY_DATASETS",
]

#: The generating factors of ``sprites``, in the column order of its labels.
SPRITE_FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")
SPRITE_SHAPES = ("square", "ellipse", "heart")
#: The generating factors of ``shapes`` (upright sprites), in the column order of its labels.
SHAPE_FACTORS = ("shape", "scale", "pos_x", "pos_y")
#: The built-in datasets that are binary already (values 0 and 1): Bernoulli data.
BINARY_DATASETS = ("shapes", "sprites", "binarized_mnist")

#: The label of an item whose label is unknown (semi-supervised data; see :func:`hide_labels`).
UNLABELLED = -1

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
BINARIZE_OPTIONS = (None, "threshold", "static", "dynamic")
VALUES_OPTIONS = ("unit", "uint8")


# --------------------------------------------------------------------------- batch transforms
class Scale:
    """Per-batch transform: ``x.float() * factor`` (e.g. 8-bit pixels to [0, 1])."""

    #: Each output value depends on the input value at the same position only, so the
    #: transform of every distinct input value stands for the transform of the data
    #: (:func:`distinct_values` makes data checks cheap).
    elementwise = True

    def __init__(self, factor: float = 1 / 255):
        self.factor = float(factor)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() * self.factor

    def __repr__(self) -> str:
        return f"Scale({self.factor:.6g})"


class DynamicBinarize:
    """Per-batch transform: a fresh binarization ``Bernoulli(x * scale)`` at every call,
    so each epoch sees new binary images ("dynamic" binarization of grey levels).

    8-bit pixels (uint8, ``scale=1/255``) take a faster path that uses 8 random bits per
    pixel instead of a float draw: the probability of a 1 is then ``x/255`` to within
    1/512, and exactly 0 and 1 at ``x = 0`` and ``x = 255``.
    """

    elementwise = True

    def __init__(self, scale: float = 1 / 255):
        self.scale = float(scale)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8 and self.scale == 1 / 255:
            return _binarize_bytes(x)
        # u < p with u ~ U(0, 1) is a Bernoulli(p) draw; 3x faster than torch.bernoulli on CPU.
        return (torch.rand(x.shape, device=x.device) < x.float() * self.scale).float()

    def __repr__(self) -> str:
        return f"DynamicBinarize({self.scale:.6g})"


def _binarize_bytes(x: torch.Tensor) -> torch.Tensor:
    """Bernoulli draws for 8-bit pixels from 8 random bits each: ``r < x`` with ``r``
    uniform on 0..255 moved down by one from 128 up (``r - r // 128``), so that
    P(1) = x/256 for x < 128, (x + 1)/256 for x >= 128: x/255 to within 1/512, exact at
    0 and 255."""
    n = x.numel()
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=x.device)
    r = words.view(torch.uint8)[:n].view(x.shape)
    return (r - (r >> 7) < x).float()


def distinct_values(x: torch.Tensor) -> torch.Tensor | None:
    """A few items shaped like those of the uint8 tensor ``x`` (``(k, *x.shape[1:])``)
    that together hold each value occurring in ``x`` (and no other), so an elementwise
    transform and an elementwise check of them stand for those of all of ``x``. None
    for other dtypes."""
    if x.dtype != torch.uint8 or x.dim() < 1 or x.numel() == 0:
        return None
    values = torch.bincount(x.flatten(), minlength=256).nonzero().squeeze(1).to(x.dtype)
    size = math.prod(x.shape[1:])
    items = math.ceil(len(values) / size)
    positions = torch.arange(items * size, device=x.device) % len(values)
    return values[positions].reshape(items, *x.shape[1:])


# --------------------------------------------------------------------------- the dataset
class ArrayDataset(Dataset):
    """Data held in memory as one tensor, compact dtypes (uint8) kept.

    Args:
        data: tensor ``(N, *shape)``.
        targets: labels ``(N,)`` or ``(N, F)``, or None.
        factor_names: names of the label columns (or of the classes), if any.
        transform: applied per batch (``fit`` applies it on the training device) and by
            ``dataset[i]``; e.g. :class:`Scale` or :class:`DynamicBinarize`.
    """

    def __init__(
        self,
        data: torch.Tensor,
        targets: torch.Tensor | None = None,
        factor_names: Sequence[str] | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        data, _ = source(data)  # float64 -> float32, bool -> uint8
        if data.dim() < 1:
            raise ValueError("data must have a first (item) dimension")
        if targets is not None:
            targets = torch.as_tensor(targets)
            if len(targets) != len(data):
                raise ValueError(
                    f"labels of the wrong length: {len(data)} items but {len(targets)} labels"
                )
        self.data = data
        self.targets = targets
        self.factor_names = tuple(factor_names) if factor_names else None
        self.transform = transform

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one item."""
        return tuple(self.data.shape[1:])

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        x = self.data[i]
        if self.transform is not None:
            x = self.transform(x)
        return x if self.targets is None else (x, self.targets[i])

    def subset(self, index: Any) -> ArrayDataset:
        """The items at ``index`` (a slice, indices or a mask) as a new dataset."""
        targets = None if self.targets is None else self.targets[index]
        return ArrayDataset(self.data[index], targets, self.factor_names, self.transform)

    def with_targets(self, targets: Any, names: Sequence[str] | None = None) -> ArrayDataset:
        """The same items (data and transform shared, not copied) with other ``targets``,
        e.g. one label column: ``sprites.with_targets(sprites.targets[:, 0].long(),
        data.SPRITE_SHAPES)``."""
        return ArrayDataset(self.data, targets, names, self.transform)

    def __repr__(self) -> str:
        extra = f", transform={self.transform!r}" if self.transform is not None else ""
        return f"ArrayDataset(n={len(self)}, shape={self.shape}, dtype={self.data.dtype}{extra})"


# --------------------------------------------------------------------------- user data
def source(data: Any) -> tuple[torch.Tensor, Callable | None]:
    """``(raw tensor (N, *shape), per-batch transform or None)`` for any accepted data."""
    if isinstance(data, ArrayDataset):
        return data.data, data.transform
    if isinstance(data, torch.Tensor):
        x = data
    elif isinstance(data, np.ndarray):
        if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
            raise TypeError(f"a NumPy array of dtype {data.dtype} is not numeric data")
        x = torch.from_numpy(np.ascontiguousarray(data))
    elif isinstance(data, (list, tuple)):
        if len(data) == 2 and all(isinstance(d, (torch.Tensor, np.ndarray)) for d in data):
            return source(data[0])  # a pair (x, targets); targets() reads the second
        if len(data) == 2 and all(isinstance(d, Dataset) for d in data):
            raise TypeError(
                "got a pair of datasets, as data.load returns them (train, test): write "
                "train, test = data.load(...) and pass train (and val=test to fit)"
            )
        raise TypeError(
            f"cannot use a {type(data).__name__} as data: pass a torch.Tensor or NumPy array "
            "(e.g. torch.tensor(data)); for a batch from a DataLoader use x, _ = batch"
        )
    elif isinstance(data, Dataset):
        try:
            n = len(data)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError("a Dataset without len() is not supported; pass a tensor") from None
        if n == 0:
            raise ValueError("the dataset is empty: it needs at least one item")
        items = [data[i] for i in range(n)]
        items = [it[0] if isinstance(it, (tuple, list)) else it for it in items]
        if isinstance(items[0], dict):
            raise TypeError(
                "the dataset's items are dicts: wrap it so items are x or (x, label), or pass "
                "a tensor"
            )
        try:
            x = torch.stack([torch.as_tensor(np.asarray(it)) for it in items])
        except RuntimeError as e:
            raise ValueError(f"the dataset's items differ in shape: {e}") from None
    else:
        raise TypeError(
            f"cannot use {type(data).__name__} as data: pass a torch.Tensor, a NumPy array "
            "or a torch.utils.data.Dataset"
        )
    if x.is_complex():
        raise TypeError("complex data is not supported")
    if x.dtype in (torch.float64, torch.float16, torch.bfloat16):
        x = x.float()
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    return x, None


def targets(data: Any) -> torch.Tensor | None:
    """The per-item targets (labels or any side information) of ``data``, or None.

    ``ArrayDataset.targets``; the second of a pair ``(x, targets)``; the second tensor of a
    ``TensorDataset``; the second element of a Dataset's ``(x, label, ...)`` items. A
    tensor or NumPy array alone has none.
    """
    if isinstance(data, ArrayDataset):
        return data.targets
    if isinstance(data, (list, tuple)):
        source(data)  # refused as source refuses it (e.g. the (train, test) of load)
        return torch.as_tensor(data[1]) if len(data) == 2 else None
    if isinstance(data, torch.utils.data.TensorDataset):
        return data.tensors[1] if len(data.tensors) > 1 else None
    if isinstance(data, Dataset) and not isinstance(data, torch.Tensor):
        items = [data[i] for i in range(len(data))]  # type: ignore[arg-type]
        if not items or not all(isinstance(it, (tuple, list)) and len(it) > 1 for it in items):
            return None
        return torch.stack([torch.as_tensor(np.asarray(it[1])) for it in items])
    return None


def hide_labels(data: Any, per_class: int, seed: int = 0) -> ArrayDataset:
    """Semi-supervised data: ``data`` with the labels of all but ``per_class`` items of each
    class replaced by :data:`UNLABELLED` (-1).

    The kept items are drawn at random in each class (stratified), reproducibly for a
    ``seed``; e.g. ``per_class=10`` keeps 100 MNIST labels. ``data`` needs one integer
    class label per item (its :func:`targets`, shape ``(N,)``). Returns an
    :class:`ArrayDataset` sharing the data (and transform) of ``data``.
    """
    check_int("per_class", per_class, 0)
    labels = targets(data)
    integral = labels is not None and bool((labels == labels.round()).all())
    if labels is None or labels.dim() != 1 or not integral:
        shape = None if labels is None else tuple(labels.shape)
        raise ValueError(
            f"hide_labels needs one integer class label per item; the data's targets are "
            f"{shape} (for several label columns pick one: dataset.with_targets("
            "dataset.targets[:, 0].long()))"
        )
    labels = labels.long()
    g = torch.Generator().manual_seed(seed)
    kept = torch.full_like(labels, UNLABELLED)
    for label in labels[labels != UNLABELLED].unique().tolist():
        where = (labels == label).nonzero().squeeze(1)
        if len(where) < per_class:
            raise ValueError(
                f"class {label} has {len(where)} labelled items, fewer than per_class={per_class}"
            )
        keep = where[torch.randperm(len(where), generator=g)[:per_class]]
        kept[keep] = label
    if isinstance(data, ArrayDataset):
        return data.with_targets(kept, data.factor_names)
    x, transform = source(data)
    return ArrayDataset(x, kept, transform=transform)


def as_tensor(data: Any) -> torch.Tensor:
    """All of ``data`` as one tensor ``(N, *shape)``, with the dataset's transform applied.

    float64 becomes float32 and bool becomes uint8; other dtypes are kept.
    """
    x, transform = source(data)
    return transform(x) if transform is not None else x


def batches(
    x: torch.Tensor,
    transform: Callable | None,
    batch_size: int,
    device: torch.device | str | None = None,
    order: torch.Tensor | None = None,
) -> Iterator[torch.Tensor]:
    """Minibatches of ``x`` (in ``order`` if given) moved to ``device``, then transformed."""
    n = len(x) if order is None else len(order)
    for start in range(0, n, batch_size):
        xb = (
            x[start : start + batch_size] if order is None else x[order[start : start + batch_size]]
        )
        xb = xb.to(device, non_blocking=True) if device is not None else xb
        yield transform(xb) if transform is not None else xb


def side_batches(
    side: Mapping[str, torch.Tensor],
    batch_size: int,
    device: torch.device | str | None = None,
    order: torch.Tensor | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """The per-item side information ``side`` (e.g. ``{"y": labels}``, each ``(N, ...)``)
    of each minibatch that :func:`batches` yields with the same ``batch_size`` and
    ``order``, as keyword arguments for a VAE's model and guide; endless ``{}`` when
    ``side`` is empty (a VAE of x alone)."""
    if not side:
        return itertools.repeat({})
    n = len(next(iter(side.values()))) if order is None else len(order)

    def pick(v: torch.Tensor, start: int) -> torch.Tensor:
        v = v[start : start + batch_size] if order is None else v[order[start : start + batch_size]]
        return v.to(device, non_blocking=True) if device is not None else v

    return ({k: pick(v, start) for k, v in side.items()} for start in range(0, n, batch_size))


class RandomOrder:
    """The items of one training epoch, in batch order: each of ``n`` items once, in a
    random order (:func:`pyvae.fit`'s default). Calling it draws an epoch's order.

    ``step_kwargs`` are extra keyword arguments for the model and guide at each step
    (none here: the minibatch is a uniform sample, scaled by ``num_data / B``).
    """

    step_kwargs: Mapping[str, Any] = {}

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __call__(self, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.randperm(self.n, device=device)


class LabelledBatches(RandomOrder):
    """Stratified minibatches for semi-supervised data: every batch of ``batch_size``
    holds ``labelled`` items drawn from the labelled pool (cycled through in a fresh random
    order as often as the epoch needs) and ``batch_size - labelled`` unlabelled items;
    an epoch visits each unlabelled item once.

    With few labels (100 of 60,000), uniform batches hold a labelled item in one step of
    five, so the labelled terms reach the gradient as rare large spikes; here every step
    sees them. The model must scale each part by its own size,
    ``num_labelled / labelled`` and ``(num_data - num_labelled) / (batch_size - labelled)``
    (unbiased for the full-data objective): ``step_kwargs`` passes ``num_labelled``.

    Args:
        labels: ``(N,)`` int64, :data:`UNLABELLED` (-1) where unknown; both kinds present.
        batch_size: items per batch (the last batch of an epoch may be smaller).
        labelled: labelled items per batch, ``1 <= labelled < batch_size``.
    """

    def __init__(self, labels: torch.Tensor, batch_size: int, labelled: int):
        check_int("labelled", labelled, 1)
        if labelled >= batch_size:
            raise ValueError(f"labelled={labelled} must be < batch_size={batch_size}")
        known = labels != UNLABELLED
        self.labelled_index = known.nonzero().squeeze(1)
        self.unlabelled_index = (~known).nonzero().squeeze(1)
        if not (len(self.labelled_index) and len(self.unlabelled_index)):
            raise ValueError("LabelledBatches needs both labelled and unlabelled items")
        self.labelled, self.unlabelled = labelled, batch_size - labelled
        self.steps = math.ceil(len(self.unlabelled_index) / self.unlabelled)
        self.step_kwargs = {"num_labelled": len(self.labelled_index)}

    def __len__(self) -> int:
        return self.steps * self.labelled + len(self.unlabelled_index)

    def __call__(self, device: torch.device | str | None = None) -> torch.Tensor:
        pool, rest = self.labelled_index.to(device), self.unlabelled_index.to(device)
        cycles = math.ceil(self.steps * self.labelled / len(pool))
        drawn = torch.cat([pool[torch.randperm(len(pool), device=device)] for _ in range(cycles)])
        drawn = drawn[: self.steps * self.labelled].view(self.steps, self.labelled)
        rest = rest[torch.randperm(len(rest), device=device)]
        rows = [
            torch.cat([drawn[s], rest[s * self.unlabelled : (s + 1) * self.unlabelled]])
            for s in range(self.steps)
        ]
        return torch.cat(rows)


# --------------------------------------------------------------------------- sprites
def make_sprites(n: int, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``n`` dSprites-style binary images with known generating factors.

    Each image is one white shape (square, ellipse or heart) on black, with a random
    scale, orientation and position. Returns ``images`` (uint8 in {0, 1}, shape
    ``(n, 1, size, size)``) and ``factors`` (float32, shape ``(n, 5)``; columns
    :data:`SPRITE_FACTORS`: shape index, scale in [0.5, 1], orientation in radians
    [0, 2 pi), x and y position in [0, 1]). The images are :func:`render_sprites` of the
    factors.
    """
    if n < 0 or size < 8:
        raise ValueError(f"need n >= 0 and size >= 8, got n={n}, size={size}")
    factors = sample_sprite_factors(n, torch.Generator().manual_seed(seed))
    return render_sprites(factors, size), factors


def sample_sprite_factors(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws of the sprites' generating factors (float32, shape ``(n, 5)``, columns
    :data:`SPRITE_FACTORS`), independent: shape uniform over :data:`SPRITE_SHAPES`, scale
    uniform in [0.5, 1], orientation uniform in [0, 2 pi), x and y uniform in [0, 1]."""
    shape = torch.randint(len(SPRITE_SHAPES), (n,), generator=generator)
    scale = 0.5 + 0.5 * torch.rand(n, generator=generator)
    angle = 2 * math.pi * torch.rand(n, generator=generator)
    pos = torch.rand(n, 2, generator=generator)
    return torch.stack([shape.float(), scale, angle, pos[:, 0], pos[:, 1]], dim=1)


def render_sprites(factors: Any, size: int = 64) -> torch.Tensor:
    """The sprites of given generating ``factors`` (shape ``(n, 5)``, columns
    :data:`SPRITE_FACTORS`, in the ranges of :func:`make_sprites`): uint8 images in
    {0, 1} of shape ``(n, 1, size, size)``, one white shape per image."""
    factors = _checked_factors(factors, SPRITE_FACTORS, size, "the sprites' factors")
    return _render(factors[:, 0].long(), factors[:, 1], factors[:, 2], factors[:, 3:], size)


def _checked_factors(factors: Any, columns: tuple[str, ...], size: int, what: str) -> torch.Tensor:
    """``factors`` as float32 of shape ``(n, len(columns))``, finite, its first column a
    shape index."""
    factors = torch.as_tensor(factors, dtype=torch.float32)
    if factors.dim() != 2 or factors.shape[1] != len(columns) or size < 8:
        raise ValueError(
            f"need factors of shape (n, {len(columns)}) (columns {columns}) "
            f"and size >= 8, got shape {tuple(factors.shape)}, size={size}"
        )
    check_finite(factors, what)
    shape = factors[:, 0]
    if bool(((shape < 0) | (shape >= len(SPRITE_SHAPES)) | (shape != shape.round())).any()):
        raise ValueError(f"the shape column must hold 0, 1 or 2 ({', '.join(SPRITE_SHAPES)})")
    return factors


def _render(
    shape: torch.Tensor,
    scale: torch.Tensor,
    angle: torch.Tensor,
    pos: torch.Tensor,
    size: int,
    radius: float = 0.18,
    margin: float = 0.2,
) -> torch.Tensor:
    """One white shape per image (uint8 ``(n, 1, size, size)``): ``shape`` indexes
    :data:`SPRITE_SHAPES`, of half-size ``radius * scale`` and orientation ``angle``
    (radians), centred at ``margin + (1 - 2 margin) * pos`` (all in image units)."""
    n = len(shape)
    images = torch.empty(n, 1, size, size, dtype=torch.uint8)
    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # pixel centres in (0, 1)
    for start in range(0, n, 2048):  # chunks bound the memory used
        sl = slice(start, min(n, start + 2048))
        r = radius * scale[sl].view(-1, 1, 1)  # half-size in image units
        # The margin keeps the shape inside the image.
        cx = (margin + (1 - 2 * margin) * pos[sl, 0]).view(-1, 1, 1)
        cy = (margin + (1 - 2 * margin) * pos[sl, 1]).view(-1, 1, 1)
        dx, dy = grid.view(1, 1, -1) - cx, grid.view(1, -1, 1) - cy
        cos, sin = angle[sl].cos().view(-1, 1, 1), angle[sl].sin().view(-1, 1, 1)
        u, v = (cos * dx + sin * dy) / r, (-sin * dx + cos * dy) / r
        square = (u.abs() <= 0.8) & (v.abs() <= 0.8)
        ellipse = u**2 + (v / 0.5) ** 2 <= 1.0
        hu, hv = 1.1 * u, -1.1 * v + 0.2
        heart = (hu**2 + hv**2 - 1) ** 3 - hu**2 * hv**3 <= 0
        which = shape[sl].view(-1, 1, 1)
        mask = torch.where(which == 0, square, torch.where(which == 1, ellipse, heart))
        images[sl, 0] = mask.to(torch.uint8)
    return images


def _load_sprites(
    n_train: int = 10000, n_test: int = 2000, size: int = 64, seed: int = 0
) -> tuple[ArrayDataset, ArrayDataset]:
    x, factors = make_sprites(n_train + n_test, size=size, seed=seed)
    return _generated_splits(x, factors, n_train, SPRITE_FACTORS)


def _generated_splits(
    x: torch.Tensor, factors: torch.Tensor, n_train: int, names: tuple[str, ...]
) -> tuple[ArrayDataset, ArrayDataset]:
    """The first ``n_train`` items and the rest, labelled by their generating factors."""
    return (
        ArrayDataset(x[:n_train], factors[:n_train], names),
        ArrayDataset(x[n_train:], factors[n_train:], names),
    )


def make_shapes(n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``n`` binary images of one upright white shape (square, ellipse or heart)
    on black, with a random scale and position: the sprites without their rotation, and
    larger in a smaller image, so that a VAE learns them in seconds.

    Returns ``images`` (uint8 in {0, 1}, shape ``(n, 1, size, size)``) and ``factors``
    (float32, shape ``(n, 4)``; columns :data:`SHAPE_FACTORS`: shape index, scale in
    [0.5, 1], x and y position in [0, 1]), drawn independently and uniformly. The shapes
    are :func:`render_shapes` of the factors.
    """
    if n < 0 or size < 8:
        raise ValueError(f"need n >= 0 and size >= 8, got n={n}, size={size}")
    g = torch.Generator().manual_seed(seed)
    shape = torch.randint(len(SPRITE_SHAPES), (n,), generator=g)
    scale = 0.5 + 0.5 * torch.rand(n, generator=g)
    pos = torch.rand(n, 2, generator=g)
    factors = torch.stack([shape.float(), scale, pos[:, 0], pos[:, 1]], dim=1)
    return render_shapes(factors, size), factors


def render_shapes(factors: Any, size: int = 32) -> torch.Tensor:
    """The upright shapes of given ``factors`` (shape ``(n, 4)``, columns
    :data:`SHAPE_FACTORS`, in the ranges of :func:`make_shapes`): uint8 images in {0, 1}
    of shape ``(n, 1, size, size)``. A shape's half-size is 0.3 of the image at scale 1,
    and its centre stays 0.3 of the image away from the edges."""
    factors = _checked_factors(factors, SHAPE_FACTORS, size, "the shapes' factors")
    upright = torch.zeros(len(factors))
    shape, scale, pos = factors[:, 0].long(), factors[:, 1], factors[:, 2:]
    return _render(shape, scale, upright, pos, size, radius=0.3, margin=0.3)


def _load_shapes(
    n_train: int = 15000, n_test: int = 2000, size: int = 32, seed: int = 0
) -> tuple[ArrayDataset, ArrayDataset]:
    x, factors = make_shapes(n_train + n_test, size=size, seed=seed)
    return _generated_splits(x, factors, n_train, SHAPE_FACTORS)


# --------------------------------------------------------------------------- image conventions
def _channels_first(x: torch.Tensor) -> torch.Tensor:
    """Images as (N, C, H, W): add a channel to (N, H, W); move a trailing 1/3/4 channel."""
    if x.dim() == 3:
        return x.unsqueeze(1)
    if x.dim() == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        return x.permute(0, 3, 1, 2).contiguous()
    return x


def _image_dataset(
    x: torch.Tensor,
    targets: torch.Tensor | None,
    names: Sequence[str] | None,
    binarize: str | None,
    values: str,
    seed: int,
    test: bool = False,
) -> ArrayDataset:
    """Wrap 8-bit images (N, C, H, W) with the requested value convention. A test split
    (``test=True``) under ``binarize="dynamic"`` is binarized once, as under ``"static"``,
    with ``seed``: every evaluation scores the same images."""
    x = _channels_first(torch.as_tensor(x))
    if x.dtype != torch.uint8:
        raise ValueError(f"8-bit images expected, got dtype {x.dtype}")
    if binarize is None:
        transform = Scale(1 / 255) if values == "unit" else Scale(1.0)
    elif binarize == "threshold":
        x, transform = (x > 127).to(torch.uint8), None
    elif binarize == "static" or (binarize == "dynamic" and test):
        g = torch.Generator().manual_seed(seed)  # callers give train and test other seeds
        x = torch.bernoulli(x.float() / 255, generator=g).to(torch.uint8)
        transform = None
    else:
        transform = DynamicBinarize(1 / 255)
    return ArrayDataset(x, targets, names, transform)


def _check_options(binarize: str | None, values: str) -> None:
    if binarize not in BINARIZE_OPTIONS:
        raise ValueError(f"binarize must be one of {list(BINARIZE_OPTIONS)}, got {binarize!r}")
    if values not in VALUES_OPTIONS:
        raise ValueError(f"values must be one of {list(VALUES_OPTIONS)}, got {values!r}")


# --------------------------------------------------------------------------- torchvision
def _files_hint(name: str, root: str) -> str:
    hints = {
        "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
        "fashion_mnist": "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
        "kmnist": "KMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
        "emnist": "EMNIST/raw/emnist-balanced-{train,test}-{images-idx3,labels-idx1}-ubyte",
        "cifar10": "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}",
        "celeba": "celeba/{img_align_celeba/,list_eval_partition.txt,list_attr_celeba.txt,...}",
    }
    return os.path.join(root, hints[name])


def _torchvision(
    name: str,
    root: str | os.PathLike | None = None,
    download: bool = True,
    binarize: str | None = None,
    values: str = "unit",
    seed: int = 0,
    size: int = 64,
) -> tuple[ArrayDataset, ArrayDataset]:
    import torchvision.datasets as tvd

    root = str(root if root is not None else os.path.join("~", ".pyvae", "data"))
    root = os.path.expanduser(root)

    def make(cls: Any, train: bool, **kw: Any) -> Any:
        try:
            return (
                cls(root, download=download, **kw)
                if train is None
                else cls(root, train=train, download=download, **kw)
            )
        except Exception as e:  # network errors, missing or corrupt files
            how = "could not download them" if download else "download=False"
            raise FileNotFoundError(
                f"{name}: the files were not found under {root!r} and pyvae {how} ({e}). "
                f"Put the files at {_files_hint(name, root)} (as torchvision expects), or "
                "pass root=... pointing at the folder that holds them."
            ) from None

    out = []
    for train in (True, False):
        if name == "mnist":
            ds = make(tvd.MNIST, train)
            x, y, names = ds.data, ds.targets, ds.classes
        elif name == "fashion_mnist":
            ds = make(tvd.FashionMNIST, train)
            x, y, names = ds.data, ds.targets, ds.classes
        elif name == "kmnist":
            ds = make(tvd.KMNIST, train)
            x, y, names = ds.data, ds.targets, ds.classes
        elif name == "emnist":
            ds = make(tvd.EMNIST, train, split="balanced")
            # EMNIST stores images transposed.
            x, y, names = ds.data.transpose(1, 2), ds.targets, ds.classes
        elif name == "cifar10":
            ds = make(tvd.CIFAR10, train)
            x = torch.from_numpy(ds.data)
            y, names = torch.as_tensor(ds.targets), ds.classes
        else:  # celeba: decode, centre-crop and resize once, keep uint8
            from torchvision.transforms import v2

            split = "train" if train else "test"
            tf = v2.Compose([v2.PILToTensor(), v2.CenterCrop(148), v2.Resize(size)])
            ds = make(tvd.CelebA, None, split=split, target_type="attr", transform=tf)
            from tqdm.auto import tqdm

            items = tqdm(range(len(ds)), desc=f"celeba {split}", unit="image")
            x = torch.stack([ds[i][0] for i in items])
            y, names = ds.attr, ds.attr_names[:40]
        split_seed = seed if train else seed + 1  # independent draws for the test split
        y = torch.as_tensor(y)
        out.append(_image_dataset(x, y, names, binarize, values, split_seed, test=not train))
    return out[0], out[1]


TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "kmnist", "emnist", "cifar10", "celeba")


# --------------------------------------------------------------------------- binarized MNIST
BINARIZED_MNIST_URL = (
    "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_{}.amat"
)


def _binarized_mnist(
    root: str | os.PathLike | None = None, download: bool = True, **_: Any
) -> tuple[ArrayDataset, ArrayDataset]:
    """The fixed binarization of Larochelle & Murray: train (50k) + valid (10k), test (10k).

    Reads ``root/binarized_mnist/binarized_mnist_packbits.npz`` (keys train/valid/test,
    784 bits packed per row) or the original ``binarized_mnist_{train,valid,test}.amat``.
    """
    folder = Path(os.path.expanduser(str(root or "~/.pyvae/data"))) / "binarized_mnist"
    packed = folder / "binarized_mnist_packbits.npz"
    parts: dict[str, np.ndarray] = {}
    if packed.exists():
        with np.load(packed) as z:
            parts = {k: np.unpackbits(z[k], axis=1)[:, :784] for k in ("train", "valid", "test")}
    else:
        for split in ("train", "valid", "test"):
            path = folder / f"binarized_mnist_{split}.amat"
            if not path.exists() and download:
                from torchvision.datasets.utils import download_url

                try:
                    download_url(BINARIZED_MNIST_URL.format(split), str(folder))
                except Exception as e:
                    raise FileNotFoundError(
                        f"binarized_mnist: {path} is missing and could not be downloaded ({e}). "
                        f"Put binarized_mnist_{{train,valid,test}}.amat or "
                        f"binarized_mnist_packbits.npz in {folder}."
                    ) from None
            if not path.exists():
                raise FileNotFoundError(
                    f"binarized_mnist: {path} is missing (download=False). Put "
                    f"binarized_mnist_{{train,valid,test}}.amat or binarized_mnist_packbits.npz "
                    f"in {folder}."
                )
            parts[split] = np.loadtxt(path, dtype=np.uint8)
    to = lambda a: torch.from_numpy(a.astype(np.uint8)).reshape(-1, 1, 28, 28)  # noqa: E731
    train = torch.cat([to(parts["train"]), to(parts["valid"])])
    return ArrayDataset(train), ArrayDataset(to(parts["test"]))


# --------------------------------------------------------------------------- local files
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or ``.gz``, into a NumPy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, gzip.BadGzipFile, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(
            f"{path}: cannot read the file ({e}); it is truncated or corrupt"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: the IDX header is truncated")
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims)) if ndim else 1
    expected = 4 + 4 * ndim + count * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path}: IDX file is truncated or corrupt ({len(raw)} bytes, expected {expected})"
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=4 + 4 * ndim)
    return data.reshape(tuple(int(d) for d in dims)).astype(dtype.newbyteorder("="))


def _numeric(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _csv_rows(path: Path) -> tuple[list[str] | None, list[list[str]]]:
    """A CSV's header row (None if its first row is numeric) and its other rows."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        raise ValueError(f"{path} is empty")
    header = None if all(_numeric(c) for c in rows[0]) else [c.strip() for c in rows[0]]
    return header, rows[1:] if header else rows


#: Header names that say a CSV column holds labels (compared in lower case).
LABEL_NAMES = ("label", "labels", "class", "target", "y", "cultivar", "species", "category")


def label_like_columns(path: str | os.PathLike) -> list[tuple[str | int, str]]:
    """The first and last columns of a numeric CSV that look like labels, each as ``(its header
    name, or its index, why)``: named like one (label, class, target, y, cultivar, ...), or
    holding class numbers (2 to 10 consecutive integers from 0 or 1, each value about 3
    times or more) beside real-valued features, or beside counts of at least twice as many
    distinct values. ``load(..., label_column=...)`` takes such a column out of the
    features."""
    path = Path(path)
    header, body = _csv_rows(path)
    width = len(header) if header else len(body[0]) if body else 0
    if width < 2 or not all(len(r) == width and all(map(_numeric, r)) for r in body):
        return []  # load's own errors say what is wrong
    values = np.array(body, dtype=np.float64).reshape(len(body), width)
    distinct = [np.unique(values[:, i]) for i in range(width)]
    integral = [bool(np.all(values[:, i] == np.round(values[:, i]))) for i in range(width)]
    found: list[tuple[str | int, str]] = []
    for i in sorted({0, width - 1}):
        name = header[i] if header else i
        others = [j for j in range(width) if j != i]
        k = len(distinct[i])
        classes = (
            integral[i]
            and 2 <= k <= min(10, len(body) / 3)
            and distinct[i][0] in (0, 1)
            and distinct[i][-1] == distinct[i][0] + k - 1
        )
        beside = not all(integral[j] for j in others) or all(
            len(distinct[j]) >= 2 * k for j in others
        )
        if header and header[i].lower() in LABEL_NAMES:
            found.append((name, f"it is named {header[i]!r}"))
        elif classes and beside:
            kinds = distinct[i].astype(np.int64).tolist()
            found.append((name, f"{k} distinct integers: {kinds}"))
    return found


def _read_csv(path: Path, label_column: str | int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """A numeric CSV (an optional header row) as float32 or int64, and an optional label column."""
    header, body = _csv_rows(path)
    names = header or [str(i) for i in range(len(body[0]) if body else 0)]
    labels = None
    if label_column is not None:
        if str(label_column) in names:
            col = names.index(str(label_column))
        elif isinstance(label_column, int) and -len(names) <= label_column < len(names):
            col = label_column % len(names)
        else:
            col = None
        if col is None:
            raise ValueError(f"{path}: no column {label_column!r}; columns are {names}")
        labels = np.array([r[col] for r in body])
        body = [r[:col] + r[col + 1 :] for r in body]
        names = names[:col] + names[col + 1 :]
    for i, row in enumerate(body):
        if len(row) != len(names):
            raise ValueError(
                f"{path}: row {i + 1 + bool(header)} has {len(row)} columns, expected {len(names)}"
            )
        for name, cell in zip(names, row, strict=True):
            if not _numeric(cell):
                raise ValueError(
                    f"{path}: column {name!r} is not numeric (row {i + 1 + bool(header)}: "
                    f"{cell!r}); drop or encode it, or name it as label_column"
                )
    values = np.array(body, dtype=np.float64)
    if labels is not None:
        try:
            labels = labels.astype(np.int64)
        except ValueError:  # string labels: index them
            _, labels = np.unique(labels, return_inverse=True)
    if np.all(values == np.round(values)):
        return values.astype(np.int64), labels
    return values.astype(np.float32), labels


def _read_image(path: Path) -> torch.Tensor:
    """One image file as uint8 (C, H, W): grey levels as 1 channel, anything else as RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L" if img.mode in ("1", "L", "I;16", "I", "F") else "RGB")
            array = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:  # PIL's errors for bad files
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(
            f"{path}: cannot read the image ({e}); it is truncated or corrupt: replace or remove it"
        ) from None
    return torch.from_numpy(array.copy()).reshape(*array.shape[:2], -1).permute(2, 0, 1)


def _read_image_folder(folder: Path) -> torch.Tensor:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    images = [_read_image(p) for p in files]
    first = images[0].shape
    for p, img in zip(files, images, strict=True):
        if img.shape != first:
            raise ValueError(
                f"images of mixed sizes in {folder}: {files[0].name} is {tuple(first)} (C, H, W) "
                f"but {p.name} is {tuple(img.shape)}; resize them to one size first"
            )
    return torch.stack(images)


def _is_binary(*parts: torch.Tensor) -> bool:
    """Whether the data holds only the values 0 and 1 (binary, whatever its dtype)."""
    return all(bool(((p == 0) | (p == 1)).all()) for p in parts) and any(p.numel() for p in parts)


def _split(
    x: torch.Tensor, y: Any, test_fraction: float, seed: int
) -> tuple[tuple[torch.Tensor, Any], tuple[torch.Tensor, Any]]:
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    n_test = int(round(test_fraction * len(x)))
    if test_fraction > 0 and len(x) > 1:
        n_test = min(max(n_test, 1), len(x) - 1)  # both splits keep at least one item
    # No test split: the file in its own order (scores and codes line up with its rows).
    order = (
        torch.arange(len(x))
        if n_test == 0
        else torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    )
    test, train = order[:n_test], order[n_test:]
    pick = (lambda idx: None) if y is None else (lambda idx: torch.as_tensor(y)[idx])
    return (x[train], pick(train)), (x[test], pick(test))


def _load_path(
    path: Path,
    binarize: str | None,
    values: str,
    seed: int,
    test_fraction: float,
    label_column: str | int | None,
) -> tuple[ArrayDataset, ArrayDataset]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    name = path.name.lower()
    if label_column is not None and not name.endswith(".csv"):
        raise ValueError(
            f"label_column applies to .csv files; {path} is not one (its labels come with "
            "the file: y in an .npz)"
        )
    train = test = None
    y = None
    if path.is_dir():
        x = _read_image_folder(path)
    elif name.endswith(".npy"):
        x = torch.from_numpy(np.load(path, allow_pickle=False))
    elif name.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            for xtr, xte, ytr, yte in (
                ("x_train", "x_test", "y_train", "y_test"),
                ("train", "test", "train_labels", "test_labels"),
            ):
                if xtr in keys and xte in keys:
                    get = lambda k: torch.from_numpy(z[k]) if k in keys else None  # noqa: E731
                    train, test = (get(xtr), get(ytr)), (get(xte), get(yte))
                    break
            else:
                if len(keys) != 1 and not {"x", "y"} <= set(keys) and "x" not in keys:
                    raise ValueError(
                        f"{path}: cannot tell the data apart: keys {keys}; use x (and y), "
                        "x_train/x_test (and y_train/y_test), or train/test"
                    )
                x = torch.from_numpy(z["x"] if "x" in keys else z[keys[0]])
                y = z["y"] if "y" in keys else None
    elif "ubyte" in name or name.endswith(".idx") or name.endswith(".gz"):
        x = torch.from_numpy(read_idx(path))
    elif name.endswith(".csv"):
        arr, y = _read_csv(path, label_column)
        x = torch.from_numpy(arr)
        for column, why in label_like_columns(path) if label_column is None else []:
            warnings.warn(
                f"{path}: column {column!r} looks like a label ({why}) and is read as a "
                f"feature; pass label_column={column!r} to read it as the labels",
                UserWarning,
                stacklevel=3,
            )
    else:
        raise ValueError(
            f"{path}: unknown file type; use .npy, .npz, IDX (*-ubyte, .gz), .csv or a folder "
            "of images"
        )
    if train is None:
        if y is not None and len(y) != len(x):
            raise ValueError(f"labels of the wrong length: {len(x)} items but {len(y)} labels")
        train, test = _split(x, y, test_fraction, seed)
    if _is_binary(train[0], test[0]):  # 0 and 1 only: binary already, not 8-bit pixels
        kept = []
        for x_part, y_part in (train, test):
            image = x_part.dtype == torch.uint8 and x_part.dim() >= 3
            kept.append(ArrayDataset(_channels_first(x_part) if image else x_part, y_part))
        return kept[0], kept[1]
    out = []
    for offset, (x_part, y_part) in enumerate((train, test)):
        if x_part.dtype == torch.uint8 and x_part.dim() >= 3:  # 8-bit images
            test_split = offset == 1  # binarized with seed + 1
            part = _image_dataset(x_part, y_part, None, binarize, values, seed + offset, test_split)
            out.append(part)
        else:
            if binarize is not None:
                raise ValueError(f"binarize applies to 8-bit images; {path} holds {x_part.dtype}")
            x_part, _ = source(x_part)
            out.append(ArrayDataset(x_part, y_part))
    return out[0], out[1]


# --------------------------------------------------------------------------- load
#: Datasets by name; each returns ``(train, test)``.
DATASETS: dict[str, Callable[..., tuple[ArrayDataset, ArrayDataset]]] = {
    "shapes": _load_shapes,
    "sprites": _load_sprites,
    "binarized_mnist": _binarized_mnist,
    **{name: (lambda n: lambda **kw: _torchvision(n, **kw))(name) for name in TORCHVISION_DATASETS},
}


def load(
    name_or_path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    download: bool = True,
    *,
    binarize: str | None = None,
    values: str = "unit",
    seed: int = 0,
    test_fraction: float = 0.1,
    label_column: str | int | None = None,
    **kwargs: Any,
) -> tuple[ArrayDataset, ArrayDataset]:
    """Load a dataset and return ``(train, test)`` :class:`ArrayDataset` objects.

    Args:
        name_or_path: a name from :data:`DATASETS` or a path:
            ``shapes`` and ``sprites`` (built in, generated: binary shapes whose labels
            are their generating factors; ``shapes``: 32x32, upright, 15000 + 2000, see
            :func:`make_shapes`; ``sprites``: 64x64, rotated, 10000 + 2000, see
            :func:`make_sprites`; ``n_train``, ``n_test``, ``size`` and ``seed`` may be given);
            ``mnist``, ``fashion_mnist``, ``kmnist``, ``emnist`` (balanced split),
            ``cifar10``, ``celeba`` (centre-cropped and resized to ``size``, default 64)
            through torchvision; ``binarized_mnist`` (the fixed binarization of
            Larochelle & Murray; train + valid as train);
            or a local ``.npy``/``.npz`` file, an IDX file (``*-ubyte``, ``.gz``), a numeric
            ``.csv`` (tabular or count data; a header row is optional) or a folder of
            images (all of one size). A local file holding only the values 0 and 1 (any
            dtype) is binary already: it is kept as it is (``binarize`` and ``values`` do
            not change it).
        root: the folder torchvision datasets live in (default ``~/.pyvae/data``); with
            files there, nothing is downloaded.
        download: try to download missing torchvision files.
        binarize: for 8-bit images and binary likelihoods: None (keep grey levels),
            ``"threshold"`` (pixel > 127), ``"static"`` (one Bernoulli draw per pixel,
            fixed by ``seed``) or ``"dynamic"`` (a fresh draw every batch of the train
            split; the test split is drawn once, as under ``"static"``, so that every
            evaluation scores the same images: stored as uint8 0/1, the same images for
            the same ``seed``).
        values: for 8-bit images without binarization: ``"unit"`` (floats in [0, 1], for
            Gaussian or continuous Bernoulli likelihoods) or ``"uint8"`` (the integers
            0..255, for the discretized logistic and beta-binomial likelihoods).
        seed: for the static binarization and for splitting a single local file. The
            train split is binarized with ``seed``, the test split with ``seed + 1``
            (``"static"``, and the test split under ``"dynamic"``).
        test_fraction: share of a single local file held out as the test set; with 0
            the train split is the whole file, in its own order.
        label_column: the CSV column (its header name, or its index) holding labels, if
            any: it becomes the targets and is kept out of the features. Without it, a
            first or last column that looks like a label (:func:`label_like_columns`)
            gets a warning.
    """
    _check_options(binarize, values)
    name = str(name_or_path)
    key = name.lower().replace("-", "_")
    if key in BINARY_DATASETS and (binarize is not None or values != "unit"):
        raise ValueError(
            f"{key} is binary already (values 0 and 1): binarize= and values= do not apply; "
            "use a Bernoulli likelihood"
        )
    if key in DATASETS and label_column is not None:
        raise ValueError(
            f"label_column applies to .csv files; {key} is a dataset with labels of its own"
        )
    if key in ("shapes", "sprites"):
        return DATASETS[key](seed=seed, **kwargs)
    if key in DATASETS:
        opts: dict[str, Any] = {"root": root, "download": download}
        if key in TORCHVISION_DATASETS:
            opts.update(binarize=binarize, values=values, seed=seed)
        return DATASETS[key](**opts, **kwargs)
    path = Path(os.path.expanduser(name))
    looks_like_path = os.sep in name or path.suffix or path.exists()
    if not looks_like_path:
        raise ValueError(
            f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))} "
            "(or a path to .npy, .npz, IDX, .csv or a folder of images)"
        )
    return _load_path(path, binarize, values, seed, test_fraction, label_column)

"""Encoder and decoder networks.

Contracts (any ``nn.Module`` that meets them works):

- **Encoder**: ``encoder(x) -> (loc, scale)`` for ``x`` of shape ``(*batch, *input_shape)``;
  ``loc`` and ``scale`` (positive) have shape ``(*batch, z_dim)``: the parameters of the
  diagonal Gaussian q(z|x). An ``input_shape`` attribute lets :class:`~pyvae.VAE` infer
  the data shape.
- **Decoder**: ``decoder(z) -> raw`` for ``z`` of shape ``(*batch, z_dim)``; ``raw`` has
  shape ``(*batch, k * C, *rest)`` for data of shape ``(C, *rest)``, where ``k`` is the
  likelihood's ``params_per_value`` (see :mod:`pyvae.likelihoods`).

Built in: :class:`MLPEncoder`/:class:`MLPDecoder` for any shape (images are flattened)
and :class:`ConvEncoder`/:class:`ConvDecoder` for images ``(C, H, W)``; the classifiers
:class:`MLPClassifier` and :class:`ConvClassifier` (``x -> logits`` of shape ``(*batch,
num_classes)``) for q(y|x) in the semi-supervised VAE.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .config import Configurable

__all__ = [
    "NETS",
    "CLASSIFIERS",
    "MLPEncoder",
    "MLPDecoder",
    "ConvEncoder",
    "ConvDecoder",
    "MLPClassifier",
    "ConvClassifier",
    "decoder_output_shape",
    "ACTIVATIONS",
]

MIN_SCALE = 1e-4  # floor on the encoder's posterior scale, for numerical safety


def decoder_output_shape(input_shape: Sequence[int], params_per_value: int) -> tuple[int, ...]:
    """The decoder's output shape (without batch) for data ``input_shape`` and k params."""
    shape = tuple(int(s) for s in input_shape)
    return (params_per_value * shape[0], *shape[1:])


#: The hidden layers' activations by name (``activation="softplus"``): names are plain
#: data, so a model that uses one saves and loads.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "glu": nn.GLU,
}
#: Activations that give fewer values than they take, and how many times fewer: the
#: linear layer before one is that many times wider. ``glu`` (a gated linear unit, the
#: "gated dense" layers of Tomczak & Welling's VampPrior models): ``a * sigmoid(b)`` of the
#: two halves ``a``, ``b`` of its input.
NARROWING: dict[type[nn.Module], int] = {nn.GLU: 2}


def _activation(activation: str | type[nn.Module]) -> type[nn.Module]:
    """The activation class of a name in :data:`ACTIVATIONS` (or a class, kept)."""
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; valid names: {', '.join(sorted(ACTIVATIONS))}"
        )
    return ACTIVATIONS[activation]


def _mlp(sizes: Sequence[int], activation: str | type[nn.Module]) -> nn.Sequential:
    for size in sizes[1:-1]:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"hidden layer sizes must be integers >= 1, got {list(sizes[1:-1])}")
    activation = _activation(activation)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i == len(sizes) - 2:
            layers.append(nn.Linear(a, b))
        else:
            layers += [nn.Linear(a, b * NARROWING.get(activation, 1)), activation()]
    return nn.Sequential(*layers)


def _gaussian_params(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    loc, raw_scale = h.chunk(2, dim=-1)
    return loc, F.softplus(raw_scale) + MIN_SCALE


def _check_shape(x: torch.Tensor, shape: tuple[int, ...], who: str) -> None:
    if tuple(x.shape[x.dim() - len(shape) :]) != shape or x.dim() < len(shape):
        raise ValueError(
            f"{who} expects inputs of shape (batch, {', '.join(map(str, shape))}), "
            f"got {tuple(x.shape)}"
        )


class MLPEncoder(Configurable, nn.Module):
    """Fully connected encoder: flatten ``input_shape``, ``hidden`` layers (``activation``:
    a name in :data:`ACTIVATIONS`, ReLU by default), then (loc, scale).

    ``hidden=()`` gives a linear encoder.
    """

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    def __init__(
        self,
        input_shape: Sequence[int],
        z_dim: int,
        hidden: Sequence[int] = (512, 256),
        activation: str | type[nn.Module] = "relu",
    ):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.z_dim = z_dim
        self.net = _mlp([math.prod(self.input_shape), *hidden, 2 * z_dim], activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_shape(x, self.input_shape, type(self).__name__)
        batch = x.shape[: x.dim() - len(self.input_shape)]
        return _gaussian_params(self.net(x.reshape(*batch, -1)))


class MLPDecoder(Configurable, nn.Module):
    """Fully connected decoder: ``z`` -> ``hidden`` ReLU layers -> ``output_shape``.

    ``hidden=()`` gives a linear decoder (probabilistic PCA with a Gaussian likelihood).
    """

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    def __init__(
        self,
        z_dim: int,
        output_shape: Sequence[int],
        hidden: Sequence[int] = (256, 512),
        activation: str | type[nn.Module] = "relu",
    ):
        super().__init__()
        self.z_dim = z_dim
        self.output_shape = tuple(int(s) for s in output_shape)
        self.net = _mlp([z_dim, *hidden, math.prod(self.output_shape)], activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape(*z.shape[:-1], *self.output_shape)


def _conv_sizes(size: int, layers: int) -> list[int]:
    """Spatial sizes after each stride-2 conv (kernel 4, padding 1): size // 2 each time."""
    sizes = [size]
    for _ in range(layers):
        sizes.append(sizes[-1] // 2)
    return sizes


def _refuse_channels_last(shape: tuple[int, ...], name: str) -> None:
    """For an image shape too small as ``(C, H, W)``: refuse it as channels-last
    ``(H, W, C)`` where it looks so (1 or 3 last, larger sizes first), saying how to fix it."""
    h, w, c = shape
    if c in (1, 3) and min(h, w) > 4:
        first = (c, h, w)
        raise ValueError(
            f"{name} {shape} looks channels-last (H, W, C); the conv nets take images "
            f"(C, H, W): build with input_shape={first} and pass the data as "
            "x.permute(0, 3, 1, 2) (a NumPy array: x.transpose(0, 3, 1, 2))"
        )


class ConvEncoder(Configurable, nn.Module):
    """Convolutional encoder for images ``(C, H, W)``: stride-2 convolutions (kernel 4)
    with ``channels`` filters, then a ``hidden``-unit layer and (loc, scale)."""

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    def __init__(
        self,
        input_shape: Sequence[int],
        z_dim: int,
        channels: Sequence[int] = (32, 64, 64),
        hidden: int = 256,
    ):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(
                f"ConvEncoder needs image data of shape (C, H, W), got {self.input_shape}; "
                "use net='mlp' for vectors"
            )
        c, h, w = self.input_shape
        hs, ws = _conv_sizes(h, len(channels)), _conv_sizes(w, len(channels))
        if min(hs[-1], ws[-1]) < 1:
            _refuse_channels_last(self.input_shape, "input_shape")
            raise ValueError(
                f"images of {h}x{w} are too small for {len(channels)} stride-2 layers; "
                "pass fewer channels"
            )
        self.z_dim = z_dim
        convs: list[nn.Module] = []
        for c_in, c_out in zip([c, *channels[:-1]], channels, strict=True):
            convs += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.convs = nn.Sequential(*convs)
        self.head = nn.Sequential(
            nn.Linear(channels[-1] * hs[-1] * ws[-1], hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * z_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_shape(x, self.input_shape, type(self).__name__)
        batch = x.shape[:-3]
        h = self.convs(x.reshape(-1, *self.input_shape)).flatten(1)
        return _gaussian_params(self.head(h).reshape(*batch, -1))


class ConvDecoder(Configurable, nn.Module):
    """Convolutional decoder mirroring :class:`ConvEncoder`: ``z`` -> ``hidden`` units ->
    a small feature map -> stride-2 transposed convolutions up to ``output_shape``."""

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    def __init__(
        self,
        z_dim: int,
        output_shape: Sequence[int],
        channels: Sequence[int] = (64, 64, 32),
        hidden: int = 256,
    ):
        super().__init__()
        self.output_shape = tuple(int(s) for s in output_shape)
        if len(self.output_shape) != 3:
            raise ValueError(
                f"ConvDecoder needs an image output shape (C, H, W), got {output_shape}"
            )
        c, h, w = self.output_shape
        self.z_dim = z_dim
        # Spatial sizes from small to full, mirroring the encoder's.
        self.hs = _conv_sizes(h, len(channels))[::-1]
        self.ws = _conv_sizes(w, len(channels))[::-1]
        if min(self.hs[0], self.ws[0]) < 1:
            _refuse_channels_last(self.output_shape, "output_shape")
            raise ValueError(f"images of {h}x{w} are too small for {len(channels)} layers")
        self.channels = tuple(channels)
        self.head = nn.Sequential(
            nn.Linear(z_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, channels[0] * self.hs[0] * self.ws[0]),
            nn.ReLU(),
        )
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
            for c_in, c_out in zip(channels, [*channels[1:], c], strict=True)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[:-1]
        h = self.head(z.reshape(-1, z.shape[-1]))
        h = h.reshape(-1, self.channels[0], self.hs[0], self.ws[0])
        for i, deconv in enumerate(self.deconvs):
            h = deconv(h, output_size=(self.hs[i + 1], self.ws[i + 1]))
            if i < len(self.deconvs) - 1:
                h = F.relu(h)
        return h.reshape(*batch, *self.output_shape)


class MLPClassifier(Configurable, nn.Module):
    """Fully connected classifier: flatten ``input_shape``, ``hidden`` ReLU layers, then
    ``num_classes`` logits, shape ``(*batch, num_classes)``."""

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (512, 256),
        activation: str | type[nn.Module] = "relu",
    ):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = num_classes
        self.net = _mlp([math.prod(self.input_shape), *hidden, num_classes], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_shape(x, self.input_shape, type(self).__name__)
        batch = x.shape[: x.dim() - len(self.input_shape)]
        return self.net(x.reshape(*batch, -1))


class ConvClassifier(ConvEncoder):
    """Convolutional classifier for images ``(C, H, W)``: :class:`ConvEncoder`'s layers
    ending in ``num_classes`` logits, shape ``(*batch, num_classes)``."""

    capturable: ClassVar[bool] = True  # CUDA graphs replay all it does

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64, 64),
        hidden: int = 256,
    ):
        super().__init__(input_shape, num_classes, channels, hidden)
        self.num_classes = num_classes
        self.head[-1] = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_shape(x, self.input_shape, type(self).__name__)
        batch = x.shape[:-3]
        h = self.convs(x.reshape(-1, *self.input_shape)).flatten(1)
        return self.head(h).reshape(*batch, self.num_classes)


#: Names accepted by :meth:`pyvae.VAE.build` (``net=...``): (encoder, decoder) classes.
NETS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "mlp": (MLPEncoder, MLPDecoder),
    "conv": (ConvEncoder, ConvDecoder),
}
#: Classifier networks q(y|x) by the same names (:meth:`pyvae.SemiSupervisedVAE.build`).
CLASSIFIERS: dict[str, type[nn.Module]] = {
    "mlp": MLPClassifier,
    "conv": ConvClassifier,
}

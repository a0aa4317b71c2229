"""Lossy compression into compact latent codes: quantised posterior means.

Each item becomes ``z_dim`` integers of ``bits`` bits: E[z|x] clipped to
``[-limit, limit]`` (prior standard deviations) and rounded to ``2**bits`` levels.
Decoding maps the integers back to z and decodes E[x|z]. :func:`rate_distortion` reports
the code size and the reconstruction error for several ``bits``.
Lossless compression by bits-back coding is :mod:`pyvae.compress.lossless`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..capabilities import LATENT_CODES
from ..checks import check_int
from ..data import as_tensor
from . import lossless

__all__ = ["Codes", "encode", "decode", "rate_distortion", "lossless"]


@dataclass
class Codes:
    """Quantised latent codes: ``values`` (N, z_dim) integers in [0, 2**bits)."""

    values: torch.Tensor
    bits: int
    limit: float

    @property
    def num_bytes(self) -> int:
        """Size of the packed codes in bytes (bits * z_dim per item, rounded up)."""
        return math.ceil(self.values.numel() * self.bits / 8)

    def bits_per_dim(self, input_shape: tuple[int, ...]) -> float:
        """Code bits per data dimension."""
        return self.values.shape[1] * self.bits / math.prod(input_shape)


def _check_bits(bits: int, limit: float) -> None:
    if check_int("bits", bits) > 16:
        raise ValueError(f"bits must be an integer in [1, 16], got {bits!r}")
    if not (math.isfinite(limit) and limit > 0):
        raise ValueError(f"limit must be a finite number > 0, got {limit!r}")


@torch.no_grad()
def encode(vae, data: Any, bits: int = 8, limit: float = 4.0) -> Codes:
    """Quantise E[z|x] of each item to ``bits`` bits per latent dimension (a VAE that
    supports ``"latent_codes"``, :mod:`pyvae.capabilities`)."""
    vae.require(LATENT_CODES)
    _check_bits(bits, limit)
    return _quantize(vae.encode(data).mean.cpu(), bits, limit)


def _quantize(z: torch.Tensor, bits: int, limit: float) -> Codes:
    """Posterior means ``z`` (N, z_dim) clipped to [-limit, limit] and rounded to 2**bits levels."""
    levels = 2**bits - 1
    q = torch.round((z.clamp(-limit, limit) + limit) / (2 * limit) * levels)
    dtype = torch.uint8 if bits <= 8 else torch.int32
    return Codes(q.to(dtype), int(bits), float(limit))


@torch.no_grad()
def decode(vae, codes: Codes, mean: bool = True) -> torch.Tensor:
    """Reconstructions E[x|z] (or draws with ``mean=False``) from quantised codes."""
    vae.require(LATENT_CODES)
    if codes.values.dim() != 2 or codes.values.shape[1] != vae.z_dim:
        raise ValueError(f"codes have shape {tuple(codes.values.shape)}, expected (N, {vae.z_dim})")
    px = vae.decode(_dequantize(codes))
    return px.mean if mean else px.sample()


@torch.no_grad()
def _dequantize(codes: Codes) -> torch.Tensor:
    """The latent codes the integers stand for: 2**bits levels over [-limit, limit]."""
    levels = 2**codes.bits - 1
    return codes.values.float() / levels * (2 * codes.limit) - codes.limit


@torch.no_grad()
def rate_distortion(
    vae,
    data: Any,
    bits: tuple[int, ...] = (1, 2, 3, 4, 6, 8),
    limit: float = 4.0,
    batch_size: int = 1024,
) -> list[dict[str, float]]:
    """For each number of ``bits``: the code size (``bytes_per_item``, ``bits_per_dim``)
    and the distortion (``mse`` of E[x|ẑ] against x, and ``nll``, -log p(x|ẑ) in nats per
    item). The last row, ``bits = inf``, is the unquantised posterior mean. Decoded
    ``batch_size`` items at a time."""
    vae.require(LATENT_CODES)
    x = as_tensor(data).float()
    means = vae.encode(x).mean.cpu()
    rows = []
    for b in (*bits, math.inf):
        if b == math.inf:
            z, z_dim_bits = means, 32
        else:
            _check_bits(b, limit)
            z, z_dim_bits = _dequantize(_quantize(means, b, limit)), b
        squared, nll = 0.0, 0.0
        for zb, xb in zip(z.split(batch_size), x.split(batch_size), strict=True):
            px = vae.decode(zb)
            target = xb.to(px.mean.device)
            squared += float(((px.mean - target) ** 2).flatten(1).mean(1).sum())
            nll += float(-px.log_prob(target).sum())
        rows.append(
            {
                "bits": float(b),
                "bytes_per_item": math.ceil(vae.z_dim * z_dim_bits / 8),
                "bits_per_dim": vae.z_dim * z_dim_bits / math.prod(vae.input_shape),
                "mse": squared / len(x),
                "nll": nll / len(x),
            }
        )
    return rows

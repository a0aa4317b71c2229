"""The parts' contracts, checked once on the first batch, as Pyro would check them.

Pyro's ``Trace_ELBO`` checks every site's shapes against its plates; the default fast path
(:class:`pyvae.objectives.DirectELBO`) computes the ELBO straight from the parts and checks
nothing, so a part that breaks its contract would train silently (a likelihood without
``.to_event(event_dim)``) or train a wrong model (a decoder whose output only broadcasts
against the data). :func:`check_parts` runs the parts once on a batch and raises a
:class:`ContractError` that names the part, the contract and the fix::

    check_parts(vae, x)   # x: (B, *input_shape), floats, already transformed

What it checks (under ``torch.no_grad``, with every module in eval mode and its mode
restored afterwards; it changes no parameter or buffer and draws no random numbers):

- for a VAE that declares the fast path (``vae.supports("fast_path")``: its ``model`` and
  ``guide`` are :class:`~pyvae.VAE`'s), the whole chain of the guide and the model:

  - encoder: ``encoder(likelihood.encoder_input(x))`` is ``(loc, scale)``, both of shape
    ``(B, z_dim)``, ``loc`` finite, ``scale`` finite and > 0;
  - prior: ``vae.p_z()`` (``prior()``, or ``prior(encoder)`` for a prior that declares
    ``needs_encoder``) has event shape ``(z_dim,)`` and a batch shape ``()`` (or one that
    broadcasts to ``(B,)``);
  - decoder: ``decoder(loc)`` has shape ``(B, *decoder_output_shape(input_shape, k))``
    for the likelihood's ``params_per_value`` k, exactly (not merely broadcastable);
  - likelihood: ``likelihood(decoder(loc), len(input_shape))`` has batch shape ``(B,)``
    and event shape ``input_shape``, and its ``log_prob(x)`` has shape ``(B,)``;

- for a variant with a model or guide of its own (conditional, semi-supervised,
  hierarchical, other posteriors), which feed the networks in their own ways and train
  through Pyro, only the likelihood, given a decoder output of the shape its
  ``params_per_value`` asks for (zeros). ``side`` (the variant's side information) is
  accepted and not used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.distributions import Distribution

from .capabilities import FAST_PATH
from .models.vae import VAE
from .nets import decoder_output_shape

__all__ = ["ContractError", "check_parts"]


class ContractError(ValueError):
    """A part of a VAE breaks its contract: ``part`` is its role (``"encoder"``,
    ``"prior"``, ``"decoder"``, ``"likelihood"``), ``cls`` its class name."""

    def __init__(self, part: str, obj: Any, contract: str, found: str, fix: str):
        self.part, self.cls = part, type(obj).__name__
        super().__init__(
            f"the {part} {self.cls} breaks the {part} contract: {contract}; {found}. Fix: {fix}"
        )


def _shape(shape: Any) -> str:
    return str(tuple(shape))


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode (no batch-norm statistics updated), then as before."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.train(training)


@torch.no_grad()
def check_parts(vae: VAE, x: torch.Tensor, **side: Any) -> None:
    """Check ``vae``'s parts on a batch ``x`` of shape ``(B, *input_shape)`` (floats,
    transformed as for training, on the VAE's device); raise :class:`ContractError` for
    the first broken contract. See the module docstring for what is checked."""
    if tuple(x.shape[1:]) != vae.input_shape:
        raise ValueError(f"x must have shape (B, *{vae.input_shape}), got {tuple(x.shape)}")
    with _eval_mode(vae):
        if vae.supports(FAST_PATH):  # VAE's own model and guide, declared
            loc = _check_encoder(vae, x)
            _check_prior(vae, len(x))
            raw = _check_decoder(vae, loc)
        else:
            raw = x.new_zeros(len(x), *decoder_output_shape(vae.input_shape, _k(vae)))
        _check_likelihood(vae, raw, x)


def _k(vae: VAE) -> int:
    return int(vae.likelihood.params_per_value)


def _check_encoder(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    """The encoder's contract on ``x`` (B, *input_shape); returns ``loc`` (B, z_dim)."""
    encoder, shape = vae.encoder, (len(x), vae.z_dim)
    contract = f"encoder(x) returns (loc, scale) of q(z|x), each of shape (B, z_dim) = {shape}"
    out = encoder(vae.likelihood.encoder_input(x))
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        found = f"it returned {type(out).__name__}"
        raise ContractError("encoder", encoder, contract, found, "return a pair (loc, scale)")
    loc, scale = out
    for name, value in (("loc", loc), ("scale", scale)):
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            found = f"its {name} has shape {_shape(getattr(value, 'shape', ()))}"
            fix = f"return z_dim = {vae.z_dim} values per item for {name}, e.g. from nn.Linear"
            raise ContractError("encoder", encoder, contract, found, fix)
    if not bool(torch.isfinite(loc).all()):
        found = "its loc has NaN or infinite values on the first batch"
        fix = "check the data for extreme values and the encoder's initialisation"
        raise ContractError("encoder", encoder, contract + ", loc finite", found, fix)
    bad = ~((scale > 0) & torch.isfinite(scale))
    if bool(bad.any()):
        found = (
            f"{int(bad.sum())} of its scale values are <= 0, infinite or NaN "
            f"(min {float(scale.min()):.3g})"
        )
        fix = "make the scale positive, e.g. scale = F.softplus(raw) + 1e-4 (or raw.exp())"
        raise ContractError("encoder", encoder, contract + ", scale > 0", found, fix)
    return loc


def _check_prior(vae: VAE, batch: int) -> None:
    """The prior's contract: ``vae.p_z()`` (``prior()``, or ``prior(encoder)`` where the
    prior declares ``needs_encoder``) has event shape ``(z_dim,)`` and a batch shape that
    broadcasts to ``(batch,)`` (normally ``()``)."""
    prior, z_dim = vae.prior, vae.z_dim
    call = "prior(encoder)" if prior.needs_encoder else "prior()"
    contract = f"{call} returns a distribution with event_shape ({z_dim},) and batch_shape ()"
    p = vae.p_z()
    if not isinstance(p, Distribution):
        found = f"it returned {type(p).__name__}"
        raise ContractError("prior", prior, contract, found, "return a pyro.distributions object")
    event, batch_shape = tuple(p.event_shape), tuple(p.batch_shape)
    if event != (z_dim,):
        found = f"its distribution has batch_shape {batch_shape} and event_shape {event}"
        if batch_shape[-1:] == (z_dim,) and not event:
            fix = "make z one event: end forward with .to_event(1)"
        else:
            fix = f"give the distribution z_dim = {z_dim} dimensions (the prior's z_dim)"
        raise ContractError("prior", prior, contract, found, fix)
    if batch_shape not in ((), (1,), (batch,)):
        found = f"its distribution has batch_shape {batch_shape}"
        fix = (
            "return one distribution for all items (batch_shape ()); the VAE's plate broadcasts it"
        )
        raise ContractError("prior", prior, contract, found, fix)


def _check_decoder(vae: VAE, z: torch.Tensor) -> torch.Tensor:
    """The decoder's contract on codes ``z`` (B, z_dim): its output has exactly the shape
    ``(B, *decoder_output_shape(input_shape, params_per_value))``. Returns the output."""
    decoder, k = vae.decoder, _k(vae)
    want = (len(z), *decoder_output_shape(vae.input_shape, k))
    contract = (
        f"decoder(z) returns the {type(vae.likelihood).__name__} likelihood's raw parameters, "
        f"shape (B, k * C, *rest) = {want} for data {vae.input_shape} and k = "
        f"params_per_value = {k}"
    )
    raw = decoder(z)
    if not isinstance(raw, torch.Tensor) or tuple(raw.shape) != want:
        found = f"it returned shape {_shape(getattr(raw, 'shape', ()))}"
        if isinstance(raw, torch.Tensor) and _broadcasts(raw.shape, want):
            found += ", which only broadcasts to that shape (a wrong model would train)"
        fix = (
            f"make the decoder's output shape pyvae.nets.decoder_output_shape({vae.input_shape}, "
            f"{k}) = {want[1:]}, e.g. MLPDecoder(z_dim, {want[1:]})"
        )
        raise ContractError("decoder", decoder, contract, found, fix)
    return raw


def _broadcasts(shape: torch.Size, to: tuple[int, ...]) -> bool:
    try:
        return tuple(torch.broadcast_shapes(shape, to)) == to
    except RuntimeError:
        return False


def _check_likelihood(vae: VAE, raw: torch.Tensor, x: torch.Tensor) -> None:
    """The likelihood's contract: ``likelihood(raw, len(input_shape))`` for a decoder
    output ``raw`` of the shape its ``params_per_value`` asks for is a distribution with
    batch shape ``(B,)`` and event shape ``input_shape``, and ``log_prob(x)`` is ``(B,)``."""
    likelihood, k, event_dim = vae.likelihood, _k(vae), len(vae.input_shape)
    batch, data = (len(x),), vae.input_shape
    contract = (
        f"likelihood(raw, event_dim={event_dim}) returns a distribution with batch_shape "
        f"{batch} and event_shape {data} (the data shape)"
    )
    fix_k = (
        f"set params_per_value to the number of decoder outputs forward uses per data value "
        f"(now {k}: raw has shape {_shape(raw.shape)}), and take them with "
        "self.split(raw, event_dim)"
    )
    try:
        px = likelihood(raw, event_dim)
    except Exception as e:
        found = f"forward raised {type(e).__name__}: {e}"
        raise ContractError("likelihood", likelihood, contract, found, fix_k) from e
    if not isinstance(px, Distribution):
        found = f"it returned {type(px).__name__}"
        fix = "return a pyro.distributions object"
        raise ContractError("likelihood", likelihood, contract, found, fix)
    shapes = (tuple(px.batch_shape), tuple(px.event_shape))
    if shapes != (batch, data):
        found = f"its distribution has batch_shape {shapes[0]} and event_shape {shapes[1]}"
        if shapes[0] + shapes[1] == batch + data:
            fix = (
                f"make the data values one event: end forward with .to_event(event_dim) "
                f"(event_dim = {event_dim} here)"
            )
        else:
            fix = fix_k
        raise ContractError("likelihood", likelihood, contract, found, fix)
    log_px = px.log_prob(x)
    if tuple(log_px.shape) != batch:
        found = f"log_prob(x) has shape {_shape(log_px.shape)}, not {batch}"
        fix = "sum log_prob over the data dimensions (to_event does it)"
        raise ContractError("likelihood", likelihood, contract, found, fix)

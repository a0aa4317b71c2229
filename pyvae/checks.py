"""Argument checks shared by the modules, each raising ``ValueError`` with the fix."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "check_device",
    "check_map_location",
    "check_int",
    "check_number",
    "check_finite",
    "finite_or_raise",
    "non_finite_step",
    "STEP_ADVICE",
]


def check_device(
    device: Any, spell: Callable[[str], str] = lambda d: f"device={d!r}"
) -> torch.device | None:
    """``device`` as a ``torch.device`` that exists on this machine (None stays None), or
    one ``ValueError`` saying what does. ``spell`` writes the argument with a value as the
    caller's user writes it, e.g. ``lambda d: f"--device {d}"`` in the command line."""
    if device is None:
        return None
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"{spell(str(device))} is not a device; use e.g. {spell('cpu')} or {spell('cuda')}"
        ) from None
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    here = spell("cpu") + (f" or {spell('cuda')} ({count} here)" if count else "")
    if d.type == "cuda" and count == 0:
        raise ValueError(f"{spell(str(d))}, but CUDA is not available here; use {here}")
    if d.type == "cuda" and d.index is not None and d.index >= count:
        raise ValueError(
            f"{spell(str(d))}, but this machine has {count} CUDA device(s), cuda:0 to "
            f"cuda:{count - 1}"
        )
    if d.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{spell(str(d))}, but MPS is not available here; use {here}")
    if d.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{spell(str(d))} is not supported; use {here}")
    return d


def check_map_location(map_location: Any) -> None:
    """A clear error for a ``map_location`` this machine cannot honour: a string that
    names no device, CUDA where there is none, a CUDA device it does not have. A dict or
    a function is left to ``torch.load``."""
    if isinstance(map_location, (str, torch.device)):
        check_device(map_location, spell=lambda d: f"map_location={d!r}")


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int, or ``ValueError`` unless it is an integer >= ``minimum``
    (NumPy integers count; booleans do not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(
    name: str, value: Any, above: float | None = None, at_least: float | None = None
) -> float:
    """``value`` as a float, or an error unless it is a finite real number (NumPy numbers
    count; booleans, strings and tensors do not), ``> above`` and ``>= at_least`` where
    given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    bound = (
        f" > {above:g}"
        if above is not None
        else f" >= {at_least:g}"
        if at_least is not None
        else ""
    )
    if (
        not math.isfinite(value)
        or (above is not None and not value > above)
        or (at_least is not None and not value >= at_least)
    ):
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return value


def check_finite(x: torch.Tensor, who: str = "the data") -> None:
    """``ValueError`` if a floating-point ``x`` holds NaN or infinite values."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{who} has {bad} NaN or infinite values; remove or impute them first")


def finite_or_raise(values: torch.Tensor, what: str) -> torch.Tensor:
    """``values``, or a ``ValueError`` if any is NaN or infinite (finite data whose
    magnitude overflows the model), instead of a silently wrong number."""
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        items = int(bad.reshape(len(bad), -1).any(1).sum()) if bad.dim() else 1
        raise ValueError(
            f"{what} is NaN or infinite for {items} item(s): their values overflow the "
            "model in float32; rescale the data (e.g. standardise it) or use a likelihood "
            "that fits its range"
        )
    return values


STEP_ADVICE = (
    "likely causes: a learning rate too high, a likelihood scale collapsing (use a "
    "floor: min_scale), or extreme data values; the parameters were not updated"
)


def non_finite_step(loss: float, where: str) -> FloatingPointError:
    """The error for a training step whose loss (or, if the loss is finite, a gradient)
    is NaN or infinite, naming ``where`` (epoch and batch) and the likely causes."""
    what = f"the loss became {loss}" if not math.isfinite(loss) else "a gradient became NaN/inf"
    return FloatingPointError(f"{what} at {where}: {STEP_ADVICE}")


def short_part_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """A method of a VAE whose parts may hand torch invalid values: torch's argument check
    (``Expected parameter scale ... but found invalid values:`` and a dump of the tensor)
    is raised as one line naming the method, without the dump."""

    @functools.wraps(method)
    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except ValueError as e:
            text = str(e)
            if not text.startswith("Expected parameter"):
                raise
            first = text.split(":\n", 1)[0]
            raise ValueError(
                f"{type(self).__name__}.{method.__name__}: a part gave a distribution invalid "
                f"values ({first}); check the encoder's scale (> 0) and the decoder's outputs"
            ) from None

    return checked

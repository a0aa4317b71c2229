"""Saving and loading VAEs safely: tensors and plain data only, never pickled code.

A saved file is written with ``torch.save`` and read with ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers, so loading a file cannot run
code. Writes are atomic (a temporary file in the same folder, then a rename), and an
existing file is never overwritten unless asked.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ._files import atomic_write, read_payload, write_payload
from .checks import check_map_location
from .config import check_spec, class_name, find_class, is_plain, unplain_argument

if TYPE_CHECKING:
    from .models.vae import VAE

__all__ = ["save", "load", "read", "atomic_write", "FORMAT_VERSION"]

FORMAT = "pyvae"
FORMAT_VERSION = 1
#: The base class every loaded VAE must derive from, found by name (see
#: :func:`pyvae.config.find_class`) so that this module does not import the model.
BASE_CLASS = "pyvae.model.VAE"
#: Rebuilding a VAE from a file's config may create at most this many times the values
#: the file holds (plus :data:`SPARE_VALUES`): a config that asks for more is refused
#: before its networks are allocated.
SIZE_FACTOR = 4
SPARE_VALUES = 2**22
PLAIN = "constructor arguments must be plain data (numbers, strings, lists, dicts, None)"


def save(vae: VAE, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save ``vae``'s parameters and its config (how to rebuild each part) to ``path``.

    Refused before anything is written: a part whose constructor arguments are not plain
    data (``pyvae.load`` could not rebuild it; a TypeError naming the part and the
    argument) and tensors holding NaN or infinite values (a ValueError naming them).
    """
    _check_plain(vae)
    state = {k: v.detach().cpu() for k, v in vae.state_dict().items()}
    _check_finite(state, f"cannot save {path}")
    contents = {"config": vae.config, "state_dict": state}
    return write_payload(path, FORMAT, FORMAT_VERSION, contents, overwrite)


def read(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The checked contents of a pyvae file: ``format``, ``version``, ``config`` (a dict),
    ``state_dict`` (a dict of named tensors) and whatever else the writer added."""
    check_map_location(map_location)
    payload = read_payload(path, FORMAT, FORMAT_VERSION, "model file", map_location)
    for key in ("config", "state_dict"):
        if not isinstance(payload.get(key), dict):
            raise ValueError(
                f"{path} is a damaged pyvae model file: its {key} is missing or not a dict"
            )
    odd = [k for k, v in payload["state_dict"].items() if not isinstance(v, torch.Tensor)]
    if odd or not all(isinstance(k, str) for k in payload["state_dict"]):
        raise ValueError(f"{path} is a damaged pyvae model file: {odd[:3]} are not tensors")
    return payload


def load(
    path: str | os.PathLike,
    vae: VAE | None = None,
    classes: Iterable[type] = (),
    map_location: Any = "cpu",
) -> VAE:
    """Load a VAE saved by :func:`save`.

    The VAE (its class: :class:`~pyvae.VAE` or a variant) and its parts are rebuilt from the
    saved config: pyvae's own classes are known; pass your own prior, likelihood, network
    or VAE subclass as ``classes=[...]``. For a part whose constructor arguments were not
    recorded (a plain ``nn.Module``), pass ``vae=``: a freshly built VAE of the same
    structure, into which the parameters are loaded.

    Checked before any network is built: the file (a folder, a ``map_location`` this
    machine lacks, a damaged file), its tensors (NaN or infinite values are refused) and
    its config (a malformed or unknown part; networks larger than the tensors it holds).
    """
    payload = read(path, map_location)
    state = payload["state_dict"]
    _check_finite(state, f"{path} cannot be loaded")
    template = vae is not None
    if vae is None:
        vae = _rebuild(path, payload["config"], list(classes), state)
    _check_fits(path, vae, state, template)
    try:
        vae.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path} does not fit the given VAE: {str(e)[:500]}") from None
    vae.eval()
    return vae


# --------------------------------------------------------------------------- checks
def _check_plain(vae: VAE) -> None:
    """A TypeError naming the first part (or option) whose arguments are not plain data."""
    for part in vae.parts:
        module = getattr(vae, part)
        found = unplain_argument(module)
        if found is None:
            continue
        name, value = found
        hint = " (a tensor: pass a number or tensor.tolist())" if torch.is_tensor(value) else ""
        raise TypeError(
            f"cannot save: the {part} ({class_name(type(module))}) was built with {name}="
            f"{_short(value)}{hint}, which pyvae.load could not rebuild from the file: {PLAIN}"
        )
    for name, value in vae.options.items():
        if not is_plain(value):
            raise TypeError(
                f"cannot save: the option {name}={_short(value)} of {type(vae).__name__} is "
                f"not plain data, so pyvae.load could not rebuild it from the file: {PLAIN}"
            )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_finite(state: Mapping[str, torch.Tensor], what: str) -> None:
    bad = [
        name
        for name, t in state.items()
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())
    ]
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ValueError(
            f"{what}: the tensors {', '.join(bad[:5])}{more} hold NaN or infinite values "
            "(training diverged before the model was saved?)"
        )


def _check_fits(
    path: str | os.PathLike, vae: VAE, state: Mapping[str, torch.Tensor], template: bool
) -> None:
    """A ValueError naming the tensors whose names or shapes differ between ``state``
    and ``vae``'s state dict."""
    expected = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected == found:
        return
    problems = [f"{k} missing" for k in expected if k not in found]
    problems += [f"{k} unexpected" for k in found if k not in expected]
    problems += [
        f"{k} is {found[k]} in the file, {expected[k]} in the VAE"
        for k in expected
        if k in found and expected[k] != found[k]
    ]
    more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
    which = "the given VAE" if template else "the VAE its config describes (a damaged file?)"
    raise ValueError(f"{path} does not fit {which}: {'; '.join(problems[:3])}{more}")


# --------------------------------------------------------------------------- rebuilding
class _TooLarge(Exception):
    pass


class _Budget(TorchDispatchMode):
    """Counts the values that tensor factories (``torch.empty``, ``zeros``, ``randn``,
    ``arange``, ...) are asked for, and stops before the total passes ``limit``."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.used = limit, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.used += _requested(func, args, kwargs)
        if self.used > self.limit:
            raise _TooLarge()
        return func(*args, **kwargs)


def _requested(func: Any, args: tuple, kwargs: dict) -> int:
    """The number of values a call of the aten op ``func`` allocates, where its arguments
    say so before it runs (0 for views and for ops sized by existing tensors)."""
    schema = func._schema
    values = dict(zip((a.name for a in schema.arguments), args, strict=False)) | kwargs
    name = schema.name.removeprefix("aten::")
    try:
        if name in ("randperm", "eye"):
            return int(values["n"]) * int(values.get("m", 1) if name == "eye" else 1)
        if name in ("linspace", "logspace"):
            return int(values["steps"])
        if name == "arange":
            start, end = values.get("start", 0), values["end"]
            return max(0, math.ceil((float(end) - float(start)) / float(values.get("step", 1))))
        fresh = not schema.returns or schema.returns[0].alias_info is None
        if fresh and isinstance(values.get("size"), (list, tuple)):
            return math.prod(int(s) for s in values["size"])
    except (TypeError, ValueError, KeyError, ZeroDivisionError, OverflowError):
        pass
    return 0


def _rebuild(
    path: str | os.PathLike, config: dict[str, Any], classes: list[type], state: Mapping
) -> VAE:
    """The VAE that ``config`` describes, with freshly initialised parameters; its config
    checked first, and its networks refused when they would be larger than ``state``."""
    name = config.get("class", BASE_CLASS)
    cls = find_class(name if isinstance(name, str) else repr(name), classes)
    if not (isinstance(cls, type) and issubclass(cls, find_class(BASE_CLASS))):
        raise ValueError(f"{path}: {name!r} is not a pyvae.VAE class")
    missing = [part for part in cls.parts if config.get(part) is None]
    if missing:
        raise ValueError(
            f"{path}: the {' and '.join(missing)} of this VAE cannot be rebuilt from the "
            "file (its constructor arguments were not recorded): build the same VAE "
            "again and pass it as load(path, vae=...), or make the class inherit "
            "pyvae.config.Configurable"
        )
    for part in cls.parts:
        problem = check_spec(config[part])
        if problem:
            raise ValueError(f"{path}: the config of the {part} is damaged: {problem}")
    shape, options = config.get("input_shape"), config.get("options", {})
    if not (
        isinstance(shape, list)
        and shape
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
    ):
        raise ValueError(f"{path}: the config's input_shape must be a list of sizes, got {shape!r}")
    if not isinstance(options, dict):
        raise ValueError(f"{path}: the config's options must be a dict, got {options!r}")
    part_classes = {part: find_class(config[part]["class"], classes) for part in cls.parts}
    budget = _Budget(SIZE_FACTOR * sum(t.numel() for t in state.values()) + SPARE_VALUES)
    with budget:
        parts = {
            part: _construct(path, part, part_classes[part], config[part], budget)
            for part in cls.parts
        }
        spec = {"class": name, "args": [], "kwargs": {**parts, "input_shape": shape, **options}}
        return _construct(path, "VAE", cls, spec, budget)


def _construct(path: str | os.PathLike, part: str, cls: type, spec: dict, budget: _Budget) -> Any:
    """``cls(*spec["args"], **spec["kwargs"])``, or a ValueError naming the file and the
    part: the call failed, or asked for more values than ``budget`` allows."""
    what = f"the {part} ({spec['class']})"
    try:
        return cls(*spec["args"], **spec["kwargs"])
    except _TooLarge:
        held = (budget.limit - SPARE_VALUES) // SIZE_FACTOR
        raise ValueError(
            f"{path}: its config asks for networks larger than the tensors it holds: {what} "
            f"asks for more than {budget.limit:,} values, the file holds {held:,} (a damaged "
            "or crafted file); nothing was built"
        ) from None
    except Exception as e:
        given = {k: v for k, v in spec["kwargs"].items() if is_plain(v)}
        raise ValueError(
            f"{path}: {what} cannot be built from the file's config (args "
            f"{_short(spec['args'])}, kwargs {_short(given)}): {type(e).__name__}: "
            f"{str(e)[:300]}"
        ) from None

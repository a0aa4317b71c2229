"""How parts were built: recorded constructor arguments, so a saved VAE can be rebuilt
from plain data (JSON) instead of pickled code.

Every prior, likelihood and built-in network is :class:`Configurable`: the arguments of
its constructor are recorded when it is made. :func:`part_spec` turns a part into
``{"class": "module.QualName", "args": [...], "kwargs": {...}}`` and :func:`build_part`
makes it again, looking the class up only among pyvae's own classes and the classes a
user passes in (never importing a module named in a file).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
from collections.abc import Iterable
from typing import Any

__all__ = [
    "Configurable",
    "part_spec",
    "build_part",
    "find_class",
    "class_name",
    "is_plain",
    "unplain_argument",
    "check_spec",
    "BUILTIN_MODULES",
]

#: The public modules whose classes (listed in their ``__all__``) a saved file may name
#: without the user passing them in: parts and VAE variants. A class is recorded under
#: the first of them that exports it (:func:`class_name`): the VAE classes, defined in
#: :mod:`pyvae.models`, keep the names of pyvae 0.1 (``"pyvae.model.VAE"``), so old files
#: load and old checkpoints resume.
BUILTIN_MODULES = [
    "pyvae.priors",
    "pyvae.likelihoods",
    "pyvae.nets",
    "pyvae.model",
    "pyvae.conditional",
    "pyvae.semisupervised",
    "pyvae.posteriors",
    "pyvae.hierarchical",
]


class Configurable:
    """Mixin that records the arguments of the outermost ``__init__`` call.

    Inherit from it (before ``nn.Module``) to make your own network loadable by name::

        class MyEncoder(pyvae.config.Configurable, torch.nn.Module):
            def __init__(self, input_shape, z_dim, width=64): ...
    """

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_records_args", False):
            return

        @functools.wraps(init)
        def recording_init(self, *args: Any, **kw: Any) -> None:
            if "_init_args" not in self.__dict__:  # the outermost call records
                self.__dict__["_init_args"] = (args, kw)
            init(self, *args, **kw)

        recording_init._records_args = True  # type: ignore[attr-defined]
        cls.__init__ = recording_init  # type: ignore[method-assign]


def class_name(cls: type) -> str:
    """The name a saved file records for ``cls``: ``"module.Name"`` of the first of
    :data:`BUILTIN_MODULES` that exports it (``"pyvae.model.VAE"``, though the class is
    defined in :mod:`pyvae.models.vae`), else ``"module.QualName"`` where it is defined."""
    for name, known in _builtin_classes().items():
        if known is cls:
            return name
    return f"{cls.__module__}.{cls.__qualname__}"


def _jsonable(value: Any) -> Any:
    """``value`` with tuples as lists, or raise TypeError if it is not plain data."""
    return json.loads(json.dumps(value))


def is_plain(value: Any) -> bool:
    """Whether ``value`` is plain data that a config can hold (what JSON holds: numbers,
    strings, booleans, None, and lists, tuples and dicts of them)."""
    try:
        _jsonable(value)
    except (TypeError, ValueError):
        return False
    return True


def unplain_argument(part: Any) -> tuple[str, Any] | None:
    """``(name, value)`` of the first recorded constructor argument of ``part`` that is
    not plain data (positional ones named by the constructor's signature); None when
    they all are, or when none were recorded."""
    recorded = part.__dict__.get("_init_args")
    if recorded is None:
        return None
    args, kwargs = recorded
    try:
        parameters = list(inspect.signature(type(part).__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        parameters = []
    positional = [
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    names = [positional[i] if i < len(positional) else f"#{i + 1}" for i in range(len(args))]
    for name, value in [*zip(names, args, strict=True), *kwargs.items()]:
        if not is_plain(value):
            return name, value
    return None


def part_spec(part: Any) -> dict[str, Any] | None:
    """``{"class", "args", "kwargs"}`` for a part whose constructor arguments were
    recorded and are plain data; None otherwise."""
    recorded = part.__dict__.get("_init_args")
    if recorded is None:
        return None
    args, kwargs = recorded
    try:
        return {
            "class": class_name(type(part)),
            "args": _jsonable(list(args)),
            "kwargs": _jsonable(dict(kwargs)),
        }
    except (TypeError, ValueError):
        return None


def _builtin_classes() -> dict[str, type]:
    """``{"module.Name": class}`` for the classes :data:`BUILTIN_MODULES` export, each
    under the first module that exports it."""
    out: dict[str, type] = {}
    for module in map(importlib.import_module, BUILTIN_MODULES):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and obj not in out.values():
                out[f"{module.__name__}.{name}"] = obj
    return out


def find_class(name: str, classes: Iterable[type] = ()) -> type:
    """The class a saved file names: one of pyvae's own (:data:`BUILTIN_MODULES`) or one
    of ``classes`` (matched by full or bare name); never an import of the named module."""
    classes = list(classes)
    known = _builtin_classes()
    known.update({class_name(c): c for c in classes})
    by_qualname = {c.__qualname__: c for c in classes}
    cls = known.get(name) or by_qualname.get(name.rsplit(".", 1)[-1])
    if cls is None:
        short = name.rsplit(".", 1)[-1]
        raise ValueError(
            f"the saved model uses the class {name!r}, which pyvae does not know: pass it in, "
            f"e.g. pyvae.load(path, classes=[{short}])"
        )
    return cls


def build_part(spec: dict[str, Any], classes: Iterable[type] = ()) -> Any:
    """Make a part from its spec; its class must be pyvae's or among ``classes``."""
    return find_class(spec["class"], classes)(*spec["args"], **spec["kwargs"])


def check_spec(spec: Any) -> str | None:
    """What is wrong with a part's spec as read from a file (None: nothing)."""
    if not isinstance(spec, dict):
        return f"a part's config must be a dict, got {type(spec).__name__}"
    if set(spec) != {"class", "args", "kwargs"}:
        return f"a part's config has the keys class, args, kwargs; got {sorted(map(str, spec))}"
    if not isinstance(spec["class"], str):
        return f"its class must be a name (a string), got {spec['class']!r}"
    if not isinstance(spec["args"], list):
        return f"its args must be a list, got {type(spec['args']).__name__}"
    kwargs = spec["kwargs"]
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        return "its kwargs must be a dict with string keys"
    return None

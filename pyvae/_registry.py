"""Names -> classes: the lookup every registry of names shares (``PRIORS`` in
:mod:`pyvae.priors`, ``LIKELIHOODS`` in :mod:`pyvae.likelihoods`, ``NETS`` and
``CLASSIFIERS`` in :mod:`pyvae.nets`).

This module imports nothing from pyvae.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

__all__ = ["lookup"]

T = TypeVar("T")


def lookup(kind: str, table: Mapping[str, T], name: str) -> T:
    """``table[name]``, or a ``ValueError`` naming the ``kind`` and the valid names."""
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; valid names: {', '.join(sorted(table))}")
    return table[name]

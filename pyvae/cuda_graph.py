"""Kept for imports written before pyvae 0.2: the CUDA-graph step is in
:mod:`pyvae.train.graphed`."""

from .train.graphed import GraphedStep, capturable

__all__ = ["GraphedStep", "capturable"]

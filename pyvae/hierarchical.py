"""The hierarchical VAE's old home: the code is in :mod:`pyvae.models.hierarchical`.

This module keeps ``from pyvae.hierarchical import HierarchicalVAE`` working and is the
name saved files record for the class (:func:`pyvae.config.class_name`).
"""

from .models.hierarchical import HierarchicalVAE

__all__ = ["HierarchicalVAE"]

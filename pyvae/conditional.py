"""The conditional VAE's old home: the code is in :mod:`pyvae.models.conditional`.

This module keeps ``from pyvae.conditional import ConditionalVAE`` working and is the
name saved files record for the class (:func:`pyvae.config.class_name`).
"""

from .models.conditional import ConditionalVAE

__all__ = ["ConditionalVAE"]

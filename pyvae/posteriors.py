"""The richer posteriors' old home: the code is in :mod:`pyvae.models.posteriors`.

This module keeps ``from pyvae.posteriors import IAFVAE, LowRankVAE, ...`` working and
is the name saved files record for its classes (:func:`pyvae.config.class_name`).
"""

from .models.posteriors import (
    IAF,
    IAFVAE,
    ExtraOutputEncoder,
    IAFPosterior,
    LowRankVAE,
    PosteriorVAE,
)

__all__ = ["ExtraOutputEncoder", "IAF", "IAFPosterior", "PosteriorVAE", "IAFVAE", "LowRankVAE"]

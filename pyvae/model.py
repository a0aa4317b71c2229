"""The VAE's old home: the code is in :mod:`pyvae.models.vae`, the registries of names
beside their classes (:mod:`pyvae.priors`, :mod:`pyvae.likelihoods`, :mod:`pyvae.nets`).

This module keeps ``from pyvae.model import VAE, PRIORS, LIKELIHOODS, NETS`` working and
is the name saved files record for the class (``"pyvae.model.VAE"``,
:func:`pyvae.config.class_name`).
"""

from .likelihoods import LIKELIHOODS
from .models.vae import VAE
from .nets import NETS
from .priors import PRIORS

__all__ = ["VAE", "PRIORS", "LIKELIHOODS", "NETS"]

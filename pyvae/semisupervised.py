"""The semi-supervised VAE's old home: the code is in :mod:`pyvae.models.semisupervised`
(``CLASSIFIERS`` in :mod:`pyvae.nets`).

This module keeps ``from pyvae.semisupervised import SemiSupervisedVAE,
SemiSupervisedELBO, CLASSIFIERS`` working and is the name saved files record for the
class (:func:`pyvae.config.class_name`).
"""

from .models.semisupervised import SemiSupervisedELBO, SemiSupervisedVAE
from .nets import CLASSIFIERS

__all__ = ["SemiSupervisedVAE", "SemiSupervisedELBO", "CLASSIFIERS"]

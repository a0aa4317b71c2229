"""pyvae: variational autoencoders as Pyro models and guides.

>>> from pyvae import VAE, fit, data
>>> train, test = data.load("sprites")
>>> vae = VAE.build(input_shape=(1, 64, 64), z_dim=8, prior="mog", likelihood="bernoulli")
>>> history = fit(vae, train, val=test, epochs=5)
"""

from . import (
    anomaly,
    callbacks,
    compress,
    conditional,
    config,
    data,
    evaluate,
    hierarchical,
    iwae,
    likelihoods,
    nets,
    plots,
    posteriors,
    priors,
    semisupervised,
)
from .conditional import ConditionalVAE
from .io import load, save
from .model import LIKELIHOODS, NETS, PRIORS, VAE
from .semisupervised import SemiSupervisedVAE
from .train import fit

__version__ = "0.1.0"

__all__ = [
    "VAE",
    "ConditionalVAE",
    "SemiSupervisedVAE",
    "fit",
    "load",
    "save",
    "anomaly",
    "callbacks",
    "compress",
    "conditional",
    "config",
    "data",
    "evaluate",
    "hierarchical",
    "iwae",
    "posteriors",
    "priors",
    "likelihoods",
    "nets",
    "plots",
    "semisupervised",
    "PRIORS",
    "LIKELIHOODS",
    "NETS",
    "__version__",
]

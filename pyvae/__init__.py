"""pyvae: variational autoencoders as Pyro models and guides.

>>> from pyvae import VAE, fit, data
>>> train, test = data.load("sprites")
>>> vae = VAE.build(input_shape=(1, 64, 64), z_dim=8, prior="mog", likelihood="bernoulli")
>>> history = fit(vae, train, val=test, epochs=5)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import (
    callbacks,
    capabilities,
    conditional,
    config,
    contracts,
    data,
    disentanglement,
    evaluate,
    factor_vae,
    hierarchical,
    iwae,
    likelihoods,
    models,
    nets,
    posterior,
    posteriors,
    priors,
    semisupervised,
    stacked,
    tcvae,
)
from ._version import __version__
from .capabilities import CapabilityError
from .io import load, save
from .likelihoods import LIKELIHOODS
from .models import VAE, ConditionalVAE, SemiSupervisedVAE
from .nets import NETS
from .posterior import posterior_samples
from .priors import PRIORS
from .train import fit

if TYPE_CHECKING:
    from . import anomaly, cli, compress, plots

#: Submodules loaded on first use (``pyvae.plots``, ``from pyvae import plots``), so
#: that ``import pyvae`` does not import matplotlib or the codecs.
LAZY_MODULES = ("anomaly", "cli", "compress", "plots")

__all__ = [
    "VAE",
    "ConditionalVAE",
    "SemiSupervisedVAE",
    "fit",
    "load",
    "save",
    "anomaly",
    "callbacks",
    "cli",
    "compress",
    "conditional",
    "config",
    "contracts",
    "capabilities",
    "CapabilityError",
    "data",
    "disentanglement",
    "evaluate",
    "factor_vae",
    "hierarchical",
    "iwae",
    "models",
    "posterior",
    "posterior_samples",
    "posteriors",
    "priors",
    "likelihoods",
    "nets",
    "plots",
    "semisupervised",
    "stacked",
    "tcvae",
    "PRIORS",
    "LIKELIHOODS",
    "NETS",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Import a submodule of :data:`LAZY_MODULES` on first access (PEP 562)."""
    if name in LAZY_MODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

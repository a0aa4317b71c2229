"""The VAE and its variants, each a Pyro model and guide, and the one estimator of their
bounds.

=====================  ==============================================================
module                 what it owns
=====================  ==============================================================
``vae``                :class:`VAE`: the model, the guide, building from names, using a
                       trained VAE, the declared capabilities
``estimator``          the ELBO's terms and the importance-sampled log-likelihood, from
                       traces or (``"fast_path"``) from the parts, in memory-bounded chunks
``conditional``        :class:`ConditionalVAE`: p(x|z, c), q(z|x, c)
``semisupervised``     :class:`SemiSupervisedVAE` (M2) and :class:`SemiSupervisedELBO`
``posteriors``         :class:`IAFVAE`, :class:`LowRankVAE`: richer q(z|x)
``hierarchical``       :class:`HierarchicalVAE`: two stochastic layers
``_shared``            what the classes share: the batch check, the KL weight, the prior
=====================  ==============================================================

Saved files name the classes by their public modules (``"pyvae.model.VAE"``,
``"pyvae.conditional.ConditionalVAE"``, ...; :func:`pyvae.config.class_name`).
"""

from .conditional import ConditionalVAE
from .hierarchical import HierarchicalVAE
from .posteriors import IAFVAE, LowRankVAE, PosteriorVAE
from .semisupervised import SemiSupervisedELBO, SemiSupervisedVAE
from .vae import VAE

__all__ = [
    "VAE",
    "ConditionalVAE",
    "SemiSupervisedVAE",
    "SemiSupervisedELBO",
    "PosteriorVAE",
    "IAFVAE",
    "LowRankVAE",
    "HierarchicalVAE",
]

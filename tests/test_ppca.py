"""Correctness against a closed form: a linear-Gaussian VAE is probabilistic PCA.

With a linear decoder, an isotropic Gaussian likelihood with a learned scale and a
standard-normal prior, the VAE's marginal p(x) is PPCA's N(mu, W W^T + sigma^2 I). The
maximum of PPCA's log-likelihood is known in closed form (Tipping & Bishop 1999), and a
linear encoder with a diagonal Gaussian can make the ELBO tight at that maximum (Lucas et
al. 2019). So the trained VAE's ELBO must come within a small tolerance of it, from below.
A wrong ELBO (e.g. a KL counted twice, or minibatch scaling off) misses by far more.
"""

import math

import torch

from pyvae import VAE, fit, likelihoods, nets, priors


def ppca_max_loglik(x: torch.Tensor, q: int) -> float:
    """PPCA's maximum log-likelihood per example (Tipping & Bishop 1999, eqs. 7-8)."""
    n, d = x.shape
    xc = x - x.mean(0)
    eig = torch.linalg.eigvalsh(xc.T @ xc / n).flip(0).double()
    sigma2 = eig[q:].mean()
    log_det = eig[:q].log().sum() + (d - q) * sigma2.log()
    return float(-0.5 * (d * math.log(2 * math.pi) + log_det + d))


def test_linear_gaussian_vae_reaches_ppca_max_loglik():
    d, q, n = 5, 2, 2000
    g = torch.Generator().manual_seed(1)
    w = torch.randn(d, q, generator=g) * torch.tensor([2.0, 1.0])
    x = torch.randn(n, q, generator=g) @ w.T + 0.5 * torch.randn(n, d, generator=g) + 3.0
    exact = ppca_max_loglik(x, q)

    vae = VAE(
        encoder=nets.MLPEncoder((d,), q, hidden=()),
        decoder=nets.MLPDecoder(q, (d,), hidden=()),
        prior=priors.StandardNormal(q),
        likelihood=likelihoods.Gaussian(scale="learned"),
    )
    fit(vae, x, epochs=1500, batch_size=n, lr=0.03, progress=False)
    fit(vae, x, epochs=500, batch_size=n, lr=0.003, progress=False)
    elbo = float(vae.elbo(x, num_samples=20))
    # A bound: below the maximum (up to Monte-Carlo error), and tight at the optimum.
    assert exact - 0.015 < elbo < exact + 0.01, (elbo, exact)

"""Evaluation: importance-sampled log-likelihood against an exact marginal, ELBO terms,
bits per dimension, active units and KL per dimension."""

import math

import pyro
import pytest
import torch
from helpers import small_vae

from pyvae import PRIORS, VAE, evaluate, fit, likelihoods, nets, priors


@pytest.fixture(scope="module")
def linear_gaussian():
    """A trained linear-Gaussian VAE (probabilistic PCA), its data, and the exact log p(x)
    of each item under the VAE's own generative model N(b, W W^T + s^2 I)."""
    pyro.set_rng_seed(0)
    d, q, n = 5, 2, 400
    g = torch.Generator().manual_seed(1)
    w = torch.randn(d, q, generator=g) * torch.tensor([2.0, 1.0])
    x = torch.randn(n, q, generator=g) @ w.T + 0.5 * torch.randn(n, d, generator=g) + 3.0
    vae = VAE(
        nets.MLPEncoder((d,), q, hidden=()),
        nets.MLPDecoder(q, (d,), hidden=()),
        priors.StandardNormal(q),
        likelihoods.Gaussian(scale="learned"),
    )
    fit(vae, x, epochs=300, batch_size=n, lr=0.03, progress=False)
    linear = vae.decoder.net[0]
    cov = linear.weight @ linear.weight.T + vae.likelihood.scale**2 * torch.eye(d)
    exact = torch.distributions.MultivariateNormal(linear.bias, cov).log_prob(x).detach()
    return vae, x, exact


def test_log_likelihood_matches_the_exact_marginal(linear_gaussian):
    vae, x, exact = linear_gaussian
    ll = vae.log_likelihood(x, num_samples=2000)
    assert ll.shape == (len(x),)
    assert float(ll.mean()) == pytest.approx(float(exact.mean()), abs=0.01)
    assert float((ll - exact).abs().median()) < 0.02  # per item too, up to Monte Carlo noise
    assert float((ll - exact).abs().max()) < 0.3


def test_log_likelihood_rises_with_k_and_bounds_the_elbo(linear_gaussian):
    vae, x, exact = linear_gaussian
    means = [float(evaluate.log_likelihood(vae, x, num_samples=k).mean()) for k in (1, 10, 300)]
    elbo = float(vae.elbo(x, num_samples=20))
    assert means[0] == pytest.approx(elbo, abs=0.05)  # K = 1 is the ELBO
    assert means[0] < means[1] < means[2] <= float(exact.mean()) + 0.01
    assert means[2] - elbo > 0.1


def test_chunking_does_not_change_the_estimate(linear_gaussian):
    vae, x, _ = linear_gaussian
    whole = evaluate.log_likelihood(vae, x[:50], num_samples=400)
    chunked = evaluate.log_likelihood(vae, x[:50], num_samples=400, batch_size=7, max_elements=30)
    assert float((whole - chunked).mean().abs()) < 0.03  # same estimator, other draws
    assert torch.allclose(whole, chunked, atol=0.3)


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_log_likelihood_works_for_every_prior(prior):
    vae = VAE.build(
        input_shape=(1, 6, 6),
        z_dim=2,
        prior=prior,
        net_kwargs={"hidden": (8,)},
        prior_kwargs={"components": 3} if prior in ("mog", "vamp") else None,
    )
    x = (torch.rand(10, 1, 6, 6) > 0.5).float()
    ll = vae.log_likelihood(x, num_samples=50)
    elbo = vae.elbo(x, reduction="none", num_samples=50)
    assert ll.shape == (10,) and torch.isfinite(ll).all()
    assert float(ll.mean()) > float(elbo.mean())  # tighter than the ELBO on average


def test_log_likelihood_works_for_a_custom_likelihood():
    import pyro.distributions as dist
    from torch.distributions import constraints

    class Exponential(likelihoods.Likelihood):
        support = constraints.nonnegative

        def forward(self, raw, event_dim):
            return dist.Exponential(torch.nn.functional.softplus(raw) + 1e-3).to_event(event_dim)

    vae = VAE.build(
        input_shape=(4,), z_dim=2, likelihood=Exponential(), net_kwargs={"hidden": (8,)}
    )
    x = torch.rand(12, 4) * 3
    assert torch.isfinite(vae.log_likelihood(x, num_samples=20)).all()
    with pytest.raises(ValueError, match="support"):
        vae.log_likelihood(-x, num_samples=20)


def test_bad_arguments_are_refused():
    vae = VAE.build(input_shape=(4,), z_dim=2, likelihood="gaussian", net_kwargs={"hidden": (8,)})
    x = torch.randn(5, 4)
    for kwargs in ({"num_samples": 0}, {"num_samples": 2.5}, {"batch_size": 0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            evaluate.log_likelihood(vae, x, **kwargs)
    with pytest.raises(ValueError, match="input_shape"):
        evaluate.log_likelihood(vae, torch.randn(5, 3))
    with pytest.raises(ValueError, match="empty"):
        evaluate.log_likelihood(vae, torch.randn(0, 4))


def test_elbo_terms_add_up_and_match_the_elbo(linear_gaussian):
    vae, x, _ = linear_gaussian
    terms = evaluate.elbo_terms(vae, x, num_samples=50)
    assert set(terms) == {"elbo", "reconstruction", "kl"}
    assert all(t.shape == (len(x),) for t in terms.values())
    assert torch.allclose(terms["elbo"], terms["reconstruction"] - terms["kl"])
    assert float(terms["elbo"].mean()) == pytest.approx(
        float(vae.elbo(x, num_samples=50)), abs=0.02
    )
    # With a standard normal prior the KL has a closed form per dimension.
    assert float(terms["kl"].mean()) == pytest.approx(
        float(evaluate.kl_per_dim(vae, x).sum()), abs=0.03
    )


def test_kl_per_dim_and_active_units(linear_gaussian):
    vae, x, _ = linear_gaussian
    kl = evaluate.kl_per_dim(vae, x)
    assert kl.shape == (2,) and (kl > 0.1).all()  # both dimensions carry information
    count, variance = evaluate.active_units(vae, x)
    assert count == 2 and variance.shape == (2,)
    # A dimension the encoder ignores is inactive and has no KL.
    with torch.no_grad():
        w = vae.encoder.net[0].weight
        w[1].zero_()  # loc of z_1 no longer depends on x
    assert evaluate.active_units(vae, x)[0] == 1
    mog = VAE.build(input_shape=(5,), z_dim=2, prior="mog", likelihood="gaussian")
    with pytest.raises(ValueError, match="factorises"):
        evaluate.kl_per_dim(mog, x)


def test_bits_per_dim():
    assert evaluate.bits_per_dim(-784 * math.log(2), (1, 28, 28)) == pytest.approx(1.0)
    assert float(evaluate.bits_per_dim(torch.tensor(-100.0), (784,))) == pytest.approx(
        100 / (784 * math.log(2))
    )


@pytest.mark.parametrize("prior", ["normal", "mog", "vamp", "flow"])
def test_the_traceless_path_gives_the_traced_numbers(prior):
    """A plain VAE is scored from its parts directly; a subclass with its own model goes
    through Pyro traces. For the same seed both give the same terms and log-weights."""

    class Traced(VAE):
        def model(self, x=None, **kwargs):
            return super().model(x, **kwargs)

    vae = small_vae(prior, likelihood="gaussian")
    traced = Traced(vae.encoder, vae.decoder, vae.prior, vae.likelihood, vae.input_shape)
    x = torch.rand(6, 1, 8, 8)
    out = []
    for model in (vae, traced):
        pyro.set_rng_seed(1)
        terms = evaluate.elbo_terms(model, x, num_samples=3)
        pyro.set_rng_seed(1)
        out.append((terms, evaluate.log_weights(model, x, 7)))
    (direct, w_direct), (trace, w_trace) = out
    for key in ("elbo", "reconstruction", "kl"):
        assert torch.allclose(direct[key], trace[key], atol=1e-4), key
    assert w_direct.shape == (7, 6) and torch.allclose(w_direct, w_trace, atol=1e-4)

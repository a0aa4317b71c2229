"""The IWAE objective: per-datapoint bounds by hand, K = 1 is the ELBO, rising with K,
training through fit, and why pyro's RenyiELBO(alpha=0) is not used."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from helpers import small_vae
from pyro import poutine
from pyro.infer import RenyiELBO, Trace_ELBO

from pyvae import fit
from pyvae.iwae import IWAE

K = 7


@pytest.fixture
def x():
    return torch.randn(6, 1, 8, 8)


def bound_by_hand(vae, x, z, num_data=None, kl_weight=1.0):
    """(N/B) sum_b [logsumexp_k w_kb - log K] for draws z (K, B, z_dim), straight from
    the parts: w = log p(x|z) + kl_weight * (log p(z) - log q(z|x))."""
    loc, scale = vae.encoder(x)
    log_q = dist.Normal(loc, scale).log_prob(z).sum(-1)
    log_pz = vae.prior(vae.encoder).log_prob(z)
    log_px = vae.likelihood(vae.decoder(z), 3).log_prob(x)
    w = log_px + kl_weight * (log_pz - log_q)
    bounds = torch.logsumexp(w, 0) - math.log(len(z))
    return bounds.sum() * (num_data or len(x)) / len(x)


@pytest.mark.parametrize("num_data, kl_weight", [(None, 1.0), (60, 1.0), (60, 0.3)])
def test_equals_the_per_datapoint_bound_computed_by_hand(x, num_data, kl_weight):
    vae = small_vae(likelihood="gaussian")
    guide = poutine.trace(vae.guide)  # records the K draws the objective used
    loss = IWAE(K).loss(vae.model, guide, x, num_data=num_data, kl_weight=kl_weight)
    z = guide.trace.nodes["z"]["value"]
    assert z.shape == (K, 6, 3)
    with torch.no_grad():
        expected = bound_by_hand(vae, x, z, num_data, kl_weight)
    assert -loss == pytest.approx(expected.item(), rel=1e-5)


def test_renyi_elbo_is_the_iwae_bound_only_without_minibatch_scaling(x):
    """RenyiELBO(alpha=0) takes logsumexp of log-weights already scaled by N/B."""
    vae = small_vae(likelihood="gaussian")
    results = {}
    for num_data in (None, 60):
        for name, elbo in (
            ("renyi", RenyiELBO(alpha=0, num_particles=K, vectorize_particles=True)),
            ("iwae", IWAE(K)),
        ):
            elbo.max_plate_nesting = 2  # no guessing run: both see the same draws
            pyro.set_rng_seed(1)
            results[name, num_data] = elbo.loss(vae.model, vae.guide, x, num_data=num_data)
    assert results["renyi", None] == pytest.approx(results["iwae", None], rel=1e-6)
    assert abs(results["renyi", 60] - results["iwae", 60]) > 1.0


def test_one_particle_is_trace_elbo_same_draws_same_gradients(x):
    vae = small_vae(likelihood="gaussian")
    out = []
    for elbo in (IWAE(1), Trace_ELBO()):
        pyro.set_rng_seed(3)
        loss = elbo.loss_and_grads(vae.model, vae.guide, x, num_data=60, kl_weight=0.5)
        grads = [p.grad.clone() for p in vae.parameters()]
        vae.zero_grad()
        out.append((loss, grads))
    (l1, g1), (l2, g2) = out
    assert l1 == pytest.approx(l2, rel=1e-6)
    for a, b in zip(g1, g2, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_bound_rises_with_k_towards_the_log_likelihood(trained):
    vae, test = trained
    x = test[:64].float()
    pyro.set_rng_seed(0)
    bounds = {
        k: -sum(IWAE(k).loss(vae.model, vae.guide, x) for _ in range(5)) / 5 / len(x)
        for k in (1, 5, 50)
    }
    assert bounds[1] + 0.2 < bounds[5] and bounds[5] + 0.1 < bounds[50]  # nats per item
    log_lik = float(vae.log_likelihood(x, num_samples=2000).mean())
    assert bounds[50] < log_lik + 0.05 and log_lik - bounds[50] < bounds[50] - bounds[1]


@pytest.mark.parametrize("optim", [None, "pyro"])
def test_fit_trains_with_iwae(optim):
    torch.manual_seed(0)
    x = (torch.rand(128, 1, 8, 8) < torch.linspace(0.1, 0.9, 64).reshape(1, 1, 8, 8)).float()
    vae = small_vae()
    before = float(vae.elbo(x, num_samples=20))
    kwargs = {"optim": pyro.optim.Adam({"lr": 1e-2})} if optim else {"lr": 1e-2}
    history = fit(vae, x, epochs=8, batch_size=32, elbo=IWAE(5), progress=False, **kwargs)
    assert history["train_elbo"][-1] > history["train_elbo"][0]
    assert float(vae.elbo(x, num_samples=20)) > before + 3


def test_clear_errors_for_sites_outside_the_data_plate_and_discrete_guides():
    x = torch.randn(4)

    def model(x):
        w = pyro.sample("w", dist.Normal(0.0, 1.0))  # a global latent: no per-item weight
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(w, 1.0), obs=x)

    def guide(x):
        pyro.sample("w", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="inside the vectorised plate 'data'.*'w'"):
        IWAE(3).loss(model, guide, x)

    def model2(x):
        with pyro.plate("data", len(x)):
            c = pyro.sample("c", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(c, 1.0), obs=x)

    def guide2(x):
        with pyro.plate("data", len(x)):
            pyro.sample("c", dist.Bernoulli(0.3))

    with pytest.raises(ValueError, match="reparameterised.*'c'"):
        IWAE(3).loss(model2, guide2, x)
    with pytest.raises(ValueError, match="num_particles"):
        IWAE(0)

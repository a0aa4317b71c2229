"""Richer posteriors: IAF and low-rank full covariance. Trace structure, log q(z|x)
against direct computations, training, save/load, and their limiting cases."""

import copy
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from pyvae import VAE, fit, likelihoods, load, nets, plots, priors
from pyvae.posteriors import IAFVAE, ExtraOutputEncoder, IAFPosterior, LowRankVAE

SHAPE = (1, 8, 8)


def iaf_vae(num_steps=2, prior="normal"):
    return IAFVAE.build(
        SHAPE,
        3,
        prior,
        num_steps=num_steps,
        context_dim=4,
        hidden_dims=(12,),
        net_kwargs={"hidden": (16,)},
        prior_kwargs={"components": 4} if prior in ("mog", "vamp") else None,
    )


def low_rank_vae(rank=2, prior="normal"):
    return LowRankVAE.build(
        SHAPE,
        3,
        prior,
        rank=rank,
        net_kwargs={"hidden": (16,)},
        prior_kwargs={"components": 4} if prior in ("mog", "vamp") else None,
    )


@pytest.fixture
def x():
    torch.manual_seed(0)
    probs = torch.linspace(0.1, 0.9, 64).reshape(1, *SHAPE)
    return (torch.rand(96, *SHAPE) < probs).float()


@pytest.mark.parametrize("make", [iaf_vae, low_rank_vae])
def test_trace_structure(make, x):
    vae = make()
    guide_tr = poutine.trace(vae.guide).get_trace(x[:10], num_data=40)
    model_tr = poutine.trace(poutine.replay(vae.model, trace=guide_tr)).get_trace(
        x[:10], num_data=40
    )
    sites = [
        [n for n, s in tr.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)]
        for tr in (model_tr, guide_tr)
    ]
    assert sites == [["z", "x"], ["z"]]
    q = guide_tr.nodes["z"]
    expected = IAFPosterior if make is iaf_vae else dist.LowRankMultivariateNormal
    assert isinstance(q["fn"], expected)
    assert q["fn"].batch_shape == (10,) and q["fn"].event_shape == (3,)
    (frame,) = q["cond_indep_stack"]
    assert (frame.name, frame.size, frame.full_size) == ("data", 10, 40)
    assert q["scale"] == pytest.approx(4.0)
    params = [n for n, s in guide_tr.nodes.items() if s["type"] == "param"]
    assert any(n.startswith(vae._pyro_name + ".flow") for n in params) == (make is iaf_vae)


def test_iaf_log_q_is_the_base_density_minus_the_log_jacobian_determinant(x):
    """log q(z|x) = log N(z0; mu, sigma) - log |det dz/dz0|, the determinant computed by
    autograd from the composed flow steps; for a z just drawn (Pyro's cached inverse) and
    for any other z (each step inverted)."""
    vae = iaf_vae(num_steps=3)
    xb = x[:4]
    loc, scale, context = vae.encoder.with_extra(xb)
    z0 = dist.Normal(loc, scale).sample()

    def flow(z, context):
        for step in vae.flow.steps:
            z = step.condition(context)(z)
        return z

    z = flow(z0, context).detach()
    fresh = vae.posterior(xb).log_prob(z).detach()  # no cached inverse: inverts each step
    for b in range(len(xb)):
        jac = torch.autograd.functional.jacobian(
            lambda v, b=b: flow(v[None], context[b : b + 1])[0], z0[b]
        )
        log_det = torch.linalg.slogdet(jac)[1]
        expected = dist.Normal(loc[b], scale[b]).log_prob(z0[b]).sum() - log_det
        assert fresh[b].item() == pytest.approx(expected.item(), abs=1e-3)
        assert abs(log_det.item()) > 0.1  # the flow is not volume-preserving here
    q = vae.posterior(xb)
    drawn = q.rsample()
    cached = q.log_prob(drawn)
    assert torch.allclose(cached, vae.posterior(xb).log_prob(drawn.detach()), atol=1e-4)


def test_low_rank_log_q_is_the_full_covariance_normal(x):
    vae = low_rank_vae(rank=2)
    q = vae.posterior(x[:5])
    loc, scale, w = vae.encoder.with_extra(x[:5])
    factor = w.reshape(5, 3, 2)
    cov = factor @ factor.transpose(-1, -2) + torch.diag_embed(scale**2)
    assert (cov - torch.diag_embed(torch.diagonal(cov, dim1=-2, dim2=-1))).abs().max() > 1e-2
    z = q.sample((4,))
    full = dist.MultivariateNormal(loc, covariance_matrix=cov)
    assert torch.allclose(q.log_prob(z), full.log_prob(z), atol=1e-4)
    encoded = vae.encode(x[:5])
    assert torch.allclose(encoded.covariance_matrix, cov, atol=1e-5)


@pytest.mark.parametrize("make", [iaf_vae, low_rank_vae])
def test_a_few_epochs_raise_the_elbo_and_methods_work(make, x):
    vae = make()
    before = float(vae.elbo(x, num_samples=20))
    history = fit(vae, x, epochs=6, batch_size=32, lr=1e-2, progress=False)
    assert history["train_elbo"][-1] > history["train_elbo"][0]
    assert float(vae.elbo(x, num_samples=20)) > before + 3
    q = vae.encode(x)
    assert q.batch_shape == (96,) and q.event_shape == (3,) and q.mean.shape == (96, 3)
    assert torch.isfinite(q.log_prob(q.sample())).all()
    assert vae.reconstruct(x[:5]).shape == (5, *SHAPE) and vae.sample(4).shape == (4, *SHAPE)
    assert "latent_space" not in plots.run_figures(vae, history, x)  # x has no labels
    ll = vae.log_likelihood(x[:32], num_samples=100)
    assert ll.shape == (32,) and ll.mean() > vae.elbo(x[:32], num_samples=100)


def test_iaf_mean_is_a_monte_carlo_estimate(x):
    vae = iaf_vae()
    q = vae.encode(x[:3])
    draws = q.sample((4000,))
    assert torch.allclose(q.mean, draws.mean(0), atol=0.15)
    assert not torch.allclose(q.mean, q.base_dist.mean, atol=1e-3)


@pytest.mark.parametrize("make", [iaf_vae, low_rank_vae])
@pytest.mark.parametrize("prior", ["vamp", "flow"])
def test_save_load_round_trip(tmp_path, make, prior, x):
    vae = make(prior=prior)
    path = vae.save(tmp_path / "m.pt")
    loaded = load(path)
    assert type(loaded) is type(vae) and loaded.config == vae.config
    for (k, a), b in zip(vae.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k  # incl. the MADE orders and masks (buffers)
    elbos = []
    for model in (vae, loaded):
        pyro.set_rng_seed(0)
        elbos.append(model.elbo(x[:8], reduction="none"))
    assert torch.allclose(*elbos)


def test_zero_flow_steps_is_the_diagonal_vae_same_draws(x):
    vae = iaf_vae(num_steps=0)
    plain = VAE(*map(copy.deepcopy, (vae.encoder, vae.decoder, vae.prior, vae.likelihood)))
    elbos = []
    for model in (vae, plain):
        pyro.set_rng_seed(5)
        elbos.append(model.elbo(x, num_samples=3, reduction="none"))
    assert torch.allclose(*elbos)


def test_zero_covariance_factor_is_the_diagonal_vae(x):
    """With the factor outputs switched off, q(z|x) and the log-weights of every draw
    are the diagonal VAE's."""
    vae = low_rank_vae(rank=2)
    last = vae.encoder.net.net[-1]  # outputs: locs (3 + 6), then raw scales (3 + 6)
    with torch.no_grad():
        last.weight[3:9] = 0.0
        last.bias[3:9] = 0.0
    plain = VAE(*map(copy.deepcopy, (vae.encoder, vae.decoder, vae.prior, vae.likelihood)))
    xb = x[:6]
    with pyro.plate("particles", 4, dim=-2):
        guide_tr = poutine.trace(vae.guide).get_trace(xb)
        weights = []
        for m in (vae, plain):
            g = poutine.trace(poutine.replay(m.guide, trace=guide_tr)).get_trace(xb)
            mt = poutine.trace(poutine.replay(m.model, trace=guide_tr)).get_trace(xb)
            g.compute_log_prob()
            mt.compute_log_prob()
            weights.append(mt.log_prob_sum() - g.log_prob_sum())
    assert weights[0].item() == pytest.approx(weights[1].item(), abs=1e-3)


def test_low_rank_posterior_is_exact_for_a_linear_gaussian_model():
    """A linear-Gaussian model's posterior has a full covariance: a rank-2 q can equal it
    (then every importance weight is p(x) and the ELBO is log p(x) exactly); the diagonal
    q cannot."""
    d, k, sigma = 5, 2, 0.5
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(d, k, generator=g), torch.randn(d, generator=g)
    x = torch.randn(20, d, generator=g) * 2
    marginal = dist.MultivariateNormal(b, w @ w.T + sigma**2 * torch.eye(d))
    # Exact posterior: N(M (x - b), S), S = (I + W^T W / sigma^2)^-1, M = S W^T / sigma^2.
    s = torch.linalg.inv(torch.eye(k) + w.T @ w / sigma**2)
    m = s @ w.T / sigma**2
    diag = 0.5 * torch.linalg.eigvalsh(s).min()
    factor = torch.linalg.cholesky(s - diag * torch.eye(k))  # S = F F^T + diag

    encoder = ExtraOutputEncoder((d,), k, extra_dim=k * k, net_kwargs={"hidden": ()})
    decoder = nets.MLPDecoder(k, (d,), hidden=())
    vae = LowRankVAE(encoder, decoder, priors.StandardNormal(k), likelihoods.Gaussian(sigma))
    raw_scale = math.log(math.expm1(math.sqrt(diag) - nets.MIN_SCALE))  # softplus^-1
    with torch.no_grad():
        layer = encoder.net.net[0]  # x -> [loc (k), factor (k*k), raw scales (k + k*k)]
        layer.weight.zero_()
        layer.weight[:k] = m
        layer.bias.zero_()
        layer.bias[:k] = -m @ b
        layer.bias[k : k + k * k] = factor.reshape(-1)
        layer.bias[k + k * k :] = raw_scale
        decoder.net[0].weight.copy_(w)
        decoder.net[0].bias.copy_(b)
    exact = marginal.log_prob(x)
    assert torch.allclose(vae.elbo(x, num_samples=5, reduction="none"), exact, atol=1e-4)
    # The diagonal q with the same loc and scale:
    plain = VAE(*map(copy.deepcopy, (encoder, decoder, vae.prior, vae.likelihood)))
    assert (plain.elbo(x, num_samples=200, reduction="none") < exact - 0.05).all()


def test_bad_parts_are_refused_with_a_fix():
    base = iaf_vae()
    with pytest.raises(ValueError, match="extra_dim=4"):
        IAFVAE(nets.MLPEncoder(SHAPE, 3), base.decoder, base.prior, base.likelihood, base.flow)
    with pytest.raises(ValueError, match="z_dim \\* rank"):
        LowRankVAE(nets.MLPEncoder(SHAPE, 3), base.decoder, base.prior, base.likelihood)
    with pytest.raises(ValueError, match="z_dim >= 2"):
        IAFVAE.build((4,), 1, num_steps=1)

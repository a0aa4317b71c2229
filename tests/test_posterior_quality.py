"""How good is q(z|x)? Inference gaps, exact posteriors and refinement against closed forms.

A linear-Gaussian VAE is probabilistic PCA (as in test_ppca.py): p(z) = N(0, I),
p(x|z) = N(W z + b, sigma^2 I). Its posterior is N(m, S) with precision
L = I + W^T W / sigma^2, S = L^-1, m = S W^T (x - b) / sigma^2, and its marginal is
p(x) = N(b, W W^T + sigma^2 I). With orthogonal columns of W the posterior is diagonal, so
the best diagonal Gaussian is exact (approximation gap 0); otherwise the best diagonal
Gaussian has the mean m and variances 1 / L_dd, and its gap is
KL(q || p) = (sum_d log L_dd - log det L) / 2.
"""

from __future__ import annotations

import pyro
import pytest
import torch
from matplotlib.figure import Figure

from pyvae import VAE, evaluate, likelihoods, nets, plots, posterior_samples, priors
from pyvae import capabilities as caps
from pyvae.nets import MIN_SCALE
from pyvae.posterior import proposal_bounds, refine

D, Q, SIGMA = 6, 2, 0.5


def decoder_weights(diagonal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    w = torch.randn(D, Q, generator=g)
    w[:, 1] += 1.5 * w[:, 0]  # correlated columns: a correlated posterior
    if diagonal:  # orthogonal columns: W^T W diagonal, so is the posterior
        w = torch.linalg.qr(w).Q * torch.tensor([2.0, 1.0])
    return w, torch.randn(D, generator=g)


def ppca_vae(w: torch.Tensor, b: torch.Tensor, cls: type[VAE] = VAE) -> VAE:
    vae = cls(
        encoder=nets.MLPEncoder((D,), Q, hidden=()),
        decoder=nets.MLPDecoder(Q, (D,), hidden=()),
        prior=priors.StandardNormal(Q),
        likelihood=likelihoods.Gaussian(scale=SIGMA),
    )
    with torch.no_grad():
        vae.decoder.net[0].weight.copy_(w)
        vae.decoder.net[0].bias.copy_(b)
    return vae


def exact(w, b, x) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The posterior's means (N, Q), covariance and precision (Q, Q), and log p(x) (N,)."""
    precision = torch.eye(Q) + w.T @ w / SIGMA**2
    cov = torch.linalg.inv(precision)
    means = (x - b) @ w @ cov / SIGMA**2
    marginal = torch.distributions.MultivariateNormal(b, w @ w.T + SIGMA**2 * torch.eye(D))
    return means, cov, precision, marginal.log_prob(x)


def set_exact_encoder(vae: VAE, w, b) -> None:
    """The encoder gives the posterior mean and the best diagonal scales, 1/sqrt(L_dd)."""
    _, cov, precision, _ = exact(w, b, torch.zeros(1, D))
    a = cov @ w.T / SIGMA**2  # m = a (x - b)
    scale = precision.diagonal().rsqrt()
    with torch.no_grad():
        layer = vae.encoder.net[0]
        layer.weight.zero_()
        layer.weight[:Q] = a
        layer.bias[:Q] = -a @ b
        layer.bias[Q:] = torch.log(torch.expm1(scale - MIN_SCALE))


def data(w, b, n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return torch.randn(n, Q, generator=g) @ w.T + b + SIGMA * torch.randn(n, D, generator=g)


GAPS = {"num_samples": 2000, "steps": 200, "lr": 0.2, "num_particles": 16}


def test_the_optimal_gaussian_is_exact_when_the_posterior_is_diagonal():
    w, b = decoder_weights(diagonal=True)
    vae, x = ppca_vae(w, b), data(w, b)
    log_px = exact(w, b, x)[3]
    gaps = evaluate.inference_gaps(vae, x, **GAPS)
    assert all(v.shape == (len(x),) for v in gaps.values())
    assert torch.allclose(gaps["elbo_optimal"], log_px, atol=0.02)
    assert torch.allclose(gaps["log_likelihood"], log_px, atol=0.01)
    assert gaps["approximation_gap"].abs().max() < 0.03
    # an untrained encoder is far from the posterior: a large amortization gap
    assert (gaps["amortization_gap"] > 1.0).all()
    expected = gaps["elbo_optimal"] - gaps["elbo_amortized"]
    assert torch.equal(gaps["amortization_gap"], expected)


def test_the_approximation_gap_is_the_kl_of_the_best_diagonal_gaussian():
    w, b = decoder_weights(diagonal=False)
    vae, x = ppca_vae(w, b), data(w, b)
    _, _, precision, log_px = exact(w, b, x)
    kl = 0.5 * (precision.diagonal().log().sum() - torch.logdet(precision))
    assert kl > 0.2  # a correlated posterior: the diagonal family cannot reach it
    gaps = evaluate.inference_gaps(vae, x, **{**GAPS, "steps": 500})
    # the optimal ELBO is log p(x) - KL exactly; the gap from IS adds its noise
    assert torch.allclose(log_px - gaps["elbo_optimal"], kl.expand(len(x)), atol=0.03)
    assert torch.allclose(gaps["approximation_gap"], kl.expand(len(x)), atol=0.1)
    assert torch.allclose(gaps["log_likelihood"], log_px, atol=0.1)
    assert (gaps["amortization_gap"] > -0.02).all()


def test_with_the_exact_encoder_the_amortization_gap_vanishes():
    w, b = decoder_weights(diagonal=True)
    vae, x = ppca_vae(w, b), data(w, b)
    set_exact_encoder(vae, w, b)
    log_px = exact(w, b, x)[3]
    gaps = evaluate.inference_gaps(vae, x, num_samples=500, steps=50, lr=0.01)
    # q is the posterior: log p(x, z) - log q(z) is log p(x) for every draw
    assert torch.allclose(gaps["elbo_amortized"], log_px, atol=1e-3)
    # SVI from the optimum only jitters around it: within Monte Carlo noise of it
    assert torch.allclose(gaps["elbo_optimal"], log_px, atol=5e-3)
    assert gaps["amortization_gap"].abs().max() < 5e-3


def test_refinement_raises_the_elbo_and_leaves_the_vae_alone():
    w, b = decoder_weights(diagonal=False)
    vae, x = ppca_vae(w, b), data(w, b)
    pyro.infer.Trace_ELBO().loss(vae.model, vae.guide, x)  # the VAE's own store entries
    store = set(pyro.get_param_store().keys())
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    q = vae.encode(x)
    refined = vae.encode(x, refine_steps=60, refine_lr=0.05)
    assert type(refined) is type(q) and refined.batch_shape == (len(x),)
    assert refined.event_shape == (Q,)
    base = proposal_bounds(vae, x, q, 500)
    better = proposal_bounds(vae, x, refined, 500)
    assert (better.elbo > base.elbo + 0.5).all()
    means = exact(w, b, x)[0]
    assert (refined.mean - means).abs().max() < (q.mean - means).abs().max()
    assert set(pyro.get_param_store().keys()) == store  # no local parameter in the store
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())
    assert all(p.grad is None for p in vae.parameters())
    assert torch.equal(vae.encode(x, refine_steps=0).mean, q.mean)


class Traced(VAE):
    """A VAE without the fast path: its bounds come from traces of its model."""

    capabilities = VAE.capabilities - {caps.FAST_PATH, caps.CUDA_GRAPH}


def test_traces_and_parts_give_the_same_bounds():
    w, b = decoder_weights(diagonal=False)
    x = data(w, b)
    fast, traced = ppca_vae(w, b), ppca_vae(w, b, Traced)
    traced.load_state_dict(fast.state_dict())
    q = refine(fast, x, steps=5, lr=0.1)
    pyro.set_rng_seed(1)
    a = proposal_bounds(fast, x, q, 64)
    pyro.set_rng_seed(1)
    b_ = proposal_bounds(traced, x, q, 64)
    for one, other in zip(a, b_, strict=True):
        assert torch.allclose(one, other, atol=1e-4)


def test_nuts_draws_match_the_closed_form_posterior():
    w, b = decoder_weights(diagonal=False)
    vae, x = ppca_vae(w, b), data(w, b, n=2)
    means, cov, _, _ = exact(w, b, x)
    out = posterior_samples(vae, x, num_samples=100, warmup_steps=60, num_chains=2)
    assert out.chains.shape == (2, 100, 2, Q) and out.samples.shape == (200, 2, Q)
    assert out.r_hat.shape == out.ess.shape == (2, Q)
    assert (out.r_hat < 1.1).all() and (out.ess > 50).all()
    sd = cov.diagonal().sqrt()
    error = (out.samples.mean(0) - means).abs()
    assert (error < 4 * sd / out.ess.sqrt()).all(), (error, out.ess)
    ess = float(out.ess.min())
    for i in range(2):
        sample_cov = torch.cov(out.samples[:, i].T)
        assert torch.allclose(sample_cov, cov, atol=float(5 * cov.diagonal().max() / ess**0.5))


def test_posterior_comparison_draws_one_panel_per_item():
    w, b = decoder_weights(diagonal=False)
    vae, x = ppca_vae(w, b), data(w, b, n=3)
    draws = torch.randn(50, 3, Q)
    fig = plots.posterior_comparison(vae, x, draws)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    qs = {"encoder": vae.encode(x), "refined": vae.encode(x, refine_steps=2)}
    fig = plots.posterior_comparison(vae, x, draws, qs=qs, max_items=2)
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 4  # two ellipses per q


@pytest.mark.parametrize("steps", [0, 1])
def test_zero_steps_keep_the_encoders_q(steps):
    w, b = decoder_weights(diagonal=True)
    vae, x = ppca_vae(w, b), data(w, b)
    q = vae.encode(x)
    moved = refine(vae, x, steps=steps, lr=0.1)
    assert torch.equal(moved.mean, q.mean) == (steps == 0)

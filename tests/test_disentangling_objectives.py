"""β-TCVAE (pyvae.tcvae) and FactorVAE (pyvae.factor_vae) against known answers: the
decomposition sums back to the KL of the same draw, β = 1 is Trace_ELBO, the TC estimate
of a Gaussian q(z) converges to -1/2 log det of its correlation matrix, the discriminator
learns the density ratio, training raises the ELBO through fit and plain SVI, and the
discriminator is checkpointed with the run."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from helpers import small_vae

from pyvae import fit
from pyvae.factor_vae import Discriminator, FactorVAELoss, permute_dims
from pyvae.objectives import DirectELBO
from pyvae.tcvae import BetaTCELBO, kl_decomposition, pairwise_log_prob
from pyvae.train.steps import Objective, TorchStep, make_step
from pyvae.train.strategy import Local

N = 64


@pytest.fixture
def x() -> torch.Tensor:
    """Binary 8x8 images with structure (a bar at a random row), so the ELBO can rise."""
    g = torch.Generator().manual_seed(1)
    rows = torch.randint(8, (N,), generator=g)
    images = torch.zeros(N, 1, 8, 8)
    images[torch.arange(N), 0, rows] = 1.0
    return images


def correlated_gaussian_posteriors(batch: int, rho: float, dims: int, sigma: float = 0.5):
    """Posteriors q(z|x_n) = N(x_n, sigma^2 I) with x_n ~ N(0, R - sigma^2 I), so that
    q(z) = N(0, R), R the correlation matrix with off-diagonal ``rho``; and one draw each."""
    g = torch.Generator().manual_seed(0)
    corr = torch.full((dims, dims), rho).fill_diagonal_(1.0).double()
    cov = corr - sigma**2 * torch.eye(dims, dtype=torch.float64)
    loc = torch.randn(batch, dims, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    scale = torch.full_like(loc, sigma)
    z = loc + scale * torch.randn(batch, dims, generator=g, dtype=torch.float64)
    return dist.Normal(loc, scale).to_event(1), z, corr


# --------------------------------------------------------------------------- the estimator
@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_the_three_terms_sum_to_the_kl_of_the_same_draw(estimator):
    q, z, _ = correlated_gaussian_posteriors(16, 0.3, 4)
    log_p = dist.Normal(0.0, 1.0).expand([4]).to_event(1).log_prob(z)
    t = kl_decomposition(pairwise_log_prob(q, z), log_p, num_data=1000, estimator=estimator)
    assert torch.allclose(t["kl"], q.log_prob(z) - log_p)
    assert torch.allclose(t["mi"] + t["tc"] + t["dimwise_kl"], t["kl"], atol=1e-10)


def test_the_tc_estimate_of_a_gaussian_converges_to_its_closed_form():
    dims, rho, n = 3, 0.6, 200_000
    q, z, corr = correlated_gaussian_posteriors(1500, rho, dims)
    exact = -0.5 * math.log(torch.linalg.det(corr).item())  # 0.522 nats
    log_q = pairwise_log_prob(q, z)
    log_p = torch.zeros(len(z), dtype=z.dtype)
    mss = kl_decomposition(log_q, log_p, n, "mss")["tc"].mean().item()
    mws = kl_decomposition(log_q, log_p, n, "mws")["tc"].mean().item()
    assert mss == pytest.approx(exact, abs=0.05)
    # The paper's weights 1/(NB) offset TC by (D - 1) log N (no effect on gradients).
    assert mws - (dims - 1) * math.log(n) == pytest.approx(exact, abs=0.05)
    small = kl_decomposition(log_q[:100, :100], log_p[:100], n, "mss")["tc"].mean().item()
    assert abs(small - exact) > abs(mss - exact)  # a larger batch estimates it better
    independent, zi, _ = correlated_gaussian_posteriors(1500, 0.0, dims)
    tc0 = kl_decomposition(pairwise_log_prob(independent, zi), log_p, n, "mss")["tc"]
    assert tc0.mean().item() == pytest.approx(0.0, abs=0.05)


def test_beta_one_is_trace_elbo_to_the_same_draw_and_gradient(x):
    vae = small_vae()
    for kl_weight in (1.0, 0.5, 0.0):
        grads = []
        for elbo in (BetaTCELBO(beta=1.0, estimator="mss"), pyro.infer.Trace_ELBO()):
            vae.zero_grad()
            pyro.set_rng_seed(3)
            loss = elbo.loss_and_grads(
                vae.model, vae.guide, x[:16], num_data=N, kl_weight=kl_weight
            )
            grads.append((loss, [p.grad.clone() for p in vae.parameters()]))
        (a, ga), (b, gb) = grads
        assert a == pytest.approx(b, rel=1e-5)
        assert all(torch.allclose(u, v, atol=1e-4) for u, v in zip(ga, gb, strict=True))


def test_beta_weighs_the_total_correlation_only(x):
    vae = small_vae()
    pyro.set_rng_seed(4)
    t = BetaTCELBO().terms(vae.model, vae.guide, x[:16], num_data=N)
    losses = []
    for beta in (1.0, 6.0):
        pyro.set_rng_seed(4)
        losses.append(BetaTCELBO(beta=beta).loss(vae.model, vae.guide, x[:16], num_data=N))
    assert losses[1] - losses[0] == pytest.approx(5 * t["scale"] * t["tc"].sum().item(), rel=1e-4)


# --------------------------------------------------------------------------- the discriminator
def test_permute_dims_keeps_each_marginal_and_breaks_the_dependence():
    z = torch.arange(12.0).view(6, 2)
    z[:, 1] = -z[:, 0]
    p = permute_dims(z, torch.Generator().manual_seed(0))
    for d in range(2):
        assert torch.equal(p[:, d].sort().values, z[:, d].sort().values)
    assert not torch.equal(p[:, 1], -p[:, 0])


def test_the_discriminator_learns_the_density_ratio_of_a_correlated_gaussian():
    rho = 0.9
    exact = -0.5 * math.log(1 - rho**2)  # TC of the 2-d Gaussian: 0.830 nats
    loss = FactorVAELoss(2, hidden=(64, 64), lr=3e-3, betas=(0.9, 0.999))
    cov = torch.tensor([[1.0, rho], [rho, 1.0]])
    chol = torch.linalg.cholesky(cov)
    for _ in range(400):
        loss.discriminator_step(torch.randn(256, 2) @ chol.T)
    z = torch.randn(4000, 2) @ chol.T
    with torch.no_grad():
        joint, product = loss.discriminator(z), loss.discriminator(permute_dims(z))
    accuracy = 0.5 * ((joint > 0).float().mean() + (product < 0).float().mean())
    assert accuracy > 0.7
    assert joint.mean().item() == pytest.approx(exact, abs=0.25)


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("make", [lambda: BetaTCELBO(beta=6), lambda: FactorVAELoss(3)])
def test_fit_raises_the_elbo_and_takes_the_torch_step(x, make):
    vae = small_vae()
    elbo = make()
    hist = fit(vae, x, val=x, epochs=6, batch_size=16, lr=3e-2, elbo=elbo, seed=0, progress=False)
    assert all(map(math.isfinite, hist["train_elbo"]))
    assert hist["val_elbo"][-1] > hist["val_elbo"][0] + 1.0
    # Not the fast path's DirectELBO, so never a CUDA graph: the plain torch step.
    cuda = Local(torch.device("cpu"))
    cuda.device = torch.device("cuda")  # the step table's question, asked without a GPU
    step = make_step(vae, elbo, None, 1e-3, cuda)
    assert type(step) is TorchStep and not isinstance(step.objective.elbo, DirectELBO)


@pytest.mark.parametrize("make", [lambda: BetaTCELBO(beta=6), lambda: FactorVAELoss(3)])
def test_plain_svi_trains_without_touching_the_param_store(x, make):
    vae = small_vae()
    elbo = make()
    svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 3e-2}), loss=elbo)
    pyro.set_rng_seed(0)
    first = [svi.step(x, num_data=N) for _ in range(4)]
    for _ in range(40):
        svi.step(x, num_data=N)
    last = [svi.step(x, num_data=N) for _ in range(4)]
    assert sum(last) < sum(first)
    # The VAE's parameters (kept under its instance's name), none of the discriminator's.
    assert len(pyro.get_param_store()) == len(list(vae.parameters()))


def test_the_factor_vae_discriminator_is_trained_each_step_and_checkpointed(x, tmp_path):
    def run(resume_after: int | None):
        pyro.set_rng_seed(0)
        vae, elbo = small_vae(), FactorVAELoss(3, hidden=(16,))
        before = [p.clone() for p in elbo.discriminator.parameters()]
        kw = dict(batch_size=16, seed=0, progress=False, elbo=elbo)
        if resume_after is None:
            fit(vae, x, epochs=2, **kw)
        else:
            fit(vae, x, epochs=resume_after, checkpoint_dir=tmp_path, **kw)
            pyro.set_rng_seed(1)  # a fresh process: other random initial parameters
            vae, elbo = small_vae(), FactorVAELoss(3, hidden=(16,))
            kw["elbo"] = elbo
            fit(vae, x, epochs=2, checkpoint_dir=tmp_path, resume=True, **kw)
        moved = any(
            not torch.equal(a, b)
            for a, b in zip(before, elbo.discriminator.parameters(), strict=True)
        )
        return vae, elbo, moved

    whole, whole_loss, moved = run(None)
    assert moved and 0 < whole_loss.last["discriminator_loss"] < 1.0
    resumed, resumed_loss, _ = run(1)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    pairs = zip(
        whole_loss.discriminator.parameters(), resumed_loss.discriminator.parameters(), strict=True
    )
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in pairs)


def test_each_factor_vae_loss_owns_its_discriminator():
    a, b = FactorVAELoss(3), FactorVAELoss(3)
    assert not set(map(id, a.discriminator.parameters())) & set(
        map(id, b.discriminator.parameters())
    )
    assert isinstance(a.discriminator, Discriminator)
    assert len(list(Discriminator(10).parameters())) == 10  # 5 linear layers


def test_distributed_training_refuses_factor_vae_and_differentiates_beta_tcvae(x):
    """DDP differentiates the objective as a module (steps.Objective.forward): FactorVAE,
    whose discriminator steps inside loss_and_grads, is refused; β-TCVAE is its loss."""
    vae = small_vae()
    with pytest.raises(ValueError, match="FactorVAELoss has none"):
        Objective(vae, FactorVAELoss(3))(x[:8], num_data=N, kl_weight=1.0)
    pyro.set_rng_seed(5)
    loss = Objective(vae, BetaTCELBO())(x[:8], num_data=N, kl_weight=1.0)
    pyro.set_rng_seed(5)
    assert loss.item() == pytest.approx(BetaTCELBO().loss(vae.model, vae.guide, x[:8], num_data=N))

"""Tests for pyvae.likelihoods: shapes, log densities against direct computations, the
discretized logistic, the beta-binomial (against Pyro's, and through fit, save/load and the
contracts), support validation, gradients, scale options and encoder inputs."""

import math

import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from torch import distributions as td

from pyvae import likelihoods as L

# name -> (factory, params_per_value)
LIKELIHOODS = {
    "bernoulli": (L.Bernoulli, 1),
    "bernoulli_soft": (lambda: L.Bernoulli(soft_targets=True), 1),
    "continuous_bernoulli": (L.ContinuousBernoulli, 1),
    "gaussian_fixed": (lambda: L.Gaussian(scale=0.7), 1),
    "gaussian_learned": (lambda: L.Gaussian(scale="learned"), 1),
    "gaussian_decoder": (lambda: L.Gaussian(scale="decoder"), 2),
    "laplace_fixed": (lambda: L.Laplace(scale=0.7), 1),
    "laplace_learned": (lambda: L.Laplace(scale="learned"), 1),
    "laplace_decoder": (lambda: L.Laplace(scale="decoder"), 2),
    "poisson": (L.Poisson, 1),
    "negative_binomial": (L.NegativeBinomial, 1),
    "discretized_logistic": (L.DiscretizedLogistic, 2),
    "beta_binomial": (L.BetaBinomial, 2),
}
# data shape -> event_dim
DATA_SHAPES = [(5,), (2, 4, 4)]


def raw_for(lik, batch, data_shape):
    """Random decoder output for data of ``data_shape``: k * C on the first data axis."""
    c, *rest = data_shape
    return torch.randn(*batch, lik.params_per_value * c, *rest, requires_grad=True)


def halves(raw, event_dim):
    """The two parameter blocks of a k=2 decoder output, split on the first data axis."""
    return raw.chunk(2, dim=raw.dim() - event_dim)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", LIKELIHOODS)
def test_params_per_value(name):
    factory, k = LIKELIHOODS[name]
    assert factory().params_per_value == k


@pytest.mark.parametrize("data_shape", DATA_SHAPES, ids=str)
@pytest.mark.parametrize("name", LIKELIHOODS)
def test_distribution_shapes(name, data_shape):
    """event_shape is the data shape, batch_shape the leading dims of the decoder output;
    samples have batch + data shape, log_prob the batch shape."""
    lik = LIKELIHOODS[name][0]()
    event_dim = len(data_shape)
    raw = raw_for(lik, (2, 3), data_shape)
    d = lik(raw, event_dim)
    assert d.event_shape == data_shape
    assert d.batch_shape == (2, 3)
    x = d.sample()
    assert x.shape == (2, 3, *data_shape)
    lik.validate(x)
    lp = d.log_prob(x)
    assert lp.shape == (2, 3)
    assert torch.isfinite(lp).all()


# --------------------------------------------------------------------------- log densities


def test_bernoulli_log_prob_matches_torch():
    raw = torch.randn(4, 5)
    x = torch.randint(0, 2, (4, 5)).float()
    expected = td.Bernoulli(logits=raw).log_prob(x).sum(-1)
    torch.testing.assert_close(L.Bernoulli()(raw, 1).log_prob(x), expected)


def test_bernoulli_soft_targets_is_negative_bce():
    """With soft_targets, grey levels are scored by binary cross-entropy with logits."""
    raw = torch.randn(4, 2, 3, 3)
    x = torch.rand(4, 2, 3, 3)
    expected = -F.binary_cross_entropy_with_logits(raw, x, reduction="none").sum((1, 2, 3))
    actual = L.Bernoulli(soft_targets=True)(raw, 3).log_prob(x)
    torch.testing.assert_close(actual, expected)


def test_continuous_bernoulli_log_prob_matches_formula():
    """log p(x) = log C(lam) + x log lam + (1 - x) log(1 - lam), lam = sigmoid(raw)."""
    raw = torch.randn(4, 5, dtype=torch.float64)
    x = torch.rand(4, 5, dtype=torch.float64)
    lam = torch.sigmoid(raw)
    log_norm = torch.log(2 * torch.atanh(1 - 2 * lam) / (1 - 2 * lam))
    expected = (log_norm + x * lam.log() + (1 - x) * (1 - lam).log()).sum(-1)
    actual = L.ContinuousBernoulli()(raw, 1).log_prob(x)
    torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("family", [L.Gaussian, L.Laplace])
def test_fixed_scale_log_prob(family):
    torch_family = td.Normal if family is L.Gaussian else td.Laplace
    raw, x = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    expected = torch_family(raw, 0.7).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(family(scale=0.7)(raw, 3).log_prob(x), expected)


@pytest.mark.parametrize("family", [L.Gaussian, L.Laplace])
def test_learned_scale_log_prob(family):
    torch_family = td.Normal if family is L.Gaussian else td.Laplace
    lik = family(scale="learned")
    lik.scale = torch.tensor(0.4)
    assert lik.scale.item() == pytest.approx(0.4)
    raw, x = torch.randn(4, 5), torch.randn(4, 5)
    expected = torch_family(raw, 0.4).log_prob(x).sum(-1)
    torch.testing.assert_close(lik(raw, 1).log_prob(x), expected)


@pytest.mark.parametrize("data_shape", DATA_SHAPES, ids=str)
@pytest.mark.parametrize("family", [L.Gaussian, L.Laplace])
def test_decoder_scale_log_prob(family, data_shape):
    """scale="decoder": loc is the first block, scale = softplus(second block) + min_scale."""
    torch_family = td.Normal if family is L.Gaussian else td.Laplace
    event_dim = len(data_shape)
    lik = family(scale="decoder", min_scale=0.01)
    raw = raw_for(lik, (4,), data_shape).detach()
    x = torch.randn(4, *data_shape)
    loc, raw_scale = halves(raw, event_dim)
    expected = torch_family(loc, F.softplus(raw_scale) + 0.01).log_prob(x)
    expected = expected.reshape(4, -1).sum(-1)
    torch.testing.assert_close(lik(raw, event_dim).log_prob(x), expected)


def test_poisson_log_prob_and_mean():
    raw = torch.randn(4, 5)
    x = torch.randint(0, 6, (4, 5)).float()
    rate = F.softplus(raw)
    expected = (x * rate.log() - rate - torch.lgamma(x + 1)).sum(-1)
    d = L.Poisson()(raw, 1)
    torch.testing.assert_close(d.log_prob(x), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(d.mean, rate)


def test_negative_binomial_log_prob_mean_and_variance():
    """NB with mean m = softplus(raw) and total_count r, by the textbook formula:
    log p(x) = lgamma(x + r) - lgamma(r) - lgamma(x + 1) + r log(r/(r+m)) + x log(m/(r+m))."""
    lik = L.NegativeBinomial(total_count=3.0)
    raw = torch.randn(4, 5, dtype=torch.float64)
    x = torch.randint(0, 8, (4, 5)).double()
    m, r = F.softplus(raw), 3.0
    expected = (
        torch.lgamma(x + r)
        - math.lgamma(r)
        - torch.lgamma(x + 1)
        + r * torch.log(r / (r + m))
        + x * torch.log(m / (r + m))
    ).sum(-1)
    d = lik(raw, 1)
    torch.testing.assert_close(d.log_prob(x), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(d.mean, m, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(d.variance, m + m**2 / r, atol=1e-5, rtol=1e-5)


def discretized_logistic_reference(x, loc, log_scale):
    """Bin masses of a logistic(loc, exp(log_scale)) on the [-1, 1] scale, bins of width
    2/255 centred on x/127.5 - 1, with the end bins taking the tails (float64)."""
    s = log_scale.exp()
    y = x / 127.5 - 1
    upper = torch.sigmoid((y + 1 / 255 - loc) / s)
    lower = torch.sigmoid((y - 1 / 255 - loc) / s)
    upper = torch.where(x == 255, torch.ones_like(upper), upper)
    lower = torch.where(x == 0, torch.zeros_like(lower), lower)
    return torch.log(upper - lower)


def test_discretized_logistic_log_prob_matches_bin_masses():
    """Exact bin masses (where none is tiny enough for the pdf-at-centre approximation)."""
    lik = L.DiscretizedLogistic()
    x = torch.cat([torch.tensor([[0.0, 1.0, 254.0, 255.0]]), torch.randint(0, 256, (5, 4))])
    x = x.double()
    loc = x / 127.5 - 1 + 0.05 * torch.randn(6, 4, dtype=torch.float64)
    log_scale = torch.empty(6, 4, dtype=torch.float64).uniform_(-5, -1)
    raw = torch.cat([loc, log_scale], dim=1)
    expected = discretized_logistic_reference(x, loc, log_scale).sum(-1)
    torch.testing.assert_close(lik(raw, 1).log_prob(x), expected)


def test_discretized_logistic_clamps_log_scale_at_min_log_scale():
    lik = L.DiscretizedLogistic(min_log_scale=-4.0)
    loc = torch.full((1, 3), 0.01)
    x = torch.tensor([[127.0, 128.0, 129.0]])
    very_small = lik(torch.cat([loc, torch.full((1, 3), -30.0)], 1), 1).log_prob(x)
    at_min = lik(torch.cat([loc, torch.full((1, 3), -4.0)], 1), 1).log_prob(x)
    torch.testing.assert_close(very_small, at_min)


# --------------------------------------------------------------------------- discretized logistic


VALUES = torch.arange(256.0)


@pytest.mark.parametrize("log_scale", [-7.0, -5.0, -2.0, 0.0, 3.0, 8.0])
@pytest.mark.parametrize("loc", [-3.0, -1.0, -0.3, 0.0, 0.123, 1 / 255, 1.0, 3.0])
def test_discretized_logistic_probabilities_sum_to_one(loc, log_scale):
    d = L.DiscretizedLogisticDistribution(torch.tensor(loc), torch.tensor(log_scale))
    total = d.log_prob(VALUES).double().exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-4)


def test_discretized_logistic_probabilities_sum_to_one_for_tiny_scale_on_a_bin_edge():
    """loc = 0 is the edge between 127 and 128; log_scale = -12 (allowed by
    DiscretizedLogistic(min_log_scale=-12))."""
    d = L.DiscretizedLogisticDistribution(torch.tensor(0.0), torch.tensor(-12.0))
    total = d.log_prob(VALUES).double().exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("loc", [-5.0, -1.0, 0.3, 1.0, 5.0])
def test_discretized_logistic_samples_are_integers_in_range_and_mean_in_range(loc):
    d = L.DiscretizedLogisticDistribution(torch.full((10,), loc), torch.linspace(-7, 3, 10))
    x = d.sample((200,))
    assert x.shape == (200, 10)
    assert torch.equal(x, x.round())
    assert x.min() >= 0 and x.max() <= 255
    assert d.log_prob(x).isfinite().all()
    assert (d.mean >= 0).all() and (d.mean <= 255).all()


def test_discretized_logistic_samples_follow_its_probabilities():
    """Empirical frequencies of samples match exp(log_prob) (mean and the mass at 0)."""
    d = L.DiscretizedLogisticDistribution(torch.tensor(-0.9), torch.tensor(-3.0))
    probs = d.log_prob(VALUES).exp()
    x = d.sample((20000,))
    assert x.mean().item() == pytest.approx((probs * VALUES).sum().item(), abs=0.3)
    assert (x == 0).float().mean().item() == pytest.approx(probs[0].item(), abs=0.01)


# --------------------------------------------------------------------------- beta-binomial


def test_beta_binomial_matches_pyro_beta_binomial():
    """log_prob and mean are Pyro's BetaBinomial(alpha, beta, 255) with alpha and beta
    from softplus(raw) + min_concentration; the textbook pmf agrees, and sums to 1."""
    lik = L.BetaBinomial(min_concentration=0.01)
    raw = 3 * torch.randn(4, 2 * 6, dtype=torch.float64)
    alpha, beta = F.softplus(raw[:, :6]) + 0.01, F.softplus(raw[:, 6:]) + 0.01
    ref = dist.BetaBinomial(alpha, beta, 255)
    x = torch.cat(
        [torch.tensor([[0.0, 1.0, 127.0, 254.0, 255.0, 3.0]]), torch.randint(0, 256, (3, 6))]
    )
    x = x.double()
    d = lik(raw, 1)
    assert d.event_shape == (6,) and d.batch_shape == (4,)
    torch.testing.assert_close(d.log_prob(x), ref.log_prob(x).sum(-1))
    torch.testing.assert_close(d.mean, 255 * alpha / (alpha + beta))
    lbeta = lambda a, b: torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)  # noqa: E731
    textbook = (
        math.lgamma(256) - torch.lgamma(x + 1) - torch.lgamma(256 - x)
        + lbeta(x + alpha, 255 - x + beta) - lbeta(alpha, beta)
    )  # fmt: skip
    torch.testing.assert_close(d.base_dist.log_prob(x), textbook)
    values = torch.arange(256, dtype=torch.float64)[:, None, None]
    torch.testing.assert_close(
        d.base_dist.log_prob(values).exp().sum(0), torch.ones(4, 6, dtype=torch.float64)
    )


def test_beta_binomial_samples_are_integers_in_0_to_n():
    lik = L.BetaBinomial(total_count=20)
    d = lik(torch.randn(500, 2, 3, 3), 3)
    x = d.sample()
    assert x.shape == (500, 1, 3, 3)
    assert bool((x == x.round()).all()) and x.min() >= 0 and x.max() <= 20
    lik.validate(x)
    torch.testing.assert_close(x.mean(0), d.mean.mean(0), atol=1.5, rtol=0.0)


def test_beta_binomial_concentrations_floor_and_options():
    lik = L.BetaBinomial(min_concentration=0.5)
    d = lik(torch.full((1, 4), -50.0), 1).base_dist  # softplus(-50) ~ 0: at the floor
    torch.testing.assert_close(d.concentration1, torch.full((1, 2), 0.5))
    torch.testing.assert_close(d.concentration0, torch.full((1, 2), 0.5))
    assert lik.support.upper_bound == 255 and L.BetaBinomial(7).support.upper_bound == 7
    for bad in (0, -1, 2.5, True, "255"):
        with pytest.raises(ValueError, match="total_count"):
            L.BetaBinomial(total_count=bad)
    for bad in (0.0, -1e-3, math.inf, math.nan):
        with pytest.raises(ValueError, match="min_concentration"):
            L.BetaBinomial(min_concentration=bad)


def test_beta_binomial_error_says_what_to_do():
    with pytest.raises(ValueError, match="0..255.*values='uint8'"):
        L.BetaBinomial().validate(torch.rand(3))
    with pytest.raises(ValueError, match="0..9"):
        L.BetaBinomial(total_count=9).validate(torch.tensor([10]))


def test_beta_binomial_encoder_input_maps_0_n_to_unit_interval():
    out = L.BetaBinomial().encoder_input(torch.arange(256).to(torch.uint8))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.linspace(0, 1, 256))
    torch.testing.assert_close(
        L.BetaBinomial(4).encoder_input(torch.tensor([0, 2, 4])), torch.tensor([0, 0.5, 1])
    )


def test_beta_binomial_trains_saves_loads_and_keeps_its_contracts(tmp_path):
    """VAE.build(likelihood="beta_binomial") on 8-bit images (uint8 0..255) through fit:
    the loss goes down, the parts keep their contracts, and save/load gives the same
    model (its options included) and the same ELBO."""
    import pyro

    import pyvae
    from pyvae.contracts import check_parts

    pyro.set_rng_seed(0)
    # Blurry blobs: 8-bit images with structure, as data.load(..., values="uint8") gives.
    grid = torch.linspace(-1, 1, 8)
    centre = torch.rand(64, 2, 1, 1) * 1.2 - 0.6
    d2 = (grid[None, :, None] - centre[:, :1]) ** 2 + (grid[None, None, :] - centre[:, 1:]) ** 2
    x = (255 * torch.exp(-4 * d2)).round().to(torch.uint8)  # (64, 1, 8, 8)
    vae = pyvae.VAE.build(
        input_shape=(1, 8, 8),
        z_dim=2,
        likelihood="beta_binomial",
        likelihood_kwargs={"min_concentration": 0.01},
        net_kwargs={"hidden": (32,)},
    )
    assert isinstance(vae.likelihood, L.BetaBinomial)
    check_parts(vae, x.float())
    history = pyvae.fit(vae, x, epochs=15, batch_size=32, lr=1e-2, progress=False)
    assert history["train_elbo"][-1] > history["train_elbo"][0] + 50  # nats per image
    check_parts(vae, x.float())
    vae.save(tmp_path / "bb.pt")
    back = pyvae.load(tmp_path / "bb.pt")
    assert isinstance(back.likelihood, L.BetaBinomial)
    assert back.likelihood.min_concentration == 0.01 and back.likelihood.total_count == 255
    pyro.set_rng_seed(1)
    elbo = vae.elbo(x)
    pyro.set_rng_seed(1)
    torch.testing.assert_close(back.elbo(x), elbo)
    assert vae.reconstruct(x[:4]).shape == (4, 1, 8, 8)


def test_beta_binomial_refuses_grey_levels_in_fit():
    import pyvae

    vae = pyvae.VAE.build(input_shape=(5,), z_dim=2, likelihood="beta_binomial")
    with pytest.raises(ValueError, match="BetaBinomial.*0..255"):
        pyvae.fit(vae, torch.rand(8, 5), epochs=1, progress=False)


# --------------------------------------------------------------------------- validation


def test_strict_bernoulli_refuses_grey_levels_and_names_the_fixes():
    with pytest.raises(ValueError) as info:
        L.Bernoulli().validate(torch.tensor([0.0, 0.5, 1.0]))
    assert "ContinuousBernoulli" in str(info.value)
    assert "soft_targets" in str(info.value)


@pytest.mark.parametrize(
    "lik, bad",
    [
        (L.Bernoulli(soft_targets=True), [0.2, 1.5]),
        (L.ContinuousBernoulli(), [0.2, 1.5]),
        (L.ContinuousBernoulli(), [-0.1, 0.5]),
        (L.Poisson(), [1.0, -1.0]),
        (L.Poisson(), [1.0, 2.5]),
        (L.NegativeBinomial(), [1.0, -1.0]),
        (L.NegativeBinomial(), [1.0, 2.5]),
        (L.DiscretizedLogistic(), [0.0, 256.0]),
        (L.DiscretizedLogistic(), [0.0, 3.5]),
        (L.DiscretizedLogistic(), [-1.0, 3.0]),
        (L.BetaBinomial(), [0.0, 256.0]),
        (L.BetaBinomial(), [0.0, 3.5]),
        (L.BetaBinomial(), [-1.0, 3.0]),
        (L.BetaBinomial(total_count=15), [0.0, 16.0]),
        (L.Gaussian(), [0.0, math.nan]),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, L.Likelihood) else str(v),
)
def test_validate_refuses_data_outside_support(lik, bad):
    with pytest.raises(ValueError, match=type(lik).__name__):
        lik.validate(torch.tensor(bad))


@pytest.mark.parametrize("family", [L.Gaussian, L.Laplace])
def test_validate_refuses_infinite_real_data(family):
    with pytest.raises(ValueError):
        family().validate(torch.tensor([0.0, math.inf]))


def test_discretized_logistic_error_says_what_to_do():
    with pytest.raises(ValueError, match="0..255"):
        L.DiscretizedLogistic().validate(torch.rand(3))


@pytest.mark.parametrize(
    "lik, data",
    [
        (L.Bernoulli(), torch.tensor([0, 1, 1], dtype=torch.uint8)),
        (L.Bernoulli(), torch.tensor([0.0, 1.0])),
        (L.Bernoulli(soft_targets=True), torch.tensor([0.0, 0.3, 1.0])),
        (L.ContinuousBernoulli(), torch.tensor([0.0, 0.3, 1.0])),
        (L.ContinuousBernoulli(), torch.tensor([0, 1], dtype=torch.uint8)),
        (L.Gaussian(), torch.tensor([-3.0, 0.0, 1e6])),
        (L.Laplace(), torch.tensor([-3.0, 0.0, 1e6])),
        (L.Poisson(), torch.tensor([0, 3, 200], dtype=torch.uint8)),
        (L.Poisson(), torch.tensor([0.0, 7.0, 1e5])),
        (L.NegativeBinomial(), torch.tensor([0, 3, 200], dtype=torch.uint8)),
        (L.DiscretizedLogistic(), torch.arange(256).to(torch.uint8)),
        (L.DiscretizedLogistic(), torch.arange(256.0)),
        (L.BetaBinomial(), torch.arange(256).to(torch.uint8)),
        (L.BetaBinomial(), torch.arange(256.0)),
        (L.BetaBinomial(total_count=1), torch.tensor([0, 1], dtype=torch.uint8)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, L.Likelihood) else str(v.dtype),
)
def test_validate_accepts_data_in_support(lik, data):
    lik.validate(data)


# --------------------------------------------------------------------------- gradients


def data_for(name, shape):
    if name in ("bernoulli",):
        return torch.randint(0, 2, shape).float()
    if name in ("bernoulli_soft", "continuous_bernoulli"):
        return torch.rand(shape)
    if name in ("poisson", "negative_binomial"):
        return torch.randint(0, 5, shape).float()
    if name in ("discretized_logistic", "beta_binomial"):
        return torch.randint(0, 256, shape).float()
    return torch.randn(shape)


@pytest.mark.parametrize("name", LIKELIHOODS)
def test_gradient_reaches_raw_output_and_learnable_parameters(name):
    """Every block of the decoder output and every parameter of the likelihood gets a
    non-zero gradient from log_prob."""
    lik = LIKELIHOODS[name][0]()
    raw = raw_for(lik, (4,), (2, 3, 3))
    lik(raw, 3).log_prob(data_for(name, (4, 2, 3, 3))).sum().backward()
    for block in raw.grad.chunk(lik.params_per_value, dim=1):
        assert block.abs().sum() > 0
    for pname, p in lik.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize(
    "lik", [L.Gaussian(scale="learned"), L.NegativeBinomial()], ids=["gaussian", "nb"]
)
def test_likelihoods_with_global_parameters_have_them(lik):
    assert len(list(lik.parameters())) == 1


# --------------------------------------------------------------------------- scales


@pytest.mark.parametrize("family", [L.Gaussian, L.Laplace])
def test_learned_scale_cannot_go_below_min_scale(family):
    """Driving the learned scale down by gradient descent stops at min_scale."""
    lik = family(scale="learned", min_scale=0.05)
    opt = torch.optim.SGD(lik.parameters(), lr=50.0)
    for _ in range(20):
        opt.zero_grad()
        lik.scale.backward()
        opt.step()
    assert 0.05 <= lik.scale.item() < 0.06
    d = lik(torch.zeros(3, 4), 1)
    assert (d.base_dist.scale >= 0.05).all()


@pytest.mark.parametrize("family", [L.Gaussian, L.Laplace])
def test_decoder_scale_cannot_go_below_min_scale(family):
    lik = family(scale="decoder", min_scale=0.05)
    raw = torch.cat([torch.zeros(3, 4), torch.full((3, 4), -1e4)], dim=1)
    scale = lik(raw, 1).base_dist.scale
    assert scale.shape == (3, 4)
    assert (scale >= 0.05).all()


def test_learned_scale_with_min_scale_above_one_is_valid():
    lik = L.Gaussian(scale="learned", min_scale=2.0)
    assert lik.scale.item() >= 2.0


@pytest.mark.parametrize("family", [L.Gaussian, L.Laplace])
@pytest.mark.parametrize("scale", ["fixed", "Learned", ""])
def test_invalid_scale_string_lists_valid_options(family, scale):
    with pytest.raises(ValueError) as info:
        family(scale=scale)
    assert "learned" in str(info.value) and "decoder" in str(info.value)


@pytest.mark.parametrize("family", [L.Gaussian, L.Laplace])
@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan])
def test_non_positive_fixed_scale_raises(family, scale):
    with pytest.raises(ValueError, match="> 0"):
        family(scale=scale)


# --------------------------------------------------------------------------- encoder input


def test_poisson_encoder_input_is_log1p():
    x = torch.tensor([0, 1, 9, 200], dtype=torch.uint8)
    for lik in (L.Poisson(), L.NegativeBinomial()):
        out = lik.encoder_input(x)
        assert out.is_floating_point()
        torch.testing.assert_close(out, torch.log1p(x.float()))


def test_discretized_logistic_encoder_input_maps_0_255_to_unit_interval():
    x = torch.arange(256).to(torch.uint8)
    out = L.DiscretizedLogistic().encoder_input(x)
    assert out.is_floating_point()
    assert out[0].item() == -1.0 and out[-1].item() == 1.0
    torch.testing.assert_close(out, torch.linspace(-1, 1, 256))


def test_default_encoder_input_is_float():
    x = torch.tensor([0, 1], dtype=torch.uint8)
    out = L.Bernoulli().encoder_input(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([0.0, 1.0]))


def test_independent_bernoulli_matches_bernoulli_to_event():
    """The Bernoulli likelihood's distribution negates after summing over the event dims:
    the same log-probabilities and gradients as Bernoulli(logits).to_event(n)."""
    raw = torch.randn(5, 4, 1, 3, 3, requires_grad=True)
    x = torch.bernoulli(torch.full((4, 1, 3, 3), 0.3))
    fn = L.Bernoulli()(raw, 3)
    ref = td.Independent(td.Bernoulli(logits=raw), 3)
    assert isinstance(fn, L.IndependentBernoulli)
    assert fn.batch_shape == ref.batch_shape and fn.event_shape == ref.event_shape
    (g,) = torch.autograd.grad(fn.log_prob(x).sum(), raw)
    (g_ref,) = torch.autograd.grad(ref.log_prob(x).sum(), raw)
    assert torch.allclose(fn.log_prob(x), ref.log_prob(x)) and torch.allclose(g, g_ref)
    assert isinstance(fn.expand((2, 5, 4)), L.IndependentBernoulli)
    with pytest.raises(ValueError, match="support"):
        fn.log_prob(x * 0.5)  # grey levels are refused ...
    soft = L.Bernoulli(soft_targets=True)(raw, 3)  # ... unless asked for
    bce = F.binary_cross_entropy_with_logits(raw, (x * 0.5).expand_as(raw), reduction="none")
    assert torch.allclose(soft.log_prob(x * 0.5), -bce.sum((-3, -2, -1)))

"""Tests for pyvae.priors: shapes, densities against direct computations, gradients, errors."""

import math

import pyro.distributions.transforms as T
import pytest
import torch
from torch.distributions import Normal

from pyvae import nets, priors

Z_DIM = 3
INPUT_SHAPE = (6,)


def make_encoder(z_dim=Z_DIM):
    return nets.MLPEncoder(INPUT_SHAPE, z_dim, hidden=(8,))


def make_prior(name, z_dim=Z_DIM):
    if name == "normal":
        return priors.StandardNormal(z_dim)
    if name == "mog":
        return priors.MixtureOfGaussians(z_dim, components=4)
    if name == "vamp":
        return priors.VampPrior(z_dim, INPUT_SHAPE, components=5)
    if name == "flow":
        return priors.FlowPrior(z_dim)
    if name == "flow_user":
        first = T.affine_autoregressive(z_dim, hidden_dims=[8]) if z_dim > 1 else T.spline(1)
        return priors.FlowPrior(z_dim, transforms=[first, T.spline(z_dim, order="quadratic")])
    raise AssertionError(name)


ALL_PRIORS = ["normal", "mog", "vamp", "flow", "flow_user"]


def grid_1d(lo=-10.0, hi=10.0, n=20001):
    return torch.linspace(lo, hi, n)


def smooth_flow(z_dim):
    """A FlowPrior with its random initial parameters halved: still far from the identity,
    but without the near-vertical spline bins that a fixed grid cannot integrate."""
    prior = priors.FlowPrior(z_dim)
    with torch.no_grad():
        for p in prior.parameters():
            p.mul_(0.5)
    return prior


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("z_dim", [1, Z_DIM])
@pytest.mark.parametrize("name", ALL_PRIORS)
def test_distribution_shapes(name, z_dim):
    """prior(encoder) has batch_shape (), event_shape (z_dim,); samples and log_prob line up."""
    prior = make_prior(name, z_dim)
    d = prior(make_encoder(z_dim))
    assert d.batch_shape == ()
    assert d.event_shape == (z_dim,)
    z = d.sample((7,))
    assert z.shape == (7, z_dim)
    lp = d.log_prob(z)
    assert lp.shape == (7,)
    assert torch.isfinite(lp).all()


# --------------------------------------------------------------------------- log densities


def test_standard_normal_log_prob_matches_sum_of_unit_normals():
    z = torch.randn(10, Z_DIM) * 2
    expected = Normal(0.0, 1.0).log_prob(z).sum(-1)
    actual = priors.StandardNormal(Z_DIM)().log_prob(z)
    torch.testing.assert_close(actual, expected)


def test_mixture_of_gaussians_log_prob_matches_logsumexp():
    prior = priors.MixtureOfGaussians(Z_DIM, components=4)
    with torch.no_grad():
        prior.logits.copy_(torch.randn(4))
    prior.scales = torch.rand(4, Z_DIM) + 0.3
    z = torch.randn(10, Z_DIM) * 2
    log_w = torch.log_softmax(prior.logits, -1)
    comp = Normal(prior.locs, prior.scales).log_prob(z[:, None, :]).sum(-1)  # (10, 4)
    expected = torch.logsumexp(log_w + comp, dim=-1)
    torch.testing.assert_close(prior().log_prob(z), expected)


def test_vamp_prior_log_prob_is_mean_of_encoder_posteriors_at_pseudo_inputs():
    encoder = make_encoder()
    prior = priors.VampPrior(Z_DIM, INPUT_SHAPE, components=5)
    z = torch.randn(10, Z_DIM)
    loc, scale = encoder(prior.pseudo_inputs)  # (5, Z_DIM) each
    comp = Normal(loc, scale).log_prob(z[:, None, :]).sum(-1)  # (10, 5)
    expected = torch.logsumexp(comp, dim=-1) - math.log(5)
    torch.testing.assert_close(prior(encoder).log_prob(z), expected)


def _generic_mixture(logits, locs, scales):
    import pyro.distributions as dist

    return dist.MixtureSameFamily(
        dist.Categorical(logits=logits), dist.Normal(locs, scales).to_event(1)
    )


def test_diagonal_normal_mixture_is_the_generic_mixture_faster():
    """Its log-density (expanded as products, in float64) equals MixtureSameFamily's to
    float64 rounding: with narrow components, at points near and far from them, over
    sample and plate (expanded batch) dimensions; so do the gradients."""
    torch.manual_seed(0)
    k, d = 6, 4
    logits = torch.randn(k, dtype=torch.float64, requires_grad=True)
    locs = (3 * torch.randn(k, d, dtype=torch.float64)).requires_grad_()
    scales = (torch.rand(k, d, dtype=torch.float64) * 0.5 + 1e-3).requires_grad_()
    mine, generic = (
        priors.DiagonalNormalMixture(logits, locs, scales),
        _generic_mixture(logits, locs, scales),
    )
    near = locs.detach()[2] + scales.detach()[2] * torch.randn(d, dtype=torch.float64)
    z = torch.cat([near[None], 5 * torch.randn(7, d, dtype=torch.float64)]).reshape(2, 4, d)
    expanded = mine.expand((4,))
    assert isinstance(expanded, priors.DiagonalNormalMixture) and expanded.batch_shape == (4,)
    for a, b in ((mine, generic), (expanded, generic.expand((4,)))):
        torch.testing.assert_close(a.log_prob(z), b.log_prob(z), rtol=1e-10, atol=1e-9)
    grads = torch.autograd.grad(mine.log_prob(z).sum(), (logits, locs, scales))
    expected = torch.autograd.grad(generic.log_prob(z).sum(), (logits, locs, scales))
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-8, atol=1e-8)
    assert mine.log_prob(z.float()).dtype == torch.float32
    assert mine.sample((3,)).shape == (3, d) and expanded.sample().shape == (4, d)


def test_diagonal_normal_mixture_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"logits of shape \(K,\)"):
        priors.DiagonalNormalMixture(torch.zeros(3), torch.zeros(4, 2), torch.ones(4, 2))
    with pytest.raises(ValueError, match=r"\(K, D\)"):
        priors.DiagonalNormalMixture(torch.zeros(4), torch.zeros(4, 2), torch.ones(4, 3))


def test_mixture_priors_use_the_fast_mixture_and_temper_it():
    encoder = make_encoder()
    for prior in (make_prior("mog"), make_prior("vamp")):
        p = prior(encoder) if prior.needs_encoder else prior()
        assert isinstance(p, priors.DiagonalNormalMixture)
        hot = priors.tempered(p, 2.0)
        assert isinstance(hot, priors.DiagonalNormalMixture)
        scale = p.component_distribution.base_dist.scale
        torch.testing.assert_close(hot.component_distribution.base_dist.scale, 2 * scale)


def test_flow_prior_1d_density_integrates_to_one():
    """For z_dim=1 the flow density integrates to 1 over a wide grid."""
    prior = smooth_flow(1)
    z = grid_1d()
    with torch.no_grad():
        p = prior().log_prob(z[:, None]).exp()
    assert torch.trapezoid(p, z).item() == pytest.approx(1.0, abs=1e-3)
    # and it is not just the standard normal
    assert (p - Normal(0.0, 1.0).log_prob(z).exp()).abs().max() > 0.05


def test_flow_prior_1d_samples_follow_its_density():
    """The empirical CDF of samples matches the CDF obtained by integrating exp(log_prob)."""
    prior = smooth_flow(1)
    z = grid_1d()
    with torch.no_grad():
        p = prior().log_prob(z[:, None]).exp()
        samples = prior().sample((20000,))[:, 0]
    cdf = torch.cumulative_trapezoid(p, z)
    for q in (-1.0, -0.3, 0.0, 0.5, 1.2):
        i = int(torch.searchsorted(z, torch.tensor(q)))
        empirical = (samples < q).double().mean().item()
        assert empirical == pytest.approx(cdf[i - 1].item(), abs=0.02)


@pytest.fixture
def grid_2d():
    """A (N, 2) grid over [-5, 5]^2 (spacing 0.05) and the area of one cell."""
    axis = torch.linspace(-5.0, 5.0, 201)
    zz = torch.cartesian_prod(axis, axis)
    return zz, (axis[1] - axis[0]).item() ** 2


def test_flow_prior_2d_density_integrates_to_one_and_matches_samples(grid_2d):
    """The 2-D flow density sums to 1 on a grid, and its mean and a quadrant probability
    agree with Monte-Carlo estimates from the prior's own samples."""
    zz, cell = grid_2d
    prior = smooth_flow(2)
    with torch.no_grad():
        w = prior().log_prob(zz).exp() * cell
        samples = prior().sample((10000,))
    assert w.sum().item() == pytest.approx(1.0, abs=1e-2)
    torch.testing.assert_close(samples.mean(0), (w[:, None] * zz).sum(0), atol=0.05, rtol=0)
    # thresholds halfway between grid points
    quadrant = (zz[:, 0] < 0.325) & (zz[:, 1] < -0.175)
    mc_quadrant = ((samples[:, 0] < 0.325) & (samples[:, 1] < -0.175)).float().mean()
    assert mc_quadrant.item() == pytest.approx(w[quadrant].sum().item(), abs=0.025)
    assert torch.isfinite(prior().log_prob(samples)).all()


def test_flow_prior_with_user_transforms_uses_change_of_variables():
    """log p(z) = log N(f(z); 0, I) + log|det df/dz| with f = t_n o ... o t_1 (the user's
    transforms, documented as z = f^{-1}(u)); the Jacobian is computed by autograd."""
    ts = [T.affine_autoregressive(Z_DIM, hidden_dims=[8]), T.spline(Z_DIM)]
    prior = priors.FlowPrior(Z_DIM, transforms=ts)
    assert list(prior.transforms) == ts

    def f(z):
        for t in ts:
            z = t(z)
        return z

    z = torch.randn(5, Z_DIM)
    expected = []
    for zi in z:
        jac = torch.autograd.functional.jacobian(f, zi)
        u = f(zi)
        expected.append(Normal(0.0, 1.0).log_prob(u).sum() + torch.linalg.slogdet(jac)[1])
    actual = prior().log_prob(z)
    torch.testing.assert_close(actual, torch.stack(expected).detach(), atol=1e-4, rtol=1e-5)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("z_dim", [1, Z_DIM])
@pytest.mark.parametrize("name", ["mog", "vamp", "flow", "flow_user"])
def test_gradient_reaches_every_parameter(name, z_dim):
    """log_prob(z).sum().backward() gives every learnable parameter a non-zero gradient."""
    prior = make_prior(name, z_dim)
    encoder = make_encoder(z_dim)
    params = list(prior.named_parameters())
    if name == "vamp":
        params += [("encoder." + n, p) for n, p in encoder.named_parameters()]
    assert params
    z = torch.linspace(-2.5, 2.5, 64)[:, None] * torch.linspace(1.0, 0.5, z_dim)
    prior(encoder).log_prob(z).sum().backward()
    for pname, p in params:
        assert p.grad is not None, pname
        assert p.grad.abs().sum() > 0, pname


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("z_dim", [0, -1, 2.0, True])
def test_invalid_z_dim_raises(z_dim):
    with pytest.raises(ValueError, match="z_dim"):
        priors.StandardNormal(z_dim)


@pytest.mark.parametrize(
    "build",
    [
        lambda: priors.MixtureOfGaussians(2, components=0),
        lambda: priors.VampPrior(2, INPUT_SHAPE, components=0),
    ],
    ids=["mog", "vamp"],
)
def test_zero_components_raises(build):
    with pytest.raises(ValueError, match="components"):
        build()


def test_flow_prior_zero_flows_raises():
    with pytest.raises(ValueError, match="num_flows"):
        priors.FlowPrior(2, num_flows=0)


def test_vamp_prior_without_encoder_raises():
    prior = priors.VampPrior(2, INPUT_SHAPE, components=3)
    with pytest.raises(ValueError, match="encoder"):
        prior()


# --------------------------------------------------------------------------- VampPrior data init


def test_vamp_init_from_data_copies_rows_of_data():
    prior = priors.VampPrior(2, INPUT_SHAPE, components=8)
    x = torch.randn(4, *INPUT_SHAPE).double()
    assert prior.init_from_data(x) is prior
    pseudo = prior.pseudo_inputs.detach()
    assert pseudo.dtype == torch.float32
    for row in pseudo:
        assert torch.isclose(row[None].double(), x).all(-1).any(), row


def test_vamp_init_from_data_wrong_shape_raises():
    prior = priors.VampPrior(2, INPUT_SHAPE, components=3)
    before = prior.pseudo_inputs.detach().clone()
    with pytest.raises(ValueError, match="expected"):
        prior.init_from_data(torch.randn(4, 5))
    torch.testing.assert_close(prior.pseudo_inputs.detach(), before)


def test_only_the_vamp_prior_declares_that_it_needs_the_encoder():
    assert priors.Prior.needs_encoder is False
    declared = {name for name, cls in priors.PRIORS.items() if cls.needs_encoder}
    assert declared == {"vamp"}

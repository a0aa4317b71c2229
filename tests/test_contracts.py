"""check_parts: each part's contract checked on the first batch, as Pyro would."""

import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from helpers import small_vae
from torch import nn
from torch.distributions import constraints

from pyvae import LIKELIHOODS, PRIORS, VAE, likelihoods, nets, priors
from pyvae.conditional import ConditionalVAE
from pyvae.contracts import ContractError, check_parts
from pyvae.hierarchical import HierarchicalVAE

SHAPE = (1, 8, 8)


def data_for(likelihood: str, n: int = 6, shape=SHAPE) -> torch.Tensor:
    if likelihood == "bernoulli":
        return torch.randint(0, 2, (n, *shape)).float()
    if likelihood == "continuous_bernoulli":
        return torch.rand(n, *shape)
    if likelihood in ("poisson", "negative_binomial"):
        return torch.randint(0, 5, (n, *shape)).float()
    if likelihood in ("discretized_logistic", "beta_binomial"):
        return torch.randint(0, 256, (n, *shape)).float()
    return torch.randn(n, *shape)


@pytest.mark.parametrize("likelihood", sorted(LIKELIHOODS))
@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_every_builtin_prior_and_likelihood_passes(prior, likelihood):
    vae = small_vae(prior, likelihood)
    check_parts(vae, data_for(likelihood))


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_builtin_nets_and_a_learned_scale_pass(net):
    vae = VAE.build(
        (1, 16, 16), 4, "mog", likelihood=likelihoods.Gaussian(scale="decoder"), net=net
    )
    check_parts(vae, torch.randn(5, 1, 16, 16))


def test_the_check_changes_nothing_and_draws_no_random_numbers():
    vae = VAE(
        nn.Sequential(nets.MLPEncoder(SHAPE, 3, hidden=(8,))),
        nets.MLPDecoder(3, SHAPE, hidden=(8,)),
        priors.StandardNormal(3),
        likelihoods.Bernoulli(),
        input_shape=SHAPE,
    )
    vae.encoder.insert(0, nn.BatchNorm2d(1))  # its running statistics must stay as they are
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    vae.train()
    x = data_for("bernoulli")
    state = torch.get_rng_state()
    check_parts(vae, x)
    assert torch.equal(state, torch.get_rng_state())
    assert all(m.training for m in vae.modules())
    for k, v in vae.state_dict().items():
        assert torch.equal(v, before[k]), k


# --------------------------------------------------------------------------- broken parts
class NoEventGaussian(likelihoods.Likelihood):
    """Forgets .to_event(event_dim): its batch shape holds the data dimensions."""

    def forward(self, raw, event_dim):
        return dist.Normal(raw, 1.0)


class SaysOneUsesTwo(likelihoods.Likelihood):
    """params_per_value says 1, forward uses 2 per value."""

    params_per_value = 1

    def forward(self, raw, event_dim):
        loc, raw_scale = raw.chunk(2, dim=raw.dim() - event_dim)
        return dist.Normal(loc, F.softplus(raw_scale)).to_event(event_dim)


class SaysTwoUsesOne(likelihoods.Likelihood):
    """params_per_value says 2, forward uses the raw output as it is."""

    params_per_value = 2
    support = constraints.real

    def forward(self, raw, event_dim):
        return dist.Normal(raw, 1.0).to_event(event_dim)


class RowDecoder(nn.Module):
    """(B, 1, 1, 8) for (B, 1, 8, 8) items: broadcasts against the data."""

    def __init__(self, z_dim):
        super().__init__()
        self.linear = nn.Linear(z_dim, 8)

    def forward(self, z):
        return self.linear(z).reshape(-1, 1, 1, 8)


class ThreeDimPrior(priors.Prior):
    """Declares z_dim but returns one dimension fewer."""

    def forward(self, encoder=None):
        zeros = self._zeros()[:-1]
        return dist.Normal(zeros, torch.ones_like(zeros)).to_event(1)


class NoEventPrior(priors.Prior):
    """Forgets .to_event(1): batch shape (z_dim,), event shape ()."""

    def forward(self, encoder=None):
        zeros = self._zeros()
        return dist.Normal(zeros, torch.ones_like(zeros))


class NegativeScaleEncoder(nn.Module):
    """Returns the raw scale, which can be negative."""

    def __init__(self, input_shape, z_dim):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.linear = nn.Linear(64, 2 * z_dim)

    def forward(self, x):
        loc, scale = self.linear(x.flatten(1)).chunk(2, dim=-1)
        return loc, scale - 10.0


class FlatEncoder(NegativeScaleEncoder):
    """Returns loc and scale of shape (B * z_dim,)."""

    def forward(self, x):
        loc, scale = self.linear(x.flatten(1)).chunk(2, dim=-1)
        return loc.reshape(-1), F.softplus(scale).reshape(-1)


def vae_with(encoder=None, decoder=None, prior=None, likelihood=None, z_dim=3):
    likelihood = likelihood or likelihoods.Gaussian()
    k = likelihood.params_per_value
    return VAE(
        encoder or nets.MLPEncoder(SHAPE, z_dim, hidden=(8,)),
        decoder or nets.MLPDecoder(z_dim, nets.decoder_output_shape(SHAPE, k), hidden=(8,)),
        prior or priors.StandardNormal(z_dim),
        likelihood,
        input_shape=SHAPE,
    )


@pytest.mark.parametrize(
    "parts, part, message",
    [
        ({"likelihood": NoEventGaussian()}, "likelihood", r"\.to_event\(event_dim\)"),
        ({"likelihood": SaysOneUsesTwo()}, "likelihood", "params_per_value"),
        ({"likelihood": SaysTwoUsesOne()}, "likelihood", "params_per_value"),
        ({"decoder": RowDecoder(3)}, "decoder", r"only broadcasts.*decoder_output_shape"),
        ({"prior": ThreeDimPrior(3)}, "prior", r"event_shape \(2,\)"),
        ({"prior": NoEventPrior(3)}, "prior", r"\.to_event\(1\)"),
        ({"encoder": NegativeScaleEncoder(SHAPE, 3)}, "encoder", "scale > 0.*softplus"),
        ({"encoder": FlatEncoder(SHAPE, 3)}, "encoder", r"loc has shape \(18,\)"),
    ],
    ids=lambda v: type(next(iter(v.values()))).__name__ if isinstance(v, dict) else None,
)
def test_a_broken_part_is_named_with_its_contract_and_fix(parts, part, message):
    vae = vae_with(**parts)
    with pytest.raises(ContractError, match=message) as info:
        check_parts(vae, torch.randn(6, *SHAPE))
    broken = next(iter(parts.values()))
    assert info.value.part == part and info.value.cls == type(broken).__name__
    text = str(info.value)
    assert f"the {part} {type(broken).__name__} breaks the {part} contract" in text
    assert "Fix:" in text and isinstance(info.value, ValueError)


def test_the_missing_to_event_that_trains_silently_is_caught_before_training():
    """The fast path's loss sums the log_prob whatever its shape, so this likelihood
    would train; check_parts refuses it first."""
    vae = vae_with(likelihood=NoEventGaussian())
    x = torch.randn(6, *SHAPE)
    px = vae.likelihood(vae.decoder(torch.zeros(6, 3)), 3)
    assert px.log_prob(x).shape == x.shape  # no error: the loss would be a plain sum
    with pytest.raises(ContractError, match=r"batch_shape \(6, 1, 8, 8\) and event_shape \(\)"):
        check_parts(vae, x)


@pytest.mark.parametrize("optim", [None, "pyro"], ids=["fast path", "SVI"])
@pytest.mark.parametrize("broken", [{"likelihood": NoEventGaussian()}, {"decoder": RowDecoder(3)}])
def test_fit_refuses_a_broken_part_before_any_update(broken, optim):
    import pyro.optim

    from pyvae import fit

    vae = vae_with(**broken)
    before = [p.detach().clone() for p in vae.parameters()]
    optim = pyro.optim.Adam({"lr": 1e-2}) if optim else None
    with pytest.raises(ContractError, match=next(iter(broken))):
        fit(vae, torch.randn(12, *SHAPE), epochs=1, batch_size=4, optim=optim, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, vae.parameters(), strict=True))


def test_the_batch_must_have_the_data_shape():
    with pytest.raises(ValueError, match="x must have shape"):
        check_parts(small_vae(), torch.zeros(4, 64))


# --------------------------------------------------------------------------- variants
def test_variants_get_their_likelihood_checked():
    cvae = ConditionalVAE.build(SHAPE, 3, num_classes=4, net_kwargs={"hidden": (8,)})
    check_parts(cvae, data_for("bernoulli"), c=torch.arange(6) % 4)
    hvae = HierarchicalVAE.build(SHAPE, 3, z2_dim=2, likelihood="gaussian")
    check_parts(hvae, torch.randn(6, *SHAPE))
    broken = ConditionalVAE.build(
        SHAPE, 3, likelihood=NoEventGaussian(), num_classes=4, net_kwargs={"hidden": (8,)}
    )
    with pytest.raises(ContractError, match="NoEventGaussian"):
        check_parts(broken, torch.randn(6, *SHAPE), c=torch.arange(6) % 4)

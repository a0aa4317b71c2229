"""pyvae.stacked: the items as their posteriors q(z|x), and M2 trained on them (M1+M2)."""

import pyro
import pytest
import torch

from pyvae import VAE, SemiSupervisedVAE, data, fit, likelihoods, stacked
from pyvae.capabilities import CapabilityError


@pytest.fixture
def m1() -> VAE:
    pyro.set_rng_seed(0)
    return VAE.build((1, 6, 6), z_dim=3, net_kwargs={"hidden": (16,)})


@pytest.fixture
def items() -> data.ArrayDataset:
    x = (torch.rand(40, 1, 6, 6, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    return data.ArrayDataset(x, torch.arange(40) % 2)


def test_posterior_draw_is_loc_plus_scale_times_noise():
    loc, scale = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, 3.0]])
    torch.manual_seed(0)
    draw = stacked.PosteriorDraw()(torch.stack([loc, scale], 1))
    torch.manual_seed(0)
    eps = torch.randn(1, 2)
    assert draw.shape == (1, 2) and torch.allclose(draw, loc + scale * eps)


def test_means_are_the_encoders_and_labels_are_kept(m1, items):
    semi = data.hide_labels(items, per_class=3, seed=1)
    codes = stacked.latent_features(m1, semi)  # the means, by default
    q = m1.encode(semi)
    assert codes.shape == (3,) and codes.transform is None
    assert torch.equal(codes.data, q.mean) and torch.equal(codes.targets, semi.targets)


def test_draws_are_fresh_and_follow_the_posterior(m1, items):
    codes = stacked.latent_features(m1, items, draw=True)
    q = m1.encode(items)
    assert codes.shape == (2, 3)  # stored: [loc, scale] per item; read: one z
    first, second = codes[0][0], codes[0][0]
    assert first.shape == (3,) and not torch.equal(first, second)
    many = torch.stack([codes[0][0] for _ in range(4000)])
    assert torch.allclose(many.mean(0), q.mean[0], atol=4 * q.stddev[0].max() / 4000**0.5)
    assert torch.allclose(many.std(0), q.stddev[0], rtol=0.1)


def test_m2_trains_on_the_codes_and_classifies_their_means(m1, items):
    fit(m1, items, epochs=2, batch_size=20, progress=False)
    semi = data.hide_labels(items, per_class=5, seed=0)
    pyro.set_rng_seed(0)
    m2 = SemiSupervisedVAE.build(
        (3,),
        z_dim=2,
        num_classes=2,
        likelihood=likelihoods.Gaussian(scale="decoder"),
        net_kwargs={"hidden": (8,)},
    )
    history = fit(
        m2, stacked.latent_features(m1, semi, draw=True), epochs=3, batch_size=20, progress=False
    )
    assert len(history["train_elbo"]) == 3
    predicted = m2.predict(stacked.latent_features(m1, items, draw=False))
    assert predicted.shape == (40,) and set(predicted.tolist()) <= {0, 1}


def test_a_class_without_a_diagonal_normal_posterior_is_refused(items):
    m2 = SemiSupervisedVAE.build((1, 6, 6), z_dim=2, num_classes=2, net_kwargs={"hidden": (8,)})
    with pytest.raises(CapabilityError, match="SemiSupervisedVAE does not support the latent"):
        stacked.latent_features(m2, items)

"""The two-stochastic-layer VAE: trace structure, training, save/load, and a closed form
(a linear-Gaussian model whose guide is the exact posterior has ELBO = log p(x))."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from pyvae import evaluate, fit, likelihoods, load, nets, plots, priors
from pyvae.capabilities import CapabilityError
from pyvae.hierarchical import HierarchicalVAE
from pyvae.iwae import IWAE

SHAPE = (1, 8, 8)


def small(prior="normal"):
    return HierarchicalVAE.build(
        SHAPE,
        z_dim=4,
        z2_dim=2,
        prior=prior,
        hidden2=(8,),
        net_kwargs={"hidden": (16,)},
        prior_kwargs={"components": 4} if prior in ("mog", "vamp") else None,
    )


@pytest.fixture
def x():
    torch.manual_seed(0)
    probs = torch.linspace(0.1, 0.9, 64).reshape(1, *SHAPE)
    return (torch.rand(96, *SHAPE) < probs).float()


def test_trace_structure(x):
    vae = small()
    guide_tr = poutine.trace(vae.guide).get_trace(x[:10], num_data=40, kl_weight=0.5)
    model_tr = poutine.trace(poutine.replay(vae.model, trace=guide_tr)).get_trace(
        x[:10], num_data=40, kl_weight=0.5
    )
    names = [
        [n for n, s in tr.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)]
        for tr in (model_tr, guide_tr)
    ]
    assert names == [["z2", "z1", "x"], ["z1", "z2"]]
    for tr in (model_tr, guide_tr):
        for name, dim in (("z1", 4), ("z2", 2)):
            site = tr.nodes[name]
            assert site["fn"].batch_shape == (10,) and site["fn"].event_shape == (dim,)
            assert site["scale"] == pytest.approx(4.0 * 0.5)  # minibatch and KL weight
            (frame,) = site["cond_indep_stack"]
            assert (frame.name, frame.size, frame.full_size) == ("data", 10, 40)
    assert model_tr.nodes["x"]["scale"] == pytest.approx(4.0)
    # p(z1|z2) reads z2, q(z2|z1) reads z1: the same values in both traces.
    assert torch.equal(model_tr.nodes["z1"]["value"], guide_tr.nodes["z1"]["value"])
    assert (vae.z_dim, vae.z2_dim) == (4, 2)


@pytest.mark.parametrize("prior", ["normal", "vamp"])
def test_a_few_epochs_raise_the_elbo_and_methods_work(prior, x):
    vae = small(prior)
    before = float(vae.elbo(x, num_samples=20))
    history = fit(vae, x, epochs=6, batch_size=32, lr=1e-2, progress=False)
    assert history["train_elbo"][-1] > history["train_elbo"][0]
    assert float(vae.elbo(x, num_samples=20)) > before + 3
    assert vae.encode(x).mean.shape == (96, 4)  # q(z1|x)
    assert vae.sample(5).shape == (5, *SHAPE) and vae.reconstruct(x[:3]).shape == (3, *SHAPE)
    assert vae.sample(5, temperature=0.5).shape == (5, *SHAPE)
    terms = evaluate.elbo_terms(vae, x[:8])
    assert (terms["kl"] > 0).all()  # both layers' KL, estimated from the traces
    assert vae.log_likelihood(x[:32], num_samples=100).mean() > vae.elbo(x[:32], num_samples=100)
    assert "samples" in plots.run_figures(vae, history, x)
    fit(vae, x, epochs=1, batch_size=32, elbo=IWAE(3), progress=False)  # IWAE over z1, z2
    with pytest.raises(CapabilityError, match="does not support the closed-form KL"):
        evaluate.kl_per_dim(vae, x)


def test_save_load_round_trip(tmp_path, x):
    vae = small("vamp")
    path = vae.save(tmp_path / "h.pt")
    loaded = load(path)
    assert type(loaded) is HierarchicalVAE and loaded.config == vae.config
    elbos = []
    for model in (vae, loaded):
        pyro.set_rng_seed(0)
        elbos.append(model.elbo(x[:8], reduction="none"))
    assert torch.allclose(*elbos)


def _set_gaussian_net(net, weight, bias, scale):
    """An MLPEncoder with no hidden layer as x -> (weight x + bias, constant scale)."""
    layer = net.net[0]
    k = len(bias)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[:k] = weight
        layer.bias[:k] = bias
        layer.bias[k:] = math.log(math.expm1(scale - nets.MIN_SCALE))  # softplus^-1


def test_exact_posterior_gives_the_exact_marginal_likelihood():
    """z2 ~ N(0, 1), z1 | z2 ~ N(a z2 + c, s1^2), x | z1 ~ N(w z1 + b, sigma^2 I).
    With q(z1|x) = p(z1|x) and q(z2|z1) = p(z2|z1, x) = p(z2|z1), every importance
    weight is p(x): the ELBO equals log p(x) = log N(x; w c + b, v1 w w^T + sigma^2 I),
    v1 = a^2 + s1^2, for each item, with any number of draws."""
    d, a, c, s1, sigma = 3, 1.5, 0.3, 0.7, 0.4
    w, b = torch.tensor([[1.0], [-0.5], [2.0]]), torch.tensor([0.2, 0.0, -1.0])
    x = torch.randn(16, d) * 2
    v1 = a**2 + s1**2
    marginal = dist.MultivariateNormal(
        (w * c).squeeze(1) + b, v1 * w @ w.T + sigma**2 * torch.eye(d)
    )
    prec1 = (
        1 / v1 + float(w.T @ w) / sigma**2
    )  # p(z1|x) = N((c/v1 + w^T(x-b)/sigma^2)/prec1, 1/prec1)
    prec2 = 1 + a**2 / s1**2  # p(z2|z1) = N(a (z1 - c) / s1^2 / prec2, 1/prec2)

    vae = HierarchicalVAE(
        nets.MLPEncoder((d,), 1, hidden=()),
        nets.MLPDecoder(1, (d,), hidden=()),
        priors.StandardNormal(1),
        likelihoods.Gaussian(sigma),
        encoder2=nets.MLPEncoder((1,), 1, hidden=()),
        decoder2=nets.MLPEncoder((1,), 1, hidden=()),
    )
    _set_gaussian_net(
        vae.encoder, w.T / sigma**2 / prec1, (c / v1 - w.T @ b / sigma**2) / prec1, prec1**-0.5
    )
    _set_gaussian_net(
        vae.encoder2,
        torch.tensor([[a / s1**2 / prec2]]),
        torch.tensor([-a * c / s1**2 / prec2]),
        prec2**-0.5,
    )
    _set_gaussian_net(vae.decoder2, torch.tensor([[a]]), torch.tensor([c]), s1)
    with torch.no_grad():
        vae.decoder.net[0].weight.copy_(w)
        vae.decoder.net[0].bias.copy_(b)
    exact = marginal.log_prob(x)
    assert torch.allclose(vae.elbo(x, num_samples=5, reduction="none"), exact, atol=1e-4)
    assert torch.allclose(vae.log_likelihood(x, num_samples=5), exact, atol=1e-4)
    # A wrong guide (here: q(z2|z1) that ignores z1) is a strict bound:
    with torch.no_grad():
        vae.encoder2.net[0].weight.zero_()
    assert (vae.elbo(x, num_samples=500, reduction="none") < exact - 0.01).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="z2_dim"):
        small_prior = priors.StandardNormal(3)
        HierarchicalVAE.build(SHAPE, z_dim=4, z2_dim=2, prior=small_prior)
    with pytest.raises(ValueError, match="unknown prior"):
        HierarchicalVAE.build(SHAPE, prior="nope")

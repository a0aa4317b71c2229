"""The conditional VAE: trace structure, the unconditional limit, training, save/load,
generation conditioned on c, and the side-information path through fit and evaluate."""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.poutine.util import site_is_subsample

from pyvae import VAE, ConditionalVAE, data, fit, load

SHAPE = (1, 8, 8)
NETS = {"mlp": {"hidden": (16,)}, "conv": {"channels": (4, 4), "hidden": 8}}


def small_cvae(net="mlp", **kwargs):
    kwargs.setdefault("num_classes", 3)
    return ConditionalVAE.build(SHAPE, z_dim=3, net=net, net_kwargs=NETS[net], **kwargs)


def binary(n, shape=SHAPE):
    return torch.bernoulli(torch.full((n, *shape), 0.3))


def sample_sites(trace):
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site)
    }


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_trace_structure(net):
    cvae = small_cvae(net)
    x, c = binary(5), torch.tensor([0, 1, 2, 0, 1])
    guide = poutine.trace(cvae.guide).get_trace(x, c, num_data=20)
    model = poutine.trace(poutine.replay(cvae.model, trace=guide)).get_trace(x, c, num_data=20)
    model_sites, guide_sites = sample_sites(model), sample_sites(guide)
    assert set(model_sites) == {"z", "x"} and set(guide_sites) == {"z"}  # c is no site
    assert model_sites["x"]["is_observed"] and not model_sites["z"]["is_observed"]
    assert model_sites["z"]["value"] is guide_sites["z"]["value"]
    assert guide_sites["z"]["value"].shape == (5, 3)
    assert model_sites["x"]["fn"].event_shape == SHAPE
    for site in [*model_sites.values(), *guide_sites.values()]:
        assert site["scale"] == 4.0  # num_data / B
        assert [f.name for f in site["cond_indep_stack"]] == ["data"]
    expected = (1 + 3, 8, 8) if net == "conv" else (64 + 3,)  # x joined with one-hot c
    assert cvae.encoder.input_shape == expected and cvae.decoder.z_dim == 3 + 3


def embed(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Copy ``src``'s parameters into the leading slices of ``dst``'s, zeros elsewhere:
    the conditional networks then ignore c."""
    with torch.no_grad():
        for a, b in zip(src.parameters(), dst.parameters(), strict=True):
            b.zero_()
            b[tuple(slice(0, s) for s in a.shape)] = a


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_a_cvae_whose_networks_ignore_c_is_the_vae(net):
    vae = VAE.build(SHAPE, z_dim=3, net=net, net_kwargs=NETS[net])
    cvae = small_cvae(net, num_classes=4)
    embed(vae.encoder, cvae.encoder)
    embed(vae.decoder, cvae.decoder)
    x, c = binary(6), torch.tensor([3, 1, 0, 2, 2, 1])
    pyro.set_rng_seed(1)
    expected = Trace_ELBO().loss(vae.model, vae.guide, x, num_data=30)
    pyro.set_rng_seed(1)
    assert Trace_ELBO().loss(cvae.model, cvae.guide, x, c, num_data=30) == pytest.approx(
        expected, rel=1e-5
    )
    pyro.set_rng_seed(2)
    expected = vae.log_likelihood(x, num_samples=20)
    pyro.set_rng_seed(2)
    torch.testing.assert_close(cvae.log_likelihood(x, num_samples=20, c=c), expected)
    torch.testing.assert_close(cvae.encode((x, c)).mean, vae.encode(x).mean)


def test_context_of_any_shape_and_where_it_comes_from():
    cvae = ConditionalVAE.build(SHAPE, z_dim=2, context_dim=4, net_kwargs={"hidden": (8,)})
    x, c = binary(5), torch.randn(5, 2, 2)  # 4 values per item, any shape
    ref = cvae.encode(x, c=c).mean
    for source in (
        (x, c),
        data.ArrayDataset(x, c),
        torch.utils.data.TensorDataset(x, c),
    ):
        torch.testing.assert_close(cvae.encode(source).mean, ref)
    assert cvae.elbo(x, c=c, reduction="none").shape == (5,)
    assert cvae.sample(3, c=torch.zeros(4)).shape == (3, *SHAPE)
    assert cvae.sample(5, c=c).shape == (5, *SHAPE)
    assert cvae.reconstruct(x, c=c).shape == (5, *SHAPE)


def test_training_improves_the_elbo():
    train, test = data.load("sprites", n_train=300, n_test=100, size=16)
    shapes = train.with_targets(train.targets[:, 0].long())
    cvae = ConditionalVAE.build((1, 16, 16), z_dim=2, num_classes=3, net_kwargs={"hidden": (32,)})
    val = test.with_targets(test.targets[:, 0])
    history = fit(cvae, shapes, val=val, epochs=4, lr=1e-2, progress=False)
    assert history["train_elbo"][-1] > history["train_elbo"][0] + 20
    assert history["val_elbo"][-1] > history["val_elbo"][0]


def test_generation_is_conditioned_on_c():
    """Trained with c = each sprite's horizontal position, samples move with c."""
    train, _ = data.load("sprites", n_train=1000, n_test=1, size=16)
    position = train.with_targets(train.targets[:, 3:4])  # pos_x in [0, 1]
    cvae = ConditionalVAE.build((1, 16, 16), z_dim=2, context_dim=1, net_kwargs={"hidden": (64,)})
    fit(cvae, position, epochs=10, lr=1e-2, batch_size=100, progress=False)
    columns = torch.arange(16.0)

    def centre(c):  # mean column of the ink, in pixels
        s = cvae.sample(200, c=c)
        return float(((s.sum((1, 2)) * columns).sum(-1) / s.sum((1, 2, 3))).mean())

    left, middle, right = centre(0.1), centre(0.5), centre(0.9)
    assert left < middle < right and right - left > 1.5


def test_save_and_load_round_trip(tmp_path):
    for cvae in (small_cvae(), small_cvae("conv", num_classes=None, context_dim=2)):
        path = cvae.save(tmp_path / f"{cvae.context_dim}.pt")
        loaded = load(path)
        assert type(loaded) is ConditionalVAE and loaded.config == cvae.config
        assert loaded.options == cvae.options
        c = torch.tensor([1, 0]) if cvae.num_classes else torch.randn(2, 2)
        x = binary(2)
        torch.testing.assert_close(loaded.encode(x, c=c).mean, cvae.encode(x, c=c).mean)
        pyro.set_rng_seed(3)
        a = cvae.sample(4, c=c[0])
        pyro.set_rng_seed(3)
        torch.testing.assert_close(loaded.sample(4, c=c[0]), a)


def test_bad_context_is_refused_before_training():
    cvae = small_cvae()
    x = binary(4)
    with pytest.raises(ValueError, match="needs c for each item"):
        fit(cvae, x, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.2"):
        fit(cvae, (x, torch.tensor([0, 1, 3, 0])), epochs=1, progress=False)
    with pytest.raises(ValueError, match="pick one"):
        fit(cvae, (x, torch.zeros(4, 5)), epochs=1, progress=False)
    with pytest.raises(ValueError, match="4 items but c has shape"):
        fit(cvae, (x, torch.zeros(3)), epochs=1, progress=False)
    with pytest.raises(ValueError, match="needs c for each item"):  # val checked up front
        fit(cvae, (x, torch.zeros(4)), val=x, epochs=1, progress=False)
    with pytest.raises(TypeError, match="takes only c="):
        cvae.encode(x, y=torch.zeros(4))
    with pytest.raises(TypeError, match="takes no side information"):
        VAE.build(SHAPE, z_dim=2).encode(x, c=torch.zeros(4))
    with pytest.raises(ValueError, match="3 values per item, but context_dim=2"):
        small_cvae(num_classes=None, context_dim=2).encode(x, c=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="exactly one of num_classes"):
        small_cvae(num_classes=3, context_dim=2)
    with pytest.raises(ValueError, match="VampPrior"):
        small_cvae(prior="vamp", prior_kwargs={"components": 2})
    plain = VAE.build(SHAPE, z_dim=3)  # its encoder does not see c
    with pytest.raises(ValueError, match="joined"):
        ConditionalVAE(*plain.children(), input_shape=SHAPE, num_classes=3)

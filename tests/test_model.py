"""The VAE as a Pyro model and guide: trace structure, plain-Pyro use, methods, checks."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from helpers import small_vae
from pyro import poutine
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.poutine.util import site_is_subsample

from pyvae import LIKELIHOODS, NETS, PRIORS, VAE


def is_sample(site):
    return site["type"] == "sample" and not site_is_subsample(site)


@pytest.fixture
def binary_data():
    return (torch.rand(40, 1, 8, 8) > 0.6).float()


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_trace_structure(prior, binary_data):
    vae = small_vae(prior)
    x = binary_data[:10]
    guide_tr = poutine.trace(vae.guide).get_trace(x, num_data=40)
    model_tr = poutine.trace(poutine.replay(vae.model, trace=guide_tr)).get_trace(x, num_data=40)
    model_sites = [n for n, s in model_tr.nodes.items() if is_sample(s)]
    guide_sites = [n for n, s in guide_tr.nodes.items() if is_sample(s)]
    assert model_sites == ["z", "x"] and guide_sites == ["z"]
    z, xs = model_tr.nodes["z"], model_tr.nodes["x"]
    assert xs["is_observed"] and torch.equal(xs["value"], x)
    assert z["fn"].event_shape == (3,) and z["fn"].batch_shape == (10,)
    assert xs["fn"].event_shape == (1, 8, 8) and xs["fn"].batch_shape == (10,)
    for site in (z, xs, guide_tr.nodes["z"]):
        (frame,) = site["cond_indep_stack"]
        assert (frame.name, frame.dim, frame.size, frame.full_size) == ("data", -1, 10, 40)
        assert site["scale"] == pytest.approx(4.0)  # minibatch of 10 scaled to 40
    # Parameters are registered under this instance's own name.
    params = [n for n, s in guide_tr.nodes.items() if s["type"] == "param"]
    assert params and all(n.startswith(vae._pyro_name + ".") for n in params)


def test_hand_written_svi_loop_trains(binary_data):
    vae = small_vae()
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    before = float(vae.elbo(binary_data, num_samples=10))
    for _ in range(150):
        svi.step(binary_data)
    assert float(vae.elbo(binary_data, num_samples=10)) > before + 5


def test_predictive_from_prior_and_posterior(binary_data):
    vae = small_vae("mog")
    prior_pred = Predictive(vae.model, num_samples=3)(None, batch_size=5)
    assert prior_pred["z"].shape == (3, 5, 3)
    assert prior_pred["x"].shape == (3, 5, 1, 8, 8)
    assert set(prior_pred["x"].unique().tolist()) <= {0.0, 1.0}
    post = Predictive(vae.model, guide=vae.guide, num_samples=4)(binary_data[:6])
    assert post["z"].shape == (4, 6, 3)
    parallel = Predictive(vae.model, num_samples=3, parallel=True)(None, batch_size=5)
    assert parallel["x"].shape == (3, 5, 1, 8, 8)


def test_methods_shapes_and_no_grad(binary_data):
    vae = small_vae("flow")
    q = vae.encode(binary_data)
    assert isinstance(q, dist.Independent) and q.batch_shape == (40,) and q.event_shape == (3,)
    assert not q.mean.requires_grad
    px = vae.decode(torch.zeros(2, 7, 3))
    assert px.batch_shape == (2, 7) and px.event_shape == (1, 8, 8)
    r = vae.reconstruct(binary_data)
    assert r.shape == binary_data.shape and ((r >= 0) & (r <= 1)).all()
    s = vae.sample(6, mean=False)
    assert s.shape == (6, 1, 8, 8) and set(s.unique().tolist()) <= {0.0, 1.0}
    per_item = vae.elbo(binary_data, reduction="none", batch_size=7)
    assert per_item.shape == (40,) and not per_item.requires_grad
    assert float(vae.elbo(binary_data, reduction="sum")) == pytest.approx(
        float(per_item.sum()), rel=0.05
    )


def test_elbo_matches_pyro_trace_elbo(binary_data):
    """vae.elbo (from traces, per item) agrees with Pyro's Trace_ELBO loss / N."""
    vae = small_vae("mog")
    pyro.set_rng_seed(3)
    ours = float(vae.elbo(binary_data, num_samples=200))
    loss = Trace_ELBO(num_particles=200, vectorize_particles=False).loss(
        vae.model, vae.guide, binary_data
    )
    assert ours == pytest.approx(-loss / len(binary_data), abs=0.3)


def test_elbo_does_not_depend_on_batch_size(binary_data):
    """Minibatch scaling: the full-data loss estimated from a minibatch through the plate's
    num_data scaling has the same expectation as the full-batch loss."""
    vae = small_vae("normal")
    n = len(binary_data)
    elbo = Trace_ELBO()
    full = sum(elbo.loss(vae.model, vae.guide, binary_data) for _ in range(200)) / 200
    mini = []
    for _ in range(400):
        idx = torch.randperm(n)[:8]
        mini.append(elbo.loss(vae.model, vae.guide, binary_data[idx], num_data=n))
    mini = torch.tensor(mini)
    assert abs(mini.mean() - full) < 4 * mini.std() / len(mini) ** 0.5 + 0.5
    assert abs(mini.mean() - full) / abs(full) < 0.02


def test_kl_weight_scales_and_zero_masks_the_z_sites(binary_data):
    vae = small_vae()
    x = binary_data[:5]
    for weight, expected in [(0.25, 0.25), (0.0, 0.0)]:
        guide_tr = poutine.trace(vae.guide).get_trace(x, kl_weight=weight)
        model_tr = poutine.trace(poutine.replay(vae.model, trace=guide_tr)).get_trace(
            x, kl_weight=weight
        )
        model_tr.compute_log_prob()
        guide_tr.compute_log_prob()
        for tr in (model_tr, guide_tr):
            z = tr.nodes["z"]
            assert torch.allclose(z["log_prob"], expected * z["unscaled_log_prob"])
        assert torch.equal(
            model_tr.nodes["x"]["log_prob"], model_tr.nodes["x"]["unscaled_log_prob"]
        )


def test_two_vaes_are_independent_and_rebuilding_starts_fresh(binary_data):
    from pyvae import fit

    a, b = small_vae("mog"), small_vae("mog")
    b_before = {k: v.clone() for k, v in b.state_dict().items()}
    fit(a, binary_data, epochs=3, batch_size=10, progress=False)
    assert all(torch.equal(b_before[k], v) for k, v in b.state_dict().items())
    fit(b, binary_data, epochs=1, batch_size=10, progress=False)
    assert any(not torch.equal(b_before[k], v) for k, v in b.state_dict().items())
    # Pyro sees the module's own tensors (not a stale store entry) when it traces the model.
    pyro.infer.Trace_ELBO().loss(a.model, a.guide, binary_data.float())
    store = pyro.get_param_store()
    for name, p in a.named_parameters():
        stored = [store._params[k] for k in store.keys() if k.startswith(a._pyro_name + ".")]
        assert any(s is p for s in stored), name
    # Building "the same" VAE again gives fresh parameters.
    pyro.set_rng_seed(0)
    c = small_vae("mog")
    pyro.set_rng_seed(0)
    d = small_vae("mog")
    fit(c, binary_data, epochs=2, batch_size=10, progress=False)
    for (k, pc), pd in zip(c.state_dict().items(), d.state_dict().values(), strict=True):
        if "anchor" not in k:
            assert not torch.equal(pc, pd) or pc.numel() == 0, k


def test_garbage_collected_vae_leaves_the_param_store(binary_data):
    import gc

    vae = small_vae()
    name = vae._pyro_name
    pyro.infer.Trace_ELBO().loss(vae.model, vae.guide, binary_data.float())  # registers them
    assert any(k.startswith(name + ".") for k in pyro.get_param_store().keys())
    del vae
    gc.collect()
    assert not any(k.startswith(name + ".") for k in pyro.get_param_store().keys())


def test_build_rejects_bad_arguments_listing_valid_names():
    with pytest.raises(ValueError, match="z_dim"):
        VAE.build(input_shape=(4,), z_dim=0)
    with pytest.raises(ValueError, match="vamp"):
        VAE.build(input_shape=(4,), prior="gauss")
    with pytest.raises(ValueError, match="continuous_bernoulli"):
        VAE.build(input_shape=(4,), likelihood="bernouli")
    with pytest.raises(ValueError, match="conv.*mlp|mlp.*conv"):
        VAE.build(input_shape=(4,), net="resnet")
    with pytest.raises(ValueError, match="mlp"):
        VAE.build(input_shape=(4,), net="conv")
    with pytest.raises(ValueError, match="input_shape"):
        VAE.build(input_shape=(0, 3))
    with pytest.raises(TypeError, match="prior"):
        VAE(
            encoder=torch.nn.Linear(2, 2),
            decoder=torch.nn.Linear(2, 2),
            prior="normal",
            likelihood=LIKELIHOODS["gaussian"](),
            input_shape=(2,),
        )


@pytest.mark.parametrize("net", sorted(NETS))
def test_build_accepts_part_instances(net):
    from pyvae import likelihoods, priors

    vae = VAE.build(
        input_shape=(1, 8, 8),
        z_dim=2,
        prior=priors.MixtureOfGaussians(2, components=3),
        likelihood=likelihoods.Gaussian(scale="decoder"),
        net=net,
        net_kwargs={"hidden": 16} if net == "conv" else {"hidden": (16,)},
    )
    assert vae.config["prior"] == {
        "class": "pyvae.priors.MixtureOfGaussians",
        "args": [2],
        "kwargs": {"components": 3},
    }
    assert vae.sample(2).shape == (2, 1, 8, 8)


def test_check_data_errors_name_the_problem():
    vae = small_vae()
    with pytest.raises(ValueError, match="empty"):
        vae.check_data(torch.zeros(0, 1, 8, 8))
    with pytest.raises(ValueError, match=r"reshape"):
        vae.check_data(torch.zeros(3, 64))
    with pytest.raises(ValueError, match="input_shape"):
        vae.check_data(torch.zeros(3, 1, 9, 9))
    bad = torch.zeros(3, 1, 8, 8)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        vae.check_data(bad)
    with pytest.raises(ValueError, match="ContinuousBernoulli"):
        vae.check_data(torch.full((3, 1, 8, 8), 0.5))
    with pytest.raises(ValueError, match="z must have shape"):
        vae.decode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="ContinuousBernoulli"):  # elbo checks the support
        vae.elbo(torch.full((3, 1, 8, 8), 0.5))
    with pytest.raises(ValueError, match="batch_size"):
        vae.encode(torch.zeros(3, 1, 8, 8), batch_size=0)


def test_clearing_pyros_param_store_loses_nothing(binary_data):
    from pyvae import fit

    vae = small_vae("mog")
    fit(vae, binary_data, epochs=3, batch_size=10, progress=False)
    trained = {k: v.clone() for k, v in vae.state_dict().items()}
    pyro.clear_param_store()
    fit(vae, binary_data, epochs=0, progress=False)
    assert all(torch.equal(trained[k], v) for k, v in vae.state_dict().items())
    fit(vae, binary_data, epochs=1, batch_size=10, progress=False)  # and training goes on
    assert any(not torch.equal(trained[k], v) for k, v in vae.state_dict().items())


def test_user_networks_meeting_the_contract_work(binary_data):
    from pyvae import fit, likelihoods, priors

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(-3), torch.nn.Linear(64, 4))

        def forward(self, x):
            loc, raw = self.net(x).chunk(2, -1)
            return loc, torch.nn.functional.softplus(raw) + 1e-4

    decoder = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Unflatten(-1, (1, 8, 8)))
    vae = VAE(Encoder(), decoder, priors.StandardNormal(2), likelihoods.Bernoulli(), (1, 8, 8))
    before = float(vae.elbo(binary_data, num_samples=10))
    fit(vae, binary_data, epochs=30, batch_size=20, lr=1e-2, progress=False)
    assert float(vae.elbo(binary_data, num_samples=10)) > before + 3
    with pytest.raises(ValueError, match="input_shape"):
        VAE(Encoder(), decoder, priors.StandardNormal(2), likelihoods.Bernoulli())


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_the_models_trace_holds_the_encoder_only_where_the_prior_needs_it(prior, binary_data):
    """p(z) alone decides whether the model reads the encoder: a VampPrior declares
    needs_encoder (its p(z) pushes pseudo-inputs through the encoder), the others don't."""
    vae = small_vae(prior)
    tr = poutine.trace(vae.model).get_trace(binary_data[:4])
    params = [n for n, s in tr.nodes.items() if s["type"] == "param"]
    in_model = any(".encoder$$$" in n for n in params)
    assert in_model == (prior == "vamp") == vae.prior.needs_encoder
    assert any(".decoder$$$" in n for n in params)


def test_a_prior_of_ones_own_that_declares_needs_encoder_gets_it(binary_data):
    from pyvae import priors

    class EncoderMean(priors.Prior):
        needs_encoder = True

        def __init__(self, z_dim):
            super().__init__(z_dim)
            self.u = torch.nn.Parameter(torch.zeros(1, 1, 8, 8))

        def forward(self, encoder):
            loc, scale = encoder(self.u)
            return dist.Normal(loc[0], scale[0]).to_event(1)

    class NoArgument(priors.Prior):
        def forward(self):  # called as prior(): takes no encoder
            zeros = self._zeros()
            return dist.Normal(zeros, torch.ones_like(zeros)).to_event(1)

    base = small_vae()
    for prior in (EncoderMean(3), NoArgument(3)):
        vae = VAE(base.encoder, base.decoder, prior, base.likelihood, (1, 8, 8))
        assert vae.p_z().event_shape == (3,)
        assert vae.elbo(binary_data[:4]).isfinite()
        vae.sample(2)


def test_channels_last_items_are_told_to_permute():
    vae = VAE.build(input_shape=(1, 8, 8), z_dim=2, net_kwargs={"hidden": (8,)})
    with pytest.raises(ValueError, match=r"look channels-last .*x\.permute\(0, 3, 1, 2\)"):
        vae.elbo(torch.rand(4, 8, 8, 1).round())

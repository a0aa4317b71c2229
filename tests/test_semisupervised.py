"""The semi-supervised VAE (M2): trace structure under enumeration, the fully labelled
limit (a conditional VAE plus the classifier), the exact sum over classes, training,
prediction, save/load and the label helpers."""

import copy
import math
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.poutine.util import site_is_subsample

from pyvae import ConditionalVAE, SemiSupervisedVAE, data, evaluate, fit, likelihoods, load
from pyvae.capabilities import CapabilityError
from pyvae.semisupervised import SemiSupervisedELBO

SHAPE = (1, 8, 8)
K = 3


def small_m2(**kwargs):
    kwargs.setdefault("net_kwargs", {"hidden": (16,)})
    return SemiSupervisedVAE.build(SHAPE, z_dim=2, num_classes=K, **kwargs)


def binary(n):
    return torch.bernoulli(torch.full((n, *SHAPE), 0.3))


def sample_sites(trace):
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site)
    }


def test_trace_structure_with_enumerated_labels():
    m2 = small_m2()
    x, y = binary(5), torch.tensor([2, -1, 0, -1, -1])
    guide = poutine.trace(poutine.enum(m2.guide, first_available_dim=-2)).get_trace(
        x, y, num_data=20
    )
    model = poutine.trace(poutine.replay(m2.model, trace=guide)).get_trace(x, y, num_data=20)
    guide_sites, model_sites = sample_sites(guide), sample_sites(model)
    assert set(guide_sites) == {"z_labelled", "y_unlabelled", "z_unlabelled"}
    assert set(model_sites) == {
        *("y_labelled", "z_labelled", "x_labelled"),
        *("y_unlabelled", "z_unlabelled", "x_unlabelled"),
    }
    observed = {name for name, site in model_sites.items() if site["is_observed"]}
    assert observed == {"y_labelled", "x_labelled", "x_unlabelled"}
    assert model_sites["y_labelled"]["value"].tolist() == [2, 0]
    y_u = guide_sites["y_unlabelled"]
    assert y_u["infer"]["enumerate"] == "parallel"
    assert y_u["value"].shape == (K, 1) and y_u["value"].squeeze(1).tolist() == [0, 1, 2]
    assert guide_sites["z_unlabelled"]["value"].shape == (K, 3, 2)  # a z per class and item
    assert guide_sites["z_labelled"]["value"].shape == (2, 2)
    assert model_sites["x_unlabelled"]["fn"].batch_shape == (K, 3)
    for name, site in [*guide_sites.items(), *model_sites.items()]:
        assert site["scale"] == 4.0, name  # num_data / B for both parts
        part = name.split("_", 1)[1]
        assert [f.name for f in site["cond_indep_stack"]] == [part]


def test_all_labels_observed_is_a_conditional_vae_plus_the_classifier():
    """With every label known, M2's loss is the CVAE's (same networks) minus N log p(y)
    plus alpha times the classifier's scaled negative log-likelihood."""
    m2 = small_m2(alpha=7.0)
    parts = copy.deepcopy([m2.encoder, m2.decoder, m2.prior, m2.likelihood])  # not shared
    cvae = ConditionalVAE(*parts, input_shape=SHAPE, num_classes=K)
    x, y, n = binary(6), torch.tensor([0, 2, 1, 1, 0, 2]), 30
    pyro.set_rng_seed(1)
    loss = SemiSupervisedELBO(m2).loss(m2.model, m2.guide, x, y, num_data=n)
    pyro.set_rng_seed(1)
    cvae_loss = Trace_ELBO().loss(cvae.model, cvae.guide, x, y, num_data=n)
    nll = F.cross_entropy(m2.classifier(x), y, reduction="sum").item() * n / len(x)
    assert loss == pytest.approx(cvae_loss + n * math.log(K) + 7.0 * nll, rel=1e-5)
    pyro.set_rng_seed(1)
    grads_loss = SemiSupervisedELBO(m2).loss_and_grads(m2.model, m2.guide, x, y, num_data=n)
    assert grads_loss == pytest.approx(loss, rel=1e-5)
    assert all(p.grad is not None for p in m2.classifier.parameters())  # from alpha's term


@pytest.mark.parametrize(
    "labels", [[-1, -1, -1, -1], [1, -1, 0, -1], [2, 0, 1, 1]], ids=["none", "some", "all"]
)
def test_elbo_sums_the_classes_exactly_as_trace_enum_does(labels):
    """``elbo`` (the enumeration written out: U(x) = sum_y q(y|x) [L(x, y) - log q(y|x)])
    equals Pyro's TraceEnum_ELBO on the model and guide, draw for draw."""
    m2 = small_m2()
    x, y = binary(4), torch.tensor(labels)
    pyro.set_rng_seed(5)
    with warnings.catch_warnings():  # all labelled: nothing to enumerate, Pyro says so
        warnings.simplefilter("ignore", UserWarning)
        loss = TraceEnum_ELBO(max_plate_nesting=1).loss(m2.model, m2.guide, x, y)
    pyro.set_rng_seed(5)
    assert m2.elbo(x, y=y, reduction="sum").item() == pytest.approx(-loss, rel=1e-5)


def test_log_likelihood_of_x_sums_over_the_classes():
    m2 = small_m2()
    x = binary(3)
    pyro.set_rng_seed(0)
    log_px = m2.log_likelihood(x, num_samples=2000)  # labels unknown
    per_class = torch.stack(
        [m2.log_likelihood(x, num_samples=2000, y=torch.full((3,), k)) for k in range(K)]
    )
    torch.testing.assert_close(log_px, per_class.logsumexp(0), atol=0.05, rtol=0)
    assert bool((log_px > m2.elbo(x, num_samples=200, reduction="none")).all())


def test_encode_is_the_mixture_over_classes():
    m2 = small_m2()
    x, y = binary(2), torch.tensor([1, -1])
    q = m2.encode(x, y=y)
    assert q.batch_shape == (2,) and q.event_shape == (2,)
    loc, _ = m2._q_params(x, c=torch.tensor([1, 1]))
    torch.testing.assert_close(q.mean[0], loc[0])  # known label: q(z | x, y)
    probs = m2.predict_proba(x[1:])[0]
    locs = torch.stack([m2._q_params(x[1:], c=torch.tensor([k]))[0][0] for k in range(K)])
    torch.testing.assert_close(q.mean[1], probs @ locs)  # unknown: sum_y q(y|x) E[z|x, y]


def position_data(n_train=1000, n_test=500):
    """16x16 sprites labelled by side: left (0) or right (1) of the image."""
    train, test = data.load("sprites", n_train=n_train, n_test=n_test, size=16)
    side = lambda d: d.with_targets((d.targets[:, 3] > 0.5).long())  # noqa: E731
    return side(train), side(test)


def test_few_labels_train_a_classifier_well_above_chance():
    train, test = position_data()
    semi = data.hide_labels(train, per_class=10)  # 20 labels, 980 unlabelled
    m2 = SemiSupervisedVAE.build((1, 16, 16), z_dim=4, num_classes=2,
                                 net_kwargs={"hidden": (64,)})  # fmt: skip
    history = fit(m2, semi, val=test, epochs=10, lr=5e-3, batch_size=100, progress=False)
    assert history["train_elbo"][-1] > history["train_elbo"][0] + 20  # loss went down
    accuracy = (m2.predict(test) == test.targets).float().mean().item()
    assert accuracy > 0.7  # chance: 0.5
    assert m2.predict_proba(test).sum(-1).allclose(torch.ones(len(test)))


def test_a_pyro_optimizer_trains_the_classifier_too():
    m2 = small_m2()
    x, y = binary(8), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])  # all labelled: the guide
    before = [p.detach().clone() for p in m2.classifier.parameters()]  # skips q(y|x)
    fit(m2, (x, y), epochs=2, optim=pyro.optim.Adam({"lr": 1e-2}), progress=False)
    after = list(m2.classifier.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_save_and_load_round_trip(tmp_path):
    m2 = small_m2(alpha=3.0, net="conv", net_kwargs={"channels": (4, 4), "hidden": 8})
    path = m2.save(tmp_path / "m2.pt")
    loaded = load(path)
    assert type(loaded) is SemiSupervisedVAE and loaded.config == m2.config
    assert loaded.alpha == 3.0 and loaded.num_classes == K
    x, y = binary(4), torch.tensor([0, -1, 2, -1])
    torch.testing.assert_close(loaded.predict_proba(x), m2.predict_proba(x))
    pyro.set_rng_seed(0)
    a = m2.elbo(x, y=y, reduction="none")
    pyro.set_rng_seed(0)
    torch.testing.assert_close(loaded.elbo(x, y=y, reduction="none"), a)


def test_generation_and_reconstruction():
    m2 = small_m2()
    assert m2.sample(4).shape == (4, *SHAPE) and m2.sample(4, y=2).shape == (4, *SHAPE)
    pyro.set_rng_seed(0)
    a = m2.sample(3, y=torch.tensor([0, 1, 2]))
    pyro.set_rng_seed(0)
    z = m2.prior(m2.encoder).sample((3,))
    torch.testing.assert_close(a, m2.decode(z, y=torch.tensor([0, 1, 2])).mean)
    x = binary(3)
    labels = m2.predict(x)  # reconstruct uses the known label, else the predicted one
    torch.testing.assert_close(m2.reconstruct(x), m2.reconstruct(x, y=labels))


def test_hide_labels_is_stratified_and_seeded():
    x, labels = torch.zeros(60, 2), torch.arange(60) % 3
    kept = data.hide_labels((x, labels), per_class=4, seed=1).targets
    assert (kept != data.UNLABELLED).sum() == 12
    assert kept[kept >= 0].bincount().tolist() == [4, 4, 4]
    assert bool((kept[kept >= 0] == labels[kept >= 0]).all())
    assert torch.equal(kept, data.hide_labels((x, labels), per_class=4, seed=1).targets)
    assert not torch.equal(kept, data.hide_labels((x, labels), per_class=4, seed=2).targets)
    with pytest.raises(ValueError, match="fewer than per_class=21"):
        data.hide_labels((x, labels), per_class=21)
    with pytest.raises(ValueError, match="one integer class label per item"):
        data.hide_labels((x, torch.zeros(60, 2)), per_class=1)


def test_labels_are_checked_and_data_without_them_is_unlabelled():
    m2 = small_m2()
    x = binary(4)
    with pytest.raises(ValueError, match=r"in 0\.\.2 or -1 \(unknown\)"):
        fit(m2, (x, torch.tensor([0, 1, 3, -1])), epochs=1, progress=False)
    with pytest.raises(ValueError, match="one integer per item"):
        m2.elbo((x, torch.tensor([0.5, 1, 2, 0])))
    pyro.set_rng_seed(0)
    a = m2.elbo(x, reduction="none")
    pyro.set_rng_seed(0)
    torch.testing.assert_close(m2.elbo(x, y=torch.full((4,), -1), reduction="none"), a)
    with pytest.raises(ValueError, match="alpha"):
        small_m2(alpha=-1.0)


def test_evaluate_refuses_a_batch_split_into_labelled_and_unlabelled_items():
    m2 = small_m2()
    with pytest.raises(CapabilityError, match="its sites lie in two plates.*own elbo()"):
        evaluate.elbo_terms(m2, binary(4), y=torch.tensor([0, -1, 1, -1]))


def test_labelled_batches_give_every_batch_its_labelled_share():
    labels = torch.full((23,), data.UNLABELLED)
    labels[[3, 9, 17]] = torch.tensor([0, 1, 2])
    order = data.LabelledBatches(labels, batch_size=6, labelled=2)
    assert order.step_kwargs == {"num_labelled": 3}
    epoch = order()
    assert len(epoch) == len(order) == 5 * 2 + 20  # 20 unlabelled, 4 per step: 5 steps
    batches = epoch.split(6)
    assert [len(b) for b in batches] == [6, 6, 6, 6, 6]
    for b in batches:
        assert (labels[b] != data.UNLABELLED).sum() == 2  # every step sees labelled items
    unlabelled = epoch[labels[epoch] == data.UNLABELLED]
    assert sorted(unlabelled.tolist()) == sorted((labels == -1).nonzero().squeeze(1).tolist())
    counts = torch.bincount(epoch[labels[epoch] != data.UNLABELLED], minlength=23)[[3, 9, 17]]
    assert counts.max() - counts.min() <= 1  # the pool is cycled through, not drawn at random
    with pytest.raises(ValueError, match="labelled=6 must be < batch_size=6"):
        data.LabelledBatches(labels, batch_size=6, labelled=6)
    with pytest.raises(ValueError, match="both labelled and unlabelled"):
        data.LabelledBatches(torch.zeros(5, dtype=torch.long), batch_size=4, labelled=1)


def test_stratified_batches_scale_each_part_by_its_own_size():
    """With ``num_labelled`` each part is scaled to its own share of the dataset, so the
    mean over all stratified batches is the full-data objective (checked exactly on the
    deterministic classification term)."""
    m2 = small_m2()
    x, y = binary(5), torch.tensor([2, -1, 0, -1, -1])
    n, n_labelled = 40, 10  # the dataset: 10 labelled, 30 unlabelled
    guide = poutine.trace(poutine.enum(m2.guide, first_available_dim=-2)).get_trace(
        x, y, num_data=n, num_labelled=n_labelled
    )
    model = poutine.trace(poutine.replay(m2.model, trace=guide)).get_trace(
        x, y, num_data=n, num_labelled=n_labelled
    )
    for name, site in [*sample_sites(guide).items(), *sample_sites(model).items()]:
        expected = n_labelled / 2 if name.endswith("_labelled") else (n - n_labelled) / 3
        assert site["scale"] == pytest.approx(expected), name
    # The classification term: all 2-of-4 labelled subsets, each with the same unlabelled
    # items, average to the loss over all labelled items at once.
    xs, ys = binary(4), torch.tensor([0, 1, 2, 1])
    xu = binary(2)
    full = m2.classification_loss(xs, ys, num_data=6, num_labelled=4)
    subsets = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    losses = [
        m2.classification_loss(
            torch.cat([xs[[i, j]], xu]), torch.tensor([ys[i], ys[j], -1, -1]), num_data=6,
            num_labelled=4,
        )
        for i, j in subsets
    ]  # fmt: skip
    torch.testing.assert_close(torch.stack(losses).mean(), full)
    with pytest.raises(ValueError, match="num_labelled needs num_data"):
        m2.classification_loss(xs, ys, num_labelled=4)


def test_fit_stratifies_batches_unless_labelled_share_is_zero():
    x, y = binary(40), torch.full((40,), -1)
    y[:4] = torch.tensor([0, 1, 2, 0])
    side = {"y": y}
    stratified = small_m2().epoch_order(40, side, batch_size=8)
    assert isinstance(stratified, data.LabelledBatches) and stratified.labelled == 2
    assert len(stratified) == 6 * 2 + 36  # 36 unlabelled, 6 per step: 6 steps
    assert type(small_m2(labelled_share=0).epoch_order(40, side, 8)) is data.RandomOrder
    all_known = {"y": torch.zeros(40, dtype=torch.long)}
    assert type(small_m2().epoch_order(40, all_known, 8)) is data.RandomOrder
    m2, seen = small_m2(), []
    classification_loss = m2.classification_loss

    def spy(x, y, **kwargs):  # what each training step passes the objective
        seen.append((len(x), int((y != -1).sum()), kwargs["num_labelled"]))
        return classification_loss(x, y, **kwargs)

    m2.classification_loss = spy
    history = fit(m2, (x, y), epochs=2, batch_size=8, progress=False)
    assert seen == [(8, 2, 4)] * 12  # 2 epochs of 6 stratified steps
    assert all(math.isfinite(v) for v in history["train_elbo"])
    with pytest.raises(ValueError, match=r"labelled_share must be a number in \[0, 1\)"):
        small_m2(labelled_share=1.0)


def _pyro_ssvae(m2, alpha):
    """Pyro's SS-VAE (``examples/vae/ss_vae_M2.py``, variant 3) written directly with pyro
    on ``m2``'s networks: one plate ``"data"``, no minibatch scaling, one-hot y; the
    guide's y enumerated in parallel; the auxiliary ``alpha * log q(y|x)`` as its own
    model ``model_classify``."""

    def join(a, b):
        batch = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
        return torch.cat([a.expand(*batch, a.shape[-1]), b.expand(*batch, b.shape[-1])], -1)

    def model(xs, ys=None):
        batch, z_dim = len(xs), m2.z_dim
        with pyro.plate("data", batch):
            zs = pyro.sample("z", dist.Normal(xs.new_zeros(batch, z_dim), 1.0).to_event(1))
            prior = dist.OneHotCategorical(xs.new_ones(batch, K) / K)
            ys = pyro.sample("y", prior, obs=ys)
            pyro.sample("x", m2.likelihood(m2.decoder(join(zs, ys)), len(SHAPE)), obs=xs)

    @config_enumerate(default="parallel")
    def guide(xs, ys=None):
        with pyro.plate("data", len(xs)):
            if ys is None:
                ys = pyro.sample("y", dist.OneHotCategorical(logits=m2.classifier(xs)))
            loc, scale = m2.encoder(join(xs.flatten(1), ys))
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def model_classify(xs, ys):
        with pyro.plate("data", len(xs)), poutine.scale(scale=alpha):
            pyro.sample("y_aux", dist.OneHotCategorical(logits=m2.classifier(xs)), obs=ys)

    def unlabelled(xs):
        return TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, xs)

    def labelled(xs, ys):
        ys = F.one_hot(ys, K).to(xs.dtype)
        with warnings.catch_warnings():  # all labelled: nothing to enumerate, Pyro says so
            warnings.simplefilter("ignore", UserWarning)
            elbo = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, xs, ys)
        aux = Trace_ELBO().differentiable_loss(model_classify, lambda xs, ys: None, xs, ys)
        return elbo + aux

    return unlabelled, labelled


@pytest.mark.parametrize("stratified", [False, True], ids=["uniform", "stratified"])
def test_objective_and_gradients_equal_pyros_ss_vae(monkeypatch, stratified):
    """On one batch of labelled and unlabelled items, SemiSupervisedELBO with fit's keyword
    arguments equals Pyro's SS-VAE (its summed TraceEnum ELBO plus alpha times the
    auxiliary loss) on the same networks, loss and every gradient, once each part is
    scaled to the dataset as fit scales it (``num_data / B``, or each part by its own
    count with stratified batches)."""

    def fixed_noise(self, sample_shape=()):  # the same draw for the same shape
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=self.loc.dtype)
        return self.loc + eps * self.scale

    monkeypatch.setattr(torch.distributions.Normal, "rsample", fixed_noise)
    alpha, n, n_labelled = 46.0, 60, 12
    pyro.set_rng_seed(0)
    m2 = small_m2(
        alpha=alpha,
        likelihood=likelihoods.Bernoulli(soft_targets=True),
        net_kwargs={"hidden": (16,), "activation": "softplus"},
    )
    x = torch.rand(7, *SHAPE)  # grey levels, as Pyro's example scores them
    y = torch.tensor([2, -1, 0, -1, -1, 1, -1])
    known = y != -1
    kwargs = {"num_data": n, "kl_weight": 1.0}
    if stratified:  # fit's step_kwargs with stratified batches (LabelledBatches)
        kwargs["num_labelled"] = n_labelled
        scale_l, scale_u = n_labelled / int(known.sum()), (n - n_labelled) / int((~known).sum())
    else:
        scale_l = scale_u = n / len(x)
    params = list(m2.parameters())

    loss = SemiSupervisedELBO(m2).differentiable_loss(m2.model, m2.guide, x, y, **kwargs)
    grads = torch.autograd.grad(loss, params)
    unlabelled, labelled = _pyro_ssvae(m2, alpha)
    reference = scale_u * unlabelled(x[~known]) + scale_l * labelled(x[known], y[known])
    reference_grads = torch.autograd.grad(reference, params)

    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    for (name, _), g, ref in zip(m2.named_parameters(), grads, reference_grads, strict=True):
        assert ref.abs().max() > 0, name  # every network learns, the classifier included
        torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    # the same through the training path (loss_and_grads, as fit's step calls it)
    for p in params:
        p.grad = None
    value = SemiSupervisedELBO(m2).loss_and_grads(m2.model, m2.guide, x, y, **kwargs)
    assert value == pytest.approx(reference.item(), rel=1e-5)
    for p, ref in zip(params, reference_grads, strict=True):
        torch.testing.assert_close(p.grad, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())

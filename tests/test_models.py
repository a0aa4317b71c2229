"""The layout of pyvae.models: the old import paths and the names saved files record, the
registries beside their classes, and the one estimator (chunking, M2's terms)."""

import math

import pyro
import pytest
import torch
from helpers import small_vae

import pyvae
from pyvae import SemiSupervisedVAE, likelihoods, nets, priors
from pyvae.config import class_name, find_class
from pyvae.models import estimator


def test_the_old_import_paths_are_the_classes_of_pyvae_models():
    from pyvae import conditional, hierarchical, model, models, posteriors, semisupervised

    assert model.VAE is models.VAE is pyvae.VAE
    assert conditional.ConditionalVAE is models.ConditionalVAE is pyvae.ConditionalVAE
    assert semisupervised.SemiSupervisedVAE is models.SemiSupervisedVAE
    assert semisupervised.SemiSupervisedELBO is models.SemiSupervisedELBO
    assert semisupervised.CLASSIFIERS is nets.CLASSIFIERS
    assert posteriors.IAFVAE is models.IAFVAE and posteriors.LowRankVAE is models.LowRankVAE
    assert hierarchical.HierarchicalVAE is models.HierarchicalVAE
    assert model.PRIORS is priors.PRIORS is pyvae.PRIORS
    assert model.LIKELIHOODS is likelihoods.LIKELIHOODS is pyvae.LIKELIHOODS
    assert model.NETS is nets.NETS is pyvae.NETS


@pytest.mark.parametrize(
    "name",
    [
        "pyvae.model.VAE",
        "pyvae.conditional.ConditionalVAE",
        "pyvae.semisupervised.SemiSupervisedVAE",
        "pyvae.posteriors.IAFVAE",
        "pyvae.posteriors.LowRankVAE",
        "pyvae.posteriors.ExtraOutputEncoder",
        "pyvae.hierarchical.HierarchicalVAE",
        "pyvae.priors.StandardNormal",
    ],
)
def test_saved_files_name_the_classes_as_pyvae_0_1_did(name):
    cls = find_class(name)
    assert class_name(cls) == name


def test_a_class_of_your_own_is_named_where_it_is_defined():
    class Mine(pyvae.VAE):
        pass

    assert (
        class_name(Mine)
        == f"{__name__}.test_a_class_of_your_own_is_named_where_it_is_defined.<locals>.Mine"
    )


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown likelihood 'nope'; valid names: bernoulli"):
        pyvae.VAE.build((4,), likelihood="nope")
    with pytest.raises(ValueError, match="unknown net 'nope'; valid names: conv, mlp"):
        SemiSupervisedVAE.build((4,), num_classes=2, net="nope")


def test_chunks_of_draws_give_the_numbers_of_one_pass():
    draws = torch.randn(12, 5, dtype=torch.float64)

    taken = [0]

    def score(n):  # a scorer replaying the fixed draws, n at a time
        r = draws[taken[0] : taken[0] + n]
        taken[0] = (taken[0] + n) % len(draws)
        return r, -0.5 * r

    whole, chunked = estimator.estimate(score, 12, 12), estimator.estimate(score, 12, 5)
    for a, b in zip(whole, chunked, strict=True):
        assert torch.allclose(a, b)
    log_w = 1.5 * draws
    assert torch.allclose(whole.log_likelihood, log_w.logsumexp(0) - math.log(12))
    assert torch.allclose(whole.elbo, log_w.mean(0))


def test_chunk_size_keeps_decoder_outputs_under_the_budget():
    vae = small_vae()  # 64 values per item, one decoder output each
    assert estimator.chunk_size(vae, 10, 1000, max_elements=640 * 7) == 7
    assert estimator.chunk_size(vae, 10, 3, max_elements=640 * 7) == 3
    assert estimator.chunk_size(vae, 10, 1000, max_elements=1) == 1


def test_m2_bounds_split_into_terms_and_agree_with_elbo():
    pyro.set_rng_seed(0)
    m2 = SemiSupervisedVAE.build((1, 8, 8), z_dim=2, num_classes=3, net_kwargs={"hidden": (16,)})
    x = torch.bernoulli(torch.full((6, 1, 8, 8), 0.3))
    y = torch.tensor([0, -1, 2, -1, 1, -1])
    pyro.set_rng_seed(1)
    b = m2.bounds(x, num_samples=4, y=y)
    pyro.set_rng_seed(1)
    elbo = m2.elbo(x, num_samples=4, reduction="none", y=y)
    assert all(t.shape == (6,) for t in b)
    assert torch.allclose(b.elbo, elbo)
    assert (b.kl > 0).all() and (b.log_likelihood >= b.elbo - 1e-4).all()

"""The disentanglement metrics on codes whose answer is known: the factors themselves
(perfect), a permutation of them (unchanged), a duplicated latent (no gap), a rotation
(entangled) and noise (nothing), plus closed-form information on small discrete cases."""

from __future__ import annotations

import hashlib
import itertools
import math

import numpy as np
import pytest
import torch

from pyvae import VAE, data
from pyvae import disentanglement as dis

pytest.importorskip("sklearn")


# --------------------------------------------------------------------------- the codes
def grid(levels=(3, 4, 5), repeat: int = 2) -> np.ndarray:
    """Every combination of the factors' levels, ``repeat`` times: independent factors
    whose pairwise mutual information is exactly 0."""
    rows = list(itertools.product(*[range(n) for n in levels])) * repeat
    return np.array(rows, dtype=np.float64)


@pytest.fixture(scope="module")
def sprites() -> np.ndarray:
    """600 draws of the sprites' factors: shape (3 classes), four continuous."""
    return data.sample_sprite_factors(600, torch.Generator().manual_seed(0)).numpy()


def rotated(factors: np.ndarray, seed: int = 0) -> np.ndarray:
    """The standardised factors times a random rotation: every latent mixes them all."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(factors.shape[1],) * 2))
    return (factors - factors.mean(0)) / factors.std(0) @ q


def noise(n: int, z_dim: int = 5) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, z_dim))


PERMUTATION = [3, 1, 4, 0, 2]


# --------------------------------------------------------------------------- information
def test_mutual_information_and_entropy_in_closed_form():
    a = np.array([0, 0, 1, 1])
    b = np.array([0, 1, 1, 1])  # joint p(0,0)=p(0,1)=1/4, p(1,1)=1/2
    expected = 0.25 * math.log(2) + 0.25 * math.log(2 / 3) + 0.5 * math.log(4 / 3)
    assert dis.mutual_information(a, b) == pytest.approx(expected, abs=1e-12)
    assert dis.mutual_information(a, a) == pytest.approx(dis.entropy(a), abs=1e-12)
    assert dis.entropy(np.arange(8) % 4) == pytest.approx(math.log(4), abs=1e-12)
    g = grid((2, 3)).astype(int)
    assert dis.mutual_information(g[:, 0], g[:, 1]) == pytest.approx(0.0, abs=1e-12)
    assert dis.mutual_information(a + 7, 3 * b) == pytest.approx(expected)  # labels' names


def test_discretize_cuts_equal_width_bins_between_min_and_max():
    x = np.array([[0.0, 5.0], [0.24, 5.0], [0.26, 5.0], [0.5, 5.0], [0.99, 5.0], [1.0, 5.0]])
    assert dis.discretize(x, bins=4).tolist() == [[0, 0], [0, 0], [1, 0], [2, 0], [3, 0], [3, 0]]


def test_factor_classes_keep_a_discrete_grid_and_bin_a_continuous_factor(sprites):
    classes = dis.factor_classes(sprites)
    assert sorted(np.unique(classes[:, 0])) == [0, 1, 2]  # the shapes
    assert classes[:, 1:].min() == 0 and classes[:, 1:].max() == 19  # 20 bins
    as_continuous = dis.factor_classes(sprites, bins=5, discrete=())
    assert np.array_equal(as_continuous[:, 0], sprites[:, 0].astype(int) * 2)  # 0, 2, 4


# --------------------------------------------------------------------------- MIG
def test_mig_is_exactly_one_for_the_factors_and_their_permutation():
    v = grid()
    assert dis.mig(v, v) == pytest.approx(1.0, abs=1e-12)
    assert dis.mig(v[:, [2, 0, 1]], v) == pytest.approx(1.0, abs=1e-12)


def test_mig_has_no_gap_for_a_duplicated_latent():
    v = grid()
    assert dis.mig(np.c_[v[:, :1], v], v) == pytest.approx(2 / 3, abs=1e-12)


def test_mig_drops_for_a_rotation_and_vanishes_for_noise(sprites):
    perfect = dis.mig(sprites, sprites)
    # below 1 by the plug-in estimator's bias: the other latents get about
    # (20 - 1)^2 / (2 N) = 0.3 nats each, against H(v) of about log 20 = 3 nats
    assert 1 - 0.3 / math.log(20) - 0.03 < perfect < 1 - 0.3 / math.log(20) + 0.03
    assert dis.mig(sprites[:, PERMUTATION], sprites) == perfect
    assert dis.mig(rotated(sprites), sprites) < 0.5
    assert dis.mig(noise(len(sprites)), sprites) < 0.05


def test_mig_takes_torch_tensors():
    v = grid()
    assert dis.mig(torch.tensor(v, dtype=torch.float32), torch.tensor(v)) == pytest.approx(1.0)


# --------------------------------------------------------------------------- DCI
def test_dci_of_the_factors_is_perfect_and_permuting_them_changes_nothing(sprites):
    perfect = dis.dci(sprites, sprites)
    assert perfect.disentanglement > 0.95 and perfect.completeness > 0.95
    assert perfect.informativeness > 0.95
    assert np.argmax(perfect.importances, 0).tolist() == [0, 1, 2, 3, 4]
    permuted = dis.dci(sprites[:, PERMUTATION], sprites)  # the trees' ties may differ
    assert permuted.disentanglement == pytest.approx(perfect.disentanglement, abs=1e-3)
    assert permuted.completeness == pytest.approx(perfect.completeness, abs=1e-3)
    assert permuted.informativeness == pytest.approx(perfect.informativeness, abs=1e-3)


def test_dci_of_a_rotation_is_informative_but_not_disentangled(sprites):
    trees = dis.dci(rotated(sprites), sprites)
    assert trees.disentanglement < 0.7 and trees.informativeness > 0.9
    lasso = dis.dci(rotated(sprites), sprites, model="lasso")
    assert lasso.disentanglement < 0.8 and lasso.informativeness > 0.98  # linear: no loss


def test_dci_of_noise_is_near_zero_and_repeats_given_a_seed(sprites):
    result = dis.dci(noise(len(sprites)), sprites, seed=3)
    assert result.disentanglement < 0.1 and result.completeness < 0.1
    assert result.informativeness < 0.15  # the shape at chance (1/3), the rest about 0
    again = dis.dci(noise(len(sprites)), sprites, seed=3)
    assert np.array_equal(result.importances, again.importances)


# --------------------------------------------------------------------------- SAP
def test_sap_of_the_factors_permuted_rotated_and_noise(sprites):
    perfect = dis.sap(sprites, sprites)
    # four continuous factors with R² 1 against about 0, the shape with accuracy 1
    # against chance (1/3): about (4 + 2/3) / 5
    assert perfect == pytest.approx((4 + 2 / 3) / 5, abs=0.03)
    assert dis.sap(sprites[:, PERMUTATION], sprites) == pytest.approx(perfect, abs=1e-12)
    assert dis.sap(rotated(sprites), sprites) < 0.4
    assert dis.sap(noise(len(sprites)), sprites) < 0.05


def test_sap_of_a_duplicated_latent_is_no_gap_for_its_factor():
    v = grid((4, 5, 6), repeat=3)
    assert dis.sap(np.c_[v[:, :1], v], v, discrete=()) == pytest.approx((0 + 1 + 1) / 3, abs=0.02)


# --------------------------------------------------------------------------- interventions
class Uniform(dis.FactorSampler):
    """Four uniform factors; the items are their codes ``factors @ mix`` (+ dead dims)."""

    num_factors = 4

    def __init__(self, mix=None, dead: int = 0, ignore: bool = False):
        self.mix, self.dead, self.ignore = mix, dead, ignore

    def sample_factors(self, n, generator):
        return torch.rand(n, 4, generator=generator)

    def render(self, factors):
        z = factors if self.mix is None else factors @ self.mix
        if self.ignore:  # codes that know nothing of the factors
            z = torch.rand(z.shape, generator=torch.Generator().manual_seed(len(z)))
        return torch.cat([z, torch.zeros(len(z), self.dead)], 1)


def pairwise_45_degrees() -> torch.Tensor:
    """z0, z1 = (v0 ± v1) / sqrt 2 and z2, z3 likewise: fixing v0 shrinks z0 and z1 alike."""
    r = torch.tensor([[1.0, 1.0], [1.0, -1.0]]) / math.sqrt(2)
    return torch.block_diag(r, r)


SMALL = {"batch_size": 16, "num_train": 100, "num_eval": 100}


def test_factor_vae_score_of_the_factors_their_permutation_and_a_mixture():
    assert dis.factor_vae_score(Uniform(), num_variance=500, **SMALL) == 1.0
    assert dis.factor_vae_score(Uniform(torch.eye(4)[[2, 0, 3, 1]]), **SMALL) == 1.0
    assert dis.factor_vae_score(Uniform(dead=3), **SMALL) == 1.0  # dead dims pruned
    mixed = dis.factor_vae_score(Uniform(pairwise_45_degrees()), **SMALL)
    assert 0.3 < mixed < 0.7  # each latent serves two factors equally: one vote in two
    assert dis.factor_vae_score(Uniform(ignore=True), **SMALL) < 0.45  # chance: 1/4


def test_factor_vae_score_is_zero_when_every_latent_collapsed_and_repeats_given_a_seed():
    assert dis.factor_vae_score(Uniform(torch.zeros(4, 4)), **SMALL) == 0.0
    mixed = Uniform(pairwise_45_degrees())
    assert dis.factor_vae_score(mixed, seed=5, **SMALL) == dis.factor_vae_score(
        mixed, seed=5, **SMALL
    )


def test_beta_vae_score_of_the_factors_and_of_noise():
    assert dis.beta_vae_score(Uniform(), **SMALL) == 1.0
    assert dis.beta_vae_score(Uniform(ignore=True), **SMALL) < 0.45


def test_each_batch_shares_the_fixed_factor_and_draws_the_others():
    g = torch.Generator().manual_seed(0)
    k = torch.tensor([0, 2, 3])
    batches = dis._fixed(Uniform(), k, 6, g, pairs=False)
    pairs = dis._fixed(Uniform(), k, 6, g, pairs=True)
    for i, fixed in enumerate(k.tolist()):
        assert torch.unique(batches[i, :, fixed]).numel() == 1
        assert torch.equal(pairs[0, i, :, fixed], pairs[1, i, :, fixed])
        assert torch.unique(pairs[0, i, :, fixed]).numel() == 6  # one value per pair
        other = (fixed + 1) % 4
        assert torch.unique(batches[i, :, other]).numel() == 6
        assert not torch.equal(pairs[0, i, :, other], pairs[1, i, :, other])


# --------------------------------------------------------------------------- sprites
def test_make_sprites_is_unchanged_by_the_split_into_sample_and_render():
    """SHA-256 of make_sprites' output before render_sprites existed."""
    x, f = data.make_sprites(2100, size=16, seed=3)  # 2100: over one 2048-item chunk
    assert hashlib.sha256(x.numpy().tobytes()).hexdigest().startswith("8b8ad20fbfba3687")
    assert hashlib.sha256(f.numpy().tobytes()).hexdigest().startswith("db076bfbc23adbf7")
    assert torch.equal(data.render_sprites(f, 16), x)
    g = torch.Generator().manual_seed(3)
    assert torch.equal(data.sample_sprite_factors(2100, g), f)


def test_the_sprites_sampler_renders_the_factors_it_is_given():
    sampler = dis.sprites_sampler(size=16)
    f = sampler.sample_factors(4, torch.Generator().manual_seed(0))
    f[:, 0] = torch.tensor([0.0, 1.0, 2.0, 0.0])
    x = sampler.render(f)
    assert x.shape == (4, 1, 16, 16) and x.dtype == torch.uint8
    assert torch.equal(x, data.render_sprites(f, 16))
    f[3, 3] = 1.0 - f[3, 3]  # move the last one: another image
    assert not torch.equal(sampler.render(f)[3], x[3])


def test_scores_of_a_vae_has_every_metric_and_repeats():
    torch.manual_seed(0)
    vae = VAE.build((1, 16, 16), z_dim=4, net_kwargs={"hidden": (32,)})
    small = {"num_items": 200, "batch_size": 8, "num_train": 20, "num_eval": 10}
    sampler = dis.sprites_sampler(16)
    out = dis.scores(vae, sampler, **small)
    assert tuple(out) == dis.SCORE_KEYS
    assert all(0.0 <= value <= 1.0 for value in out.values())
    assert dis.scores(vae, sampler, **small) == out
    x, f = data.make_sprites(200, size=16, seed=1)
    observed = dis.scores(vae, (x, f), **small)
    assert tuple(observed) == dis.SCORE_KEYS[:5]
    z = vae.encode(x).mean
    assert observed["mig"] == dis.mig(z, f) and observed["sap"] == dis.sap(z, f)

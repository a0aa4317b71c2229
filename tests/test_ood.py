"""Out-of-distribution scores that survive the likelihood paradox: the perturbation of
the background model's inputs, the compressors' code lengths, the likelihood-ratio and
input-complexity scores (checked against their definitions and on blank images, which a
sprite model finds *more* likely than sprites), and the typicality test of batches on a
Gaussian whose entropy is known in closed form."""

from __future__ import annotations

import bz2
import io
import lzma
import math
import zlib

import numpy as np
import pyro
import pytest
import torch
from torch import nn

from pyvae import VAE, anomaly, data, fit, likelihoods, nets, priors


# --------------------------------------------------------------------------- perturb
def test_perturb_replaces_the_given_share_of_binary_values_by_random_bits():
    x = torch.zeros(200, 1, 10, 10, dtype=torch.uint8)
    y = anomaly.perturb(x, 0.3, seed=0)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert set(y.unique().tolist()) <= {0, 1}
    # Half of the replaced values are drawn as 1: 0.3 * 0.5 of the pixels change.
    assert float(y.float().mean()) == pytest.approx(0.15, abs=0.01)
    assert torch.equal(y, anomaly.perturb(x, 0.3, seed=0))  # reproducible
    assert not torch.equal(y, anomaly.perturb(x, 0.3, seed=1))
    assert torch.equal(anomaly.perturb(x, 0.0, seed=0), x)
    assert torch.equal(x, torch.zeros_like(x))  # the input is left alone


def test_perturb_draws_8_bit_and_unit_values_uniformly():
    x = torch.full((100, 400), 7, dtype=torch.uint8)
    y = anomaly.perturb(x, 1.0, seed=0)
    assert int(y.min()) == 0 and int(y.max()) == 255
    assert float(y.float().mean()) == pytest.approx(127.5, abs=1.5)
    u = anomaly.perturb(torch.full((100, 400), 0.5), 0.5, seed=0)
    changed = u != 0.5
    assert float(changed.float().mean()) == pytest.approx(0.5, abs=0.01)
    assert 0 <= float(u.min()) and float(u.max()) < 1
    assert float(u[changed].mean()) == pytest.approx(0.5, abs=0.01)


def test_perturb_accepts_datasets_with_their_transform():
    ds = data.ArrayDataset(torch.full((50, 1, 4, 4), 255, dtype=torch.uint8))
    ds.transform = data.Scale(1 / 255)
    y = anomaly.perturb(ds, 0.0)
    assert y.is_floating_point() and torch.equal(y, torch.ones(50, 1, 4, 4))


# --------------------------------------------------------------------------- compressors
def test_compressor_lengths_are_the_stdlib_lengths_in_bits():
    g = torch.Generator().manual_seed(0)
    grey = torch.randint(0, 256, (5, 1, 6, 6), generator=g, dtype=torch.uint8)
    binary = (torch.rand(5, 1, 8, 8, generator=g) < 0.3).to(torch.uint8)
    for name, compress in [
        ("zlib", lambda b: zlib.compress(b, 9)),
        ("bz2", lambda b: bz2.compress(b, 9)),
        ("lzma", lambda b: lzma.compress(b, preset=9)),
    ]:
        bits = anomaly.Compressor(name)(grey)
        assert bits.shape == (5,) and bits.dtype == torch.float64
        expected = [8 * len(compress(row.numpy().tobytes())) for row in grey[:, 0]]
        assert bits.tolist() == expected
        packed = [8 * len(compress(np.packbits(row.numpy()).tobytes())) for row in binary]
        assert anomaly.Compressor(name)(binary).tolist() == packed  # one bit per value


def test_png_lengths_are_pillows_and_floats_are_rounded_to_8_bits():
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    grey = torch.randint(0, 256, (3, 1, 6, 6), generator=g, dtype=torch.uint8)
    expected = []
    for row in grey[:, 0].numpy():
        out = io.BytesIO()
        Image.fromarray(row).save(out, format="PNG", compress_level=9)
        expected.append(8 * len(out.getvalue()))
    png = anomaly.Compressor("png")
    assert png(grey).tolist() == expected
    assert png(grey.float() / 255).tolist() == expected
    # 8-bit values held as floats (data.load(..., values="uint8")) are not rescaled.
    assert png(grey.float()).tolist() == expected
    assert png(data.ArrayDataset(grey, transform=data.Scale(1.0))).tolist() == expected
    # Simpler images are shorter: a blank image against noise.
    blank, noise = torch.zeros(1, 1, 28, 28), torch.rand(1, 1, 28, 28, generator=g)
    assert float(png(blank)) < float(png(noise)) / 5


# --------------------------------------------------------------------------- the scores
def test_complexity_score_is_the_nll_minus_the_code_length_in_nats(trained):
    vae, x = trained
    pyro.set_rng_seed(4)
    s = anomaly.score(vae, x[:16], "complexity", num_samples=20, compressor="zlib")
    pyro.set_rng_seed(4)
    nll = anomaly.score(vae, x[:16], "log_likelihood", num_samples=20)
    bits = anomaly.Compressor("zlib")(x[:16])
    assert torch.allclose(s, nll - bits.float() * math.log(2))
    # Any callable giving bits per item is a compressor.
    pyro.set_rng_seed(4)
    ones = anomaly.score(vae, x[:16], "complexity", num_samples=20, compressor=torch.ones_like)
    assert torch.allclose(ones, nll - math.log(2))


def test_likelihood_ratio_is_the_difference_of_two_log_likelihoods(trained):
    vae, x = trained
    background = VAE.build(input_shape=(1, 16, 16), z_dim=2, net_kwargs={"hidden": (8,)})
    pyro.set_rng_seed(5)
    s = anomaly.score(vae, x[:16], "likelihood_ratio", num_samples=20, background=background)
    pyro.set_rng_seed(5)
    log_p = vae.log_likelihood(x[:16], num_samples=20)
    log_p0 = background.log_likelihood(x[:16], num_samples=20)
    assert torch.allclose(s, -(log_p - log_p0))


@pytest.fixture(scope="module")
def blank_case(trained):
    """Sprites (normal) against blank images (out of distribution), and a background model
    trained on sprites with 10 % of their pixels replaced by random bits."""
    vae, x = trained
    pyro.set_rng_seed(0)
    train, _ = data.load("sprites", n_train=512, n_test=128, size=16)
    background = VAE.build(input_shape=(1, 16, 16), z_dim=3, net_kwargs={"hidden": (32,)})
    perturbed = anomaly.perturb(train, 0.1, seed=0)
    fit(background, perturbed, epochs=30, batch_size=128, lr=2e-2, progress=False)
    blank = torch.zeros(64, *x.shape[1:], dtype=x.dtype)
    labels = torch.cat([torch.zeros(len(x)), torch.ones(len(blank))])
    return vae, background, torch.cat([x, blank]), labels


def test_blank_images_are_more_likely_than_sprites_but_the_corrected_scores_flag_them(
    blank_case,
):
    vae, background, both, labels = blank_case
    pyro.set_rng_seed(0)
    raw = anomaly.score(vae, both, "log_likelihood", num_samples=20)
    assert anomaly.auroc(labels, raw) < 0.05  # the paradox: blank is the most normal
    for compressor in ("png", "zlib"):
        fixed = anomaly.score(vae, both, "complexity", num_samples=20, compressor=compressor)
        assert anomaly.auroc(labels, fixed) > 0.95, compressor
    ratio = anomaly.score(vae, both, "likelihood_ratio", num_samples=20, background=background)
    assert anomaly.auroc(labels, ratio) > 0.5  # from 0: the ordering is turned round
    normal, blank = ratio[labels == 0], ratio[labels == 1]
    assert float(blank.median()) > float(normal.median())


def test_detector_takes_the_background_and_the_compressor(blank_case):
    vae, background, both, labels = blank_case
    normal = both[labels == 0]
    detector = anomaly.Detector(vae, "complexity", 0.1, num_samples=20, compressor="png")
    flags = detector.fit(normal).predict(both[labels == 1])
    assert float(flags.float().mean()) > 0.9
    ratio = anomaly.Detector(vae, "likelihood_ratio", 0.1, num_samples=20, background=background)
    assert ratio.fit(normal).predict(normal).shape == (len(normal),)


@pytest.mark.parametrize(
    "method, kwargs, message",
    [
        ("likelihood_ratio", {}, "needs background="),
        ("complexity", {}, "needs compressor="),
        ("elbo", {"background": "a model"}, "background= is for the 'likelihood_ratio'"),
        ("log_likelihood", {"compressor": "png"}, "compressor= is for the 'complexity'"),
    ],
)
def test_scores_refuse_a_missing_or_misplaced_background_or_compressor(
    trained, method, kwargs, message
):
    vae, x = trained
    with pytest.raises(ValueError, match=message):
        anomaly.score(vae, x[:4], method, **kwargs)
    with pytest.raises(ValueError, match=message):
        anomaly.Detector(vae, method, **kwargs)


# --------------------------------------------------------------------------- typicality
class PriorEncoder(nn.Module):
    """q(z|x) = p(z) = N(0, I) for every x."""

    def __init__(self, z_dim: int):
        super().__init__()
        self.z_dim, self.input_shape = z_dim, (D,)

    def forward(self, x):
        shape = (*x.shape[:-1], self.z_dim)
        return x.new_zeros(shape), x.new_ones(shape)


D, SIGMA = 4, 0.5
ENTROPY = 0.5 * D * math.log(2 * math.pi * math.e * SIGMA**2)  # of N(0, SIGMA^2 I_D), nats


@pytest.fixture(scope="module")
def gaussian_vae():
    """p(x|z) = N(0, SIGMA^2 I) whatever z, and q = p(z): log p(x) is exact."""
    decoder = nets.MLPDecoder(1, (D,), hidden=())
    for p in decoder.parameters():
        nn.init.zeros_(p)
    return VAE(PriorEncoder(1), decoder, priors.StandardNormal(1), likelihoods.Gaussian(SIGMA))


def gaussian(n: int, scale: float, seed: int) -> torch.Tensor:
    return scale * torch.randn(n, D, generator=torch.Generator().manual_seed(seed))


def test_typicality_entropy_estimate_is_the_closed_form_entropy(gaussian_vae):
    test = anomaly.TypicalityTest(gaussian_vae, batch_size=10, num_samples=2)
    normal = gaussian(4000, SIGMA, seed=0)
    expected = -torch.distributions.Normal(0.0, SIGMA).log_prob(normal).sum(1)
    assert torch.allclose(test.nll(normal), expected, atol=1e-4)  # log p(x) is exact here
    test.fit(normal)
    standard_error = math.sqrt(D / 2) / math.sqrt(len(normal))  # sd of -log p is sqrt(D/2)
    assert test.entropy == pytest.approx(ENTROPY, abs=3 * standard_error)


def test_typicality_flags_batches_of_the_mode_that_the_likelihood_calls_most_normal(
    gaussian_vae,
):
    test = anomaly.TypicalityTest(gaussian_vae, 10, 0.05, bootstraps=2000, num_samples=2)
    test.fit(gaussian(2000, SIGMA, seed=0), train=gaussian(2000, SIGMA, seed=1))
    typical = gaussian(2000, SIGMA, seed=2).reshape(200, 10, D)
    mode = torch.zeros(3, 10, D)  # every item at the highest density
    wide = gaussian(30, 2 * SIGMA, seed=3).reshape(3, 10, D)
    assert float(test.nll(mode[0]).max()) < float(test.nll(typical.reshape(-1, D)).min())
    rejected = float(test.predict(typical).float().mean())
    assert 0.01 <= rejected <= 0.1  # about the false-positive rate on typical batches
    assert bool(test.predict(mode).all()) and bool(test.predict(wide).all())
    p_mode = test.p_values(mode)
    assert torch.allclose(p_mode, torch.full((3,), 1 / 2001, dtype=torch.float64))
    p_typical = test.p_values(typical)
    assert 0.35 < float(p_typical.mean()) < 0.65  # p-values about uniform in-distribution
    # A statistic is |mean(-log p) - H|: the mode's is D/2 nats below the entropy.
    assert torch.allclose(test.score(mode), torch.full((3,), D / 2, dtype=torch.float64), atol=0.1)
    assert torch.allclose(test.score(list(mode)), test.score(mode))


def test_typicality_refuses_batches_of_another_size_and_scoring_before_fit(gaussian_vae):
    test = anomaly.TypicalityTest(gaussian_vae, batch_size=10, num_samples=2)
    with pytest.raises(RuntimeError, match="fit"):
        test.score(torch.zeros(2, 10, D))
    test.fit(gaussian(100, SIGMA, seed=0))
    with pytest.raises(ValueError, match="batches of 10"):
        test.score(torch.zeros(2, 5, D))
    with pytest.raises(ValueError, match="batches of 10"):
        test.score([torch.zeros(10, D), torch.zeros(9, D)])

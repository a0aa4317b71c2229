"""Lossy compression to quantised latent codes, the rate-distortion trade-off, and
sampling at a temperature (priors.tempered, VAE.sample)."""

import math

import pyro.distributions as dist
import pytest
import torch

from pyvae import VAE, compress, priors


def _z(codes: compress.Codes) -> torch.Tensor:
    """The latent codes the integers stand for: 2**bits levels evenly over [-limit, limit]."""
    levels = 2**codes.bits - 1
    return codes.values.double() / levels * (2 * codes.limit) - codes.limit


# --------------------------------------------------------------------------- encode
@pytest.mark.parametrize("bits", [1, 3, 8, 9, 16])
def test_codes_are_small_integers(trained, bits):
    vae, x = trained
    codes = compress.encode(vae, x, bits=bits)
    assert isinstance(codes, compress.Codes)
    assert codes.values.shape == (len(x), vae.z_dim)
    assert codes.values.dtype == (torch.uint8 if bits <= 8 else torch.int32)
    assert int(codes.values.min()) >= 0
    assert int(codes.values.max()) < 2**bits
    assert codes.bits == bits and codes.limit == 4.0


@pytest.mark.parametrize("n, bits", [(5, 3), (1, 1), (7, 8), (4, 13), (128, 16)])
def test_code_size(trained, n, bits):
    vae, x = trained
    codes = compress.encode(vae, x[:n], bits=bits)
    assert codes.num_bytes == math.ceil(n * vae.z_dim * bits / 8)
    assert codes.bits_per_dim((1, 16, 16)) == pytest.approx(vae.z_dim * bits / 256)


def test_uses_the_full_range_and_clips_outside_the_limit(trained):
    vae, x = trained
    means = vae.encode(x).mean
    codes = compress.encode(vae, x, bits=4, limit=0.5)
    assert torch.equal(codes.values[means < -0.5], torch.zeros_like(codes.values[means < -0.5]))
    assert bool((codes.values[means > 0.5] == 15).all())
    assert bool((means < -0.5).any()) and bool((means > 0.5).any())


@pytest.mark.parametrize("bits", [0, 17, -1, 8.0, True, "8", None])
def test_invalid_bits_raise(trained, bits):
    vae, x = trained
    with pytest.raises(ValueError, match="bits"):
        compress.encode(vae, x[:2], bits=bits)


@pytest.mark.parametrize("limit", [0, -1.0, float("nan")])
def test_invalid_limit_raises(trained, limit):
    vae, x = trained
    with pytest.raises(ValueError, match="limit"):
        compress.encode(vae, x[:2], limit=limit)


def test_infinite_limit_raises(trained):
    vae, x = trained
    with pytest.raises(ValueError, match="limit"):
        compress.encode(vae, x[:2], limit=math.inf)


# --------------------------------------------------------------------------- decode
def test_round_trip_at_16_bits_matches_reconstruct(trained):
    vae, x = trained
    limit = 8.0
    assert float(vae.encode(x).mean.abs().max()) < limit  # nothing clipped
    decoded = compress.decode(vae, compress.encode(vae, x, bits=16, limit=limit))
    assert decoded.shape == x.shape
    assert torch.allclose(decoded, vae.reconstruct(x), atol=1e-3)


def test_quantisation_error_is_half_a_step_and_shrinks_with_bits(trained):
    vae, x = trained
    limit = 8.0
    means = vae.encode(x).mean.double()
    errors = []
    for bits in (1, 2, 4, 8, 12, 16):
        codes = compress.encode(vae, x, bits=bits, limit=limit)
        error = float((_z(codes) - means).abs().max())
        assert error <= limit / (2**bits - 1) + 1e-5
        errors.append(error)
        # decode is the decoder's mean at exactly these points
        expected = vae.decode(_z(codes).float()).mean
        assert torch.allclose(compress.decode(vae, codes), expected, atol=1e-5)
    assert all(a > b for a, b in zip(errors[:-1], errors[1:], strict=True))


def test_decode_can_sample(trained):
    vae, x = trained
    out = compress.decode(vae, compress.encode(vae, x[:10]), mean=False)
    assert out.shape == (10, 1, 16, 16)
    assert bool(((out == 0) | (out == 1)).all())  # Bernoulli draws


@pytest.mark.parametrize("shape", [(4, 2), (4, 5), (3,), (2, 3, 1)])
def test_decode_rejects_codes_of_the_wrong_shape(trained, shape):
    vae, _ = trained
    codes = compress.Codes(torch.zeros(shape, dtype=torch.uint8), 8, 4.0)
    with pytest.raises(ValueError, match="expected"):
        compress.decode(vae, codes)


# --------------------------------------------------------------------------- rate-distortion
def test_rate_distortion(trained):
    vae, x = trained
    bits = (1, 2, 4, 8)
    rows = compress.rate_distortion(vae, x, bits=bits)
    assert len(rows) == len(bits) + 1
    assert [r["bits"] for r in rows] == [1.0, 2.0, 4.0, 8.0, math.inf]
    rates = [r["bits_per_dim"] for r in rows]
    assert all(a < b for a, b in zip(rates[:-1], rates[1:], strict=True))
    for r, b in zip(rows[:-1], bits, strict=True):
        assert r["bytes_per_item"] == math.ceil(vae.z_dim * b / 8)
        assert r["bits_per_dim"] == pytest.approx(vae.z_dim * b / 256)
    for r in rows:
        assert math.isfinite(r["mse"]) and math.isfinite(r["nll"]) and r["nll"] > 0
    by_bits = {r["bits"]: r for r in rows}
    exact = by_bits[math.inf]
    assert by_bits[8.0]["mse"] == pytest.approx(exact["mse"], rel=0.05)
    assert by_bits[8.0]["nll"] == pytest.approx(exact["nll"], rel=0.05)
    assert by_bits[1.0]["mse"] > 1.2 * by_bits[8.0]["mse"]
    # The unquantised row is the plain reconstruction error.
    mse = ((vae.reconstruct(x) - x.float()) ** 2).mean()
    assert exact["mse"] == pytest.approx(float(mse), rel=1e-4)


def test_rate_distortion_checks_bits(trained):
    vae, x = trained
    with pytest.raises(ValueError, match="bits"):
        compress.rate_distortion(vae, x[:4], bits=(4, 20))


# --------------------------------------------------------------------------- temperature
def test_tempered_standard_normal_scales_the_std():
    prior = priors.StandardNormal(4)()
    cold = priors.tempered(prior, 0.3)
    assert cold.event_shape == prior.event_shape and cold.batch_shape == prior.batch_shape
    assert torch.allclose(cold.base_dist.scale, torch.full((4,), 0.3))
    samples = cold.sample((4000,))
    assert torch.allclose(samples.std(0), torch.full((4,), 0.3), rtol=0.1)
    assert float(samples.mean(0).abs().max()) < 0.05


def test_tempered_mixture_scales_each_component():
    prior = priors.MixtureOfGaussians(3, components=5)()
    warm = priors.tempered(prior, 2.0)
    assert isinstance(warm, dist.MixtureSameFamily)
    before, after = prior.component_distribution, warm.component_distribution
    assert torch.allclose(after.base_dist.scale, 2.0 * before.base_dist.scale)
    assert torch.equal(after.base_dist.loc, before.base_dist.loc)
    assert torch.equal(warm.mixture_distribution.logits, prior.mixture_distribution.logits)
    assert warm.event_shape == (3,)


def test_tempered_vamp_prior_scales_each_component():
    vae = VAE.build(
        input_shape=(1, 16, 16),
        z_dim=2,
        prior="vamp",
        prior_kwargs={"components": 4},
        net_kwargs={"hidden": (8,)},
    )
    with torch.no_grad():
        prior = vae.prior(vae.encoder)
        cold = priors.tempered(prior, 0.5)
    before, after = prior.component_distribution, cold.component_distribution
    assert torch.allclose(after.base_dist.scale, 0.5 * before.base_dist.scale)


def test_tempered_flow_tempers_its_base():
    prior = priors.FlowPrior(2)()
    cold = priors.tempered(prior, 0.1)
    assert isinstance(cold, dist.TransformedDistribution)
    assert torch.allclose(cold.base_dist.base_dist.scale, torch.full((2,), 0.1))
    assert cold.transforms == prior.transforms
    with torch.no_grad():
        spread = prior.sample((2000,)).std(0)
        cold_spread = cold.sample((2000,)).std(0)
    assert bool((cold_spread < 0.5 * spread).all())


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan")])
def test_non_positive_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature"):
        priors.tempered(priors.StandardNormal(2)(), temperature)


def test_infinite_temperature_raises():
    with pytest.raises(ValueError, match="temperature"):
        priors.tempered(priors.StandardNormal(2)(), math.inf)


def test_temperature_one_returns_the_prior_itself():
    prior = priors.StandardNormal(2)()
    assert priors.tempered(prior, 1) is prior
    assert priors.tempered(prior, 1.0) is prior


def test_unsupported_prior_says_what_is_supported():
    class StudentT(priors.Prior):
        def forward(self, encoder=None):
            zeros = torch.zeros(self.z_dim)
            return dist.StudentT(4.0, zeros, torch.ones(self.z_dim)).to_event(1)

    with pytest.raises(ValueError, match="supported"):
        priors.tempered(StudentT(2)(), 0.5)
    # T == 1 needs no support and leaves the prior alone.
    prior = StudentT(2)()
    assert priors.tempered(prior, 1.0) is prior


def test_cold_samples_are_all_the_decoded_prior_mean(trained):
    vae, _ = trained
    cold = vae.sample(16, temperature=1e-4)
    centre = vae.decode(torch.zeros(vae.z_dim)).mean
    assert cold.shape == (16, 1, 16, 16)
    assert torch.allclose(cold, centre.expand_as(cold), atol=1e-3)
    warm = vae.sample(16)  # temperature 1: varied
    assert float((warm - centre).abs().max()) > 0.1


def test_sample_rejects_non_positive_temperature(trained):
    vae, _ = trained
    with pytest.raises(ValueError, match="temperature"):
        vae.sample(2, temperature=0.0)

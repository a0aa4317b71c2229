"""Lossless compression by bits-back coding (pyvae.compress.lossless): exact round trips
for every supported likelihood, code length against the negative ELBO, the file's
checks (wrong model, damaged files), unsupported parts, and the CLI."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
from helpers import small_vae

from pyvae import VAE, evaluate, likelihoods
from pyvae.cli import main

lossless = pytest.importorskip("pyvae.compress.lossless")
pytest.importorskip("constriction")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _round_trip(vae, x):
    blob = lossless.encode(vae, x)
    y = lossless.decode(vae, blob)
    assert isinstance(y, torch.Tensor)
    assert y.dtype == (torch.as_tensor(x).dtype) and y.shape == tuple(x.shape)
    assert torch.equal(y, torch.as_tensor(x))
    return blob


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype", [torch.uint8, torch.bool, torch.float32, torch.int64])
def test_bernoulli_round_trip_keeps_values_and_dtype(dtype):
    vae = small_vae()
    x = (torch.rand(30, 1, 8, 8) < 0.3).to(dtype)
    _round_trip(vae, x)


def test_discretized_logistic_round_trip_on_all_256_values():
    vae = small_vae(likelihood="discretized_logistic", shape=(3, 4, 4))
    x = (torch.arange(6 * 48) % 256).to(torch.uint8).reshape(6, 3, 4, 4)  # 0..255 all appear
    x = torch.cat([x, torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8)])
    _round_trip(vae, x)


def test_discretized_logistic_cdf_gives_its_bin_probabilities():
    """The coder's 8-bit probabilities (CDF differences) are the likelihood's own."""
    d = likelihoods.DiscretizedLogisticDistribution(
        torch.tensor([[-0.98], [-0.3], [0.5], [1.2]], dtype=torch.float64),
        torch.tensor([[-3.0], [-2.0], [-4.0], [-1.0]], dtype=torch.float64),
    )
    values = torch.arange(256, dtype=torch.float64)
    cdf = d.cdf(values)  # (4, 256)
    probs = torch.diff(cdf, prepend=torch.zeros(4, 1, dtype=torch.float64))
    assert bool((cdf[:, -1] == 1).all()) and bool((probs >= 0).all())
    assert torch.allclose(probs.sum(1), torch.ones(4, dtype=torch.float64))
    mass = probs > 1e-5  # where log_prob uses the bin mass, not its density approximation
    assert torch.allclose(probs[mass], d.log_prob(values).exp()[mass], rtol=1e-10)


def test_beta_binomial_round_trip_on_all_256_values():
    vae = small_vae(likelihood="beta_binomial", shape=(3, 4, 4))
    x = (torch.arange(6 * 48) % 256).to(torch.uint8).reshape(6, 3, 4, 4)  # 0..255 all appear
    x = torch.cat([x, torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8)])
    _round_trip(vae, x)
    _round_trip(vae, x.float().numpy())  # 8-bit values as floats come back as such


def test_beta_binomial_round_trip_with_another_total_count():
    vae = small_vae(likelihood=likelihoods.BetaBinomial(total_count=15), shape=(10,))
    x = torch.randint(0, 16, (20, 10))
    x[0] = torch.tensor([0, 15, 0, 15, 1, 14, 7, 8, 0, 15])
    _round_trip(vae, x)


def test_beta_binomial_table_is_its_normalised_pmf_in_float64():
    """The coder's table is exp(log_prob) of the likelihood's distribution over 0..n in
    float64 (normalised, floored at MIN_PROBABILITY), for concentrations from the floor
    (1e-3: nearly all the mass on 0 and n) to large (a narrow peak)."""
    alpha = torch.tensor([[1e-3, 0.5, 2.0, 300.0, 1e4]], dtype=torch.float64)
    beta = torch.tensor([[1e-3, 3.0, 2.0, 100.0, 1e-3]], dtype=torch.float64)
    p = pyro.distributions.BetaBinomial(alpha, beta, torch.tensor(255.0, dtype=torch.float64))
    models = pytest.importorskip("constriction").stream.model
    table = lossless._BetaBinomialValues(256, models).table(p)  # (5, 256)
    assert table.dtype == np.float64 and table.shape == (5, 256)
    assert np.allclose(table.sum(1), 1, rtol=0, atol=1e-12)
    assert table.min() >= 0.99 * lossless.MIN_PROBABILITY  # floored, then renormalised
    values = torch.arange(256, dtype=torch.float64)[:, None]
    expected = p.log_prob(values).exp().T.numpy()  # (5, 256)
    assert np.allclose(table[1:3], expected[1:3], rtol=1e-10, atol=0)  # no value floored
    # Where values are floored, the others shrink by less than the floor's total mass.
    mass = expected > lossless.MIN_PROBABILITY
    assert np.allclose(table[mass], expected[mass], rtol=256 * lossless.MIN_PROBABILITY, atol=0)


@pytest.mark.parametrize("likelihood", ["poisson", "negative_binomial"])
def test_counts_round_trip_in_and_outside_the_window(likelihood):
    """Counts near a predicted mean of ~1000 are coded in its window; 0, 5 (below it),
    10**5 and 2**31 - 1 (above it) go through the escape code."""
    vae = small_vae(likelihood=likelihood, shape=(12,))
    with torch.no_grad():
        vae.decoder.net[-1].bias.fill_(1000.0)  # softplus(1000) = 1000: the predicted mean
    x = torch.poisson(torch.full((25, 12), 1000.0)).long()
    x[0, :4] = torch.tensor([0, 5, 10**5, 2**31 - 1])
    x[1] = torch.arange(12) * 191  # both sides, and the window's edges 872 and 1127
    x[2, :2] = torch.tensor([872, 1127])
    blob = _round_trip(vae, x)
    _round_trip(vae, x.double().numpy())  # counts as floats, from NumPy, come back as such
    if likelihood == "poisson":  # in the window a count costs ~7 bits; escaped, >= 15
        assert lossless.info(blob)["payload_bytes"] * 8 < x.numel() * 10


def test_counts_round_trip_for_an_untrained_model():
    """Predicted means near 0: small counts are in the window, large ones escape."""
    vae = small_vae(likelihood="poisson", shape=(20,))
    x = torch.poisson(torch.full((30, 20), 2.0)).to(torch.int32)
    x[3, 3] = 4096
    _round_trip(vae, x)


def test_real_shaped_items_and_an_array_of_other_item_shape():
    """MNIST-shaped items (N, 1, 28, 28); (N, 28, 28) with as many values per item is
    coded as the model's shape and comes back in its own shape."""
    vae = small_vae(shape=(1, 28, 28))
    x = (torch.rand(12, 28, 28) < 0.15).to(torch.uint8)
    _round_trip(vae, x)
    _round_trip(vae, x.reshape(12, 1, 28, 28).numpy())


@pytest.mark.parametrize("name", ["binarized", "8bit"])
def test_real_mnist_round_trip(name):
    from pyvae import data

    if name == "binarized":
        path = SHARED_DATA / "binarized_mnist" / "binarized_mnist_packbits.npz"
        likelihood = "bernoulli"
    else:
        path = SHARED_DATA / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
        likelihood = "discretized_logistic"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    if name == "binarized":
        x = data.load("binarized_mnist", root=SHARED_DATA, download=False)[1].data[:16]
    else:
        x = torch.from_numpy(data.read_idx(path)[:8])  # (8, 28, 28) uint8
    vae = small_vae(likelihood=likelihood, shape=(1, 28, 28))
    _round_trip(vae, x)


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_mixture_priors_round_trip(prior):
    """Mixture and VampPrior latents are coded dimension by dimension, each given the
    buckets before: exact round trips, and the model is left as it was (VampPrior runs
    the encoder on its pseudo-inputs for the prior)."""
    vae = small_vae(prior=prior, z_dim=4)
    vae.train()
    before = lossless.fingerprint(vae)
    x = (torch.rand(6, 1, 8, 8) < 0.3).to(torch.uint8)
    _round_trip(vae, x)
    assert lossless.fingerprint(vae) == before and vae.training


def _mixture_buckets(bits=5):
    """Buckets of a 2-D mixture of 3 components, one of them narrow and far out."""
    from pyvae.compress import _buckets
    from pyvae.priors import DiagonalNormalMixture

    prior = DiagonalNormalMixture(
        torch.tensor([0.0, 1.0, -1.0]),
        torch.tensor([[-2.0, 0.0], [1.0, 3.0], [6.0, -1.0]]),
        torch.tensor([[0.5, 1.0], [1.0, 0.3], [0.05, 2.0]]),
    )
    return _buckets.MixtureBuckets(prior, 2**bits, lossless._constriction().stream.model), prior


def test_mixture_buckets_have_equal_marginal_mass():
    buckets, prior = _mixture_buckets(bits=6)
    logits, locs, scales = (t.double() for t in prior._params)
    pi = torch.softmax(logits, 0)
    for d in range(2):
        cdf = torch.special.ndtr((buckets.inner_edges[d, :, None] - locs[:, d]) / scales[:, d])
        levels = torch.arange(1, 64, dtype=torch.float64) / 64
        torch.testing.assert_close(cdf @ pi, levels, atol=2e-4, rtol=0)
        assert (buckets.inner_edges[d].diff() > 0).all()
        edges = buckets.edges[d]
        assert ((edges[:-1] < buckets.centres[d]) & (buckets.centres[d] < edges[1:])).all()


def test_mixture_bucket_probabilities_are_the_discretised_mixture():
    """P(b_0) P(b_1 | b_0) from the coder's conditional CDFs is the mixture of the
    components' bucket masses, sum_k pi_k P_k(b_0) P_k(b_1), for every pair of buckets,
    and sums to 1."""
    buckets, prior = _mixture_buckets(bits=4)
    logits, locs, scales = (t.double() for t in prior._params)
    pi = torch.softmax(logits, 0)
    edges = buckets.edges  # (2, 17)
    mass = torch.special.ndtr((edges[:, None, :] - locs.T[:, :, None]) / scales.T[:, :, None])
    mass = mass.diff(dim=-1)  # (D, C, K): each component's mass in each bucket
    exact = torch.einsum("c,ci,cj->ij", pi, mass[0], mass[1])
    coded = torch.zeros(16, 16, dtype=torch.float64)
    first = buckets._cdf(0, buckets.log_pi)
    for i in range(16):
        p_i = first(i + 0.5) - first(i - 0.5)
        second = buckets._cdf(1, buckets.log_pi + buckets._log_masses(0, i))
        for j in range(16):
            coded[i, j] = p_i * (second(j + 0.5) - second(j - 0.5))
    torch.testing.assert_close(coded, exact, atol=1e-12, rtol=1e-9)
    assert float(coded.sum()) == pytest.approx(1.0, abs=1e-12)


def test_empty_input_round_trips():
    vae = small_vae()
    x = torch.zeros(0, 1, 8, 8, dtype=torch.uint8)
    blob = _round_trip(vae, x)
    assert lossless.info(blob)["count"] == 0


def test_same_bytes_every_time_and_the_model_left_as_it_was():
    vae = small_vae()
    vae.train()
    threads = torch.get_num_threads()
    x = (torch.rand(10, 1, 8, 8) < 0.5).to(torch.uint8)
    assert lossless.encode(vae, x) == lossless.encode(vae, x)
    assert vae.training and torch.get_num_threads() == threads


def test_decodes_in_another_process_with_a_loaded_model(tmp_path):
    """The decoder recomputes the encoder's probabilities bit for bit in a new process
    (more torch threads, the model loaded from its file)."""
    vae = small_vae(likelihood="discretized_logistic", shape=(1, 6, 6))
    x = torch.randint(0, 256, (16, 1, 6, 6), dtype=torch.uint8)
    vae.save(tmp_path / "model.pt")
    (tmp_path / "x.bb").write_bytes(lossless.encode(vae, x))
    code = (
        "import sys, torch, numpy as np, pyvae; from pyvae.compress import lossless; "
        "torch.set_num_threads(2); d = sys.argv[1]; v = pyvae.load(d + '/model.pt'); "
        "np.save(d + '/y.npy', lossless.decode(v, open(d + '/x.bb', 'rb').read()).numpy())"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=Path.cwd())
    assert np.array_equal(np.load(tmp_path / "y.npy"), x.numpy())


# --------------------------------------------------------------------------- code length
@pytest.fixture(scope="module")
def trained_mixture():
    """A tiny VAE with a 4-component mixture prior trained on 16x16 sprites, and
    held-out sprites."""
    from pyvae import data, fit

    pyro.set_rng_seed(0)
    train, test = data.load("sprites", n_train=512, n_test=128, size=16)
    vae = small_vae(prior="mog", shape=(1, 16, 16), hidden=32)
    fit(vae, train, epochs=30, batch_size=128, lr=2e-2, progress=False)
    return vae, data.as_tensor(test)


@pytest.mark.parametrize("model", ["trained", "trained_mixture"])
def test_code_length_is_close_to_the_negative_elbo(model, request):
    """Per item, the bits-back code costs -log2 p(x|z) - log2 P(z) + log2 Q(z|x) for the
    z it pops, on average over z ~ Q the negative ELBO of the discretised latents. With
    2**12 buckets per latent dimension (~16 buckets per posterior standard deviation
    here) the discretisation changes that by well under 1 %: 1 % is allowed for it.
    The rest is noise: one z per item, so the mean over N items has a standard error of
    (the within-item standard deviation of the log-weights) / sqrt(N), 3 of them are
    allowed; and the stack is counted in whole 32-bit words (< 32 / N bits per item).
    The test items are coded 4 times over (the stack differs, so z does) to shrink the
    noise. The same holds for a mixture prior, whose buckets have equal mass under each
    dimension's marginal and whose P(z) is coded one dimension after another."""
    vae, x = request.getfixturevalue(model)
    x = x.repeat(4, 1, 1, 1)
    blob = lossless.encode(vae, x)
    info = lossless.info(blob)
    code = (8 * info["payload_bytes"] - info["initial_bits"]) / len(x)  # bits per item
    log_w = evaluate.log_weights(vae, x[: len(x) // 4], 500) / math.log(2)  # (500, N) bits
    negative_elbo = -float(log_w.mean())
    standard_error = float(log_w.var(0).mean().sqrt()) / math.sqrt(len(x))
    tolerance = 0.01 * negative_elbo + 3 * standard_error + 32 / len(x)
    assert abs(code - negative_elbo) < tolerance, (code, negative_elbo, tolerance)
    assert tolerance < 0.03 * negative_elbo  # tight enough to mean something
    # The whole file: the stack, the initial bits once and a header of a few hundred bytes.
    assert info["total_bytes"] < info["payload_bytes"] + 600
    assert info["initial_bits"] == 32 * (math.ceil(vae.z_dim * 12 / 32) + 2)


def _blobs(n, seed):
    """8-bit images (n, 1, 8, 8) of Gaussian blobs of random centre and width, uint8."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.linspace(-1, 1, 8)
    centre = torch.rand(n, 2, 1, 1, generator=g) * 1.2 - 0.6
    width = torch.rand(n, 1, 1, 1, generator=g) * 3 + 2
    d2 = (grid[None, :, None] - centre[:, :1]) ** 2 + (grid[None, None, :] - centre[:, 1:]) ** 2
    return (255 * torch.exp(-width * d2)).round().to(torch.uint8)


@pytest.fixture(scope="module")
def trained_beta_binomial():
    """A tiny beta-binomial VAE trained on 8-bit blob images, and 64 held-out ones."""
    from pyvae import fit

    pyro.set_rng_seed(0)
    vae = VAE.build(
        input_shape=(1, 8, 8), z_dim=3, likelihood="beta_binomial", net_kwargs={"hidden": (32,)}
    )
    fit(vae, _blobs(512, seed=0), epochs=30, batch_size=128, lr=2e-2, progress=False)
    return vae, _blobs(64, seed=1)


def test_beta_binomial_code_length_is_close_to_the_negative_elbo(trained_beta_binomial):
    """As for the Bernoulli model above (the same tolerance, for the same reasons), on
    8-bit data: measured 308.3 bits per item against a negative ELBO of 308.5 bits."""
    vae, x = trained_beta_binomial
    x = x.repeat(4, 1, 1, 1)
    blob = _round_trip(vae, x)
    info = lossless.info(blob)
    code = (8 * info["payload_bytes"] - info["initial_bits"]) / len(x)  # bits per item
    log_w = evaluate.log_weights(vae, x[: len(x) // 4], 500) / math.log(2)  # (500, N) bits
    negative_elbo = -float(log_w.mean())
    standard_error = float(log_w.var(0).mean().sqrt()) / math.sqrt(len(x))
    tolerance = 0.01 * negative_elbo + 3 * standard_error + 32 / len(x)
    assert abs(code - negative_elbo) < tolerance, (code, negative_elbo, tolerance)
    assert tolerance < 0.03 * negative_elbo
    assert code < 0.7 * 8 * 64  # well under the 8 bits per pixel of the raw bytes


def test_more_latent_bits_round_trip_too(trained):
    vae, x = trained
    for bits in (1, 6, 16):
        blob = lossless.encode(vae, x[:8], latent_bits=bits)
        assert lossless.info(blob)["latent_bits"] == bits
        assert torch.equal(lossless.decode(vae, blob), x[:8])


# --------------------------------------------------------------------------- errors
def test_another_model_is_refused(trained):
    vae, x = trained
    blob = lossless.encode(vae, x[:4])
    other = VAE.build(input_shape=(1, 16, 16), z_dim=3, net_kwargs={"hidden": (32,)})
    with pytest.raises(ValueError, match="another model"):
        lossless.decode(other, blob)
    with torch.no_grad():  # the same architecture with one weight changed
        other.load_state_dict(vae.state_dict())
        other.decoder.net[-1].bias[0] += 1e-6
    with pytest.raises(ValueError, match="another model"):
        lossless.decode(other, blob)


def test_damaged_files_are_refused(trained):
    vae, x = trained
    blob = lossless.encode(vae, x[:8])
    for cut in (len(blob) - 1, len(blob) // 2, 20, 9):
        with pytest.raises(ValueError, match="truncated"):
            lossless.decode(vae, blob[:cut])
    for position in (len(blob) - 40, len(blob) // 2, 30):
        damaged = bytearray(blob)
        damaged[position] ^= 0x10
        with pytest.raises(ValueError, match="corrupted|truncated"):
            lossless.decode(vae, bytes(damaged))
    with pytest.raises(ValueError, match="corrupted"):
        lossless.decode(vae, blob + b"\0")
    with pytest.raises(ValueError, match="not a pyvae lossless file"):
        lossless.decode(vae, b"\x89PNG\r\n\x1a\n" + blob[8:])
    newer = bytearray(blob)
    newer[8] += 1  # the format version
    with pytest.raises(ValueError, match="format version 3"):
        lossless.decode(vae, bytes(newer))
    with pytest.raises(TypeError, match="bytes"):
        lossless.decode(vae, "a string")


def test_files_of_format_version_1_still_decode(trained):
    """Version 1 hashed the values alone; version 2 hashes the shape and dtype too."""
    vae, x = trained
    version, header, words = lossless._unpack(lossless.encode(vae, x[:4]))
    assert version == lossless.FORMAT_VERSION == 2
    header["data_sha256"] = lossless._data_digest(x[:4].long(), header["shape"], "", version=1)
    old = lossless._pack(header, words.astype("<u4").tobytes(), version=1)
    assert torch.equal(lossless.decode(vae, old), x[:4])


def test_a_decoder_that_computes_differently_is_detected(trained, monkeypatch):
    """If the decoder's probabilities differed from the encoder's, the data hash stops
    it: an error, never wrong data."""
    vae, x = trained
    blob = lossless.encode(vae, x[:8])
    real = lossless._BitsBack.posterior
    monkeypatch.setattr(
        lossless._BitsBack, "posterior", lambda self, xi, side=None: real(self, 1 - xi, side)
    )
    with pytest.raises(ValueError, match="did not reproduce the data"):
        lossless.decode(vae, blob)


@pytest.mark.parametrize(
    "likelihood, message",
    [
        ("gaussian", "Gaussian is not supported"),
        ("continuous_bernoulli", "ContinuousBernoulli is not supported"),
        (likelihoods.Bernoulli(soft_targets=True), "soft_targets"),
    ],
)
def test_unsupported_likelihoods_are_named(likelihood, message):
    vae = small_vae(likelihood=likelihood)
    with pytest.raises(ValueError, match=message) as error:
        lossless.encode(vae, torch.zeros(2, 1, 8, 8))
    for name in (
        "bernoulli",
        "discretized_logistic",
        "beta_binomial",
        "poisson",
        "negative_binomial",
    ):
        assert name in str(error.value)


def test_unsupported_priors_are_named():
    vae = small_vae(prior="flow")
    with pytest.raises(ValueError, match="FlowPrior is not supported") as error:
        lossless.encode(vae, torch.zeros(2, 1, 8, 8))
    assert "prior='normal'" in str(error.value) and "'mog', 'vamp'" in str(error.value)


@pytest.mark.parametrize(
    "likelihood, shape, x, message",
    [
        ("bernoulli", (1, 8, 8), torch.full((2, 1, 8, 8), 0.5), "binarize"),
        ("discretized_logistic", (1, 8, 8), torch.full((2, 1, 8, 8), 256.0), "0..255"),
        ("discretized_logistic", (1, 8, 8), torch.full((2, 1, 8, 8), 2.5), "support"),
        ("beta_binomial", (1, 8, 8), torch.full((2, 1, 8, 8), 256.0), "0..255"),
        ("beta_binomial", (1, 8, 8), torch.full((2, 1, 8, 8), 0.5), "values='uint8'"),
        ("poisson", (5,), -torch.ones(2, 5), "non-negative integer"),
        ("poisson", (5,), torch.full((2, 5), 2.0**31), "counts up to"),
        ("bernoulli", (1, 8, 8), torch.zeros(2, 1, 8, 9), "input_shape"),
        ("bernoulli", (2, 4, 4), torch.zeros(2, 4, 4), "x\\[None\\]"),
        ("bernoulli", (1, 8, 8), torch.full((2, 1, 8, 8), math.nan), "NaN"),
    ],
)
def test_data_outside_the_support_or_shape_is_refused(likelihood, shape, x, message):
    vae = small_vae(likelihood=likelihood, shape=shape)
    with pytest.raises(ValueError, match=message):
        lossless.encode(vae, x)


def test_bad_options_and_devices(trained):
    vae, x = trained
    for bits in (0, 17, 2.0):
        with pytest.raises(ValueError, match="latent_bits"):
            lossless.encode(vae, x[:2], latent_bits=bits)
    with pytest.raises(TypeError, match="complex"):
        lossless.encode(vae, torch.zeros(2, 1, 16, 16, dtype=torch.complex64))
    meta = small_vae().to("meta")
    with pytest.raises(ValueError, match="vae.to\\('cpu'\\)"):
        lossless.encode(meta, torch.zeros(2, 1, 8, 8))


def test_missing_constriction_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "constriction", None)
    with pytest.raises(ImportError, match=r"pip install 'pyvae\[lossless\]'"):
        lossless.encode(small_vae(), torch.zeros(2, 1, 8, 8))


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def run_folder(tmp_path, trained):
    vae, _ = trained
    run = tmp_path / "run"
    run.mkdir()
    vae.save(run / "model.pt")
    (run / "config.json").write_text(json.dumps({"vae": vae.config}))
    return run


def test_cli_compress_and_decompress_round_trip(run_folder, trained, tmp_path, capsys):
    _, x = trained
    items = x.numpy()[:, 0]  # (N, 16, 16): as many values per item as the model's input
    np.save(tmp_path / "x.npy", items)
    packed, back = tmp_path / "x.bb", tmp_path / "back.npy"
    assert main(["compress", str(run_folder), str(tmp_path / "x.npy"), str(packed)]) == 0
    printed = capsys.readouterr().out
    assert "bits/dim" in printed and "initial bits" in printed and str(packed) in printed
    assert main(["decompress", str(run_folder), str(packed), str(back)]) == 0
    y = np.load(back)
    assert y.dtype == items.dtype and np.array_equal(y, items)
    # Never overwritten without --overwrite, neither the file nor the data.
    before = packed.read_bytes()
    assert main(["compress", str(run_folder), str(tmp_path / "x.npy"), str(packed)]) == 2
    assert main(["decompress", str(run_folder), str(packed), str(back)]) == 2
    assert "--overwrite" in capsys.readouterr().err and packed.read_bytes() == before
    assert main(["decompress", str(run_folder), str(packed), str(back), "--overwrite"]) == 0


def test_cli_npz_input_and_output(run_folder, trained, tmp_path, capsys):
    _, x = trained
    np.savez(tmp_path / "x.npz", images=x[:5].numpy(), labels=np.arange(5))
    packed = tmp_path / "x.bb"
    args = ["compress", str(run_folder), str(tmp_path / "x.npz"), str(packed)]
    assert main(args) == 2
    assert "--key" in capsys.readouterr().err
    assert main([*args, "--key", "images"]) == 0
    assert main(["decompress", str(run_folder), str(packed), str(tmp_path / "y.npz")]) == 0
    with np.load(tmp_path / "y.npz") as z:
        assert np.array_equal(z["x"], x[:5].numpy())


def test_cli_errors_are_clear(run_folder, tmp_path, capsys):
    np.save(tmp_path / "grey.npy", np.full((3, 1, 16, 16), 0.5, dtype=np.float32))
    assert main(["compress", str(run_folder), str(tmp_path / "grey.npy"), str(tmp_path / "o")]) == 2
    assert "binarize" in capsys.readouterr().err
    (tmp_path / "junk.bb").write_bytes(b"PYVAE-BB\x01\x00" + b"\0" * 10)  # version 1
    args = ["decompress", str(run_folder), str(tmp_path / "junk.bb"), str(tmp_path / "o.npy")]
    assert main(args) == 2
    assert "truncated" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.npy").exists()

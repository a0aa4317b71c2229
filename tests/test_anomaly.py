"""Anomaly detection: per-item scores, their relations to the ELBO, detection of
anomalies a VAE trained on sprites has never seen, the Detector's threshold, and the
ranking metrics."""

import math
import sys

import pyro
import pytest
import torch

from pyvae import VAE, anomaly, evaluate


@pytest.fixture(scope="module")
def anomalies(trained):
    """Images a sprite model should find unusual: binary noise and inverted sprites."""
    _, x = trained
    g = torch.Generator().manual_seed(1)
    noise = (torch.rand(x.shape, generator=g) < 0.1).to(x.dtype)
    return {"noise": noise, "inverted": 1 - x}


# --------------------------------------------------------------------------- score
@pytest.mark.parametrize("method", anomaly.SCORES)
def test_each_score_is_one_finite_value_per_item(trained, method):
    vae, x = trained
    side_models = {"likelihood_ratio": {"background": vae}, "complexity": {"compressor": "zlib"}}
    s = anomaly.score(vae, x[:20], method, num_samples=5, **side_models.get(method, {}))
    assert s.shape == (20,)
    assert s.is_floating_point()
    assert bool(torch.isfinite(s).all())


def test_default_method_is_elbo(trained):
    vae, x = trained
    pyro.set_rng_seed(3)
    default = anomaly.score(vae, x[:10])
    pyro.set_rng_seed(3)
    elbo = anomaly.score(vae, x[:10], "elbo")
    assert torch.equal(default, elbo)


def test_unknown_method_lists_the_valid_ones(trained):
    vae, x = trained
    with pytest.raises(ValueError, match="unknown score") as info:
        anomaly.score(vae, x[:4], "nope")
    for name in anomaly.SCORES:
        assert name in str(info.value)


def test_elbo_score_is_the_negative_elbo(trained):
    vae, x = trained
    s = anomaly.score(vae, x, "elbo", num_samples=200)
    neg_elbo = -vae.elbo(x, num_samples=10, reduction="none")
    assert float(s.mean()) == pytest.approx(float(neg_elbo.mean()), abs=0.5)
    # Same quantity per item, up to Monte Carlo noise.
    assert float(torch.corrcoef(torch.stack([s, neg_elbo]))[0, 1]) > 0.95


def test_reconstruction_score_leaves_out_the_kl(trained):
    vae, x = trained
    recon = anomaly.score(vae, x, "reconstruction", num_samples=200)
    elbo = anomaly.score(vae, x, "elbo", num_samples=200)
    kl = evaluate.elbo_terms(vae, x, num_samples=200)["kl"]
    # -E[log p(x|z)] <= -ELBO since KL >= 0; the gap is the KL term.
    assert float(recon.mean()) <= float(elbo.mean()) + 0.1
    assert float((elbo - recon).mean()) == pytest.approx(float(kl.mean()), abs=0.3)
    assert float(kl.mean()) > 1.0  # a trained model uses its code


def test_latent_score_is_the_negative_prior_density_of_the_posterior_mean(trained):
    vae, x = trained
    s = anomaly.score(vae, x, "latent")
    means = vae.encode(x).mean
    expected = -torch.distributions.Normal(0.0, 1.0).log_prob(means).sum(-1)
    assert torch.allclose(s, expected, atol=1e-5)
    # Deterministic: no sampling involved.
    assert torch.equal(s, anomaly.score(vae, x, "latent"))


def test_latent_score_uses_the_vaes_own_prior():
    vae = VAE.build(
        input_shape=(1, 16, 16),
        z_dim=2,
        prior="mog",
        prior_kwargs={"components": 3},
        net_kwargs={"hidden": (8,)},
    )
    x = (torch.rand(5, 1, 16, 16) < 0.2).float()
    expected = -vae.prior(vae.encoder).log_prob(vae.encode(x).mean)
    assert torch.allclose(anomaly.score(vae, x, "latent"), expected)


@pytest.mark.parametrize("method", ["elbo", "log_likelihood"])
def test_zero_num_samples_raises(trained, method):
    vae, x = trained
    with pytest.raises(ValueError, match="num_samples"):
        anomaly.score(vae, x[:4], method, num_samples=0)


def test_negative_num_samples_raises(trained):
    vae, x = trained
    with pytest.raises(ValueError, match="num_samples"):
        anomaly.score(vae, x[:4], "reconstruction", num_samples=-1)


# --------------------------------------------------------------------------- detection
@pytest.mark.parametrize("kind", ["noise", "inverted"])
@pytest.mark.parametrize("method", ["elbo", "log_likelihood"])
def test_sprite_model_detects_unseen_kinds_of_images(trained, anomalies, method, kind):
    vae, x = trained
    bad = anomalies[kind]
    scores = torch.cat(
        [
            anomaly.score(vae, x, method, num_samples=10),
            anomaly.score(vae, bad, method, num_samples=10),
        ]
    )
    labels = torch.cat([torch.zeros(len(x)), torch.ones(len(bad))])
    assert anomaly.auroc(labels, scores) > 0.9
    assert anomaly.average_precision(labels, scores) > 0.9


# --------------------------------------------------------------------------- Detector
def test_detector_flags_about_the_false_positive_rate_and_most_anomalies(trained, anomalies):
    vae, x = trained
    detector = anomaly.Detector(vae, "elbo", false_positive_rate=0.1, num_samples=10)
    assert detector.fit(x) is detector
    assert isinstance(detector.threshold, float)
    flags = detector.predict(x)
    assert flags.shape == (len(x),) and flags.dtype == torch.bool
    assert 0.05 <= float(flags.float().mean()) <= 0.15
    for bad in anomalies.values():
        assert float(detector.predict(bad).float().mean()) > 0.9


def test_detector_threshold_is_the_quantile_of_the_normal_scores(trained):
    vae, x = trained  # "latent" is deterministic, so the count is exact
    detector = anomaly.Detector(vae, "latent", false_positive_rate=0.1).fit(x)
    scores = anomaly.score(vae, x, "latent")
    assert detector.threshold == pytest.approx(float(torch.quantile(scores.double(), 0.9)))
    # 128 items: the 0.9 quantile lies between the 115th and 116th smallest scores.
    assert int(detector.predict(x).sum()) == math.ceil(0.1 * len(x))


def test_detector_score_uses_its_method(trained):
    vae, x = trained
    detector = anomaly.Detector(vae, "latent")
    assert torch.equal(detector.score(x[:8]), anomaly.score(vae, x[:8], "latent"))


def test_predict_before_fit_raises(trained):
    vae, x = trained
    with pytest.raises(RuntimeError, match="fit"):
        anomaly.Detector(vae).predict(x[:4])


@pytest.mark.parametrize("fpr", [0, 1, -0.1, 1.5, float("nan")])
def test_detector_rejects_invalid_false_positive_rates(trained, fpr):
    vae, _ = trained
    with pytest.raises(ValueError, match="false_positive_rate"):
        anomaly.Detector(vae, false_positive_rate=fpr)


def test_detector_rejects_unknown_methods(trained):
    vae, _ = trained
    with pytest.raises(ValueError, match="valid scores"):
        anomaly.Detector(vae, "mahalanobis")


@pytest.mark.parametrize("method", ["elbo", "latent"])
def test_detector_fit_on_empty_data_raises(trained, method):
    vae, _ = trained
    detector = anomaly.Detector(vae, method)
    with pytest.raises(ValueError, match="empty"):
        detector.fit(torch.empty(0, 1, 16, 16))
    assert detector.threshold is None


# --------------------------------------------------------------------------- metrics
def test_metrics_on_hand_computed_examples():
    labels = [0, 0, 1, 1]
    assert anomaly.auroc(labels, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    assert anomaly.auroc(labels, [0.4, 0.3, 0.2, 0.1]) == pytest.approx(0.0)
    # Positive/negative pairs ranked right: (0.35>0.1), (0.8>0.1), (0.8>0.4); not (0.35<0.4).
    assert anomaly.auroc(labels, [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert anomaly.average_precision(labels, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    # Ranked: 0.8 (hit, P=1), 0.4 (miss), 0.35 (hit, P=2/3): AP = (1 + 2/3) / 2.
    assert anomaly.average_precision(labels, [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6)


def test_metrics_accept_tensors_and_return_floats():
    labels = torch.tensor([0, 1, 0, 1])
    scores = torch.tensor([0.2, 0.9, 0.1, 0.7], requires_grad=True)
    for metric in (anomaly.auroc, anomaly.average_precision):
        value = metric(labels, scores)
        assert isinstance(value, float)
        assert value == pytest.approx(1.0)


@pytest.mark.parametrize("metric", [anomaly.auroc, anomaly.average_precision])
def test_metrics_need_both_classes(metric):
    with pytest.raises(ValueError, match="both classes"):
        metric([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="both classes"):
        metric([1, 1, 1], [0.1, 0.2, 0.3])


@pytest.mark.parametrize("metric", [anomaly.auroc, anomaly.average_precision])
def test_metrics_reject_mismatched_shapes(metric):
    with pytest.raises(ValueError, match="shape"):
        metric([0, 1, 0, 1], [0.1, 0.2, 0.3])


@pytest.mark.parametrize("metric", [anomaly.auroc, anomaly.average_precision])
def test_metrics_without_scikit_learn_say_how_to_install_it(monkeypatch, metric):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match="pip install"):
        metric([0, 1], [0.1, 0.2])

"""The capability battery: every VAE class against every feature.

In the style of torchvision's ``DatasetTestCase``: :class:`CapabilityBattery` holds one
test per feature; each VAE class gets a subclass that says how to build it and its side
information. Each cell either works (checked against a reference: shapes, finiteness, a
round trip, an equality) or raises :class:`~pyvae.capabilities.CapabilityError` before
any work (no module ran, no parameter changed, no file written). There is no third
outcome. Distributed training runs in two gloo processes for every class that declares
it (one spawn for all); CUDA-graph training is checked as a declaration (no CUDA here).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pyro
import pyro.optim
import pytest
import torch
from matplotlib.figure import Figure

from pyvae import (
    VAE,
    ConditionalVAE,
    SemiSupervisedVAE,
    anomaly,
    compress,
    disentanglement,
    evaluate,
    fit,
    load,
    plots,
    posterior_samples,
    priors,
    stacked,
)
from pyvae import capabilities as caps
from pyvae.capabilities import CapabilityError
from pyvae.cuda_graph import capturable
from pyvae.data import UNLABELLED, ArrayDataset
from pyvae.factor_vae import FactorVAELoss
from pyvae.hierarchical import HierarchicalVAE
from pyvae.objectives import DirectELBO
from pyvae.posteriors import IAFVAE, LowRankVAE
from pyvae.tcvae import BetaTCELBO

SHAPE = (1, 8, 8)
N = 32
CLASSES = 3
NET = {"net_kwargs": {"hidden": (16,)}}


class OwnModel(VAE):
    """A user's VAE with its own model (here the same story, so every number can be
    compared), declaring no capabilities: it keeps those that do not depend on it."""

    def model(self, x=None, **kwargs):
        return super().model(x, **kwargs)


def snapshot(vae) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in vae.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class CapabilityBattery:
    """The cells of one VAE class. Subclasses set :attr:`vae_class` and :meth:`build`."""

    vae_class: ClassVar[type[VAE]]
    #: What the class should declare (checked against ``vae_class.capabilities``).
    expected: ClassVar[frozenset[str]]
    #: Its side information per item ("c", "y"), or None.
    side_name: ClassVar[str | None] = None
    #: Whether ``encode(x).mean`` is exact (not a Monte Carlo estimate).
    exact_means: ClassVar[bool] = True

    def build(self) -> VAE:
        raise NotImplementedError

    @classmethod
    def side_values(cls) -> torch.Tensor | None:
        """The items' side information for a distributed run (None: x alone)."""
        return torch.arange(N) % CLASSES if cls.side_name else None

    # ------------------------------------------------------------------ fixtures
    @pytest.fixture
    def vae(self) -> VAE:
        pyro.set_rng_seed(0)
        return self.build()

    @pytest.fixture
    def x(self) -> torch.Tensor:
        return (torch.rand(N, *SHAPE, generator=torch.Generator().manual_seed(1)) > 0.5).float()

    @pytest.fixture
    def labels(self) -> torch.Tensor:
        return torch.arange(N) % CLASSES

    @pytest.fixture
    def data(self, x, labels) -> ArrayDataset:
        """The items with their labels as targets (a plain VAE ignores them)."""
        return ArrayDataset(x, labels)

    def side(self, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The side information of ``labels``' items by name ({} for a VAE of x alone)."""
        return {self.side_name: labels} if self.side_name else {}

    def decode_side(self, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """What ``decode`` takes for codes of these items."""
        return self.side(labels)

    def one_for_all(self, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Side information to generate with: none (a class-label variant then draws one
        column per class)."""
        return {}

    # ------------------------------------------------------------------ the two outcomes
    def cell(self, vae: VAE, feature: str, call, tmp_path=None):
        """``call()`` if ``vae`` supports ``feature``; else check that it raises
        CapabilityError naming the class and the feature before any work."""
        if vae.supports(feature):
            return call()
        before = snapshot(vae)
        ran = []
        hooks = [m.register_forward_hook(lambda *_: ran.append(1)) for m in vae.modules()]
        files = sorted(tmp_path.rglob("*")) if tmp_path is not None else None
        try:
            with pytest.raises(CapabilityError) as error:
                call()
        finally:
            for hook in hooks:
                hook.remove()
        message = str(error.value)
        assert type(vae).__name__ in message and caps.DESCRIPTIONS[feature] in message
        assert not ran, f"{feature}: modules ran before the refusal"
        assert same_state(before, snapshot(vae))
        if files is not None:
            assert sorted(tmp_path.rglob("*")) == files, "a file was written"
        return None

    # ------------------------------------------------------------------ declarations
    def test_declares_what_it_supports(self, vae):
        assert type(vae).capabilities == self.expected
        assert all(vae.supports(f) == (f in self.expected) for f in caps.FEATURES)
        assert DirectELBO.valid_for(vae) == vae.supports(caps.FAST_PATH)
        assert capturable(vae) == vae.supports(caps.CUDA_GRAPH)
        with pytest.raises(ValueError, match="unknown feature 'lossles'") as error:
            vae.supports("lossles")
        assert not isinstance(error.value, CapabilityError)
        with pytest.raises(ValueError, match="unknown feature"):
            vae.require("plot.samples")

    def test_fast_path(self, vae, x):
        xb = x[:8]

        def loss() -> tuple[float, float]:
            pyro.set_rng_seed(3)
            direct = DirectELBO(vae).loss(vae.model, vae.guide, xb, num_data=N)
            pyro.set_rng_seed(3)
            traced = pyro.infer.Trace_ELBO().loss(vae.model, vae.guide, xb, num_data=N)
            return direct, traced

        out = self.cell(vae, caps.FAST_PATH, loss)
        if out is not None:
            assert out[0] == pytest.approx(out[1], rel=1e-5)
            assert isinstance(vae.default_elbo(), DirectELBO)
        else:
            assert not isinstance(vae.default_elbo(), DirectELBO)

    # ------------------------------------------------------------------ training
    def test_fit_distributed(self, vae, data, distributed_runs):
        """Declared: both processes end with the same parameters and history, changed by
        training; else refused before any work (before the process group starts)."""
        if not vae.supports(caps.DISTRIBUTED):
            self.cell(vae, caps.DISTRIBUTED, lambda: fit(vae, data, distributed=True))
            return
        rank0, rank1 = (run[type(self).__name__] for run in distributed_runs)
        for key in ("epoch", "train_elbo", "kl_weight"):  # time_s is each process's own
            assert rank0["history"][key] == rank1["history"][key]
        assert all(math.isfinite(v) for v in rank0["history"]["train_elbo"])
        assert same_state(rank0["state"], rank1["state"])
        assert not same_state(rank0["state"], rank0["initial"])

    def test_fit_with_the_svi_step(self, vae, data):
        before = snapshot(vae)
        optim = pyro.optim.Adam({"lr": 1e-3})
        hist = fit(vae, data, epochs=1, batch_size=16, optim=optim, progress=False)
        assert len(hist["train_elbo"]) == 1 and math.isfinite(hist["train_elbo"][0])
        assert not same_state(before, snapshot(vae))

    def test_fit_with_the_default_step_raises_the_elbo(self, vae, data):
        hist = fit(vae, data, epochs=4, batch_size=8, lr=3e-2, seed=0, progress=False)
        assert all(map(math.isfinite, hist["train_elbo"]))
        assert hist["train_elbo"][-1] > hist["train_elbo"][0]

    def test_checkpoint_and_resume_give_the_uninterrupted_run(self, data, tmp_path):
        pyro.set_rng_seed(0)
        whole = self.build()
        fit(whole, data, epochs=2, batch_size=16, seed=0, progress=False)
        pyro.set_rng_seed(0)
        resumed = self.build()

        def run():
            for epochs, resume in ((1, False), (2, True)):
                fit(resumed, data, epochs=epochs, batch_size=16, seed=0, progress=False,
                    checkpoint_dir=tmp_path, resume=resume)  # fmt: skip
            return resumed

        if self.cell(resumed, caps.CHECKPOINT, run, tmp_path) is not None:
            assert (tmp_path / "checkpoint.pt").exists()
            pairs = zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True)
            for (k, a), b in pairs:
                assert torch.allclose(a, b, atol=1e-6), k

    @pytest.mark.parametrize(
        "feature, make",
        [(caps.TC_DECOMPOSITION, lambda vae: BetaTCELBO(beta=6)),
         (caps.FACTOR_VAE, lambda vae: FactorVAELoss(vae.z_dim, hidden=(8,)))],
    )  # fmt: skip
    def test_disentangling_objectives(self, vae, data, x, feature, make):
        """Through fit (refused before any work) and through the objective alone."""
        before = snapshot(vae)

        def run():
            hist = fit(vae, data, epochs=1, batch_size=16, elbo=make(vae), progress=False)
            return hist, make(vae).loss(vae.model, vae.guide, x[:8], num_data=N)

        out = self.cell(vae, feature, run)
        if out is not None:
            hist, loss = out
            assert math.isfinite(hist["train_elbo"][0]) and math.isfinite(loss)
            assert not same_state(before, snapshot(vae))
        else:
            self.cell(vae, feature, lambda: make(vae).loss(vae.model, vae.guide, x[:8]))

    # ------------------------------------------------------------------ using a VAE
    def test_encode_decode_sample_reconstruct(self, vae, data, labels):
        side = self.decode_side(labels)
        q = vae.encode(data)
        assert q.batch_shape == (N,) and q.event_shape == (vae.z_dim,)
        z = q.mean
        assert z.shape == (N, vae.z_dim) and torch.isfinite(z).all()
        px = vae.decode(z, **side)
        assert px.mean.shape == (N, *SHAPE)
        generated = vae.sample(5, **{k: v[:5] for k, v in side.items()})
        assert generated.shape == (5, *SHAPE) and ((generated >= 0) & (generated <= 1)).all()
        recon = vae.reconstruct(data)
        assert recon.shape == (N, *SHAPE) and torch.isfinite(recon).all()
        by_name = vae.reconstruct(data.data, **self.side(labels))
        assert torch.allclose(by_name, recon)

    def test_elbo(self, vae, data, labels):
        pyro.set_rng_seed(2)
        each = vae.elbo(data, num_samples=2, reduction="none")
        pyro.set_rng_seed(2)
        mean = vae.elbo(data.data, num_samples=2, **self.side(labels))
        assert each.shape == (N,) and torch.isfinite(each).all() and (each < 0).all()
        assert float(mean) == pytest.approx(float(each.mean()), rel=1e-5)

    def test_log_likelihood(self, vae, data):
        def run():
            pyro.set_rng_seed(2)
            return vae.log_likelihood(data, num_samples=64), vae.elbo(data, num_samples=16)

        out = self.cell(vae, caps.LOG_LIKELIHOOD, run)
        if out is not None:
            ll, elbo = out
            assert ll.shape == (N,) and torch.isfinite(ll).all()
            assert float(ll.mean()) > float(elbo) - 0.5  # a tighter bound, up to noise

    def test_evaluate_from_traces(self, vae, data, x, labels):
        side = self.side(labels)

        def run():
            pyro.set_rng_seed(4)
            w = evaluate.log_weights(vae, x[:4], 3, **{k: v[:4] for k, v in side.items()})
            terms = evaluate.elbo_terms(vae, data, num_samples=2)
            ll = evaluate.log_likelihood(vae, data, num_samples=8)
            return w, terms, ll

        out = self.cell(vae, caps.EVALUATE, run)
        if out is not None:
            w, terms, ll = out
            assert w.shape == (3, 4) and torch.isfinite(w).all()
            assert torch.allclose(terms["elbo"], terms["reconstruction"] - terms["kl"])
            assert ll.shape == (N,) and torch.isfinite(ll).all()

    def test_closed_form_kl(self, vae, data):
        out = self.cell(vae, caps.CLOSED_FORM_KL, lambda: evaluate.kl_per_dim(vae, data))
        if out is not None:
            assert out.shape == (vae.z_dim,) and (out >= 0).all()
            pyro.set_rng_seed(5)
            mc = evaluate.elbo_terms(vae, data, num_samples=400)["kl"].mean()
            assert float(out.sum()) == pytest.approx(float(mc), abs=0.05, rel=0.05)

    @pytest.mark.parametrize("method", anomaly.SCORES)
    def test_anomaly_scores(self, vae, data, method):
        feature = {
            "latent": caps.ANOMALY_LATENT,
            "log_likelihood": caps.LOG_LIKELIHOOD,
            "likelihood_ratio": caps.LOG_LIKELIHOOD,
            "complexity": caps.LOG_LIKELIHOOD,
        }.get(method, caps.EVALUATE)
        side_models = {  # the VAE as its own background; a compressor of 0 bits per item
            "likelihood_ratio": {"background": vae},
            "complexity": {"compressor": lambda x: torch.zeros(len(x))},
        }.get(method, {})
        out = self.cell(
            vae, feature, lambda: anomaly.score(vae, data, method, num_samples=4, **side_models)
        )
        if out is not None:
            assert out.shape == (N,) and torch.isfinite(out).all()

    # ------------------------------------------------------------------ plots
    def test_plot_samples(self, vae, labels):
        one = self.one_for_all(labels)
        fig = self.cell(vae, caps.PLOTS_SAMPLES, lambda: plots.samples(vae, n=6, **one))
        if fig is not None:
            assert isinstance(fig, Figure) and fig.axes

    def test_plot_reconstructions(self, vae, data):
        fig = self.cell(vae, caps.PLOTS_RECONSTRUCTIONS, lambda: plots.reconstructions(vae, data))
        if fig is not None:
            assert isinstance(fig, Figure) and fig.axes
            both = plots.reconstructions_and_samples(vae, data, n=4)
            assert len(both.axes) == 2
            hist = {"epoch": [1], "train_elbo": [-40.0]}
            figures = plots.run_figures(vae, hist, data)
            assert {"reconstructions", "samples", "traversal", "latent_space"} <= set(figures)

    def test_plot_traversal(self, vae, data):
        def run():
            return plots.traversal(vae, data, dims=2, steps=3)

        fig = self.cell(vae, caps.PLOTS_TRAVERSAL, run)
        if fig is not None:
            assert isinstance(fig, Figure) and fig.axes

    def test_plot_interpolation(self, vae, data, labels, monkeypatch):
        seen = []
        decode = vae.decode

        def spy(z, **side):
            seen.append(z)
            return decode(z, **side)

        def run():
            return plots.interpolation(vae, data[0], data[1], steps=4)

        monkeypatch.setattr(vae, "decode", spy)
        fig = self.cell(vae, caps.PLOTS_INTERPOLATION, run)
        if fig is not None:
            assert isinstance(fig, Figure) and fig.axes
            if self.exact_means:  # the path runs from E[z|x1] to E[z|x2]
                ends = vae.encode(data.data[:2], **self.side(labels[:2])).mean
                assert torch.allclose(seen[-1][[0, -1]], ends, atol=1e-5)

    def test_plot_latent_space(self, vae, data):
        fig = self.cell(vae, caps.PLOTS_LATENT_SPACE, lambda: plots.latent_space(vae, data))
        if fig is not None:
            assert isinstance(fig, Figure) and fig.axes

    # ------------------------------------------------------------------ posterior
    def test_posterior_inference(self, vae, x, labels):
        """Gaps, refinement and NUTS where declared; else each refused before any work."""
        xb, side = x[:4], {k: v[:4] for k, v in self.side(labels).items()}
        calls = {
            "gaps": lambda: evaluate.inference_gaps(vae, xb, num_samples=8, steps=2, **side),
            "nuts": lambda: posterior_samples(vae, xb[:2], num_samples=4, warmup_steps=2),
            "plot": lambda: plots.posterior_comparison(vae, xb[:2], torch.zeros(4, 2, 2)),
            "refine": lambda: vae.encode(xb, refine_steps=2, **side),
        }
        out = {name: self.cell(vae, caps.POSTERIOR_INFERENCE, call) for name, call in calls.items()}
        if not vae.supports(caps.POSTERIOR_INFERENCE):
            assert set(out.values()) == {None}
            return
        assert all(torch.isfinite(v).all() and v.shape == (4,) for v in out["gaps"].values())
        assert out["nuts"].samples.shape == (4, 2, vae.z_dim)
        assert isinstance(out["plot"], Figure)
        refined = out["refine"]
        assert type(refined) is type(vae.encode(xb, **side)) and refined.batch_shape == (4,)

    # ------------------------------------------------------------------ compression
    def test_latent_codes(self, vae, data):
        codes = self.cell(vae, caps.LATENT_CODES, lambda: compress.encode(vae, data, bits=8))
        if codes is not None:
            assert codes.values.shape == (N, vae.z_dim) and codes.values.dtype == torch.uint8
            assert compress.decode(vae, codes).shape == (N, *SHAPE)
            means = vae.encode(data).mean
            step = 2 * codes.limit / 255
            back = compress._dequantize(codes)
            inside = means.abs() < codes.limit
            assert ((back - means).abs()[inside] <= step / 2 + 1e-5).all()
            rows = compress.rate_distortion(vae, data, bits=(2,))
            assert len(rows) == 2 and all(math.isfinite(r["mse"]) for r in rows)

    def test_disentanglement_scores(self, vae, data):
        pytest.importorskip("sklearn")
        factors = torch.rand(N, 2, generator=torch.Generator().manual_seed(4))
        out = self.cell(
            vae,
            caps.DISENTANGLEMENT,
            lambda: disentanglement.scores(vae, (data.data, factors), num_items=N),
        )
        if out is not None:
            assert tuple(out) == disentanglement.SCORE_KEYS[:5]
            assert all(0 <= v <= 1 for v in out.values())
            assert out["mig"] == disentanglement.mig(vae.encode(data).mean, factors)

    def test_stacked_features(self, vae, data):
        out = self.cell(vae, caps.STACKED, lambda: stacked.latent_features(vae, data, draw=False))
        if out is not None:
            q = vae.encode(data)
            assert torch.equal(out.data, q.mean) and torch.equal(out.targets, data.targets)

    def test_lossless_round_trip(self, vae, data, labels):
        pytest.importorskip("constriction")
        items = data.subset(slice(0, 3))
        blob = self.cell(vae, caps.LOSSLESS, lambda: compress.lossless.encode(vae, items))
        if blob is None:  # decoding is refused as well, before reading the file
            self.cell(vae, caps.LOSSLESS, lambda: compress.lossless.decode(vae, b"PYVAE-BB"))
        else:
            side = {k: v[:3] for k, v in self.side(labels).items()}
            assert torch.equal(compress.lossless.decode(vae, blob, **side), items.data)

    # ------------------------------------------------------------------ files
    def test_save_and_load(self, vae, data, tmp_path):
        path = vae.save(tmp_path / "m.pt")
        loaded = load(path, classes=[OwnModel])
        assert type(loaded) is type(vae) and loaded.config == vae.config
        assert same_state(snapshot(vae), snapshot(loaded))
        assert type(loaded).capabilities == type(vae).capabilities
        pyro.set_rng_seed(6)
        a = vae.elbo(data, reduction="none")
        pyro.set_rng_seed(6)
        b = loaded.elbo(data, reduction="none")
        assert torch.equal(a, b)


# ---------------------------------------------------------------------- the classes
ALL_PLOTS = caps.PLOTS
EVERYWHERE = frozenset({caps.CHECKPOINT, caps.LOG_LIKELIHOOD}) | ALL_PLOTS


class TestVAE(CapabilityBattery):
    vae_class = VAE
    expected = caps.FEATURES

    def build(self):
        return VAE.build(SHAPE, z_dim=2, **NET)


class TestOwnModel(CapabilityBattery):
    vae_class = OwnModel
    expected = caps.FEATURES - caps.MODEL_DEPENDENT

    def build(self):
        base = VAE.build(SHAPE, z_dim=2, **NET)
        return OwnModel(base.encoder, base.decoder, base.prior, base.likelihood, SHAPE)

    def test_it_gets_its_capabilities_back_by_declaring_them(self):
        class Declared(OwnModel):
            capabilities = VAE.capabilities

        class GuideToo(VAE):
            def guide(self, x, **kwargs):
                return super().guide(x, **kwargs)

        class Neither(VAE):
            pass

        assert Declared.capabilities == caps.FEATURES
        assert GuideToo.capabilities == caps.FEATURES - caps.MODEL_DEPENDENT
        assert Neither.capabilities == caps.FEATURES
        assert "defines its own guide" in GuideToo.unsupported[caps.LOSSLESS]
        with pytest.raises(ValueError, match="unknown feature 'fastpath'"):

            class Typo(VAE):
                capabilities = frozenset({"fastpath"})


class TestConditionalVAE(CapabilityBattery):
    vae_class = ConditionalVAE
    side_name = "c"
    expected = EVERYWHERE | {
        caps.DISTRIBUTED,
        caps.EVALUATE,
        caps.LOSSLESS,
        caps.CLOSED_FORM_KL,
        caps.ANOMALY_LATENT,
    }

    def build(self):
        return ConditionalVAE.build(SHAPE, z_dim=2, num_classes=CLASSES, **NET)

    def test_samples_take_a_context_or_one_column_per_class(self, vae):
        assert plots.samples(vae, n=6, c=1).axes
        one_each = plots.samples(vae, n=6)
        assert "one column per class" in one_each.axes[0].get_title()
        with pytest.raises(ValueError, match="pass data .* or c="):
            plots.traversal(vae)
        assert plots.traversal(vae, dims=1, steps=3, c=2).axes

    def test_lossless_needs_the_same_context(self, vae, data, labels):
        pytest.importorskip("constriction")
        items = data.subset(slice(0, 3))
        blob = compress.lossless.encode(vae, items.data, c=labels[:3])
        with pytest.raises(ValueError, match="needs c for each item"):
            compress.lossless.decode(vae, blob)
        with pytest.raises(ValueError, match="not the one this file was encoded with"):
            compress.lossless.decode(vae, blob, c=(labels[:3] + 1) % CLASSES)
        assert torch.equal(compress.lossless.decode(vae, blob, c=labels[:3]), items.data)


class TestContextVAE(TestConditionalVAE):
    """A ConditionalVAE whose context is two real values per item."""

    def build(self):
        return ConditionalVAE.build(SHAPE, z_dim=2, context_dim=2, **NET)

    @pytest.fixture
    def labels(self) -> torch.Tensor:
        return torch.rand(N, 2, generator=torch.Generator().manual_seed(2))

    def one_for_all(self, labels):
        return {"c": labels[0]}

    @classmethod
    def side_values(cls) -> torch.Tensor:
        return torch.rand(N, 2, generator=torch.Generator().manual_seed(2))

    def test_samples_take_a_context_or_one_column_per_class(self, vae):
        assert plots.samples(vae, n=6, c=torch.tensor([0.5, -1.0])).axes
        with pytest.raises(ValueError, match="pass c="):
            plots.samples(vae, n=6)


class TestSemiSupervisedVAE(CapabilityBattery):
    vae_class = SemiSupervisedVAE
    side_name = "y"
    expected = EVERYWHERE

    def build(self):
        return SemiSupervisedVAE.build(SHAPE, z_dim=2, num_classes=CLASSES, alpha=1.0, **NET)

    @pytest.fixture
    def labels(self) -> torch.Tensor:
        y = torch.arange(N) % CLASSES
        y[::2] = UNLABELLED  # half of the labels unknown
        return y

    def decode_side(self, labels):
        known = labels.clone()
        known[known == UNLABELLED] = 0  # decode needs a label for every code
        return {"y": known}


class TestIAFVAE(CapabilityBattery):
    vae_class = IAFVAE
    exact_means = False
    expected = EVERYWHERE | {
        caps.EVALUATE,
        caps.DISTRIBUTED,
        caps.LATENT_CODES,
        caps.ANOMALY_LATENT,
    }

    def build(self):
        return IAFVAE.build(SHAPE, z_dim=2, num_steps=1, hidden_dims=(8,), **NET)

    def test_encode_decode_sample_reconstruct(self, vae, data, labels):
        q = vae.encode(data)
        assert q.batch_shape == (N,) and q.event_shape == (vae.z_dim,)
        z = q.sample()
        assert torch.isfinite(q.log_prob(z)).all()
        assert vae.decode(z).mean.shape == (N, *SHAPE)
        assert vae.sample(5).shape == (5, *SHAPE)
        assert vae.reconstruct(data).shape == (N, *SHAPE)  # a Monte Carlo posterior mean

    def test_latent_codes(self, vae, data):  # E[z|x] is a Monte Carlo estimate: no equality
        codes = compress.encode(vae, data, bits=8)
        assert codes.values.shape == (N, vae.z_dim)
        assert compress.decode(vae, codes).shape == (N, *SHAPE)


class TestLowRankVAE(CapabilityBattery):
    vae_class = LowRankVAE
    expected = TestIAFVAE.expected | {caps.DISENTANGLEMENT}

    def build(self):
        return LowRankVAE.build(SHAPE, z_dim=2, rank=1, **NET)


class TestHierarchicalVAE(CapabilityBattery):
    vae_class = HierarchicalVAE
    expected = EVERYWHERE | {caps.EVALUATE, caps.DISTRIBUTED, caps.LATENT_CODES, caps.STACKED}

    def build(self):
        return HierarchicalVAE.build(SHAPE, z_dim=2, z2_dim=2, hidden2=(8,), **NET)


# ---------------------------------------------------------------------- parts
class OwnPrior(priors.Prior):
    """A user's prior: not declared capturable."""

    def forward(self, encoder=None):
        zeros = self._zeros()
        return pyro.distributions.Normal(zeros, torch.ones_like(zeros)).to_event(1)


class DeclaredPrior(OwnPrior):
    capturable = True


@pytest.mark.parametrize(
    "prior, graph",
    [("normal", True), ("mog", True), ("vamp", True), ("flow", False), (OwnPrior(2), False)]
    + [(DeclaredPrior(2), True)],
)
def test_cuda_graph_needs_every_part_to_declare_itself_capturable(prior, graph):
    kwargs: dict[str, Any] = {"prior_kwargs": {"components": 2}} if prior in ("mog", "vamp") else {}
    vae = VAE.build(SHAPE, z_dim=2, prior=prior, **NET, **kwargs)
    assert vae.supports(caps.FAST_PATH)
    assert vae.supports(caps.CUDA_GRAPH) == graph == capturable(vae)
    if not graph:
        with pytest.raises(CapabilityError, match=r"parts prior \(\w+\) do not declare"):
            vae.require(caps.CUDA_GRAPH)


def test_a_subclass_of_a_capturable_part_declares_it_again():
    class Wider(type(VAE.build(SHAPE, z_dim=2, **NET).decoder)):
        pass

    base = VAE.build(SHAPE, z_dim=2, **NET)
    decoder = Wider(2, base.decoder.output_shape, hidden=(16,))
    vae = VAE(base.encoder, decoder, base.prior, base.likelihood, SHAPE)
    assert vae.supports(caps.FAST_PATH) and not vae.supports(caps.CUDA_GRAPH)


def test_the_refusal_names_the_class_the_feature_and_what_instead():
    vae = HierarchicalVAE.build(SHAPE, z_dim=2, z2_dim=2, hidden2=(8,), **NET)
    with pytest.raises(CapabilityError) as error:
        compress.lossless.encode(vae, torch.zeros(1, *SHAPE))
    assert str(error.value) == (
        "HierarchicalVAE does not support lossless coding (pyvae.compress.lossless): its "
        "prior over z1 is p(z1|z2), but the coder's buckets are those of N(0, I); use a "
        "VAE, or pyvae.compress.encode for lossy latent codes"
    )
    assert isinstance(error.value, ValueError)


def test_capabilities_is_a_leaf_module():
    import ast
    import inspect

    imports = [
        node
        for node in ast.walk(ast.parse(inspect.getsource(caps)))
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    assert [ast.unparse(node) for node in imports] == ["from __future__ import annotations"]


# --------------------------------------------------------------------------- distributed
def _distributed_worker(rank: int, port: int, tmp: str) -> None:
    """One of two gloo processes: trains each class that declares DISTRIBUTED."""
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE="2")  # fmt: skip
    torch.set_num_threads(1)
    out = {}
    for battery in CapabilityBattery.__subclasses__() + [TestContextVAE]:
        pyro.set_rng_seed(rank)  # the ranks start apart: DDP starts both from rank 0's
        vae = battery().build()
        if not vae.supports(caps.DISTRIBUTED):
            continue
        x = (torch.rand(N, *SHAPE, generator=torch.Generator().manual_seed(1)) > 0.5).float()
        side = battery.side_values()
        initial = snapshot(vae)
        x = ArrayDataset(x, side) if side is not None else x
        history = fit(vae, x, epochs=2, batch_size=8, seed=0, distributed=True, progress=False)
        out[battery.__name__] = {"history": history, "state": snapshot(vae), "initial": initial}
    torch.save(out, f"{tmp}/rank{rank}.pt")


@pytest.fixture(scope="module")
def distributed_runs(tmp_path_factory):
    """What each of two processes saved after training every class that declares it."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tmp_path_factory.mktemp("distributed")
    mp.start_processes(_distributed_worker, args=(port, str(tmp)), nprocs=2, join=True,
                       start_method="spawn")  # fmt: skip
    return [torch.load(tmp / f"rank{r}.pt") for r in range(2)]

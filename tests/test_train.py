"""fit(): SVI training, history, KL schedule, seeds, data types, bad input."""

import helpers
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro.infer import TraceMeanField_ELBO
from torch.distributions import constraints
from torch.utils.data import Dataset

from pyvae import VAE, data, fit, likelihoods, priors
from pyvae.callbacks import Callback
from pyvae.train import kl_weight_schedule


@pytest.fixture(scope="module")
def sprites():
    train, test = data.load("sprites", n_train=512, n_test=128, size=16)
    return train, test


def small_vae(prior="normal", likelihood="bernoulli"):
    return helpers.small_vae(prior, likelihood, (1, 16, 16), z_dim=4, hidden=64, components=5)


def test_fit_improves_the_elbo_and_returns_history(sprites):
    train, test = sprites
    vae = small_vae("mog")
    before = float(vae.elbo(test))
    hist = fit(vae, train, val=test, epochs=4, batch_size=64, lr=3e-3, progress=False)
    assert hist["epoch"] == [1, 2, 3, 4]
    assert set(hist) == {"epoch", "train_elbo", "val_elbo", "kl_weight", "time_s"}
    assert hist["train_elbo"][-1] > hist["train_elbo"][0]
    assert hist["val_elbo"][-1] > before + 20  # nats per example on 256-pixel images
    assert not vae.training  # left in eval mode


def test_history_is_in_nats_per_example(sprites):
    """The reported train ELBO is per example: close to vae.elbo on the same data."""
    train, _ = sprites
    vae = small_vae()
    hist = fit(vae, train, epochs=1, batch_size=len(train), lr=1e-9, progress=False)
    assert hist["train_elbo"][0] == pytest.approx(float(vae.elbo(train, num_samples=4)), rel=0.02)


def test_seeded_runs_reproduce_exactly(sprites):
    train, _ = sprites
    states = []
    for _ in range(2):
        pyro.set_rng_seed(7)
        vae = small_vae("flow")
        fit(vae, train, epochs=1, batch_size=64, seed=11, progress=False)
        states.append(vae.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


def test_kl_weight_schedule_warms_up_from_zero():
    assert kl_weight_schedule(0, 10, 1.0, 2) == 0.0
    assert kl_weight_schedule(10, 10, 1.0, 2) == pytest.approx(0.5)
    assert kl_weight_schedule(25, 10, 0.5, 2) == 0.5
    assert kl_weight_schedule(0, 10, 4.0, 0) == 4.0


def test_warmup_and_beta_train_and_are_recorded(sprites):
    train, _ = sprites
    vae = small_vae()
    hist = fit(vae, train, epochs=2, batch_size=128, beta=2.0, warmup_epochs=2, progress=False)
    assert hist["kl_weight"] == pytest.approx([2.0 * 3 / 8, 2.0 * 7 / 8])
    hist = fit(vae, train, epochs=1, batch_size=128, beta=0.0, progress=False)
    assert hist["kl_weight"] == [0.0] and np.isfinite(hist["train_elbo"][0])


def test_fit_accepts_other_pyro_elbos(sprites):
    train, _ = sprites
    vae = small_vae()
    hist = fit(vae, train, epochs=1, batch_size=128, elbo=TraceMeanField_ELBO(), progress=False)
    assert np.isfinite(hist["train_elbo"][0])


def test_fit_accepts_arrays_tensors_and_datasets(sprites):
    train, _ = sprites
    x = train.data[:64]

    class Plain(Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i].numpy(), 0

    for d in (x, x.numpy(), x.numpy().astype(np.float64), Plain(), train):
        vae = small_vae()
        hist = fit(vae, d, epochs=1, batch_size=32, progress=False)
        assert len(hist["train_elbo"]) == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": -1}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"beta": -1.0}, "beta"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"epochs": 1.5}, "epochs"),
        ({"lr": float("inf")}, "lr must be a finite number"),
        ({"beta": float("inf")}, "beta must be a finite number"),
        ({"warmup_epochs": float("inf")}, "warmup_epochs must be a finite number"),
        ({"clip_norm": float("nan")}, "clip_norm"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"seed": "abc"}, "seed must be an integer"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"resume": True}, "resume=True needs checkpoint_dir"),
        ({"device": "gpu"}, "device='gpu' is not a device; use e.g. device='cpu'"),
        ({"device": "mps"} if not torch.backends.mps.is_available() else {"device": "xla"}, "not"),
        pytest.param(
            {"device": "cuda:7"},
            "CUDA is not available here",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with CUDA"),
        ),
    ],
)
def test_bad_arguments_fail_before_training(sprites, kwargs, match):
    train, _ = sprites
    vae = small_vae()
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    with pytest.raises(ValueError, match=match):
        fit(vae, train, progress=False, **kwargs)
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": "1e-3"}, "lr must be a number"),
        ({"elbo": "elbo"}, "elbo must be a Pyro ELBO"),
        ({"optim": torch.optim.Adam}, "optim must be a Pyro optimizer"),
        ({"callbacks": [1]}, "has no on_train_begin"),
        ({"callbacks": Callback()}, "a list of Callback objects"),
    ],
)
def test_bad_types_fail_before_training(sprites, kwargs, match):
    train, _ = sprites
    with pytest.raises(TypeError, match=match):
        fit(small_vae(), train, progress=False, **kwargs)


def test_bad_data_fails_before_training_with_a_fix(sprites):
    train, _ = sprites
    vae = small_vae()
    grey = train.data.float() * 0.5
    with pytest.raises(ValueError, match="ContinuousBernoulli"):
        fit(vae, grey, progress=False)
    with pytest.raises(ValueError, match="empty"):
        fit(vae, train.data[:0], progress=False)
    with pytest.raises(ValueError, match="NaN"):
        fit(vae, train.data.float().index_fill(0, torch.tensor([3]), float("nan")), progress=False)
    with pytest.raises(ValueError, match="input_shape"):
        fit(vae, torch.zeros(10, 1, 8, 8), progress=False)
    with pytest.raises(ValueError, match="NaN"):  # validation data is checked too
        fit(vae, train, val=torch.full((2, 1, 16, 16), float("nan")), progress=False)
    with pytest.raises(TypeError, match="tensor"):
        fit(vae, [[0, 1]], progress=False)
    with pytest.raises(TypeError, match="lr must be a number"):
        fit(vae, train, lr="1e-3", progress=False)
    counts = small_vae(likelihood="poisson")
    with pytest.raises(ValueError, match="non-negative integer"):
        fit(counts, torch.full((4, 1, 16, 16), 1.5), progress=False)
    with pytest.raises(ValueError, match="non-negative integer"):
        fit(counts, torch.full((4, 1, 16, 16), -1.0), progress=False)


def test_custom_prior_and_likelihood_train_without_editing_pyvae(sprites):
    """A user's own prior and likelihood, each a few lines, work in fit/elbo/sample."""

    class LaplacePrior(priors.Prior):
        def __init__(self, z_dim):
            super().__init__(z_dim)
            self.log_scale = torch.nn.Parameter(torch.zeros(z_dim))

        def forward(self, encoder=None):
            return dist.Laplace(self._zeros(), self.log_scale.exp()).to_event(1)

    class StudentT(likelihoods.Likelihood):
        params_per_value = 2  # a location and a scale per value
        support = constraints.real

        def __init__(self, df=4.0):
            super().__init__()
            self.df = df

        def forward(self, raw, event_dim):
            loc, raw_scale = self.split(raw, event_dim)
            scale = F.softplus(raw_scale) + 1e-3
            return dist.StudentT(self.df, loc, scale).to_event(event_dim)

    train, test = sprites
    x = train.data.float()
    vae = VAE.build(
        input_shape=(1, 16, 16),
        z_dim=3,
        prior=LaplacePrior(3),
        likelihood=StudentT(df=3.0),
        net_kwargs={"hidden": (64,)},
    )
    start = vae.prior.log_scale.detach().clone()
    hist = fit(vae, x, val=x[:64], epochs=3, batch_size=64, lr=3e-3, progress=False)
    assert hist["val_elbo"][-1] > hist["val_elbo"][0]
    assert not torch.equal(start, vae.prior.log_scale)  # the prior's parameter was trained
    assert vae.sample(3).shape == (3, 1, 16, 16)
    with pytest.raises(ValueError, match="NaN"):
        fit(vae, x.index_fill(0, torch.tensor([0]), float("nan")), progress=False)


@pytest.mark.filterwarnings("ignore:Encountered NaN")
def test_a_non_finite_loss_stops_training_before_the_update(sprites):
    train, _ = sprites
    vae = small_vae(likelihood="gaussian")
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    huge = train.data.float() * 1e30  # finite data whose log-density overflows
    with pytest.raises(FloatingPointError, match="epoch 1, batch 1.*not updated"):
        fit(vae, huge, progress=False)
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())
    fit(vae, train, epochs=1, progress=False)  # the VAE is still usable


@pytest.mark.parametrize("objective", ["direct", "trace"])
def test_fast_path_and_plain_pyro_svi_agree(sprites, objective):
    """fit's default step (DirectELBO or Trace_ELBO, fused torch Adam over
    vae.parameters()) and pyro.infer.SVI with pyro.optim.Adam give the same loss and the
    same parameters for a fixed seed."""
    from pyro.infer import SVI, Trace_ELBO

    from pyvae.objectives import DirectELBO
    from pyvae.train import default_optimizer, torch_step

    train, _ = sprites
    x = train.data[:64].float()
    fast, plain = small_vae("mog"), small_vae("mog")
    plain.load_state_dict(fast.state_dict())
    adam = default_optimizer(fast, lr=1e-2)
    assert adam.defaults["fused"]  # the CPU has a fused Adam kernel
    elbo = DirectELBO(fast) if objective == "direct" else Trace_ELBO()
    svi = SVI(plain.model, plain.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    for _ in range(3):
        pyro.set_rng_seed(5)
        loss_fast = torch_step(fast, elbo, adam, "test", x, num_data=512)
        pyro.set_rng_seed(5)
        loss_plain = svi.step(x, num_data=512)
        assert loss_fast == pytest.approx(loss_plain, rel=1e-5)
    for (k, a), b in zip(fast.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), k


@pytest.mark.parametrize("clip_norm", [None, 1.0])
def test_a_non_finite_gradient_with_a_finite_loss_is_refused_before_the_update(sprites, clip_norm):
    from pyvae.objectives import DirectELBO
    from pyvae.train import default_optimizer, torch_step

    vae = small_vae()
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    vae.decoder.net[-1].bias.register_hook(lambda g: g * float("nan"))
    adam = default_optimizer(vae, lr=1e-2)
    x = sprites[0].data[:32]
    with pytest.raises(FloatingPointError, match="a gradient became NaN/inf at here"):
        torch_step(vae, DirectELBO(vae), adam, "here", x, num_data=512, clip_norm=clip_norm)
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())
    assert all(p.grad is None or not p.grad.any() for p in vae.parameters())


def test_fit_with_a_pyro_optimizer_uses_svi(sprites):
    train, _ = sprites
    vae = small_vae()
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    hist = fit(vae, train, epochs=1, optim=pyro.optim.ClippedAdam({"lr": 1e-2}), progress=False)
    assert np.isfinite(hist["train_elbo"][0])
    assert any(not torch.equal(before[k], v) for k, v in vae.state_dict().items())
    assert pyro.get_param_store().keys()  # SVI's optimizer saw the parameters by name


@pytest.mark.parametrize("prior", ["normal", "mog", "vamp", "flow"])
@pytest.mark.parametrize("kl_weight", [1.0, 0.3, 0.0])
def test_direct_elbo_equals_trace_elbo(sprites, prior, kl_weight):
    """The traceless fast path gives Trace_ELBO's loss and gradients for the same seed."""
    from pyro.infer import Trace_ELBO

    from pyvae.objectives import DirectELBO

    x = sprites[0].data[:32]
    vae = small_vae(prior)
    losses, grads = [], []
    for objective in (DirectELBO(vae), Trace_ELBO()):
        pyro.set_rng_seed(3)
        losses.append(
            objective.loss_and_grads(vae.model, vae.guide, x, num_data=512, kl_weight=kl_weight)
        )
        grads.append(
            [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in vae.parameters()]
        )
        vae.zero_grad()
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_direct_elbo_is_only_used_where_valid(sprites):
    from pyvae.objectives import DirectELBO

    class Custom(VAE):
        def model(self, x=None, **kwargs):
            return super().model(x, **kwargs)

    vae = small_vae()
    custom = Custom(vae.encoder, vae.decoder, vae.prior, vae.likelihood, vae.input_shape)
    assert DirectELBO.valid_for(vae) and not DirectELBO.valid_for(custom)
    with pytest.raises(ValueError, match="Trace_ELBO"):
        DirectELBO(custom)
    hist = fit(custom, sprites[0], epochs=1, progress=False)  # falls back to Trace_ELBO
    assert np.isfinite(hist["train_elbo"][0])


def test_gradient_clipping_bounds_the_update(sprites):
    """With clip_norm, the gradient norm used for the update is at most clip_norm."""
    from pyvae.objectives import DirectELBO
    from pyvae.train import torch_step

    train, _ = sprites
    vae = small_vae()
    seen = []

    class Spy(torch.optim.SGD):
        def step(self, closure=None):
            norms = [
                p.grad.norm() for g in self.param_groups for p in g["params"] if p.grad is not None
            ]
            seen.append(float(torch.stack(norms).norm()))
            return super().step(closure)

    sgd = Spy(vae.parameters(), lr=1e-3)
    torch_step(vae, DirectELBO(vae), sgd, "t", train.data[:64], num_data=512, clip_norm=0.5)
    assert seen[0] == pytest.approx(0.5, rel=1e-4)  # the raw ELBO gradient is far larger
    hist = fit(vae, train, epochs=1, clip_norm=1.0, progress=False)
    assert np.isfinite(hist["train_elbo"][0])
    with pytest.raises(ValueError, match="clip_norm"):
        fit(vae, train, clip_norm=0, progress=False)


def test_only_pyvaes_own_parts_are_replayed_from_a_cuda_graph():
    from pyvae.cuda_graph import capturable

    class OwnPrior(priors.StandardNormal):  # a user's class, even if it only inherits
        pass

    assert capturable(small_vae()) and capturable(small_vae("mog"))
    assert not capturable(small_vae("flow"))  # Pyro transforms cache the last step
    vae = small_vae()
    vae.prior = OwnPrior(vae.z_dim)
    assert not capturable(vae)

"""The CUDA-graph training step: the same updates as the eager step (CUDA only)."""

import math

import pyro
import pytest
import torch
from helpers import small_vae

from pyvae import fit, priors
from pyvae.cuda_graph import GraphedStep
from pyvae.objectives import DirectELBO
from pyvae.train import default_optimizer, torch_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def pair(prior="normal"):
    """Two equal VAEs on the GPU with their fit optimizers and eager steps."""
    a, b = small_vae(prior).cuda(), small_vae(prior).cuda()
    b.load_state_dict(a.state_dict())
    out = []
    for vae in (a, b):
        adam = default_optimizer(vae, lr=1e-2)
        elbo = DirectELBO(vae)

        def eager(where, x, *, vae=vae, adam=adam, elbo=elbo, **kw):
            return torch_step(vae, elbo, adam, where, x, **kw)

        out.append((vae, adam, elbo, eager))
    return out


def batches(sizes):
    g = torch.Generator().manual_seed(0)
    return [torch.bernoulli(torch.full((n, 1, 8, 8), 0.3), generator=g).cuda() for n in sizes]


@pytest.mark.parametrize("prior", ["normal", "mog"])
def test_replays_give_the_eager_losses_and_parameters(prior):
    (graphed, adam, elbo, eager_a), (plain, _, _, eager_b) = pair(prior)
    step = GraphedStep(graphed, elbo, adam, eager_a, warmup=1)
    sizes = [32, 32, 32, 32, 20, 32, 32]  # a partial batch between replays runs eagerly
    for i, x in enumerate(batches(sizes)):
        weight = 0.5 + 0.1 * i  # the KL weight changes between replays
        pyro.set_rng_seed(i)
        got = step("t", x, num_data=512, kl_weight=weight)
        pyro.set_rng_seed(i)
        want = eager_b("t", x, num_data=512, kl_weight=weight)
        assert got == pytest.approx(want, rel=1e-4), i
    assert step.graph is not None and step.calls == len(sizes)
    for (k, p), q in zip(graphed.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), k


def test_a_nan_gradient_in_a_replay_is_refused_before_the_update():
    (vae, adam, elbo, eager), _ = pair()
    step = GraphedStep(vae, elbo, adam, eager, warmup=1)
    x = batches([32])[0]
    bad = torch.zeros((), device="cuda")  # added to a gradient inside the graph
    vae.decoder.net[-1].bias.register_hook(lambda g: g + bad)
    for _ in range(3):
        step("ok", x, num_data=512, kl_weight=1.0)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    steps_before = [s["step"].clone() for s in adam.state.values()]
    bad.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="a gradient became NaN/inf at epoch 2"):
        step("epoch 2", x, num_data=512, kl_weight=1.0)
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())
    assert all(
        torch.equal(a, s["step"]) for a, s in zip(steps_before, adam.state.values(), strict=True)
    )


def test_a_step_that_cannot_be_captured_runs_eagerly_with_a_warning():
    class Fussy(priors.StandardNormal):
        def forward(self, encoder=None):
            assert float(self._zeros().sum()) == 0  # reads a value: not capturable
            return super().forward(encoder)

    (vae, adam, _, _), _ = pair()
    vae.prior = Fussy(vae.z_dim).cuda()
    elbo = DirectELBO(vae)

    def eager(where, x, **kw):
        return torch_step(vae, elbo, adam, where, x, **kw)

    step = GraphedStep(vae, elbo, adam, eager, warmup=1)
    x = batches([32])[0]
    with pytest.warns(RuntimeWarning, match="without a CUDA graph"):
        step("t", x, num_data=512, kl_weight=1.0)  # the last warm-up step finds out
    assert step.failed and step.graph is None
    losses = [step("t", x, num_data=512, kl_weight=1.0) for _ in range(3)]
    assert all(map(math.isfinite, losses)) and step.graph is None


def test_fit_on_cuda_trains_through_the_graph(monkeypatch):
    import pyvae.train

    made = []

    class Recorded(GraphedStep):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(pyvae.train, "GraphedStep", Recorded)
    pyro.set_rng_seed(0)
    vae = small_vae()
    x = torch.bernoulli(torch.full((600, 1, 8, 8), 0.3))
    hist = fit(vae, x, epochs=3, batch_size=64, device="cuda", progress=False)
    assert vae.device.type == "cuda"
    assert hist["train_elbo"][-1] > hist["train_elbo"][0]
    (step,) = made
    assert step.graph is not None and not step.failed and step.calls == 3 * 10

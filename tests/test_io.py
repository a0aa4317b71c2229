"""Saving and loading: round trips, no overwriting, no unpickling of code."""

import os
import pickle

import pytest
import torch

from pyvae import PRIORS, VAE, likelihoods, load, nets, priors


def small_vae(prior="normal", likelihood="bernoulli"):
    return VAE.build(
        input_shape=(1, 8, 8),
        z_dim=3,
        prior=prior,
        likelihood=likelihood,
        net_kwargs={"hidden": (16,)},
        prior_kwargs={"components": 4} if prior in ("mog", "vamp") else None,
    )


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_round_trip_restores_parameters_and_elbo(tmp_path, prior):
    vae = small_vae(prior, likelihood="gaussian")
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.1 * torch.randn_like(p))  # not the initial values
    path = vae.save(tmp_path / "m.pt")
    loaded = load(path)
    assert loaded is not vae and loaded._pyro_name != vae._pyro_name
    for (k, a), b in zip(vae.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    x = torch.rand(5, 1, 8, 8)
    torch.manual_seed(0)
    e1 = vae.elbo(x, reduction="none")
    torch.manual_seed(0)
    e2 = loaded.elbo(x, reduction="none")
    assert torch.allclose(e1, e2)
    assert not [f for f in os.listdir(tmp_path) if f != "m.pt"]  # no temporary files left


def test_never_overwrites_unless_asked(tmp_path):
    path = tmp_path / "m.pt"
    a, b = small_vae(), small_vae()
    a.save(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        b.save(path)
    assert path.read_bytes() == before
    b.save(path, overwrite=True)
    assert path.read_bytes() != before


def test_custom_parts_load_into_a_template(tmp_path):
    def build():
        return VAE(
            nets.MLPEncoder((4,), 2, hidden=(8,)),
            nets.MLPDecoder(2, (4,), hidden=(8,)),
            priors.MixtureOfGaussians(2, components=3),
            likelihoods.Gaussian(scale="learned"),
        )

    vae = build()
    vae.save(tmp_path / "c.pt")
    with pytest.raises(ValueError, match="vae="):
        load(tmp_path / "c.pt")
    loaded = load(tmp_path / "c.pt", vae=build())
    assert torch.equal(loaded.prior.locs, vae.prior.locs)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {_Payload.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_loading_a_malicious_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    _Payload.marker = marker
    evil = tmp_path / "evil.pt"
    torch.save({"format": "pyvae", "state_dict": _Payload()}, evil)
    with pytest.raises(ValueError, match="not a loadable pyvae file"):
        load(evil)
    evil.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ValueError, match="not a loadable pyvae file"):
        load(evil)
    assert not marker.exists()


def test_load_rejects_other_files(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="not a pyvae model file"):
        load(other)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.pt")

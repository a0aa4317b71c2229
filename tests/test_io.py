"""Saving and loading: round trips, no overwriting, no unpickling of code."""

import os
import pickle

import pyro.distributions as dist
import pytest
import torch
from helpers import small_vae

from pyvae import PRIORS, VAE, likelihoods, load, nets, priors


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


def test_explicit_builtin_parts_rebuild_from_the_file(tmp_path):
    vae = VAE(
        nets.MLPEncoder((4,), 2, hidden=(8,)),
        nets.MLPDecoder(2, (4,), hidden=(8,)),
        priors.MixtureOfGaussians(2, components=3),
        likelihoods.Gaussian(scale="learned", min_scale=0.01),
    )
    vae.save(tmp_path / "c.pt")
    loaded = load(tmp_path / "c.pt")
    assert torch.equal(loaded.prior.locs, vae.prior.locs)
    assert loaded.likelihood.min_scale == 0.01 and loaded.prior.components == 3


class StudentTPrior(priors.Prior):
    def __init__(self, z_dim, df=4.0):
        super().__init__(z_dim)
        self.df = df

    def forward(self, encoder=None):
        zeros = self._zeros()
        return dist.StudentT(self.df, zeros, torch.ones_like(zeros)).to_event(1)


def test_custom_classes_load_when_passed_and_are_named_when_missing(tmp_path):
    vae = VAE.build(
        input_shape=(4,),
        z_dim=2,
        prior=StudentTPrior(2, df=3.0),
        likelihood="gaussian",
        net_kwargs={"hidden": (8,)},
    )
    vae.save(tmp_path / "t.pt")
    with pytest.raises(ValueError, match=r"StudentTPrior.*classes=\[StudentTPrior\]"):
        load(tmp_path / "t.pt")
    loaded = load(tmp_path / "t.pt", classes=[StudentTPrior])
    assert isinstance(loaded.prior, StudentTPrior) and loaded.prior.df == 3.0


def test_plain_module_parts_need_a_template(tmp_path):
    def build():
        return VAE(
            nets.MLPEncoder((4,), 2, hidden=(8,)),
            torch.nn.Linear(2, 4),  # a plain nn.Module: its arguments are not recorded
            priors.StandardNormal(2),
            likelihoods.Gaussian(),
        )

    vae = build()
    vae.save(tmp_path / "p.pt")
    with pytest.raises(ValueError, match="decoder.*vae="):
        load(tmp_path / "p.pt")
    loaded = load(tmp_path / "p.pt", vae=build())
    assert torch.equal(loaded.decoder.weight, vae.decoder.weight)
    with pytest.raises(ValueError, match="does not fit"):
        load(tmp_path / "p.pt", vae=small_vae())


def test_corrupt_truncated_and_future_files_are_refused(tmp_path):
    path = small_vae().save(tmp_path / "m.pt")
    raw = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated, corrupt"):
        load(tmp_path / "cut.pt")
    (tmp_path / "noise.pt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="truncated, corrupt"):
        load(tmp_path / "noise.pt")
    payload = torch.load(path, weights_only=True)
    payload["version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="format version 99"):
        load(tmp_path / "future.pt")
    with pytest.raises(IsADirectoryError, match="folder"):
        small_vae().save(tmp_path)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {_Payload.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_loading_a_malicious_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    _Payload.marker = marker
    evil = tmp_path / "evil.pt"
    torch.save({"format": "pyvae", "state_dict": _Payload()}, evil)
    with pytest.raises(ValueError, match="not a loadable pyvae model file"):
        load(evil)
    evil.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ValueError, match="not a loadable pyvae model file"):
        load(evil)
    assert not marker.exists()


def test_load_rejects_other_files(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="not a pyvae model file"):
        load(other)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.pt")


class GatedVAE(VAE):
    """A VAE subclass with an extra part and a plain-data option, as variants have."""

    parts = (*VAE.parts, "gate")

    def __init__(self, encoder, decoder, prior, likelihood, gate, input_shape=None, width=1.0):
        super().__init__(encoder, decoder, prior, likelihood, input_shape)
        self.gate = gate
        self.width = width

    @property
    def options(self):
        return {"width": self.width}


def test_vae_subclasses_with_extra_parts_and_options_round_trip(tmp_path):
    base = small_vae()
    vae = GatedVAE(
        base.encoder, base.decoder, base.prior, base.likelihood, nets.MLPEncoder((3,), 2), width=2.5
    )
    path = vae.save(tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"classes=\[GatedVAE\]"):
        load(path)
    loaded = load(path, classes=[GatedVAE])
    assert type(loaded) is GatedVAE and loaded.width == 2.5
    assert loaded.config == vae.config
    for (k, a), b in zip(vae.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    payload = torch.load(path, weights_only=True)
    payload["config"]["class"] = "pyvae.nets.MLPEncoder"  # a known class, but not a VAE
    torch.save(payload, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="not a pyvae.VAE class"):
        load(tmp_path / "odd.pt")


def test_files_round_trip_arrays_bytes_and_payloads(tmp_path):
    import numpy as np

    from pyvae import _files

    a = np.arange(6, dtype=np.int16).reshape(2, 3)
    assert _files.write_array(tmp_path / "a.npy", a) == tmp_path / "a.npy"
    assert np.array_equal(_files.read_array(tmp_path / "a.npy"), a)
    _files.write_arrays(tmp_path / "c.npz", {"values": a, "bits": 4})
    assert np.array_equal(_files.read_array(tmp_path / "c.npz", "values"), a)
    assert int(_files.read_array(tmp_path / "c.npz", "bits")) == 4
    with pytest.raises(ValueError, match=r"\['values', 'bits'\]"):
        _files.read_array(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="no array 'x'"):
        _files.read_array(tmp_path / "c.npz", "x")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _files.write_array(tmp_path / "a.npy", a + 1)
    _files.write_array(tmp_path / "a.npy", a + 1, overwrite=True)
    assert np.array_equal(_files.read_array(tmp_path / "a.npy"), a + 1)
    np.save(tmp_path / "obj.npy", np.array([{"code": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        _files.read_array(tmp_path / "obj.npy")

    _files.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"

    _files.write_payload(tmp_path / "p.pt", "thing", 3, {"t": torch.ones(2)})
    payload = _files.read_payload(tmp_path / "p.pt", "thing", 3, "thing file")
    assert payload["format"] == "thing" and torch.equal(payload["t"], torch.ones(2))
    with pytest.raises(ValueError, match="not a pyvae other file"):
        _files.read_payload(tmp_path / "p.pt", "other", 3, "other file")
    with pytest.raises(ValueError, match="thing file format version 3, this pyvae reads version 4"):
        _files.read_payload(tmp_path / "p.pt", "thing", 4, "thing file")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _files.read_payload(tmp_path / "none.pt", "thing", 3, "thing file")
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.bin", "c.npz", "obj.npy", "p.pt"]


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    from pyvae.io import atomic_write  # still importable from its old home

    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def half_then_fail(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail, overwrite=True)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]

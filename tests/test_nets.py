"""Tests for pyvae.nets: output shapes, batch dims, positive scales, shape errors, linearity."""

import pytest
import torch
from torch import nn

from pyvae import nets

Z = 4
IMAGE_SHAPES = [(1, 28, 28), (3, 32, 32), (1, 64, 64), (3, 17, 23)]


def conv_channels(shape):
    """Small channel lists (fast); two layers for images too small for three."""
    return ((4, 8), (8, 4)) if min(shape[1:]) < 8 else ((4, 8, 8), (8, 8, 4))


def make_encoder(kind, shape):
    if kind == "mlp":
        return nets.MLPEncoder(shape, Z, hidden=(16,))
    return nets.ConvEncoder(shape, Z, channels=conv_channels(shape)[0], hidden=16)


def make_decoder(kind, out_shape):
    if kind == "mlp":
        return nets.MLPDecoder(Z, out_shape, hidden=(16,))
    return nets.ConvDecoder(Z, out_shape, channels=conv_channels(out_shape)[1], hidden=16)


CASES = [("mlp", (20,)), ("mlp", (1, 28, 28)), ("mlp", (3, 32, 32))] + [
    ("conv", s) for s in [*IMAGE_SHAPES, (1, 5, 7)]
]
CASE_IDS = [f"{k}-{'x'.join(map(str, s))}" for k, s in CASES]


# --------------------------------------------------------------------------- encoders


@pytest.mark.parametrize("kind, shape", CASES, ids=CASE_IDS)
def test_encoder_output_shapes(kind, shape):
    enc = make_encoder(kind, shape)
    assert enc.input_shape == shape
    for batch in [(2,), (4, 3), ()]:
        loc, scale = enc(torch.rand(*batch, *shape))
        assert loc.shape == (*batch, Z)
        assert scale.shape == (*batch, Z)


@pytest.mark.parametrize("kind, shape", CASES, ids=CASE_IDS)
def test_encoder_extra_batch_dims_match_flat_batch(kind, shape):
    """Encoding a (4, 3, *shape) batch gives the same numbers as the flat (12, *shape) one."""
    enc = make_encoder(kind, shape)
    x = torch.rand(4, 3, *shape)
    loc, scale = enc(x)
    flat_loc, flat_scale = enc(x.reshape(12, *shape))
    torch.testing.assert_close(loc.reshape(12, Z), flat_loc)
    torch.testing.assert_close(scale.reshape(12, Z), flat_scale)


@pytest.mark.parametrize("kind, shape", [CASES[0], CASES[3]], ids=[CASE_IDS[0], CASE_IDS[3]])
def test_encoder_scale_is_strictly_positive(kind, shape):
    """Even for extreme inputs the posterior scale stays >= MIN_SCALE > 0."""
    enc = make_encoder(kind, shape)
    x = 1e4 * torch.randn(64, *shape)
    _, scale = enc(x)
    assert (scale >= nets.MIN_SCALE).all()
    assert nets.MIN_SCALE > 0


@pytest.mark.parametrize(
    "kind, shape, bad",
    [
        ("mlp", (20,), (2, 21)),
        ("mlp", (1, 28, 28), (2, 784)),
        ("conv", (1, 28, 28), (2, 1, 28, 27)),
        ("conv", (1, 28, 28), (2, 3, 28, 28)),
        ("conv", (1, 28, 28), (28, 28)),
    ],
)
def test_encoder_wrong_input_shape_raises_with_expected_shape(kind, shape, bad):
    enc = make_encoder(kind, shape)
    with pytest.raises(ValueError, match=", ".join(map(str, shape))):
        enc(torch.rand(*bad))


@pytest.mark.parametrize("shape", [(20,), (4, 20)])
def test_conv_encoder_on_non_image_shape_suggests_mlp(shape):
    with pytest.raises(ValueError, match="mlp"):
        nets.ConvEncoder(shape, Z)


def test_conv_decoder_on_non_image_shape_raises():
    with pytest.raises(ValueError, match="C, H, W"):
        nets.ConvDecoder(Z, (20,))


@pytest.mark.parametrize("make", [nets.ConvEncoder, lambda s, z: nets.ConvDecoder(z, s)])
def test_conv_nets_refuse_images_too_small_for_their_layers(make):
    with pytest.raises(ValueError, match="too small"):
        make((1, 5, 7), Z)  # 3 stride-2 layers: 5 -> 2 -> 1 -> 0


# --------------------------------------------------------------------------- decoders


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("kind, shape", CASES, ids=CASE_IDS)
def test_decoder_output_shapes(kind, shape, k):
    out_shape = nets.decoder_output_shape(shape, k)
    assert out_shape == (k * shape[0], *shape[1:])
    dec = make_decoder(kind, out_shape)
    for batch in [(2,), (4, 3), ()]:
        assert dec(torch.randn(*batch, Z)).shape == (*batch, *out_shape)


@pytest.mark.parametrize("kind, shape", CASES, ids=CASE_IDS)
def test_decoder_extra_batch_dims_match_flat_batch(kind, shape):
    dec = make_decoder(kind, nets.decoder_output_shape(shape, 2))
    z = torch.randn(4, 3, Z)
    out = dec(z)
    torch.testing.assert_close(out.reshape(12, *out.shape[2:]), dec(z.reshape(12, Z)))


def test_decoder_output_shape_accepts_any_sequence():
    assert nets.decoder_output_shape([3, 5], 2) == (6, 5)
    assert nets.decoder_output_shape(torch.Size([1, 8, 9]), 1) == (1, 8, 9)


# --------------------------------------------------------------------------- linear nets


def test_mlp_decoder_without_hidden_layers_is_affine():
    """hidden=() gives a single linear layer: f(a + b) - f(b) == f(a) - f(0)."""
    dec = nets.MLPDecoder(Z, (2, 3, 3), hidden=())
    assert [type(m) for m in dec.modules() if type(m) is not nn.Sequential][1:] == [nn.Linear]
    a, b, zero = torch.randn(Z), torch.randn(Z), torch.zeros(Z)
    torch.testing.assert_close(dec(a + b) - dec(b), dec(a) - dec(zero), atol=1e-5, rtol=1e-5)
    # and not merely constant
    assert not torch.allclose(dec(a), dec(zero))


def test_mlp_encoder_without_hidden_layers_has_affine_loc():
    enc = nets.MLPEncoder((20,), Z, hidden=())
    a, b, zero = torch.randn(20), torch.randn(20), torch.zeros(20)
    loc = lambda x: enc(x)[0]  # noqa: E731
    torch.testing.assert_close(loc(a + b) - loc(b), loc(a) - loc(zero), atol=1e-5, rtol=1e-5)


def test_mlp_with_hidden_layers_is_not_affine():
    """The affinity check above can fail: a ReLU decoder is not affine."""
    dec = nets.MLPDecoder(Z, (20,), hidden=(16,))
    a, b, zero = 3 * torch.randn(Z), 3 * torch.randn(Z), torch.zeros(Z)
    assert not torch.allclose(dec(a + b) - dec(b), dec(a) - dec(zero), atol=1e-4)


def test_conv_nets_with_default_settings_on_odd_image_size():
    shape = (3, 17, 23)
    enc = nets.ConvEncoder(shape, Z)
    dec = nets.ConvDecoder(Z, nets.decoder_output_shape(shape, 2))
    loc, scale = enc(torch.rand(2, *shape))
    assert loc.shape == scale.shape == (2, Z)
    assert dec(loc).shape == (2, 6, 17, 23)


def test_activations_by_name_save_and_load(tmp_path):
    import pyvae
    from pyvae import VAE

    vae = VAE.build((1, 8, 8), z_dim=2, net_kwargs={"hidden": (8,), "activation": "softplus"})
    assert isinstance(vae.encoder.net[1], nn.Softplus) and isinstance(
        vae.decoder.net[1], nn.Softplus
    )
    vae.save(tmp_path / "m.pt")
    loaded = pyvae.load(tmp_path / "m.pt")
    assert isinstance(loaded.decoder.net[1], nn.Softplus)
    with pytest.raises(ValueError, match="unknown activation 'softmax'; valid names: elu"):
        nets.MLPEncoder((4,), 2, activation="softmax")


def test_gated_layers_are_a_times_sigmoid_b_of_a_twice_as_wide_linear_layer():
    """activation="glu": Tomczak & Welling's gated dense layers, h = (W x) * sigmoid(V x)."""
    enc = nets.MLPEncoder((1, 4, 4), 3, hidden=(5, 6), activation="glu")
    first, gate, second = enc.net[0], enc.net[1], enc.net[2]
    assert (first.in_features, first.out_features) == (16, 10) and isinstance(gate, nn.GLU)
    assert (second.in_features, second.out_features) == (5, 12)
    assert (enc.net[-1].in_features, enc.net[-1].out_features) == (6, 6)  # no gate: loc, scale
    x = torch.rand(7, 16)
    w, v = first.weight.split(5), first.bias.split(5)
    expected = (x @ w[0].T + v[0]) * torch.sigmoid(x @ w[1].T + v[1])
    torch.testing.assert_close(enc.net[:2](x), expected)
    loc, scale = enc(x.reshape(7, 1, 4, 4))
    assert loc.shape == scale.shape == (7, 3) and bool((scale > 0).all())


@pytest.mark.parametrize("hidden", [(0,), (8, -1), (2.5,), (True,)])
def test_hidden_sizes_must_be_positive_integers(hidden):
    with pytest.raises(ValueError, match="hidden layer sizes must be integers >= 1"):
        nets.MLPDecoder(2, (4,), hidden=hidden)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_a_channels_last_shape_is_called_so(shape):
    """Not 'images of 28x1 are too small': the fix, in the message."""
    from pyvae import VAE

    first = (shape[2], shape[0], shape[1])
    with pytest.raises(ValueError, match="looks channels-last") as e:
        VAE.build(input_shape=shape, z_dim=2, net="conv")
    assert f"input_shape={first}" in str(e.value) and "x.permute(0, 3, 1, 2)" in str(e.value)

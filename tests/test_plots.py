"""pyvae.plots: every figure function, for image (grey and RGB) and vector data."""

import io
import math
import warnings

import matplotlib.image
import numpy as np
import pyro
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pyvae import VAE, data, plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The known latent_space warning (see test_latent_space_without_labels_does_not_warn).


# --------------------------------------------------------------------------- helpers
def panels(fig):
    """The axes of ``fig`` that are not colorbars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def colorbars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def pixels(fig) -> np.ndarray:
    """The figure rendered by Agg, as an (H, W, 3) uint8 array."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3]


def dark_fraction(fig) -> float:
    return float((pixels(fig).mean(-1) < 64).mean())


def check_figure(fig, n_panels: int, n_colorbars: int = 0) -> None:
    """A Figure that renders to a non-trivial PNG, with the expected axes."""
    assert isinstance(fig, Figure)
    assert len(panels(fig)) == n_panels
    assert len(colorbars(fig)) == n_colorbars
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    png = buf.getvalue()
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) > 1000
    image = matplotlib.image.imread(io.BytesIO(png))
    assert image.ndim == 3 and min(image.shape[:2]) > 50
    assert image[..., :3].std() > 0.01  # something is drawn, not a blank page


def grid_array(ax) -> np.ndarray:
    """The array drawn by the (single) imshow of ``ax``."""
    (image,) = ax.images
    return np.asarray(image.get_array())


def spy_decode(monkeypatch, vae) -> list:
    """Record the latent codes ``vae.decode`` is called with."""
    calls = []
    decode = vae.decode

    def spy(z):
        calls.append(torch.as_tensor(z).detach().clone().cpu())
        return decode(z)

    monkeypatch.setattr(vae, "decode", spy)
    return calls


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sprites():
    train, _ = data.load("sprites", n_train=64, n_test=32, size=16)
    return train


@pytest.fixture
def image_vae():
    return VAE.build(input_shape=(1, 16, 16), z_dim=3, net_kwargs={"hidden": (16,)})


@pytest.fixture
def vectors():
    return torch.randn(40, 12, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def vector_vae():
    return VAE.build(input_shape=(12,), z_dim=2, likelihood="gaussian", net_kwargs={"hidden": (8,)})


# One case per kind of data: (vae, data, panels drawn with colorbars?)
@pytest.fixture(params=["grey", "rgb", "vector"])
def case(request, sprites, vectors):
    if request.param == "grey":
        vae = VAE.build(input_shape=(1, 16, 16), z_dim=3, net_kwargs={"hidden": (16,)})
        return vae, sprites, False
    if request.param == "rgb":
        vae = VAE.build(
            input_shape=(3, 8, 8),
            z_dim=2,
            likelihood="continuous_bernoulli",
            net_kwargs={"hidden": (16,)},
        )
        x = torch.rand(20, 3, 8, 8, generator=torch.Generator().manual_seed(2))
        return vae, x, False
    vae = VAE.build(input_shape=(12,), z_dim=2, likelihood="gaussian", net_kwargs={"hidden": (8,)})
    return vae, vectors, True


def first_two(x):
    x = data.as_tensor(x)
    return x[0], x[1]


# --------------------------------------------------------------------------- every function
def test_image_grid(case):
    _, x, heatmap = case
    check_figure(plots.image_grid(x, title="items"), 1, int(heatmap))


def test_samples_and_samples_figure(case):
    vae, _, heatmap = case
    check_figure(plots.samples(vae, n=9), 1, int(heatmap))
    check_figure(plots.samples(vae, n=4, mean=False), 1, int(heatmap))
    check_figure(plots.samples_figure(vae.sample(5), title="mine"), 1, int(heatmap))


def test_reconstructions(case):
    vae, x, heatmap = case
    fig = plots.reconstructions(vae, x, n=6)
    # images: one grid (data over reconstructions); vectors: two heatmaps side by side
    check_figure(fig, 2 if heatmap else 1, 2 if heatmap else 0)


def test_reconstructions_and_samples(case):
    vae, x, heatmap = case
    check_figure(plots.reconstructions_and_samples(vae, x, n=4), 2, 2 if heatmap else 0)


def test_traversal(case):
    vae, x, heatmap = case
    check_figure(plots.traversal(vae, x, steps=5), 1, int(heatmap))
    check_figure(plots.traversal(vae, None, dims=[0], steps=3), 1, int(heatmap))


@pytest.mark.parametrize("kind", ["linear", "spherical"])
def test_interpolation(case, kind):
    vae, x, heatmap = case
    x1, x2 = first_two(x)
    fig = plots.interpolation(vae, x1, x2, steps=6, kind=kind)
    check_figure(fig, 1, int(heatmap))
    assert panels(fig)[0].get_title() == f"{kind} interpolation"


def test_latent_space_without_labels(case):
    vae, x, _ = case
    fig = plots.latent_space(vae, data.as_tensor(x))  # a tensor: no targets
    check_figure(fig, 1, 0)
    assert panels(fig)[0].get_title() == "latent space"


def test_history_with_and_without_validation():
    hist = {"epoch": [1, 2, 3], "train_elbo": [-9.0, -7.0, -6.5], "kl_weight": [1.0] * 3}
    fig = plots.history(hist)
    check_figure(fig, 1)
    (ax,) = fig.axes
    assert len(ax.lines) == 1
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [-9.0, -7.0, -6.5])

    fig = plots.history({**hist, "val_elbo": [-9.5, -8.0, -7.5]})
    check_figure(fig, 1)
    (ax,) = fig.axes
    assert len(ax.lines) == 2
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [-9.5, -8.0, -7.5])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "train (KL-weighted)",
        "validation",
    ]


# --------------------------------------------------------------------------- no pyplot, Jupyter
def test_figures_do_not_register_with_pyplot_and_show_as_png(image_vae, sprites):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    figures = [
        plots.image_grid(torch.rand(4, 1, 8, 8)),
        plots.samples(image_vae, n=4),
        plots.reconstructions(image_vae, sprites, n=4),
        plots.traversal(image_vae, sprites, dims=2, steps=3),
        plots.latent_space(image_vae, sprites),
        plots.history({"epoch": [1], "train_elbo": [-1.0]}),
    ]
    assert plt.get_fignums() == before  # [] unless another test left pyplot figures open
    for fig in figures:
        png = fig._repr_png_()
        assert isinstance(png, bytes) and png.startswith(PNG_SIGNATURE)
    assert plt.get_fignums() == before


# --------------------------------------------------------------------------- image_grid
def test_image_grid_of_ones_is_mostly_white_and_of_zeros_has_dark_pixels():
    ones = plots.image_grid(torch.ones(16, 1, 8, 8))
    zeros = plots.image_grid(torch.zeros(16, 1, 8, 8))
    assert dark_fraction(ones) < 0.01
    assert pixels(ones).mean() > 200
    assert dark_fraction(zeros) > 0.1


def test_image_grid_rescales_8_bit_images():
    white = plots.image_grid(torch.full((4, 3, 8, 8), 255, dtype=torch.uint8))
    assert grid_array(white.axes[0]).max() == pytest.approx(1.0)
    assert dark_fraction(white) < 0.01


def test_image_grid_draws_binary_integer_images_as_black_and_white():
    # binary data stored as uint8 {0, 1} (sprites, binarized MNIST) or bool, not 0..255
    for dtype in (torch.uint8, torch.int64, torch.bool):
        ones = plots.image_grid(torch.ones(16, 1, 8, 8, dtype=dtype))
        assert grid_array(ones.axes[0]).max() == pytest.approx(1.0)
        assert dark_fraction(ones) < 0.01
    dark = plots.image_grid(torch.full((1, 1, 8, 8), 2, dtype=torch.uint8))  # 2 of 255
    assert grid_array(dark.axes[0])[2:10, 2:10].max() == pytest.approx(2 / 255)


def test_image_grid_of_floats_above_one_is_clipped_not_drawn_black():
    for overshoot in (1.02, 2.5):  # e.g. a Gaussian decoder's samples
        fig = plots.image_grid(torch.full((16, 1, 8, 8), overshoot))
        assert dark_fraction(fig) < 0.01
    bytes_as_floats = plots.image_grid(torch.full((1, 1, 8, 8), 51.0))  # 8-bit data, .float()
    assert grid_array(bytes_as_floats.axes[0])[2:10, 2:10].max() == pytest.approx(0.2)


def test_image_grid_layout_follows_nrow():
    fig = plots.image_grid(torch.rand(10, 1, 8, 8), nrow=5)
    # make_grid: 2 rows x 5 columns of 8x8 images with 2 pixels of padding
    assert grid_array(fig.axes[0]).shape == (2 * 10 + 2, 5 * 10 + 2, 3)


def test_image_grid_draws_vectors_as_heatmaps_of_the_values():
    x = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    fig = plots.image_grid(x)
    check_figure(fig, 1, 1)
    np.testing.assert_allclose(grid_array(panels(fig)[0]), x)
    assert panels(fig)[0].get_xlabel() == "feature"
    # non-image items (here 2 channels) are flattened, one row per item
    fig = plots.image_grid(torch.rand(3, 2, 4, 4))
    assert grid_array(panels(fig)[0]).shape == (3, 32)


def test_image_grid_into_given_axes():
    fig = Figure()
    ax = fig.subplots()
    out = plots.image_grid(torch.rand(4, 1, 8, 8), ax=ax, title="given")
    assert out is fig
    assert fig.axes == [ax] and ax.get_title() == "given"


def test_image_grid_refuses_a_single_vector():
    with pytest.raises(ValueError, match="need items"):
        plots.image_grid(torch.rand(12))


def test_samples_figure_is_a_square_grid():
    fig = plots.samples_figure(torch.rand(10, 1, 8, 8))
    assert grid_array(fig.axes[0]).shape == (3 * 10 + 2, 4 * 10 + 2, 3)  # ceil(sqrt(10)) = 4
    assert fig.axes[0].get_title() == "samples from the prior"


# --------------------------------------------------------------------------- reconstructions
def test_reconstructions_show_data_over_reconstructions(image_vae, sprites):
    fig = plots.reconstructions(image_vae, sprites, n=5)
    grid = grid_array(fig.axes[0])
    assert grid.shape == (2 * 18 + 2, 5 * 18 + 2, 3)  # one row of data, one of reconstructions
    top = torch.as_tensor(grid[2:18, 2:18, 0])
    torch.testing.assert_close(top, sprites.data[0, 0].float())


def test_reconstructions_of_vectors_show_the_data_and_the_reconstructions(vector_vae, vectors):
    x = 3 * vectors[:6]
    fig = plots.reconstructions(vector_vae, x, n=6)
    left, right = panels(fig)
    np.testing.assert_allclose(grid_array(left), x.numpy())
    np.testing.assert_allclose(grid_array(right), vector_vae.reconstruct(x).numpy(), atol=1e-6)


def test_reconstructions_of_vectors_share_one_colour_scale(vector_vae, vectors):
    x = 3 * vectors[:6]
    left, right = panels(plots.reconstructions(vector_vae, x, n=6))
    both = torch.cat([x.flatten(), vector_vae.reconstruct(x).flatten()])
    expected = pytest.approx((float(both.min()), float(both.max())))
    assert left.images[0].get_clim() == expected and right.images[0].get_clim() == expected


@pytest.mark.parametrize("n", [4, 9, 64])
def test_a_heatmap_figure_keeps_its_axis_labels_inside(n, vectors):
    """Samples of count (or tabular) data, saved by a plain fig.savefig: the axis labels
    lie inside the figure, not cut off at its edge."""
    counts = torch.poisson(torch.full((n, 6), 3.0))
    fig = plots.samples_figure(counts)
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = panels(fig)
    inside = fig.bbox
    for label in (ax.xaxis.label, ax.yaxis.label, ax.title):
        box = label.get_window_extent(renderer)
        assert box.y0 >= inside.y0 and box.x0 >= inside.x0, label.get_text()
        assert box.y1 <= inside.y1 and box.x1 <= inside.x1, label.get_text()


def test_reconstructions_and_samples_draw_vector_data_unscaled(vector_vae, vectors):
    x = 3 * vectors[:6]
    assert float(vector_vae.reconstruct(x).max()) <= 1  # an untrained decoder: small means
    fig = plots.reconstructions_and_samples(vector_vae, x, n=6)
    np.testing.assert_allclose(grid_array(panels(fig)[0])[:6], x.numpy(), atol=1e-6)


def test_reconstructions_and_samples_layout(image_vae, sprites):
    fig = plots.reconstructions_and_samples(image_vae, sprites, n=4)
    left, right = fig.axes
    assert grid_array(left).shape == (2 * 18 + 2, 4 * 18 + 2, 3)
    assert grid_array(right).shape == (8 * 18 + 2, 8 * 18 + 2, 3)  # 64 samples, 8 per row
    assert right.get_title() == "samples from the prior"


def test_reconstructions_and_samples_with_fewer_items_than_n(image_vae, sprites):
    fig = plots.reconstructions_and_samples(image_vae, sprites.data[:3], n=8)
    assert grid_array(fig.axes[0]).shape[0] == 2 * 18 + 2  # data row over reconstruction row


# --------------------------------------------------------------------------- traversal
def test_traversal_honours_a_list_of_dims(monkeypatch):
    vae = VAE.build(input_shape=(12,), z_dim=3, likelihood="gaussian", net_kwargs={"hidden": (8,)})
    calls = spy_decode(monkeypatch, vae)
    fig = plots.traversal(vae, dims=[2, 0], steps=5, span=2.0)
    (z,) = calls
    values = torch.linspace(-2, 2, 5)
    expected = torch.zeros(10, 3)
    expected[:5, 2] = values
    expected[5:, 0] = values
    torch.testing.assert_close(z, expected)
    assert "dims [2, 0]" in panels(fig)[0].get_title()
    assert grid_array(panels(fig)[0]).shape == (10, 12)  # one heatmap row per code


def test_traversal_starts_from_the_first_items_code(monkeypatch, image_vae, sprites):
    calls = spy_decode(monkeypatch, image_vae)
    fig = plots.traversal(image_vae, sprites, dims=[1], steps=4, span=1.0)
    (z,) = calls
    base = image_vae.encode(sprites.data[:1]).mean[0]
    torch.testing.assert_close(z[:, 1], torch.linspace(-1, 1, 4))
    torch.testing.assert_close(z[:, [0, 2]], base[[0, 2]].expand(4, 2))
    assert grid_array(fig.axes[0]).shape == (18 + 2, 4 * 18 + 2, 3)  # one row of 4 images


def test_traversal_with_a_count_picks_the_most_active_dims(monkeypatch, image_vae, sprites):
    calls = spy_decode(monkeypatch, image_vae)
    fig = plots.traversal(image_vae, sprites, dims=2, steps=3)
    variance = image_vae.encode(sprites).mean.var(0)
    expected = variance.argsort(descending=True)[:2].tolist()
    assert f"dims {expected}" in fig.axes[0].get_title()
    (z,) = calls
    assert z.shape == (6, 3)
    # more dims asked than exist: all of them
    plots.traversal(image_vae, sprites, dims=10, steps=2)
    assert calls[1].shape == (3 * 2, 3)


@pytest.mark.parametrize("dims", [0, [], [3], [0, 3], [-1]])
def test_traversal_refuses_invalid_dims(image_vae, sprites, dims):
    with pytest.raises(ValueError, match="dims must be"):
        plots.traversal(image_vae, sprites, dims=dims)
    with pytest.raises(ValueError, match="dims must be"):
        plots.traversal(image_vae, None, dims=dims)


def test_traversal_refuses_a_negative_count_of_dims(image_vae, sprites):
    with pytest.raises(ValueError):
        plots.traversal(image_vae, sprites, dims=-1)


# --------------------------------------------------------------------------- interpolation, slerp
@pytest.mark.parametrize("kind", ["linear", "spherical"])
def test_interpolation_runs_between_the_posterior_means(monkeypatch, vector_vae, vectors, kind):
    calls = spy_decode(monkeypatch, vector_vae)
    plots.interpolation(vector_vae, vectors[0], vectors[1], steps=7, kind=kind)
    (z,) = calls
    za, zb = vector_vae.encode(vectors[:2]).mean
    assert z.shape == (7, 2)
    torch.testing.assert_close(z[0], za, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(z[-1], zb, atol=1e-5, rtol=1e-5)
    t = torch.linspace(0, 1, 7)[:, None]
    linear = za + t * (zb - za)
    if kind == "linear":
        torch.testing.assert_close(z, linear)
    else:
        torch.testing.assert_close(z, plots.slerp(za, zb, torch.linspace(0, 1, 7)))
        assert not torch.allclose(z[3], linear[3], atol=1e-4)


def test_interpolation_refuses_an_unknown_kind(vector_vae, vectors):
    with pytest.raises(ValueError, match="kind must be"):
        plots.interpolation(vector_vae, vectors[0], vectors[1], kind="cubic")


def test_slerp_endpoints_are_the_inputs():
    a, b = torch.tensor([1.0, 2.0, -0.5]), torch.tensor([-3.0, 0.5, 2.0])
    out = plots.slerp(a, b, torch.linspace(0, 1, 5))
    assert out.shape == (5, 3)
    torch.testing.assert_close(out[0], a)
    torch.testing.assert_close(out[-1], b)


def test_slerp_keeps_the_norm_of_equal_norm_inputs():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, generator=g), torch.randn(8, generator=g)
    b = b * a.norm() / b.norm()
    out = plots.slerp(a, b, torch.linspace(0, 1, 11))
    torch.testing.assert_close(out.norm(dim=1), a.norm().expand(11))
    # on the great circle: the angle to a grows linearly with t
    cos = (out @ a) / (out.norm(dim=1) * a.norm())
    omega = torch.arccos(torch.dot(a, b) / a.norm() ** 2)
    torch.testing.assert_close(torch.arccos(cos.clamp(-1, 1)), omega * torch.linspace(0, 1, 11))


def test_slerp_of_orthogonal_unit_vectors_is_on_the_unit_circle():
    out = plots.slerp(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.5]))
    torch.testing.assert_close(out[0], torch.tensor([math.sqrt(0.5), math.sqrt(0.5)]))


@pytest.mark.parametrize(
    "b",
    [
        torch.tensor([1.0, 2.0, 3.0]),  # identical
        torch.tensor([2.0, 4.0, 6.0]),  # parallel, another norm
        torch.tensor([1.0, 2.0, 3.0 + 1e-6]),  # nearly parallel
        torch.tensor([-1.0, -2.0, -3.0]),  # opposite
        torch.tensor([0.0, 0.0, 0.0]),  # zero
    ],
)
def test_slerp_of_degenerate_pairs_is_finite(b):
    a = torch.tensor([1.0, 2.0, 3.0])
    out = plots.slerp(a, b, torch.linspace(0, 1, 9))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], a, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out[-1], b, atol=1e-4, rtol=1e-4)
    if torch.dot(a, b) > 0:  # (nearly) parallel: the straight line
        linear = a + torch.linspace(0, 1, 9)[:, None] * (b - a)
        torch.testing.assert_close(out, linear, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------- latent_space
def test_latent_space_labels_default_to_targets_and_factor_names(image_vae, sprites):
    fig = plots.latent_space(image_vae, sprites)
    check_figure(fig, 5, 5)
    titles = [ax.get_title() for ax in panels(fig)]
    for title, name in zip(titles, data.SPRITE_FACTORS, strict=True):
        assert name in title
    for ax, column in zip(panels(fig), sprites.targets.T, strict=True):
        np.testing.assert_allclose(ax.collections[0].get_array(), column.numpy())


def test_latent_space_with_one_label_per_item(vector_vae, vectors):
    labels = torch.arange(len(vectors)) % 3
    fig = plots.latent_space(vector_vae, vectors, labels=labels)
    check_figure(fig, 1, 1)
    assert panels(fig)[0].get_title() == "latent space: label"
    np.testing.assert_array_equal(panels(fig)[0].collections[0].get_array(), labels.numpy())


def test_latent_space_with_label_columns_and_names(vector_vae, vectors):
    labels = np.random.default_rng(0).normal(size=(len(vectors), 3))
    fig = plots.latent_space(vector_vae, vectors, labels=labels, names=["a", "b", "c"])
    assert [ax.get_title() for ax in panels(fig)] == [f"latent space: {n}" for n in "abc"]
    assert len(colorbars(fig)) == 3
    fig = plots.latent_space(vector_vae, vectors, labels=labels)  # no names
    assert [ax.get_title() for ax in panels(fig)] == [f"latent space: label {i}" for i in range(3)]


def test_latent_space_of_a_one_dimensional_latent(vectors):
    vae = VAE.build(input_shape=(12,), z_dim=1, likelihood="gaussian", net_kwargs={"hidden": (8,)})
    fig = plots.latent_space(vae, vectors)
    check_figure(fig, 1)
    (ax,) = fig.axes
    points = ax.collections[0].get_offsets()
    np.testing.assert_allclose(points[:, 0], vae.encode(vectors).mean[:, 0].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(points[:, 1], 0)
    assert ax.get_xlabel() == "z_0"


def test_latent_space_of_a_two_dimensional_latent(vector_vae, vectors):
    fig = plots.latent_space(vector_vae, vectors)
    (ax,) = fig.axes
    points = np.asarray(ax.collections[0].get_offsets())
    np.testing.assert_allclose(points, vector_vae.encode(vectors).mean.numpy(), rtol=1e-6)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z_0", "z_1")


def test_latent_space_projects_larger_latents_on_principal_components(image_vae, sprites):
    fig = plots.latent_space(image_vae, sprites.data)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "principal component 1"
    points = np.asarray(ax.collections[0].get_offsets())
    z = image_vae.encode(sprites).mean.double().numpy()
    zc = z - z.mean(0)
    _, _, vt = np.linalg.svd(zc, full_matrices=False)
    np.testing.assert_allclose(np.abs(points), np.abs(zc @ vt[:2].T), atol=1e-4)
    np.testing.assert_allclose(points.mean(0), 0, atol=1e-5)
    assert points[:, 0].var() >= points[:, 1].var()


def test_latent_space_max_points(image_vae, sprites):
    fig = plots.latent_space(image_vae, sprites, max_points=10)
    for ax in panels(fig):
        assert len(ax.collections[0].get_offsets()) == 10
        assert len(ax.collections[0].get_array()) == 10


@pytest.mark.parametrize("kind", ["pair", "tensor_dataset"])
def test_latent_space_colours_by_the_labels_a_pair_or_tensor_dataset_carries(
    kind, vector_vae, vectors
):
    labels = torch.arange(len(vectors)) % 3
    given = (vectors, labels) if kind == "pair" else torch.utils.data.TensorDataset(vectors, labels)
    fig = plots.latent_space(vector_vae, given)
    check_figure(fig, 1, 1)
    np.testing.assert_array_equal(panels(fig)[0].collections[0].get_array(), labels.numpy())


def test_latent_space_names_the_classes_of_one_label_per_item(vector_vae, vectors):
    labels = torch.arange(len(vectors)) % 3
    fig = plots.latent_space(vector_vae, vectors, labels=labels, names=data.SPRITE_SHAPES)
    (bar,) = colorbars(fig)
    assert [t.get_text() for t in bar.get_yticklabels()] == list(data.SPRITE_SHAPES)
    # From an ArrayDataset's factor_names, as with_targets gives them.
    shapes = data.ArrayDataset(vectors).with_targets(labels, data.SPRITE_SHAPES)
    (bar,) = colorbars(plots.latent_space(vector_vae, shapes))
    assert [t.get_text() for t in bar.get_yticklabels()] == list(data.SPRITE_SHAPES)
    # One name is the panel's title.
    fig = plots.latent_space(vector_vae, vectors, labels=labels, names=["cultivar"])
    assert panels(fig)[0].get_title() == "latent space: cultivar"
    with pytest.raises(ValueError, match="2 class names"):
        plots.latent_space(vector_vae, vectors, labels=labels, names=["a", "b"])


def test_latent_space_without_labels_does_not_warn(vector_vae, vectors):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.latent_space(vector_vae, vectors)


# --------------------------------------------------------------------------- run_figures
HIST = {"epoch": [1, 2], "train_elbo": [-5.0, -4.0], "val_elbo": [-5.5, -4.5]}


def test_run_figures_with_labels(image_vae, sprites):
    figures = plots.run_figures(image_vae, HIST, sprites)
    assert set(figures) == {"history", "reconstructions", "samples", "traversal", "latent_space"}
    assert all(isinstance(fig, Figure) for fig in figures.values())
    assert len(panels(figures["latent_space"])) == 5
    assert len(figures["history"].axes[0].lines) == 2


def test_run_figures_without_labels(vector_vae, vectors):
    expected = {"history", "reconstructions", "samples", "traversal"}
    assert set(plots.run_figures(vector_vae, HIST, vectors)) == expected
    assert set(plots.run_figures(vector_vae, HIST, data.ArrayDataset(vectors))) == expected


def test_public_functions_are_covered():
    assert set(plots.__all__) == {
        "image_grid",
        "reconstructions",
        "samples",
        "samples_figure",
        "reconstructions_and_samples",
        "traversal",
        "interpolation",
        "latent_space",
        "history",
        "run_figures",
        "rate_distortion",
        "posterior_comparison",  # tested in test_posterior_quality.py
        "slerp",
    }


@pytest.mark.parametrize("likelihood", ["beta_binomial", "discretized_logistic"])
def test_8bit_means_are_drawn_on_the_unit_scale_not_clipped(likelihood):
    """An 8-bit likelihood's means are fractional grey levels (0..255): the plots divide
    them by 255 instead of clipping them to 1 (all white)."""
    from pyvae.plots import _generated, _with_reconstructions

    pyro.set_rng_seed(0)
    vae = VAE.build((1, 8, 8), 2, likelihood=likelihood)
    x = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    shown, recon = _with_reconstructions(vae, x, 4, {})
    assert torch.equal(shown, x.float() / 255)
    pyro.set_rng_seed(1)
    expected = vae.reconstruct(x.float()) / 255
    assert torch.allclose(recon, expected) and 0 < recon.min() and recon.max() < 1
    generated, _, _ = _generated(vae, 4, True, {})
    assert 0 <= generated.min() and generated.max() <= 1

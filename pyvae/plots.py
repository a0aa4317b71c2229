"""Figures as matplotlib ``Figure`` objects: notebooks show them, ``fig.savefig`` saves them.

Images ``(C, H, W)`` with 1 or 3 channels are drawn as image grids (torchvision's
``make_grid``); any other data (vectors: tabular, counts) as heatmaps, one row per item.
Figures are made without pyplot, so nothing is drawn twice in a notebook and no global
figure list grows when many are made; they show themselves in Jupyter as PNG.

The plots of a VAE ask it first (``vae.require("plots.samples")``, ...,
:mod:`pyvae.capabilities`). A variant with side information (a context c, labels y) takes
it by name (``c=...``) or, for plots of data, reads it from the data's targets.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from .capabilities import (
    PLOTS_INTERPOLATION,
    PLOTS_LATENT_SPACE,
    PLOTS_RECONSTRUCTIONS,
    PLOTS_SAMPLES,
    PLOTS_TRAVERSAL,
    POSTERIOR_INFERENCE,
)
from .data import as_tensor, source, targets

__all__ = [
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
    "posterior_comparison",
    "slerp",
]


class _Figure(Figure):
    """A matplotlib Figure that Jupyter displays as PNG even when pyplot was never imported."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def _is_image(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and shape[0] in (1, 3)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Images as floats in [0, 1]: whole numbers above 1 (integer dtypes, or floats that
    are all whole numbers) are taken as 0..255; binary data, {0, 1}, stays as it is, and
    anything else (e.g. a Gaussian mean overshooting 1, even to 3) is clipped when drawn."""
    x = x.detach().cpu().float()
    if _is_image(tuple(x.shape[1:])) and x.numel() and float(x.max()) > 1:
        if bool((x == x.round()).all()):
            return x / 255.0
    return x


def _on_unit_scale(vae, x: torch.Tensor) -> torch.Tensor:
    """Values of ``vae``'s likelihood divided by the top of its integer support (255 for
    the 8-bit likelihoods, whose means are fractional grey levels), so images draw on
    [0, 1]; values of any other likelihood as they are."""
    top = getattr(vae.likelihood.support, "upper_bound", None)
    if isinstance(top, int) and top > 1:
        return x.detach().float() / top
    return x


def _draw(
    ax,
    x: torch.Tensor,
    nrow: int,
    title: str | None = None,
    limits: tuple[float, float] | None = None,
) -> None:
    """Images as a grid (values in [0, 1], or 0..255 rescaled); anything else as a
    heatmap, its colour scale from ``limits`` (vmin, vmax) if given, else from ``x``."""
    x = _unit(x)
    if _is_image(tuple(x.shape[1:])):
        grid = make_grid(x.clamp(0, 1), nrow=nrow, padding=2, pad_value=0.5)
        ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray" if x.shape[1] == 1 else None)
        ax.set_axis_off()
    else:
        vmin, vmax = limits if limits is not None else (None, None)
        image = ax.imshow(
            x.reshape(len(x), -1).numpy(),
            aspect="auto",
            cmap="viridis",
            interpolation="nearest",
            vmin=vmin,
            vmax=vmax,
        )
        ax.set_xlabel("feature")
        ax.set_ylabel("item")
        ax.figure.colorbar(image, ax=ax, fraction=0.04)
    if title:
        ax.set_title(title)


def _panel_size(x: torch.Tensor, nrow: int) -> tuple[float, float]:
    if _is_image(tuple(x.shape[1:])):
        rows = math.ceil(len(x) / nrow)
        h, w = x.shape[-2:]
        scale = 6 / max(nrow * w, rows * h) * max(1.0, min(nrow, 16) / 8)
        return max(3.0, nrow * w * scale), max(1.5, rows * h * scale + 0.5)
    return 7.0, min(8.0, 1.5 + 0.12 * len(x))


def _single(x: torch.Tensor, nrow: int, title: str | None = None) -> Figure:
    """A figure of one panel of items, laid out so that its labels lie inside it (a plain
    ``fig.savefig(path)`` keeps them)."""
    fig = _Figure(figsize=_panel_size(x, nrow))
    _draw(fig.subplots(), x, nrow, title)
    fig.tight_layout()
    return fig


def image_grid(x: Any, nrow: int = 8, title: str | None = None, ax=None) -> Figure:
    """Show items ``(N, *shape)``: images as a grid, vectors as a heatmap."""
    x = as_tensor(x)
    if x.dim() < 2:
        raise ValueError(f"need items (N, ...), got shape {tuple(x.shape)}")
    if ax is None:
        return _single(x, nrow, title)
    _draw(ax, x, nrow, title)
    return ax.figure


def samples_figure(x: torch.Tensor, title: str = "samples from the prior") -> Figure:
    """A figure of generated items (as returned by ``vae.sample``)."""
    return image_grid(x, nrow=int(math.ceil(math.sqrt(len(x)))), title=title)


def _generated(vae, n: int, mean: bool, side: dict[str, Any]) -> tuple[torch.Tensor, int, str]:
    """``n`` generated items, the number of columns to draw them in, and a title. A
    variant with class labels and no side information given draws one column per class."""
    name = vae.side_input
    nrow, title = int(math.ceil(math.sqrt(n))), "samples from the prior"
    if name is not None and side.get(name) is None:
        classes = getattr(vae, "num_classes", None)
        if classes is None:
            raise ValueError(
                f"{type(vae).__name__} generates given {name}: pass {name}=... (one for all, "
                "or one per item)"
            )
        side = {name: torch.arange(n) % classes}
        nrow, title = classes, f"samples from the prior, one column per class ({name})"
    return _on_unit_scale(vae, vae.sample(n, mean=mean, **side)), nrow, title


def _generation_side(vae, data: Any, side: dict[str, Any]) -> dict[str, Any]:
    """What to generate with alongside plots of ``data``: nothing for a VAE of x alone or
    a variant with class labels (one column per class), else the first item's context."""
    if vae.side_input is None or getattr(vae, "num_classes", None) is not None:
        return {}
    return _base_code(vae, data, side)[1]


def samples(vae, n: int = 64, mean: bool = True, **side: Any) -> Figure:
    """``n`` items generated by ``vae`` (E[x|z] with ``mean``, else draws x ~ p(x|z)).

    ``side``: a variant's side information by name (e.g. ``c=3``, one for all or one per
    item); a variant with class labels draws one column per class without it."""
    vae.require(PLOTS_SAMPLES)
    x, nrow, title = _generated(vae, n, mean, side)
    return image_grid(x, nrow=nrow, title=title)


def _first(vae, data: Any, n: int, side: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
    """The first ``n`` items of ``data`` (transformed) and their side information for
    ``vae`` (given by name, else from the data's targets; ``{}`` for a VAE of x alone)."""
    x, transform = source(data)
    x = x[:n]
    x = transform(x) if transform is not None else x
    name = vae.side_input
    if name is not None:
        value = side.get(name)
        value = targets(data) if value is None else value
        side = {name: None if value is None else torch.as_tensor(value)[:n]}
    x, _, side = vae.checked_data(x, False, **side)
    return x, side


def _with_reconstructions(
    vae, data: Any, n: int, side: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` items of ``data`` and their reconstructions, both on the [0, 1]
    scale for images."""
    x, side = _first(vae, data, n, side)
    x = x.float()
    recon = vae.reconstruct(x, **side)
    return _unit(_on_unit_scale(vae, x)), _unit(_on_unit_scale(vae, recon))


def reconstructions(vae, data: Any, n: int = 16, **side: Any) -> Figure:
    """The first ``n`` items of ``data`` (top) over their reconstructions E[x|z=E[z|x]].

    Vectors (tabular, counts) are two heatmaps side by side on one colour scale.
    ``side``: a variant's side information by name, if not in ``data``'s targets."""
    vae.require(PLOTS_RECONSTRUCTIONS)
    x, recon = _with_reconstructions(vae, data, n, side)
    if _is_image(tuple(x.shape[1:])):
        return _single(torch.cat([x, recon]), len(x), "data (top) / reconstructions")
    both = torch.cat([x.flatten(), recon.flatten()])
    limits = (float(both.min()), float(both.max())) if both.numel() else None
    fig = _Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    _draw(ax1, x, len(x), "data", limits)
    _draw(ax2, recon, len(x), "reconstructions", limits)
    fig.tight_layout()
    return fig


def reconstructions_and_samples(vae, data: Any, n: int = 8, **side: Any) -> Figure:
    """Left: ``n`` data items over their reconstructions; right: 64 samples. ``side``: as
    for :func:`reconstructions`; a variant with class labels generates one column per
    class, one with another context generates with the first item's."""
    vae.require(PLOTS_RECONSTRUCTIONS)
    vae.require(PLOTS_SAMPLES)
    x, recon = _with_reconstructions(vae, data, n, side)
    generated, nrow, title = _generated(vae, 64, True, _generation_side(vae, data, side))
    fig = _Figure(figsize=(12, 6))
    ax1, ax2 = fig.subplots(1, 2)
    _draw(ax1, torch.cat([x, recon]), len(x), "data (top) / reconstructions")
    _draw(ax2, generated.cpu(), nrow, title)
    fig.tight_layout()
    return fig


def _active_dims(vae, data: Any | None, k: int, side: dict[str, Any]) -> list[int]:
    """The ``k`` latent dimensions whose posterior means vary most over ``data``."""
    if data is None:
        return list(range(min(k, vae.z_dim)))
    x, side = _first(vae, data, 1000, side)
    z = vae.encode(x, **side).mean
    return z.var(0).argsort(descending=True)[:k].tolist() if len(z) > 1 else list(range(k))


def _base_code(vae, x: Any, side: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
    """The posterior mean of the first item of ``x`` ``(z_dim,)`` and what :meth:`decode`
    takes for codes of that item (its context, or its label known or predicted)."""
    x, side = _first(vae, x, 1, side)
    z = vae.encode(x, **side).mean[0]
    on_device = {k: v.to(vae.device) for k, v in side.items()}
    decode_side = vae._decode_side(x.to(vae.device), on_device)
    return z, {k: v[0] for k, v in decode_side.items()}  # one for all codes


def _decoding_side(vae, side: dict[str, Any]) -> dict[str, Any]:
    """``decode``'s side information when no data gives it: as given (one for all)."""
    name = vae.side_input
    if name is not None and side.get(name) is None:
        raise ValueError(
            f"{type(vae).__name__} decodes given {name}: pass data (whose first item gives "
            f"it) or {name}=... (one for all)"
        )
    return side


def traversal(
    vae,
    data: Any | None = None,
    dims: int | list[int] = 8,
    steps: int = 9,
    span: float = 3.0,
    **side: Any,
) -> Figure:
    """Decode z while one latent dimension at a time runs over ``[-span, span]`` (prior
    units) from a base code (the posterior mean of the first item of ``data``, or 0).

    ``dims``: a list of dimensions, or how many of the most active ones (by the variance
    of the posterior means over ``data``) to show, one row each. ``side``: a variant's
    side information by name, if not in ``data``'s targets; without data, one for all
    codes (e.g. ``c=3``). With data, the codes are decoded with the first item's.
    """
    vae.require(PLOTS_TRAVERSAL)
    if isinstance(dims, int):
        if dims < 1:
            raise ValueError(f"dims must be >= 1 (how many dimensions) or a list, got {dims}")
        dims = _active_dims(vae, data, min(dims, vae.z_dim), side)
    if not dims or max(dims) >= vae.z_dim or min(dims) < 0:
        raise ValueError(f"dims must be latent dimensions in [0, {vae.z_dim}), got {dims}")
    if data is not None:
        base, decode_side = _base_code(vae, data, side)
    else:
        base, decode_side = torch.zeros(vae.z_dim, device=vae.device), _decoding_side(vae, side)
    values = torch.linspace(-span, span, steps, device=base.device)
    z = base.repeat(len(dims), steps, 1)
    for row, d in enumerate(dims):
        z[row, :, d] = values
    x = _on_unit_scale(vae, vae.decode(z.reshape(-1, vae.z_dim), **decode_side).mean.cpu())
    title = f"latent traversal: rows = dims {dims}, z_d from {-span:g} to {span:g}"
    return _single(x, steps, title)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between vectors ``a`` and ``b`` at fractions ``t`` (T,)."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    t = t[:, None]
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def interpolation(
    vae, x1: Any, x2: Any, steps: int = 10, kind: str = "linear", **side: Any
) -> Figure:
    """Decode codes between the posterior means of two items ``x1`` and ``x2`` (each of
    the data's item shape, or an item ``(x, target)`` as a dataset gives it), ``kind``
    ``"linear"`` or ``"spherical"``.

    For a variant with side information, each item's comes from its target or from
    ``side`` (by name: a pair, the first item's and the second's); the path is decoded
    with the first item's."""
    vae.require(PLOTS_INTERPOLATION)
    if kind not in ("linear", "spherical"):
        raise ValueError(f"kind must be 'linear' or 'spherical', got {kind!r}")
    items = [x if isinstance(x, (tuple, list)) else (x,) for x in (x1, x2)]
    pair = torch.stack([torch.as_tensor(item[0]) for item in items])
    name = vae.side_input
    if name is not None and side.get(name) is None and all(len(it) > 1 for it in items):
        side = {name: torch.stack([torch.as_tensor(np.asarray(it[1])) for it in items])}
    za, decode_side = _base_code(vae, pair[:1], {k: v[:1] for k, v in side.items()})
    zb, _ = _base_code(vae, pair[1:], {k: v[1:] for k, v in side.items()})
    t = torch.linspace(0, 1, steps, device=za.device)
    z = za + t[:, None] * (zb - za) if kind == "linear" else slerp(za, zb, t)
    x = vae.decode(z, **decode_side).mean.cpu()
    return _single(x, steps, f"{kind} interpolation")


def latent_space(
    vae, data: Any, labels: Any = None, names: Any = None, max_points: int = 5000, **side: Any
) -> Figure:
    """Posterior means of ``data`` in 2-D (the first two principal components when
    ``z_dim > 2``), coloured by ``labels``: ``(N,)`` gives one panel, ``(N, F)`` one panel
    per column. Labels default to the data's targets (:func:`pyvae.data.targets`: an
    ArrayDataset's, the second of a pair ``(x, y)``, a TensorDataset's second tensor).

    ``names``: for ``(N, F)`` labels, the columns' names (panel titles); for ``(N,)``
    labels, one name (the panel's title) or the classes' names, ``names[k]`` for label
    ``k`` (colour-bar ticks). Default: the data's ``factor_names``.
    ``side``: a variant's side information by name, if not in ``data``'s targets."""
    vae.require(PLOTS_LATENT_SPACE)
    if labels is None:
        labels = targets(data)
        names = names if names is not None else getattr(data, "factor_names", None)
    x, side = _first(vae, data, max_points, side)
    z = vae.encode(x, **side).mean.cpu()
    if vae.z_dim == 1:
        xy, axes_names = torch.cat([z, torch.zeros_like(z)], 1), ("z_0", "")
    elif vae.z_dim == 2:
        xy, axes_names = z, ("z_0", "z_1")
    else:
        zc = z - z.mean(0)
        _, _, v = torch.linalg.svd(zc, full_matrices=False)
        xy, axes_names = zc @ v[:2].T, ("principal component 1", "principal component 2")
    columns: list[tuple[str, np.ndarray | None]] = [("", None)]
    class_names = None
    if labels is not None:
        lab = torch.as_tensor(np.asarray(labels))[: len(z)].cpu().float()
        lab = lab[:, None] if lab.dim() == 1 else lab
        names = None if names is None else [str(n) for n in names]
        if lab.shape[1] > 1:
            if names is not None and len(names) == lab.shape[1]:
                titles = names
            else:
                titles = [f"label {i}" for i in range(lab.shape[1])]
        elif names is not None and len(names) == 1:
            titles = names
        else:
            titles, class_names = ["label"], names
        columns = [(titles[i], lab[:, i].numpy()) for i in range(min(lab.shape[1], 6))]
    fig = _Figure(figsize=(4.2 * len(columns) + 0.6, 4))
    axes = np.atleast_1d(fig.subplots(1, len(columns)))
    for ax, (title, colour) in zip(axes, columns, strict=True):
        colours, classes = _colours(colour)
        points = ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.7, **colours)
        if colour is not None:
            bar = fig.colorbar(points, ax=ax, fraction=0.05)
            if classes is not None:  # one colour and one tick per class
                bar.set_ticks(range(len(classes)))
                bar.set_ticklabels(_class_ticks(classes, class_names))
        ax.set_title(f"latent space{': ' + title if title else ''}")
        ax.set_xlabel(axes_names[0])
        ax.set_ylabel(axes_names[1])
    fig.tight_layout()
    return fig


def _class_ticks(classes: np.ndarray, names: list[str] | None) -> list[str]:
    """The colour-bar tick of each class: its name (``names[k]`` for label ``k``) or its
    value."""
    if names is None:
        return [f"{c:g}" for c in classes]
    if not all(0 <= c < len(names) for c in classes):
        raise ValueError(
            f"names gives {len(names)} class names, for the labels 0..{len(names) - 1}, but "
            f"the labels hold {', '.join(f'{c:g}' for c in classes[:8])}"
        )
    return [names[int(c)] for c in classes]


def _colours(values: np.ndarray | None) -> tuple[dict[str, Any], np.ndarray | None]:
    """Scatter colour options: one qualitative colour per class for a few integer labels,
    a sequential map otherwise. Returns the options and the classes (or None)."""
    if values is None:
        return {}, None
    classes = np.unique(values)
    if len(classes) <= 20 and np.all(classes == np.round(classes)):
        cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"].resampled(len(classes))
        index = np.searchsorted(classes, values)
        return {"c": index, "cmap": cmap, "vmin": -0.5, "vmax": len(classes) - 0.5}, classes
    return {"c": values, "cmap": "viridis"}, None


def history(hist: dict) -> Figure:
    """ELBO per epoch (nats per example) from the history ``fit`` returns."""
    fig = _Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(hist["epoch"], hist["train_elbo"], marker="o", label="train (KL-weighted)")
    if "val_elbo" in hist:
        ax.plot(hist["epoch"], hist["val_elbo"], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO (nats per example)")
    ax.legend()
    fig.tight_layout()
    return fig


def rate_distortion(results: dict[str, list[dict]] | list[dict]) -> Figure:
    """Distortion (MSE) against code size (bits per data dimension) from
    :func:`pyvae.compress.rate_distortion` rows; a dict ``{label: rows}`` (e.g. one model
    per beta) draws one curve each. The unquantised posterior mean is a dashed line."""
    if not isinstance(results, dict):
        results = {"": results}
    fig = _Figure(figsize=(6, 4))
    ax = fig.subplots()
    for i, (label, rows) in enumerate(results.items()):
        finite = [r for r in rows if math.isfinite(r["bits"])]
        colour = f"C{i}"
        ax.plot(
            [r["bits_per_dim"] for r in finite],
            [r["mse"] for r in finite],
            marker="o",
            color=colour,
            label=label or None,
        )
        for r in rows:
            if not math.isfinite(r["bits"]):
                ax.axhline(r["mse"], color=colour, linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("code size (bits per data dimension)")
    ax.set_ylabel("distortion (mean squared error)")
    if any(results):
        ax.legend()
    fig.tight_layout()
    return fig


def run_figures(vae, hist: dict, data: Any) -> dict[str, Figure]:
    """The figures ``pyvae train`` writes: history, reconstructions, samples, traversal
    and, where ``data`` has labels, the latent space. A variant with side information
    reads it from ``data``'s targets (samples: one column per class, or the first item's
    context)."""
    figures = {
        "history": history(hist),
        "reconstructions": reconstructions(vae, data),
        "samples": samples(vae, **_generation_side(vae, data, {})),
        "traversal": traversal(vae, data),
    }
    if targets(data) is not None:
        figures["latent_space"] = latent_space(vae, data)
    return figures


def _ellipses(ax, q, item: int, dims: tuple[int, int], colour: str, label: str) -> None:
    """The 1- and 2-sigma ellipses of item ``item``'s diagonal Gaussian ``q`` in ``dims``."""
    from matplotlib.patches import Ellipse

    base = q.base_dist if hasattr(q, "base_dist") else q
    loc = base.loc[item, list(dims)].cpu().numpy()
    scale = base.scale[item, list(dims)].cpu().numpy()
    for k, style in ((1, "-"), (2, "--")):
        ax.add_patch(
            Ellipse(loc, 2 * k * scale[0], 2 * k * scale[1], fill=False, color=colour,
                    linestyle=style, linewidth=1.5, label=label if k == 1 else None)
        )  # fmt: skip
    ax.plot(*loc, marker="+", color=colour, markersize=10)


def posterior_comparison(
    vae,
    x: Any,
    samples: Any,
    dims: tuple[int, int] = (0, 1),
    qs: dict[str, Any] | None = None,
    max_items: int = 6,
    **side: Any,
) -> Figure:
    """The exact posterior p(z|x) against Gaussian approximations, one panel per item (at
    most ``max_items``): a scatter of MCMC draws ``samples`` ``(S, B, z_dim)`` (or the
    :class:`pyvae.posterior.PosteriorSamples` of :func:`pyvae.posterior_samples`) in the
    latent coordinates ``dims``, and the 1- and 2-sigma ellipses (solid, dashed) of each
    diagonal Gaussian of ``qs`` (``{label: q}``, batch ``(B,)``; default: the encoder's
    q(z|x) of ``x``). ``side``: a variant's side information by name."""
    vae.require(POSTERIOR_INFERENCE)
    draws = getattr(samples, "samples", samples)
    draws = torch.as_tensor(draws).detach().cpu()
    if draws.dim() != 3 or draws.shape[-1] != vae.z_dim:
        raise ValueError(
            f"samples must have shape (S, B, {vae.z_dim}) (draws, items, z_dim), got "
            f"{tuple(draws.shape)}"
        )
    if len(dims) != 2 or not all(0 <= int(d) < vae.z_dim for d in dims) or dims[0] == dims[1]:
        raise ValueError(f"dims must be two distinct latent dimensions in 0..{vae.z_dim - 1}")
    if qs is None:
        qs = {"q(z|x), the encoder's": vae.encode(x, **side)}
    n = min(draws.shape[1], max_items)
    fig = _Figure(figsize=(3.2 * n + 0.4, 3.4))
    axes = np.atleast_1d(fig.subplots(1, n, squeeze=False)[0])
    for i, ax in enumerate(axes):
        ax.scatter(draws[:, i, dims[0]], draws[:, i, dims[1]], s=3, alpha=0.35, color="0.3",
                   label="p(z|x), MCMC draws" if i == 0 else None)  # fmt: skip
        for j, (label, q) in enumerate(qs.items()):
            _ellipses(ax, q, i, dims, f"C{j}", label if i == 0 else None)
        ax.set_title(f"item {i}")
        ax.set_xlabel(f"z_{dims[0]}")
        ax.set_ylabel(f"z_{dims[1]}" if i == 0 else "")
        ax.autoscale_view()
    fig.legend(loc="lower center", ncol=1 + len(qs), fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig

"""Disentanglement metrics: how well single latent dimensions capture single generating
factors of the data.

Observational metrics take arrays (NumPy or torch) of codes and of the factors that
generated each item, ``latents`` of shape ``(N, z_dim)`` (pass the **means** of q(z|x),
``vae.encode(x).mean``) and ``factors`` of shape ``(N, K)``::

    mig(latents, factors, *, bins=20, discrete=None) -> float
    dci(latents, factors, *, model="gbt", discrete=None, test_fraction=0.25, seed=0) -> DCI
    sap(latents, factors, *, discrete=None, test_fraction=0.25, seed=0) -> float

Interventional metrics generate data with one factor fixed, from a
:class:`FactorSampler` (e.g. :func:`sprites_sampler`), and map it to codes with
``represent`` (items -> ``(n, z_dim)`` codes; None: the rendered items are the codes)::

    factor_vae_score(sampler, represent=None, *, batch_size=64, num_train=400,
                     num_eval=200, num_variance=2000, threshold=0.05, seed=0,
                     variance_codes=None) -> float
    beta_vae_score(sampler, represent=None, *, batch_size=64, num_train=300,
                   num_eval=150, seed=0) -> float

and :func:`scores` encodes with a VAE and computes them all::

    scores(vae, data, sampler=None, *, num_items=2000, batch_size=32, num_train=100,
           num_eval=50, seed=0) -> dict[str, float]

with keys ``mig, dci_disentanglement, dci_completeness, dci_informativeness, sap,
factor_vae, beta_vae``.

**Factors.** A column of ``factors`` is *discrete* if its index is in ``discrete``, or,
when ``discrete`` is None, if it holds at most :data:`MAX_CLASSES` (20) distinct values;
its distinct values are its classes. Any other column is *continuous*: MIG cuts it into
``bins`` equal-width bins between its minimum and maximum; DCI regresses it; SAP
correlates with it. On the built-in sprites the shape (3 values) is discrete and scale,
orientation and position are continuous.

Every estimator is deterministic given ``seed``; scikit-learn (``pip install
'pyvae[metrics]'``) is needed by :func:`dci`, :func:`sap` and :func:`beta_vae_score`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import data as _data
from .capabilities import DISENTANGLEMENT
from .checks import check_int, check_number

__all__ = [
    "MAX_CLASSES",
    "MIN_ITEMS",
    "DCI",
    "FactorSampler",
    "SpritesSampler",
    "sprites_sampler",
    "discretize",
    "factor_classes",
    "entropy",
    "mutual_information",
    "mutual_info_matrix",
    "mig",
    "dci",
    "sap",
    "factor_vae_score",
    "beta_vae_score",
    "scores",
    "SCORE_KEYS",
]

#: A factor column with at most this many distinct values is discrete (by default).
MAX_CLASSES = 20
#: The fewest items an observational metric accepts.
MIN_ITEMS = 20
#: The keys of :func:`scores`, in order.
SCORE_KEYS = (
    "mig",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness",
    "sap",
    "factor_vae",
    "beta_vae",
)


# --------------------------------------------------------------------------- inputs
def _matrix(values: Any, name: str) -> np.ndarray:
    """``values`` as a finite float64 array of shape ``(N, columns)``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a numeric array or tensor, got {type(values)}") from e
    if array.ndim != 2:
        raise ValueError(
            f"{name} must have shape (N, columns), got shape {array.shape}; "
            "for one column use x[:, None]"
        )
    bad = int((~np.isfinite(array)).sum())
    if bad:
        raise ValueError(f"{name} has {bad} NaN or infinite values; remove those items first")
    return array


def _pair(
    latents: Any, factors: Any, min_latents: int = 2, min_factors: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(latents (N, z_dim), factors (N, K))``."""
    z, v = _matrix(latents, "latents"), _matrix(factors, "factors")
    if len(z) != len(v):
        raise ValueError(
            f"latents and factors must have one row per item: got {len(z)} rows of latents "
            f"and {len(v)} of factors"
        )
    if len(z) < MIN_ITEMS:
        raise ValueError(f"need at least {MIN_ITEMS} items to estimate the metric, got {len(z)}")
    if z.shape[1] < min_latents or v.shape[1] < min_factors:
        raise ValueError(
            f"need at least {min_latents} latent dimensions and {min_factors} factor(s), got "
            f"latents of shape {z.shape} and factors of shape {v.shape}"
        )
    return z, v


def _discrete_columns(factors: np.ndarray, discrete: Sequence[int] | None) -> list[bool]:
    """Which columns of ``factors`` are discrete (see the module's docstring)."""
    k = factors.shape[1]
    if discrete is None:
        return [len(np.unique(factors[:, j])) <= MAX_CLASSES for j in range(k)]
    columns = [check_int("a column of discrete", j, minimum=0) for j in discrete]
    if any(j >= k for j in columns):
        raise ValueError(f"discrete names columns {columns}, but factors has {k} columns")
    return [j in columns for j in range(k)]


def _sklearn(who: str) -> Any:
    try:
        import sklearn  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"{who} needs scikit-learn: pip install 'pyvae[metrics]' (or scikit-learn)"
        ) from e


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices: a random permutation of ``range(n)`` cut at ``test_fraction``."""
    check_number("test_fraction", test_fraction, above=0)
    if test_fraction >= 1:
        raise ValueError(f"test_fraction must be < 1, got {test_fraction}")
    order = np.random.default_rng(check_int("seed", seed, minimum=0)).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    return order[n_test:], order[:n_test]


# --------------------------------------------------------------------------- information
def discretize(values: Any, bins: int = 20) -> np.ndarray:
    """Each column of ``values`` ``(N, columns)`` cut into ``bins`` equal-width bins between
    its minimum and maximum (as ``np.histogram``; the maximum lies in the last bin): int
    codes in ``[0, bins)``, shape ``(N, columns)``. A constant column is all zeros."""
    x = _matrix(values, "values")
    check_int("bins", bins, minimum=2)
    codes = np.zeros(x.shape, dtype=np.int64)
    for j in range(x.shape[1]):
        lo, hi = x[:, j].min(), x[:, j].max()
        if hi > lo:
            edges = np.linspace(lo, hi, bins + 1)
            codes[:, j] = np.clip(np.digitize(x[:, j], edges[1:-1]), 0, bins - 1)
    return codes


def factor_classes(
    factors: Any, bins: int = 20, discrete: Sequence[int] | None = None
) -> np.ndarray:
    """The factors as int classes ``(N, K)``: a discrete column's distinct values numbered
    in increasing order, a continuous one cut by :func:`discretize` into ``bins``."""
    v = _matrix(factors, "factors")
    which = _discrete_columns(v, discrete)
    out = np.empty(v.shape, dtype=np.int64)
    for j, is_discrete in enumerate(which):
        if is_discrete:
            out[:, j] = np.unique(v[:, j], return_inverse=True)[1]
        else:
            out[:, j] = discretize(v[:, j : j + 1], bins)[:, 0]
    return out


def entropy(a: Any) -> float:
    """H(a) in nats of the empirical distribution of the int labels ``a`` ``(N,)``."""
    a = np.asarray(a)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError(f"a must be 1-D and non-empty, got shape {a.shape}")
    p = np.unique(a, return_counts=True)[1] / len(a)
    return float(-(p * np.log(p)).sum())


def mutual_information(a: Any, b: Any) -> float:
    """I(a; b) in nats of the empirical joint distribution of int labels ``a``, ``b``
    (each ``(N,)``): ``sum p(a, b) log(p(a, b) / (p(a) p(b)))``."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(
            f"a and b must be 1-D, non-empty and of one length, got {a.shape} and {b.shape}"
        )
    ia, ib = np.unique(a, return_inverse=True)[1], np.unique(b, return_inverse=True)[1]
    joint = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(joint, (ia, ib), 1.0 / len(a))
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def mutual_info_matrix(
    latents: Any, factors: Any, bins: int = 20, discrete: Sequence[int] | None = None
) -> np.ndarray:
    """I(z_j; v_k) in nats, shape ``(z_dim, K)``: each latent cut into ``bins`` equal-width
    bins (:func:`discretize`), each factor as :func:`factor_classes`."""
    z, v = _pair(latents, factors, min_latents=1)
    zc, vc = discretize(z, bins), factor_classes(v, bins, discrete)
    return np.array(
        [
            [mutual_information(zc[:, j], vc[:, k]) for k in range(v.shape[1])]
            for j in range(z.shape[1])
        ]
    )


# --------------------------------------------------------------------------- MIG
def mig(
    latents: Any, factors: Any, *, bins: int = 20, discrete: Sequence[int] | None = None
) -> float:
    """Mutual Information Gap (Chen et al. 2018): for each factor v_k, the gap between the
    two largest I(z_j; v_k) over the latents, divided by H(v_k); the mean over factors.

    ``latents``: ``(N, z_dim)`` posterior **means** (z_dim >= 2); ``factors``: ``(N, K)``.
    Estimator (as disentanglement_lib): latents cut into ``bins`` equal-width bins, the
    mutual information of the empirical joint histogram, in nats; factors as
    :func:`factor_classes` (a continuous one into ``bins`` bins too). In [0, 1]; 1 when
    each factor is carried by exactly one latent, without loss."""
    z, v = _pair(latents, factors)
    vc = factor_classes(v, check_int("bins", bins, minimum=2), discrete)
    h = np.array([entropy(vc[:, k]) for k in range(v.shape[1])])
    if (h == 0).any():
        raise ValueError(
            f"factor column(s) {np.flatnonzero(h == 0).tolist()} are constant over the items; "
            "MIG divides by each factor's entropy, so drop those columns"
        )
    info = mutual_info_matrix(z, v, bins, discrete)
    top = np.sort(info, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / h))


# --------------------------------------------------------------------------- DCI
@dataclass(frozen=True)
class DCI:
    """The DCI scores of :func:`dci`, each in [0, 1] (higher is better)."""

    #: Whether each latent captures at most one factor (importance-weighted mean).
    disentanglement: float
    #: Whether each factor is captured by one latent (importance-weighted mean).
    completeness: float
    #: How well the latents predict the factors: the mean over factors of the test
    #: accuracy (discrete factor) or test R² clipped at 0 (continuous factor).
    informativeness: float
    #: R[j, k], the importance of latent j for predicting factor k, shape ``(z_dim, K)``.
    importances: np.ndarray
    #: The informativeness of each factor, shape ``(K,)``.
    informativeness_per_factor: np.ndarray


def _one_minus_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """1 - H(p) along ``axis`` of non-negative weights ``p`` (normalised there), in the
    base of its length (so in [0, 1]); an all-zero slice counts as uniform (0)."""
    total = p.sum(axis=axis, keepdims=True)
    q = np.where(total > 0, p / np.where(total > 0, total, 1), 1.0 / p.shape[axis])
    logs = np.log(np.where(q > 0, q, 1.0)) / np.log(p.shape[axis])
    return 1.0 + (q * logs).sum(axis=axis)


def _l1_penalty() -> dict[str, Any]:
    """LogisticRegression's L1 penalty in the words of the installed scikit-learn: 1.8
    deprecated ``penalty="l1"`` for ``l1_ratio=1``, which older versions ignore."""
    import sklearn

    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    return {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}


def _fit_predictor(
    z_train: np.ndarray, y_train: np.ndarray, is_discrete: bool, model: str, seed: int
) -> tuple[Any, np.ndarray]:
    """A fitted regressor (continuous factor) or classifier (discrete) and the latents'
    importances for it (non-negative, shape ``(z_dim,)``)."""
    from sklearn import ensemble, linear_model

    if model == "gbt":
        cls = (
            ensemble.GradientBoostingClassifier
            if is_discrete
            else ensemble.GradientBoostingRegressor
        )
        predictor = cls(random_state=seed).fit(z_train, y_train)
        return predictor, predictor.feature_importances_
    if is_discrete:
        predictor = linear_model.LogisticRegression(
            **_l1_penalty(), solver="saga", max_iter=2000, random_state=seed
        ).fit(z_train, y_train)
    else:
        predictor = linear_model.Lasso(alpha=0.01, random_state=seed).fit(z_train, y_train)
    coef = np.abs(np.atleast_2d(predictor.coef_)).sum(0)
    return predictor, coef / coef.sum() if coef.sum() > 0 else coef  # as the trees': sum 1


def dci(
    latents: Any,
    factors: Any,
    *,
    model: str = "gbt",
    discrete: Sequence[int] | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> DCI:
    """Disentanglement, completeness and informativeness (Eastwood & Williams 2018).

    One predictor per factor from all latents gives the importance matrix R ``(z_dim,
    K)``. Disentanglement: per latent, 1 - H_K(R[j] / sum R[j]), weighted by the latent's
    share of the total importance; completeness: per factor, 1 - H_{z_dim}(R[:, k] / sum
    R[:, k]), weighted likewise; informativeness: the mean test score of the predictors.

    ``latents``: ``(N, z_dim)`` posterior means (z_dim >= 2); ``factors``: ``(N, K)``, K >= 2.
    ``model``: ``"gbt"`` (default, as disentanglement_lib): scikit-learn's
    GradientBoostingClassifier (discrete factor) or GradientBoostingRegressor (continuous),
    default settings (100 trees of depth 3, learning rate 0.1), importances their
    ``feature_importances_``; ``"lasso"``: on standardised latents, Lasso(alpha=0.01) on
    the standardised factor or L1 LogisticRegression(C=1), importances ``|coef|`` (summed
    over classes) divided by their sum, as the trees' are. The predictors fit a random
    ``1 - test_fraction`` of the items and are scored on the rest: accuracy (discrete) or
    R² clipped at 0 (continuous)."""
    if model not in ("gbt", "lasso"):
        raise ValueError(f"model must be 'gbt' or 'lasso', got {model!r}")
    z, v = _pair(latents, factors, min_factors=2)
    which = _discrete_columns(v, discrete)
    train, test = _split(len(z), test_fraction, seed)
    _sklearn("dci")
    if model == "lasso":
        sd = z[train].std(0)
        z = (z - z[train].mean(0)) / np.where(sd > 0, sd, 1.0)
    importances = np.zeros((z.shape[1], v.shape[1]))
    informativeness = np.zeros(v.shape[1])
    for k, is_discrete in enumerate(which):
        y = np.unique(v[:, k], return_inverse=True)[1] if is_discrete else v[:, k]
        if not is_discrete and model == "lasso":
            y = (y - y[train].mean()) / max(float(y[train].std()), 1e-12)
        if is_discrete and len(np.unique(y[train])) < 2:
            raise ValueError(f"factor column {k} has a single class in the training split")
        predictor, importances[:, k] = _fit_predictor(z[train], y[train], is_discrete, model, seed)
        informativeness[k] = max(0.0, float(predictor.score(z[test], y[test])))
    weights = importances.sum(1) / importances.sum() if importances.sum() > 0 else None
    disentanglement = _one_minus_entropy(importances, axis=1)
    completeness = _one_minus_entropy(importances, axis=0)
    factor_weights = importances.sum(0) / importances.sum() if weights is not None else None
    return DCI(
        disentanglement=float(np.average(disentanglement, weights=weights)),
        completeness=float(np.average(completeness, weights=factor_weights)),
        informativeness=float(informativeness.mean()),
        importances=importances,
        informativeness_per_factor=informativeness,
    )


# --------------------------------------------------------------------------- SAP
def sap(
    latents: Any,
    factors: Any,
    *,
    discrete: Sequence[int] | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> float:
    """Separated Attribute Predictability (Kumar et al. 2018): the score matrix S ``(z_dim,
    K)`` of how well each single latent predicts each factor; for each factor the gap
    between its two largest scores; the mean over factors.

    ``latents``: ``(N, z_dim)`` posterior means (z_dim >= 2); ``factors``: ``(N, K)``.
    Estimator: a continuous factor's score is the R² of the linear regression on the one
    latent (its squared correlation) on the training items, as disentanglement_lib; a
    discrete factor's is the test accuracy of scikit-learn's
    DecisionTreeClassifier(max_leaf_nodes=2 * classes, class_weight="balanced") on the
    one latent, where disentanglement_lib uses LinearSVC(C=0.01): a linear one-vs-rest
    classifier on one dimension cannot single out a middle class, and underfits at that C
    (sprites' shape as its own latent scores 0.66 with it, 1 with the tree). The training
    items are a random ``1 - test_fraction`` of the items. A constant latent scores 0.
    """
    z, v = _pair(latents, factors)
    which = _discrete_columns(v, discrete)
    train, test = _split(len(z), test_fraction, seed)
    _sklearn("sap")
    from sklearn import tree

    score = np.zeros((z.shape[1], v.shape[1]))
    for k, is_discrete in enumerate(which):
        y = np.unique(v[:, k], return_inverse=True)[1] if is_discrete else v[:, k]
        for j in range(z.shape[1]):
            zj = z[:, j]
            if zj[train].std() <= 1e-12 or (not is_discrete and y[train].std() <= 1e-12):
                continue
            if is_discrete:
                classifier = tree.DecisionTreeClassifier(
                    max_leaf_nodes=2 * int(y.max() + 1), class_weight="balanced", random_state=seed
                ).fit(zj[train, None], y[train])
                score[j, k] = classifier.score(zj[test, None], y[test])
            else:
                score[j, k] = np.corrcoef(zj[train], y[train])[0, 1] ** 2
    top = np.sort(score, axis=0)[::-1]
    return float(np.mean(top[0] - top[1]))


# --------------------------------------------------------------------------- samplers
class FactorSampler:
    """Data generated from chosen factors, for the interventional metrics (as
    disentanglement_lib's ground-truth data). Subclasses set :attr:`num_factors` and
    define :meth:`sample_factors` and :meth:`render`."""

    #: K, the number of generating factors.
    num_factors: int = 0

    def sample_factors(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` independent draws of the factors from the data's distribution, ``(n, K)``."""
        raise NotImplementedError

    def render(self, factors: torch.Tensor) -> torch.Tensor:
        """The items generated by ``factors`` ``(n, K)``: ``(n, *item_shape)``."""
        raise NotImplementedError


class SpritesSampler(FactorSampler):
    """The built-in sprites (:func:`pyvae.data.make_sprites`) of side ``size``: factors
    from :func:`pyvae.data.sample_sprite_factors`, images from
    :func:`pyvae.data.render_sprites` (uint8 ``(n, 1, size, size)``)."""

    num_factors = len(_data.SPRITE_FACTORS)
    #: The factors' names, in column order (:data:`pyvae.data.SPRITE_FACTORS`).
    factor_names = _data.SPRITE_FACTORS

    def __init__(self, size: int = 64):
        self.size = check_int("size", size, minimum=8)

    def sample_factors(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return _data.sample_sprite_factors(n, generator)

    def render(self, factors: torch.Tensor) -> torch.Tensor:
        return _data.render_sprites(factors, self.size)


def sprites_sampler(size: int = 64) -> SpritesSampler:
    """A :class:`SpritesSampler` of ``size`` x ``size`` sprites, as ``data.load("sprites")``."""
    return SpritesSampler(size)


def _check_sampler(sampler: Any) -> int:
    """``sampler``'s number of factors, or a ``TypeError`` if it is not a sampler."""
    if not all(callable(getattr(sampler, m, None)) for m in ("sample_factors", "render")):
        raise TypeError(
            f"sampler must have sample_factors(n, generator) and render(factors) (a "
            f"pyvae.disentanglement.FactorSampler, e.g. sprites_sampler()), got {type(sampler)}"
        )
    return check_int("sampler.num_factors", getattr(sampler, "num_factors", 0), minimum=2)


def _codes(sampler: Any, represent: Callable | None, factors: torch.Tensor) -> torch.Tensor:
    """The codes ``(n, z_dim)`` of the items rendered from ``factors``, in chunks."""
    out = []
    for chunk in torch.split(torch.as_tensor(factors), 4096):
        items = sampler.render(chunk)
        z = represent(items) if represent is not None else items
        if not isinstance(z, torch.Tensor | np.ndarray) or len(z) != len(chunk) or z.ndim != 2:
            raise ValueError(
                f"represent must map {len(chunk)} items to codes of shape ({len(chunk)}, z_dim) "
                f"(e.g. lambda x: vae.encode(x).mean), got {type(z).__name__} "
                f"{tuple(getattr(z, 'shape', ()))}"
            )
        out.append(torch.as_tensor(z).detach().cpu().double())
    return torch.cat(out)


def _fixed(
    sampler: Any, k: torch.Tensor, size: int, generator: torch.Generator, pairs: bool
) -> torch.Tensor:
    """Factors ``(len(k), size, K)``, or two such (``pairs``) stacked on a new first axis:
    batch ``i`` shares the value of factor ``k[i]`` (within the batch, or within each pair
    across the two), every other factor drawn afresh."""
    n, num = len(k), sampler.num_factors
    f = torch.as_tensor(sampler.sample_factors(n * size * (2 if pairs else 1), generator))
    f = f.reshape(2 if pairs else 1, n, size, num).clone()
    rows = torch.arange(n)
    shared = f[0, rows, :, k] if pairs else f[0, rows, :1, k].expand(n, size)
    for half in f:
        half[rows, :, k] = shared
    return f if pairs else f[0]


def factor_vae_score(
    sampler: Any,
    represent: Callable | None = None,
    *,
    batch_size: int = 64,
    num_train: int = 400,
    num_eval: int = 200,
    num_variance: int = 2000,
    threshold: float = 0.05,
    seed: int = 0,
    variance_codes: Any = None,
) -> float:
    """The FactorVAE score (Kim & Mnih 2018): the accuracy of a majority-vote classifier
    that names the fixed factor of a batch from the latent of least variance.

    Codes are divided by their standard deviation over ``num_variance`` items drawn from
    the sampler (or over ``variance_codes`` ``(N, z_dim)``, codes of the data, if given);
    latents of standard deviation below ``threshold`` (collapsed) are pruned. Each vote:
    a factor k uniform at random, ``batch_size`` items sharing one value of k (the others
    random), the index of the (normalised) latent of least variance in the batch. The
    classifier maps each latent to the factor it got most votes for in ``num_train``
    votes; the score is its accuracy on ``num_eval`` fresh votes (0 if every latent
    collapsed). ``represent``: items -> codes ``(n, z_dim)`` (e.g. posterior means; None:
    the items are the codes). disentanglement_lib's defaults are 64, 10000, 5000, 10000."""
    num = _check_sampler(sampler)
    sizes = {"batch_size": batch_size, "num_train": num_train, "num_eval": num_eval}
    sizes = {name: check_int(name, value, minimum=2) for name, value in sizes.items()}
    check_int("num_variance", num_variance, minimum=2)
    check_number("threshold", threshold, at_least=0)
    g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    if variance_codes is not None:
        scale = torch.from_numpy(_matrix(variance_codes, "variance_codes")).std(0)
    else:
        scale = _codes(sampler, represent, sampler.sample_factors(num_variance, g)).std(0)
    active = torch.nonzero(scale >= threshold).flatten()
    if len(active) == 0:
        return 0.0
    k = torch.randint(num, (num_train + num_eval,), generator=g)
    f = _fixed(sampler, k, batch_size, g, pairs=False)
    z = _codes(sampler, represent, f.reshape(-1, num)).reshape(len(k), batch_size, -1)
    least = active[(z[:, :, active] / scale[active]).var(1).argmin(1)]
    votes = torch.zeros(len(scale), num, dtype=torch.long)
    votes.index_put_((least[:num_train], k[:num_train]), torch.tensor(1), accumulate=True)
    guess = votes.argmax(1)
    return float((guess[least[num_train:]] == k[num_train:]).double().mean())


def beta_vae_score(
    sampler: Any,
    represent: Callable | None = None,
    *,
    batch_size: int = 64,
    num_train: int = 300,
    num_eval: int = 150,
    seed: int = 0,
) -> float:
    """The β-VAE score (Higgins et al. 2017): the test accuracy of a linear classifier
    that names the fixed factor from the mean absolute difference of paired codes.

    Each point: a factor k uniform at random, ``batch_size`` pairs of items, each pair
    sharing one value of k (the others random), the feature ``mean |z1 - z2|`` over the
    pairs ``(z_dim,)``, the label k. scikit-learn's LogisticRegression (default settings,
    ``max_iter=1000``) fits ``num_train`` points and is scored on ``num_eval`` fresh ones.
    ``represent`` as :func:`factor_vae_score`. disentanglement_lib's defaults are 64,
    10000, 5000."""
    num = _check_sampler(sampler)
    sizes = {"batch_size": batch_size, "num_train": num_train, "num_eval": num_eval}
    sizes = {name: check_int(name, value, minimum=2) for name, value in sizes.items()}
    g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    _sklearn("beta_vae_score")
    from sklearn import linear_model

    k = torch.randint(num, (num_train + num_eval,), generator=g)
    f = _fixed(sampler, k, batch_size, g, pairs=True)
    z = _codes(sampler, represent, f.reshape(-1, num)).reshape(2, len(k), batch_size, -1)
    features = (z[0] - z[1]).abs().mean(1).numpy()
    labels = k.numpy()
    model = linear_model.LogisticRegression(max_iter=1000, random_state=seed)
    model.fit(features[:num_train], labels[:num_train])
    return float(model.score(features[num_train:], labels[num_train:]))


# --------------------------------------------------------------------------- all of them
def _observed(data: Any, num_items: int, seed: int) -> tuple[torch.Tensor, Any]:
    """``(items, factors)``: ``num_items`` drawn from a sampler, or the first ``num_items``
    of a dataset whose targets are its factors ``(N, K)``."""
    if callable(getattr(data, "sample_factors", None)):
        _check_sampler(data)
        factors = data.sample_factors(num_items, torch.Generator().manual_seed(seed))
        return data.render(factors), factors
    factors = _data.targets(data)
    if factors is None or factors.dim() != 2:
        raise ValueError(
            "data must be a FactorSampler (e.g. sprites_sampler()) or data whose targets are "
            "its generating factors, shape (N, K) (e.g. data.load('sprites')[1], or a pair "
            "(x, factors))"
        )
    x, transform = _data.source(data)
    x = x[:num_items]
    return (transform(x) if transform is not None else x), factors[:num_items]


def scores(
    vae: Any,
    data: Any,
    sampler: Any = None,
    *,
    num_items: int = 2000,
    batch_size: int = 32,
    num_train: int = 100,
    num_eval: int = 50,
    seed: int = 0,
) -> dict[str, float]:
    """Every metric of ``vae``'s posterior means ``encode(x).mean``, by name
    (:data:`SCORE_KEYS`).

    ``data``: a :class:`FactorSampler` (e.g. :func:`sprites_sampler`), or data whose
    targets are its factors (e.g. ``data.load("sprites")[1]``). MIG, DCI (gradient-boosted
    trees) and SAP use ``num_items`` items (the first of the data, or drawn from the
    sampler), whose codes also normalise the FactorVAE score. The FactorVAE and β-VAE
    scores use the sampler (``data`` or ``sampler``): ``num_train`` and ``num_eval`` votes
    of ``batch_size`` items, and as many points of ``batch_size // 2`` pairs. Without a
    sampler those two keys are left out. The defaults render and encode 11600 items: for
    an untrained 64x64 convolutional VAE of z_dim 10, 10 s of CPU time on the 2-core Xeon
    CPU (``benchmarks/disentanglement_metrics.py``)."""
    vae.require(
        DISENTANGLEMENT,
        instead="encode the data yourself and pass codes to mig, dci, sap, factor_vae_score",
    )
    num_items = check_int("num_items", num_items, minimum=MIN_ITEMS)
    batch_size = check_int("batch_size", batch_size, minimum=4)
    seed = check_int("seed", seed, minimum=0)
    if sampler is None and callable(getattr(data, "sample_factors", None)):
        sampler = data
    if sampler is not None:
        _check_sampler(sampler)
    x, factors = _observed(data, num_items, seed)
    z = vae.encode(x).mean
    result = dci(z, factors, seed=seed)
    out = {
        "mig": mig(z, factors),
        "dci_disentanglement": result.disentanglement,
        "dci_completeness": result.completeness,
        "dci_informativeness": result.informativeness,
        "sap": sap(z, factors, seed=seed),
    }
    if sampler is not None:
        represent = lambda items: vae.encode(items).mean  # noqa: E731
        votes = {"num_train": num_train, "num_eval": num_eval, "seed": seed}
        out["factor_vae"] = factor_vae_score(
            sampler, represent, batch_size=batch_size, variance_codes=z, **votes
        )
        out["beta_vae"] = beta_vae_score(sampler, represent, batch_size=batch_size // 2, **votes)
    return out

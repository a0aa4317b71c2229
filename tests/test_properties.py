"""Property-based tests: random shapes, dtypes and values thrown at the public functions.

Every case either works (and gives finite numbers of the right shape) or raises a pyvae
error (``ValueError``/``TypeError`` with a message) before any work: never a bare
traceback from deep inside torch or Pyro, never a silently wrong number.
"""

import math

import numpy as np
import pytest
import torch
from helpers import small_vae
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvae import data, evaluate, fit

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI does not flicker
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

special = st.sampled_from([0.0, 1.0, -1.0, 0.5, 255.0, 1e30, -1e30, math.nan, math.inf, -math.inf])
dtypes = st.sampled_from(["float32", "float64", "float16", "uint8", "int64", "bool", "int8"])


@st.composite
def arrays(draw):
    """Random data: sometimes the VAE's shape (1, 4, 4), sometimes not; odd values."""
    n = draw(st.integers(0, 6))
    shape = draw(st.sampled_from([(1, 4, 4), (1, 4, 4), (16,), (1, 4, 5), (2, 4, 4), ()]))
    dtype = draw(dtypes)
    fill = draw(st.lists(special, min_size=1, max_size=4))
    values = np.resize(np.array(fill, dtype=np.float64), (n, *shape))
    with np.errstate(invalid="ignore", over="ignore"):
        return values.astype(dtype)


def _works_or_explains(call):
    """Run ``call``; a pyvae error must carry a message, anything else fails the test."""
    try:
        return call()
    except (ValueError, TypeError) as e:
        assert len(str(e)) > 10, f"unhelpful error: {e!r}"
        return None


@pytest.fixture(scope="module")
def vaes():
    return {
        "bernoulli": small_vae("normal", "bernoulli", shape=(1, 4, 4), z_dim=2, hidden=8),
        "gaussian": small_vae("mog", "gaussian", shape=(1, 4, 4), z_dim=2, hidden=8),
        "poisson": small_vae("normal", "poisson", shape=(1, 4, 4), z_dim=2, hidden=8),
    }


@SETTINGS
@given(x=arrays(), which=st.sampled_from(["bernoulli", "gaussian", "poisson"]))
def test_elbo_encode_log_likelihood_work_or_explain(vaes, x, which):
    vae = vaes[which]
    for call in (
        lambda: vae.elbo(x, reduction="none"),
        lambda: evaluate.log_likelihood(vae, x, num_samples=3),
        lambda: vae.encode(x).mean,
    ):
        out = _works_or_explains(call)
        if out is not None:
            assert out.shape[0] == len(x) and torch.isfinite(out).all()


@SETTINGS
@given(x=arrays(), which=st.sampled_from(["bernoulli", "gaussian", "poisson"]))
def test_fit_works_or_explains_before_training(vaes, x, which):
    vae = vaes[which]
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    try:
        hist = fit(vae, x, epochs=1, batch_size=4, progress=False)
    except (ValueError, TypeError) as e:
        assert len(str(e)) > 10
        assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())
        return
    except FloatingPointError as e:  # finite but extreme data (1e30) overflows the density
        assert "not updated" in str(e)
        assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())
        return
    assert math.isfinite(hist["train_elbo"][0])


@SETTINGS
@given(x=arrays())
def test_data_conversion_works_or_explains(x):
    out = _works_or_explains(lambda: data.as_tensor(x))
    if out is not None:
        assert out.shape == x.shape and out.dtype != torch.float64
        ds = _works_or_explains(lambda: data.ArrayDataset(x))
        assert ds is None or len(ds) == len(x)


# ------------------------------------------------------------- parts' constructors, CLI numbers
numbers_or_not = st.one_of(
    special,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10, 10),
    st.sampled_from(["1.0", None, True, [1.0]]),
)


@SETTINGS
@given(value=numbers_or_not)
def test_part_constructors_take_a_good_number_or_refuse_it_by_name(value):
    from pyvae import likelihoods, priors

    makers = {
        "scale": lambda v: likelihoods.Gaussian(scale=v),
        "min_scale": lambda v: likelihoods.Laplace(min_scale=v),
        "total_count": lambda v: likelihoods.NegativeBinomial(total_count=v),
        "min_log_scale": lambda v: likelihoods.DiscretizedLogistic(min_log_scale=v),
        "components": lambda v: priors.MixtureOfGaussians(2, components=v),
    }
    for name, make in makers.items():
        try:
            part = make(value)
        except (ValueError, TypeError) as e:
            assert name in str(e) and len(str(e)) < 300
        else:  # accepted: a finite number, positive where it must be
            assert isinstance(value, (int, float)) and math.isfinite(value)
            assert name == "min_log_scale" or value > 0
            assert part is not None


@SETTINGS
@given(
    text=st.one_of(
        st.sampled_from(["inf", "-inf", "nan", "0", "-1", "1e-3", "2", "x", "1e400"]),
        st.text(max_size=6),
    )
)
def test_cli_numbers_are_checked_as_the_flags_are_read(text, capsys):
    from pyvae.cli import _parser

    for flag, positive, integer in (
        ("--lr", True, False),
        ("--epochs", True, True),
        ("--beta", False, False),
        ("--seed", False, True),
    ):
        try:
            args = _parser().parse_args(["train", flag, text])
        except SystemExit as e:
            assert e.code == 2
            assert flag in capsys.readouterr().err
            continue
        value = getattr(args, flag[2:].replace("-", "_"))
        assert math.isfinite(value) and (value > 0 if positive else value >= 0)
        assert not integer or isinstance(value, int)

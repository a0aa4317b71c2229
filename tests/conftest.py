import pyro
import pytest
import torch


@pytest.fixture(autouse=True)
def fresh_pyro_state():
    """Each test starts with an empty parameter store and fixed seeds."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


def pytest_configure(config):
    # The test models are tiny: one thread is faster than two fighting over 2 cores.
    torch.set_num_threads(1)

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
    torch.set_num_threads(2)

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


@pytest.fixture(scope="session")
def trained():
    """A tiny Bernoulli VAE trained on 16x16 sprites, and held-out sprites (as a tensor)."""
    from pyvae import VAE, data, fit

    pyro.set_rng_seed(0)
    train, test = data.load("sprites", n_train=512, n_test=128, size=16)
    vae = VAE.build(input_shape=(1, 16, 16), z_dim=3, net_kwargs={"hidden": (32,)})
    fit(vae, train, epochs=30, batch_size=128, lr=2e-2, progress=False)
    return vae, data.as_tensor(test)

"""Small models shared by the tests."""

from pyvae import VAE


def small_vae(
    prior="normal", likelihood="bernoulli", shape=(1, 8, 8), z_dim=3, hidden=16, components=4
):
    """A tiny MLP VAE; mixture and Vamp priors get ``components`` components."""
    return VAE.build(
        input_shape=shape,
        z_dim=z_dim,
        prior=prior,
        likelihood=likelihood,
        net_kwargs={"hidden": (hidden,)},
        prior_kwargs={"components": components} if prior in ("mog", "vamp") else None,
    )

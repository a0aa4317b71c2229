"""The version of pyvae, in a module of its own so anything may read it without
importing the package (``setup.cfg``, :mod:`pyvae.compress.lossless`)."""

__all__ = ["__version__"]

__version__ = "0.1.0"

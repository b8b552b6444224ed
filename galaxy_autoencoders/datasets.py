"""Moved to `galaxy_autoencoders.data` (one module per job there). This module is kept so that existing notebooks
and scripts (`from galaxy_autoencoders.datasets import load_galaxies`) keep working."""

from . import _moved_to
from .data import __all__  # noqa: F401  (the public names, for `from ... import *`)

__getattr__ = _moved_to(
    "data", ("checks", "folders", "downloader", "decals", "hdf5", "galaxy10", "registry", "galaxies", "errors")
)

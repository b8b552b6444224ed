"""Moved to `galaxy_autoencoders.data` (one module per job there). This module is kept so that existing notebooks
and scripts (`from galaxy_autoencoders.datasets import load_galaxies`) keep working: it answers with the names of
`galaxy_autoencoders.data`."""

from . import data as _data

__all__ = _data.__all__


def __getattr__(name: str):
    return getattr(_data, name)

"""Moved to `galaxy_autoencoders.training` (one module per concept there). This module is kept so that existing
notebooks and scripts (`from galaxy_autoencoders.learner import vae_learner`) keep working: it answers with the
names of `galaxy_autoencoders.training`."""

from . import training as _training

__all__ = _training.__all__


def __getattr__(name: str):
    return getattr(_training, name)

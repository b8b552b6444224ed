"""Moved to `galaxy_autoencoders.training` (one module per concept there). This module is kept so that existing
notebooks and scripts (`from galaxy_autoencoders.learner import vae_learner`) keep working."""

from . import _moved_to
from .training import __all__  # noqa: F401  (the public names, for `from ... import *`)

__getattr__ = _moved_to("training", ("objective", "callbacks", "recorder", "speed", "compile", "learner"))

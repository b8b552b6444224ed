"""galaxy_autoencoders: what do galaxies look like to a variational autoencoder?

The data path reads top to bottom: `data` (Galaxy10, GalSim and your own galaxies) -> `dataloaders` (fastai) ->
`models` / `losses` -> `training` -> `inference` / `metrics` / `plots` / `widgets` (ARCHITECTURE.md has one line
per file). Names are imported lazily, so `import galaxy_autoencoders` stays fast; each lives in the module named
below.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "get_profile": "config",
    "apply_profile": "config",
    "data_dir": "config",
    "load_galaxies": "data",
    "Galaxies": "data",
    "galaxy_dls": "dataloaders",
    "show_images": "display",
    "ModelConfig": "models",
    "load_checkpoint": "models",
    "vae_learner": "training",
    "save_learner": "training",
    "evaluate": "metrics",
    "reconstruction_comparison": "plots",
    "LatentExplorer": "widgets",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'galaxy_autoencoders' has no attribute {name!r}")

"""galaxy_autoencoders: what do galaxies look like to a variational autoencoder?

The data path reads top to bottom: `data` (Galaxy10, GalSim and your own galaxies) -> `dataloaders` (fastai) ->
`models` / `losses` -> `training` -> `inference` / `metrics` / `plots` / `widgets` (the README's "How the code is
laid out" has one line per file). Names are imported lazily, so
`import galaxy_autoencoders` stays fast; each lives in the module named below.
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


def _moved_to(package: str, modules: tuple[str, ...]):
    """The __getattr__ of a module whose names moved to `package`: it answers with the package's public names,
    then those of its modules (the constants the old module had), so old imports keep working."""

    def __getattr__(name: str):
        for where in (package, *(f"{package}.{m}" for m in modules)):
            module = importlib.import_module(f"galaxy_autoencoders.{where}")
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"galaxy_autoencoders has no {name!r} in {package} any more; see the README's layout.")

    return __getattr__

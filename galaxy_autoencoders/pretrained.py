"""The models that ship with the package: an autoencoder, an ELBO-VAE and an MMD-VAE, full width, trained for 10
epochs on 20,000 synthetic galaxies (the `pretrained` profile).

A laptop CPU cannot train a full-width VAE on 20,000 galaxies during a notebook cell, so the package carries
three, trained once by `pretraining.train` (`galaxy-ae pretrain`; the command is in each one's provenance):

    from galaxy_autoencoders import pretrained
    pretrained.available()            # {"ae": {...provenance...}, "elbo": {...}, "mmd": {...}}
    model = pretrained.load("mmd")    # a VAE in eval mode, on the CPU

Each model is a checkpoint (`weights/NAME.pt`, float16 weights, loaded with `torch.load(weights_only=True)`)
and its JSON, whose "extra" holds the provenance: command, data (seed, count, sha256), epochs, wall time,
machine, versions and final metrics against the mean-image baseline.
"""

from __future__ import annotations

from pathlib import Path

from .models import checkpoint_info, load_checkpoint

NAMES = ("ae", "elbo", "mmd")
WEIGHTS = Path(__file__).resolve().parent / "weights"


def available() -> dict[str, dict]:
    """{name: what its checkpoint records} for every model shipped in the package (weights and JSON both there):
    the training settings (objective, beta, lam, ...) and, under "provenance", how it was made."""
    found = {}
    for name in NAMES:
        if (WEIGHTS / f"{name}.json").is_file() and (WEIGHTS / f"{name}.pt").is_file():
            found[name] = checkpoint_info(WEIGHTS / name)["extra"]
    return found


def resolve(spec: str, map_location="cpu"):
    """The model a command line names: "pretrained:NAME" (ae, elbo, mmd) or a checkpoint path (name, .pt or .json)."""
    if spec.startswith("pretrained:"):
        return load(spec.split(":", 1)[1], map_location=map_location)
    return load_checkpoint(spec, map_location=map_location)


def load(name: str, map_location="cpu"):
    """The shipped model `name` ("ae", "elbo" or "mmd"), in eval mode on map_location."""
    if name not in NAMES:
        raise ValueError(f"Unknown pretrained model {name!r}; choose one of {NAMES}.")
    if not (WEIGHTS / f"{name}.pt").is_file():
        raise FileNotFoundError(
            f"The pretrained model {name!r} is not in {WEIGHTS}. Install the package from the repository (a clone or "
            f"git+https), which carries it, or make it with `galaxy-ae pretrain {name} --work DIR`."
        )
    return load_checkpoint(WEIGHTS / name, map_location=map_location)

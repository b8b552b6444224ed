"""The two profiles (quick / full) and where data lives: the one place that reads the environment.

`GALAXY_AE_PROFILE=quick|full` picks the profile; `GALAXY_AE_DATA` overrides the data folder; `GALAXY_AE_THREADS=N`
overrides the profile's torch thread count (benchmarks/notebook_stability.py checks the notebooks with 1 and 2).
Everything else in the package takes these values as arguments, so nothing else branches on the profile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

PROFILE_ENV = "GALAXY_AE_PROFILE"
DATA_ENV = "GALAXY_AE_DATA"
THREADS_ENV = "GALAXY_AE_THREADS"


@dataclass(frozen=True)
class Profile:
    """Settings that differ between a classroom-CPU run and the blog's full-scale run."""

    name: str
    dataset: str  # "synthetic" or "galaxy10_sdss"
    n_images: int | None  # None: the whole dataset
    epochs: int
    batch_size: int
    widths: tuple[int, ...] = (32, 64, 128, 256)  # channels of the encoder's convolutions (decoder mirrors)
    lr: float = 2e-3
    seed: int = 42
    # fixed in quick so CPU results repeat; None: torch's default. Not printed: what a notebook prints must not
    # depend on it (benchmarks/notebook_stability.py runs them with 1 and 2 threads).
    num_threads: int | None = field(default=None, repr=False)


PROFILES = {
    # quick: a narrow network and small batches (more steps for the same images), so that a 2-core CPU trains a
    # model that beats the mean image and keeps the galaxies' colours in about 30 s (with 4 epochs instead of 6,
    # the ELBO-VAE's colours were still mostly grey).
    "quick": Profile(
        name="quick",
        dataset="synthetic",
        n_images=2048,
        epochs=6,
        batch_size=32,
        widths=(16, 32, 64, 128),
        num_threads=2,
    ),
    "full": Profile(name="full", dataset="galaxy10_sdss", n_images=None, epochs=50, batch_size=128),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the named profile, else the one in $GALAXY_AE_PROFILE, else `quick` (offline, CPU-friendly)."""
    chosen = name or os.environ.get(PROFILE_ENV) or "quick"
    if chosen not in PROFILES:
        raise ValueError(
            f"Unknown profile {chosen!r} (from {'the argument' if name else '$' + PROFILE_ENV}); "
            f"use one of {sorted(PROFILES)}, e.g. `export {PROFILE_ENV}=quick`."
        )
    profile = PROFILES[chosen]
    threads = os.environ.get(THREADS_ENV)
    if threads:
        if not threads.isdecimal() or int(threads) < 1:
            raise ValueError(f"${THREADS_ENV} is {threads!r}; give a positive whole number of threads, e.g. 2.")
        profile = replace(profile, num_threads=int(threads))
    return profile


def apply_profile(profile: Profile) -> Profile:
    """Seed Python, NumPy and torch and fix the thread count, so a quick run repeats exactly on a CPU."""
    import random

    import numpy as np
    import torch

    random.seed(profile.seed)
    np.random.seed(profile.seed)
    torch.manual_seed(profile.seed)
    if profile.num_threads is not None:
        torch.set_num_threads(profile.num_threads)
    return profile


def notebook_setup(name: str | None = None) -> Profile:
    """The settings cell of every notebook: the profile (`get_profile(name)`), applied (seeds, threads) and
    printed; figures at 72 dpi, galaxies drawn as JPEG so the stored notebook stays small. Returns the profile."""
    import matplotlib.pyplot as plt

    profile = apply_profile(get_profile(name))
    plt.rcParams["figure.dpi"] = 72
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # not in Jupyter: nothing to configure
        shell = None
    if shell is not None:
        shell.run_line_magic("config", 'InlineBackend.figure_formats = ["jpeg"]')
    print(profile)
    return profile


def data_dir() -> Path:
    """Cache folder: $GALAXY_AE_DATA, else `data/` of a source checkout, else the user cache directory."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "data").is_dir():
        return checkout / "data"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "galaxy_autoencoders"


def world_size() -> int:
    """How many processes train together: WORLD_SIZE as torchrun or `accelerate launch` sets it (1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's number, 0 to world_size() - 1 (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))

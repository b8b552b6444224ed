"""The training defaults, the profiles that override them, and where data lives: the one place that reads the
environment.

Each default (widths, latent size, lr, beta, lam, seed, batch size) is defined once below. A profile (`quick`,
`full`, `pretrained`) overrides some of them, in PROFILES and nowhere else; the functions that take these
settings (`ModelConfig`, `Objective`, `vae_learner`, `galaxy_dls`) default to the names here.

`GALAXY_AE_PROFILE=quick|full|pretrained` picks the profile; `GALAXY_AE_DATA` overrides the data folder;
`GALAXY_AE_THREADS=N` overrides the profile's torch thread count (benchmarks/notebook_stability.py checks the
notebooks with 1 and 2).
Everything else in the package takes these values as arguments, so nothing else branches on the profile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

PROFILE_ENV = "GALAXY_AE_PROFILE"
DATA_ENV = "GALAXY_AE_DATA"
THREADS_ENV = "GALAXY_AE_THREADS"

WIDTHS = (32, 64, 128, 256)  # channels after each of the encoder's stride-2 convolutions (the decoder mirrors)
LATENT_SIZE = 20  # the seed notebook's d=20
LR = 2e-3  # fit_one_cycle's peak learning rate
BETA = 1.0  # the ELBO's KL weight (the MMD-VAE trains with none)
# The MMD-VAE's MMD weight, against the reconstruction error summed over an image. Codes bunched at a tenth of
# the prior's spread then cost ~180, five times a good reconstruction's error (RMS 0.05: 0.0025 * 14,283 ~ 36),
# while the offset of two samples of the prior costs ~10, below it (tests/test_losses.py checks both): the
# smallest round value that fills the prior. InfoVAE's lambda=1000 weighs a cross-entropy on MNIST, other units.
LAM = 100.0
KERNEL = "imq"  # the MMD's kernel: inverse multiquadric, whose heavy tails still see distant codes (losses.py)
SEED = 42  # the galaxies drawn, the split, the batch order and the first weights
BATCH_SIZE = 64
VALID_PCT = 0.1  # the share of the galaxies held out for validation


@dataclass(frozen=True)
class Profile:
    """Settings that differ between a classroom-CPU run (quick), the blog's full-scale run (full) and the shipped
    models (pretrained)."""

    name: str
    dataset: str  # "synthetic" or "galaxy10_sdss"
    n_images: int | None  # None: the whole dataset
    epochs: int
    batch_size: int = BATCH_SIZE
    widths: tuple[int, ...] = WIDTHS
    lr: float = LR
    seed: int = SEED
    # fixed in quick so CPU results repeat; None: torch's default. Not printed: what a notebook prints must not
    # depend on it (benchmarks/notebook_stability.py runs them with 1 and 2 threads).
    num_threads: int | None = field(default=None, repr=False)


PROFILES = {
    # quick: a narrow network and small batches (more steps for the same images), so that a 2-core CPU trains a
    # model that beats the mean image and keeps the galaxies' colours in about 30 s; 6 epochs, because in fewer
    # the ELBO-VAE's colours stay grey.
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
    # the shipped models (`galaxy-ae pretrain`): its own seed, so that tests render other galaxies than theirs
    "pretrained": Profile(name="pretrained", dataset="synthetic", n_images=20_000, epochs=10, seed=2020),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the named profile, else the one in $GALAXY_AE_PROFILE, else `quick` (offline, CPU-friendly), with
    $GALAXY_AE_THREADS's thread count if set."""
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


def cpu_info() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ("model name", "flags", ...); {} where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return {}
    first = text.split("\n\n", 1)[0]
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first.splitlines())}


def world_size() -> int:
    """How many processes train together: WORLD_SIZE as torchrun or `accelerate launch` sets it (1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's number, 0 to world_size() - 1 (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))

"""A model checked against what is really there: the noiseless truth of synthetic galaxies.

A reconstruction is usually scored against the model's input. For the synthetic galaxies we also know the
galaxy without its sky noise (`render_truth`), and that changes two readings:

- the error against the truth can be lower than the input's own: a model that leaves the noise out (it cannot
  predict it) may be closer to the galaxy than the noisy picture it was given;
- sharpness: high-frequency power counts sky noise as "detail", so a noisy copy of a galaxy scores sharper than
  the galaxy itself. `fine_detail_error` instead compares the fine detail with the truth's: the high-frequency
  power of (reconstruction - truth) in units of the truth's own. 0 for the truth itself; 1 for any perfectly
  smooth picture (it misses all the detail and adds none); between, a model that draws part of the detail where
  it belongs; above 1, one that adds more fine structure in the wrong places (noise, blotches) than it gets
  right. The noisy input scores far above 1: its sky noise is fine structure the galaxy does not have.
- the floor: the stretch from fluxes to a picture is not linear (negative fluxes clipped at black, each stamp
  scaled by its own brightest pixels, the asinh), so the average of many noisy pictures of a galaxy is not its
  noiseless picture. A model trained to predict its noisy input aims at that average, and even a perfect one
  keeps its difference from the truth: `noise_floor` measures it from copies with other noise
  (`render_noisy_copies`).

Images: float (N, 3, 69, 69) in [0, 1] or uint8 (N, 69, 69, 3); the truth in the same order as the input.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from .data import synthetic
from .data.checks import STAMP
from .inference import as_float_images, reconstruct_all
from .metrics import high_frequency_power, per_galaxy_mse, sharpness_ratio
from .statistics import bootstrap_difference


def render_truth(galaxies, rows=None) -> np.ndarray:
    """The noiseless truth of galaxies `rows` (default: all) of a set from `load_galaxies("synthetic")`, uint8
    (len(rows), 69, 69, 3) in the order of rows: the same parameters, arms, knots and PSF, no sky noise (GalSim)."""
    return _render_again(galaxies, rows, noise=None)


def render_noisy_copies(galaxies, rows=None, copies: int = 8) -> np.ndarray:
    """The same galaxies as render_truth, each drawn `copies` times with other sky noise of the same level:
    uint8 (copies, len(rows), 69, 69, 3). Their average is what a model that predicts its noisy input at
    best can draw (see `noise_floor`)."""
    return np.stack([_render_again(galaxies, rows, noise=copy) for copy in range(copies)])


def _render_again(galaxies, rows, noise: int | None) -> np.ndarray:
    """Galaxies `rows` rendered again from (seed, row): without noise (None) or with noise stream `noise`."""
    if (seed := getattr(galaxies, "seed", None)) is None:
        raise ValueError(
            f"{galaxies!r} is not a synthetic set made by load_galaxies('synthetic', n, seed): only those can be "
            "rendered again (real galaxies have no noiseless truth)."
        )
    rows = range(len(galaxies)) if rows is None else np.asarray(rows).tolist()
    images = np.empty((len(rows), STAMP, STAMP, 3), dtype=np.uint8)
    for k, i in enumerate(rows):
        rng = np.random.default_rng([seed, i])  # as synthetic._render_chunk: galaxy i depends only on (seed, i)
        other = False if noise is None else np.random.default_rng([seed, i, 0x401, noise])
        images[k] = synthetic.render_one(synthetic.sample_parameters(int(galaxies.labels[i]), rng), rng, noise=other)
    return images


def detail_error(recon, truth, cutoff: float = 0.25) -> np.ndarray:
    """Each galaxy's high-frequency power of recon - truth over the truths' mean high-frequency power: (N,).

    Its mean is `fine_detail_error`; per galaxy, two models' values pair up for `bootstrap_difference`."""
    recon, truth = as_float_images(recon), as_float_images(truth)
    if recon.shape != truth.shape:
        raise ValueError(f"recon and truth must have the same shape, got {tuple(recon.shape)}, {tuple(truth.shape)}.")
    scale = high_frequency_power(truth, cutoff).mean()
    if scale <= 0:
        raise ValueError("The truth has no power above the cutoff frequency (flat images?); detail is undefined.")
    return (high_frequency_power(recon - truth, cutoff) / scale).numpy()


def fine_detail_error(recon, truth, cutoff: float = 0.25) -> float:
    """(high-frequency power of recon - truth) / (high-frequency power of truth), summed over the galaxies.

    0: every fine structure of the truth is there and nothing else; 1: as much fine-scale error as the truth has
    detail, what any perfectly smooth picture scores; above 1: more error than detail (noise, artefacts)."""
    return float(detail_error(recon, truth, cutoff).mean())


def truth_report(model: nn.Module, images, truth, bs: int = 256) -> dict:
    """model on images (any container `reconstruct_all` takes) scored against truth, the same galaxies without
    noise (uint8 (N, 69, 69, 3) from `render_truth`, in the same order). Plain floats and arrays:

    mse_vs_input, mse_vs_truth: the reconstructions' MSE (per pixel value) against each; noise_mse: the input's
    own MSE against the truth; vs_noisy_input: mean of mse_vs_truth - noise_mse per galaxy with its 95% bootstrap
    interval (below 0: the model is closer to the galaxy than its noisy input was); sharpness_vs_truth:
    high-frequency power of the reconstructions over the truth's; fine_detail_error (see above); and the
    per-galaxy arrays "mse_truth" and "detail_error" for comparing two models with `bootstrap_difference`.
    """
    x, recon = reconstruct_all(model, images, bs=bs)
    truth = as_float_images(truth)
    if truth.shape != x.shape:
        raise ValueError(f"truth has shape {tuple(truth.shape)}, the images {tuple(x.shape)}: give one per image.")
    mse_truth, noise = per_galaxy_mse(truth, recon), per_galaxy_mse(truth, x)
    errors = detail_error(recon, truth)
    return {
        "mse_vs_input": float(per_galaxy_mse(x, recon).mean()),
        "mse_vs_truth": float(mse_truth.mean()),
        "noise_mse": float(noise.mean()),
        "vs_noisy_input": bootstrap_difference(mse_truth, noise),
        "sharpness_vs_truth": sharpness_ratio(recon, truth),
        "fine_detail_error": float(errors.mean()),
        "mse_truth": mse_truth,
        "detail_error": errors,
    }


def noise_floor(copies, truth) -> dict:
    """The MSE against the truth of each galaxy's average noisy picture, from uint8 copies (K, N, 69, 69, 3)
    of N galaxies with K independent noise draws (`render_noisy_copies`) and their truth (N, 69, 69, 3).

    The average of K copies still holds 1/K of the noise's variance; that share is subtracted, so the result
    estimates the average over infinitely many copies. {"floor": mean over galaxies, "per_galaxy": (N,),
    "copy_mse": one noisy copy's MSE against the truth, the noise's own error}."""
    copies = np.asarray(copies)
    if copies.ndim != 5 or len(copies) < 2:
        raise ValueError(f"copies must be (K >= 2, N, 69, 69, 3) noisy renders, got shape {copies.shape}.")
    truth = as_float_images(truth)
    stack = np.stack([as_float_images(c).numpy() for c in copies])  # (K, N, 3, 69, 69) in [0, 1]
    if stack.shape[1:] != tuple(truth.shape):
        raise ValueError(f"copies hold {stack.shape[1:]} images, the truth {tuple(truth.shape)}: one truth each.")
    k, average = len(stack), stack.mean(0)
    spread = stack.var(0, ddof=1).mean(axis=(1, 2, 3))  # (N,) the noise's variance per pixel value
    per_galaxy = ((average - truth.numpy()) ** 2).mean(axis=(1, 2, 3)) - spread / k
    copy_mse = float(((stack - truth.numpy()[None]) ** 2).mean())
    return {"floor": float(per_galaxy.mean()), "per_galaxy": per_galaxy, "copy_mse": copy_mse}

"""A model checked against what is really there: the noiseless truth of synthetic galaxies.

A reconstruction is usually scored against the model's input. For the synthetic galaxies we also know the
galaxy without its sky noise (`data.synthetic.render_truth`), and that changes two readings:
- the error against the truth can be lower than the input's own: a model that leaves the noise out (it cannot
  predict it) may be closer to the galaxy than the noisy picture it was given;
- sharpness: high-frequency power counts sky noise as "detail", so a noisy copy of a galaxy scores sharper than
  the galaxy itself. `detail_recovered` instead measures how much of the truth's high-frequency power is
  reproduced: 1 for the truth, less for a blurred or a noisy copy, below 0 when a model adds more
  high-frequency error (noise, a checkerboard) than the galaxy has detail.

Images: float (N, 3, 69, 69) in [0, 1] or uint8 (N, 69, 69, 3); the truth in the same order as the input.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from .inference import as_float_images, reconstruct_all
from .metrics import bootstrap_difference, high_frequency_power, per_galaxy_mse, sharpness_ratio


def detail_error(recon, truth, cutoff: float = 0.25) -> np.ndarray:
    """Each galaxy's high-frequency power of recon - truth over the truths' mean high-frequency power: (N,).

    1 - its mean is `detail_recovered`; per galaxy, two models' values pair up for `bootstrap_difference`."""
    recon, truth = as_float_images(recon), as_float_images(truth)
    if recon.shape != truth.shape:
        raise ValueError(f"recon and truth must have the same shape, got {tuple(recon.shape)}, {tuple(truth.shape)}.")
    scale = high_frequency_power(truth, cutoff).mean()
    if scale <= 0:
        raise ValueError("The truth has no power above the cutoff frequency (flat images?); detail is undefined.")
    return (high_frequency_power(recon - truth, cutoff) / scale).numpy()


def detail_recovered(recon, truth, cutoff: float = 0.25) -> float:
    """1 - (high-frequency power of recon - truth) / (high-frequency power of truth), summed over the galaxies.

    1: every fine structure of the truth is there and nothing else; 0: as much high-frequency error as the truth
    has detail (a flat blur of a galaxy scores about 0); below 0: more error than detail (noise, artefacts)."""
    return float(1.0 - detail_error(recon, truth, cutoff).mean())


def truth_report(model: nn.Module, images, truth, bs: int = 256) -> dict:
    """model on images (any container `reconstruct_all` takes) scored against truth, the same galaxies without
    noise (uint8 (N, 69, 69, 3) from `render_truth`, in the same order). Plain floats and arrays:

    mse_vs_input, mse_vs_truth: the reconstructions' MSE (per pixel value) against each; noise_mse: the input's
    own MSE against the truth; vs_noisy_input: mean of mse_vs_truth - noise_mse per galaxy with its 95% bootstrap
    interval (below 0: the model is closer to the galaxy than its noisy input was); sharpness_vs_truth:
    high-frequency power of the reconstructions over the truth's; detail_recovered (see above); and the
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
        "detail_recovered": float(1.0 - errors.mean()),
        "mse_truth": mse_truth,
        "detail_error": errors,
    }

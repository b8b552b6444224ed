"""The seed's lesson as a picture: galaxies that have fine detail to lose, each model's reconstruction beside the
input and the noiseless truth, and each one's fine detail beside the truth's.

A fine-detail map is a picture minus a blurred copy of itself (a Gaussian of BLUR_SIGMA pixels): what is left is
structure a few pixels across, arms, knots, sharp edges and noise, the scales `metrics.high_frequency_power`
measures. (Its sharp Fourier band would ring around every bright point in a picture.)

The galaxies are chosen before any model is looked at, by their true parameters (spiral arms or star-forming
knots) and by how much fine detail their noiseless truth holds, so the choice cannot favour either model.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from .display import grid_figure, image_grid, to_hwc_uint8
from .inference import as_float_images
from .metrics import high_frequency_power

MIN_KNOTS = 3  # a disk with this many star-forming knots or more has detail to lose, arms or not
BLUR_SIGMA = 1.5  # pixels: what a blur this wide removes is structure narrower than about 8 pixels


def detailed_galaxies(params: dict[str, np.ndarray], truth, n: int = 6) -> np.ndarray:
    """Positions of the n galaxies with the most fine detail to lose, among those with spiral arms or at least
    MIN_KNOTS knots: params (their true parameters, each (N,)) and truth (their noiseless pictures, uint8
    (N, 69, 69, 3)) of the same N galaxies -> int (n,), most detailed first."""
    arms, knots = np.asarray(params["n_arms"]), np.asarray(params["n_knots"])
    candidates = np.flatnonzero((arms > 0) | (knots >= MIN_KNOTS))
    if len(candidates) < n:
        raise ValueError(f"Only {len(candidates)} of these {len(arms)} galaxies have arms or knots; ask for fewer.")
    detail = high_frequency_power(as_float_images(np.asarray(truth)[candidates])).numpy()  # (C,)
    return candidates[np.argsort(-detail, kind="stable")[:n]]


def fine_detail(images) -> torch.Tensor:
    """`|image - its Gaussian blur|`, summed over the bands: float (N, 3, H, W) or uint8 (N, H, W, 3) -> (N, H, W)."""
    x = as_float_images(images).numpy()
    # Mirrored at the edges: zeros there would count a grey sky's edge as detail.
    blurred = gaussian_filter(x, sigma=(0, 0, BLUR_SIGMA, BLUR_SIGMA), mode="reflect")
    return torch.from_numpy(np.abs(x - blurred).sum(1))


def detail_map(images, scale: float) -> np.ndarray:
    """Fine detail drawn as brightness: uint8 (N, 69, 69, 3), grey, white where `fine_detail` reaches scale."""
    return to_hwc_uint8((fine_detail(images) / scale).clamp(0, 1).unsqueeze(1).expand(-1, 3, -1, -1))


def detail_gallery(inputs, truth, recons: dict, detail_of=None, size: float = 1.7):
    """The gallery: rows input, truth, one per model in recons {"ELBO": float (N, 3, 69, 69), ...}, then the
    fine detail of the truth and of each model named in detail_of (default: all), on one brightness scale (the
    truth's 99th percentile). `size` inches per galaxy (1.7 at 72 dpi: 122-pixel panels). A matplotlib Figure."""
    detail_of = list(recons) if detail_of is None else list(detail_of)
    truth = as_float_images(truth)
    scale = float(torch.quantile(fine_detail(truth).flatten(), 0.99))
    pictures = [to_hwc_uint8(inputs), to_hwc_uint8(truth), *(to_hwc_uint8(r) for r in recons.values())]
    details = [detail_map(truth, scale), *(detail_map(recons[name], scale) for name in detail_of)]
    n = len(pictures[0])
    if any(len(rows) != n for rows in pictures + details):
        raise ValueError(f"Give the same {n} galaxies in inputs, truth and every reconstruction.")
    labels = [
        "input",
        "truth (no noise)",
        *recons,
        "truth: fine detail",
        *(f"{name}: fine detail" for name in detail_of),
    ]
    return grid_figure(image_grid(np.concatenate(pictures + details), ncols=n), row_labels=labels, size=size)

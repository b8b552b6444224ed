"""Scoring decoded prior samples (galaxy_autoencoders.samples): a classifier that tells real from drawn."""

import numpy as np
import pytest
import torch

from galaxy_autoencoders.models import ModelConfig, build_model
from galaxy_autoencoders.samples import prior_sample_realism, realism


def _galaxies(n: int, seed: int) -> np.ndarray:
    """Round blobs of random size, brightness and position, with noise: uint8 (n, 69, 69, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:69, :69]
    out = np.empty((n, 69, 69, 3), dtype=np.uint8)
    for k in range(n):
        cy, cx, r, b = 34 + rng.normal(0, 3), 34 + rng.normal(0, 3), rng.uniform(4, 12), rng.uniform(0.4, 1.0)
        blob = b * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
        out[k] = np.clip(255 * (blob[..., None] + rng.normal(0, 0.05, (69, 69, 3))), 0, 255).astype(np.uint8)
    return out


def test_two_sets_of_the_same_galaxies_cannot_be_told_apart_and_flat_grey_can():
    real = _galaxies(80, seed=0)
    same = realism(real, _galaxies(80, seed=1))
    assert same["low"] < 0.5 + 0.15 and same["accuracy"] < 0.7  # near chance
    grey = realism(real, np.full_like(real, 128))
    assert grey["accuracy"] > 0.95 and grey["low"] > 0.85
    assert same["correct"].shape == (160,)
    with pytest.raises(ValueError, match="as many samples"):
        realism(real, real[:10])


def test_prior_sample_realism_pairs_two_models_on_the_same_codes():
    torch.manual_seed(0)
    tiny = ModelConfig(latent_size=4, widths=(4, 8, 8, 8))
    models = {"a": build_model(tiny).eval(), "b": build_model(tiny).eval()}
    real = _galaxies(60, seed=2)
    scores = prior_sample_realism(models, real, seed=3)
    d = scores["difference"]
    first, second = scores["a"]["correct"].astype(float), scores["b"]["correct"].astype(float)
    assert d["mean"] == pytest.approx(first.mean() - second.mean())
    assert d["low"] <= d["mean"] <= d["high"]
    again = prior_sample_realism(models, real, seed=3)
    assert np.array_equal(again["a"]["correct"], scores["a"]["correct"])  # the same codes, the same answer

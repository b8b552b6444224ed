"""Do decoded prior samples look like galaxies? A classifier's answer.

A generative model is good when what it draws cannot be told from the real thing. So we ask a small classifier
(a logistic regression on the pixels, 23x23 after averaging each 3x3 block) to tell real galaxies from a
model's decoded prior samples, scoring it on galaxies and samples it was not trained on (5-fold cross
validation). Its accuracy is the score: 0.5 means it cannot tell them apart (the samples pass for galaxies), 1
means it always can. A stronger classifier would tell more apart; the same one for every model makes the
comparison fair.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .inference import as_float_images, decode
from .latent import prior_codes
from .statistics import bootstrap_difference


def pixel_features(images) -> np.ndarray:
    """Images (uint8 (N, 69, 69, 3) or float (N, 3, 69, 69)) -> float (N, 3 * 23 * 23): 3x3-block means."""
    x = as_float_images(images)
    return torch.nn.functional.avg_pool2d(x, 3).flatten(1).numpy()


def realism(real, samples, folds: int = 5, seed: int = 0) -> dict:
    """How well a logistic regression tells real galaxies from samples (equal numbers of each, any image
    container): {"accuracy", "low", "high"} (a 95% bootstrap interval over the images) and "correct", whether
    each image (reals first, then samples) was classified right when held out."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # float64 and a solver run to its optimum (unique: the penalty makes the problem strictly convex), so another
    # CPU's BLAS, which sums in another order, finds the same classifier; stopped at sklearn's default tolerance,
    # it stopped at other weights there, and one held-out image more or less moved an interval's last digit.
    real, samples = pixel_features(real).astype(np.float64), pixel_features(samples).astype(np.float64)
    if len(real) != len(samples):
        raise ValueError(f"Give as many samples as real galaxies ({len(samples)} against {len(real)}).")
    features = np.concatenate([real, samples])
    is_real = np.r_[np.ones(len(real), dtype=int), np.zeros(len(samples), dtype=int)]
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, tol=1e-10, max_iter=20_000))
    held_out = StratifiedKFold(folds, shuffle=True, random_state=seed)
    correct = cross_val_predict(classifier, features, is_real, cv=held_out) == is_real
    spread = bootstrap_difference(correct.astype(float), np.zeros(len(correct)), seed=seed)
    return {"accuracy": float(correct.mean()), "low": spread["low"], "high": spread["high"], "correct": correct}


def prior_sample_realism(models: dict[str, nn.Module], real, seed: int = 0) -> dict:
    """`realism` of each model's decoded prior samples (as many as real galaxies, the same prior codes for every
    model) against the same real galaxies; and, for two models, the difference of their accuracies (first minus
    second) with a 95% bootstrap interval, paired by galaxy and by prior code. Returns {name: realism, ...,
    "difference": {"mean", "low", "high"}}."""
    n = len(real.images if hasattr(real, "images") else real)
    out = {}
    for name, model in models.items():
        samples = decode(model, prior_codes(model.config.latent_size, n, seed))
        out[name] = realism(real, samples, seed=seed)
    if len(models) == 2:
        first, second = (out[name]["correct"].astype(float) for name in models)
        out["difference"] = bootstrap_difference(first, second, seed=seed)
    return out

"""Moving around a trained model's latent space: which dimensions matter, steps in sigma, paths between codes.

The figures (`plots`) and the latent explorer (`widgets`) both call these functions, so a traversal in a
figure and the same slider position in the explorer decode the same code. Codes are float (N, L) on the CPU;
decoded images are float (N, 3, 69, 69) in [0, 1].

Sigma is the spread of the encoded galaxies: for dimension j, sigma_j is the standard deviation of the latent
means mu_j over the data set, as in the seed ("N sigma from the mean in each dimension"). A dimension the
model does not use has sigma_j ~ 0, so stepping it changes nothing, which is the honest picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .inference import encode_all
from .metrics import kl_per_dimension
from .models import VAE


@dataclass(frozen=True)
class LatentStats:
    """Per-dimension facts of a model's codes for a set of galaxies, each (L,): mean, sigma, KL, ranking."""

    mean: torch.Tensor  # (L,) mean of the latent means over the galaxies: the "mean code"
    std: torch.Tensor  # (L,) their standard deviation: one sigma of a traversal
    kl: torch.Tensor | None  # (L,) average KL(q(z_j|x) || N(0, 1)) in nats; None for an AutoEncoder
    order: torch.Tensor  # (L,) dimensions from most to least informative (by KL, else by variance)

    def top(self, k: int) -> list[int]:
        """The k most informative dimensions, most informative first."""
        return [int(j) for j in self.order[:k]]


def latent_stats(model: nn.Module, images, bs: int = 256) -> LatentStats:
    """Mean, sigma, KL and ranking of each latent dimension over images (uint8 NHWC, float NCHW, Galaxies)."""
    mu = encode_all(model, images, bs=bs).double()  # (N, L)
    if len(mu) < 2:
        raise ValueError("latent_stats needs at least 2 galaxies to measure how codes spread; pass more images.")
    kl = kl_per_dimension(model, images, bs=bs) if isinstance(model, VAE) else None
    # KL is the information a dimension carries about the galaxy (nats); an AutoEncoder has none, and the
    # variance of its codes is the next best measure of use.
    score = kl if kl is not None else mu.var(0).float()
    order = torch.argsort(score, descending=True, stable=True)
    return LatentStats(mean=mu.mean(0).float(), std=mu.std(0).float(), kl=kl, order=order)


def prior_stats(latent_size: int) -> LatentStats:
    """Stats of the prior N(0, I): mean 0 and sigma 1 in every dimension, ranked by index (no data needed)."""
    zeros = torch.zeros(latent_size)
    return LatentStats(mean=zeros, std=torch.ones(latent_size), kl=None, order=torch.arange(latent_size))


def sigma_steps(n_sigma: float = 3.0, steps: int = 7) -> torch.Tensor:
    """Evenly spaced offsets -n_sigma..+n_sigma in units of sigma: (steps,), with 0 in the middle (steps odd)."""
    if steps < 3 or steps % 2 == 0:
        raise ValueError(f"steps must be odd and >= 3, so the middle step is the base code itself; got {steps}.")
    if n_sigma <= 0:
        raise ValueError(f"n_sigma must be positive, got {n_sigma}.")
    return torch.linspace(-n_sigma, n_sigma, steps)


def traversal_codes(base: torch.Tensor, dims: list[int], std: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Codes stepping each of dims over sigmas around base: base (L,), std (L,), sigmas (S,) -> (D, S, L)."""
    latent = base.shape[-1]
    bad = [d for d in dims if not 0 <= d < latent]
    if bad:
        raise ValueError(f"Latent dimensions {bad} do not exist; this model has dimensions 0..{latent - 1}.")
    codes = base.float().expand(len(dims), len(sigmas), latent).clone()  # (D, S, L)
    for row, d in enumerate(dims):
        codes[row, :, d] = base[d] + sigmas * std[d]
    return codes


def base_code(model: nn.Module, images, base, stats: LatentStats) -> torch.Tensor:
    """The code to start from: None -> the mean code, int i -> galaxy i's latent mean, a tensor -> itself; (L,)."""
    if base is None:
        return stats.mean.clone()
    if isinstance(base, (int, np.integer)):
        return encode_all(model, images[int(base) : int(base) + 1])[0]
    base = torch.as_tensor(base, dtype=torch.float32)
    if base.shape != stats.mean.shape:
        raise ValueError(f"base code has shape {tuple(base.shape)}; this model's codes are {tuple(stats.mean.shape)}.")
    return base


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line: z0, z1 (L,), t (T,) in [0, 1] -> (T, L), exactly z0 at t=0 and z1 at t=1."""
    t = t.view(-1, 1)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Great-circle path (White 2016): z0, z1 (L,), t (T,) -> (T, L); exact endpoints, lerp if nearly parallel.

    Most of a Gaussian's mass sits near a sphere of radius sqrt(L); a straight line between two codes cuts
    through the middle, where few galaxies live, while slerp keeps the path near the typical radius.
    """
    t = t.view(-1, 1).double()
    a, b = z0.double(), z1.double()
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-4 or (np.pi - omega).abs() < 1e-4:  # (anti)parallel: the great circle is undefined
        return lerp(z0, z1, t.squeeze(1).float())
    out = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
    return out.float()


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int = 8, method: str = "linear") -> torch.Tensor:
    """steps codes from z0 to z1 (both (L,)), endpoints included: (steps, L); method "linear" or "spherical"."""
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (the two end points), got {steps}.")
    t = torch.linspace(0, 1, steps)
    if method == "linear":
        return lerp(z0, z1, t)
    if method in ("spherical", "slerp"):
        return slerp(z0, z1, t)
    raise ValueError(f"method must be 'linear' or 'spherical', got {method!r}.")


def closed_loop(keys: torch.Tensor, n_frames: int) -> torch.Tensor:
    """A smooth closed path through keys (K, L): (n_frames, L), a periodic Catmull-Rom spline.

    Frame f sits at f * K / n_frames keys along, so when K divides n_frames every key is a frame, and the last
    frame leads smoothly back to the first: the GIF loops without a jump or a kink.
    """
    k = len(keys)
    if k < 2 or n_frames < k:
        raise ValueError(f"closed_loop needs at least 2 keys and n_frames >= keys; got {k} keys, {n_frames} frames.")
    u = torch.arange(n_frames, dtype=torch.float64) * k / n_frames
    seg = u.floor().long()  # (F,)
    t = (u - seg).view(-1, 1)  # (F, 1)
    p = keys.double()
    p0, p1, p2, p3 = p[(seg - 1) % k], p[seg % k], p[(seg + 1) % k], p[(seg + 2) % k]  # (F, L) each
    out = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
    return out.float()


def prior_codes(latent_size: int, n: int, seed: int = 0) -> torch.Tensor:
    """n draws from the prior N(0, I): (n, L), the same for the same seed."""
    return torch.randn(n, latent_size, generator=torch.Generator().manual_seed(seed))


def class_mean_codes(mu: torch.Tensor, labels, n_classes: int) -> torch.Tensor:
    """Mean latent code of each class: mu (N, L), labels (N,) in 0..n_classes-1 -> (n_classes, L)."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if labels.shape != (len(mu),):
        raise ValueError(f"labels has shape {tuple(labels.shape)}; expected one label per code, ({len(mu)},).")
    counts = torch.bincount(labels, minlength=n_classes)
    if (counts[:n_classes] == 0).any():
        missing = torch.nonzero(counts[:n_classes] == 0).flatten().tolist()
        raise ValueError(f"Classes {missing} have no galaxies here; use more galaxies to average their codes.")
    sums = torch.zeros(n_classes, mu.shape[1], dtype=torch.float64).index_add_(0, labels, mu.double())
    return (sums / counts[:n_classes, None]).float()

"""Running a trained model on galaxies: encode, reconstruct and decode, in eval mode and without gradients.

Every function here takes the galaxies in any of the package's containers (uint8 (N, 69, 69, 3) images, float
(N, 3, 69, 69) tensors in [0, 1], a `Galaxies`, a `GalaxyLoader` or `DataLoaders`, whose validation galaxies
it uses), runs the model in batches on the model's device, and restores the model's training mode afterwards.
In eval mode a VAE is deterministic: its decoder sees the latent means, and BatchNorm its running statistics.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from .data.checks import check_finite
from .dataloaders import GalaxyLoader


def batches(images, bs: int, device) -> Iterator[torch.Tensor]:
    """Yield float (B, 3, H, W) batches in [0, 1] on device from any of the accepted image containers."""
    if hasattr(images, "valid") and hasattr(images, "train"):  # fastai DataLoaders: the validation set
        images = images.valid
    if isinstance(images, GalaxyLoader):
        for x, *_ in images.new(shuffle=False, augment=False, bs=bs, drop_last=False):
            yield x.to(device)
        return
    if hasattr(images, "images"):  # a Galaxies
        images = images.images
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise TypeError(
            "images must be uint8 (N, H, W, 3), float (N, 3, H, W) in [0, 1], a Galaxies or DataLoaders; "
            f"got {type(images).__name__} {getattr(images, 'shape', '')}."
        )
    if images.dtype == torch.uint8 and images.shape[-1] != 3 or images.dtype != torch.uint8 and images.shape[1] != 3:
        raise ValueError(
            f"images must be uint8 (N, H, W, 3) or float (N, 3, H, W); got {images.dtype} {tuple(images.shape)}."
        )
    check_finite(images, "images")  # a NaN pixel would silently give a NaN code, a NaN error, a black decode
    for start in range(0, len(images), bs):
        yield as_float_images(images[start : start + bs].to(device))  # (B, 3, H, W)


def as_float_images(images) -> torch.Tensor:
    """uint8 (N, H, W, 3) or float (N, 3, H, W) images, array or tensor -> float (N, 3, H, W) in [0, 1]."""
    images = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if images.dtype == torch.uint8:
        return images.permute(0, 3, 1, 2).float().div(255)
    return images.float()


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def evaluating(model: nn.Module):
    """Inside: model.eval() and no gradients; after: the model's previous mode again."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def encode(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mu, logvar) for a VAE, (z, None) for an AutoEncoder: x (B, 3, H, W) -> (B, L) each."""
    out = model.encode(x)
    return out if isinstance(out, tuple) else (out, None)


def outputs(model: nn.Module, images, bs: int = 256) -> Iterator[tuple[torch.Tensor, ...]]:
    """Yield (x, recon, mu, logvar) per batch, on the model's device: x and recon (B, 3, H, W) in [0, 1], mu
    (B, L) (an AutoEncoder's code z), logvar (B, L) or None for an AutoEncoder. recon = decode(mu), which is
    what a model's forward gives in eval mode."""
    with evaluating(model):
        for x in batches(images, bs, model_device(model)):
            mu, logvar = encode(model, x)
            yield x, model.decode(mu), mu, logvar


def encode_all(model: nn.Module, images, bs: int = 256) -> torch.Tensor:
    """Latent means (the code z for an AutoEncoder) of all images: float (N, L) on the CPU."""
    with evaluating(model):
        return torch.cat([encode(model, x)[0].float().cpu() for x in batches(images, bs, model_device(model))])


def reconstruct_all(model: nn.Module, images, bs: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, reconstructions), both float (N, 3, H, W) in [0, 1] on the CPU; 57 kB a galaxy, keep N modest."""
    pairs = [(x.float().cpu(), recon.float().cpu()) for x, recon, _, _ in outputs(model, images, bs)]
    return torch.cat([x for x, _ in pairs]), torch.cat([recon for _, recon in pairs])


def decode(model: nn.Module, z: torch.Tensor, bs: int = 256) -> torch.Tensor:
    """Decode codes (..., L): float (N, 3, 69, 69) in [0, 1] on the CPU, N the number of codes."""
    flat = z.reshape(-1, z.shape[-1]).float()  # (N, L)
    with evaluating(model):  # BatchNorm uses its running statistics: one code always gives the same galaxy
        return torch.cat([model.decode(chunk.to(model_device(model))).float().cpu() for chunk in flat.split(bs)])

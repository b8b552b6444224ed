"""Figures of trained models: the seed's original-vs-ELBO-vs-MMD comparison, latent traversals,
interpolations, prior samples, class-mean arithmetic and the latent-walk GIF.

Every figure is drawn from a uint8 array that a function here returns (`comparison_array`,
`latent_traversal(...).tiles`, `interpolation_strip`, `latent_walk_frames`, ...), so tests check the arrays and
the figure only adds labels. Images come in as the package stores them, uint8 (N, 69, 69, 3) (or a
`Galaxies`), or as models return them, float (N, 3, 69, 69) in [0, 1]. Functions that take `models` accept one
model or a dict {"ELBO": model, "MMD": model}, one row (or panel) per model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .display import grid_figure, image_grid, to_hwc_uint8
from .files import atomic_write, check_output_file
from .inference import decode, encode_all
from .latent import (
    LatentStats,
    base_code,
    class_mean_codes,
    closed_loop,
    interpolate,
    latent_stats,
    prior_codes,
    sigma_steps,
    traversal_codes,
)

PAD = 2  # black pixels between tiles: enough to separate galaxies whose dark sky would otherwise merge


def comparison_array(images, recons: dict, n: int = 6, pad: int = PAD) -> np.ndarray:
    """Row 1 the first n images, then one row per model in recons: uint8 ((1 + M) * (69 + pad) - pad, n * 71 - 2, 3).

    images: uint8 (N, 69, 69, 3) or float (N, 3, 69, 69) in [0, 1]; recons: {"ELBO": float (N, 3, 69, 69), ...}.
    """
    originals = to_hwc_uint8(images)
    if n < 1 or len(originals) < n:
        raise ValueError(f"comparison_array needs n >= 1 and at least n images; got n={n} and {len(originals)} images.")
    rows = [originals[:n]]
    for name, recon in recons.items():
        recon = to_hwc_uint8(recon)
        if len(recon) < n or recon.shape[1:] != originals.shape[1:]:
            raise ValueError(
                f"Reconstructions {name!r} have shape {recon.shape} (as uint8 NHWC); expected at least {n} images "
                f"of {originals.shape[1:]} like the originals. Pass the model's output for the same galaxies."
            )
        rows.append(recon[:n])
    return image_grid(np.concatenate(rows), ncols=n, pad=pad)


def reconstruction_comparison(images, recons: dict, n: int = 6, size: float = 1.1, original_label: str = "original"):
    """The seed's figure: originals on top, one row of reconstructions per model, labelled on the left; a Figure."""
    array = comparison_array(images, recons, n=n)
    return grid_figure(array, row_labels=[original_label, *recons], size=size)


def _models(models) -> dict[str, nn.Module]:
    """One model or a dict of them -> a dict (name -> model); a lone model is called "model"."""
    if isinstance(models, nn.Module):
        return {"model": models}
    if not isinstance(models, dict) or not models or not all(isinstance(m, nn.Module) for m in models.values()):
        raise TypeError(
            f"models must be a model or a non-empty dict of them, e.g. {{'ELBO': elbo}}; got {models!r:.80}."
        )
    return models


def _image_array(images) -> np.ndarray | torch.Tensor:
    """The indexable images inside a Galaxies (its .images), else images itself."""
    return images.images if hasattr(images, "images") else images


def _tiles(decoded: torch.Tensor) -> np.ndarray:
    """Decoded images float (N, 3, 69, 69) -> uint8 (N, 69, 69, 3), the form every array here is in."""
    return to_hwc_uint8(decoded)


def _sigma_label(s: float) -> str:
    return "0σ" if abs(s) < 1e-9 else f"{s:+.3g}σ"


# ----------------------------------------------------------------------------------------------------------
# Latent traversals: one dimension at a time, in steps of sigma


@dataclass(frozen=True)
class Traversal:
    """Decoded galaxies stepping chosen latent dimensions: tiles uint8 (D, S, 69, 69, 3), one row per dimension."""

    tiles: np.ndarray  # (D, S, 69, 69, 3); the middle column (sigma 0) is the base code's galaxy
    dims: list[int]  # the dimension stepped in each row
    sigmas: np.ndarray  # (S,) offsets in units of sigma, -n_sigma..+n_sigma
    base: torch.Tensor  # (L,) the code every row starts from
    kl: list[float] | None  # each row's average KL in nats (VAE), the reason it was chosen

    @property
    def grid(self) -> np.ndarray:
        """All tiles as one uint8 image: (D * 71 - 2, S * 71 - 2, 3)."""
        d, s = self.tiles.shape[:2]
        return image_grid(self.tiles.reshape(d * s, *self.tiles.shape[2:]), ncols=s)


def latent_traversal(
    model: nn.Module,
    images,
    dims: Sequence[int] | None = None,
    k: int = 6,
    n_sigma: float = 3.0,
    steps: int = 7,
    base=None,
    stats: LatentStats | None = None,
) -> Traversal:
    """Step each of dims (default: the k with the most KL) over -n_sigma..+n_sigma around base; a Traversal.

    base: None for the mean code of images, an int for that galaxy's code, or a code (L,). sigma per dimension
    is the spread of the images' latent means (see `latent`); pass stats to reuse one `latent_stats`.
    """
    stats = stats or latent_stats(model, images)
    dims = stats.top(k) if dims is None else [int(d) for d in dims]
    sigmas = sigma_steps(n_sigma, steps)
    start = base_code(model, _image_array(images), base, stats)
    codes = traversal_codes(start, dims, stats.std, sigmas)  # (D, S, L)
    tiles = _tiles(decode(model, codes)).reshape(len(dims), len(sigmas), *_tile_shape(model))
    kl = [float(stats.kl[d]) for d in dims] if stats.kl is not None else None
    return Traversal(tiles=tiles, dims=dims, sigmas=sigmas.numpy(), base=start, kl=kl)


def _tile_shape(model: nn.Module) -> tuple[int, int, int]:
    config = model.config
    return (config.img_size, config.img_size, config.channels)


def plot_traversal(traversals: Traversal | dict, size: float = 0.9, title: str | None = None):
    """One row per stepped dimension (per model for a dict), columns -N..+N sigma; returns the Figure."""
    named = traversals if isinstance(traversals, dict) else {"": traversals}
    first = next(iter(named.values()))
    if any(len(t.sigmas) != len(first.sigmas) for t in named.values()):
        raise ValueError(
            "All traversals in one figure need the same sigma steps; make them with the same n_sigma, steps."
        )
    tiles = np.concatenate([t.tiles for t in named.values()])  # (sum D, S, 69, 69, 3)
    rows = []
    for name, t in named.items():
        for i, d in enumerate(t.dims):
            kl = f" ({t.kl[i]:.1f} nats)" if t.kl is not None else ""
            rows.append(f"{name} z{d}{kl}".strip())
    grid = image_grid(tiles.reshape(-1, *tiles.shape[2:]), ncols=tiles.shape[1])
    return grid_figure(
        grid, row_labels=rows, col_labels=[_sigma_label(s) for s in first.sigmas], title=title, size=size
    )


def save_traversal(
    models, images, path: str | os.PathLike, k: int = 6, n_sigma: float = 3.0, steps: int = 7, dpi: int = 100
) -> Path:
    """Write the traversal figure of one model or a dict of them (k dimensions each) to path; returns the path."""
    import matplotlib.pyplot as plt

    named = _models(models)
    traversals = {name: latent_traversal(m, images, k=k, n_sigma=n_sigma, steps=steps) for name, m in named.items()}
    fig = plot_traversal(traversals if len(named) > 1 else next(iter(traversals.values())))
    try:
        return save_figure(fig, path, dpi=dpi)
    finally:
        plt.close(fig)


# ----------------------------------------------------------------------------------------------------------
# Interpolation between two galaxies


def interpolation_strip(model: nn.Module, images, i: int, j: int, steps: int = 8, method: str = "linear") -> np.ndarray:
    """Decoded path from galaxy i's code to galaxy j's: uint8 (steps, 69, 69, 3), ends = their reconstructions."""
    pair = _image_array(images)[[i, j]]
    mu = encode_all(model, pair)  # (2, L)
    return _tiles(decode(model, interpolate(mu[0], mu[1], steps, method)))


def plot_interpolation(
    models, images, i: int, j: int, steps: int = 8, methods: Sequence[str] = ("linear", "spherical"), size=0.9
):
    """Rows: the two input galaxies at the ends, then one strip per model and method; returns the Figure."""
    named = _models(models)
    pair = to_hwc_uint8(_image_array(images)[[i, j]])
    inputs = np.zeros((steps, *pair.shape[1:]), dtype=np.uint8)
    inputs[0], inputs[-1] = pair  # only the ends are real galaxies; the gap between stays black
    strips, rows = [inputs], [f"inputs {i} → {j}"]
    for name, model in named.items():
        for method in methods:
            strips.append(interpolation_strip(model, images, i, j, steps, method))
            rows.append(f"{name} {method}")
    grid = image_grid(np.concatenate(strips), ncols=steps)
    cols = [f"t={t:.2f}".rstrip("0").rstrip(".") for t in np.linspace(0, 1, steps)]
    return grid_figure(grid, row_labels=rows, col_labels=cols, size=size)


# ----------------------------------------------------------------------------------------------------------
# Samples from the prior, class means and arithmetic


def prior_sample_array(model: nn.Module, n: int = 8, seed: int = 0) -> np.ndarray:
    """Decode n codes drawn from the prior N(0, I): uint8 (n, 69, 69, 3), the same for the same seed."""
    return _tiles(decode(model, prior_codes(model.config.latent_size, n, seed)))


def plot_prior_samples(models, n: int = 8, seed: int = 0, size: float = 0.9):
    """One row of n prior samples per model (each model its own draws of the same seed); returns the Figure."""
    named = _models(models)
    grid = image_grid(np.concatenate([prior_sample_array(m, n, seed) for m in named.values()]), ncols=n)
    return grid_figure(grid, row_labels=list(named), size=size)


def class_mean_array(model: nn.Module, images, labels, n_classes: int = 10) -> np.ndarray:
    """Decode each class's mean latent code: uint8 (n_classes, 69, 69, 3)."""
    means = class_mean_codes(encode_all(model, images), labels, n_classes)
    return _tiles(decode(model, means))


def arithmetic_codes(means: torch.Tensor, start: int, plus: int, minus: int, strengths) -> torch.Tensor:
    """means[start] + s * (means[plus] - means[minus]) for each s: means (K, L) -> (S, L); s=0 is the start class."""
    direction = means[plus] - means[minus]  # (L,) e.g. "spiral minus no spiral"
    s = torch.as_tensor(list(strengths), dtype=torch.float32).view(-1, 1)
    return means[start] + s * direction


def arithmetic_strip(
    model: nn.Module, images, labels, start: int, plus: int, minus: int, strengths=(0, 0.5, 1, 1.5), n_classes=10
) -> np.ndarray:
    """Decoded class-mean arithmetic (see arithmetic_codes): uint8 (len(strengths), 69, 69, 3)."""
    means = class_mean_codes(encode_all(model, images), labels, n_classes)
    return _tiles(decode(model, arithmetic_codes(means, start, plus, minus, strengths)))


def plot_class_means(models, images, labels, n_classes: int = 10, size: float = 0.9):
    """One row per model of the decoded mean code of each class (columns are class numbers); returns the Figure."""
    named = _models(models)
    grid = image_grid(
        np.concatenate([class_mean_array(m, images, labels, n_classes) for m in named.values()]), ncols=n_classes
    )
    return grid_figure(grid, row_labels=list(named), col_labels=[str(c) for c in range(n_classes)], size=size)


def plot_latent_arithmetic(
    models, images, labels, start: int, plus: int, minus: int, strengths=(0, 0.5, 1, 1.5), n_classes=10, names=None
):
    """Rows per model: class `start`'s mean code plus s x (mean of `plus` - mean of `minus`); returns the Figure."""
    named = _models(models)
    strips = [arithmetic_strip(m, images, labels, start, plus, minus, strengths, n_classes) for m in named.values()]
    grid = image_grid(np.concatenate(strips), ncols=len(strengths))
    name = (lambda c: names[c]) if names else (lambda c: f"class {c}")
    title = f"{name(start)}  +  s × ({name(plus)}  −  {name(minus)})"
    return grid_figure(grid, row_labels=list(named), col_labels=[f"s={s:g}" for s in strengths], title=title, size=1.0)


# ----------------------------------------------------------------------------------------------------------
# The latent walk: a closed loop through several encoded galaxies, decoded frame by frame into a GIF


def latent_walk_frames(models, images, n_frames: int = 48, keys: int | Sequence[int] = 6, seed: int = 0, scale=3):
    """Frames of a smooth closed walk through key galaxies' codes, models side by side: uint8 (F, H, W, 3).

    keys: how many galaxies to pass through (chosen by seed) or their indices; each model walks through its
    own codes of the same galaxies. Panels are scaled up `scale` times (nearest pixel; 3: 207 pixels, a size
    a projector shows) under a 14-pixel strip with the model names and a progress bar.
    """
    from PIL import Image, ImageDraw

    named = _models(models)
    source = _image_array(images)
    if isinstance(keys, int):
        keys = np.sort(np.random.default_rng(seed).choice(len(source), size=keys, replace=False))
    keys = [int(i) for i in keys]
    panels = []
    for model in named.values():
        codes = closed_loop(encode_all(model, source[keys]), n_frames)  # (F, L)
        tiles = _tiles(decode(model, codes))  # (F, 69, 69, 3)
        panels.append(tiles.repeat(scale, axis=1).repeat(scale, axis=2))
    side, gap, strip = panels[0].shape[1], 4, 14  # strip: room for one line of the default 10-px font
    frames = np.zeros((n_frames, strip + side, len(panels) * (side + gap) - gap, 3), dtype=np.uint8)
    header = Image.new("RGB", (frames.shape[2], strip))
    draw = ImageDraw.Draw(header)
    for p, name in enumerate(named):
        draw.text((p * (side + gap) + 3, 1), name, fill=(255, 255, 255))
    frames[:, :strip] = np.asarray(header)
    # A thin bar under the names grows with the frame number: it shows where the loop starts, and makes every
    # frame differ from the last (Pillow merges identical GIF frames, which would change the frame count).
    width = frames.shape[2]
    for f in range(n_frames):
        frames[f, strip - 2 :, : -(-(f + 1) * width // n_frames)] = 96
    for p, panel in enumerate(panels):
        frames[:, strip:, p * (side + gap) : p * (side + gap) + side] = panel
    return frames


def save_gif(frames: np.ndarray, path: str | os.PathLike, fps: float = 12) -> Path:
    """Write uint8 frames (F, H, W, 3) as a looping GIF at fps (to 1/100 s), atomically; returns the path."""
    from PIL import Image

    path = check_output_file(path, "animation")
    path.parent.mkdir(parents=True, exist_ok=True)
    # One 256-colour palette for the whole animation, without dithering: per-frame palettes and dither noise
    # defeat the GIF's compression (a 48-frame walk shrinks from ~1.2 MB to ~0.5 MB) and make colours flicker.
    sample = frames[:: max(1, len(frames) // 12)]
    palette = Image.fromarray(np.concatenate(list(sample), axis=0)).quantize(256, method=Image.Quantize.MEDIANCUT)
    pictures = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    frame_ms = 10 * max(1, round(100 / fps))  # GIF stores delays in hundredths of a second
    # Pillow stores only the rectangle that changed from the previous frame, which keeps a slow walk small.
    return atomic_write(
        path,
        lambda tmp: pictures[0].save(
            tmp, format="GIF", save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0
        ),
    )


def save_latent_walk_gif(
    models, images, path: str | os.PathLike, n_frames: int = 48, keys=6, fps: float = 12, seed: int = 0, scale=3
) -> Path:
    """Write the latent walk (see latent_walk_frames) of one model or several side by side as a GIF; the path."""
    return save_gif(latent_walk_frames(models, images, n_frames, keys, seed, scale), path, fps=fps)


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write fig to path (format from its suffix: .png, .jpg, .pdf, .svg) atomically; returns the path."""
    path = check_output_file(path, "figure")
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix[1:].lower()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt, bbox_inches="tight", pad_inches=0.05))


def plot_intervals(differences: dict[str, dict], xlabel: str, ax=None):
    """Differences with their 95% intervals, one row each ({"seed +0": {"mean", "low", "high"}, ...}, as
    `statistics.bootstrap_difference` gives them), around a line at 0: a row whose bar crosses the line is one
    whose galaxies do not tell the two apart. Differences below 0.01 are drawn in units of a power of ten, which the
    x label names. Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    if not differences:
        raise ValueError(f"No differences to plot for {xlabel!r}: the runs it compares have not finished yet.")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 0.5 + 0.4 * len(differences)))
    means = np.array([d["mean"] for d in differences.values()])
    lows, highs = (np.array([d[key] for d in differences.values()]) for key in ("low", "high"))
    largest = np.abs(np.concatenate([lows, highs])).max()
    power = int(np.floor(np.log10(largest))) if 0 < largest < 0.01 else 0  # 0.0002 drawn as 2, "x 10^-4" in the label
    scale = 10.0**-power
    rows = np.arange(len(differences))
    ax.errorbar(means * scale, rows, xerr=[(means - lows) * scale, (highs - means) * scale], fmt="o", capsize=3)
    ax.axvline(0, color="grey", lw=1)
    label = xlabel + (f" ($\\times 10^{{{power}}}$)" if power else "")
    ax.set(yticks=rows, yticklabels=list(differences), ylim=(len(differences) - 0.5, -0.5), xlabel=label)
    ax.xaxis.set_major_locator(plt.MaxNLocator(5))
    return ax

"""Galaxies to pictures: one grid function that every figure of galaxies in the package goes through."""

from __future__ import annotations

import math
import textwrap

import numpy as np


def to_hwc_uint8(images) -> np.ndarray:
    """Images as uint8 (N, H, W, 3): accepts uint8 (0-255) or float ([0, 1]) arrays or tensors, NHWC or NCHW."""
    if hasattr(images, "detach"):
        images = images.detach().cpu()
        # A uint8 tensor stays uint8: as floats its 0-255 values would be clipped to [0, 1], a white blotch.
        images = images.numpy() if str(images.dtype) == "torch.uint8" else images.float().numpy()
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.shape[-1] != 3 and images.shape[1] == 3:
        images = images.transpose(0, 2, 3, 1)
    if images.dtype != np.uint8:
        images = np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)
    return images


def image_grid(images, ncols: int = 8, pad: int = 2) -> np.ndarray:
    """Tile images into one array: (N, H, W, 3) -> uint8 (rows*(H+pad)-pad, ncols*(W+pad)-pad, 3), black gaps."""
    images = to_hwc_uint8(images)
    n, h, w, c = images.shape
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    grid = np.zeros((nrows * (h + pad) - pad, ncols * (w + pad) - pad, c), dtype=np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, ncols)
        grid[r * (h + pad) : r * (h + pad) + h, k * (w + pad) : k * (w + pad) + w] = img
    return grid


def show_images(images, titles=None, ncols: int = 8, figsize=None, row_labels=None, title_size: int = 7):
    """Plot galaxies in a grid with optional per-image titles and row labels; returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    images = to_hwc_uint8(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    # A title wider than its picture runs into the next one: wrap it at about the picture's width.
    titles = None if titles is None else [textwrap.fill(str(t), 18) for t in titles]
    lines = max((t.count("\n") + 1 for t in titles), default=0) if titles else 0
    figsize = figsize or (1.3 * ncols, 1.3 * nrows + 0.15 * lines * nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if i < n:
            ax.imshow(images[i])
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=title_size)
    if row_labels:
        for r, label in enumerate(row_labels[:nrows]):
            axes[r, 0].set_ylabel(label, fontsize=9)
    fig.tight_layout()
    return fig


def class_examples(labels, per_class: int = 6, n_classes: int = 10) -> np.ndarray:
    """Indices of the first per_class galaxies of each class: int (n_classes, per_class), -1 where too few."""
    labels = np.asarray(labels)
    out = np.full((n_classes, per_class), -1, dtype=np.int64)
    for c in range(n_classes):
        found = np.flatnonzero(labels == c)[:per_class]
        out[c, : len(found)] = found
    return out


def show_class_grid(images, labels, class_names, per_class: int = 6, size: float = 1.0):
    """One row of example galaxies per class, the class name on the left; returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    images = to_hwc_uint8(images)
    rows = class_examples(labels, per_class, len(class_names))
    fig, axes = plt.subplots(len(class_names), per_class, figsize=(size * per_class + 2.2, size * len(rows)))
    for c, row in enumerate(rows):
        for k, i in enumerate(row):
            ax = axes[c, k]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if i >= 0:
                ax.imshow(images[i])
        axes[c, 0].set_ylabel(f"{c}: {class_names[c]}", rotation=0, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(left=0.3, wspace=0.05, hspace=0.05)
    return fig

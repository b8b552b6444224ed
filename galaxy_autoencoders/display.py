"""Galaxies to pictures. Every figure of galaxies in the package is one image of tiles: `image_grid` tiles the
galaxies, and `grid_figure` draws the tiles with their row and column labels (`show_images` adds per-galaxy
titles on white bands). One image, so a grid of hundreds of galaxies is as quick to draw as one."""

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


def _image_figure(array: np.ndarray, figsize):
    """A figure showing the uint8 array (H, W, 3) as one image, without ticks or frame: (fig, ax)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    ax.imshow(array, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig, ax


def grid_figure(
    array: np.ndarray, row_labels=(), col_labels=(), title=None, tile: int = 69, pad: int = 2, size=1.1, figsize=None
):
    """A tiled uint8 array (H, W, 3) from `image_grid` as one image, labels centred on its rows (left) and
    columns (top): a matplotlib Figure. `size` inches per galaxy, unless figsize is given."""
    nrows, ncols = (array.shape[0] + pad) // (tile + pad), (array.shape[1] + pad) // (tile + pad)
    # Room for the labels on top of `size` inches per galaxy (a 9-point character is about 0.07 inch wide);
    # constrained layout then keeps them inside without shrinking the galaxies.
    longest = max((len(str(label)) for label in row_labels), default=0)
    width = size * ncols + (max(0.9, 0.2 + 0.07 * longest) if row_labels else 0.1)
    height = size * nrows + (0.3 if col_labels else 0.1) + (0.3 if title else 0.0)
    fig, ax = _image_figure(array, figsize or (width, height))
    ax.set_yticks([r * (tile + pad) + (tile - 1) / 2 for r in range(len(row_labels))], list(row_labels))
    ax.set_xticks([k * (tile + pad) + (tile - 1) / 2 for k in range(len(col_labels))], list(col_labels))
    ax.xaxis.tick_top()
    ax.tick_params(length=0, labelsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def show_images(images, titles=None, ncols: int = 8, figsize=None, row_labels=None, title_size: int = 7):
    """Plot galaxies in a grid with optional per-image titles and row labels; returns the matplotlib figure."""
    images = to_hwc_uint8(images)
    ncols = max(1, min(ncols, len(images)))
    nrows = math.ceil(len(images) / ncols)
    grid, tile = image_grid(images, ncols), images.shape[1]
    if titles is None:
        return grid_figure(grid, row_labels=row_labels or (), tile=tile, size=1.3, figsize=figsize)
    # Each row of galaxies gets a white band above it for its titles, wrapped at about a galaxy's width.
    titles = [textwrap.fill(str(t), 18) for t in titles]
    band = 9 * max(t.count("\n") + 1 for t in titles)  # pixels: a 7-point line is ~8 pixels of a galaxy 1.3" wide
    white = np.full((band, grid.shape[1], 3), 255, dtype=np.uint8)
    rows = [grid[r * (tile + 2) : r * (tile + 2) + tile] for r in range(nrows)]
    array = np.concatenate([part for row in rows for part in (white, row)])
    fig, ax = _image_figure(array, figsize or (1.3 * ncols + 0.1, 1.3 * nrows * (tile + band) / tile + 0.1))
    for i, text in enumerate(titles):
        r, k = divmod(i, ncols)
        x, y = k * (tile + 2) + (tile - 1) / 2, r * (tile + band) + band - 1
        ax.text(x, y, text, ha="center", va="bottom", fontsize=title_size)
    for r, label in enumerate((row_labels or ())[:nrows]):
        ax.text(-4, r * (tile + band) + band + tile / 2, label, ha="right", va="center", fontsize=9)
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
    images = to_hwc_uint8(images)
    rows = class_examples(labels, per_class, len(class_names))  # (K, per_class), -1 where a class has too few
    blank = np.zeros((1, *images.shape[1:]), dtype=np.uint8)
    tiles = np.concatenate([images, blank])[rows.reshape(-1)]  # index -1: the black blank
    names = [f"{c}: {name}" for c, name in enumerate(class_names)]
    return grid_figure(image_grid(tiles, ncols=per_class), row_labels=names, tile=images.shape[1], size=size)

"""Galaxy10 DECaLS (256x256 stamps) downsampled in chunks to the package's 69x69, by exact area averaging."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from .checks import STAMP
from .errors import GalaxyDataError
from .galaxy10 import GALAXY10_DECALS_CLASSES
from .hdf5 import atomic_h5, h5_data_bytes, open_h5, require_galaxy10_keys

DECALS_CACHE_FILENAME = "Galaxy10_DECals_69px.h5"


def downsample_decals(src: str | os.PathLike, dest: str | os.PathLike, chunk: int = 512, progress: bool = True) -> Path:
    """Area-average Galaxy10 DECaLS images uint8 (N, 256, 256, 3) to (N, 69, 69, 3), `chunk` at a time."""
    src, dest = Path(src), Path(dest)
    with open_h5(src) as f:
        require_galaxy10_keys(f, src)
        images = f["images"]
        if images.ndim != 4 or images.shape[3] != 3 or min(images.shape[1:3]) < STAMP or images.dtype != np.uint8:
            raise GalaxyDataError(
                f"{src}: `images` is {images.dtype} {images.shape}; downsample_decals expects uint8 "
                f"(N, H, W, 3) with H, W >= {STAMP}, like Galaxy10 DECaLS's (17736, 256, 256, 3)."
            )
        count, height, width, _ = images.shape
        rows = _area_weights(height, STAMP)  # (69, H)
        cols = _area_weights(width, STAMP)  # (69, W)
        with atomic_h5(dest, h5_data_bytes(count, n_params=0)) as out:
            small = out.create_dataset("images", (count, STAMP, STAMP, 3), dtype=np.uint8)
            # Reading `chunk` images at a time keeps memory at ~chunk x 0.8 MB instead of the 3.5 GB whole.
            for start in tqdm(range(0, count, chunk), desc=f"downsampling {src.name}", disable=not progress):
                small[start : start + chunk] = _area_downsample(images[start : start + chunk], rows, cols)
            for key in f:  # ans, ra, dec, redshift, pxscale: one value per image, copied along
                if key != "images" and isinstance(f[key], h5py.Dataset) and f[key].shape[:1] == (count,):
                    values = f[key][:]
                    if key == "pxscale":  # arcsec per pixel grows as the pixels get bigger
                        values = values * (height / STAMP)
                    out.create_dataset(key, data=values)
            out.attrs["class_names"] = json.dumps(list(GALAXY10_DECALS_CLASSES))
            out.attrs["source"] = f"{src.name}, {height}x{width} area-averaged to {STAMP}x{STAMP}"
    return dest


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """Matrix float32 (n_out, n_in): output pixel i is the mean of the input over its exact footprint.

    Output pixel i covers [i * n_in / n_out, (i + 1) * n_in / n_out) in input pixels; 256 / 69 is not an
    integer, so border input pixels are shared between two outputs in proportion to their overlap. Working
    in units of 1 / n_out keeps every edge an integer, so the weights are exact and each row sums to 1.
    """
    out_lo = np.arange(n_out)[:, None] * n_in  # (n_out, 1), output edges in units of 1 / n_out
    in_lo = np.arange(n_in)[None, :] * n_out  # (1, n_in), input edges in the same units
    overlap = np.minimum(out_lo + n_in, in_lo + n_out) - np.maximum(out_lo, in_lo)
    return (np.clip(overlap, 0, None) / n_in).astype(np.float32)


def _area_downsample(block: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, C) -> uint8 (B, h, w, C) with weights rows (h, H) and cols (w, W), rounded."""
    b, height, width, channels = block.shape
    x = np.matmul(rows, block.reshape(b, height, width * channels).astype(np.float32))  # (B, h, W*C)
    x = np.matmul(cols, x.reshape(b, len(rows), width, channels))  # (B, h, w, C)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)

"""A latent catalogue of your galaxies: one row per galaxy, to join with other data, find neighbours and outliers.

`encode_catalogue(model, galaxies)` gives a pandas DataFrame with

- `id`: the galaxy's file name (a folder of cutouts) or its index;
- `mu_0 .. mu_{L-1}`: the latent means (the code itself for a plain autoencoder);
- `sigma_0 .. sigma_{L-1}`: the posterior's standard deviation per dimension (VAEs only);
- `recon_mse`: the reconstruction's mean squared error per pixel value, in [0, 1] units: an outlier score
  (a galaxy unlike the training set, an artefact, a star, a bad cutout reconstructs worst);
- `label`: the class name, where the galaxies have labels.

`galaxy-ae encode` writes it as CSV, or Parquet when the name ends in .parquet, and can draw the neighbours of
one galaxy and the worst-reconstructed galaxies as grids.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .files import atomic_write, check_output_file
from .inference import outputs
from .metrics import per_galaxy_mse
from .progress import iterate


def encode_catalogue(model: torch.nn.Module, galaxies, bs: int = 256, progress: bool | None = None) -> pd.DataFrame:
    """The catalogue of `galaxies` (a Galaxies, or uint8 images (N, 69, 69, 3)) under `model`; see the module.

    progress: a bar over the batches (None: only for more than 20 batches); a plain line every 10% when the
    output is not a terminal."""
    images = galaxies.images if hasattr(galaxies, "images") else np.asarray(galaxies)
    n_batches = math.ceil(len(images) / bs)
    show = n_batches > 20 if progress is None else progress
    mus, sigmas, errors = [], [], []
    for x, recon, mu, logvar in iterate(outputs(model, images, bs), "Encoding", show=show, total=n_batches):
        if logvar is not None:  # a VAE
            sigmas.append(torch.exp(0.5 * logvar).float().cpu())
        mus.append(mu.float().cpu())
        errors.append(per_galaxy_mse(x.cpu(), recon.float().cpu()))
    mu = torch.cat(mus).numpy()
    columns = {"id": list(_ids(galaxies, len(images)))}
    columns |= {f"mu_{j}": mu[:, j] for j in range(mu.shape[1])}
    if sigmas:
        sigma = torch.cat(sigmas).numpy()
        columns |= {f"sigma_{j}": sigma[:, j] for j in range(sigma.shape[1])}
    columns["recon_mse"] = np.concatenate(errors)
    if getattr(galaxies, "labelled", False):
        columns["label"] = [galaxies.class_names[i] for i in galaxies.labels]
    return pd.DataFrame(columns)


def _ids(galaxies, n: int):
    ids = getattr(galaxies, "ids", None)
    return ids if ids is not None else (str(i) for i in range(n))


def latent_means(catalogue: pd.DataFrame) -> np.ndarray:
    """The mu_* columns as float (N, L)."""
    return catalogue[[c for c in catalogue.columns if c.startswith("mu_")]].to_numpy(dtype=np.float64)


def nearest_neighbours(catalogue: pd.DataFrame, row: int, k: int = 8) -> np.ndarray:
    """Rows of the k galaxies nearest to galaxy `row` in latent space (Euclidean on the means), nearest first,
    not counting the galaxy itself."""
    mu = latent_means(catalogue)
    if not 0 <= row < len(mu):
        raise IndexError(f"galaxy {row} is not in a catalogue of {len(mu)} galaxies (rows 0..{len(mu) - 1}).")
    distance = np.linalg.norm(mu - mu[row], axis=1)
    distance[row] = np.inf
    return np.argsort(distance, kind="stable")[: min(k, len(mu) - 1)]


def outliers(catalogue: pd.DataFrame, k: int = 8) -> np.ndarray:
    """Rows of the k galaxies with the highest reconstruction error, worst first."""
    return np.argsort(-catalogue["recon_mse"].to_numpy(), kind="stable")[:k]


def find_row(catalogue: pd.DataFrame, galaxy: str) -> int:
    """The row of a galaxy given by its id (a file name) or its row number."""
    ids = catalogue["id"].astype(str).tolist()
    if galaxy in ids:
        return ids.index(galaxy)
    if galaxy.isdigit() and int(galaxy) < len(ids):
        return int(galaxy)
    raise KeyError(
        f"No galaxy {galaxy!r} in the catalogue: give a row number 0..{len(ids) - 1} or an id, e.g. {ids[0]!r}."
    )


def save_catalogue(catalogue: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write CSV, or Parquet when path ends in .parquet (needs pyarrow); atomically (a complete file or none).
    Any other suffix is refused (files.check_output_file)."""
    path = check_output_file(path, "catalogue")
    if path.suffix.lower() == ".parquet":
        return atomic_write(path, lambda tmp: catalogue.to_parquet(tmp, index=False))
    return atomic_write(path, lambda tmp: catalogue.to_csv(tmp, index=False, float_format="%.6g"))


def show_neighbours(catalogue: pd.DataFrame, images, row: int, k: int = 8, ncols: int = 9):
    """The galaxy at `row` (first) and its k nearest neighbours in latent space, titled with id and distance."""
    from .display import show_images

    rows = nearest_neighbours(catalogue, row, k)
    mu = latent_means(catalogue)
    distances = np.linalg.norm(mu[rows] - mu[row], axis=1)
    ids = catalogue["id"].astype(str).to_numpy()
    titles = [f"{ids[row]} (chosen)"] + [f"{ids[r]} d={d:.2f}" for r, d in zip(rows, distances, strict=True)]
    return show_images(np.asarray(images)[[row, *rows]], titles=titles, ncols=ncols)


def show_outliers(catalogue: pd.DataFrame, images, k: int = 8, ncols: int = 8):
    """The k galaxies the model reconstructs worst, titled with id and reconstruction MSE."""
    from .display import show_images

    rows = outliers(catalogue, k)
    ids, errors = catalogue["id"].astype(str).to_numpy(), catalogue["recon_mse"].to_numpy()
    titles = [f"{ids[r]} mse={errors[r]:.4f}" for r in rows]
    return show_images(np.asarray(images)[rows], titles=titles, ncols=ncols)

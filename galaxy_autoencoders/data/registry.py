"""Galaxy images for the tutorial: Galaxy10 (SDSS, DECaLS), the synthetic set and your own cutouts, as one
`Galaxies` bundle.

`load_galaxies(name)` is the one entry point:

- "synthetic": Galaxy10-like galaxies rendered with GalSim (see `synthetic.py`), made once per (n, seed),
  cached as an HDF5 file together with their true parameters. Works offline; the `quick` profile uses it.
- "galaxy10_sdss": Galaxy10 SDSS (21,785 stamps of 69x69 pixels, 200 MB), downloaded once from Zenodo
  (`downloader.py`).
- "galaxy10_decals": Galaxy10 DECaLS (17,736 stamps of 256x256, 2.5 GB), downloaded once and downsampled in
  chunks to 69x69 (`decals.py`), so every model in the package sees the same stamp size.
- a path: an .h5 file in the Galaxy10 layout (`hdf5.py`), or your own cutouts (`cutouts.py`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..files import check_output_file
from .checks import STAMP, check_labels
from .decals import DECALS_CACHE_FILENAME, downsample_decals
from .downloader import fetch_spec
from .errors import GalaxyDataError
from .folders import check_free_space, check_writable_folder, data_folder
from .galaxies import Galaxies
from .galaxy10 import DATASETS, GALAXY10_SDSS_CLASSES, dataset_key
from .hdf5 import (
    check_galaxy10_layout,
    class_names_of,
    h5_data_bytes,
    open_h5,
    read_galaxy10,
    require_galaxy10_keys,
    write_galaxy10,
)

SYNTHETIC_DEFAULT_N = 2048


def load_galaxies(
    name: str | os.PathLike = "synthetic",
    n: int | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
) -> Galaxies:
    """Load "synthetic", "galaxy10_sdss", "galaxy10_decals" or a .h5 path: images uint8 (N, 69, 69, 3) etc.

    Synthetic: n galaxies (default 2048) rendered for `seed`, cached. Real data: the whole set, or a random
    subset of n galaxies chosen by `seed`. download=False refuses to download a missing file.
    """
    key = dataset_key(name)
    if key is None:  # a path to a file or folder of the user's
        return _read_path(Path(name).expanduser(), n=n, seed=seed)
    folder = data_folder(data_dir)
    if key == "synthetic":
        galaxies = _load_synthetic(folder, n=SYNTHETIC_DEFAULT_N if n is None else n, seed=seed, progress=progress)
    elif key == "galaxy10_decals":
        spec = DATASETS[key]
        small = folder / DECALS_CACHE_FILENAME
        if not small.exists():  # the 2.5 GB original is only needed to make the 69x69 copy once
            downsample_decals(fetch_spec(spec, folder, progress, allow_download=download), small, progress=progress)
        galaxies = read_galaxy10(small, class_names=spec.class_names, n=n, seed=seed)
    else:
        spec = DATASETS[key]
        path = fetch_spec(spec, folder, progress, allow_download=download)
        galaxies = read_galaxy10(path, class_names=spec.class_names, n=n, seed=seed)
    galaxies.name = key
    return galaxies


def _read_path(path: Path, n: int | None, seed: int) -> Galaxies:
    """A file in the Galaxy10 layout with read_galaxy10; anything else (folders of cutouts, arrays, HDF5 files
    without labels or of another stamp size) with cutouts.read_cutouts, which converts and says so."""
    from .cutouts import is_cutouts, read_cutouts

    if not is_cutouts(path):
        with open_h5(path) as f:
            images = f.get("images")
            galaxy10 = "ans" in f and images is not None and images.shape[1:] == (STAMP, STAMP, 3)
            galaxy10 = galaxy10 and images.dtype == np.uint8
        if galaxy10:
            return read_galaxy10(path, n=n, seed=seed)
    return read_cutouts(path, n=n, seed=seed)


def _load_synthetic(folder: Path, n: int, seed: int, progress: bool) -> Galaxies:
    """Read the cached synthetic set for (n, seed), rendering it first if it is not there yet."""
    from . import synthetic  # imported here: GalSim is slow to import and absent on Windows

    if not (isinstance(n, (int, np.integer)) and n > 0):
        raise ValueError(f"n={n!r}: the number of synthetic galaxies must be a positive integer, e.g. n=2048.")
    # The version is in the name so that a change to the renderer never reuses stale images.
    path = folder / f"synthetic_v{synthetic.SYNTHETIC_VERSION}_n{n}_seed{seed}.h5"
    if not path.exists():
        make_synthetic(path, n, seed=seed, progress=progress)
    galaxies = read_galaxy10(path)
    galaxies.seed = seed
    return galaxies


def make_synthetic(
    path: str | os.PathLike,
    n: int,
    seed: int = 0,
    class_weights=None,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Render n synthetic galaxies for `seed` (the same seed gives the same images) and write them to path."""
    from . import synthetic  # imported here: GalSim is slow to import and absent on Windows

    path = check_output_file(path, "galaxies", "path")
    # Before rendering, which takes a while: a name, folder or disk that cannot take the file is refused now.
    check_writable_folder(path.parent, f"to save {path.name}")
    check_free_space(path, h5_data_bytes(n, n_params=0))  # the parameters add under 1%: H5_SPARE_BYTES covers them
    images, labels, params = synthetic.render_galaxies(
        n, seed=seed, class_weights=class_weights, workers=workers, progress=progress
    )
    # The synthetic classes are Galaxy10 SDSS's, one parameter range per class (synthetic.CLASS_RANGES).
    return write_galaxy10(path, images, labels, params=params, class_names=GALAXY10_SDSS_CLASSES)


@dataclass(frozen=True)
class Description:
    """What `galaxy-ae data info PATH` prints (`text`), and why the file cannot be loaded as it is (`problem`)."""

    text: str
    problem: str | None = None  # None: load_galaxies(path) loads it

    @property
    def loadable(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        return self.text


def _description(lines: list[str], problem: str | None = None) -> Description:
    """The lines, then, for a file that cannot be loaded, a last line "not loadable as it is: <problem>"."""
    if problem is not None:
        lines = [*lines, f"not loadable as it is: {problem}"]
    return Description("\n".join(lines), problem)


def describe(path: str | os.PathLike) -> Description:
    """A path -> its Description: file, count, image shape/dtype, classes with counts, params; and its problem.

    A file that cannot be loaded as it is gets a `problem`, also the text's last line ("not loadable as it is:
    ..."; the CLI then exits 1). Folders, arrays and HDF5 files without labels or of another stamp size are
    described as `load_galaxies` would load them (cutouts.read_cutouts)."""
    path = Path(path)
    from .cutouts import is_cutouts

    if is_cutouts(path):
        return _describe_cutouts(path)
    with open_h5(path) as f:
        images = f.get("images")
        galaxy10 = "ans" in f and images is not None and images.shape[1:] == (STAMP, STAMP, 3)
        if images is not None and not (galaxy10 and images.dtype == np.uint8):
            return _describe_stored(f, path)
    with open_h5(path) as f:
        lines = [f"file: {path} ({path.stat().st_size / 1e6:.1f} MB)"]
        require_galaxy10_keys(f, path)
        images = f["images"]
        lines.append(f"images: {images.shape[0]} galaxies, shape {tuple(images.shape)}, dtype {images.dtype}")
        try:
            names = class_names_of(f, path, None)
            check_galaxy10_layout(f, path, len(names))
        except GalaxyDataError as err:  # still show what the file holds; the problem is part of the answer
            return _description(lines, str(err))
        counts = np.bincount(f["ans"][:].astype(np.int64), minlength=len(names))
        lines.append(f"classes ({len(names)}), index: name, count:")
        width = max(len(name) for name in names)
        lines += [
            f"  {i}: {name:<{width}} {count:>6}" for i, (name, count) in enumerate(zip(names, counts, strict=True))
        ]
        params = sorted(f["params"]) if isinstance(f.get("params"), h5py.Group) else []
        lines.append(f"true parameters: {', '.join(params) if params else 'none (real data)'}")
        extras = sorted(set(f) - {"images", "ans", "params"})
        if extras:
            lines.append(f"other columns: {', '.join(extras)}")
    return _description(lines)


def _describe_stored(f: h5py.File, path: Path) -> Description:
    """An HDF5 file that loading converts (another size or dtype, or no labels): its values are checked chunk by
    chunk, but not resized: resizing every image (the 2.5 GB DECaLS original) only to describe it takes minutes."""
    images = f["images"]
    lines = [f"file: {path} ({path.stat().st_size / 1e6:.1f} MB)"]
    lines.append(f"stored: images {tuple(images.shape)} {images.dtype}; loading converts them to uint8 (N, 69, 69, 3)")
    if images.shape[1:3] == (256, 256):
        lines.append("(Galaxy10 DECaLS by name, load_galaxies('galaxy10_decals'), keeps its own 69x69 copy)")
    from .cutouts import stored_problem

    problem = stored_problem(images, str(path))  # the rules loading applies, NaN and inf included, chunk by chunk
    if problem:
        return _description(lines, problem)
    if "ans" in f:
        names = class_names_of(f, path, None)
        try:
            check_labels(f["ans"][:], images.shape[0], len(names), str(path))
        except GalaxyDataError as err:
            return _description(lines, str(err))
        lines.append(f"labels: {images.shape[0]} in {len(names)} classes")
    else:
        lines.append("labels: none (unlabelled; an autoencoder needs none, class figures say so)")
    return _description(lines)


def _describe_cutouts(path: Path) -> Description:
    from .cutouts import read_cutouts

    lines = [f"path: {path}"]
    try:
        galaxies = read_cutouts(path)
    except (GalaxyDataError, ValueError, FileNotFoundError) as err:
        return _description(lines, str(err))
    lines.append(f"images: {len(galaxies)} galaxies, loaded as uint8 {tuple(galaxies.images.shape)}")
    if galaxies.labelled:
        counts = np.bincount(galaxies.labels, minlength=len(galaxies.class_names))
        lines.append(f"classes ({len(galaxies.class_names)}), index: name, count:")
        lines += [
            f"  {i}: {name} {count}" for i, (name, count) in enumerate(zip(galaxies.class_names, counts, strict=True))
        ]
    else:
        lines.append("labels: none (unlabelled; an autoencoder needs none, class figures say so)")
    return _description(lines)

"""The Galaxy10 HDF5 layout: read, write (atomically) and check.

The layout: `images` uint8 (N, 69, 69, 3) and `ans`, the class index 0..9 of each image. Our own files add a
group `params` (synthetic only: one float array (N,) per true parameter) and an attribute `class_names` (a
JSON list). Extra columns of the real files (DECaLS: ra, dec, redshift, pxscale) are ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from ..files import check_output_file
from .checks import STAMP, check_images, check_labels
from .errors import GalaxyDataError
from .folders import check_free_space, check_writable_folder, disk_full_error, is_disk_full
from .galaxies import Galaxies
from .galaxy10 import GALAXY10_DECALS_CLASSES, GALAXY10_SDSS_CLASSES

DECALS_EXTRA_KEYS = ("ra", "dec", "redshift", "pxscale")  # how a Galaxy10 DECaLS file is recognised


def read_galaxy10(
    path: str | os.PathLike,
    class_names: tuple[str, ...] | None = None,
    n: int | None = None,
    seed: int = 0,
) -> Galaxies:
    """Read and validate a Galaxy10-layout .h5 file: images uint8 (N, 69, 69, 3), labels int64 (N,) in 0..9.

    n: read only a random subset of n galaxies chosen by `seed` (indices sorted, so h5py reads quickly).
    """
    path = Path(path)
    with open_h5(path) as f:
        names = class_names_of(f, path, class_names)
        count = check_galaxy10_layout(f, path, len(names))
        if n is None:
            rows = slice(None)
        elif isinstance(n, (int, np.integer)) and 0 < n <= count:
            rows = np.sort(np.random.default_rng(seed).choice(count, size=n, replace=False))
        else:
            raise ValueError(f"n={n!r}, but {path} holds {count} galaxies: choose 1..{count}, or n=None for all.")
        images = f["images"][rows]
        labels = f["ans"][rows].astype(np.int64)
        params = None
        if isinstance(f.get("params"), h5py.Group):
            params = {key: f["params"][key][rows] for key in f["params"]}
    return Galaxies(images=images, labels=labels, class_names=names, params=params, name=path.name, path=path)


def write_galaxy10(
    path: str | os.PathLike,
    images: np.ndarray,
    labels: np.ndarray,
    params: dict[str, np.ndarray] | None = None,
    class_names: tuple[str, ...] | None = None,
) -> Path:
    """Write images uint8 (N, 69, 69, 3), labels (N,) in 0..9, params {name: (N,)} in the Galaxy10 layout."""
    path = check_output_file(path, "galaxies", "write_galaxy10's path")
    images, labels = np.asarray(images), np.asarray(labels)
    names = tuple(class_names) if class_names is not None else GALAXY10_SDSS_CLASSES
    where = f"write_galaxy10({path.name})"
    # The same checks as on reading, so this function never writes a file that read_galaxy10 refuses.
    check_images(images.shape, images.dtype, where, values=images)
    check_labels(labels, len(images), len(names), where)
    for key, values in (params or {}).items():
        if np.shape(values) != (len(images),):
            raise GalaxyDataError(
                f"{where}: parameter {key!r} has shape {np.shape(values)}; expected one value per image, "
                f"i.e. shape ({len(images)},)."
            )
    with atomic_h5(path, h5_data_bytes(len(images), len(params or {}))) as f:
        f.create_dataset("images", data=images, chunks=(min(len(images), 256), STAMP, STAMP, 3))
        f.create_dataset("ans", data=labels.astype(np.uint8))  # uint8 like the Galaxy10 files
        if params:
            group = f.create_group("params")
            for key, values in params.items():
                group.create_dataset(key, data=np.asarray(values, dtype=np.float64))
        f.attrs["class_names"] = json.dumps(list(names))
    return path


@contextmanager
def open_h5(path: Path) -> Iterator[h5py.File]:
    """Open path read-only, with a clear error when it is missing or not HDF5 at all."""
    if not path.is_file():
        raise FileNotFoundError(
            f"No file at {path}. Check the path, or load a dataset by name: "
            f"load_galaxies('galaxy10_sdss') downloads it, load_galaxies('synthetic') makes one offline."
        )
    if not h5py.is_hdf5(path):
        raise GalaxyDataError(
            f"{path} is not an HDF5 file (an interrupted copy, or an HTML error page saved under this "
            "name?). Delete it and download it again; Galaxy10 files are HDF5 files with `images` and `ans`."
        )
    try:
        f = h5py.File(path, "r")
    except OSError as err:  # HDF5's own words ("truncated file: eof = 3000, ...") do not name the file
        reason = " ".join(str(err).split())
        raise GalaxyDataError(
            f"{path} could not be opened as HDF5 ({reason}). It is probably truncated or partly copied: copy "
            "or download it again (a dataset by name, e.g. load_galaxies('galaxy10_sdss'), re-downloads it "
            "once the broken file is deleted)."
        ) from err
    with f:
        yield f


def require_galaxy10_keys(f: h5py.File, path: Path) -> None:
    """Refuse an open file without `images` or `ans`, naming the missing keys and the layout expected."""
    missing = [key for key in ("images", "ans") if key not in f]
    if missing:
        raise GalaxyDataError(
            f"{path} has no {' or '.join(repr(k) for k in missing)}; found keys {sorted(f)}. "
            "This is not a Galaxy10-layout file: it needs `images` uint8 (N, 69, 69, 3) and `ans` labels "
            "(N,); write one with write_galaxy10(path, images, labels)."
        )


def class_names_of(f: h5py.File, path: Path, requested: tuple[str, ...] | None) -> tuple[str, ...]:
    """The class names of a file: its own attribute, else those asked for, else guessed from its columns."""
    stored = f.attrs.get("class_names")
    stored = tuple(json.loads(stored)) if stored is not None else None
    if requested is not None and stored is not None and tuple(requested) != stored:
        # A file from another dataset must not be read with this dataset's class names.
        raise GalaxyDataError(
            f"{path} holds classes {list(stored)[:3]}..., not the expected {list(requested)[:3]}...: it "
            "belongs to a different dataset. Move it out of the way, or load it by its path, not by name."
        )
    if stored is not None:
        return stored
    if requested is not None:
        return tuple(requested)
    # The published files carry no class names; DECaLS is recognised by its extra columns.
    return GALAXY10_DECALS_CLASSES if set(DECALS_EXTRA_KEYS) <= set(f) else GALAXY10_SDSS_CLASSES


def check_galaxy10_layout(f: h5py.File, path: Path, n_classes: int) -> int:
    """Check keys, image shape and dtype, and labels of an open file; return the number of images N."""
    require_galaxy10_keys(f, path)
    images = f["images"]
    check_images(images.shape, images.dtype, str(path))
    check_labels(f["ans"][:], images.shape[0], n_classes, str(path))
    if isinstance(f.get("params"), h5py.Group):
        for key in f["params"]:
            if f["params"][key].shape != (images.shape[0],):
                raise GalaxyDataError(
                    f"{path}: parameter params/{key} has shape {f['params'][key].shape}, expected "
                    f"({images.shape[0]},), one value per image. Recreate the file (delete it to re-render)."
                )
    return images.shape[0]


@contextmanager
def atomic_h5(dest: Path, nbytes: int) -> Iterator[h5py.File]:
    """Write an HDF5 file of about nbytes under a temporary name next to dest; rename it to dest once complete."""
    check_writable_folder(dest.parent, f"to save {dest.name}")
    check_free_space(dest, nbytes)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")  # same folder, so os.replace is atomic
    try:
        with h5py.File(tmp, "w") as f:
            yield f
        os.replace(tmp, dest)
    except BaseException as err:  # Ctrl-C included: never leave a half-written file behind
        tmp.unlink(missing_ok=True)
        if is_disk_full(err):  # another program filled the disk meanwhile
            raise disk_full_error(dest, "the disk filled up while writing") from err
        raise


def h5_data_bytes(n_images: int, n_params: int) -> int:
    """The data bytes of a Galaxy10-layout file: uint8 stamps, a uint8 label and float64 parameters per image."""
    return n_images * (STAMP * STAMP * 3 + 1 + 8 * n_params)

"""Galaxy images for the tutorial: Galaxy10 (SDSS, DECaLS) and the synthetic set, as one `Galaxies` bundle.

`load_galaxies(name)` is the one entry point:

- "synthetic": Galaxy10-like galaxies rendered with GalSim (see `synthetic.py`), made once per (n, seed),
  cached as an HDF5 file together with their true parameters. Works offline; the `quick` profile uses it.
- "galaxy10_sdss": Galaxy10 SDSS (21,785 stamps of 69x69 pixels, 200 MB), downloaded once from Zenodo.
- "galaxy10_decals": Galaxy10 DECaLS (17,736 stamps of 256x256, 2.5 GB), downloaded once and downsampled in
  chunks to 69x69, so every model in the package sees the same stamp size.
- a path to any .h5 file in the Galaxy10 layout.

The Galaxy10 layout (HDF5): `images` uint8 (N, 69, 69, 3) and `ans`, the class index 0..9 of each image. Our
own files add a group `params` (synthetic only: one float array (N,) per true parameter) and an attribute
`class_names` (a JSON list). Extra columns of the real files (DECaLS: ra, dec, redshift, pxscale) are ignored.

Downloads stream into `<file>.part`, resume after a dropped connection, are checked against the published
SHA-256 and only then renamed to their final name: a file at the final path is always complete and verified.
Every file this module writes appears under its final name only once it is complete (write, then os.replace).
A folder that cannot be written (read-only, disk full) raises `DataFolderError`, naming the file and what to do;
a read-only folder that already holds a good file is simply read.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

import h5py
import numpy as np
from tqdm.auto import tqdm

from galaxy_autoencoders import config

GALAXY10_SDSS_CLASSES: tuple[str, ...] = (
    "Disk, Face-on, No Spiral",
    "Smooth, Completely round",
    "Smooth, in-between round",
    "Smooth, Cigar shaped",
    "Disk, Edge-on, Rounded Bulge",
    "Disk, Edge-on, Boxy Bulge",
    "Disk, Edge-on, No Bulge",
    "Disk, Face-on, Tight Spiral",
    "Disk, Face-on, Medium Spiral",
    "Disk, Face-on, Loose Spiral",
)
# Images per class in Galaxy10 SDSS (galaxy10.md): very unbalanced, only confident Galaxy Zoo votes are kept.
GALAXY10_SDSS_COUNTS: tuple[int, ...] = (3461, 6997, 6292, 394, 1534, 17, 589, 1121, 906, 519)
GALAXY10_DECALS_CLASSES: tuple[str, ...] = (
    "Disturbed",
    "Merging",
    "Round Smooth",
    "In-between Round Smooth",
    "Cigar Shaped Smooth",
    "Barred Spiral",
    "Unbarred Tight Spiral",
    "Unbarred Loose Spiral",
    "Edge-on without Bulge",
    "Edge-on with Bulge",
)

STAMP = 69  # side of a Galaxy10 SDSS stamp in pixels; every image this module returns has it
SYNTHETIC_DEFAULT_N = 2048
DECALS_CACHE_FILENAME = "Galaxy10_DECals_69px.h5"
DECALS_EXTRA_KEYS = ("ra", "dec", "redshift", "pxscale")  # how a Galaxy10 DECaLS file is recognised
OFFLINE_HINT = (
    'To work offline, use the synthetic galaxies instead: load_galaxies("synthetic"), '
    f"or run with `{config.PROFILE_ENV}=quick`."
)
FOLDER_HINT = (
    f"Point {config.DATA_ENV} at a folder you can write to, "
    f"e.g. `export {config.DATA_ENV}=$HOME/galaxy_data`, or pass data_dir=..."
)
H5_SPARE_BYTES = 1_000_000  # HDF5's own structures, on top of the data
DOWNLOAD_RETRIES = 3  # resumes after a dropped connection before giving up


@dataclass(frozen=True)
class DatasetSpec:
    """A public Galaxy10 file: where to download it and how to check it (SHA-256, size in bytes)."""

    name: str
    filename: str
    url: str
    sha256: str
    size: int | None  # bytes; None where the publisher gives only a rounded size (the hash still decides)
    class_names: tuple[str, ...]
    resolution: int  # stamp side in pixels as published (DECaLS is downsampled to 69 on load)


DATASETS: dict[str, DatasetSpec] = {
    "galaxy10_sdss": DatasetSpec(
        name="galaxy10_sdss",
        filename="Galaxy10.h5",
        url="https://zenodo.org/records/10844811/files/Galaxy10.h5",
        sha256="969a6b1cefcc36e09fffa86febd2f699a4aa19b837ba0427f01b0bc6ded458af",
        size=210_234_548,
        class_names=GALAXY10_SDSS_CLASSES,
        resolution=69,
    ),
    "galaxy10_decals": DatasetSpec(
        name="galaxy10_decals",
        filename="Galaxy10_DECals.h5",
        url="https://zenodo.org/records/10845026/files/Galaxy10_DECals.h5",
        sha256="19aefc477c41bb7f77ff07599a6b82a038dc042f889a111b0d4d98bb755c1571",
        size=None,  # published only as "2.54 GB"
        class_names=GALAXY10_DECALS_CLASSES,
        resolution=256,
    ),
}


class GalaxyDataError(ValueError):
    """A file that is not a usable Galaxy10-layout file; the message names the file and what to do."""


class DownloadError(RuntimeError):
    """A download that failed (no network, HTTP error, wrong hash); the message says how to get the file."""


class DataFolderError(OSError):
    """The data folder cannot be created or written; the message says how to choose another one."""


@dataclass(repr=False)
class Galaxies:
    """Images uint8 (N, 69, 69, 3), labels int64 (N,) in 0..9, class names, true parameters (synthetic)."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    params: dict[str, np.ndarray] | None
    name: str
    path: Path | None
    ids: tuple[str, ...] | None = None  # each galaxy's file name or index (own cutouts, cutouts.read_cutouts)

    @property
    def labelled(self) -> bool:
        """False for galaxies without labels (own cutouts): one class, "unlabelled"."""
        return tuple(self.class_names) != ("unlabelled",)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        # The default dataclass repr would print the arrays; a notebook wants the facts.
        params = f", params={sorted(self.params)}" if self.params else ""
        classes = f"{len(self.class_names)} classes" if self.labelled else "unlabelled"
        return (
            f"Galaxies({self.name!r}: {len(self)} images {self.images.dtype} {tuple(self.images.shape[1:])}, "
            f"{classes}{params})"
        )


# ----------------------------------------------------------------------------------------------------------
# The entry point


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
    key = _dataset_key(name)
    if key is None:  # a path to a file or folder of the user's
        return _read_path(Path(name).expanduser(), n=n, seed=seed)
    folder = _data_folder(data_dir)
    if key == "synthetic":
        galaxies = _load_synthetic(folder, n=SYNTHETIC_DEFAULT_N if n is None else n, seed=seed, progress=progress)
    elif key == "galaxy10_decals":
        spec = DATASETS[key]
        small = folder / DECALS_CACHE_FILENAME
        if not small.exists():  # the 2.5 GB original is only needed to make the 69x69 copy once
            downsample_decals(_fetch(spec, folder, progress, allow_download=download), small, progress=progress)
        galaxies = read_galaxy10(small, class_names=spec.class_names, n=n, seed=seed)
    else:
        spec = DATASETS[key]
        path = _fetch(spec, folder, progress, allow_download=download)
        galaxies = read_galaxy10(path, class_names=spec.class_names, n=n, seed=seed)
    galaxies.name = key
    return galaxies


def _read_path(path: Path, n: int | None, seed: int) -> Galaxies:
    """A file in the Galaxy10 layout with read_galaxy10; anything else (folders of cutouts, arrays, HDF5 files
    without labels or of another stamp size) with cutouts.read_cutouts, which converts and says so."""
    from .cutouts import is_cutouts, read_cutouts

    if not is_cutouts(path):
        with _open_h5(path) as f:
            images = f.get("images")
            galaxy10 = "ans" in f and images is not None and images.shape[1:] == (STAMP, STAMP, 3)
            galaxy10 = galaxy10 and images.dtype == np.uint8
        if galaxy10:
            return read_galaxy10(path, n=n, seed=seed)
    return read_cutouts(path, n=n, seed=seed)


def _dataset_key(name: str | os.PathLike) -> str | None:
    """The DATASETS key or "synthetic" for a name (CLI spellings with '-' too); None for a file path."""
    if isinstance(name, os.PathLike):
        return None
    key = name.strip().lower().replace("-", "_")
    if key == "synthetic" or key in DATASETS:
        return key
    if Path(name).suffix.lower() in (".h5", ".hdf5", ".hdf", ".npy", ".npz") or Path(name).expanduser().exists():
        return None
    raise ValueError(
        f"Unknown dataset {name!r}: use 'synthetic', {', '.join(repr(k) for k in DATASETS)}, "
        "or the path to your galaxies: a .h5 file, a .npy/.npz array or a folder of PNG/JPEG cutouts."
    )


def _load_synthetic(folder: Path, n: int, seed: int, progress: bool) -> Galaxies:
    """Read the cached synthetic set for (n, seed), rendering it first if it is not there yet."""
    from galaxy_autoencoders import synthetic  # imported here: GalSim is slow to import and absent on Windows

    if not (isinstance(n, (int, np.integer)) and n > 0):
        raise ValueError(f"n={n!r}: the number of synthetic galaxies must be a positive integer, e.g. n=2048.")
    # The version is in the name so that a change to the renderer never reuses stale images.
    path = folder / f"synthetic_v{synthetic.SYNTHETIC_VERSION}_n{n}_seed{seed}.h5"
    if not path.exists():
        make_synthetic(path, n, seed=seed, progress=progress)
    return read_galaxy10(path)


# ----------------------------------------------------------------------------------------------------------
# Reading, writing and checking files in the Galaxy10 layout


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
    with _open_h5(path) as f:
        names = _class_names(f, path, class_names)
        count = _check_layout(f, path, len(names))
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
    path = Path(path)
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
    with _atomic_h5(path, _h5_bytes(len(images), len(params or {}))) as f:
        f.create_dataset("images", data=images, chunks=(min(len(images), 256), STAMP, STAMP, 3))
        f.create_dataset("ans", data=labels.astype(np.uint8))  # uint8 like the Galaxy10 files
        if params:
            group = f.create_group("params")
            for key, values in params.items():
                group.create_dataset(key, data=np.asarray(values, dtype=np.float64))
        f.attrs["class_names"] = json.dumps(list(names))
    return path


def describe(path: str | os.PathLike) -> str:
    """Text for `galaxy-ae data info PATH`: file, count, image shape/dtype, classes with counts, params.

    A file that cannot be loaded as it is gets a last line starting "not loadable as it is:" (and the CLI
    exits 1). Folders, arrays and HDF5 files without labels or of another stamp size are described as
    `load_galaxies` would load them (cutouts.read_cutouts)."""
    path = Path(path)
    from .cutouts import is_cutouts

    if is_cutouts(path):
        return _describe_cutouts(path)
    with _open_h5(path) as f:
        images = f.get("images")
        galaxy10 = "ans" in f and images is not None and images.shape[1:] == (STAMP, STAMP, 3)
        if images is not None and not (galaxy10 and images.dtype == np.uint8):
            return _describe_stored(f, path)
    with _open_h5(path) as f:
        lines = [f"file: {path} ({path.stat().st_size / 1e6:.1f} MB)"]
        _require_keys(f, path)
        images = f["images"]
        lines.append(f"images: {images.shape[0]} galaxies, shape {tuple(images.shape)}, dtype {images.dtype}")
        try:
            names = _class_names(f, path, None)
            _check_layout(f, path, len(names))
        except GalaxyDataError as err:  # still show what the file holds; the problem is part of the answer
            lines.append(f"not loadable as it is: {err}")
            return "\n".join(lines)
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
    return "\n".join(lines)


def _describe_stored(f: h5py.File, path: Path) -> str:
    """An HDF5 file that loading converts (another size or dtype, or no labels), from its shapes alone: reading
    and resizing every image (the 2.5 GB DECaLS original) only to describe it would take minutes."""
    images = f["images"]
    lines = [f"file: {path} ({path.stat().st_size / 1e6:.1f} MB)"]
    lines.append(f"stored: images {tuple(images.shape)} {images.dtype}; loading converts them to uint8 (N, 69, 69, 3)")
    if images.shape[1:3] == (256, 256):
        lines.append("(Galaxy10 DECaLS by name, load_galaxies('galaxy10_decals'), keeps its own 69x69 copy)")
    if len(images.shape) not in (3, 4):
        lines.append(f"not loadable as it is: images of shape {tuple(images.shape)}; expected (N, H, W[, 3])")
    elif "ans" in f:
        names = _class_names(f, path, None)
        try:
            check_labels(f["ans"][:], images.shape[0], len(names), str(path))
        except GalaxyDataError as err:
            lines.append(f"not loadable as it is: {err}")
        else:
            lines.append(f"labels: {images.shape[0]} in {len(names)} classes")
    else:
        lines.append("labels: none (unlabelled; an autoencoder needs none, class figures say so)")
    return "\n".join(lines)


def _describe_cutouts(path: Path) -> str:
    from .cutouts import read_cutouts

    lines = [f"path: {path}"]
    try:
        galaxies = read_cutouts(path)
    except (GalaxyDataError, ValueError, FileNotFoundError) as err:
        return "\n".join([*lines, f"not loadable as it is: {err}"])
    lines.append(f"images: {len(galaxies)} galaxies, loaded as uint8 {tuple(galaxies.images.shape)}")
    if galaxies.labelled:
        counts = np.bincount(galaxies.labels, minlength=len(galaxies.class_names))
        lines.append(f"classes ({len(galaxies.class_names)}), index: name, count:")
        lines += [
            f"  {i}: {name} {count}" for i, (name, count) in enumerate(zip(galaxies.class_names, counts, strict=True))
        ]
    else:
        lines.append("labels: none (unlabelled; an autoencoder needs none, class figures say so)")
    return "\n".join(lines)


@contextmanager
def _open_h5(path: Path) -> Iterator[h5py.File]:
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


def _require_keys(f: h5py.File, path: Path) -> None:
    missing = [key for key in ("images", "ans") if key not in f]
    if missing:
        raise GalaxyDataError(
            f"{path} has no {' or '.join(repr(k) for k in missing)}; found keys {sorted(f)}. "
            "This is not a Galaxy10-layout file: it needs `images` uint8 (N, 69, 69, 3) and `ans` labels "
            "(N,); write one with write_galaxy10(path, images, labels)."
        )


def _class_names(f: h5py.File, path: Path, requested: tuple[str, ...] | None) -> tuple[str, ...]:
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


def _check_layout(f: h5py.File, path: Path, n_classes: int) -> int:
    """Check keys, image shape and dtype, and labels of an open file; return the number of images N."""
    _require_keys(f, path)
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


def check_images(shape: tuple[int, ...], dtype: np.dtype, where: str, values=None) -> None:
    """Refuse anything but uint8 (N, 69, 69, 3), naming the likely mix-up and the fix.

    values: the images themselves when they are in memory; float ones are first checked for NaN/inf, which
    the float-to-uint8 conversion below would silently turn into black pixels.
    """
    if dtype != np.uint8:
        if np.issubdtype(dtype, np.floating):
            if values is not None:
                check_finite(values, where)
            fix = "float images: if they are in 0..1, convert with (x * 255).round().astype(np.uint8)"
        else:
            fix = "if the values are 0..255, convert with np.clip(x, 0, 255).astype(np.uint8)"
        raise GalaxyDataError(
            f"{where}: `images` has dtype {dtype}, expected uint8 (0..255) as in Galaxy10; {fix}, "
            "then save with write_galaxy10()."
        )
    shape = tuple(shape)
    expected = f"expected uint8 (N, {STAMP}, {STAMP}, 3) colour stamps"
    if len(shape) == 4 and shape[1:] == (STAMP, STAMP, 3):
        if shape[0] == 0:
            raise GalaxyDataError(f"{where}: `images` is empty (N=0). Use a file that holds galaxies.")
        return
    if shape[1:] in ((STAMP, STAMP), (STAMP, STAMP, 1)):
        problem = "grayscale images (one channel)"
        fix = "repeat the channel: np.repeat(x.reshape(-1, 69, 69, 1), 3, axis=-1)"
    elif len(shape) == 4 and shape[1] in (1, 3) and shape[2:] == (STAMP, STAMP):
        problem = "channels-first images (N, C, H, W), PyTorch's order"
        fix = "the file stores channels last: x.transpose(0, 2, 3, 1)"
    elif len(shape) == 4 and shape[1:3] == (64, 64):
        problem = "64x64 stamps"
        fix = "this package works on Galaxy10's 69x69 stamps: resample your images to 69x69"
    elif len(shape) == 4 and shape[1:3] == (256, 256):
        problem = "256x256 stamps, the full-resolution Galaxy10 DECaLS"
        fix = "use load_galaxies('galaxy10_decals'), which downsamples to 69x69 (or downsample_decals())"
    else:
        problem = f"images of shape {shape}"
        fix = "write the images with write_galaxy10() in the expected shape"
    raise GalaxyDataError(f"{where}: {problem}, shape {shape}; {expected}. To fix: {fix}.")


def check_finite(images, where: str) -> None:
    """Refuse float images (N, ...), a NumPy array or torch tensor, holding NaN or inf; integer images pass."""
    is_tensor = hasattr(images, "is_floating_point")
    images = images.detach() if is_tensor else np.asarray(images)
    if images.ndim < 2:  # a flat list of numbers: each one an "image"
        images = images.reshape(-1, 1)
    if is_tensor and images.is_floating_point():  # on any device: one flag per image comes back to the host
        finite = images.isfinite().flatten(1).all(1).cpu().numpy()  # (N,)
    elif not is_tensor and np.issubdtype(images.dtype, np.inexact):
        finite = np.isfinite(images).all(axis=tuple(range(1, images.ndim)))  # (N,)
    else:
        return
    bad = np.flatnonzero(~finite)
    if len(bad):
        raise GalaxyDataError(
            f"{where}: {len(bad)} of {len(finite)} images contain NaN or inf values (the first is image "
            f"{bad[0]}); a model can neither learn from nor encode them. Replace them, e.g. "
            "x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0), or drop those images: "
            "x = x[np.isfinite(x).reshape(len(x), -1).all(axis=1)]."
        )


def check_labels(labels: np.ndarray, n_images: int, n_classes: int, where: str) -> None:
    """Labels must be integer class indices (N,) in 0..n_classes-1, one per image."""
    if labels.ndim != 1:
        raise GalaxyDataError(
            f"{where}: `ans` has shape {labels.shape}, expected ({n_images},), one class index per image "
            "(one-hot labels? take labels.argmax(axis=1))."
        )
    if len(labels) != n_images:
        raise GalaxyDataError(
            f"{where}: {n_images} images but {len(labels)} labels in `ans`; every image needs exactly one "
            "label. The file is damaged or was written in two steps: write it again with write_galaxy10()."
        )
    if not (np.issubdtype(labels.dtype, np.integer) or np.array_equal(labels, np.round(labels))):
        raise GalaxyDataError(f"{where}: `ans` holds non-integer values ({labels.dtype}); expected class indices.")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise GalaxyDataError(
            f"{where}: labels in `ans` run from {labels.min()} to {labels.max()}, outside the class indices "
            f"0..{n_classes - 1}. Is this a Galaxy10-layout file? Relabel to 0..{n_classes - 1}."
        )


@contextmanager
def _atomic_h5(dest: Path, nbytes: int) -> Iterator[h5py.File]:
    """Write an HDF5 file of about nbytes under a temporary name next to dest; rename it to dest once complete."""
    _writable_folder(dest.parent, f"to save {dest.name}")
    _check_room(dest, nbytes)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")  # same folder, so os.replace is atomic
    try:
        with h5py.File(tmp, "w") as f:
            yield f
        os.replace(tmp, dest)
    except BaseException as err:  # Ctrl-C included: never leave a half-written file behind
        tmp.unlink(missing_ok=True)
        if _is_disk_full(err):  # another program filled the disk meanwhile
            raise _disk_full(dest, "the disk filled up while writing") from err
        raise


def _h5_bytes(n_images: int, n_params: int) -> int:
    """The data bytes of a Galaxy10-layout file: uint8 stamps, a uint8 label and float64 parameters per image."""
    return n_images * (STAMP * STAMP * 3 + 1 + 8 * n_params)


def _check_room(dest: Path, nbytes: int) -> None:
    """Refuse, before writing, a file of nbytes (plus HDF5's own structures) that the disk has no room for."""
    # h5py meets a full disk with a RuntimeError and can crash the interpreter while cleaning up: look first.
    free, needed = shutil.disk_usage(dest.parent).free, nbytes + H5_SPARE_BYTES
    if free < needed:
        raise _disk_full(dest, f"it needs about {_size_text(needed)} and the disk has {_size_text(free)} free")


def _is_disk_full(err: BaseException) -> bool:
    """An OSError with ENOSPC/EDQUOT, or h5py's RuntimeError that carries the errno only in its text."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(err, (OSError, RuntimeError)) and ("errno = 28" in str(err) or "No space left" in str(err))


def _disk_full(dest: Path, why: str) -> DataFolderError:
    return DataFolderError(
        f"Cannot save {dest}: {why}. Nothing was written at {dest} (a file already there is unchanged). Free space "
        f"on the disk holding {dest.parent} and run the same command again, or save elsewhere: {FOLDER_HINT}"
    )


# ----------------------------------------------------------------------------------------------------------
# The synthetic set


def make_synthetic(
    path: str | os.PathLike,
    n: int,
    seed: int = 0,
    class_weights=None,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Render n synthetic galaxies for `seed` (the same seed gives the same images) and write them to path."""
    from galaxy_autoencoders import synthetic  # imported here: GalSim is slow to import and absent on Windows

    path = Path(path)
    # Before rendering, which takes a while: a folder or disk that cannot take the file is refused now.
    _writable_folder(path.parent, f"to save {path.name}")
    _check_room(path, _h5_bytes(n, n_params=0))  # the parameters add under 1%: H5_SPARE_BYTES covers them
    images, labels, params = synthetic.render_galaxies(
        n, seed=seed, class_weights=class_weights, workers=workers, progress=progress
    )
    # The synthetic classes are Galaxy10 SDSS's, one parameter range per class (synthetic.CLASS_RANGES).
    return write_galaxy10(path, images, labels, params=params, class_names=GALAXY10_SDSS_CLASSES)


# ----------------------------------------------------------------------------------------------------------
# Downloads: fetch (cache + verify) on top of download (stream, resume, check, rename)


def fetch(name: str, data_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Local path of "galaxy10_sdss" or "galaxy10_decals", downloaded and SHA-256 verified if needed."""
    key = _dataset_key(name)
    if key not in DATASETS:
        raise ValueError(f"fetch() downloads one of {sorted(DATASETS)}, not {name!r}.")
    return _fetch(DATASETS[key], _data_folder(data_dir), progress, allow_download=True)


def _fetch(spec: DatasetSpec, folder: Path, progress: bool, allow_download: bool) -> Path:
    """The verified file for spec in folder: hashed once (then trusted by size + mtime), else downloaded."""
    path = folder / spec.filename
    if path.exists():
        if _is_marked_verified(path, spec):
            return path
        problem = _cached_file_problem(path, spec)
        if problem is None:
            _mark_verified(path, spec)
            return path
        corrupt = _sibling(path, ".corrupt")
        # A shared read-only folder with a damaged file: say so, rather than only "cannot write".
        _writable_folder(folder, f"to replace {path.name}, which is damaged ({problem})")
        os.replace(path, corrupt)
        _sibling(path, ".verified").unlink(missing_ok=True)
        print(f"The cached {path} is damaged ({problem}); moved it to {corrupt}.")
    if not allow_download:
        raise FileNotFoundError(
            f"{spec.filename} is not in {folder} and download=False. Download it with "
            f"load_galaxies({spec.name!r}) or by hand from {spec.url} to {path}. {OFFLINE_HINT}"
        )
    if progress:
        print(f"Downloading {spec.filename} ({_size_text(spec.size)}) from {spec.url} to {folder}")
    download(spec.url, path, spec.sha256, expected_size=spec.size, progress=progress)
    _mark_verified(path, spec)
    return path


def _cached_file_problem(path: Path, spec: DatasetSpec) -> str | None:
    """None if the file has the published size and hash, else what is wrong (size first: it is free)."""
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        return f"{size} bytes instead of {spec.size}"
    digest = _sha256_file(path)
    if digest != spec.sha256.lower():
        return f"SHA-256 {digest} instead of {spec.sha256}"
    return None


def _is_marked_verified(path: Path, spec: DatasetSpec) -> bool:
    """True if the sidecar says this very file (same size and mtime) was hashed and matched spec before."""
    try:
        mark = json.loads(_sibling(path, ".verified").read_text())
    except (OSError, ValueError):
        return False
    stat = path.stat()
    return mark == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": spec.sha256.lower()}


def _mark_verified(path: Path, spec: DatasetSpec) -> None:
    """Remember a successful hash check, so later loads skip hashing hundreds of megabytes."""
    stat = path.stat()
    mark = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": spec.sha256.lower()}
    try:
        _sibling(path, ".verified").write_text(json.dumps(mark))
    except OSError:  # a read-only shared folder: fine, the file is just hashed again next time
        pass


def _sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


class _Interrupted(Exception):
    """The connection dropped mid-transfer; what arrived is kept in the .part file for a resume."""


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str,
    expected_size: int | None = None,
    progress: bool = True,
    chunk_size: int = 1 << 20,
    timeout: float = 30,
) -> Path:
    """Download url to dest via `dest.part` (resumed if present), check size and SHA-256, rename to dest."""
    dest = Path(dest)
    _writable_folder(dest.parent, f"to download {dest.name}")
    part = _sibling(dest, ".part")
    for attempt in range(DOWNLOAD_RETRIES + 1):
        try:
            _transfer(url, part, dest, expected_size, progress, chunk_size, timeout)
            break
        except _Interrupted as err:
            if attempt == DOWNLOAD_RETRIES:
                raise DownloadError(
                    f"Downloading {dest.name} from {url} was interrupted {attempt + 1} times ({err}). "
                    f"The {part.stat().st_size if part.exists() else 0} bytes received are kept in {part}: "
                    f"run the same command again to resume. {OFFLINE_HINT}"
                ) from err
            print(f"{err}; resuming ({attempt + 1}/{DOWNLOAD_RETRIES})")
    size = part.stat().st_size
    digest = _sha256_file(part)
    if (expected_size is not None and size != expected_size) or digest != sha256.lower():
        # Keep the bad bytes for inspection, but never under the final name, and not as a .part to resume.
        corrupt = _sibling(dest, ".corrupt")
        os.replace(part, corrupt)
        raise DownloadError(
            f"Downloaded {dest.name} from {url}, but it does not match the published file: SHA-256 {digest} "
            f"(expected {sha256.lower()}), {size} bytes (expected {_size_text(expected_size)}). "
            f"It was moved aside to {corrupt}. Run the same command again to download afresh; if it fails "
            f"again, download the file by hand, check it with `sha256sum`, and put it at {dest}."
        )
    os.replace(part, dest)
    return dest


def _transfer(
    url: str,
    part: Path,
    dest: Path,
    expected_size: int | None,
    progress: bool,
    chunk_size: int,
    timeout: float,
) -> None:
    """Append the rest of url to part, asking the server (HTTP Range) to skip the bytes part already holds."""
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have >= expected_size:
        if have == expected_size:
            return  # complete already (e.g. interrupted while hashing): the hash check decides
        part.unlink()  # longer than the real file: not ours, start over
        have = 0
    headers = {"User-Agent": "galaxy_autoencoders"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and have:  # "range not satisfiable": part holds the whole file; the hash decides
            return
        raise DownloadError(
            f"Could not download {dest.name}: the server answered HTTP {err.code} ({err.reason}) for {url}. "
            f"{_http_advice(err.code)} You can also download it by hand and put it at {dest}. {OFFLINE_HINT}"
        ) from err
    except (URLError, OSError, HTTPException) as err:  # no network, DNS failure, refused, timeout
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"Could not download {dest.name} from {url}: {reason}. Is this computer offline? Either download "
            f"the file by hand (e.g. in a browser) and put it in the folder {dest.parent}, as {dest} "
            f"(set {config.DATA_ENV} to use another folder), or work without it. {OFFLINE_HINT}"
        ) from err
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored Range and sends the whole file: start the .part over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else expected_size
        host = urlsplit(url).hostname
        try:
            with (
                open(part, "ab" if have else "wb") as out,
                tqdm(
                    total=total,
                    initial=have,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=dest.name,
                    disable=not progress,
                ) as bar,
            ):
                while True:
                    try:
                        block = response.read(chunk_size)
                    except (OSError, HTTPException) as err:
                        raise _Interrupted(f"connection to {host} lost after {out.tell()} bytes ({err})") from err
                    if not block:
                        break
                    out.write(block)
                    bar.update(len(block))
                received = out.tell()
        except OSError as err:  # writing the .part (reading errors are _Interrupted): disk full, quota, ...
            raise _write_failed(err, part, dest, total) from err
    # http.client returns a short body without an error when the server hangs up early: count the bytes.
    if total is not None and received < total:
        raise _Interrupted(f"connection to {host} closed after {received} of {total} bytes")


def _http_advice(code: int) -> str:
    if code == 404:
        return "The file is not at this address (moved?): check the address in galaxy10.md / DATASETS."
    if code in (401, 403):
        return "The server refuses access: try again later, or from another network."
    if code >= 500:
        return "The server has a problem: try again in a few minutes."
    return "Try again later."


def _sibling(path: Path, suffix: str) -> Path:
    """`Galaxy10.h5` -> `Galaxy10.h5.part` (appended, so the real suffix stays visible)."""
    return path.with_name(path.name + suffix)


def _size_text(size: int | None) -> str:
    if size is None:
        return "size unpublished"
    return f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


# ----------------------------------------------------------------------------------------------------------
# Folders


def _data_folder(data_dir: str | os.PathLike | None) -> Path:
    """The cache folder (data_dir, else config.data_dir()), created if needed."""
    folder = Path(data_dir).expanduser() if data_dir is not None else config.data_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataFolderError(f"Cannot create the data folder {folder} ({err.strerror or err}). {FOLDER_HINT}") from err
    return folder


def _writable_folder(folder: Path, purpose: str = "") -> None:
    """Fail early, with a clear message, when a file cannot be written into folder; purpose says what for."""
    folder = _data_folder(folder)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        purpose = f" {purpose}" if purpose else ""
        raise DataFolderError(
            f"Cannot write into the data folder {folder}{purpose}: {err.strerror or err}. {FOLDER_HINT}"
        ) from err


def _write_failed(err: OSError, part: Path, dest: Path, total: int | None) -> DataFolderError:
    """The error for a failed write of a download's .part file (disk full, quota, ...): what is kept, what to do."""
    kept = part.stat().st_size if part.exists() else 0
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        problem = "the disk is full" if err.errno == errno.ENOSPC else "your disk quota is used up"
        more = f" (the download needs about {_size_text(total - kept)} more)" if total else ""
        retry = f"Free space on the disk holding {dest.parent}{more} and run the same command again"
    else:
        problem = err.strerror or str(err)
        retry = "Fix that (a full or unplugged drive, a file you may not change) and run the same command again"
    return DataFolderError(
        f"Writing {part} failed after {kept:,} bytes: {problem}. Nothing was written at {dest}. {retry}: "
        f"the download resumes from {part}. Or delete {part} and download into a folder on another disk: "
        f"set {config.DATA_ENV} (e.g. `export {config.DATA_ENV}=/path/with/space`) or pass data_dir=..."
    )


# ----------------------------------------------------------------------------------------------------------
# DECaLS: 256x256 -> 69x69


def downsample_decals(src: str | os.PathLike, dest: str | os.PathLike, chunk: int = 512, progress: bool = True) -> Path:
    """Area-average Galaxy10 DECaLS images uint8 (N, 256, 256, 3) to (N, 69, 69, 3), `chunk` at a time."""
    src, dest = Path(src), Path(dest)
    with _open_h5(src) as f:
        _require_keys(f, src)
        images = f["images"]
        if images.ndim != 4 or images.shape[3] != 3 or min(images.shape[1:3]) < STAMP or images.dtype != np.uint8:
            raise GalaxyDataError(
                f"{src}: `images` is {images.dtype} {images.shape}; downsample_decals expects uint8 "
                f"(N, H, W, 3) with H, W >= {STAMP}, like Galaxy10 DECaLS's (17736, 256, 256, 3)."
            )
        count, height, width, _ = images.shape
        rows = _area_weights(height, STAMP)  # (69, H)
        cols = _area_weights(width, STAMP)  # (69, W)
        with _atomic_h5(dest, _h5_bytes(count, n_params=0)) as out:
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

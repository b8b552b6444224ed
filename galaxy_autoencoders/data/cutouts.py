"""Your own galaxy images: a folder of PNG or JPEG cutouts, a .npy/.npz array, or an HDF5 file with or without labels.

`read_cutouts(path)` brings any of them to what the models take, uint8 (N, 69, 69, 3), and says in one printed
line each what it changed:

- one band (grey) is copied into the three colour channels; four (RGBA) lose the alpha channel;
- channels-first arrays (N, 3, H, W) are turned channels-last;
- float images in [0, 1] become uint8 0..255 (other floats are refused: scale them first);
- a stamp that is not square is cut to its central square; any size other than 69x69 is resized, with
  antialiasing (PIL's Lanczos filter), one image at a time, so a folder of mixed sizes works.

A file that is not an image (a stray README, a corrupt or truncated JPEG) or an empty folder is refused with
an error naming it; nothing is written either way. Galaxies without labels are "unlabelled": one class of
that name, so the class figures say so rather than invent classes. `Galaxies.ids` keeps each galaxy's file
name (folders) or index, which `galaxy-ae encode` writes into its catalogue.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .checks import STAMP, check_labels
from .errors import GalaxyDataError
from .galaxies import Galaxies
from .hdf5 import class_names_of, open_h5

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz")
UNLABELLED = ("unlabelled",)


def is_cutouts(path: Path) -> bool:
    """True for what read_cutouts reads and read_galaxy10 does not: folders and arrays."""
    return path.is_dir() or path.suffix.lower() in ARRAY_SUFFIXES + IMAGE_SUFFIXES


def read_cutouts(path: str | os.PathLike, n: int | None = None, seed: int = 0) -> Galaxies:
    """Galaxies from a folder of PNG/JPEG files, a .npy/.npz array or an HDF5 file with `images` (and `ans` or
    not), as uint8 (N, 69, 69, 3); n: a random subset of n chosen by seed."""
    path = Path(path).expanduser()
    labels, class_names = None, UNLABELLED
    if path.is_dir():
        images, ids = _read_folder(path)
    elif path.suffix.lower() in ARRAY_SUFFIXES:
        images, ids = _read_array(path), None
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        raise GalaxyDataError(f"{path} is one image; put your cutouts in a folder and give the folder's path.")
    else:
        images, labels, class_names = _read_h5(path)
        ids = None
    stamps = to_stamps(images, str(path))
    count = len(stamps)
    rows = np.arange(count)
    if n is not None:
        if not (isinstance(n, (int, np.integer)) and 0 < n <= count):
            raise ValueError(f"n={n!r}, but {path} holds {count} galaxies: choose 1..{count}, or n=None for all.")
        rows = np.sort(np.random.default_rng(seed).choice(count, size=n, replace=False))
    labels = np.zeros(count, dtype=np.int64) if labels is None else labels
    ids = tuple(ids[i] for i in rows) if ids is not None else tuple(str(i) for i in rows)
    return Galaxies(
        images=stamps[rows],
        labels=labels[rows],
        class_names=class_names,
        params=None,
        name=path.name,
        path=path,
        ids=ids,
    )


def _read_folder(folder: Path) -> tuple[list[np.ndarray], list[str]]:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not files:
        raise GalaxyDataError(f"The folder {folder} holds no images; put PNG or JPEG cutouts in it.")
    images = []
    for file in files:
        if file.is_dir() or file.suffix.lower() not in IMAGE_SUFFIXES:
            raise GalaxyDataError(
                f"{file} is not a PNG or JPEG cutout; move it out of {folder} (only image files are read)."
            )
        try:
            with Image.open(file) as image:
                image.load()  # decodes now: a truncated or corrupt file fails here, not later
                images.append(_pixels(image, file))
        except (OSError, UnidentifiedImageError, SyntaxError) as err:
            raise GalaxyDataError(f"{file} could not be read as an image ({err}); replace it or remove it.") from err
    return images, [file.name for file in files]


def _pixels(image, file: Path) -> np.ndarray:
    """A PIL image as an (H, W) or (H, W, C) uint8 array (palette and 16-bit images converted or refused)."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode not in ("L", "RGB", "RGBA", "LA"):
        raise GalaxyDataError(
            f"{file} has pixel mode {image.mode!r}; save it as an 8-bit grey or colour PNG/JPEG (0..255)."
        )
    pixels = np.asarray(image)
    return pixels[..., :1] if image.mode == "LA" else pixels


def _read_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"No file at {path}. Check the path.")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise GalaxyDataError(f"{path} could not be read as a NumPy array ({err}); save it again (np.save).") from err
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            keys = list(data.keys())
            key = "images" if "images" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise GalaxyDataError(
                    f"{path} holds arrays {keys}; name the images 'images' (np.savez(path, images=...)), or save one."
                )
            return data[key]
    return data


def _read_h5(path: Path) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    with open_h5(path) as f:
        if "images" not in f:
            raise GalaxyDataError(f"{path} has no 'images'; found keys {sorted(f)}. Store the cutouts as `images`.")
        images = f["images"][:]
        if "ans" not in f:
            return images, None, UNLABELLED
        names = class_names_of(f, path, None)
        labels = f["ans"][:].astype(np.int64)
    check_labels(labels, len(images), len(names), str(path))
    return images, labels, names


def to_stamps(images, where: str) -> np.ndarray:
    """Images (an array (N, H, W[, C]) or (N, C, H, W), or a list of (H, W[, C]) arrays) -> uint8 (N, 69, 69, 3).

    Prints one line for each kind of change it makes; refuses what it cannot convert, naming `where`."""
    if isinstance(images, np.ndarray):
        problem = _stack_problem(images.shape, where)
        if problem:
            raise GalaxyDataError(problem)
        images = list(_channels_last(images, where))
    if not images:
        raise GalaxyDataError(f"{where} holds no images.")
    notes, sizes = set(), set()
    stamps = [_one_stamp(image, where, notes, sizes) for image in images]
    if len(sizes) == 1:
        notes.add(f"resized from {'x'.join(map(str, sizes.pop()))} to {STAMP}x{STAMP} with antialiasing (Lanczos)")
    elif sizes:
        notes.add(f"{len(sizes)} different sizes, each resized to {STAMP}x{STAMP} with antialiasing (Lanczos)")
    for note in sorted(notes):
        print(f"{where}: {note}")
    return np.stack(stamps)


def _stack_problem(shape: tuple[int, ...], where: str) -> str | None:
    """Why a stack of images of this shape cannot be loaded, or None (channels first or last, 1, 3 or 4 bands)."""
    if len(shape) == 3 and shape[-1] in (3, 4):
        return f"{where}: one image of shape {shape}? Give a stack (N, H, W, 3), e.g. images[None] for one."
    if len(shape) not in (3, 4):
        return f"{where}: images of shape {shape}; expected (N, H, W) grey or (N, H, W, 3) colour cutouts."
    bands = 1 if len(shape) == 3 else shape[1] if _is_channels_first(shape) else shape[-1]
    if bands not in (1, 3, 4):
        return f"{where}: images with {bands} bands, shape {shape}; expected 1 (grey), 3 (colour) or 4 (RGBA)."
    if shape[0] == 0:
        return f"{where} holds no images."
    return None


def _is_channels_first(shape: tuple[int, ...]) -> bool:
    return len(shape) == 4 and shape[1] in (1, 3, 4) and shape[-1] not in (1, 3, 4)


def _channels_last(images: np.ndarray, where: str) -> np.ndarray:
    if _is_channels_first(images.shape):
        print(f"{where}: channels-first (N, C, H, W) turned into channels-last (N, H, W, C)")
        return images.transpose(0, 2, 3, 1)
    return images


def stored_problem(images, where: str, chunk: int | None = None) -> str | None:
    """Why loading would refuse these stored images (an HDF5 dataset or array (N, ...)), or None.

    The same rules as loading (shape, bands, values: uint8, or float finite in [0, 1]), read `chunk` galaxies at
    a time (default: about 64 MB), so that a 2.5 GB file is never held whole in memory; uint8 ones, always
    valid, are not read."""
    problem = _stack_problem(tuple(images.shape), where)
    if problem or images.dtype == np.uint8:
        return problem
    chunk = chunk or max(1, (64 << 20) // (np.dtype(images.dtype).itemsize * math.prod(images.shape[1:])))
    for start in range(0, images.shape[0], chunk):
        stop = min(start + chunk, images.shape[0])
        problem = _value_problem(np.asarray(images[start:stop]), f"{where} (images {start} to {stop - 1})")
        if problem:
            break
    return problem


def _one_stamp(image: np.ndarray, where: str, notes: set, sizes: set) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise GalaxyDataError(f"{where}: an image of shape {image.shape}; expected (H, W), (H, W, 3) or (H, W, 4).")
    image = _as_uint8(image, where, notes)
    if image.shape[-1] == 1:
        notes.add("grey (one band) images copied into the three colour channels")
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 4:
        notes.add("RGBA images: the alpha channel dropped")
        image = image[..., :3]
    height, width = image.shape[:2]
    if (height, width) == (STAMP, STAMP):
        return image
    sizes.add((height, width))
    if height != width:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        image = image[top : top + side, left : left + side]
        notes.add("stamps that are not square cut to their central square")
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((STAMP, STAMP), Image.Resampling.LANCZOS))


def _value_problem(values: np.ndarray, where: str) -> str | None:
    """Why loading refuses these pixel values, or None: uint8, or float, finite and in [0, 1]."""
    if values.dtype == np.uint8 or values.size == 0:
        return None
    if np.issubdtype(values.dtype, np.floating):
        if not np.isfinite(values).all():
            return f"{where}: images contain NaN or inf; replace them (e.g. np.nan_to_num) first."
        if values.min() >= 0 and values.max() <= 1:
            return None
    return (
        f"{where}: images of dtype {values.dtype} with values {values.min()}..{values.max()}; give uint8 (0..255) "
        "or float in [0, 1] (e.g. scale with an arcsinh stretch and divide by the maximum)."
    )


def _as_uint8(image: np.ndarray, where: str, notes: set) -> np.ndarray:
    problem = _value_problem(image, where)
    if problem:
        raise GalaxyDataError(problem)
    if image.dtype == np.uint8:
        return image
    notes.add("float images in [0, 1] scaled to uint8 0..255")
    return np.round(image * 255).astype(np.uint8)

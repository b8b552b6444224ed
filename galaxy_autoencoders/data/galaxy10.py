"""The public Galaxy10 files: their classes, where to download them and how to check them (see ../shared's
galaxy10.md for the sources)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class DatasetSpec:
    """A public Galaxy10 file: where to download it and how to check it (SHA-256, size in bytes)."""

    name: str
    filename: str
    url: str
    sha256: str
    size: int | None  # bytes; None where the publisher gives only a rounded size (the hash still decides)
    class_names: tuple[str, ...]


DATASETS: dict[str, DatasetSpec] = {
    "galaxy10_sdss": DatasetSpec(
        name="galaxy10_sdss",
        filename="Galaxy10.h5",
        url="https://zenodo.org/records/10844811/files/Galaxy10.h5",
        sha256="969a6b1cefcc36e09fffa86febd2f699a4aa19b837ba0427f01b0bc6ded458af",
        size=210_234_548,
        class_names=GALAXY10_SDSS_CLASSES,
    ),
    "galaxy10_decals": DatasetSpec(
        name="galaxy10_decals",
        filename="Galaxy10_DECals.h5",
        url="https://zenodo.org/records/10845026/files/Galaxy10_DECals.h5",
        sha256="19aefc477c41bb7f77ff07599a6b82a038dc042f889a111b0d4d98bb755c1571",
        size=None,  # published only as "2.54 GB"
        class_names=GALAXY10_DECALS_CLASSES,
    ),
}


def dataset_key(name: str | os.PathLike) -> str | None:
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

"""Writing a file so that it is complete or absent: the one helper every writer of the package uses."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(target: str | os.PathLike, write) -> Path:
    """Call write(tmp_path) for a temporary name next to target, then rename it onto target; returns target.

    Same folder, so the rename is atomic: a crash or Ctrl-C mid-write leaves the old file (or none), never half
    of one. The temporary name keeps target's suffix, for writers that read the format from it."""
    target = Path(target)
    tmp = target.with_name(f".{target.stem}.tmp{os.getpid()}{target.suffix}")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


# What each kind of output can be written as: the suffixes its writer honours (pandas for catalogues, h5py for
# galaxies, Pillow for animations; figures: those of matplotlib, see _suffixes). A name with another suffix is
# refused before any work is done.
WRITABLE = {
    "catalogue": (".csv", ".parquet"),
    "figure": (".png", ".jpg", ".jpeg", ".pdf", ".svg"),  # the usual ones; matplotlib writes a few more
    "galaxies": (".h5", ".hdf5"),
    "animation": (".gif",),
}
# Suffixes of files the package writes: a folder given one of these names was almost surely meant as a file.
FILE_SUFFIXES = {suffix for suffixes in WRITABLE.values() for suffix in suffixes} | {".pt", ".json", ".npy"}


def _suffixes(kind: str) -> tuple[str, ...]:
    """The suffixes a `kind` of output can have: WRITABLE's, and for figures every format matplotlib writes."""
    if kind != "figure":
        return WRITABLE[kind]
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(dict.fromkeys([*WRITABLE[kind], *(f".{f}" for f in FigureCanvasBase.get_supported_filetypes())]))


def check_output_file(path: str | os.PathLike, kind: str, name: str = "the output") -> Path:
    """Refuse a file name of `kind` (a key of WRITABLE) whose suffix its writer cannot honour, or that is a folder,
    or a Parquet name without pyarrow (ImportError); returns the Path. `name` says where the path came from (a
    command-line flag such as --out) in the error."""
    path = Path(path)
    suffixes = _suffixes(kind)
    if path.suffix.lower() not in suffixes:
        given = f"the extension {path.suffix!r}" if path.suffix else "no extension"
        raise ValueError(
            f"{name} {path} has {given}; the {kind} can be written as {', '.join(suffixes[:5])}"
            f"{' and other formats of matplotlib' if len(suffixes) > 5 else ''}. "
            f"Give a name such as {path.stem or kind}{suffixes[0]}."
        )
    if path.is_dir():
        raise ValueError(f"{name} {path} is a folder; give a file name ending in {', '.join(suffixes)}.")
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401  (pandas' Parquet engine)
        except ImportError as err:
            raise ImportError(
                f"Writing {path.name} needs pyarrow: `pip install pyarrow`, or end the name in .csv."
            ) from err
    return path


def check_output_folder(path: str | os.PathLike, name: str = "the output folder") -> Path:
    """Refuse a folder path that is an existing file or carries a file's suffix (model.pt, out.csv); returns it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} {path} is a file, not a folder; give a folder name (it is made if missing).")
    if path.suffix.lower() in FILE_SUFFIXES and not path.is_dir():
        raise ValueError(
            f"{name} {path} names a folder, but ends in {path.suffix!r} like a file; give a folder name such "
            f"as {path.with_suffix('')} (the files inside it are named by the command)."
        )
    return path

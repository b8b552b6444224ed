"""The data folder: where it is, whether it can be written, and what to say when the disk is full."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from .. import config
from .errors import DataFolderError

H5_SPARE_BYTES = 1_000_000  # HDF5's own structures, on top of the data

FOLDER_HINT = (
    f"Point {config.DATA_ENV} at a folder you can write to, "
    f"e.g. `export {config.DATA_ENV}=$HOME/galaxy_data`, or pass data_dir=..."
)


def data_folder(data_dir: str | os.PathLike | None) -> Path:
    """The cache folder (data_dir, else config.data_dir()), created if needed."""
    folder = Path(data_dir).expanduser() if data_dir is not None else config.data_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataFolderError(f"Cannot create the data folder {folder} ({err.strerror or err}). {FOLDER_HINT}") from err
    return folder


def check_writable_folder(folder: Path, purpose: str = "") -> None:
    """Fail early, with a clear message, when a file cannot be written into folder; purpose says what for."""
    folder = data_folder(folder)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        purpose = f" {purpose}" if purpose else ""
        raise DataFolderError(
            f"Cannot write into the data folder {folder}{purpose}: {err.strerror or err}. {FOLDER_HINT}"
        ) from err


def check_free_space(dest: Path, nbytes: int) -> None:
    """Refuse, before writing, a file of nbytes (plus HDF5's own structures) that the disk has no room for."""
    # h5py meets a full disk with a RuntimeError and can crash the interpreter while cleaning up: look first.
    free, needed = shutil.disk_usage(dest.parent).free, nbytes + H5_SPARE_BYTES
    if free < needed:
        raise disk_full_error(dest, f"it needs about {size_text(needed)} and the disk has {size_text(free)} free")


def is_disk_full(err: BaseException) -> bool:
    """An OSError with ENOSPC/EDQUOT, or h5py's RuntimeError that carries the errno only in its text."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(err, (OSError, RuntimeError)) and ("errno = 28" in str(err) or "No space left" in str(err))


def disk_full_error(dest: Path, why: str) -> DataFolderError:
    """The error for a file that did not fit on the disk: nothing written at dest, why, and what to do."""
    return DataFolderError(
        f"Cannot save {dest}: {why}. Nothing was written at {dest} (a file already there is unchanged). Free space "
        f"on the disk holding {dest.parent} and run the same command again, or save elsewhere: {FOLDER_HINT}"
    )


def download_write_error(err: OSError, part: Path, dest: Path, total: int | None) -> DataFolderError:
    """The error for a failed write of a download's .part file (disk full, quota, ...): what is kept, what to do."""
    kept = part.stat().st_size if part.exists() else 0
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        problem = "the disk is full" if err.errno == errno.ENOSPC else "your disk quota is used up"
        more = f" (the download needs about {size_text(total - kept)} more)" if total else ""
        retry = f"Free space on the disk holding {dest.parent}{more} and run the same command again"
    else:
        problem = err.strerror or str(err)
        retry = "Fix that (a full or unplugged drive, a file you may not change) and run the same command again"
    return DataFolderError(
        f"Writing {part} failed after {kept:,} bytes: {problem}. Nothing was written at {dest}. {retry}: "
        f"the download resumes from {part}. Or delete {part} and download into a folder on another disk: "
        f"set {config.DATA_ENV} (e.g. `export {config.DATA_ENV}=/path/with/space`) or pass data_dir=..."
    )


def size_text(size: int | None) -> str:
    """Bytes -> "210 MB" or "12 kB"; None -> "size unpublished"."""
    if size is None:
        return "size unpublished"
    return f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"

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

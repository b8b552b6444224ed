"""`Galaxies`: the bundle every reader returns (images, labels, class names, ids, true parameters)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


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
    seed: int | None = None  # synthetic only: galaxy i was rendered from default_rng([seed, i]) (render_truth)

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

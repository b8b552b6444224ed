"""Checks of images and labels, shared by every reader and by the loaders, metrics and widgets.

Images are uint8 (N, 69, 69, 3); labels are class indices 0..K-1. Each check raises `GalaxyDataError` with a
message naming where the data came from (`where`) and what was expected.
"""

from __future__ import annotations

import numpy as np

from .errors import GalaxyDataError

STAMP = 69  # side of a Galaxy10 SDSS stamp in pixels; every image this module returns has it


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

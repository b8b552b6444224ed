"""fastai `DataLoaders` whose galaxies live on the training device, so a batch costs one indexing operation.

A fastai `Learner` only needs each loader to be an iterable of batches with a length and a device. Ours keeps
all images as one uint8 tensor `(N, 3, 69, 69)` on the device (21,785 SDSS galaxies are 311 MB), and for each
batch it indexes the tensor, applies a random symmetry of the square to each galaxy, and converts to float.
No per-item Python work: a per-image `Dataset` spends most of its time in Python, not in the model.

Batches are `(x, x, labels)`: the input, the target (an autoencoder reconstructs its input) and the class labels
(unused by the reconstruction losses, kept for the class-aware term). `dls.n_inp = 1`, so fastai passes
`(x, labels)` as the targets to the loss function.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from ._fastai import DataLoaders, default_device
from .config import BATCH_SIZE, SEED, VALID_PCT
from .data.checks import check_images, check_labels


def dihedral_index(height: int, width: int) -> torch.Tensor:
    """Pixel permutations of the 8 symmetries of the square: long (8, H*W); row k maps output to input pixels."""
    if height != width:
        raise ValueError(f"Rotations by 90 degrees need square images, not {height}x{width}.")
    grid = torch.arange(height * width).view(height, width)
    perms = []
    for flip in (False, True):
        g = grid.flip(-1) if flip else grid
        for k in range(4):
            perms.append(torch.rot90(g, k, dims=(0, 1)).reshape(-1))
    return torch.stack(perms)


def apply_dihedral(images: torch.Tensor, ops: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Apply symmetry ops[b] (0..7) to images[b]: any dtype (B, C, H, W) -> same; one gather, no Python loop."""
    b, c, h, w = images.shape
    gather = index[ops].unsqueeze(1).expand(b, c, h * w)  # (B, C, H*W)
    return images.reshape(b, c, h * w).gather(2, gather).view(b, c, h, w)


class GalaxyLoader:
    """Iterates over batches `(x, x, labels)` of float galaxies in [0, 1], x: (B, 3, H, W), on `device`."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        idxs: torch.Tensor,
        bs: int = BATCH_SIZE,
        shuffle: bool = False,
        augment: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        class_names: tuple[str, ...] | None = None,
    ):
        self.images = images  # uint8 (N, 3, H, W), shared by the train and valid loaders
        self.labels = labels  # long (N,)
        self.idxs = idxs  # long (n,): which of the N galaxies this loader serves
        self.bs = bs
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.seed = seed
        self.class_names = class_names
        # A CPU generator, so the order and the symmetries are the same on every device.
        self.generator = torch.Generator().manual_seed(seed)
        self.index = dihedral_index(images.shape[-2], images.shape[-1]).to(images.device)
        # When this loader is one process's shard of a training set (distributed.shard_dls): that whole set's
        # mean image, so every process starts its decoder from the same colour as a single process would.
        self.whole_mean_image: torch.Tensor | None = None
        self.source_rows: torch.Tensor | None = None  # for a subset: its galaxies' rows in the whole set

    @property
    def n(self) -> int:
        """Number of galaxies this loader serves."""
        return len(self.idxs)

    def rows(self) -> np.ndarray:
        """Which galaxies of the whole set this loader serves, in its order: int64 (n,), rows of the images or
        `Galaxies` it was made from. `data.images[dls.valid.rows()]` are the validation galaxies, uint8."""
        return (self.idxs if self.source_rows is None else self.source_rows).cpu().numpy()

    @property
    def device(self) -> torch.device:
        return self.images.device

    def mean_image(self) -> torch.Tensor:
        """The average of this loader's galaxies (stored orientation), in [0, 1]: float (C, H, W) on the CPU.

        The trivial baseline: predicting it for every galaxy is what a model that learned nothing does. For a
        shard of a training set, the whole set's (see `whole_mean_image`)."""
        if self.whole_mean_image is not None:
            return self.whole_mean_image
        total = torch.zeros(self.images.shape[1:], dtype=torch.float64)
        for chunk in self.idxs.split(4096):  # float copies of a chunk, not of the whole set
            total += self.images[chunk].double().sum(0).cpu()
        return (total / (self.n * 255)).float()

    def channel_means(self) -> torch.Tensor:
        """Mean of each channel over this loader's galaxies, in [0, 1]: float (C,) on the CPU."""
        return self.mean_image().mean((1, 2))

    def __len__(self) -> int:
        return self.n // self.bs if self.drop_last else math.ceil(self.n / self.bs)

    def __iter__(self):
        order = self.idxs
        if self.shuffle:
            order = order[torch.randperm(self.n, generator=self.generator).to(order.device)]
        for i in range(len(self)):
            idx = order[i * self.bs : (i + 1) * self.bs]
            x = self.images[idx]  # uint8 (B, 3, H, W)
            if self.augment:
                ops = torch.randint(0, 8, (len(idx),), generator=self.generator)  # (B,), from the CPU generator
                if x.is_cuda:  # a plain host-to-GPU copy waits for the GPU every batch; a pinned one need not
                    ops = ops.pin_memory()
                x = apply_dihedral(x, ops.to(x.device, non_blocking=True), self.index)
            x = x.float().div_(255)
            yield x, x, self.labels[idx]

    def to(self, device) -> GalaxyLoader:
        """Move the images (once) and the labels to `device`; returns self, as fastai expects."""
        self.images = self.images.to(device)
        self.labels = self.labels.to(device)
        self.idxs = self.idxs.to(device)
        self.index = self.index.to(device)
        return self

    def new(self, **kwargs) -> GalaxyLoader:
        """A copy sharing the same device tensors, with some settings changed (fastai calls this)."""
        dl = copy.copy(self)
        for key, value in kwargs.items():
            if not hasattr(dl, key):
                raise TypeError(f"GalaxyLoader.new() got an unknown setting {key!r}")
            setattr(dl, key, value)
        dl.generator = torch.Generator().manual_seed(dl.seed)
        return dl

    def subset(self, positions: torch.Tensor, **kwargs) -> GalaxyLoader:
        """A loader over galaxies `positions` (0..n-1) of this one, holding copies of only those galaxies (one
        process's shard in `distributed.shard_dls`), with some settings changed as in `new`."""
        which = self.idxs[positions.to(self.idxs.device)]
        dl = self.new(**kwargs)
        dl.images, dl.labels = self.images[which], self.labels[which]
        dl.idxs = torch.arange(len(which), device=self.images.device)
        dl.source_rows = which if self.source_rows is None else self.source_rows[which]
        return dl

    def one_batch(self):
        """The first batch: (x, x, labels)."""
        return next(iter(self))

    def show_batch(self, b=None, max_n: int = 16, ncols: int = 8, figsize=None):
        """Plot up to max_n galaxies of a batch (with augmentation, as the model sees them); returns the figure."""
        from .display import show_images

        x, _, y = self.one_batch() if b is None else b
        names = [self.class_names[i] for i in y[:max_n].tolist()] if self.class_names else None
        return show_images(x[:max_n], titles=names, ncols=ncols, figsize=figsize)

    def show_results(self, b, preds, max_n: int = 8, figsize=None):
        """Inputs (top row) above reconstructions (bottom row); preds may be a tensor or (recon, mu, logvar)."""
        from .display import show_images

        recon = preds[0] if isinstance(preds, (tuple, list)) else preds
        x = b[0][:max_n].cpu()
        recon = recon[:max_n].detach().float().cpu().clamp(0, 1)
        return show_images(torch.cat([x, recon]), ncols=len(x), figsize=figsize, row_labels=("input", "output"))


def galaxy_dls(
    images,
    labels=None,
    valid_pct: float = VALID_PCT,
    bs: int = BATCH_SIZE,
    seed: int = SEED,
    augment: bool = True,
    device=None,
    class_names: tuple[str, ...] | None = None,
) -> DataLoaders:
    """fastai DataLoaders over uint8 (N, H, W, 3) images (or a `Galaxies`), moved once to `device`."""
    if hasattr(images, "images"):  # a Galaxies from load_galaxies
        labels = images.labels if labels is None else labels
        class_names = class_names or images.class_names
        images = images.images
    images = np.asarray(images)
    check_images(images.shape, images.dtype, "galaxy_dls(images)", values=images)
    n = len(images)
    labels = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels)
    check_labels(labels, n, len(class_names) if class_names else 10, "galaxy_dls(labels)")
    labels = labels.astype(np.int64)
    n_valid = int(round(n * valid_pct))
    if not 0 < n_valid < n:
        raise ValueError(
            f"valid_pct={valid_pct} leaves {n_valid} of {n} galaxies for validation; "
            "use a value between 0 and 1 that keeps at least one galaxy on each side."
        )
    device = default_device() if device is None else torch.device(device)
    # channels-first once, on the host, then one copy to the device; uint8 is 4x smaller than float.
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)
    y = torch.from_numpy(labels).to(device)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    valid_idx, train_idx = perm[:n_valid].sort().values, perm[n_valid:].sort().values
    common = dict(bs=bs, class_names=tuple(class_names) if class_names else None)
    train = GalaxyLoader(
        x,
        y,
        train_idx.to(device),
        shuffle=True,
        augment=augment,
        drop_last=n - n_valid >= bs,
        seed=seed,
        **common,
    )
    valid = GalaxyLoader(x, y, valid_idx.to(device), seed=seed + 1, **common)
    dls = DataLoaders(train, valid, device=device)
    dls.n_inp = 1
    dls.seed = seed  # each loader's own seed is this plus its offset (fit_profile restarts them from there)
    return dls

"""Host memory of the full profile's heavy steps, measured on a Galaxy10-SDSS-sized stand-in.

Galaxy10 SDSS (21,785 images of 69x69x3) cannot be downloaded everywhere, so this loads an HDF5 file of the
same layout and size (render one with `galaxy-ae data synthetic --n 21785 --out /tmp/big.h5`), then runs, with
the full profile's settings, the steps of the notebooks that hold the most memory: loading the images, the
DataLoaders, notebook 02's PCA over the training images, training (a few batches of one epoch, then its
validation: a step's memory does not grow with the number of steps), and the reconstructions and metrics of
notebooks 02-04.
After each step it prints the process's resident memory now and its peak so far (VmHWM, Linux).

On a CPU the network's activations are in host memory too; on a GPU they are not, so a GPU run needs less.

    python benchmarks/full_profile_memory.py /tmp/big.h5 [--batches 4] [--skip-pca | --pca-max 5000]
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import psutil


def _hwm() -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s*(\d+)\s*kB", text).group(1)) * 1024


def report(step: str, start: float) -> None:
    rss = psutil.Process().memory_info().rss
    print(f"{step:<44} {time.perf_counter() - start:7.1f} s  RSS {rss / 1e6:6.0f} MB  peak {_hwm() / 1e6:6.0f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="an HDF5 file in the Galaxy10 layout, 21,785 galaxies")
    parser.add_argument("--batches", type=int, default=4, help="training batches to run (of one epoch)")
    parser.add_argument("--skip-pca", action="store_true", help="leave out notebook 02's PCA step")
    parser.add_argument(
        "--pca-max", type=int, default=5000, help="fit the PCA on at most this many images (notebook 02: 5000)"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()

    import numpy as np
    from fastai.callback.core import Callback, CancelTrainException

    from galaxy_autoencoders.config import apply_profile, get_profile
    from galaxy_autoencoders.data import load_galaxies
    from galaxy_autoencoders.dataloaders import galaxy_dls
    from galaxy_autoencoders.inference import encode_all, reconstruct_all
    from galaxy_autoencoders.metrics import evaluate
    from galaxy_autoencoders.models import ModelConfig
    from galaxy_autoencoders.training import vae_learner

    profile = apply_profile(get_profile("full"))
    report("imports", start)
    data = load_galaxies(args.path, seed=profile.seed)
    report(f"load {len(data.labels):,} images {data.images.shape[1:]}", start)
    dls = galaxy_dls(data, bs=profile.batch_size, seed=profile.seed)
    report(f"DataLoaders (bs {profile.batch_size}, device {dls.device})", start)

    if not args.skip_pca:  # notebook 02, as written there
        from sklearn.decomposition import PCA

        train_idx = dls.train.rows()[: args.pca_max]
        train_x = data.images[train_idx].reshape(len(train_idx), -1) / 255.0
        valid_x = data.images[dls.valid.rows()].reshape(dls.valid.n, -1) / 255.0
        pca = PCA(n_components=20, random_state=profile.seed).fit(train_x)
        codes = (valid_x - pca.mean_) @ pca.components_[:8].T
        _ = np.clip(codes @ pca.components_[:8] + pca.mean_, 0, 1)
        report(f"notebook 02 PCA on {train_x.shape} float64", start)
        del train_x, valid_x, pca, codes, _

    class StopAfter(Callback):
        def after_batch(self):
            if self.training and self.iter + 1 >= args.batches:
                raise CancelTrainException

    learn = vae_learner(dls, objective="mmd", config=ModelConfig(widths=profile.widths))
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, profile.lr, cbs=StopAfter())
    report(f"train {args.batches} batches, widths {profile.widths}", start)
    x, recon = reconstruct_all(learn.model, dls)
    codes = encode_all(learn.model, dls)
    report(f"reconstruct + encode {len(x):,} validation images", start)
    scores = evaluate(learn.model, dls, params=data.params)
    report(f"evaluate (mse {scores['mse']:.4f})", start)
    print(f"peak resident memory: {_hwm() / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

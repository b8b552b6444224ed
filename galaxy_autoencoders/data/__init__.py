"""The data, in the order it flows: the public Galaxy10 files (`galaxy10`), their download (`downloader`) into
the data folder (`folders`), the HDF5 layout (`hdf5`), DECaLS downsampling (`decals`), the synthetic set
(`synthetic`), your own cutouts (`cutouts`), the checks every reader applies (`checks`), and the one entry point,
`load_galaxies` (`registry`), which returns a `Galaxies` bundle (`galaxies`) or raises one of `errors`.

Names without an underscore in these modules may be used by their siblings; this package exports only what a
user needs.

    from galaxy_autoencoders.data import load_galaxies
    data = load_galaxies("synthetic")  # data.images uint8 (N, 69, 69, 3), data.labels (N,)
"""

from .checks import STAMP, check_finite, check_images, check_labels
from .decals import downsample_decals
from .downloader import download, fetch
from .errors import DataFolderError, DownloadError, GalaxyDataError
from .galaxies import Galaxies
from .galaxy10 import DATASETS, GALAXY10_DECALS_CLASSES, GALAXY10_SDSS_CLASSES, GALAXY10_SDSS_COUNTS, DatasetSpec
from .hdf5 import read_galaxy10, write_galaxy10
from .registry import SYNTHETIC_DEFAULT_N, describe, load_galaxies, make_synthetic

__all__ = [
    "DATASETS",
    "GALAXY10_DECALS_CLASSES",
    "GALAXY10_SDSS_CLASSES",
    "GALAXY10_SDSS_COUNTS",
    "STAMP",
    "SYNTHETIC_DEFAULT_N",
    "DataFolderError",
    "DatasetSpec",
    "DownloadError",
    "Galaxies",
    "GalaxyDataError",
    "check_finite",
    "check_images",
    "check_labels",
    "describe",
    "download",
    "downsample_decals",
    "fetch",
    "load_galaxies",
    "make_synthetic",
    "read_galaxy10",
    "write_galaxy10",
]

"""The fastai names the package uses, imported in one place.

fastai 2.8 still uses torch.jit.script, which torch >= 2.9 warns about on import: a note for fastai's
maintainers, not for students (and its file path would clutter every notebook). Importing fastai here, once,
with that one warning silenced, keeps it out of every module that needs fastai.
"""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import fastai.callback.progress  # noqa: F401  (registers ProgressCallback: progress bars and the results table)
    import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle and Learner.lr_find)
    from fastai.callback.core import Callback, CancelBatchException, CancelFitException
    from fastai.callback.progress import CSVLogger, ProgressCallback
    from fastai.data.core import DataLoaders
    from fastai.learner import AvgSmoothLoss, Learner, Metric, Recorder
    from fastai.torch_core import default_device, find_bs

__all__ = [
    "AvgSmoothLoss",
    "CSVLogger",
    "Callback",
    "CancelBatchException",
    "CancelFitException",
    "DataLoaders",
    "Learner",
    "Metric",
    "ProgressCallback",
    "Recorder",
    "default_device",
    "find_bs",
]

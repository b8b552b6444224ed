"""Training, in the order a reader meets it: the objective (`objective`), the callbacks (`callbacks`), the
learner that puts them together (`learner`), its table (`recorder`), and what makes it fast on a GPU (`speed`,
`compile`, `capture`) or on several (`distributed`).

    from galaxy_autoencoders.training import vae_learner
    learn = vae_learner(dls, objective="mmd")
    learn.fit_one_cycle(6, 2e-3)
"""

from .callbacks import ClassAwareCallback, EpochCheckpoint, KLWarmup, NaNGuard, PerceptualCallback
from .capture import CapturedStep
from .compile import CompileModel
from .learner import (
    fit_profile,
    last_metrics,
    load_or_train,
    load_saved,
    profile_learner,
    save_learner,
    vae_learner,
)
from .objective import OBJECTIVES, LossPart, Objective
from .recorder import TableRecorder
from .speed import HOST_SYNC_EVERY, CPUBFloat16, GPUFriendlyProgress, cpu_has_bf16, speed_up, torch_adamw

__all__ = [
    "HOST_SYNC_EVERY",
    "OBJECTIVES",
    "CPUBFloat16",
    "CapturedStep",
    "ClassAwareCallback",
    "CompileModel",
    "EpochCheckpoint",
    "GPUFriendlyProgress",
    "KLWarmup",
    "LossPart",
    "NaNGuard",
    "Objective",
    "PerceptualCallback",
    "TableRecorder",
    "cpu_has_bf16",
    "fit_profile",
    "last_metrics",
    "load_or_train",
    "load_saved",
    "profile_learner",
    "save_learner",
    "speed_up",
    "torch_adamw",
    "vae_learner",
]

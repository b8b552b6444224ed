"""Training speed on a GPU: what keeps a small model's GPU busy, and bf16 on a CPU.

A small model on a big GPU is held back by the host: each value read back to the CPU makes the CPU wait for the
GPU, and the CPU must run ahead, queueing the next batch, for the GPU to stay busy. So on a GPU nothing is read
back more often than every HOST_SYNC_EVERY batches (`GPUFriendlyProgress`, `NaNGuard`, `TableRecorder`), the
optimiser steps every weight in one kernel (`torch_adamw(fused=True)`), and bf16 autocast and channels_last
are on (`cuda_speedups`). On a CPU nothing changes: reads are free there. `CPUBFloat16` is bf16 for CPUs that
have it. `compile.py` holds the other half: the model's forward compiled into CUDA graphs; `capture.py` the
whole training step as one graph, when asked for.

`speed_up` applies all of them to a learner: the one place `vae_learner` calls, which a reader of the teaching
path can skip.
"""

from __future__ import annotations

from functools import partial

import torch

from .._fastai import Callback, Learner, ProgressCallback
from ..config import cpu_info, world_size
from .capture import CapturedStep
from .compile import CompileModel

# On a GPU, how many batches may pass between reads of a value back to the host (each read waits for the GPU).
HOST_SYNC_EVERY = 20


class GPUFriendlyProgress(ProgressCallback):
    """fastai's progress bar, reading the smoothed loss back for its comment every `every` batches on a GPU.

    fastai's own bar reads it after every batch (see the module's docstring for why that costs on a GPU). Here it
    reads after batches every-1, 2*every-1, ..., in which `NaNGuard` reads too, and after the last: the host
    waits for the GPU in one batch of `every`, not in two. On a CPU the read is free and the comment
    updates every batch.
    """

    def __init__(self, every: int | None = None):
        self.every = every  # None: 1 on a CPU, HOST_SYNC_EVERY on a GPU

    @property
    def name(self) -> str:
        return "progress"  # learn.progress, as fastai's, so learn.no_bar() finds it

    def before_fit(self):
        super().before_fit()
        on_cpu = next(self.learn.model.parameters()).device.type == "cpu"
        self.interval = self.every or (1 if on_cpu else HOST_SYNC_EVERY)

    def after_batch(self):
        self.pbar.update(self.iter + 1)
        last = self.iter + 1 == self.n_iter
        if hasattr(self, "smooth_loss") and ((self.iter + 1) % self.interval == 0 or last):
            self.pbar.comment = f"{self.smooth_loss.item():.4f}"


class CPUBFloat16(Callback):
    """bf16 autocast for the forward pass and the loss on a CPU, the way fastai's `MixedPrecision` does on a GPU
    (fastai's hard-codes CUDA). bf16 has float32's range, so no loss scaling; the losses compute in float32.

    Worth it only on CPUs with native bf16 (AVX512-BF16 or AMX), where `galaxy-ae pretrain` uses it: a
    full-width model steps about 1.5x as fast as in float32 on a 2-core AMD EPYC. Off by default: the digits of
    a bf16 run depend on the CPU's kernels, and the quick profile must repeat.
    """

    order = 10

    def before_batch(self):
        self.autocast = torch.autocast("cpu", dtype=torch.bfloat16)
        self.autocast.__enter__()

    def after_pred(self):
        pred = self.learn.pred
        self.learn.pred = tuple(p.float() for p in pred) if isinstance(pred, tuple) else pred.float()

    def after_loss(self):
        self.autocast.__exit__(None, None, None)


def cpu_has_bf16() -> bool:
    """True on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX), where `CPUBFloat16` pays (Linux only)."""
    flags = cpu_info().get("flags", "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cuda_speedups(dls) -> list[Callback]:
    """bf16 autocast and channels_last on a CUDA device that supports bf16; nothing on CPU (it stays fp32)."""
    device = getattr(dls, "device", None)
    if device is None or torch.device(device).type != "cuda" or not torch.cuda.is_bf16_supported():
        return []
    # Imported here: fastai's channelslast module imports torch.cuda.amp, which warns on CPU-only installs.
    from fastai.callback.channelslast import ChannelsLast
    from fastai.callback.fp16 import MixedPrecision

    # bf16 has float32's range, so no loss scaling is needed (fastai turns the GradScaler off for bf16).
    return [MixedPrecision(amp_mode="bf16"), ChannelsLast()]


def torch_adamw(params, lr: float = 1e-3, fused: bool = False, foreach: bool | None = None):
    """fastai's default optimiser (Adam: betas 0.9/0.99, eps 1e-5, decoupled weight decay 0.01, none on biases
    and norm layers), run by PyTorch's AdamW: an `opt_func` for any fastai Learner.

    fastai's own Adam steps each weight tensor in Python, about ten small kernels per tensor and batch: on a
    GPU, a small model's step then costs more host time than its backward pass. fused=True (CUDA only) updates
    every tensor in one kernel. The weights follow the same arithmetic as fastai's Adam (a test checks it);
    fit_one_cycle's momentum schedule moves AdamW's first beta, as it moves Adam's `mom`. foreach: torch's
    choice by default; False steps tensor by tensor, the one implementation that reads lr and betas as tensors
    without a copy back to the host (`CapturedStep` needs it).
    """
    from fastai.optimizer import OptimWrapper

    params = [p for p in params if p.requires_grad]
    # fastai's wd_bn_bias=False: no decay on biases and norm layers, the 1-d tensors (weights have >= 2 dims).
    groups = [
        {"params": [p for p in params if p.ndim > 1]},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    adamw = torch.optim.AdamW(
        groups, lr=lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01, fused=fused or None, foreach=foreach
    )
    return OptimWrapper(opt=adamw)


def default_opt_func(device, capture: bool = False):
    """fused AdamW on a CUDA device; None (fastai's Adam, as before) elsewhere, where the step costs little. With
    capture, AdamW tensor by tensor on any device: the implementation that reads its schedule as tensors."""
    if capture:
        return partial(torch_adamw, foreach=False)
    if device is not None and torch.device(device).type == "cuda":
        return partial(torch_adamw, fused=True)
    return None


def speed_up(
    learn: Learner, compile: bool | None = None, opt_func_given: bool = False, capture: bool = False
) -> Learner:
    """learn with the speed-ups of its device: on CUDA, bf16 autocast and channels_last, fused AdamW (unless the
    caller gave an opt_func) and `CompileModel` (compile=None: on CUDA in one process; True: anywhere); a bar
    that reads the loss back every HOST_SYNC_EVERY batches on a GPU. On a CPU the arithmetic is fastai's own.
    capture=True: each training step as one `CapturedStep` (a CUDA graph on CUDA) instead of CompileModel."""
    device = getattr(learn.dls, "device", None)
    learn.add_cbs(cuda_speedups(learn.dls))
    on_cuda = torch.device(device or "cpu").type == "cuda"
    if capture:
        if compile or world_size() > 1:
            raise ValueError(
                "capture=True records the whole step itself: it replaces compile=True, and is not made for "
                "data-parallel training (--nproc). Leave compile out, or train with capture=False."
            )
        learn.add_cb(CapturedStep())
    # Not under data-parallel training by default: compiled CUDA graphs inside DDP have not been measured.
    elif compile or (compile is None and on_cuda and world_size() == 1):
        learn.add_cb(CompileModel())
    if not opt_func_given and (opt_func := default_opt_func(device, capture)) is not None:
        learn.opt_func = opt_func  # used when fit creates the optimiser
    if any(isinstance(cb, ProgressCallback) for cb in learn.cbs):  # fastai's default bar, unless turned off
        learn.remove_cb(ProgressCallback).add_cb(GPUFriendlyProgress())
    return learn

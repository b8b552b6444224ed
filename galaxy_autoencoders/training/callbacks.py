"""The callbacks of training, each hooking the events it needs, the way fastai's own `MixedPrecision` does:

- `KLWarmup` (before_batch, order 5) ramps the KL weight from 0 to 1;
- `ClassAwareCallback`, `PerceptualCallback` (after_loss, orders 21, 22) add the optional terms to the objective;
- `NaNGuard` (after_loss, order 80, after every term is in) stops training on a NaN/inf loss and restores the
  last good weights.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import torch

from .._fastai import Callback, CancelFitException
from ..files import atomic_write
from ..losses import (
    PerceptualLoss,
    class_aware_loss,
)
from .speed import HOST_SYNC_EVERY


class ClassAwareCallback(Callback):
    """Adds weight * cross entropy of the model's class head on mu (B, L) -> logits (B, K) against the labels."""

    order = 21

    def __init__(self, weight: float = 1.0):
        self.weight = weight

    def before_fit(self):
        if getattr(self.learn.model, "class_head", None) is None:
            raise ValueError(
                "ClassAwareCallback needs a VAE with a class head: build it with ModelConfig(n_classes=K), "
                "or use vae_learner(..., class_weight=...) which does that for you."
            )

    def after_loss(self):
        if len(self.learn.yb) < 2:
            return
        _, mu, _ = self.learn.pred
        ce = class_aware_loss(self.learn.model.class_head(mu), self.learn.yb[1])
        self.learn.loss_func.add(self.learn, "class", ce, self.weight)


class PerceptualCallback(Callback):
    """Adds weight * PerceptualLoss(recon, x): squared VGG16 feature distance, summed per image."""

    order = 22

    def __init__(self, weight: float = 1.0, layer: str = "relu2_2", pretrained: bool = True):
        self.weight = weight
        self.perceptual = PerceptualLoss(layer=layer, pretrained=pretrained)

    def before_fit(self):
        self.perceptual.to(self.dls.device)

    def after_loss(self):
        if not len(self.learn.yb):
            return
        pred = self.learn.pred
        recon = pred[0] if isinstance(pred, (tuple, list)) else pred
        term = self.perceptual(recon, self.learn.yb[0])
        self.learn.loss_func.add(self.learn, "perceptual", term, self.weight)


class KLWarmup(Callback):
    """Ramps the KL weight linearly from 0 to 1 over the first `pct` of the training steps, once per learner.

    The ramp counts steps across calls to fit, so a second fit continues at weight 1, and lr_find (a mock fit)
    neither advances it nor is counted. Validation uses the weight of the latest training step.
    """

    order = 5  # before the loss is computed; nothing else touches the weight

    def __init__(self, pct: float = 0.3):
        if not 0 < pct <= 1:
            raise ValueError(f"KLWarmup pct is the fraction of training to ramp over, in (0, 1]; got {pct}.")
        self.pct = pct
        self.n_steps: int | None = None  # fixed by the first real fit
        self.step = 0

    @property
    def weight(self) -> float:
        """The KL weight for the next training step: step / n_steps, capped at 1 (0 before the first fit)."""
        return 0.0 if self.n_steps is None else min(1.0, self.step / self.n_steps)

    def before_fit(self):
        self.counting = not hasattr(self.learn, "lr_finder")
        if self.counting and self.n_steps is None:
            self.n_steps = max(1, round(self.pct * self.n_epoch * len(self.dls.train)))

    def before_batch(self):
        if self.training:
            self.learn.loss_func.warmup = self.weight

    def after_batch(self):
        if self.training and self.counting:
            self.step += 1


class NaNGuard(Callback):
    """Stops training at the first NaN/inf training loss, restores the last good weights and says what to try.

    Every `every` finite training losses it keeps a CPU copy of the state_dict (one model's worth of memory;
    a 1.2 M-parameter VAE is 5 MB, and a copy every 50 batches costs well under 1% of a batch's time). On a CPU
    the loss is checked after each batch's loss and before its backward pass, so the optimiser never steps on a
    NaN. On a GPU, reading a value back waits for the GPU to finish, and the CPU could not queue the next batch
    meanwhile; there the check gathers `check_every` batches (default HOST_SYNC_EVERY) into one read. A NaN
    found that way may have been stepped on for a few batches, which does not matter: the weights go back to a
    copy taken when every loss before it was finite. After fit, `learn.nan_guard.tripped` is True and
    `learn.nan_guard.message` says where it happened.
    """

    order = 80  # after every callback that adds a term to the loss

    def __init__(self, every: int = 50, check_every: int | None = None):
        self.every = every
        self.check_every = check_every  # None: every batch on a CPU, every HOST_SYNC_EVERY batches on a GPU
        self.tripped = False
        self.message: str | None = None

    @property
    def name(self) -> str:
        return "nan_guard"  # so learn.nan_guard finds it (fastai's automatic name would be "na_n_guard")

    def _snapshot(self):
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.learn.model.state_dict().items()}
        # Under `CapturedStep` the optimiser steps before after_loss fires: a copy is kept only if it is finite.
        finite = all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
        if finite or getattr(self, "good_state", None) is None:
            self.good_state = state
            self.good_at = (getattr(self, "epoch", 0), getattr(self, "iter", 0))

    def before_fit(self):
        # lr_find raises the learning rate until the loss explodes, on purpose, and restores the weights itself.
        self.active = not hasattr(self.learn, "lr_finder")
        self.tripped, self.message, self.n_good = False, None, 0
        self.finite, self.first_unchecked, self.n_unchecked = None, None, 0  # losses not yet read back
        if self.active:
            on_cpu = next(self.learn.model.parameters()).device.type == "cpu"
            self.interval = self.check_every or (1 if on_cpu else HOST_SYNC_EVERY)
            self._snapshot()
            self.good_at = ("start of fit", "-")

    def after_loss(self):
        if not (self.active and self.training):
            return
        finite = torch.isfinite(self.learn.loss_grad.detach()).all()  # on the device: no wait
        if self.finite is None:
            self.finite, self.first_unchecked = finite, self.iter
        else:
            self.finite = self.finite & finite
        self.n_unchecked += 1
        if self.n_unchecked >= self.interval:
            # These weights gave a finite loss just now: a safe copy, taken before they are stepped on.
            self._check(snapshot=True)

    def after_train(self):
        if self.active and self.finite is not None:  # never end an epoch unchecked; no copy: unverified weights
            self._check(snapshot=False)

    def _check(self, snapshot: bool):
        finite = self.finite
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Data-parallel: stop in every process or in none, or the others would wait in the next gradient
            # exchange for ever. One number per check, the smallest "finite" of all processes.
            finite = torch.as_tensor(finite, dtype=torch.float32).clone()
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        all_finite = bool(finite)  # the one read back from the device
        first, n = self.first_unchecked, self.n_unchecked
        self.finite, self.first_unchecked, self.n_unchecked = None, None, 0
        if all_finite:
            before, self.n_good = self.n_good, self.n_good + n
            if snapshot and self.n_good // self.every > before // self.every:
                self._snapshot()
            return
        lr = self.opt.hypers[-1]["lr"]
        if n == 1:
            where = f"became {self.learn.loss_grad.detach().float().item()} at epoch {self.epoch}, batch {self.iter}"
        else:
            where = f"became NaN or inf at epoch {self.epoch}, between batches {first} and {first + n - 1}"
        self.learn.model.load_state_dict(self.good_state)
        self.learn.opt.clear_state()  # Adam's moments may hold the inf that caused this
        self.tripped = True
        epoch, batch = self.good_at
        self.message = (
            f"NaNGuard: the training loss {where} (learning rate {lr:.2e}). Training stopped; the weights are "
            f"back to the last good ones (epoch {epoch}, batch {batch}) and the optimiser state is reset. Try a "
            f"learning rate 10x lower (lr={lr / 10:.1e}), a KL warm-up (kl_warmup=0.3), or check the images for "
            "NaN/inf values."
        )
        warnings.warn(self.message, RuntimeWarning, stacklevel=2)
        raise CancelFitException()


class EpochCheckpoint(Callback):
    """After each epoch: the weights and optimiser state (fastai's format) at weights.pth, then the run's state
    ({"epoch", "history", "wall_s", ...}) at state_path, so that a re-run can resume after the last finished
    epoch. Both are written under another name and then renamed: a kill while saving never leaves a damaged file
    where the state file points. Prints `line.format(epoch)` and the validation loss."""

    order = 70  # after the Recorder (50) has the epoch's row

    def __init__(self, weights: Path, state_path: Path, state: dict, start_epoch: int, line: str):
        self.weights, self.state_path, self.state = weights, state_path, state
        self.start_epoch, self.line = start_epoch, line

    def before_epoch(self):
        self.start = time.time()

    def after_epoch(self):
        if self.epoch < self.start_epoch:  # fastai's SkipToEpoch passes through the epochs already done
            return
        tmp = self.weights.with_name(self.weights.name + ".tmp")
        self.learn.save(tmp, with_opt=True)
        os.replace(tmp.with_name(tmp.name + ".pth"), self.weights.with_name(self.weights.name + ".pth"))
        self.state["epoch"], self.state["history"] = self.epoch, list(self.learn.recorder.history)
        self.state["wall_s"] += time.time() - self.start
        atomic_write(self.state_path, lambda path: Path(path).write_text(json.dumps(self.state, indent=2)))
        row = self.learn.recorder.history[-1]
        print(f"{self.line.format(self.epoch + 1)}, valid loss {row.get('valid_loss', 0):.2f}")

"""`TableRecorder`: fastai's `Recorder`, keeping each epoch's row and, on a GPU, the smoothed loss on the device.

fastai's own Recorder does two things a small model on a GPU and a checkpoint need done differently:

- it copies every batch's loss to the CPU for the smoothed loss (the progress bar's number). On a GPU each copy
  waits for the GPU to finish, and the CPU cannot queue the next batch meanwhile: `DeviceSmoothLoss` keeps the
  same exponential average on the device, and `after_fit` brings the curve to the host in one read;
- its `values` rows are shared lists that a later `get_preds` (`show_results`, `validate`) rewrites in place,
  so the last trained epoch's numbers would be lost before `save_learner` reads them: `history` keeps a copy of
  each trained epoch's row, {column: value}, across fits.
"""

from __future__ import annotations

import math

import torch

from .._fastai import AvgSmoothLoss, Recorder


class DeviceSmoothLoss(AvgSmoothLoss):
    """fastai's smoothed training loss, kept on the loss's device: the same exponential average, no copy back."""

    def accumulate(self, learn):
        self.count += 1
        loss = learn.loss.detach().mean()  # a scalar on the device
        self.val = torch.lerp(loss, self.val.to(loss.device, loss.dtype), self.beta)


class TableRecorder(Recorder):
    """fastai's Recorder with `history` (one dict per trained epoch) and its smoothed loss on the device.

    `vae_learner` puts it in place of the default Recorder; it answers to `learn.recorder` as that one does.
    """

    def __init__(self, beta: float = 0.98, **kwargs):
        super().__init__(beta=beta, **kwargs)
        self.smooth_loss = DeviceSmoothLoss(beta=beta)
        self.history: list[dict[str, float]] = []
        self.trained = False

    @property
    def name(self) -> str:
        return "recorder"  # learn.recorder, as fastai's own

    def after_train(self):
        super().after_train()
        self.trained = True  # fastai's get_preds runs epoch events too, with no training phase

    def after_epoch(self):
        super().after_epoch()
        if not self.trained:
            return
        self.trained = False
        names = [n for n in self.metric_names[1:] if n != "time"]
        values = [math.nan if v is None else float(v) for v in self.learn.final_record]
        # An epoch whose validation was skipped (lr_find, a cancelled fit) has only its leading columns.
        self.history.append(dict(zip(names, values, strict=False)))

    def after_fit(self):
        if self.losses and isinstance(self.losses[0], torch.Tensor) and self.losses[0].device.type != "cpu":
            self.losses = list(torch.stack(self.losses).cpu().unbind())  # one read for plot_loss

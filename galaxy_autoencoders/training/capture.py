"""`CapturedStep`: a whole training step (forward, loss, backward, AdamW) as one call, as a fastai callback.

Why: with `CompileModel` a small model's forward and backward passes run as CUDA graphs, yet the GPU still idles
for most of an epoch: the loss terms run eagerly, the optimiser steps from Python, and fastai's per-batch Python
launches about 100 small kernels (docs/performance.md). On CUDA this callback records one training step, the
model's forward, every term of `Objective`, the backward pass and AdamW's step, as one CUDA graph, and replays
it for each batch: one launch from the host.

A recorded graph replays the same kernels on the same memory, so what changes from batch to batch goes in as
tensors the graph reads: the batch (copied into the graph's input), the learning rate and momentum that
`fit_one_cycle` schedules (AdamW's lr and first beta, as 0-d tensors) and the KL warm-up's weight. fastai still
runs the fit: the `before_batch` of the callbacks before this one (the schedule, the warm-up, autocast) runs as
always; the step then takes the place of fastai's own forward, loss, backward and step, fires `after_pred` and
`after_loss` as fastai would (the NaN guard and autocast hook them) and goes on to `after_batch` (the table, the
bar). Validation runs as without it.

On a CPU there is nothing to record: the same step runs eagerly, tensors and all, which is how
tests/test_capture.py checks on any machine that it trains as fastai's own loop does. On CUDA the first `warmup`
batches run eagerly on a side stream, as CUDA graphs require, and a batch of another shape runs eagerly too.
The optional class-aware and perceptual terms are added by callbacks after the loss, outside any graph, so a
learner with them is refused. Off unless asked for, `vae_learner(..., capture=True)`: it has not been measured
on a GPU yet (benchmarks/throughput.py --paths package,captured does).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .._fastai import Callback, CancelBatchException

# The callbacks that add a term to the loss after fastai computed it (callbacks.py): outside a recorded step.
EXTRA_TERMS = ("ClassAwareCallback", "PerceptualCallback")
# Events inside fastai's step, at which a callback could change it (clip gradients, scale the loss): a recorded
# step has no such points. after_pred, after_loss and after_step fire after the step, as fastai fires them.
INSIDE_THE_STEP = ("before_backward", "after_backward", "before_step")


class CapturedStep(Callback):
    """Each training batch as one step: run eagerly on a CPU, recorded once as a CUDA graph and replayed on CUDA.

    warmup: batches stepped eagerly on CUDA before the graph is recorded. Needs torch's AdamW as the optimiser,
    one that takes its lr and betas as tensors (fused on CUDA, single-tensor on a CPU): `vae_learner(...,
    capture=True)` sets it. `replayed` counts the batches the graph ran, over all fits (0 on a CPU).
    """

    order = 65  # after ParamScheduler (60) set this batch's lr and momentum, KLWarmup (5) and autocast (10)
    run_valid = False

    def __init__(self, warmup: int = 3):
        if warmup < 1:
            raise ValueError(f"warmup={warmup}: AdamW's state must exist before the step is recorded; give >= 1.")
        self.warmup = warmup
        self.replayed = 0

    def before_fit(self):
        learn = self.learn
        self.active = not hasattr(learn, "lr_finder")  # lr_find's mock fit runs fastai's own loop
        if not self.active:
            return
        refused = [type(cb).__name__ for cb in learn.cbs if cb is not self and not recordable(cb)]
        if refused:
            raise ValueError(
                f"CapturedStep records the model, the objective's own terms and AdamW as one step; "
                f"{', '.join(refused)} would change the step from outside (an extra loss term, or a hook inside the "
                "backward pass or the optimiser step). Train with capture=False to use it (class_weight, ...)."
            )
        self.adamw = getattr(learn.opt, "opt", None)
        if not isinstance(self.adamw, torch.optim.AdamW):
            raise ValueError(
                f"CapturedStep steps torch's AdamW with the schedule as tensors, but this learner's optimiser is "
                f"{type(self.adamw or learn.opt).__name__}. Make the learner with vae_learner(..., capture=True)."
            )
        device = next(learn.model.parameters()).device
        self.on_cuda = device.type == "cuda"
        groups = self.adamw.param_groups
        for group in groups:  # torch refuses to record the step of an AdamW whose groups are not capturable
            group["capturable"] = group["capturable"] or self.on_cuda
        self.lrs = [torch.tensor(float(g["lr"]), device=device) for g in groups]  # (): what the step reads
        self.beta1s = [torch.tensor(float(g["betas"][0]), device=device) for g in groups]
        self.kl_weight = torch.tensor(float(learn.loss_func.warmup), device=device)
        self.graph, self.batches = None, 0

    def before_batch(self):
        if not (self.active and self.training):
            return
        learn = self.learn
        with self.schedule_as_tensors():
            pred, loss = self._cuda_step(learn.xb, learn.yb) if self.on_cuda else self.step(learn.xb, learn.yb)
        learn.pred, learn.loss_grad, learn.loss = pred, loss, loss.detach().clone()
        self.batches += 1
        for event in ("after_pred", "after_loss", "after_step"):  # as fastai's own step fires them
            learn(event)
        raise CancelBatchException  # forward, loss, backward and step are done: fastai goes on to after_batch

    def step(self, xb: tuple, yb: tuple, recording: bool = False) -> tuple:
        """Forward, loss, backward and AdamW's step on one batch; returns its (pred, loss).

        Eagerly, the gradients are zeroed first, in place once a graph holds them (its memory stays its own);
        while recording they are not: the recorded backward pass writes them rather than adding to them."""
        if not recording:
            self.adamw.zero_grad(set_to_none=self.graph is None)
        pred = self.learn.model(*xb)
        loss = self.learn.loss_func(pred, *yb)
        loss.backward()
        self.adamw.step()
        return pred, loss

    def _cuda_step(self, xb: tuple, yb: tuple) -> tuple:
        if self.graph is None and self.batches >= self.warmup:
            self._record(xb, yb)
        if self.graph is None or [x.shape for x in xb] != [x.shape for x in self.static_xb]:
            side = torch.cuda.Stream()  # eager steps before recording run on a side stream, as CUDA graphs need
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.step(xb, yb)
            torch.cuda.current_stream().wait_stream(side)
            return out
        for static, given in zip([*self.static_xb, *self.static_yb], [*xb, *yb], strict=True):
            static.copy_(given)
        self.graph.replay()
        self.replayed += 1
        return self.static_pred, self.static_loss

    def _record(self, xb: tuple, yb: tuple) -> None:
        """Record one step on copies of the batch as a CUDA graph (not run: replays run it)."""
        self.static_xb = [x.clone() for x in xb]
        # yb repeats xb's tensor (the target is the input): one static copy of it, so one copy_ per replay.
        inputs = [id(x) for x in xb]
        self.static_yb = [self.static_xb[inputs.index(id(y))] if id(y) in inputs else y.clone() for y in yb]
        self.adamw.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_pred, self.static_loss = self.step(self.static_xb, self.static_yb, recording=True)

    @contextmanager
    def schedule_as_tensors(self):
        """While a step runs: this batch's lr, first beta and KL weight in the tensors the step reads, and those
        tensors in AdamW's groups and the objective; the plain numbers back afterwards, for fastai to read."""
        groups, objective = self.adamw.param_groups, self.learn.loss_func
        numbers = [(group["lr"], group["betas"]) for group in groups], objective.warmup
        for group, lr, beta1 in zip(groups, self.lrs, self.beta1s, strict=True):
            lr.fill_(group["lr"])  # a kernel with the number as its argument: the host does not wait for the GPU
            beta1.fill_(group["betas"][0])
            group["lr"], group["betas"] = lr, (beta1, group["betas"][1])
        self.kl_weight.fill_(objective.warmup)
        objective.warmup = self.kl_weight
        try:
            yield
        finally:
            hypers, objective.warmup = numbers
            for group, (lr, betas) in zip(groups, hypers, strict=True):
                group["lr"], group["betas"] = lr, betas


def recordable(cb: Callback) -> bool:
    """Whether a callback can stay beside `CapturedStep`: it adds no loss term and hooks no event inside the step.
    fastai's MixedPrecision does, but with bf16 its loss scaler is off and its hooks change nothing."""
    if type(cb).__name__ in EXTRA_TERMS:
        return False
    if type(cb).__name__ == "MixedPrecision":
        scaler = getattr(cb.learn, "scaler", None)
        return scaler is None or not scaler.is_enabled()
    return not any(hasattr(type(cb), event) for event in INSIDE_THE_STEP)

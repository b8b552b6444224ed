"""`CapturedStep`: a whole training step (forward, loss, backward, AdamW) as one call, as a fastai callback.

Why: with `CompileModel` a small model's forward and backward passes run as CUDA graphs, yet the GPU still idles
for most of an epoch: the loss terms run eagerly, the optimiser steps from Python, and fastai's per-batch Python
launches about 100 small kernels (docs/performance.md). On CUDA this callback records one training step, the
model's forward, every term of `Objective`, the backward pass and AdamW's step, as one CUDA graph, and replays
it for each batch: one graph launch instead of hundreds of kernels, beside a few small copies (the batch, the
schedule) and the events fastai fires.

A recorded graph replays the same kernels on the same memory, so what changes from batch to batch goes in as
tensors the graph reads: the batch (copied into the graph's input), the learning rate and momentum that
`fit_one_cycle` schedules (AdamW's lr and first beta, as 0-d tensors) and the KL warm-up's weight. fastai still
runs the fit: every other callback's `before_batch` (the schedule, the warm-up, autocast) runs first, as always;
the step then takes the place of fastai's own forward, loss, backward and step (autocast for the forward pass and
the loss only, without its weight cache, which a graph cannot hold), fires `after_pred`, `after_loss` and
`after_step` as fastai would (the NaN guard and autocast hook them) and goes on to `after_batch` (the table, the
bar). Validation runs as without it. AdamW steps tensor by tensor (foreach=False): the fused and multi-tensor
implementations read beta1 back to the host, which a recording forbids.

On a CPU there is nothing to record: the same step runs eagerly, tensors and all, which is how
tests/test_capture.py checks on any machine that it trains as fastai's own loop does. On CUDA the first `warmup`
batches run eagerly on a side stream, as CUDA graphs require, and a batch of another shape runs eagerly too.
A later fit replays the same graph unless something it holds fixed has changed (`CapturedStep.recording`).
The optional class-aware and perceptual terms are added by callbacks after the loss, outside any graph, so a
learner with them is refused, as is one with a hook inside the step (before_backward, after_backward,
before_step) or a callback that changes the loss in after_loss. Off unless asked for, `vae_learner(...,
capture=True)` or `galaxy-ae train --capture`: it has not run on a GPU yet (benchmarks/gpu_issue28.sh measures
it there).
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

    warmup: batches stepped eagerly on CUDA before the graph is recorded. Needs torch's AdamW stepping tensor
    by tensor (foreach=False), the one implementation that reads lr and betas as tensors on the device: the fused
    and multi-tensor ones read beta1 back to the host, which a recording forbids (and would bake in its value).
    `vae_learner(..., capture=True)` sets it. `replayed` counts the batches the graph ran and `recordings` the
    graphs recorded, over all fits; a graph is kept from fit to fit while what it holds fixed stays the same
    (`recording`). `batches` and `replayed_in_fit` count the last fit's training batches and replays.
    """

    order = 99  # after every other before_batch: the schedule (60), the warm-up (5), autocast (10), ...
    run_valid = False

    def __init__(self, warmup: int = 3):
        if warmup < 1:
            raise ValueError(f"warmup={warmup}: AdamW's state must exist before the step is recorded; give >= 1.")
        self.warmup = warmup
        self.replayed, self.recordings = 0, 0  # over all fits
        self.batches, self.replayed_in_fit = 0, 0  # in the last fit
        self.graph, self.recorded_for, self.active, self.on_cuda, self.new_fit = None, None, False, False, False
        self.side = None  # the CUDA stream of the eager steps, made at the first

    @property
    def name(self) -> str:
        return "captured_step"  # learn.captured_step, also for a subclass

    def before_fit(self):
        # The fit starts at its first training batch: validate and get_preds fire before_fit too, and train nothing.
        self.new_fit = True

    def before_batch(self):
        if not self.training:
            return
        learn = self.learn
        if self.new_fit:
            self._start_fit(learn.xb, learn.yb)
        if not self.active:
            return
        with self.schedule_as_tensors():
            pred, loss = self._cuda_step(learn.xb, learn.yb) if self.on_cuda else self.step(learn.xb, learn.yb)
        learn.pred, learn.loss_grad, learn.loss = pred, loss, loss.detach().clone()
        self.batches += 1
        for event in ("after_pred", "after_loss", "after_step"):  # as fastai's own step fires them
            learn(event)
        if learn.loss_grad is not loss:
            raise ValueError(
                "A callback changed the loss in after_loss, after the captured step had already used it: its term "
                "never reaches the gradients. Train with capture=False to use it."
            )
        raise CancelBatchException  # forward, loss, backward and step are done: fastai goes on to after_batch

    def _start_fit(self, xb: tuple, yb: tuple) -> None:
        """At a fit's first training batch: refuse what a recorded step would leave out, make AdamW capturable,
        and keep the graph of an earlier fit only if this batch would record the very same one (`recording`)."""
        learn = self.learn
        self.new_fit, self.batches, self.replayed_in_fit = False, 0, 0
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
        single = isinstance(self.adamw, torch.optim.AdamW) and not any(
            g.get("fused") or g.get("foreach") for g in self.adamw.param_groups
        )
        if not single:
            raise ValueError(
                f"CapturedStep steps torch's AdamW tensor by tensor (foreach=False), the schedule read as tensors; "
                f"this learner's optimiser is {type(self.adamw or learn.opt).__name__}"
                f"{' (fused or multi-tensor)' if isinstance(self.adamw, torch.optim.AdamW) else ''}. Make the "
                "learner with vae_learner(..., capture=True), which sets it, and load no optimiser state saved "
                "without capture (learn.load(..., with_opt=False)): its settings come with it."
            )
        device = next(learn.model.parameters()).device
        self.on_cuda = device.type == "cuda"
        groups = self.adamw.param_groups
        for group in groups:  # torch records only a capturable AdamW's step, and steps one on a CPU not at all
            group["capturable"] = self.on_cuda
        # A step count from steps taken without capturable (a checkpoint's, fastai's own loop) is on the host, where
        # a capturable AdamW refuses it: it keeps the count as float32 on the weight's device.
        for weight, state in self.adamw.state.items():
            if "step" in state:
                state["step"] = state["step"].to(weight.device, torch.float32)
        if self.graph is not None and self.recording(xb, yb) == self.recorded_for:
            return  # a later fit of the same step: the recorded graph replays from its first batch
        # A first fit, or one whose step differs (NaNGuard's reset, learn.load, wd, freeze, another loss or batch
        # size, ...): warm up and record anew. torch.full: a fill on the device, no copy for the host to wait for.
        self.lrs = [torch.full((), float(g["lr"]), device=device) for g in groups]  # (): what the step reads
        self.beta1s = [torch.full((), float(g["betas"][0]), device=device) for g in groups]
        self.kl_weight = torch.full((), float(learn.loss_func.warmup), device=device)
        self.graph = None

    def recording(self, xb: tuple, yb: tuple) -> tuple:
        """What a recorded step holds fixed, for this batch: a graph replays the same kernels with the same numbers
        on the same memory, so it stays right only while all of these stay the same. The memory: the weights (and
        which of them train), BatchNorm's statistics, AdamW's state; the batch's shapes, and which of its tensors
        are one (the target is the input). The numbers: AdamW's other settings (weight decay, beta2, eps, ...),
        the loss function's settings, autocast's state. The schedule and the KL warm-up go in as tensors."""
        learn, device, batch = self.learn, xb[0].device.type, [*xb, *yb]
        model, groups = learn.model, self.adamw.param_groups
        state = [t for st in self.adamw.state.values() for t in st.values() if torch.is_tensor(t)]
        settings = ("weight_decay", "eps", "amsgrad", "maximize")
        loss = sorted((k, v) for k, v in vars(learn.loss_func).items() if _plain(v) and k != "warmup")
        return (
            id(self.adamw),
            tuple((id(p), p.data_ptr(), p.requires_grad) for p in model.parameters()),
            tuple(t.data_ptr() for t in [*model.buffers(), *state]),
            tuple((tuple(map(id, g["params"])), g["betas"][1], *(g.get(k) for k in settings)) for g in groups),
            (id(learn.loss_func), *loss),
            (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)),
            tuple((tuple(t.shape), t.dtype, _first(batch, t)) for t in batch),
        )

    def step(self, xb: tuple, yb: tuple, recording: bool = False) -> tuple:
        """Forward, loss, backward and AdamW's step on one batch; returns its (pred, loss).

        Eagerly, the gradients are zeroed first, in place once a graph holds them (its memory stays its own);
        while recording they are not: the recorded backward pass writes them rather than adding to them."""
        if not recording:
            self.adamw.zero_grad(set_to_none=self.graph is None)
        device = xb[0].device.type
        # Autocast (fastai's MixedPrecision) for the forward pass and the loss only, as in fastai's own step, and
        # without its cache of cast weights, which a recorded graph cannot hold (torch.cuda.make_graphed_callables).
        with torch.autocast(
            device, torch.get_autocast_dtype(device), enabled=torch.is_autocast_enabled(device), cache_enabled=False
        ):
            pred = self.learn.model(*xb)
            loss = self.learn.loss_func(pred, *yb)
        with torch.autocast(device, enabled=False):
            loss.backward()
            self.adamw.step()
        return pred, loss

    def _cuda_step(self, xb: tuple, yb: tuple) -> tuple:
        if self.graph is None and self.batches >= self.warmup:
            self._record(xb, yb)
        if self.graph is None or [x.shape for x in xb] != [x.shape for x in self.static_xb]:
            # Eager steps run on a side stream, as CUDA graphs need; one stream, whose freed memory they reuse.
            if self.side is None:
                self.side = torch.cuda.Stream()
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                out = self.step(xb, yb)
            torch.cuda.current_stream().wait_stream(self.side)
            return out
        batch = [*xb, *yb]
        for static, position in self.feeds:
            static.copy_(batch[position])
        self.graph.replay()
        self.replayed += 1
        self.replayed_in_fit += 1
        return self.static_pred, self.static_loss

    def _record(self, xb: tuple, yb: tuple) -> None:
        """Record one step on copies of the batch as a CUDA graph (not run: replays run it)."""
        # yb repeats xb's data (the target is the input; fastai hands it over as another tensor object): one
        # static copy of each distinct tensor, and one copy_ into it per replay (`feeds`).
        batch = [*xb, *yb]
        first = [_first(batch, t) for t in batch]
        statics = {i: batch[i].clone() for i in sorted(set(first))}
        self.feeds = [(static, i) for i, static in statics.items()]
        static = [statics[i] for i in first]
        self.static_xb, self.static_yb = static[: len(xb)], static[len(xb) :]
        self.adamw.zero_grad(set_to_none=True)
        graph, stream = torch.cuda.CUDAGraph(), torch.cuda.current_stream()
        try:
            with torch.cuda.graph(graph):
                self.static_pred, self.static_loss = self.step(self.static_xb, self.static_yb, recording=True)
        except BaseException:
            torch.cuda.set_stream(stream)  # torch.cuda.graph leaves its own stream current when ending a capture fails
            raise
        self.graph = graph
        self.recordings += 1
        self.recorded_for = self.recording(xb, yb)

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


def _plain(value) -> bool:
    """A setting a recorded step bakes in as a number or a name (a loss function's beta, kernel, scales, ...)."""
    return isinstance(value, (str, int, float, bool, type(None))) or (
        isinstance(value, tuple) and all(_plain(v) for v in value)
    )


def _first(batch: list, tensor: torch.Tensor) -> int:
    """The position of the first tensor in batch with tensor's memory and shape (the target repeats the input)."""
    return next(i for i, t in enumerate(batch) if t.data_ptr() == tensor.data_ptr() and t.shape == tensor.shape)

"""`vae_learner`: a fastai `Learner` for the autoencoder, the ELBO-VAE and the MMD-VAE, and its callbacks.

fastai calls `loss_func(pred, x, labels)` after each forward pass (the batches are `(x, x, labels)` with one
input). `VAELoss` computes the reconstruction and KL terms there. Every other behaviour of training is a small
`Callback` that hooks one event, the way fastai's own `MixedPrecision` does:

- `MMDCallback` (after_loss, order 20) adds lam * MMD(latent means, prior samples) to the loss;
- `ClassAwareCallback`, `PerceptualCallback` (after_loss, orders 21, 22) add the optional terms;
- `KLWarmup` (before_batch, order 5) ramps the KL weight from 0 to 1;
- `NaNGuard` (after_loss, order 80, after every term is in) stops training on a NaN/inf loss (on a CPU before
  the optimiser can step on it, on a GPU within HOST_SYNC_EVERY batches) and restores the last good weights;
- `GPUFriendlyProgress` replaces fastai's progress bar with one that, on a GPU, reads the loss back for its
  comment only every HOST_SYNC_EVERY batches, and `DeviceSmoothLoss` keeps the Recorder's smoothed loss on
  the device: each read back makes the CPU wait for the GPU, and the CPU must run ahead, queueing the next
  batch, for a small model to keep a GPU busy. On a CPU nothing changes (reads are free there);
- on a GPU the optimiser is `torch_adamw(fused=True)`: fastai's Adam, one kernel per step for all the weights.

Each term's value for the latest batch sits in `learn.loss_func.parts` ({"recon": ..., "kl": ..., "mmd": ...},
unweighted, detached); the `LossPart` metrics average them over the validation set, so fastai's table shows
epoch / train_loss / valid_loss / recon / kl / mmd / time. Both VAEs show all three columns whichever terms
their objective trains with, so an ELBO run and an MMD run compare column by column.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch

with warnings.catch_warnings():
    # fastai 2.8 still uses torch.jit.script, which torch >= 2.9 warns about on import (see dataloaders.py).
    warnings.simplefilter("ignore", FutureWarning)
    import fastai.callback.progress  # noqa: F401  (registers ProgressCallback: progress bars and the results table)
    import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle and Learner.lr_find)
    from fastai.callback.core import Callback, CancelFitException
    from fastai.callback.progress import ProgressCallback
    from fastai.learner import AvgSmoothLoss, Learner, Metric
    from fastai.torch_core import find_bs

from .capture import CompileModel
from .losses import (
    DEFAULT_LAM,
    DEFAULT_SCALES,
    PerceptualLoss,
    class_aware_loss,
    kl_divergence,
    mmd,
    reconstruction_loss,
)
from .models import ModelConfig, build_model, reparameterize, save_checkpoint

OBJECTIVES = ("elbo", "mmd", "ae")
# On a GPU, how many batches may pass between reads of a value back to the host (each read waits for the GPU).
HOST_SYNC_EVERY = 20


class VAELoss:
    """fastai loss: (pred, x (B, C, H, W), labels (B,)) -> scalar; pred is recon, or (recon, mu, logvar) for a VAE.

    "ae": reconstruction. "elbo" and "mmd": reconstruction + kl_weight * warmup * KL, where kl_weight is beta
    for the ELBO and 0 for the MMD-VAE (whose MMD term `MMDCallback` adds). `warmup` is set by `KLWarmup`.
    """

    def __init__(self, objective: str = "elbo", kl_weight: float = 1.0):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}.")
        self.objective = objective
        self.kl_weight = kl_weight
        self.warmup = 1.0  # KLWarmup ramps this from 0 to 1
        self.parts: dict[str, torch.Tensor] = {}  # this batch's unweighted terms, read by the LossPart metrics

    def __call__(self, pred, x: torch.Tensor, *labels) -> torch.Tensor:
        self.parts.clear()
        if self.objective == "ae":
            recon = pred
            loss = reconstruction_loss(recon, x)
            self.parts["recon"] = loss.detach()
            return loss
        recon, mu, logvar = pred
        rec = reconstruction_loss(recon, x)
        kl = kl_divergence(mu, logvar)
        self.parts["recon"], self.parts["kl"] = rec.detach(), kl.detach()
        weight = self.kl_weight * self.warmup
        # Skip rather than multiply by 0: an MMD-VAE's KL may be inf, and 0 * inf is NaN.
        return rec + weight * kl if weight else rec


class LossPart(Metric):
    """Average over the validation set of one loss term (learn.loss_func.parts[name]), weighted by batch size."""

    def __init__(self, name: str):
        self.part = name

    def reset(self):
        self.total, self.count = 0.0, 0

    def accumulate(self, learn):
        value = learn.loss_func.parts.get(self.part)
        if value is None:
            return
        bs = find_bs(learn.yb)
        self.total = self.total + value.float() * bs  # a tensor: no GPU sync per batch
        self.count += bs

    @property
    def value(self):
        return self.total / self.count if self.count else None

    @property
    def name(self) -> str:
        return self.part


class MMDCallback(Callback):
    """Adds lam * MMD(codes, prior samples) to the loss after fastai computes it: codes (B, L), prior (B, L) ~ N(0, I).

    on="mean" (default) compares the latent means mu with the prior: the codes themselves must fill N(0, I),
    which only informative codes can do (Zhao et al.'s own MMD-VAE demo compares deterministic codes, too).
    The decoder still sees z ~ q(z|x) in training, as for the ELBO; with no KL term, only the reconstruction
    acts on sigma, and it narrows it. on="sample" compares z ~ q(z|x), InfoVAE's aggregate posterior to the
    letter; then a posterior as wide as the prior (sigma ~ 1, mu ~ 0) also matches, and in short runs the model
    settles there: codes that say little about the galaxy and blurry reconstructions. With lam=0 the MMD is
    measured (for its column) but not trained on.
    """

    order = 20  # after MixedPrecision (10) has left autocast, so the kernels run in float32

    def __init__(
        self,
        lam: float = DEFAULT_LAM,
        kernel: str = "imq",
        scales: tuple[float, ...] = DEFAULT_SCALES,
        on: str = "mean",
    ):
        if lam < 0:
            raise ValueError(f"lam (the MMD weight) must be >= 0, got {lam}; a negative weight pushes z off the prior.")
        if on not in ("mean", "sample"):
            raise ValueError(f"on must be 'mean' (the latent means) or 'sample' (z ~ q(z|x)), got {on!r}.")
        self.lam = lam
        self.kernel = kernel
        self.scales = scales
        self.on = on

    def after_loss(self):
        if not isinstance(self.learn.pred, (tuple, list)) or not len(self.learn.yb):
            return
        _, mu, logvar = self.learn.pred  # (B, L) each
        # In eval mode the decoder sees mu, so "sample" measures mu there too: validation stays deterministic.
        sample = self.on == "sample" and self.learn.model.training
        z = reparameterize(mu, logvar) if sample else mu  # (B, L)
        prior = torch.randn_like(z, dtype=torch.float32)  # (B, L)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.lam > 0):
            distance = mmd(z, prior, kernel=self.kernel, scales=self.scales)
        self.learn.loss_func.parts["mmd"] = distance.detach()
        if self.lam:
            self.learn.loss_grad = self.learn.loss_grad + self.lam * distance
            self.learn.loss = self.learn.loss_grad.clone()


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
        self.learn.loss_func.parts["class"] = ce.detach()
        self.learn.loss_grad = self.learn.loss_grad + self.weight * ce
        self.learn.loss = self.learn.loss_grad.clone()


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
        self.learn.loss_func.parts["perceptual"] = term.detach()
        self.learn.loss_grad = self.learn.loss_grad + self.weight * term
        self.learn.loss = self.learn.loss_grad.clone()


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


class DeviceSmoothLoss(AvgSmoothLoss):
    """fastai's smoothed training loss (the progress bar's number), kept on the loss's device.

    fastai's own copies every batch's loss to the CPU, and on a GPU a copy back waits for the GPU to finish, so
    the CPU cannot queue the next batch meanwhile. Same numbers: the same exponential average, on the device.
    """

    def accumulate(self, learn):
        self.count += 1
        loss = learn.loss.detach().mean()  # a scalar on the device
        self.val = torch.lerp(loss, self.val.to(loss.device, loss.dtype), self.beta)


class History(Callback):
    """Keeps each epoch's row of fastai's table in `learn.history` as {column: value}.

    fastai's own `recorder.values` rows are shared lists that a later `get_preds` (`show_results`, `validate`)
    rewrites in place, so the last trained epoch's numbers would be lost before `save_learner` reads them.
    """

    order = 60  # after the Recorder (50) has written final_record

    trained = False

    def after_train(self):
        self.trained = True  # fastai's get_preds runs epoch events too, with no training phase

    def after_epoch(self):
        if not self.trained:
            return
        self.trained = False
        names = [n for n in self.learn.recorder.metric_names[1:] if n != "time"]
        values = [math.nan if v is None else float(v) for v in self.learn.final_record]
        # An epoch whose validation was skipped (lr_find, a cancelled fit) has only its leading columns.
        self.learn.history.append(dict(zip(names, values, strict=False)))

    def after_fit(self):
        # DeviceSmoothLoss leaves the loss curve on the device: bring it to the host in one read, for plot_loss.
        losses = self.learn.recorder.losses
        if losses and isinstance(losses[0], torch.Tensor) and losses[0].device.type != "cpu":
            self.learn.recorder.losses = list(torch.stack(losses).cpu().unbind())


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
        self.good_state = {k: v.detach().to("cpu", copy=True) for k, v in self.learn.model.state_dict().items()}
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


class GPUFriendlyProgress(ProgressCallback):
    """fastai's progress bar, reading the smoothed loss back for its comment every `every` batches on a GPU.

    fastai's own bar reads it after every batch; on a GPU each read waits for the GPU to finish, so the CPU
    cannot queue the next batch meanwhile. On a CPU the read is free and the comment updates every batch.
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
        if hasattr(self, "smooth_loss") and (self.iter % self.interval == 0 or last):
            self.pbar.comment = f"{self.smooth_loss.item():.4f}"


class CPUBFloat16(Callback):
    """bf16 autocast for the forward pass and the loss on a CPU, the way fastai's `MixedPrecision` does on a GPU
    (fastai's hard-codes CUDA). bf16 has float32's range, so no loss scaling; the losses compute in float32.

    Worth it only on CPUs with native bf16 (AVX512-BF16 or AMX): on a 2-core AMD EPYC with AVX512-BF16 a
    full-width model (widths 32-256, batch 64) stepped at 204-212 images/s against 131-145 in float32.
    Off by default: the digits of a bf16 run depend on the CPU's kernels, and the quick profile must repeat.
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
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _cuda_speedups(dls) -> list[Callback]:
    """bf16 autocast and channels_last on a CUDA device that supports bf16; nothing on CPU (it stays fp32)."""
    device = getattr(dls, "device", None)
    if device is None or torch.device(device).type != "cuda" or not torch.cuda.is_bf16_supported():
        return []
    # Imported here: fastai's channelslast module imports torch.cuda.amp, which warns on CPU-only installs.
    from fastai.callback.channelslast import ChannelsLast
    from fastai.callback.fp16 import MixedPrecision

    # bf16 has float32's range, so no loss scaling is needed (fastai turns the GradScaler off for bf16).
    return [MixedPrecision(amp_mode="bf16"), ChannelsLast()]


def torch_adamw(params, lr: float = 1e-3, fused: bool = False):
    """fastai's default optimiser (Adam: betas 0.9/0.99, eps 1e-5, decoupled weight decay 0.01, none on biases
    and norm layers), run by PyTorch's AdamW: an `opt_func` for any fastai Learner.

    fastai's own Adam steps each weight tensor in Python, about ten small kernels per tensor and batch: on a
    GPU, a small model's step then costs more host time than its backward pass. fused=True (CUDA only) updates
    every tensor in one kernel. The weights follow the same arithmetic as fastai's Adam (a test checks it);
    fit_one_cycle's momentum schedule moves AdamW's first beta, as it moves Adam's `mom`.
    """
    from fastai.optimizer import OptimWrapper

    params = [p for p in params if p.requires_grad]
    # fastai's wd_bn_bias=False: no decay on biases and norm layers, the 1-d tensors (weights have >= 2 dims).
    groups = [
        {"params": [p for p in params if p.ndim > 1]},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    adamw = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01, fused=fused or None)
    return OptimWrapper(opt=adamw)


def _default_opt_func(device):
    """fused AdamW on a CUDA device; None (fastai's Adam, as before) elsewhere, where the step costs little."""
    if device is not None and torch.device(device).type == "cuda":
        return partial(torch_adamw, fused=True)
    return None


def _channel_means(dls) -> torch.Tensor:
    """Mean of each colour channel of the training galaxies (C,); for another kind of loader than ours (fastai's
    DataBlock in the benchmark), of the first validation batch, which draws nothing from the training order."""
    if hasattr(dls.train, "channel_means"):
        return dls.train.channel_means()
    x = dls.valid.one_batch()[0]  # (B, C, H, W)
    return x.float().mean((0, 2, 3)).cpu()


def _n_classes(dls) -> int:
    names = getattr(dls.train, "class_names", None)
    if names:
        return len(names)
    return int(dls.train.labels.max().item()) + 1


def vae_learner(
    dls,
    objective: str = "elbo",
    latent_size: int | None = None,
    beta: float | None = None,
    lam: float = DEFAULT_LAM,
    kernel: str = "imq",
    kl_warmup: float = 0.0,
    lr: float = 1e-3,
    config: ModelConfig | None = None,
    class_weight: float = 0.0,
    perceptual_weight: float = 0.0,
    perceptual_pretrained: bool = True,
    nan_guard: bool = True,
    compile: bool | None = None,
    cbs=None,
    **kwargs,
) -> Learner:
    """A fastai Learner (Adam, lr) training a fresh model on dls with objective "elbo", "mmd" or "ae".

    elbo: recon + beta * KL (beta defaults to 1). mmd: recon + lam * MMD(mu, prior) (+ beta * KL if you give
    a beta > 0, InfoVAE's general form). ae: recon only. kl_warmup: fraction of the first fit over which the
    KL weight ramps from 0 (0: no warm-up). config: model sizes (its kind is set from the objective);
    latent_size, when given, overrides config.latent_size. On CUDA, bf16 autocast and channels_last are added
    and the optimiser is `torch_adamw(fused=True)` (fastai's Adam arithmetic in one kernel) unless you pass
    an opt_func. compile: `capture.CompileModel` (torch.compile, CUDA graphs on CUDA); None means on CUDA only.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}.")
    if objective == "ae" and (class_weight or kl_warmup or beta):
        raise ValueError("class_weight, kl_warmup and beta need a VAE; use objective='elbo' or 'mmd'.")
    config = config or ModelConfig()
    kind = "ae" if objective == "ae" else "vae"
    n_classes = _n_classes(dls) if class_weight else 0
    config = replace(
        config,
        kind=kind,
        n_classes=n_classes,
        latent_size=config.latent_size if latent_size is None else latent_size,
    )
    if beta is None:
        beta = 1.0 if objective == "elbo" else 0.0
    if beta < 0:
        raise ValueError(f"beta (the KL weight) must be >= 0, got {beta}.")
    model = build_model(config)
    model.decoder.start_from(_channel_means(dls))  # see Decoder.start_from: no detour through grey
    model = model.to(dls.device)

    callbacks = [History()]
    metrics = [LossPart("recon")]
    if kind == "vae":
        # The ELBO model gets lam=0: its MMD column is measured, not trained on.
        callbacks.append(MMDCallback(lam=lam if objective == "mmd" else 0.0, kernel=kernel))
        metrics += [LossPart("kl"), LossPart("mmd")]
    if kl_warmup:
        callbacks.append(KLWarmup(pct=kl_warmup))
    if class_weight:
        callbacks.append(ClassAwareCallback(weight=class_weight))
        metrics.append(LossPart("class"))
    if perceptual_weight:
        callbacks.append(PerceptualCallback(weight=perceptual_weight, pretrained=perceptual_pretrained))
        metrics.append(LossPart("perceptual"))
    if nan_guard:
        callbacks.append(NaNGuard())
    callbacks += _cuda_speedups(dls)
    on_cuda = torch.device(getattr(dls, "device", None) or "cpu").type == "cuda"
    # Not under data-parallel training by default: compiled CUDA graphs inside DDP have not been measured here.
    from .distributed import world_size

    if compile or (compile is None and on_cuda and world_size() == 1):
        callbacks.append(CompileModel())
    callbacks += list(cbs or [])

    # The caller's optimiser, else a faster equal of fastai's Adam where the device has one, else fastai's default.
    opt_func = kwargs.pop("opt_func", None) or _default_opt_func(getattr(dls, "device", None))
    if opt_func is not None:
        kwargs["opt_func"] = opt_func
    loss_func = VAELoss(objective, kl_weight=beta)
    learn = Learner(dls, model, loss_func=loss_func, lr=lr, metrics=metrics, cbs=callbacks, **kwargs)
    # Per-batch reads back to the host: none but the bar's every HOST_SYNC_EVERY batches on a GPU (see above).
    learn.recorder.smooth_loss = DeviceSmoothLoss(beta=learn.recorder.smooth_loss.beta)
    if any(isinstance(cb, ProgressCallback) for cb in learn.cbs):  # fastai's default bar, unless turned off
        learn.remove_cb(ProgressCallback).add_cb(GPUFriendlyProgress())
    learn.objective = objective
    learn.history = []  # filled by the History callback, one dict per trained epoch
    # What save_learner writes next to the weights, so a checkpoint says how it was trained.
    learn.hparams = {
        "objective": objective,
        "beta": beta,
        "lam": lam if objective == "mmd" else 0.0,
        "kernel": kernel,
        "kl_warmup": kl_warmup,
        "lr": lr,
        "class_weight": class_weight,
        "perceptual_weight": perceptual_weight,
    }
    return learn


def vae_learner_defaults() -> dict:
    """vae_learner's default keyword arguments, {name: value} (the CLI's --help shows them)."""
    import inspect

    params = inspect.signature(vae_learner).parameters.items()
    defaults = {k: p.default for k, p in params if p.default is not inspect.Parameter.empty}
    defaults["latent_size"] = ModelConfig().latent_size
    return defaults


def last_metrics(learn: Learner) -> dict[str, float]:
    """The latest trained epoch's row of fastai's table as {column: value} (train_loss, valid_loss, recon, ...)."""
    history = getattr(learn, "history", None)
    return dict(history[-1]) if history else {}


def save_learner(learn: Learner, path: str | os.PathLike, extra: dict | None = None):
    """Checkpoint learn.model to path.pt + path.json, recording objective, hyperparameters and last metrics."""
    info = {**getattr(learn, "hparams", {"objective": getattr(learn, "objective", None)})}
    info["metrics"] = {k: (None if math.isnan(v) else v) for k, v in last_metrics(learn).items()}
    info.update(extra or {})
    return save_checkpoint(learn.model, path, extra=info)

"""What each model minimises, written once: `Objective`, the loss fastai calls after every forward pass.

    loss = recon + beta * warmup * KL(q(z|x) || N(0, I)) + lam * MMD^2(codes, prior samples)

- "ae" (plain autoencoder): recon only.
- "elbo": beta = 1, lam = 0. Its MMD is still measured (for its column), not trained on.
- "mmd" (the blog's MMD-VAE): beta = 0, lam = LAM (config.py). Its KL is measured, not trained on.

Any other (beta, lam) is InfoVAE's general form; `losses.infovae_weights` turns InfoVAE's (alpha, lambda) into it.

The terms themselves are the pure functions of `losses.py`. Each term's unweighted value for the latest batch
is kept in `objective.parts`, and the `LossPart` metrics average it over the validation set, so fastai's table
shows epoch / train_loss / valid_loss / recon / kl / mmd / time. Both VAEs show all three columns whichever
terms they train with, so an ELBO run and an MMD run compare column by column. Optional extra terms (class-aware,
perceptual) are callbacks that add themselves with `Objective.add` (see `callbacks.py`).
"""

from __future__ import annotations

import torch

from .._fastai import Metric, find_bs
from ..config import BETA, KERNEL, LAM
from ..losses import DEFAULT_SCALES, kl_divergence, mmd, reconstruction_loss
from ..models import reparameterize

OBJECTIVES = ("elbo", "mmd", "ae")


class Objective:
    """fastai loss: (pred, x (B, C, H, W), labels (B,)) -> scalar; pred is recon, or (recon, mu, logvar) for a VAE.

    beta: the KL weight (default BETA for "elbo", 0 for "mmd"); `warmup` (set by `KLWarmup`) multiplies it.
    lam: the MMD weight (default LAM for "mmd", 0 for "elbo"). kernel, scales: the MMD's kernel and bandwidths.
    mmd_on="mean" (default) compares the latent means mu with the prior: the codes themselves must fill
    N(0, I), which only informative codes can do (Zhao et al.'s own MMD-VAE demo compares deterministic codes,
    too). The decoder still sees z ~ q(z|x) in training, as for the ELBO; with no KL term, only the
    reconstruction acts on sigma, and it narrows it. mmd_on="sample" compares z ~ q(z|x), InfoVAE's aggregate
    posterior to the letter; then a posterior as wide as the prior (sigma ~ 1, mu ~ 0) also matches, and in
    short runs the model settles there: codes that say little about the galaxy and blurry reconstructions.
    """

    def __init__(
        self,
        objective: str = "elbo",
        beta: float | None = None,
        lam: float | None = None,
        kernel: str = KERNEL,
        scales: tuple[float, ...] = DEFAULT_SCALES,
        mmd_on: str = "mean",
    ):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}.")
        beta = (BETA if objective == "elbo" else 0.0) if beta is None else beta
        lam = (LAM if objective == "mmd" else 0.0) if lam is None else lam
        if objective == "ae" and (beta or lam):
            raise ValueError("beta and lam weigh the KL and MMD of a VAE; use objective='elbo' or 'mmd'.")
        if beta < 0:
            raise ValueError(f"beta (the KL weight) must be >= 0, got {beta}.")
        if lam < 0:
            raise ValueError(f"lam (the MMD weight) must be >= 0, got {lam}; a negative weight pushes z off the prior.")
        if mmd_on not in ("mean", "sample"):
            raise ValueError(f"mmd_on must be 'mean' (the latent means) or 'sample' (z ~ q(z|x)), got {mmd_on!r}.")
        self.objective, self.beta, self.lam = objective, beta, lam
        self.kernel, self.scales, self.mmd_on = kernel, scales, mmd_on
        self.warmup = 1.0  # KLWarmup ramps this from 0 to 1
        self.parts: dict[str, torch.Tensor] = {}  # this batch's unweighted terms, read by the LossPart metrics

    def __call__(self, pred, x: torch.Tensor, *labels) -> torch.Tensor:
        self.parts.clear()
        if self.objective == "ae":
            loss = reconstruction_loss(pred, x)
            self.parts["recon"] = loss.detach()
            return loss
        recon, mu, logvar = pred  # (B, C, H, W), (B, L), (B, L)
        rec, kl = reconstruction_loss(recon, x), kl_divergence(mu, logvar)
        # Gradients flow only in training (fastai validates under no_grad): validation compares the means, so it
        # stays deterministic. Called directly, a loss under torch.no_grad() counts as validation.
        sample = self.mmd_on == "sample" and torch.is_grad_enabled()
        codes = reparameterize(mu, logvar) if sample else mu  # (B, L)
        prior = torch.randn_like(codes, dtype=torch.float32)  # (B, L) ~ N(0, I)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.lam > 0):  # measured only, when lam = 0
            distance = mmd(codes, prior, kernel=self.kernel, scales=self.scales)
        self.parts.update(recon=rec.detach(), kl=kl.detach(), mmd=distance.detach())
        loss = rec
        kl_weight = self.beta * self.warmup
        # Skip rather than multiply by 0: an MMD-VAE's KL may be inf, and 0 * inf is NaN. A tensor warm-up
        # (`CapturedStep`'s, on the device) is not looked at: that would wait for the GPU, and a recorded step
        # cannot branch on it.
        if isinstance(kl_weight, torch.Tensor):
            if self.beta:  # a weight of 0 (the warm-up's start) keeps an infinite KL out of the loss's value
                loss = loss + torch.where(kl_weight > 0, kl_weight * kl, torch.zeros_like(kl))
        elif kl_weight:
            loss = loss + kl_weight * kl
        if self.lam:
            loss = loss + self.lam * distance
        return loss

    def add(self, learn, name: str, term: torch.Tensor, weight: float) -> None:
        """Add weight * term to learn's loss after fastai computed it (for a callback's extra term), and record
        the term under `name` for its column."""
        self.parts[name] = term.detach()
        learn.loss_grad = learn.loss_grad + weight * term
        learn.loss = learn.loss_grad.clone()


class LossPart(Metric):
    """Average over the validation set of one loss term (the objective's parts[name]), weighted by batch size."""

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

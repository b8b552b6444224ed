"""`vae_learner`: a fastai `Learner` for the autoencoder, the ELBO-VAE and the MMD-VAE; `profile_learner`, the
one place training is set up the profile's way; saving and reusing a trained model.

fastai calls `loss_func(pred, x, labels)` after each forward pass (the batches are `(x, x, labels)` with one
input): that is the `Objective` (objective.py). Every other behaviour of training is a small callback
(callbacks.py), and `TableRecorder` (recorder.py) keeps each epoch's row. The GPU speed-ups are added by one
call at the end of `vae_learner`, `speed_up` (speed.py), which a first reading can skip.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import torch

from .._fastai import Learner, Recorder
from ..config import KERNEL, LR, apply_profile
from ..models import ModelConfig, build_model, checkpoint_info, load_checkpoint, save_checkpoint
from .callbacks import ClassAwareCallback, KLWarmup, NaNGuard, PerceptualCallback
from .objective import LossPart, Objective
from .recorder import TableRecorder
from .speed import speed_up


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
    lam: float | None = None,
    kernel: str = KERNEL,
    kl_warmup: float = 0.0,
    lr: float = LR,
    config: ModelConfig | None = None,
    class_weight: float = 0.0,
    perceptual_weight: float = 0.0,
    perceptual_pretrained: bool = True,
    nan_guard: bool = True,
    compile: bool | None = None,
    capture: bool = False,
    cbs=None,
    **kwargs,
) -> Learner:
    """A fastai Learner (Adam, lr) training a fresh model on dls with objective "elbo", "mmd" or "ae".

    elbo: recon + beta * KL (beta defaults to config.BETA). mmd: recon + lam * MMD(mu, prior) (lam defaults to
    config.LAM; + beta * KL if you give a beta > 0, InfoVAE's general form). ae: recon only. kl_warmup: fraction
    of the first fit over which the KL weight ramps from 0 (0: no warm-up). config: model sizes (its kind is set
    from the objective); latent_size, when given, overrides config.latent_size. compile, capture: see `speed_up`,
    which adds the GPU speed-ups (and, on CUDA, fused AdamW unless you pass an opt_func).
    """
    loss_func = Objective(objective, beta=None if objective == "ae" else beta, lam=lam, kernel=kernel)
    if objective == "ae" and (class_weight or kl_warmup or beta):
        raise ValueError("class_weight, kl_warmup and beta need a VAE; use objective='elbo' or 'mmd'.")
    model = _fresh_model(dls, objective, config, latent_size, class_weight)
    callbacks, metrics = _callbacks(dls, objective, kl_warmup, class_weight, perceptual_weight, perceptual_pretrained)
    if nan_guard:
        callbacks.append(NaNGuard())
    callbacks += list(cbs or [])
    if (opt_func := kwargs.pop("opt_func", None)) is not None:  # None: as if left out (see speed_up)
        kwargs["opt_func"] = opt_func
    learn = Learner(dls, model, loss_func=loss_func, lr=lr, metrics=metrics, cbs=callbacks, **kwargs)
    # fastai's Recorder reads the loss back to the host every batch, which stalls a GPU; ours keeps the same table.
    learn.remove_cb(Recorder).add_cb(TableRecorder())
    learn.objective = objective
    # What save_learner writes next to the weights, so a checkpoint says how it was trained.
    learn.hparams = {
        "objective": objective,
        "beta": loss_func.beta,
        "lam": loss_func.lam,
        "kernel": kernel,
        "kl_warmup": kl_warmup,
        "lr": lr,
        "class_weight": class_weight,
        "perceptual_weight": perceptual_weight,
    }
    return speed_up(learn, compile=compile, opt_func_given=opt_func is not None, capture=capture)


def _fresh_model(dls, objective: str, config: ModelConfig | None, latent_size: int | None, class_weight: float):
    """A new model of config's sizes (kind from the objective), its decoder starting at the galaxies' mean colour."""
    config = config or ModelConfig()
    config = replace(
        config,
        kind="ae" if objective == "ae" else "vae",
        n_classes=_n_classes(dls) if class_weight else 0,
        latent_size=config.latent_size if latent_size is None else latent_size,
    )
    model = build_model(config)
    model.decoder.start_from(_channel_means(dls))  # see Decoder.start_from: no detour through grey
    return model.to(dls.device)


def _callbacks(dls, objective, kl_warmup, class_weight, perceptual_weight, perceptual_pretrained):
    """The training callbacks and the table's loss columns (LossPart metrics) for these settings."""
    callbacks, metrics = [], [LossPart("recon")]
    if objective != "ae":
        metrics += [LossPart("kl"), LossPart("mmd")]
    if kl_warmup:
        callbacks.append(KLWarmup(pct=kl_warmup))
    if class_weight:
        callbacks.append(ClassAwareCallback(weight=class_weight))
        metrics.append(LossPart("class"))
    if perceptual_weight:
        callbacks.append(PerceptualCallback(weight=perceptual_weight, pretrained=perceptual_pretrained))
        metrics.append(LossPart("perceptual"))
    return callbacks, metrics


def last_metrics(learn: Learner) -> dict[str, float]:
    """The latest trained epoch's row of fastai's table as {column: value} (train_loss, valid_loss, recon, ...)."""
    history = getattr(getattr(learn, "recorder", None), "history", None)  # TableRecorder's (vae_learner)
    return dict(history[-1]) if history else {}


def save_learner(learn: Learner, path: str | os.PathLike, extra: dict | None = None):
    """Checkpoint learn.model to path.pt + path.json, recording objective, hyperparameters and last metrics."""
    info = {**getattr(learn, "hparams", {"objective": getattr(learn, "objective", None)})}
    info["metrics"] = {k: (None if math.isnan(v) else v) for k, v in last_metrics(learn).items()}
    info.update(extra or {})
    return save_checkpoint(learn.model, path, extra=info)


def load_or_train(path: str | os.PathLike, dls, objective: str, profile, expect: dict | None = None, fit=None):
    """The model saved at path (path.pt + .json) if it was trained with `objective` and every item of `expect`
    ({"data": ..., "profile": ...}, as its record says), else a new one trained and saved there. Returns the
    model in eval mode and prints which it did (the file's name, not its folder).

    fit(objective) -> Learner trains the new one; by default `fit_profile`, which trains the same model that a
    notebook's `fit_profile(dls, objective, profile)` trains.
    """
    path = Path(path)
    model, why = load_saved(path, objective, expect, device=getattr(dls, "device", None) or "cpu")
    if model is not None:
        print(f"using the {objective} model saved as {path.name}")
        return model
    print(f"training a new {objective} model ({why})")
    learn = fit(objective) if fit is not None else fit_profile(dls, objective, profile)
    save_learner(learn, path, extra={"objective": objective, **(expect or {})})
    return learn.model.eval()


def load_saved(path: str | os.PathLike, objective: str, expect: dict | None = None, device="cpu"):
    """(model in eval mode, "") if the model saved at path (path.pt + .json) was trained with `objective` and
    every item of `expect`, as its record says; else (None, why not), e.g. for a notebook that shows the model
    an earlier notebook trained, when there is one."""
    path = Path(path)
    wanted = {"objective": objective, **(expect or {})}
    if not path.with_name(path.name + ".json").exists():
        return None, "none is saved yet"
    saved = checkpoint_info(path).get("extra") or {}
    if any(saved.get(key) != value for key, value in wanted.items()):
        return None, "the saved one was trained with other settings"
    return load_checkpoint(path, map_location=device).eval(), ""


def profile_learner(dls, objective: str, profile, start=None, **options) -> Learner:
    """A Learner for a new model trained with `objective` the profile's way: the one place training is set up
    (the notebooks, `load_or_train`, `galaxy-ae train`/`demo` and `galaxy-ae pretrain` all come here).

    It seeds everything from the profile and restarts the loaders' batch order, whatever ran before, so the
    same galaxies and profile give the same model in every notebook: 03's ELBO-VAE is the one 04 trains when 03
    has not run. The model has the profile's widths (start: a model to go on training, whose sizes and weights
    are used instead), the learner the profile's lr. options: more `vae_learner` settings (beta, lam, cbs, ...).
    """
    apply_profile(profile)
    for dl in dls.loaders:  # our GalaxyLoaders draw their order and flips from a generator of their own
        if isinstance(getattr(dl, "generator", None), torch.Generator):  # galaxy_dls(seed) gave it seed + offset
            dl.generator.manual_seed(profile.seed + dl.seed - dls.seed)
    config = start.config if start is not None else ModelConfig(widths=profile.widths)
    learn = vae_learner(dls, objective=objective, config=config, lr=profile.lr, **options)
    if start is not None:
        learn.model.load_state_dict(start.state_dict())
    return learn


def fit_profile(dls, objective: str, profile, progress: bool = True, **options) -> Learner:
    """`profile_learner(dls, objective, profile, **options)` trained for the profile's epochs -> the Learner.
    progress=False trains without fastai's bar and table."""
    learn = profile_learner(dls, objective, profile, **options)
    if progress:
        learn.fit_one_cycle(profile.epochs, profile.lr)
    else:
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(profile.epochs, profile.lr)
    return learn

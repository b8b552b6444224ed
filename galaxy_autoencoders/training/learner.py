"""`vae_learner`: a fastai `Learner` for the autoencoder, the ELBO-VAE and the MMD-VAE; saving and reusing one.

fastai calls `loss_func(pred, x, labels)` after each forward pass (the batches are `(x, x, labels)` with one
input): that is the `Objective` (objective.py). Every other behaviour of training is a small callback
(callbacks.py; on a GPU also speed.py and compile.py), and `TableRecorder` (recorder.py) keeps each epoch's row.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import torch

from .._fastai import Learner, ProgressCallback, Recorder
from ..losses import DEFAULT_LAM
from ..models import ModelConfig, build_model, checkpoint_info, load_checkpoint, save_checkpoint
from .callbacks import ClassAwareCallback, KLWarmup, NaNGuard, PerceptualCallback
from .compile import CompileModel
from .objective import LossPart, Objective
from .recorder import TableRecorder
from .speed import GPUFriendlyProgress, cuda_speedups, default_opt_func


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
    an opt_func. compile: `CompileModel` (torch.compile, CUDA graphs on CUDA); None means on CUDA only.
    """
    lam = lam if objective == "mmd" else 0.0  # the ELBO's MMD column is measured, not trained on
    loss_func = Objective(objective, beta=None if objective == "ae" else beta, lam=lam, kernel=kernel)
    if objective == "ae" and (class_weight or kl_warmup or beta):
        raise ValueError("class_weight, kl_warmup and beta need a VAE; use objective='elbo' or 'mmd'.")
    model = _fresh_model(dls, objective, config, latent_size, class_weight)
    callbacks, metrics = _callbacks(dls, objective, kl_warmup, class_weight, perceptual_weight, perceptual_pretrained)
    if nan_guard:
        callbacks.append(NaNGuard())
    callbacks += cuda_speedups(dls) + _compile(dls, compile) + list(cbs or [])
    # The caller's optimiser, else a faster equal of fastai's Adam where the device has one, else fastai's default.
    opt_func = kwargs.pop("opt_func", None) or default_opt_func(getattr(dls, "device", None))
    if opt_func is not None:
        kwargs["opt_func"] = opt_func
    learn = Learner(dls, model, loss_func=loss_func, lr=lr, metrics=metrics, cbs=callbacks, **kwargs)
    # fastai's Recorder and bar read a value back to the host every batch; ours not on a GPU (speed.py).
    learn.remove_cb(Recorder).add_cb(TableRecorder())
    if any(isinstance(cb, ProgressCallback) for cb in learn.cbs):  # fastai's default bar, unless turned off
        learn.remove_cb(ProgressCallback).add_cb(GPUFriendlyProgress())
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
    return learn


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


def _compile(dls, compile: bool | None) -> list:
    """[CompileModel()] when asked, or by default on CUDA in one process; else []."""
    from .distributed import world_size

    on_cuda = torch.device(getattr(dls, "device", None) or "cpu").type == "cuda"
    # Not under data-parallel training by default: compiled CUDA graphs inside DDP have not been measured here.
    return [CompileModel()] if compile or (compile is None and on_cuda and world_size() == 1) else []


def vae_learner_defaults() -> dict:
    """vae_learner's default keyword arguments, {name: value} (the CLI's --help shows them)."""
    import inspect

    params = inspect.signature(vae_learner).parameters.items()
    defaults = {k: p.default for k, p in params if p.default is not inspect.Parameter.empty}
    defaults["latent_size"] = ModelConfig().latent_size
    return defaults


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
    wanted = {"objective": objective, **(expect or {})}
    saved = checkpoint_info(path).get("extra") or {} if path.with_name(path.name + ".json").exists() else None
    if saved is not None and all(saved.get(key) == value for key, value in wanted.items()):
        print(f"using the {objective} model saved as {path.name}")
        return load_checkpoint(path, map_location=getattr(dls, "device", None) or "cpu").eval()
    why = "none is saved yet" if saved is None else "the saved one was trained with other settings"
    print(f"training a new {objective} model ({why})")
    learn = (fit or _profile_fit(dls, profile))(objective)
    save_learner(learn, path, extra=wanted)
    return learn.model.eval()


def fit_profile(dls, objective: str, profile, progress: bool = True, **options) -> Learner:
    """A new model trained with `objective` the profile's way (its seed, widths, lr and epochs) -> the Learner.

    It starts from the profile's seed and from the loaders' first batch order, whatever ran before, so the same
    galaxies and profile give the same model in every notebook: 03's ELBO-VAE is the one 04 trains when 03 has
    not run. options: more `vae_learner` settings (beta, lam, ...). progress=False trains without bar or table."""
    from ..config import apply_profile

    apply_profile(profile)
    for dl in dls.loaders:  # our GalaxyLoaders draw their order and flips from a generator of their own
        if isinstance(getattr(dl, "generator", None), torch.Generator):  # seeded as galaxy_dls(seed=profile.seed)
            dl.generator.manual_seed(profile.seed + dl.seed - dls.train.seed)
    learn = vae_learner(dls, objective=objective, config=ModelConfig(widths=profile.widths), lr=profile.lr, **options)
    if progress:
        learn.fit_one_cycle(profile.epochs, profile.lr)
    else:
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(profile.epochs, profile.lr)
    return learn


def _profile_fit(dls, profile):
    """fit(objective) -> Learner: `fit_profile`, with fastai's bar and table."""
    return lambda objective: fit_profile(dls, objective, profile)

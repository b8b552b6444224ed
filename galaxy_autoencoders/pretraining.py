"""Training the models that ship with the package (`galaxy-ae pretrain`; pretrained.py loads them): the
`pretrained` profile's data and schedule, a checkpoint every epoch to resume from, and the provenance written
next to the weights: command, data (seed, count, sha256), recipe, wall time, machine, versions, history and the
final metrics against the mean-image baseline.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

from .config import LATENT_SIZE, VALID_PCT, Profile, cpu_info, get_profile
from .data import load_galaxies
from .dataloaders import galaxy_dls
from .metrics import baseline_report
from .models import save_checkpoint
from .pretrained import NAMES, WEIGHTS
from .training import CPUBFloat16, EpochCheckpoint, cpu_has_bf16, profile_learner


def data_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of the images' and labels' bytes: the same galaxies give the same digest on any machine."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def machine() -> str:
    """The GPU's name, else the CPU model and core count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    model = cpu_info().get("model name") or platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores"


def train(
    name: str,
    work: str | os.PathLike,
    out: str | os.PathLike = WEIGHTS,
    profile: Profile | None = None,
    extra_cbs=(),
    **options,
) -> Path:
    """Train the shipped model `name` the `pretrained` profile's way (or `profile`'s), checkpointing every epoch
    in `work` and resuming from there.

    Re-running the same command after an interruption continues from the last finished epoch (same schedule;
    the random draws after the restart differ from an uninterrupted run); a work folder of another recipe, device
    or options is refused. Writes out/NAME.pt and .json at the end. extra_cbs: more fastai callbacks for the fit;
    options: other `vae_learner` settings (beta, lam: benchmarks/studies.py sweeps them).
    """
    recipe = profile or get_profile("pretrained")
    if name not in NAMES:
        raise ValueError(f"Unknown pretrained model {name!r}; choose one of {NAMES}.")
    work, out = Path(work).expanduser().resolve(), Path(out)
    work.mkdir(parents=True, exist_ok=True)
    state_path, weights = work / f"{name}.state.json", work / f"{name}_last"

    data = load_galaxies(recipe.dataset, n=recipe.n_images, seed=recipe.seed)
    dls = galaxy_dls(data, bs=recipe.batch_size, seed=recipe.seed)
    on_cpu = dls.device.type == "cpu"
    cbs = [CPUBFloat16()] if on_cpu and cpu_has_bf16() else []
    learn = profile_learner(dls, name, recipe, cbs=[*cbs, *extra_cbs], **options)
    learn.path, learn.model_dir = work, "."  # fastai would otherwise make a models/ folder where it was started
    bf16 = any(type(cb).__name__ in ("CPUBFloat16", "MixedPrecision") for cb in learn.cbs)

    # What a resumed run must share with the one it continues; anything else is a different model.
    setup = {"recipe": recipe_record(recipe), "device": dls.device.type, "machine": machine(), "bf16_autocast": bf16}
    if options:
        setup["options"] = options
    state = _run_state(state_path, setup, weights)
    start_epoch = state["epoch"] + 1
    if start_epoch:
        learn.load(weights, with_opt=True)
        learn.recorder.history[:] = state["history"]
        done = start_epoch >= recipe.epochs
        print(f"{name}: {'already trained' if done else f'resuming after epoch {start_epoch}'} ({weights}.pth)")
    if start_epoch < recipe.epochs:
        every_epoch = EpochCheckpoint(weights, state_path, state, start_epoch, f"{name}: epoch {{}}/{recipe.epochs}")
        learn.fit_one_cycle(recipe.epochs, recipe.lr, start_epoch=start_epoch, cbs=[every_epoch])
    if learn.nan_guard.tripped:
        raise RuntimeError(f"Training {name} stopped on a NaN loss: {learn.nan_guard.message}")
    if state["epoch"] + 1 < recipe.epochs:
        raise RuntimeError(
            f"Training {name} stopped after epoch {state['epoch'] + 1} of {recipe.epochs}; run the same command "
            "again to continue."
        )

    provenance = _provenance(name, recipe, learn, dls, data, state, setup, bf16)
    out.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(learn.model, out / name, extra={**learn.hparams, "provenance": provenance}, half=True)


def _run_state(state_path: Path, setup: dict, weights: Path) -> dict:
    """The state of the run in `state_path` ({"epoch", "history", "wall_s", **setup}), or a fresh one; a state
    of another recipe, device or options is refused."""
    if not state_path.is_file():
        return {"epoch": -1, "history": [], "wall_s": 0.0, **setup}
    state = json.loads(state_path.read_text())
    keys = ("recipe", "device", "options")
    if tuple(state.get(k) for k in keys) != tuple(setup.get(k) for k in keys):
        raise ValueError(
            f"{state_path} belongs to another run (recipe {state.get('recipe')} on {state.get('device')}, options "
            f"{state.get('options') or 'none'}; this one is {setup['recipe']} on {setup['device']}, options "
            f"{setup.get('options') or 'none'}). Delete {state_path} and {weights}.pth to start over, or use "
            "another --work folder."
        )
    return state


def _provenance(name: str, recipe: Profile, learn, dls, data, state: dict, setup: dict, bf16: bool) -> dict:
    """How a shipped model was made: command, data (with its hash), recipe, machine, versions, history, metrics."""
    metrics = baseline_report(learn.model, dls)
    return {
        "objective": name,
        "command": f"galaxy-ae pretrain {name} --work WORKDIR",
        "data": {
            "name": recipe.dataset,
            "seed": recipe.seed,
            "n": recipe.n_images,
            "sha256": data_sha256(data.images, data.labels),
            "valid_pct": VALID_PCT,
        },
        "recipe": recipe_record(recipe),
        "epochs": recipe.epochs,
        "wall_s": round(state["wall_s"]),
        "machine": state.get("machine", setup["machine"]),  # where it was trained, not where it was written
        "bf16_autocast": state.get("bf16_autocast", bf16),
        "versions": {"torch": torch.__version__, "fastai": _fastai_version()},
        "history": state["history"],
        "metrics": metrics,
    }


def recipe_record(recipe: Profile) -> dict:
    """What a run's provenance and state record of its profile (the keys a shipped model's JSON has)."""
    return {
        "n": recipe.n_images,
        "seed": recipe.seed,
        "widths": list(recipe.widths),
        "latent_size": LATENT_SIZE,
        "batch_size": recipe.batch_size,
        "lr": recipe.lr,
        "epochs": recipe.epochs,
        "valid_pct": VALID_PCT,
    }


def _fastai_version() -> str:
    import fastai

    return fastai.__version__

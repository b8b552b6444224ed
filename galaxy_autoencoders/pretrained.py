"""Blog-scale models that ship with the package: an autoencoder, an ELBO-VAE and an MMD-VAE.

A laptop CPU cannot train a full-width VAE on 20,000 galaxies during a notebook cell, so the package carries
three, trained once with `train` below (the command that reproduces each is in its provenance):

    from galaxy_autoencoders import pretrained
    pretrained.available()            # {"ae": {...provenance...}, "elbo": {...}, "mmd": {...}}
    model = pretrained.load("mmd")    # a VAE in eval mode, on the CPU

Each model is a checkpoint (`weights/NAME.pt`, float16 weights, loaded with `torch.load(weights_only=True)`)
and its JSON, whose "extra" holds the provenance: command, data (seed, count, sha256), epochs, wall time,
machine, versions and final metrics against the mean-image baseline.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .models import checkpoint_info, load_checkpoint, save_checkpoint

NAMES = ("ae", "elbo", "mmd")
WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Recipe:
    """How the shipped models were trained: the data, the network and the schedule."""

    n: int = 20_000  # synthetic galaxies, rendered for `seed`
    seed: int = 2020  # tests render fresh galaxies with other seeds
    widths: tuple[int, ...] = (32, 64, 128, 256)
    latent_size: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    epochs: int = 10
    valid_pct: float = 0.1


RECIPE = Recipe()


def available() -> dict[str, dict]:
    """{name: what its checkpoint records} for every model shipped in the package (weights and JSON both there):
    the training settings (objective, beta, lam, ...) and, under "provenance", how it was made."""
    found = {}
    for name in NAMES:
        if (WEIGHTS / f"{name}.json").is_file() and (WEIGHTS / f"{name}.pt").is_file():
            found[name] = checkpoint_info(WEIGHTS / name)["extra"]
    return found


def load(name: str, map_location="cpu"):
    """The shipped model `name` ("ae", "elbo" or "mmd"), in eval mode on map_location."""
    if name not in NAMES:
        raise ValueError(f"Unknown pretrained model {name!r}; choose one of {NAMES}.")
    if not (WEIGHTS / f"{name}.pt").is_file():
        raise FileNotFoundError(
            f"The pretrained model {name!r} is not in {WEIGHTS}. Install the package from the repository (a clone or "
            f"git+https), which carries it, or make it with `galaxy-ae pretrain {name} --work DIR`."
        )
    return load_checkpoint(WEIGHTS / name, map_location=map_location)


def data_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of the images' and labels' bytes: the same galaxies give the same digest on any machine."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def machine() -> str:
    """The GPU's name, else the CPU model and core count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def train(
    name: str, work: str | os.PathLike, out: str | os.PathLike = WEIGHTS, recipe: Recipe = RECIPE, extra_cbs=()
) -> Path:
    """Train the shipped model `name` with `recipe`, checkpointing every epoch in `work` and resuming from there.

    Re-running the same command after an interruption continues from the last finished epoch (same schedule;
    the random draws after the restart differ from an uninterrupted run); a work folder of another recipe or
    device is refused. Writes out/NAME.pt and .json at the end. extra_cbs: more fastai callbacks for the fit.
    """
    from .data import load_galaxies
    from .dataloaders import galaxy_dls
    from .models import ModelConfig
    from .training import CPUBFloat16, EpochCheckpoint, cpu_has_bf16, vae_learner

    if name not in NAMES:
        raise ValueError(f"Unknown pretrained model {name!r}; choose one of {NAMES}.")
    work, out = Path(work).expanduser().resolve(), Path(out)
    work.mkdir(parents=True, exist_ok=True)
    state_path, weights = work / f"{name}.state.json", work / f"{name}_last"

    data = load_galaxies("synthetic", n=recipe.n, seed=recipe.seed)
    torch.manual_seed(recipe.seed)
    dls = galaxy_dls(data, bs=recipe.batch_size, seed=recipe.seed, valid_pct=recipe.valid_pct)
    on_cpu = dls.device.type == "cpu"
    cbs = [CPUBFloat16()] if on_cpu and cpu_has_bf16() else []
    config = ModelConfig(widths=recipe.widths, latent_size=recipe.latent_size)
    learn = vae_learner(dls, objective=name, config=config, lr=recipe.lr, cbs=[*cbs, *extra_cbs])
    learn.path, learn.model_dir = work, "."  # fastai would otherwise make a models/ folder where it was started
    bf16 = any(type(cb).__name__ in ("CPUBFloat16", "MixedPrecision") for cb in learn.cbs)

    # What a resumed run must share with the one it continues; anything else is a different model.
    setup = {"recipe": _recipe_dict(recipe), "device": dls.device.type, "machine": machine(), "bf16_autocast": bf16}
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
    of another recipe or device is refused."""
    if not state_path.is_file():
        return {"epoch": -1, "history": [], "wall_s": 0.0, **setup}
    state = json.loads(state_path.read_text())
    if (state.get("recipe"), state.get("device")) != (setup["recipe"], setup["device"]):
        raise ValueError(
            f"{state_path} belongs to another run (recipe {state.get('recipe')} on {state.get('device')}; this "
            f"one is {setup['recipe']} on {setup['device']}). Delete {state_path} and {weights}.pth to start "
            "over, or use another --work folder."
        )
    return state


def _provenance(name: str, recipe: Recipe, learn, dls, data, state: dict, setup: dict, bf16: bool) -> dict:
    """How a shipped model was made: command, data (with its hash), recipe, machine, versions, history, metrics."""
    from .metrics import baseline_report

    metrics = baseline_report(learn.model, dls)
    return {
        "objective": name,
        "command": f"galaxy-ae pretrain {name} --work WORKDIR",
        "data": {
            "name": "synthetic",
            "seed": recipe.seed,
            "n": recipe.n,
            "sha256": data_sha256(data.images, data.labels),
            "valid_pct": recipe.valid_pct,
        },
        "recipe": _recipe_dict(recipe),
        "epochs": recipe.epochs,
        "wall_s": round(state["wall_s"]),
        "machine": state.get("machine", setup["machine"]),  # where it was trained, not where it was written
        "bf16_autocast": state.get("bf16_autocast", bf16),
        "versions": {"torch": torch.__version__, "fastai": _fastai_version()},
        "history": state["history"],
        "metrics": metrics,
    }


def _recipe_dict(recipe: Recipe) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(recipe).items()}


def _fastai_version() -> str:
    import fastai

    return fastai.__version__

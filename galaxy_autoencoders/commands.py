"""What each `galaxy-ae` command does (cli.py reads the command line): thin layers over the library functions a
notebook calls.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def data_synthetic(args) -> None:
    from .data import make_synthetic
    from .files import check_output_file

    check_output_file(args.out, "galaxies", "--out")  # before rendering, which takes a while
    weights = [float(w) for w in args.class_weights.split(",")] if args.class_weights else None
    path = make_synthetic(args.out, n=args.n, seed=args.seed, class_weights=weights, workers=args.workers)
    print(f"Wrote {args.n} synthetic galaxies (seed {args.seed}) to {path}")


def data_fetch(args) -> None:
    from .data import fetch
    from .files import check_output_folder

    if args.data_dir is not None:
        check_output_folder(args.data_dir, "--data-dir")
    name = args.dataset.replace("-", "_")
    path = fetch(name, data_dir=args.data_dir)
    print(f"{name} is ready and verified: {path}")


def data_info(args) -> int:
    """Print what the file at args.path holds; the exit status is 1 if it cannot be loaded as it is, else 0."""
    from .data import describe

    description = describe(args.path)
    print(description.text)
    return 0 if description.loadable else 1  # so that scripts can check


def _prepare(args):
    """Profile (with the command line's overrides), galaxies and DataLoaders for train/demo, as a notebook's first
    cells make them. Under torchrun, this process's shard of the training galaxies (see distributed.py)."""
    from dataclasses import replace

    from .config import apply_profile, get_profile, rank, world_size
    from .data import load_galaxies
    from .dataloaders import galaxy_dls
    from .training.distributed import shard_dls

    profile = get_profile("quick" if args.quick else None)
    overrides = {
        key: value
        for key, value in (
            ("epochs", getattr(args, "epochs", None)),
            ("seed", getattr(args, "seed", None)),
            ("batch_size", getattr(args, "bs", None)),
            ("lr", getattr(args, "lr", None)),
            ("widths", getattr(args, "widths", None)),
        )
        if value is not None
    }
    profile = apply_profile(replace(profile, **overrides))
    by_name = args.data.strip().lower().replace("-", "_") in ("synthetic", "galaxy10_sdss", "galaxy10_decals")
    # The profile's number of galaxies is for the datasets by name; your own files are read whole unless --n.
    data = load_galaxies(args.data, n=args.n or (profile.n_images if by_name else None), seed=profile.seed)
    if rank() == 0:
        changed = ", ".join(f"{k} {v}" for k, v in overrides.items())
        print(f"{data!r}, profile {profile.name}{' with ' + changed if changed else ''}")
    if world_size() > 1:  # one process of several: its shard, on its own GPU (or the CPU)
        if getattr(args, "device", None):
            raise ValueError("--device is set by torchrun for each process (its own GPU); leave it out.")
        dls = shard_dls(galaxy_dls(data, bs=profile.batch_size, seed=profile.seed, device="cpu"), rank(), world_size())
    else:
        dls = galaxy_dls(data, bs=profile.batch_size, seed=profile.seed, device=getattr(args, "device", None))
    return profile, data, dls


def _fit(dls, objective: str, profile, args=None, history: Path | None = None):
    """A fresh model (or --resume's) trained with `objective` the profile's way (fastai's bar and table), with
    the command line's model and loss settings when args are given; each epoch's row written to `history` (a
    CSV file, by fastai's CSVLogger, as the epoch ends) when given."""
    from ._fastai import CSVLogger, ProgressCallback
    from .config import rank
    from .progress import epoch_lines, interactive
    from .training import profile_learner
    from .training.distributed import data_parallel

    options = _learner_options(args) if args is not None else {}
    start = _resume_from(args, objective) if args is not None else None
    learn = profile_learner(dls, objective, profile, start=start, **options)
    if not interactive():  # a log file or CI: one plain line per epoch, not the live bar's redraws
        learn.remove_cb(ProgressCallback).add_cb(epoch_lines())
    if history is not None and rank() == 0:  # one file, rank 0's; its folder made only now the flags are checked
        history.parent.mkdir(parents=True, exist_ok=True)
        learn.add_cb(CSVLogger(history))
    start = time.perf_counter()
    with data_parallel(learn):
        learn.fit_one_cycle(profile.epochs, profile.lr)
    if getattr(learn, "nan_guard", None) is not None and learn.nan_guard.tripped:
        raise RuntimeError(f"Training the {objective} model stopped on a NaN loss; see the message above.")
    if rank() == 0:
        print(
            f"Trained the {objective} model for {profile.epochs} epoch{'s' * (profile.epochs != 1)} in "
            f"{time.perf_counter() - start:.1f} s"
            f"{_captured(learn)}."
        )
    return learn


def _captured(learn) -> str:
    """What the captured step did in a fit (`--capture`), for the line that ends training; "" without it."""
    step = getattr(learn, "captured_step", None)
    if step is None:
        return ""
    if not step.on_cuda:
        return "; the captured step ran eagerly (a CUDA graph needs a GPU)"
    return f"; the captured step replayed its CUDA graph in {step.replayed_in_fit} of {step.batches} training batches"


def _learner_options(args) -> dict:
    """vae_learner's keyword arguments from `galaxy-ae train`'s flags; those left out keep --resume's checkpoint's
    settings, else vae_learner's defaults."""
    names = {
        "latent": "latent_size",
        "beta": "beta",
        "lam": "lam",
        "kernel": "kernel",
        "kl_warmup": "kl_warmup",
        "compile": "compile",
        "capture": "capture",
    }
    options = {key: getattr(args, flag) for flag, key in names.items() if getattr(args, flag, None) is not None}
    if getattr(args, "resume", None) is not None:
        saved = _saved_extra(args.resume)
        for key in ("beta", "lam", "kernel", "kl_warmup"):
            if key not in options and saved.get(key) is not None:
                options[key] = saved[key]
    return options


def _saved_extra(spec: str) -> dict:
    """The trainer's record (objective, beta, lam, ...) of a checkpoint path or pretrained:NAME."""
    from .models import checkpoint_info

    if spec.startswith("pretrained:"):
        from .pretrained import WEIGHTS

        spec = str(WEIGHTS / spec.split(":", 1)[1])
    return checkpoint_info(spec).get("extra") or {}


def _resume_from(args, objective: str):
    """The model of `--resume CHECKPOINT` (None without it), checked against the other flags."""
    path = getattr(args, "resume", None)
    if path is None:
        return None
    from .pretrained import resolve

    model = resolve(path)
    was = _saved_extra(path).get("objective")
    if was is not None and was != objective:
        raise ValueError(f"--resume {path} was trained as {was!r}; give --objective {was} to go on training it.")
    for flag, ours in (("widths", tuple(model.config.widths)), ("latent", model.config.latent_size)):
        given = getattr(args, flag, None)
        if given is not None and (tuple(given) if flag == "widths" else given) != ours:
            raise ValueError(f"--{flag} {given} differs from --resume {path}'s {ours}; leave --{flag} out to resume.")
    return model


def train(args) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; no window from a command line
    import matplotlib.pyplot as plt

    from .config import rank
    from .files import check_output_folder
    from .inference import reconstruct_all
    from .plots import reconstruction_comparison, save_figure
    from .training import save_learner
    from .training.distributed import finish

    check_output_folder(args.out, "--out")  # before any work: a name that cannot be a folder is refused now
    if args.nproc > 1:
        return _launch(args)
    objective = args.objective or _saved_objective(args.resume) or "mmd"
    profile, data, dls = _prepare(args)
    learn = _fit(dls, objective, profile, args, history=args.out / "history.csv")
    finish()  # leave the process group (if any) before writing: the rest is rank 0's alone
    if rank():  # one of several processes: rank 0 writes the files
        return
    args.out.mkdir(parents=True, exist_ok=True)
    extra = {"data": data.name, "profile": profile.name}
    if args.resume is not None:
        extra["resumed_from"] = str(args.resume)
    save_learner(learn, args.out / "model", extra=extra)
    learn.recorder.plot_loss()
    save_figure(plt.gcf(), args.out / "loss.png")
    x, recon = reconstruct_all(learn.model, dls.valid, bs=64)
    n = min(8, len(x))  # a small set of your own may have fewer validation galaxies
    figure = reconstruction_comparison(x[:n], {objective.upper(): recon[:n]}, n=n)
    save_figure(figure, args.out / "reconstructions.png")
    print(f"Saved model.pt/.json, history.csv, loss.png and reconstructions.png to {args.out}/")


def _launch(args) -> None:
    """`galaxy-ae train --nproc N ...`: the same command in N processes, started by torch's elastic launcher (what
    `torchrun --standalone --nproc_per_node N` does), each on its own GPU, or on the CPU (gloo) without GPUs."""
    import uuid

    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from .config import world_size

    if world_size() > 1:
        raise ValueError("--nproc: this process is already one of several (torchrun); leave --nproc out.")
    if args.device:
        raise ValueError("--nproc gives each process its own GPU; leave --device out.")
    import torch

    if torch.cuda.is_available() and args.nproc > torch.cuda.device_count():
        raise ValueError(
            f"--nproc {args.nproc}: this machine has {torch.cuda.device_count()} GPU(s); one process each."
        )
    argv = [a for a in args.argv if a != "--nproc" and not a.startswith("--nproc=")]
    if "--nproc" in args.argv:  # drop the value that followed it
        i = args.argv.index("--nproc")
        argv = args.argv[:i] + args.argv[i + 2 :]
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=args.nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # a free port, as torchrun --standalone
        max_restarts=0,
    )
    elastic_launch(config, sys.executable)("-m", "galaxy_autoencoders.cli", *argv)


def _saved_objective(path) -> str | None:
    return None if path is None else _saved_extra(path).get("objective")


def demo(args) -> None:
    import json

    import matplotlib

    matplotlib.use("Agg")

    from .comparison import compare_models, summary_lines
    from .files import check_output_folder
    from .inference import reconstruct_all
    from .plots import reconstruction_comparison, save_figure, save_latent_walk_gif, save_traversal
    from .training import load_or_train

    check_output_folder(args.out, "--out")
    profile, data, dls = _prepare(args)
    args.out.mkdir(parents=True, exist_ok=True)
    models, report = {}, {"data": data.name, "profile": profile.name, "n_galaxies": len(data)}
    # A model already in --out is used again only if it was trained on these galaxies with these settings.
    source = str(data.path) if data.path is not None else data.name  # the file itself, not just its name
    settings = {**report, "source": source, "epochs": profile.epochs, "seed": profile.seed}
    for objective in ("elbo", "mmd"):
        print(f"The {objective.upper()}-VAE: ", end="")
        fit = lambda objective: _fit(dls, objective, profile)  # noqa: E731
        models[objective] = load_or_train(args.out / "models" / objective, dls, objective, profile, settings, fit)
    report.update(compare_models(models, data, dls))
    x = dls.valid.one_batch()[0][:6].cpu()  # the first validation galaxies, as float (6, 3, 69, 69)
    recons = {name.upper(): reconstruct_all(model, x)[1] for name, model in models.items()}
    save_figure(reconstruction_comparison(x[:6], recons, n=6), args.out / "comparison.png")
    named = {name.upper(): model for name, model in models.items()}
    save_traversal(named, data.images[dls.valid.rows()], args.out / "traversal.png")
    save_latent_walk_gif(named, data.images[dls.valid.rows()], args.out / "latent_walk.gif")
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2))
    print("\n".join(summary_lines(report, n_valid=dls.valid.n)))
    print(f"Wrote comparison.png, traversal.png, latent_walk.gif, metrics.json and the models to {args.out}/")


def encode(args) -> None:
    import matplotlib

    matplotlib.use("Agg")

    from .catalogue import encode_catalogue, find_row, save_catalogue, show_neighbours, show_outliers
    from .data import load_galaxies
    from .files import check_output_file
    from .plots import save_figure
    from .pretrained import resolve

    check_output_file(args.out, "catalogue", "--out")  # before the model and the galaxies are loaded
    model = resolve(args.model)
    data = load_galaxies(args.data, n=args.n)
    print(f"{data!r}; model {args.model}")
    catalogue = encode_catalogue(model, data)
    save_catalogue(catalogue, args.out)
    written = [args.out.name]
    stem = args.out.with_suffix("")
    if args.figures or args.neighbours_of is not None:
        row = find_row(catalogue, args.neighbours_of or "0")
        save_figure(show_neighbours(catalogue, data.images, row, k=args.k), f"{stem}_neighbours.png")
        save_figure(show_outliers(catalogue, data.images, k=args.k), f"{stem}_outliers.png")
        written += [f"{stem.name}_neighbours.png", f"{stem.name}_outliers.png"]
    print(f"Wrote {', '.join(written)} ({len(catalogue)} galaxies, {catalogue.shape[1]} columns) to {args.out.parent}/")


def pretrain(args) -> None:
    from .files import check_output_folder
    from .pretrained import NAMES, WEIGHTS
    from .pretraining import train

    check_output_folder(args.work, "--work")
    if args.out is not None:
        check_output_folder(args.out, "--out")
    for name in NAMES if args.name == "all" else (args.name,):
        path = train(name, work=args.work, out=args.out or WEIGHTS)
        print(f"Wrote the pretrained {name} model to {path}")


def export_web(args) -> None:
    from .data import load_galaxies
    from .web import export_web as export

    if args.n and not args.data:
        raise ValueError("--n takes a subset of --data's galaxies; give --data too (e.g. --data synthetic --n 512).")
    galaxies = load_galaxies(args.data, n=args.n) if args.data else None
    written = export(args.out, {"elbo": args.elbo, "mmd": args.mmd}, galaxies=galaxies, sliders=args.sliders)
    size = sum(path.stat().st_size for path in written) / 1e6
    print(f"Wrote {', '.join(path.name for path in written)} ({size:.1f} MB) to {args.out}/")
    print("The course site's explorer page reads them: python docs/build_site.py builds it around them.")

"""`galaxy-ae`: the command line. Each subcommand is a thin layer over the library functions a notebook calls.

    galaxy-ae data synthetic --n 512 --seed 0 --out galaxies.h5   render GalSim galaxies (offline)
    galaxy-ae data galaxy10-sdss                                  download and verify Galaxy10 SDSS (200 MB)
    galaxy-ae data info galaxies.h5                               count, shape, classes of a file
    galaxy-ae train --data synthetic --objective mmd --epochs 5 --out runs/mmd   train one model
    galaxy-ae encode --model pretrained:mmd --data cutouts/ --out latents.csv --figures   your galaxies' codes
    galaxy-ae demo                                                the main job: ELBO vs MMD (offline)
    galaxy-ae pretrain all --work DIR                             remake the shipped models (resumable)

Bad arguments exit with status 2 and a usage line; any other failure with status 1 and a one-line error
(`--debug` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _data_synthetic(args) -> None:
    from .datasets import make_synthetic

    weights = [float(w) for w in args.class_weights.split(",")] if args.class_weights else None
    path = make_synthetic(args.out, n=args.n, seed=args.seed, class_weights=weights, workers=args.workers)
    print(f"Wrote {args.n} synthetic galaxies (seed {args.seed}) to {path}")


def _data_fetch(args) -> None:
    from .datasets import fetch

    name = args.dataset.replace("-", "_")
    path = fetch(name, data_dir=args.data_dir)
    print(f"{name} is ready and verified: {path}")


def _data_info(args) -> None:
    from .datasets import describe

    text = describe(args.path)
    print(text)
    return 1 if "\nnot loadable as it is:" in text else 0  # so that scripts can check


def _prepare(args):
    """Profile (with the command line's overrides), galaxies and DataLoaders for train/demo, as a notebook's first
    cells make them. Under torchrun, this process's shard of the training galaxies (see distributed.py)."""
    from dataclasses import replace

    from .config import apply_profile, get_profile
    from .dataloaders import galaxy_dls
    from .datasets import load_galaxies
    from .distributed import rank, shard_dls, world_size

    profile = get_profile("quick" if args.quick else None)
    overrides = {
        key: value
        for key, value in (
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


def _fit(dls, objective: str, profile, epochs: int | None, args=None):
    """A fresh model (or --resume's) trained with `objective` for the profile's epochs (fastai's bar and table),
    with the command line's model and loss settings when args are given."""
    from fastai.callback.progress import ProgressCallback

    from .config import apply_profile
    from .distributed import data_parallel
    from .learner import vae_learner
    from .models import ModelConfig
    from .progress import epoch_lines, interactive

    apply_profile(profile)  # each model starts from the same seed, whatever was trained before it
    options = _learner_options(args) if args is not None else {}
    start = _resume_from(args, objective) if args is not None else None
    config = start.config if start is not None else ModelConfig(widths=profile.widths)
    learn = vae_learner(dls, objective=objective, config=config, lr=profile.lr, **options)
    if start is not None:
        learn.model.load_state_dict(start.state_dict())
    if not interactive():  # a log file or CI: one plain line per epoch, not the live bar's redraws
        learn.remove_cb(ProgressCallback).add_cb(epoch_lines())
    with data_parallel(learn):
        learn.fit_one_cycle(epochs or profile.epochs, profile.lr)
    if getattr(learn, "nan_guard", None) is not None and learn.nan_guard.tripped:
        raise RuntimeError(f"Training the {objective} model stopped on a NaN loss; see the message above.")
    return learn


def _learner_options(args) -> dict:
    """vae_learner's keyword arguments from `galaxy-ae train`'s flags; those left out keep --resume's checkpoint's
    settings, else vae_learner's defaults."""
    names = {"latent": "latent_size", "beta": "beta", "lam": "lam", "kernel": "kernel", "kl_warmup": "kl_warmup"}
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
    model = _load_model(path)
    was = _saved_extra(path).get("objective")
    if was is not None and was != objective:
        raise ValueError(f"--resume {path} was trained as {was!r}; give --objective {was} to go on training it.")
    for flag, ours in (("widths", tuple(model.config.widths)), ("latent", model.config.latent_size)):
        given = getattr(args, flag, None)
        if given is not None and (tuple(given) if flag == "widths" else given) != ours:
            raise ValueError(f"--{flag} {given} differs from --resume {path}'s {ours}; leave --{flag} out to resume.")
    return model


def _train(args) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; no window from a command line
    import matplotlib.pyplot as plt

    from .distributed import finish, rank
    from .learner import save_learner
    from .metrics import reconstruct_all
    from .plots import reconstruction_comparison, save_figure

    if args.nproc > 1:
        return _launch(args)
    objective = args.objective or _saved_objective(args.resume) or "mmd"
    profile, data, dls = _prepare(args)
    learn = _fit(dls, objective, profile, args.epochs, args)
    finish()  # leave the process group (if any) before writing: the rest is rank 0's alone
    if rank():  # one of several processes: rank 0 writes the files
        return
    args.out.mkdir(parents=True, exist_ok=True)
    extra = {"data": data.name, "profile": profile.name}
    if args.resume is not None:
        extra["resumed_from"] = str(args.resume)
    save_learner(learn, args.out / "model", extra=extra)
    _write_history(learn, args.out / "history.csv")
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

    from .distributed import world_size

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


def _write_history(learn, path: Path) -> None:
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", *learn.history[0]])
        writer.writeheader()
        writer.writerows({"epoch": epoch, **row} for epoch, row in enumerate(learn.history))


def _demo(args) -> None:
    import json

    import matplotlib

    matplotlib.use("Agg")

    from .learner import save_learner
    from .metrics import bootstrap_difference, compare_to_mean_image, evaluate, per_galaxy_mse, reconstruct_all
    from .plots import reconstruction_comparison, save_figure, save_latent_walk_gif, save_traversal

    profile, data, dls = _prepare(args)
    args.out.mkdir(parents=True, exist_ok=True)
    learners, report = {}, {"data": data.name, "profile": profile.name, "n_galaxies": len(data)}
    errors, mean_image = {}, dls.train.mean_image()
    for objective in ("elbo", "mmd"):
        print(f"Training the {objective.upper()}-VAE")
        learners[objective] = learn = _fit(dls, objective, profile, args.epochs)
        save_learner(learn, args.out / "models" / objective, extra={"data": data.name, "profile": profile.name})
        x_valid, recon = reconstruct_all(learn.model, dls.valid)
        errors[objective] = per_galaxy_mse(x_valid, recon)
        # evaluate's own MSE is the same number; the baseline's comes last, from the pass its ratio is made of
        baseline = compare_to_mean_image(x_valid, recon, mean_image)
        report[objective] = {**evaluate(learn.model, dls, params=data.params), **baseline}
    x = dls.valid.one_batch()[0][:6].cpu()  # the first validation galaxies, as float (6, 3, 69, 69)
    recons = {name.upper(): reconstruct_all(learn.model, x)[1] for name, learn in learners.items()}
    save_figure(reconstruction_comparison(x[:6], recons, n=6), args.out / "comparison.png")
    models = {name.upper(): learn.model for name, learn in learners.items()}
    valid_images = data.images[dls.valid.idxs.cpu().numpy()]
    save_traversal(models, valid_images, args.out / "traversal.png")
    save_latent_walk_gif(models, valid_images, args.out / "latent_walk.gif")
    report["elbo_minus_mmd_mse"] = bootstrap_difference(errors["elbo"], errors["mmd"])
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2))
    for name in ("elbo", "mmd"):
        r = report[name]
        print(
            f"{name.upper():>4}: MSE {r['mse']:.4f} = {r['mse_ratio']:.2f} x the mean image's "
            f"{r['mean_image_mse']:.4f}; "
            f"colour kept (Spearman) {r['colour_rho']:.2f}; brightest pixels {r['peak_ratio']:.2f} x the inputs'"
        )
    d = report["elbo_minus_mmd_mse"]
    print(
        f"ELBO minus MMD, MSE per galaxy: {d['mean']:+.5f} (95% interval over the {len(errors['mmd'])} validation "
        f"galaxies: {d['low']:+.5f} to {d['high']:+.5f}; one training seed)"
    )
    print(f"Wrote comparison.png, traversal.png, latent_walk.gif, metrics.json and the models to {args.out}/")


def _encode(args) -> None:
    import matplotlib

    matplotlib.use("Agg")

    from .catalogue import encode_catalogue, find_row, save_catalogue, show_neighbours, show_outliers
    from .datasets import load_galaxies
    from .plots import save_figure

    model = _load_model(args.model)
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


def _load_model(spec: str):
    """--model: a checkpoint path (name.pt/.json) or pretrained:NAME (ae, elbo, mmd)."""
    from .models import load_checkpoint

    if spec.startswith("pretrained:"):
        from .pretrained import load

        return load(spec.split(":", 1)[1])
    return load_checkpoint(spec)


def _pretrain(args) -> None:
    from .pretrained import NAMES, WEIGHTS, train

    for name in NAMES if args.name == "all" else (args.name,):
        path = train(name, work=args.work, out=args.out or WEIGHTS)
        print(f"Wrote the pretrained {name} model to {path}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `galaxy-ae` (its subcommands and their options)."""
    parser = argparse.ArgumentParser(prog="galaxy-ae", description="Galaxy autoencoders: data, training, demo.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="make, download or inspect galaxy files")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="WHAT")
    synthetic = data_commands.add_parser("synthetic", help="render Galaxy10-like galaxies with GalSim (offline)")
    synthetic.add_argument("--n", type=_positive_int, default=2048, help="number of galaxies (default 2048)")
    synthetic.add_argument("--seed", type=int, default=0, help="random seed: same seed, same galaxies")
    synthetic.add_argument("--out", type=Path, required=True, help="output HDF5 file (Galaxy10 layout)")
    synthetic.add_argument("--class-weights", help="10 comma-separated weights (default: balanced classes)")
    synthetic.add_argument("--workers", type=_positive_int, help="processes to render with (default: all cores)")
    synthetic.set_defaults(func=_data_synthetic)
    for name, help_text in (
        ("galaxy10-sdss", "download and verify Galaxy10 SDSS (21,785 galaxies, 200 MB)"),
        (
            "galaxy10-decals",
            "download and verify Galaxy10 DECaLS (17,736 galaxies, 2.5 GB; loading it makes the 69x69 copy)",
        ),
    ):
        fetch = data_commands.add_parser(name, help=help_text)
        fetch.add_argument("--data-dir", type=Path, help="folder to keep it in (default: $GALAXY_AE_DATA or data/)")
        fetch.set_defaults(func=_data_fetch, dataset=name)
    info = data_commands.add_parser("info", help="print count, image shape and classes of a galaxy file")
    info.add_argument("path", type=Path)
    info.set_defaults(func=_data_info)

    train = commands.add_parser(
        "train",
        help="train one autoencoder or VAE and save it",
        description="Train one model and save it with its history and figures. On N GPUs of one machine: "
        "--nproc N (--bs is then the batch of all N together; see galaxy_autoencoders/distributed.py).",
    )
    train.add_argument(
        "--objective",
        choices=("elbo", "mmd", "ae"),
        help="the loss (default: mmd, or --resume's checkpoint's objective)",
    )
    train.add_argument("--out", type=Path, required=True, help="output folder (model, history, figures)")
    _add_training_flags(train)
    pretrain = commands.add_parser(
        "pretrain", help="train a shipped model (ae, elbo, mmd or all) on 20,000 galaxies; resumable"
    )
    pretrain.add_argument("name", choices=("ae", "elbo", "mmd", "all"), help="which model")
    pretrain.add_argument(
        "--work", type=Path, required=True, help="folder for the per-epoch checkpoints; a re-run resumes from it"
    )
    pretrain.add_argument("--out", type=Path, help="where the final model goes (default: the package's weights/)")
    pretrain.set_defaults(func=_pretrain)
    encode = commands.add_parser(
        "encode",
        help="write the latent catalogue of your galaxies (CSV or Parquet), with neighbours and outliers",
        description="One row per galaxy: id (file name or index), latent means mu_*, sigmas sigma_* (VAEs), "
        "recon_mse (an outlier score) and label where there is one.",
    )
    encode.add_argument("--model", required=True, help="a checkpoint (runs/x/model) or pretrained:NAME (ae, elbo, mmd)")
    encode.add_argument(
        "--data", required=True, help="your galaxies: a folder of PNG/JPEG cutouts, .npy/.npz, .h5, or a dataset name"
    )
    encode.add_argument("--out", type=Path, required=True, help="latents.csv, or latents.parquet (needs pyarrow)")
    encode.add_argument("--n", type=_positive_int, help="a random subset of N galaxies (default: all)")
    encode.add_argument("--figures", action="store_true", help="also draw OUT_neighbours.png and OUT_outliers.png")
    encode.add_argument("--neighbours-of", metavar="ID", help="the galaxy whose neighbours to draw (default: row 0)")
    encode.add_argument("--k", type=_positive_int, default=8, help="neighbours and outliers to draw (default 8)")
    encode.set_defaults(func=_encode)
    demo = commands.add_parser("demo", help="train an ELBO-VAE and an MMD-VAE and compare them (offline)")
    demo.add_argument("--out", type=Path, default=Path("galaxy-ae-output"), help="output folder")
    for sub, func in ((train, _train), (demo, _demo)):
        sub.add_argument(
            "--data", default="synthetic", help="synthetic (default, offline), galaxy10-sdss, galaxy10-decals or PATH"
        )
        sub.add_argument("--epochs", type=_positive_int, help="epochs (default: the profile's)")
        sub.add_argument("--n", type=_positive_int, help="number of galaxies (default: the profile's)")
        sub.add_argument("--quick", action="store_true", help="the quick profile, whatever $GALAXY_AE_PROFILE says")
        sub.set_defaults(func=func)
    return parser


def _add_training_flags(train) -> None:
    """What a user tunes, each with its default in --help (the profile's values are those of `quick`/`full`)."""
    from .config import PROFILES
    from .learner import vae_learner_defaults

    d = vae_learner_defaults()
    quick, full = PROFILES["quick"], PROFILES["full"]
    train.add_argument("--latent", type=_positive_int, help=f"latent dimensions (default {d['latent_size']})")
    train.add_argument("--beta", type=_non_negative, help="KL weight (default 1 for elbo, 0 for mmd)")
    train.add_argument("--lam", type=_non_negative, help=f"MMD weight of the mmd objective (default {d['lam']:g})")
    train.add_argument("--kernel", choices=("imq", "rbf"), help=f"MMD kernel (default {d['kernel']})")
    train.add_argument(
        "--kl-warmup", type=float, help="fraction of training over which the KL weight ramps up (default 0)"
    )
    train.add_argument("--lr", type=float, help=f"peak learning rate of fit_one_cycle (default {full.lr:g})")
    train.add_argument(
        "--bs",
        type=_positive_int,
        help=f"batch size (default: the profile's, {quick.batch_size} quick, {full.batch_size} full)",
    )
    train.add_argument(
        "--widths",
        type=_widths,
        help=f"encoder channels, comma-separated (default: {_csv(quick.widths)} quick, {_csv(full.widths)} full)",
    )
    train.add_argument(
        "--seed",
        type=int,
        help=f"seed of the galaxies drawn, the split, the order and the weights (default {full.seed})",
    )
    train.add_argument("--device", help="cpu, cuda or cuda:N (default: the GPU if there is one, else the CPU)")
    train.add_argument(
        "--resume", metavar="CHECKPOINT", help="go on training this saved model (its .pt/.json, or pretrained:NAME)"
    )
    train.add_argument(
        "--nproc",
        type=_positive_int,
        default=1,
        help="data-parallel over N processes, one per GPU (CPU processes where there is none) (default 1)",
    )


def _csv(values) -> str:
    return ",".join(str(v) for v in values)


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(
            f"give positive channel counts separated by commas, e.g. 16,32,64,128, not {text}"
        )
    return widths


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run `galaxy-ae`; returns the exit status (0 ok, 1 failure, 2 bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with status 2 and a usage line on bad arguments
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        print("galaxy-ae: interrupted; files already written are complete (writes are atomic).", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"galaxy-ae: error: {message} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    return status or 0


if __name__ == "__main__":
    sys.exit(main())

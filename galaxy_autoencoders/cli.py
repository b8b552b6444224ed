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
import traceback
from pathlib import Path

from . import commands


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `galaxy-ae` (its subcommands and their options)."""
    parser = argparse.ArgumentParser(prog="galaxy-ae", description="Galaxy autoencoders: data, training, demo.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_data_commands(subcommands)

    train = subcommands.add_parser(
        "train",
        help="train one autoencoder or VAE and save it",
        description="Train one model and save it with its history and figures. On N GPUs of one machine: "
        "--nproc N (--bs is then the batch of all N together; see galaxy_autoencoders/training/distributed.py).",
    )
    train.add_argument(
        "--objective",
        choices=("elbo", "mmd", "ae"),
        help="the loss (default: mmd, or --resume's checkpoint's objective)",
    )
    train.add_argument("--out", type=Path, required=True, help="output folder (model, history, figures)")
    _add_training_flags(train)
    pretrain = subcommands.add_parser(
        "pretrain", help="train a shipped model (ae, elbo, mmd or all) on 20,000 galaxies; resumable"
    )
    pretrain.add_argument("name", choices=("ae", "elbo", "mmd", "all"), help="which model")
    pretrain.add_argument(
        "--work", type=Path, required=True, help="folder for the per-epoch checkpoints; a re-run resumes from it"
    )
    pretrain.add_argument("--out", type=Path, help="where the final model goes (default: the package's weights/)")
    pretrain.set_defaults(func=commands.pretrain)
    _add_encode_command(subcommands)
    _add_export_web_command(subcommands)
    demo = subcommands.add_parser("demo", help="train an ELBO-VAE and an MMD-VAE and compare them (offline)")
    demo.add_argument("--out", type=Path, default=Path("galaxy-ae-output"), help="output folder")
    for sub, func in ((train, commands.train), (demo, commands.demo)):
        sub.add_argument(
            "--data", default="synthetic", help="synthetic (default, offline), galaxy10-sdss, galaxy10-decals or PATH"
        )
        sub.add_argument("--epochs", type=_positive_int, help="epochs (default: the profile's)")
        sub.add_argument("--n", type=_positive_int, help="number of galaxies (default: the profile's)")
        sub.add_argument("--quick", action="store_true", help="the quick profile, whatever $GALAXY_AE_PROFILE says")
        sub.set_defaults(func=func)
    return parser


def _add_data_commands(subcommands) -> None:
    """`galaxy-ae data synthetic | galaxy10-sdss | galaxy10-decals | info`."""
    data = subcommands.add_parser("data", help="make, download or inspect galaxy files")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="WHAT")
    synthetic = data_commands.add_parser("synthetic", help="render Galaxy10-like galaxies with GalSim (offline)")
    synthetic.add_argument("--n", type=_positive_int, default=2048, help="number of galaxies (default 2048)")
    synthetic.add_argument("--seed", type=int, default=0, help="random seed: same seed, same galaxies")
    synthetic.add_argument("--out", type=Path, required=True, help="output HDF5 file (Galaxy10 layout)")
    synthetic.add_argument("--class-weights", help="10 comma-separated weights (default: balanced classes)")
    synthetic.add_argument("--workers", type=_positive_int, help="processes to render with (default: all cores)")
    synthetic.set_defaults(func=commands.data_synthetic)
    for name, help_text in (
        ("galaxy10-sdss", "download and verify Galaxy10 SDSS (21,785 galaxies, 200 MB)"),
        (
            "galaxy10-decals",
            "download and verify Galaxy10 DECaLS (17,736 galaxies, 2.5 GB; loading it makes the 69x69 copy)",
        ),
    ):
        fetch = data_commands.add_parser(name, help=help_text)
        fetch.add_argument("--data-dir", type=Path, help="folder to keep it in (default: $GALAXY_AE_DATA or data/)")
        fetch.set_defaults(func=commands.data_fetch, dataset=name)
    info = data_commands.add_parser("info", help="print count, image shape and classes of a galaxy file")
    info.add_argument("path", type=Path)
    info.set_defaults(func=commands.data_info)


def _add_encode_command(subcommands) -> None:
    """`galaxy-ae encode`: your galaxies' latent catalogue."""
    encode = subcommands.add_parser(
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
    encode.set_defaults(func=commands.encode)


def _add_export_web_command(subcommands) -> None:
    """`galaxy-ae export-web`: the explorer page's decoders (ONNX) and codes."""
    export = subcommands.add_parser(
        "export-web",
        help="write the browser explorer's decoders (ONNX) and codes for the course site's explorer page",
        description="Writes elbo.onnx, mmd.onnx and explorer.json (each model's mean code, sigma, ranking of its "
        "dimensions, and the codes of a strip of real galaxies) into OUT. Each decoder is checked against torch "
        "before it is written; the checkpoints are only read.",
    )
    export.add_argument("out", type=Path, help="the folder to write into (made if missing)")
    for key in ("elbo", "mmd"):
        export.add_argument(
            f"--{key}",
            default=f"pretrained:{key}",
            help=f"the {key.upper()}-VAE: a checkpoint or pretrained:NAME (default: pretrained:{key})",
        )
    export.add_argument(
        "--data", help="galaxies for the codes' spread and the strip (default: the quick profile's synthetic set)"
    )
    export.add_argument("--n", type=_positive_int, help="a random subset of N of those galaxies (default: all)")
    export.add_argument("--sliders", type=_positive_int, default=8, help="sliders on the page (default 8)")
    export.set_defaults(func=commands.export_web)


def _add_training_flags(train) -> None:
    """What a user tunes, each with its default in --help (the profile's values are those of `quick`/`full`).
    The defaults come from config.py, which imports neither torch nor fastai: --help answers at once."""
    from .config import BETA, KERNEL, LAM, LATENT_SIZE, PROFILES

    quick, full = PROFILES["quick"], PROFILES["full"]
    train.add_argument("--latent", type=_positive_int, help=f"latent dimensions (default {LATENT_SIZE})")
    train.add_argument("--beta", type=_non_negative, help=f"KL weight (default {BETA:g} for elbo, 0 for mmd)")
    train.add_argument("--lam", type=_non_negative, help=f"MMD weight (default {LAM:g} for mmd, 0 for elbo)")
    train.add_argument("--kernel", choices=("imq", "rbf"), help=f"MMD kernel (default {KERNEL})")
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
        "--no-compile",
        dest="compile",
        action="store_false",
        default=None,
        help="on a GPU, run the model eagerly instead of compiled (torch.compile with CUDA graphs, the default there)",
    )
    train.add_argument(
        "--capture",
        action="store_true",
        default=None,
        help="run each training step (forward, loss, backward, AdamW) as one step: on a GPU recorded once as a CUDA "
        "graph and replayed, on a CPU eagerly (galaxy_autoencoders/training/capture.py); off by default",
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
    status = 1  # unless _run returns
    try:
        status = _run(args)
        return status
    except BaseException:
        if _trained_in_a_process_group():
            traceback.print_exc()  # exit_process below ends the process before Python would print it
        raise
    finally:
        if _trained_in_a_process_group():  # one of torchrun's processes: see training/distributed.py
            sys.modules["galaxy_autoencoders.training.distributed"].exit_process(status)


def _trained_in_a_process_group() -> bool:
    """Whether this process trained in a process group (without importing the training code to find out)."""
    distributed = sys.modules.get("galaxy_autoencoders.training.distributed")
    return distributed is not None and distributed.joined


def _run(args) -> int:
    """args.func(args) -> its exit status, a failure turned into a one-line error (the traceback with --debug)."""
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print(
            "galaxy-ae: interrupted; files already written are complete (writes are atomic; history.csv "
            "holds the epochs that finished).",
            file=sys.stderr,
        )
        return 130
    except Exception as err:
        if args.debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"galaxy-ae: error: {message} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

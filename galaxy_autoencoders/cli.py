"""`galaxy-ae`: the command line. Each subcommand is a thin layer over the library functions a notebook calls.

    galaxy-ae data synthetic --n 512 --seed 0 --out galaxies.h5   render GalSim galaxies (offline)
    galaxy-ae data galaxy10-sdss                                  download and verify Galaxy10 SDSS (200 MB)
    galaxy-ae data info galaxies.h5                               count, shape, classes of a file
    galaxy-ae demo                                                the main job (offline, synthetic galaxies)

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

    print(describe(args.path))


def _demo(args) -> None:
    print(
        "galaxy-ae demo is not available yet: it arrives with the VAE models (ELBO vs MMD). Meanwhile, "
        "`galaxy-ae data synthetic --n 512 --out galaxies.h5` renders galaxies, and notebooks/01_data.ipynb "
        "shows them."
    )


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
        ("galaxy10-decals", "download, verify and downsample Galaxy10 DECaLS (17,736 galaxies, 2.5 GB)"),
    ):
        fetch = data_commands.add_parser(name, help=help_text)
        fetch.add_argument("--data-dir", type=Path, help="folder to keep it in (default: $GALAXY_AE_DATA or data/)")
        fetch.set_defaults(func=_data_fetch, dataset=name)
    info = data_commands.add_parser("info", help="print count, image shape and classes of a galaxy file")
    info.add_argument("path", type=Path)
    info.set_defaults(func=_data_info)

    demo = commands.add_parser("demo", help="train an ELBO-VAE and an MMD-VAE and compare them (offline)")
    demo.add_argument("--out", type=Path, default=Path("galaxy-ae-output"), help="output folder")
    demo.add_argument("--quick", action="store_true", help="the quick profile: a few minutes on a laptop CPU")
    demo.set_defaults(func=_demo)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run `galaxy-ae`; returns the exit status (0 ok, 1 failure, 2 bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with status 2 and a usage line on bad arguments
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("galaxy-ae: interrupted; files already written are complete (writes are atomic).", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"galaxy-ae: error: {message} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The studies behind the notebooks' statistics, at the shipped models' scale: seed spreads, a beta sweep and a
lambda sweep, computed once and written as data with their provenance.

    python benchmarks/studies.py --work DIR [--out galaxy_autoencoders/studies/pretrained_scale.json]
                                 [--seeds 3] [--only seeds,beta,lam] [--profile pretrained]

Each run trains one model the `pretrained` profile's way (`pretraining.train`: 18,000 of 20,000 synthetic galaxies,
the rest to validate; full width, 10 epochs), from its own seed (the profile's seed + k), checkpointed every epoch
in DIR/RUN, so that the same command resumes where it stopped, run by run and epoch by epoch. Seed +0 of each
objective at the default beta and lambda is the shipped model itself, which that recipe made. Every model is then
scored on the same galaxies the notebooks use, the quick profile's 205 validation galaxies (rendered with seed 42,
which no run trains on), against their input and their noiseless truth: MSE, MSE vs truth, fine-detail error.

The output holds each run's scores (per galaxy too, for `evidence.Studies.difference`), a VAE's KL in nats, where
and how it was trained (machine, versions, wall time), the noise floor of the MSE against the truth, and what all
runs share (command, recipe, defaults, the evaluation set with a fingerprint of its galaxies and truth); beside it,
as .npz, each run's reconstructions of the gallery's six galaxies. It is written after every run, with the planned
runs still missing listed, so a study stopped part-way is usable and the same command finishes it. Runs already in
--out (of the same recipe, defaults and evaluation set; another is refused) are kept, not trained or scored again,
so a study adds up over sessions and machines; delete both files to remake everything. A run at this scale takes 7
to 30 minutes on a 2-core CPU (measured) and about a minute on a GPU (estimated from the 50-epoch benchmark, most
of it rendering the galaxies): give it a GPU when there is one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from galaxy_autoencoders import pretrained, pretraining
from galaxy_autoencoders.config import BETA, LAM, apply_profile, get_profile
from galaxy_autoencoders.data import load_galaxies
from galaxy_autoencoders.dataloaders import galaxy_dls
from galaxy_autoencoders.display import to_hwc_uint8
from galaxy_autoencoders.evidence import RESULTS
from galaxy_autoencoders.files import atomic_write
from galaxy_autoencoders.gallery import detailed_galaxies
from galaxy_autoencoders.inference import reconstruct_all
from galaxy_autoencoders.metrics import kl_per_dimension
from galaxy_autoencoders.models import AutoEncoder, checkpoint_info, load_checkpoint
from galaxy_autoencoders.truth import noise_floor, render_noisy_copies, render_truth, truth_report

ROOT = Path(__file__).resolve().parent.parent
STUDIES = {  # name: (objective, {vae_learner option: values other than the default})
    "seeds": [("elbo", {}), ("mmd", {}), ("ae", {})],
    "beta": [("elbo", {"beta": 0.1}), ("elbo", {"beta": 4.0})],
    "lam": [("mmd", {"lam": 10.0}), ("mmd", {"lam": 1000.0})],
}


def runs(only: list[str], seeds: int) -> list[dict]:
    """The runs of the chosen studies: [{"id", "objective", "options", "seed_offset"}], each once."""
    chosen = {}
    for study in only:
        for objective, options in STUDIES[study]:
            for k in range(seeds):
                tag = "_".join(f"{key}{value:g}" for key, value in options.items())
                run_id = f"{objective}{'_' + tag if tag else ''}_seed{k}"
                chosen[run_id] = {"id": run_id, "objective": objective, "options": options, "seed_offset": k}
    # The ELBO-against-MMD seeds first (the course's headline), then each seed's round of everything else, so that
    # a study stopped part-way has the most useful runs
    headline = [r for r in chosen.values() if not r["options"] and r["objective"] != "ae"]
    rest = sorted((r for r in chosen.values() if r not in headline), key=lambda r: r["seed_offset"])
    return sorted(headline, key=lambda r: r["seed_offset"]) + rest


def train_run(run: dict, profile, work: Path):
    """The run's model: the shipped one for a default run from the profile's own seed, else trained (resumably);
    with its source ("shipped" or "trained") and how it was made (machine, versions, wall time, bf16)."""
    shipped = run["seed_offset"] == 0 and not run["options"] and profile == get_profile("pretrained")
    if shipped and run["objective"] in pretrained.available():
        made = pretrained.available()[run["objective"]]["provenance"]
        return pretrained.load(run["objective"]), "shipped", made_record(made)
    folder = work / run["id"]
    seeded = replace(profile, seed=profile.seed + run["seed_offset"])
    path = pretraining.train(run["objective"], folder, out=folder, profile=seeded, **run["options"])
    made = checkpoint_info(path)["extra"]["provenance"]
    return load_checkpoint(path).eval(), "trained", {**made_record(made), "date": time.strftime("%Y-%m-%d")}


def made_record(provenance: dict) -> dict:
    """What a run's own training record says of where and how it ran (the recipe is the study's, kept once)."""
    return {key: provenance[key] for key in ("machine", "versions", "wall_s", "bf16_autocast") if key in provenance}


def evaluation_set():
    """The notebooks' validation galaxies (quick profile), their DataLoaders, their noiseless truth and the
    positions of the gallery's galaxies among them."""
    quick = get_profile("quick")
    data = load_galaxies(quick.dataset, n=quick.n_images, seed=quick.seed)
    dls = galaxy_dls(data, bs=quick.batch_size, seed=quick.seed, device="cpu")
    truth = render_truth(data, dls.valid.rows())
    params = {name: values[dls.valid.rows()] for name, values in data.params.items()}
    return data, dls, truth, detailed_galaxies(params, truth)


def score(model, dls, truth, gallery_rows) -> tuple[dict, object]:
    """A model's means and per-galaxy arrays against the inputs and the truth, its KL in nats (a VAE's), and its
    reconstructions of the gallery's galaxies (uint8)."""
    report = truth_report(model, dls, truth)
    scores = {
        "mse_vs_input": report["mse_vs_input"],
        "mse_vs_truth": report["mse_vs_truth"],
        "fine_detail_error": report["fine_detail_error"],
        "per_galaxy": {"mse_truth": report["mse_truth"].tolist(), "detail_error": report["detail_error"].tolist()},
    }
    if not isinstance(model, AutoEncoder):  # a VAE: how many nats its code carries
        kl = kl_per_dimension(model, dls)
        scores.update(kl_nats=float(kl.sum()), kl_per_dimension=kl.tolist())
    return scores, to_hwc_uint8(reconstruct_all(model, dls)[1][gallery_rows])


def _portable(argv: list[str], args) -> list[str]:
    """argv with no machine's paths: the work folder written WORKDIR (as in the shipped models' own provenance),
    an --out inside the repository relative to it, one outside it OUT."""
    out = args.out.resolve()
    shown = {args.work.resolve(): "WORKDIR", out: str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else "OUT"}
    words = []
    for a in argv:
        flag, eq, value = a.partition("=")
        if eq and flag in ("--work", "--out"):
            words.append(f"{flag}={shown[Path(value).resolve()]}")
        else:
            words.append(a if a.startswith("-") else shown.get(Path(a).resolve(), a))
    return words


def provenance(args, argv: list[str], profile, evaluation: dict) -> dict:
    """What every run of the study shares: the command, the recipe, the evaluation set (and its fingerprint)."""
    return {
        "command": "python benchmarks/studies.py " + " ".join(_portable(argv, args)),
        "python": platform.python_version(),
        "profile": {**pretraining.recipe_record(profile), "name": profile.name},
        "defaults": {"beta": BETA, "lam": LAM},
        "evaluation": evaluation,
    }


def fingerprint(*arrays: np.ndarray) -> str:
    """sha256 of the arrays' bytes: the same galaxies and truth, or not."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def earlier_results(out: Path, made: dict) -> tuple[dict, dict, list]:
    """The runs, pictures and planned run ids already in `out`, if it holds results of the same recipe, defaults
    and evaluation set (a study run in parts, or on several machines, adds up; a re-run with fewer studies loses
    nothing); else refuses, naming what differs."""
    if not out.exists():
        return {}, {}, []
    before = json.loads(out.read_text())
    earlier = before.get("provenance", {})
    for key in ("profile", "defaults", "evaluation"):
        if earlier.get(key) != made[key]:
            raise SystemExit(
                f"{out} holds results made with another {key} ({earlier.get(key)}; this run's: {made[key]}). Give "
                "another --out, or delete it and its .npz to start again."
            )
    pictures_file = out.with_suffix(".npz")
    if not pictures_file.exists():
        raise SystemExit(f"{out} has no pictures file beside it ({pictures_file}); restore it, or delete {out}.")
    with np.load(pictures_file) as arrays:
        pictures = {run_id: arrays[run_id] for run_id in before["runs"] if run_id in arrays.files}
    if lost := sorted(set(before["runs"]) - set(pictures)):
        raise SystemExit(f"{pictures_file} lacks the pictures of {lost}; restore it, or delete {out} and it.")
    return before["runs"], pictures, before["planned"]


def write(out: Path, results: dict, pictures: dict) -> None:
    """Both files, each atomically: the pictures first, so that every run the JSON lists has its pictures."""
    atomic_write(out.with_suffix(".npz"), lambda tmp: np.savez_compressed(tmp, **pictures))
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=1)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--work", type=Path, required=True, help="per-run checkpoints; a re-run resumes from them")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help=f"the results, and their pictures beside them as .npz (default {RESULTS.relative_to(ROOT)})",
    )
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per setting (default 3)")
    parser.add_argument("--only", default=",".join(STUDIES), help=f"comma-separated, from {','.join(STUDIES)}")
    parser.add_argument("--profile", default="pretrained", help="the training profile (default pretrained)")
    parser.add_argument("--n", type=int, help="fewer training galaxies than the profile's (a quicker, smaller study)")
    parser.add_argument("--epochs", type=int, help="fewer epochs than the profile's")
    parser.add_argument("--widths", help="narrower network than the profile's, e.g. 8,16")
    args = parser.parse_args(argv)
    if args.out.suffix != ".json":
        parser.error(f"--out {args.out}: give a .json file (its pictures go beside it, as .npz)")
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: give at least 1")
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if unknown := sorted(set(only) - set(STUDIES)):
        parser.error(f"--only: unknown studies {unknown}; choose from {sorted(STUDIES)}")
    profile = get_profile(args.profile)
    smaller = {
        "n_images": args.n,
        "epochs": args.epochs,
        "widths": args.widths and tuple(map(int, args.widths.split(","))),
    }
    profile = replace(profile, **{key: value for key, value in smaller.items() if value})
    data, dls, truth, gallery_rows = evaluation_set()
    inputs = data.images[dls.valid.rows()]  # uint8 (205, 69, 69, 3)
    evaluation = {
        "galaxies": f"the quick profile's {dls.valid.n} validation galaxies, with their noiseless truth",
        "sha256": fingerprint(inputs, truth),
    }
    made = provenance(args, sys.argv[1:] if argv is None else argv, profile, evaluation)
    kept, pictures, planned_before = earlier_results(args.out, made)  # of the same recipe, defaults and galaxies
    pictures.update(gallery_rows=gallery_rows, inputs=inputs[gallery_rows], truth=truth[gallery_rows])
    planned = runs(only, args.seeds)
    copies = render_noisy_copies(data, dls.valid.rows(), copies=8)
    results = {
        "runs": kept,
        "planned": planned_before + [r["id"] for r in planned if r["id"] not in planned_before],
        "missing": [],
        "floor_mse_vs_truth": noise_floor(copies, truth)["floor"],
        "provenance": made,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for done, run in enumerate(planned, 1):
        start = time.perf_counter()
        if run["id"] in results["runs"]:
            print(f"{run['id']}: already in {args.out.name}", flush=True)
            continue
        model, source, record = train_run(run, profile, args.work)
        apply_profile(get_profile("quick"))  # scoring runs the same way whatever was trained before
        scores, pictures[run["id"]] = score(model, dls, truth, gallery_rows)
        results["runs"][run["id"]] = {**run, "source": source, "made": record, **scores}
        results["missing"] = [run_id for run_id in results["planned"] if run_id not in results["runs"]]
        write(args.out, results, pictures)  # after every run: a study stopped part-way is usable
        print(
            f"{run['id']}: {source}, {time.perf_counter() - start:.0f} s; {done}/{len(planned)} in {args.out}",
            flush=True,
        )
    results["missing"] = [run_id for run_id in results["planned"] if run_id not in results["runs"]]
    write(args.out, results, pictures)
    return results


if __name__ == "__main__":
    main()

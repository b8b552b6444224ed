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

The output holds each run's scores (per galaxy too, for `evidence.Studies.difference`), a VAE's KL in nats, the
noise floor of the MSE against the truth and the provenance (command, machine, versions, profile, evaluation
set); beside it, as .npz, each run's reconstructions of the gallery's six galaxies. It is written after every
run, with the runs still missing listed, so a study stopped part-way is usable and the same command finishes it.
A run at this scale takes 7 to 30 minutes on a 2-core CPU (measured) and about a minute on a GPU (estimated from
the 50-epoch benchmark, most of it rendering the galaxies): give it a GPU when there is one.
Runs already in --out (of the same recipe) are kept, not trained again, so a study adds up over sessions.
"""

from __future__ import annotations

import argparse
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
from galaxy_autoencoders.models import AutoEncoder, load_checkpoint
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
    """The run's model: the shipped one for a default run from the profile's own seed, else trained (resumably)."""
    shipped = run["seed_offset"] == 0 and not run["options"] and profile == get_profile("pretrained")
    if shipped and run["objective"] in pretrained.available():
        return pretrained.load(run["objective"]), "shipped"
    folder = work / run["id"]
    seeded = replace(profile, seed=profile.seed + run["seed_offset"])
    path = pretraining.train(run["objective"], folder, out=folder, profile=seeded, **run["options"])
    return load_checkpoint(path).eval(), "trained"


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


def provenance(args, argv: list[str], profile, n_eval: int) -> dict:
    import fastai
    import torch

    return {
        "command": "python benchmarks/studies.py " + " ".join(_portable(argv, args)),
        "machine": pretraining.machine(),
        "python": platform.python_version(),
        "versions": {"torch": torch.__version__, "fastai": fastai.__version__},
        "profile": {**pretraining.recipe_record(profile), "name": profile.name},
        "seeds": args.seeds,
        "evaluation": f"the quick profile's {n_eval} validation galaxies (synthetic, seed 42), with their truth",
        "date": time.strftime("%Y-%m-%d"),
    }


def earlier_results(out: Path, made: dict) -> tuple[dict, dict]:
    """The runs and pictures already in `out`, if it holds results of the same recipe and evaluation (a study
    run in parts, or on several machines, adds up; a re-run with fewer studies loses nothing); else refuses."""
    if not out.exists():
        return {}, {}
    before = json.loads(out.read_text())
    same = ("profile", "evaluation")
    if any(before.get("provenance", {}).get(key) != made[key] for key in same):
        raise SystemExit(
            f"{out} holds results of another recipe or evaluation set ({before.get('provenance', {}).get('profile')}"
            f"); give another --out, or delete it to start again."
        )
    with np.load(out.with_suffix(".npz")) as arrays:
        pictures = {run_id: arrays[run_id] for run_id in before["runs"] if run_id in arrays.files}
    return {run_id: run for run_id, run in before["runs"].items() if run_id in pictures}, pictures


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    results = {"runs": {}, "defaults": {"beta": BETA, "lam": LAM}}
    inputs = data.images[dls.valid.rows()[gallery_rows]]  # uint8 (6, 69, 69, 3)
    pictures = {"gallery_rows": gallery_rows, "inputs": inputs, "truth": truth[gallery_rows]}
    planned = runs(only, args.seeds)
    copies = render_noisy_copies(data, dls.valid.rows(), copies=8)
    results["floor_mse_vs_truth"] = noise_floor(copies, truth)["floor"]
    results["provenance"] = provenance(args, sys.argv[1:] if argv is None else argv, profile, dls.valid.n)
    kept = earlier_results(args.out, results["provenance"])  # ({run id: run}, {run id: pictures}) of the same recipe
    results["runs"].update(kept[0])
    pictures.update(kept[1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for done, run in enumerate(planned, 1):
        start = time.perf_counter()
        if run["id"] in results["runs"]:
            print(f"{run['id']}: already in {args.out.name}", flush=True)
            continue
        model, source = train_run(run, profile, args.work)
        apply_profile(get_profile("quick"))  # scoring runs the same way whatever was trained before
        scores, pictures[run["id"]] = score(model, dls, truth, gallery_rows)
        results["runs"][run["id"]] = {**run, "source": source, **scores}
        results["missing"] = [r["id"] for r in planned if r["id"] not in results["runs"]]  # after every run
        atomic_write(args.out.with_suffix(".npz"), lambda tmp: np.savez_compressed(tmp, **pictures))
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=1)))
        print(
            f"{run['id']}: {source}, {time.perf_counter() - start:.0f} s; {done}/{len(planned)} in {args.out}",
            flush=True,
        )
    return results


if __name__ == "__main__":
    main()

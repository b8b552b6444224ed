"""The studies behind the notebooks' statistics, at the shipped models' scale: seed spreads, a beta sweep and a
lambda sweep, computed once and written as data with their provenance.

    python benchmarks/studies.py --work DIR [--out galaxy_autoencoders/studies/pretrained_scale.json]
                                 [--seeds 3] [--only seeds,beta,lam] [--profile pretrained]

Each run trains one model the `pretrained` profile's way (`pretraining.train`: 20,000 synthetic galaxies, full
width, 10 epochs), from its own seed (the profile's seed + k), checkpointed every epoch in DIR/RUN, so that the
same command resumes where it stopped, run by run and epoch by epoch. Seed +0 of each objective at the default
beta and lambda is the shipped model itself, which that recipe made. Every model is then scored on the same
galaxies the notebooks use, the quick profile's 205 validation galaxies (rendered with seed 42, which no run
trains on), against their input and their noiseless truth: MSE, MSE vs truth, fine-detail error.

The output holds each run's scores, the ELBO-minus-MMD differences per seed with 95% bootstrap intervals over
the galaxies, the stretch's floor, and the provenance: command, machine, versions, profile, evaluation set.
A run at this scale takes 20-30 minutes on a 2-core CPU and seconds on a GPU: give it a GPU when there is one.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

from galaxy_autoencoders import pretrained, pretraining
from galaxy_autoencoders.config import BETA, LAM, apply_profile, get_profile
from galaxy_autoencoders.data import load_galaxies
from galaxy_autoencoders.dataloaders import galaxy_dls
from galaxy_autoencoders.files import atomic_write
from galaxy_autoencoders.models import load_checkpoint
from galaxy_autoencoders.statistics import bootstrap_difference
from galaxy_autoencoders.truth import noise_floor, render_noisy_copies, render_truth, truth_report

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "galaxy_autoencoders" / "studies" / "pretrained_scale.json"
STUDIES = {  # name: (objective, {vae_learner option: values other than the default})
    "seeds": [("ae", {}), ("elbo", {}), ("mmd", {})],
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
    return list(chosen.values())


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
    """The notebooks' validation galaxies (quick profile), their DataLoaders and their noiseless truth."""
    quick = get_profile("quick")
    data = load_galaxies(quick.dataset, n=quick.n_images, seed=quick.seed)
    dls = galaxy_dls(data, bs=quick.batch_size, seed=quick.seed, device="cpu")
    return data, dls, render_truth(data, dls.valid.rows())


def score(model, dls, truth) -> dict:
    """A model's means and per-galaxy arrays against the inputs and the truth."""
    report = truth_report(model, dls, truth)
    return {
        "mse_vs_input": report["mse_vs_input"],
        "mse_vs_truth": report["mse_vs_truth"],
        "fine_detail_error": report["fine_detail_error"],
        "per_galaxy": {"mse_truth": report["mse_truth"].tolist(), "detail_error": report["detail_error"].tolist()},
    }


def differences(scores: dict, seeds: int) -> dict:
    """ELBO minus MMD per seed (default beta and lambda), with 95% bootstrap intervals over the galaxies."""
    out = {}
    for k in range(seeds):
        elbo, mmd = scores.get(f"elbo_seed{k}"), scores.get(f"mmd_seed{k}")
        if elbo is None or mmd is None:
            continue
        out[f"seed{k}"] = {
            key: bootstrap_difference(elbo["per_galaxy"][key], mmd["per_galaxy"][key])
            for key in ("mse_truth", "detail_error")
        }
    return out


def provenance(args, argv: list[str], profile, n_eval: int) -> dict:
    import fastai
    import torch

    return {
        "command": "python benchmarks/studies.py " + " ".join(argv),
        "machine": pretraining.machine(),
        "python": platform.python_version(),
        "versions": {"torch": torch.__version__, "fastai": fastai.__version__},
        "profile": {**pretraining.recipe_record(profile), "name": profile.name},
        "seeds": args.seeds,
        "evaluation": f"the quick profile's {n_eval} validation galaxies (synthetic, seed 42), with their truth",
        "date": time.strftime("%Y-%m-%d"),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="per-run checkpoints; a re-run resumes from them")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the results (default {OUT.relative_to(ROOT)})")
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
    data, dls, truth = evaluation_set()
    results = {"runs": {}, "defaults": {"beta": BETA, "lam": LAM}}
    for run in runs(only, args.seeds):
        start = time.perf_counter()
        model, source = train_run(run, profile, args.work)
        apply_profile(get_profile("quick"))  # scoring runs the same way whatever was trained before
        results["runs"][run["id"]] = {**run, "source": source, **score(model, dls, truth)}
        print(f"{run['id']}: {source}, {time.perf_counter() - start:.0f} s", flush=True)
    copies = render_noisy_copies(data, dls.valid.rows(), copies=8)
    results["floor_mse_vs_truth"] = noise_floor(copies, truth)["floor"]
    results["elbo_minus_mmd"] = differences(results["runs"], args.seeds)
    results["provenance"] = provenance(args, sys.argv[1:] if argv is None else argv, profile, dls.valid.n)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=1)))
    print(f"wrote {args.out}: {len(results['runs'])} runs")
    return results


if __name__ == "__main__":
    main()

"""The studies behind the notebooks' claims, computed once at the shipped models' scale and shipped as data:
seed spreads of the autoencoder, the ELBO-VAE and the MMD-VAE, a beta sweep and a lambda sweep, each model
scored on the notebooks' 205 synthetic validation galaxies against their noiseless truth, with their provenance
(the study's command, recipe and evaluation set; each run's machine, versions and wall time).

    from galaxy_autoencoders import evidence
    found = evidence.load()
    found.table()                                   # one row per trained model
    found.difference("elbo_seed0", "mmd_seed0", "detail_error")   # per galaxy, with a 95% interval
    found.pictures("elbo_beta4_seed0")              # its reconstructions of the gallery's galaxies

`python benchmarks/studies.py --work DIR` trains and adds the runs still missing (about a minute a run on a GPU,
7 to 30 minutes on a 2-core CPU); deleting the files in `studies/` first remakes them all. The notebooks only read
them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .statistics import bootstrap_difference

RESULTS = Path(__file__).with_name("studies") / "pretrained_scale.json"
PICTURES = RESULTS.with_suffix(".npz")  # uint8 reconstructions of the gallery's galaxies, one array per run


@dataclass(frozen=True)
class Studies:
    """The results of `benchmarks/studies.py`.

    runs: {run id: {"id", "objective", "options" (those that differ from `defaults`), "seed_offset", "source"
    ("shipped" or "trained"), "made" ({"machine", "versions", ...}: where and how it was trained), "mse_vs_input",
    "mse_vs_truth", "fine_detail_error", "per_galaxy": {"mse_truth", "detail_error"} (205 values each), and for a
    VAE "kl_nats", "kl_per_dimension"}}; missing: the runs of the planned study not finished yet;
    floor_mse_vs_truth: the stretch's floor; defaults: {"beta", "lam"}; provenance: what all runs share (command,
    recipe, defaults, evaluation set); the gallery's six galaxies (`gallery.detailed_galaxies` of the validation
    set): their positions, inputs and truth, and each run's reconstructions of them."""

    runs: dict
    missing: list
    floor_mse_vs_truth: float
    defaults: dict
    provenance: dict
    pictures_by_run: dict
    gallery_rows: np.ndarray
    gallery_inputs: np.ndarray  # uint8 (6, 69, 69, 3)
    gallery_truth: np.ndarray  # uint8 (6, 69, 69, 3)

    def table(self):
        """One row per run: objective, beta (ELBO-VAEs), lam (MMD-VAEs), seed, the mean scores, and the KL in
        nats (VAEs only)."""
        import pandas as pd

        columns = ["objective", "beta", "lam", "seed", "MSE vs input", "MSE vs truth", "fine-detail error", "KL (nats)"]
        rows = {}
        for run_id, run in self.runs.items():
            setting = {**self.defaults, **run["options"]}
            rows[run_id] = [
                run["objective"],
                setting["beta"] if run["objective"] == "elbo" else None,
                setting["lam"] if run["objective"] == "mmd" else None,
                run["seed_offset"],
                run["mse_vs_input"],
                run["mse_vs_truth"],
                run["fine_detail_error"],
                run.get("kl_nats"),
            ]
        return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("run")

    def seeds(self, objective: str, **options) -> list[str]:
        """The ids of the finished runs of one setting, seed by seed: seeds("elbo", beta=4.0); seeds("elbo") and
        seeds("elbo", beta=1.0) are the same, the default setting."""
        if unknown := set(options) - set(self.defaults):
            raise TypeError(f"Unknown options {sorted(unknown)}; the studies vary {sorted(self.defaults)}.")
        wanted = {key: value for key, value in options.items() if value != self.defaults[key]}
        found = sorted(
            (run["seed_offset"], run_id) for run_id, run in self.runs.items() if run["objective"] == objective
        )
        return [run_id for _, run_id in found if self.runs[run_id]["options"] == wanted]

    def paired(self, a: str, b: str, options_a: dict | None = None, options_b: dict | None = None) -> list:
        """(seed, run of objective a, run of objective b) for each seed both have finished, at the default
        settings or at those given: paired("elbo", "mmd") -> [(0, "elbo_seed0", "mmd_seed0"), ...];
        paired("elbo", "mmd", options_a={"beta": 0.1}) pairs the beta 0.1 ELBO-VAEs with the default MMD-VAEs."""
        of_a = {self.runs[run_id]["seed_offset"]: run_id for run_id in self.seeds(a, **(options_a or {}))}
        of_b = {self.runs[run_id]["seed_offset"]: run_id for run_id in self.seeds(b, **(options_b or {}))}
        return [(seed, run_id, of_b[seed]) for seed, run_id in of_a.items() if seed in of_b]

    def run(self, run_id: str) -> dict:
        """One finished run's record (see `runs`)."""
        if run_id not in self.runs:
            raise KeyError(
                f"No run {run_id!r} in the studies; finished: {sorted(self.runs)}; still missing: {self.missing}."
            )
        return self.runs[run_id]

    def difference(self, a: str, b: str, key: str) -> dict:
        """Run a minus run b in the per-galaxy `key` ("mse_truth" or "detail_error"): {"mean", "low", "high"}, a
        95% bootstrap interval over the galaxies (for one pair of trained models)."""
        first, second = self.run(a)["per_galaxy"], self.run(b)["per_galaxy"]
        if key not in first:
            raise KeyError(f"No per-galaxy score {key!r}; the studies keep {sorted(first)}.")
        return bootstrap_difference(first[key], second[key])

    def by_seed(self, a: str, b: str, key: str, options_a: dict | None = None, options_b: dict | None = None) -> dict:
        """Objective a minus objective b seed by seed (at the default settings, or at those given, as in `paired`),
        in the per-galaxy `key`: {"seed +0": difference, ...}."""
        pairs = self.paired(a, b, options_a, options_b)
        return {f"seed +{seed}": self.difference(run_a, run_b, key) for seed, run_a, run_b in pairs}

    def pictures(self, run_id: str) -> np.ndarray:
        """The run's reconstructions of the gallery's galaxies: uint8 (6, 69, 69, 3)."""
        if run_id not in self.pictures_by_run:
            raise KeyError(f"No pictures of run {run_id!r}; the studies have {sorted(self.pictures_by_run)}.")
        return self.pictures_by_run[run_id]


def load(results: Path = RESULTS, pictures: Path | None = None) -> Studies:
    """The shipped studies, or those in `results` and the pictures beside it (`pictures`, default: the same name
    with .npz), as `benchmarks/studies.py --out` wrote them."""
    pictures = Path(results).with_suffix(".npz") if pictures is None else pictures
    for path in (results, pictures):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} is missing; make it with `python benchmarks/studies.py --work DIR`.")
    found = json.loads(Path(results).read_text())
    if lacking := sorted({"runs", "missing", "floor_mse_vs_truth", "provenance"} - set(found)):
        raise ValueError(f"{results} lacks {lacking}: it is not (or no longer) what benchmarks/studies.py writes.")
    with np.load(pictures) as arrays:
        by_run = {name: arrays[name] for name in arrays.files if name not in ("gallery_rows", "inputs", "truth")}
        rows, inputs, truth = arrays["gallery_rows"], arrays["inputs"], arrays["truth"]
    return Studies(
        runs=found["runs"],
        missing=found["missing"],
        floor_mse_vs_truth=found["floor_mse_vs_truth"],
        defaults=found["provenance"]["defaults"],
        provenance=found["provenance"],
        pictures_by_run=by_run,
        gallery_rows=rows,
        gallery_inputs=inputs,
        gallery_truth=truth,
    )

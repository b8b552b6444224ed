"""The studies behind the notebooks' claims, computed once at the shipped models' scale and shipped as data:
seed spreads of the autoencoder, the ELBO-VAE and the MMD-VAE, a beta sweep and a lambda sweep, each model
scored on the notebooks' 205 synthetic validation galaxies against their noiseless truth, with the provenance
(command, machine, versions, recipe) of the run that made them.

    from galaxy_autoencoders import evidence
    found = evidence.load()
    found.table()                                   # one row per trained model
    found.difference("elbo_seed0", "mmd_seed0", "detail_error")   # per galaxy, with a 95% interval
    found.pictures("elbo_beta4_seed0")              # its reconstructions of the gallery's galaxies

`python benchmarks/studies.py` remakes the files in `studies/` (minutes on a GPU, hours on a laptop); the
notebooks only read them.
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
    ("shipped" or "trained"), "mse_vs_input", "mse_vs_truth", "fine_detail_error", "per_galaxy": {"mse_truth",
    "detail_error"} (205 values each), and for a VAE "kl_nats", "kl_per_dimension"}}; missing: the runs of the
    planned study not finished yet; floor_mse_vs_truth: the stretch's floor; defaults: {"beta", "lam"};
    provenance: the command, machine, versions and recipe; the gallery's six galaxies
    (`gallery.detailed_galaxies` of the validation set): their positions, inputs and truth, and each run's
    reconstructions of them."""

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

    def paired(self, a: str, b: str) -> list[tuple[int, str, str]]:
        """(seed, run of objective a, run of objective b) for each seed both have finished, at the default
        settings: paired("elbo", "mmd") -> [(0, "elbo_seed0", "mmd_seed0"), ...]."""
        of_b = {self.runs[run_id]["seed_offset"]: run_id for run_id in self.seeds(b)}
        of_a = {self.runs[run_id]["seed_offset"]: run_id for run_id in self.seeds(a)}
        return [(seed, run_id, of_b[seed]) for seed, run_id in of_a.items() if seed in of_b]

    def difference(self, a: str, b: str, key: str) -> dict:
        """Run a minus run b in the per-galaxy `key` ("mse_truth" or "detail_error"): {"mean", "low", "high"}, a
        95% bootstrap interval over the galaxies (for one pair of trained models)."""
        for run_id in (a, b):
            if run_id not in self.runs:
                raise KeyError(f"No run {run_id!r} in the studies; finished: {sorted(self.runs)}.")
        return bootstrap_difference(self.runs[a]["per_galaxy"][key], self.runs[b]["per_galaxy"][key])

    def by_seed(self, a: str, b: str, key: str) -> dict[str, dict]:
        """Objective a minus objective b seed by seed, in the per-galaxy `key`: {"seed +0": difference, ...}."""
        return {f"seed +{seed}": self.difference(run_a, run_b, key) for seed, run_a, run_b in self.paired(a, b)}

    def pictures(self, run_id: str) -> np.ndarray:
        """The run's reconstructions of the gallery's galaxies: uint8 (6, 69, 69, 3)."""
        if run_id not in self.pictures_by_run:
            raise KeyError(f"No pictures of run {run_id!r}; the studies have {sorted(self.pictures_by_run)}.")
        return self.pictures_by_run[run_id]


def load(results: Path = RESULTS, pictures: Path = PICTURES) -> Studies:
    """The shipped studies (or those in `results` and `pictures`, as `benchmarks/studies.py --out` wrote them)."""
    for path in (results, pictures):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} is missing; make it with `python benchmarks/studies.py --work DIR`.")
    found = json.loads(Path(results).read_text())
    with np.load(pictures) as arrays:
        by_run = {name: arrays[name] for name in arrays.files if name not in ("gallery_rows", "inputs", "truth")}
        rows, inputs, truth = arrays["gallery_rows"], arrays["inputs"], arrays["truth"]
    return Studies(
        runs=found["runs"],
        missing=found.get("missing", []),
        floor_mse_vs_truth=found["floor_mse_vs_truth"],
        defaults=found["defaults"],
        provenance=found["provenance"],
        pictures_by_run=by_run,
        gallery_rows=rows,
        gallery_inputs=inputs,
        gallery_truth=truth,
    )

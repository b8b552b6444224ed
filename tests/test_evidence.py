"""The precomputed studies (galaxy_autoencoders.evidence): what ships says what is missing, is consistent with the
shipped models and with the galleries the notebooks draw, and the loader pairs and compares runs correctly."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from galaxy_autoencoders import evidence, pretrained
from galaxy_autoencoders.config import BETA, LAM, get_profile
from galaxy_autoencoders.gallery import detailed_galaxies
from galaxy_autoencoders.pretraining import recipe_record
from galaxy_autoencoders.truth import truth_report

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shipped():
    return evidence.load()


@pytest.fixture(scope="module")
def validation():
    """The notebooks' validation galaxies, their loaders, truth and gallery, as the studies scored them."""
    spec = importlib.util.spec_from_file_location("studies", ROOT / "benchmarks" / "studies.py")
    studies = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(studies)
    return studies, studies.evaluation_set()


def test_every_shipped_run_has_its_scores_pictures_and_provenance(shipped, validation):
    studies, _ = validation
    planned = [run["id"] for run in studies.runs(list(studies.STUDIES), 3)]
    assert shipped.missing == [run_id for run_id in planned if run_id not in shipped.runs]  # the rest, in order
    assert set(shipped.runs) <= set(planned) and set(planned[:6]) <= set(shipped.runs)  # the headline: 3 seeds
    for run_id, run in shipped.runs.items():
        assert len(run["per_galaxy"]["detail_error"]) == len(run["per_galaxy"]["mse_truth"]) == 205
        assert np.mean(run["per_galaxy"]["detail_error"]) == pytest.approx(run["fine_detail_error"])
        assert shipped.pictures(run_id).shape == (6, 69, 69, 3) and shipped.pictures(run_id).dtype == np.uint8
        assert ("kl_nats" in run) == (run["objective"] != "ae")
        assert run["made"]["machine"] and run["made"]["versions"]["torch"]  # where and how it was trained
    assert shipped.gallery_inputs.shape == shipped.gallery_truth.shape == (6, 69, 69, 3)
    made = shipped.provenance
    assert made["command"] == "python benchmarks/studies.py --work WORKDIR"
    assert made["profile"] == {**recipe_record(get_profile("pretrained")), "name": "pretrained"}  # the shipped recipe
    assert made["defaults"] == shipped.defaults == {"beta": BETA, "lam": LAM}
    assert 0 < shipped.floor_mse_vs_truth < 0.01


def test_the_seed_zero_runs_are_the_shipped_models_scored_on_the_notebooks_galaxies(shipped, validation):
    studies, (data, dls, truth, _) = validation
    assert shipped.provenance["evaluation"]["sha256"] == studies.fingerprint(data.images[dls.valid.rows()], truth)
    for name in ("ae", "elbo", "mmd"):
        run = shipped.runs[f"{name}_seed0"]
        assert run["source"] == "shipped"
        report = truth_report(pretrained.load(name), dls, truth)
        assert report["fine_detail_error"] == pytest.approx(run["fine_detail_error"], rel=1e-4)
        assert report["mse_vs_truth"] == pytest.approx(run["mse_vs_truth"], rel=1e-4)
    # the gallery's six galaxies are those the notebooks choose, by the same rule, on the same galaxies
    params = {name: values[dls.valid.rows()] for name, values in data.params.items()}
    assert shipped.gallery_rows.tolist() == detailed_galaxies(params, truth).tolist()
    assert np.array_equal(shipped.gallery_truth, truth[shipped.gallery_rows])


def _studies(runs: dict) -> evidence.Studies:
    empty = np.zeros((6, 69, 69, 3), np.uint8)
    defaults = {"beta": 1.0, "lam": 100.0}
    return evidence.Studies(runs, [], 0.001, defaults, {}, {}, np.arange(6), empty, empty)


def _run(objective, seed, options=None, detail=(1.0, 1.0)):
    return {
        "objective": objective,
        "options": options or {},
        "seed_offset": seed,
        "mse_vs_input": 0.0,
        "mse_vs_truth": 0.0,
        "fine_detail_error": float(np.mean(detail)),
        "per_galaxy": {"mse_truth": [0.0] * len(detail), "detail_error": list(detail)},
    }


def test_runs_are_paired_by_seed_at_the_default_settings_only():
    found = _studies(
        {
            "elbo_seed2": _run("elbo", 2),
            "elbo_seed0": _run("elbo", 0, detail=(0.7, 0.9)),
            "elbo_beta4_seed0": _run("elbo", 0, {"beta": 4.0}),
            "mmd_seed2": _run("mmd", 2),
            "mmd_seed0": _run("mmd", 0, detail=(0.5, 0.5)),
            "mmd_seed1": _run("mmd", 1),
        }
    )
    assert found.seeds("elbo") == found.seeds("elbo", beta=1.0) == ["elbo_seed0", "elbo_seed2"]  # the default
    assert found.seeds("elbo", beta=4.0) == ["elbo_beta4_seed0"] and found.seeds("elbo", beta=0.1) == []
    with pytest.raises(TypeError, match="Unknown options"):
        found.seeds("elbo", gamma=2.0)
    assert found.paired("elbo", "mmd") == [(0, "elbo_seed0", "mmd_seed0"), (2, "elbo_seed2", "mmd_seed2")]
    assert found.paired("elbo", "mmd", options_a={"beta": 4.0}) == [(0, "elbo_beta4_seed0", "mmd_seed0")]
    assert found.paired("mmd", "elbo", options_b={"beta": 4.0}) == [(0, "mmd_seed0", "elbo_beta4_seed0")]
    assert list(found.by_seed("elbo", "mmd", "detail_error", options_a={"beta": 4.0})) == ["seed +0"]
    assert found.difference("elbo_seed0", "mmd_seed0", "detail_error")["mean"] == pytest.approx(0.3)
    with pytest.raises(KeyError, match="No run 'mmd_seed7'"):
        found.difference("elbo_seed0", "mmd_seed7", "detail_error")
    with pytest.raises(KeyError, match="No per-galaxy score 'detail'"):
        found.difference("elbo_seed0", "mmd_seed0", "detail")
    assert found.run("mmd_seed1") is found.runs["mmd_seed1"]
    assert found.by_seed("elbo", "mmd", "detail_error")["seed +0"]["mean"] == pytest.approx(0.3)
    assert list(found.by_seed("elbo", "mmd", "detail_error")) == ["seed +0", "seed +2"]
    table = found.table()
    assert table.loc["elbo_beta4_seed0", "beta"] == 4.0 and table.loc["elbo_seed0", "beta"] == 1.0
    assert table.loc["mmd_seed1", "lam"] == 100.0 and np.isnan(table.loc["mmd_seed1", "beta"])


def test_missing_or_foreign_files_say_what_to_do(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({}))
    with pytest.raises(FileNotFoundError, match="s.npz is missing; make it with `python benchmarks/studies.py"):
        evidence.load(tmp_path / "s.json")  # the pictures beside the results, by default
    np.savez(tmp_path / "s.npz", gallery_rows=np.arange(6))
    with pytest.raises(ValueError, match="lacks .'floor_mse_vs_truth', 'missing', 'provenance', 'runs'."):
        evidence.load(tmp_path / "s.json")

"""Smoke tests of the benchmarks: they run, every path trains, and what they report is consistent.

Timings are never asserted here (CI machines differ and share cores); the benchmarks print ratios for people.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THROUGHPUT = ROOT / "benchmarks" / "throughput.py"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def throughput(tmp_path_factory):
    out = tmp_path_factory.mktemp("throughput")
    done = _run(
        str(THROUGHPUT), "--quick", "--device", "cpu", "--n", "320", "--repeats", "2", "--json", "t.json", cwd=out
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "t.json").read_text()), done.stdout


def test_every_path_trains_with_a_finite_loss_and_a_positive_rate(throughput):
    summary, _ = throughput
    assert list(summary["results"]) == ["package", "plain", "per-item", "datablock"]
    for name, result in summary["results"].items():
        assert math.isfinite(result["final_loss"]) and result["final_loss"] > 0, name
        assert result["images_per_s"] > 0, name
        assert len(result["epoch_seconds"]) == 2, name  # two timed epochs after the warm-up
        assert result["peak_host_mb"] > 0, name
        assert result["peak_device_mb"] is None, name  # CPU: no device memory to report


def test_paths_take_turns_so_a_slow_spell_hits_them_all(throughput):
    summary, _ = throughput
    paths = ["package", "plain", "per-item", "datablock"]
    assert summary["setup"]["schedule"] == [paths, paths[1:] + paths[:1]]
    for name, result in summary["results"].items():
        assert result["images_per_s"] == pytest.approx(256 / min(result["epoch_seconds"])), name  # best epoch


def test_every_round_times_each_path_once_and_the_lead_rotates():
    spec = importlib.util.spec_from_file_location("throughput", THROUGHPUT)
    throughput = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(throughput)
    rounds = throughput.turns(["a", "b", "c"], 6)
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert [r[0] for r in rounds] == ["a", "b", "c", "a", "b", "c"]
    assert rounds[1] == ["b", "c", "a"]


def test_ratios_and_projections_follow_from_the_rates(throughput):
    summary, stdout = throughput
    results, setup = summary["results"], summary["setup"]
    # 320 galaxies, 10% validation: 288 training galaxies, 4 full batches of 64 per epoch.
    assert setup["n_images"] == 320 and setup["n_train_per_epoch"] == 256 and setup["batch_size"] == 64
    for other in ("plain", "per-item", "datablock"):
        expected = results["package"]["images_per_s"] / results[other]["images_per_s"]
        assert summary["ratios"][f"package/{other}"] == pytest.approx(expected)
        assert f"{summary['ratios'][f'package/{other}']:.2f}" in stdout  # the table prints them
    for result in results.values():
        assert result["seconds_for_50_epochs"] == pytest.approx(50 * 256 / result["images_per_s"])
    machine = summary["machine"]
    assert machine["torch"] and machine["fastai"] and machine["device"].startswith("CPU")


def test_unknown_path_or_missing_gpu_is_a_usage_error(tmp_path):
    done = _run(str(THROUGHPUT), "--paths", "package,fast", cwd=tmp_path)
    assert done.returncode == 2 and "unknown path(s) ['fast']" in done.stderr
    done = _run(str(THROUGHPUT), "--repeats", "0", cwd=tmp_path)
    assert done.returncode == 2 and "--repeats 0: give at least 1" in done.stderr
    if not _cuda_available():
        done = _run(str(THROUGHPUT), "--device", "cuda", cwd=tmp_path)
        assert done.returncode == 2 and "no CUDA GPU" in done.stderr


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def test_importing_the_package_loads_no_heavy_library():
    # What keeps `import galaxy_autoencoders` fast (benchmarks/import_time.py measures it): lazy exports.
    heavy = ("torch", "fastai", "matplotlib", "galsim", "ipywidgets", "h5py")
    code = f"import sys, galaxy_autoencoders; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = _run("-c", code, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_lazy_exports_resolve_to_the_named_modules():
    import galaxy_autoencoders as g

    assert g.vae_learner.__module__ == "galaxy_autoencoders.learner"
    assert g.galaxy_dls.__module__ == "galaxy_autoencoders.dataloaders"
    with pytest.raises(AttributeError, match="no attribute 'fit_everything'"):
        g.fit_everything  # noqa: B018

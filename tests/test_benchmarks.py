"""Smoke tests of the benchmarks: they run, every path trains, and what they report is consistent.

Timings are never asserted here (CI machines differ and share cores); the benchmarks print ratios for people.
"""

from __future__ import annotations

import json
import lzma
import math
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from _scripts import load_script

from galaxy_autoencoders import evidence

ROOT = Path(__file__).resolve().parent.parent
THROUGHPUT = ROOT / "benchmarks" / "throughput.py"
PATHS = ["package", "eager", "plain", "per-item", "datablock", "fastai-adam", "captured"]  # default five, optional two


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def throughput(tmp_path_factory):
    out = tmp_path_factory.mktemp("throughput")
    paths = ",".join(PATHS)
    args = ["--quick", "--device", "cpu", "--n", "320", "--repeats", "2", "--paths", paths, "--json", "t.json"]
    done = _run(str(THROUGHPUT), *args, "--profile", "--to-result", "2", cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "t.json").read_text()), done.stdout


def test_every_path_trains_with_a_finite_loss_and_a_positive_rate(throughput):
    summary, _ = throughput
    assert list(summary["results"]) == PATHS
    for name, result in summary["results"].items():
        assert math.isfinite(result["final_loss"]) and result["final_loss"] > 0, name
        assert result["images_per_s"] > 0, name
        assert len(result["epoch_seconds"]) == 2, name  # two timed epochs after the warm-up
        assert result["peak_host_mb"] > 0, name
        assert result["peak_device_mb"] is None, name  # CPU: no device memory to report


def test_paths_take_turns_so_a_slow_spell_hits_them_all(throughput):
    summary, _ = throughput
    assert summary["setup"]["schedule"] == [PATHS, PATHS[1:] + PATHS[:1]]
    for name, result in summary["results"].items():
        per_epoch = summary["setup"]["n_train_per_epoch"]
        assert result["images_per_s"] == pytest.approx(per_epoch / min(result["epoch_seconds"])), name  # best epoch


def test_profile_and_time_to_result_are_reported(throughput):
    summary, stdout = throughput
    # --profile: one epoch of these paths under torch.profiler, the host's costliest operations.
    assert list(summary["profile"]) == ["package", "plain", "fastai-adam", "captured"]  # eager: package's twin on a CPU
    for name, profiled in summary["profile"].items():
        assert profiled["wall_seconds"] > 0 and profiled["device_busy_seconds"] is None, name  # no GPU here
        assert f"Profile of one {name} epoch" in stdout
        assert profiled["launches"] is None, name
        assert f"Python functions of one {name} epoch (cProfile)" in stdout
    assert "aten::convolution_backward" in stdout  # the table lists the operations
    assert "function calls" in stdout and "tottime" in stdout  # and cProfile's table, the Python functions
    # --to-result 2: fit_one_cycle(2) from fresh weights, timed whole, with both final losses.
    assert list(summary["to_result"]) == ["package", "eager", "captured"]
    for name, result in summary["to_result"].items():
        assert result["epochs"] == 2 and result["seconds"] > 0
        assert math.isfinite(result["final_train_loss"]) and math.isfinite(result["final_valid_loss"])
        assert result["final_train_loss"] != result["final_valid_loss"]  # two columns, not one read twice
        assert f"To a result: 2 epochs of the {name} path over 288 galaxies" in stdout
    # On a CPU the package does not compile (CompileModel is CUDA's default), so both are the same run; the
    # captured step trains the same model (tests/test_capture.py checks how closely).
    assert summary["to_result"]["package"]["final_valid_loss"] == summary["to_result"]["eager"]["final_valid_loss"]
    captured = summary["to_result"]["captured"]["final_valid_loss"]
    assert captured == pytest.approx(summary["to_result"]["package"]["final_valid_loss"], rel=0.05)


@pytest.mark.skipif(shutil.which("taskset") is None, reason="the script's last step needs taskset (util-linux)")
def test_the_gpu_script_runs_every_step_in_its_dry_run(tmp_path):
    # benchmarks/gpu_issue28.sh runs once on a lent GPU, with no time to mend it there: its dry run (SMALL=1: the
    # CPU, one epoch, tiny sizes) goes through every step here, the unpacking of the galaxies included.
    galaxies = np.random.default_rng(0).integers(0, 256, (40, 69, 69, 3), dtype=np.uint8)
    with lzma.open(tmp_path / "galaxies.npy.xz", "wb") as packed:
        np.save(packed, galaxies)
    out, work = tmp_path / "out", tmp_path / "work"
    env = {"SMALL": "1", "N": "200", "OUT": str(out), "WORK": str(work), "GALAXIES": str(tmp_path / "galaxies.npy.xz")}
    env = {**os.environ, **env, "PYTHON": sys.executable}
    script = ROOT / "benchmarks" / "gpu_issue28.sh"
    done = subprocess.run(["bash", str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    log = (out / "train.log").read_text()
    for step in ("captured", "eager", "throughput.py", "captured_2cpu"):
        assert f"== {step}: exit status 0" in log, log[-3000:]
    assert "--capture" in log and "--no-compile" in log and "taskset -c" in log
    # Each run's line: the whole process's time, then the fit's and what the captured step did, from its output.
    ran = r"== {}: exit status 0, [\d.]+ s for the whole process; Trained the mmd model for 1 epoch in [\d.]+ s"
    for name in ("captured", "captured_2cpu"):
        assert re.search(ran.format(name) + r"; the captured step ran eagerly \(a CUDA graph needs a GPU\)\.", log)
    assert re.search(ran.format("eager") + r"\.\n", log)
    written = {"gpu.txt", "train.log", "captured.csv", "eager.csv", "captured_2cpu.csv", "throughput.json"}
    assert {p.name for p in out.iterdir()} == written | {"throughput.log"}  # at most 8 files come back
    assert "captured vs eager, final valid loss" in done.stdout
    assert set(json.loads((out / "throughput.json").read_text())["results"]) == {"package", "captured"}  # SMALL's
    # 200 stamps from 40 galaxies: 4 rotations by 90 degrees, then the first one mirrored.
    stamps = np.load(work / "galaxies.npy")
    assert stamps.shape == (200, 69, 69, 3) and stamps.dtype == np.uint8
    for k in range(4):
        assert (stamps[40 * k : 40 * (k + 1)] == np.rot90(galaxies, k, axes=(1, 2))).all(), k
    assert (stamps[160:] == galaxies[:, :, ::-1]).all()


def test_host_waits_are_counted_from_torchs_sync_warnings_in_one_epoch(monkeypatch):
    # On CUDA, --profile counts how often the host waits for the GPU with torch's sync debug mode; here a stand-in
    # epoch gives the warnings that mode would.
    import torch

    throughput = load_script(THROUGHPUT)
    modes = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)

    class Run:
        def epoch(self):
            assert modes == ["warn"]
            for _ in range(3):
                warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)
            warnings.warn("an unrelated warning", UserWarning, stacklevel=1)

    assert throughput._host_reads(Run()) == 3 and modes == ["warn", "default"]


def test_a_path_that_fails_costs_only_its_own_figures(monkeypatch, tmp_path, capsys):
    # A first run on a lent GPU cannot be mended there: a failing path (its warm-up epoch, its profile) is reported
    # and left out, and what the others measured is printed and written all the same.
    import torch

    throughput = load_script(THROUGHPUT)
    package, profile = throughput._package, throughput._profile

    def fails_captured(*args, capture=False, **kwargs):
        run = package(*args, capture=capture, **kwargs)
        if capture:  # its warm-up epoch fails as a failed recording does: the capture's end over what broke it

            def epoch():
                error = RuntimeError("CUDA error: operation failed due to a previous error during capture")
                error.__context__ = RuntimeError("CUDA error: operation not permitted\nCUDA kernel errors might")
                raise error

            run.epoch = epoch
        return run

    def fails_for_plain(run, name, device):
        if name == "plain":
            raise RuntimeError("CUPTI failed")
        return profile(run, name, device)

    monkeypatch.setattr(throughput, "_package", fails_captured)
    monkeypatch.setattr(throughput, "_profile", fails_for_plain)
    threads = torch.get_num_threads()
    try:
        args = ["--quick", "--device", "cpu", "--n", "160", "--repeats", "1", "--paths", "package,captured,plain"]
        summary = throughput.main([*args, "--profile", "--json", str(tmp_path / "t.json")])
    finally:
        torch.set_num_threads(threads)
    assert list(summary["results"]) == ["package", "plain"] and set(summary["ratios"]) == {"package/plain"}
    assert summary["failed"] == {
        "captured": "RuntimeError: CUDA error: operation failed due to a previous error during capture "
        "(from RuntimeError: CUDA error: operation not permitted)",
        "profile of plain": "RuntimeError: CUPTI failed",
    }
    assert list(summary["profile"]) == ["package"]
    assert json.loads((tmp_path / "t.json").read_text()) == json.loads(json.dumps(summary))  # all of it on disk
    out, err = capsys.readouterr()
    assert "captured: failed (RuntimeError); the rest goes on" in out and "Failed, left out above" in out
    assert "Traceback" in err and "CUDA kernel errors might" in err  # the whole of it


def test_every_round_times_each_path_once_and_the_lead_rotates():
    throughput = load_script(THROUGHPUT)
    rounds = throughput.turns(["a", "b", "c"], 6)
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert [r[0] for r in rounds] == ["a", "b", "c", "a", "b", "c"]
    assert rounds[1] == ["b", "c", "a"]


def test_ratios_and_projections_follow_from_the_rates(throughput):
    summary, stdout = throughput
    results, setup = summary["results"], summary["setup"]
    # 320 galaxies, 10% validation: 288 training galaxies, 9 full batches of the quick profile's 32 per epoch.
    assert setup["n_images"] == 320 and setup["n_train_per_epoch"] == 288 and setup["batch_size"] == 32
    for other in PATHS[1:]:
        expected = results["package"]["images_per_s"] / results[other]["images_per_s"]
        assert summary["ratios"][f"package/{other}"] == pytest.approx(expected)
        assert f"{summary['ratios'][f'package/{other}']:.2f}" in stdout  # the table prints them
    for result in results.values():
        assert result["seconds_for_50_epochs"] == pytest.approx(50 * 288 / result["images_per_s"])
    machine = summary["machine"]
    assert machine["torch"] and machine["fastai"] and machine["device"].startswith("CPU")


def test_unknown_path_or_missing_gpu_is_a_usage_error(tmp_path):
    done = _run(str(THROUGHPUT), "--paths", "package,fast", cwd=tmp_path)
    assert done.returncode == 2 and "unknown path(s) ['fast']" in done.stderr
    done = _run(str(THROUGHPUT), "--repeats", "0", cwd=tmp_path)
    assert done.returncode == 2 and "--repeats 0: give at least 1" in done.stderr
    done = _run(str(THROUGHPUT), "--to-result", "-1", cwd=tmp_path)
    assert done.returncode == 2 and "--to-result -1: give a number of epochs" in done.stderr
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


@pytest.mark.parametrize("command", ["galaxy-ae --help", "galaxy-ae data info", "galaxy-ae data synthetic"])
def test_the_command_line_answers_without_fastai_or_the_training_code(command):
    # What keeps these commands quick (benchmarks/import_time.py measures it): the defaults --help shows live in
    # config.py, and the data commands need neither fastai nor training.
    statement = load_script(ROOT / "benchmarks" / "import_time.py").CLI_STATEMENTS[command]
    heavy = ("fastai", "galaxy_autoencoders.training")
    code = f"{statement}; import sys; print(sorted(m for m in sys.modules if m.startswith({heavy})))"
    done = _run("-c", code, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_lazy_exports_resolve_to_the_named_modules():
    import galaxy_autoencoders as g

    assert g.vae_learner.__module__ == "galaxy_autoencoders.training.learner"
    assert g.galaxy_dls.__module__ == "galaxy_autoencoders.dataloaders"
    with pytest.raises(AttributeError, match="no attribute 'fit_everything'"):
        g.fit_everything  # noqa: B018


MUTATION_TESTING = ROOT / "benchmarks" / "mutation_testing.py"


def test_mutation_testing_reads_mutmuts_statuses_into_four_kinds(monkeypatch):
    mt = load_script(MUTATION_TESTING)
    lines = [
        "    galaxy_autoencoders.losses.xǁPerceptualLossǁ__init____mutmut_7: survived",
        "    galaxy_autoencoders.losses.x_mmd__mutmut_1: killed",
        "    galaxy_autoencoders.losses.x_mmd__mutmut_2: timeout",
        "    galaxy_autoencoders.latent.x_slerp__mutmut_3: check was interrupted by user",
        "    galaxy_autoencoders.latent.x_slerp__mutmut_4: skipped",
        "    galaxy_autoencoders.training.objective.xǁObjectiveǁ__call____mutmut_5: no tests",
    ]
    done = subprocess.CompletedProcess([], 0, stdout="\n".join(lines) + "\n", stderr="")
    monkeypatch.setattr(mt.subprocess, "run", lambda *a, **k: done)
    kinds = mt.statuses()
    assert kinds["galaxy_autoencoders.losses.xǁPerceptualLossǁ__init____mutmut_7"] == "missed"
    assert [kinds[n.split(": ")[0].strip()] for n in lines[1:]] == [
        "caught",
        "caught",
        "not checked",
        "skipped",
        "missed",
    ]
    counts = mt.results(kinds)
    assert counts["losses"] == {"caught": 2, "missed": 1} and counts["objective"] == {"missed": 1}


def test_mutation_testing_estimates_the_unchecked_mutants_from_a_random_sample(capsys):
    mt = load_script(MUTATION_TESTING)
    assert mt.wilson(90, 100) == pytest.approx((0.8256, 0.9448), abs=1e-4)  # the 95% Wilson interval
    by_name = {f"galaxy_autoencoders.losses.x_mmd__mutmut_{i}": "caught" for i in range(9)}
    by_name["galaxy_autoencoders.losses.x_mmd__mutmut_9"] = "missed"
    population = [f"galaxy_autoencoders.models.x_build_model__mutmut_{i}" for i in range(100)]
    by_name |= dict.fromkeys(population, "not checked")
    by_name |= {population[0]: "caught", population[1]: "caught", population[2]: "caught", population[3]: "missed"}
    mt.estimate(by_name, {"seed": 0, "population": population, "sample": population[:5]})  # one not checked yet
    assert "4 of 5 checked, 3 caught (75.0%).\nThe estimate waits for the whole sample" in capsys.readouterr().out
    mt.estimate(by_name, {"seed": 0, "population": population, "sample": population[:4]})
    out = capsys.readouterr().out
    assert "4 of 4 checked, 3 caught (75.0%)" in out
    low, high = mt.wilson(3, 4)
    rates = [(9 + 100 * p) / 110 for p in (0.75, low, high)]  # 9 of the 10 checked outside the draw are caught
    assert f"{rates[0]:.1%} (95% interval {rates[1]:.1%} to {rates[2]:.1%})" in out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the threads from /proc")
def test_distributed_exit_reports_gloo_threads_and_both_ways_of_exiting(tmp_path):
    """The benchmark behind training/distributed.py's exit_process runs and reports what it measures."""
    done = _run(str(ROOT / "benchmarks" / "distributed_exit.py"), "--runs", "1", "--hogs", "0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    # destroy_process_group stops gloo's threads when no DDP model held the group
    assert "without a DDP model: gloo threads after destroy_process_group: none" in lines, lines
    assert any(line.startswith("with a DDP model: gloo threads after destroy_process_group:") for line in lines)
    assert any(line.startswith("exit by teardown: ") for line in lines), lines
    assert any(line.startswith("exit by os_exit : 0 of 1 launches failed") for line in lines), lines


def _stop_after(train_run, n: int):
    """train_run that raises KeyboardInterrupt (a Ctrl-C) when asked for run n + 1."""
    calls = []

    def stopping(*args, **kwargs):
        calls.append(1)
        if len(calls) > n:
            raise KeyboardInterrupt
        return train_run(*args, **kwargs)

    return stopping


def test_studies_train_score_and_resume_each_run_writing_results_with_provenance(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GALAXY_AE_DATA", str(tmp_path / "data"))
    studies = load_script(ROOT / "benchmarks" / "studies.py")
    work, out = ["--work", str(tmp_path / "work")], ["--out", str(tmp_path / "out.json")]
    tiny = ["--n", "64", "--epochs", "1", "--widths", "4,8", "--seeds", "1"]
    results = studies.main(work + out + tiny + ["--only", "seeds"])
    assert set(results["runs"]) == {"ae_seed0", "elbo_seed0", "mmd_seed0"} and results["missing"] == []
    assert all(run["source"] == "trained" for run in results["runs"].values())  # not the shipped models: smaller
    assert len(results["runs"]["mmd_seed0"]["per_galaxy"]["detail_error"]) == 205  # the notebooks' galaxies
    assert 0 < results["floor_mse_vs_truth"] < 0.01
    made = results["provenance"]
    assert made["profile"]["n"] == 64 and "--widths 4,8" in made["command"] and "--work WORKDIR" in made["command"]
    assert str(tmp_path) not in made["command"] and "--out OUT" in made["command"]  # no machine's paths ship
    assert len(made["evaluation"]["sha256"]) == 64 and made["defaults"] == {"beta": 1.0, "lam": 100.0}
    for run in results["runs"].values():  # each run says where and how it was trained
        assert run["made"]["machine"] and run["made"]["wall_s"] >= 0 and run["made"]["versions"]["torch"]
    found = evidence.load(tmp_path / "out.json")  # as the notebooks read it, the pictures beside it
    assert found.runs.keys() == results["runs"].keys()
    assert found.paired("elbo", "mmd") == [(0, "elbo_seed0", "mmd_seed0")]
    d = found.difference("elbo_seed0", "mmd_seed0", "mse_truth")
    assert d["low"] <= d["mean"] <= d["high"]
    assert found.pictures("ae_seed0").shape == (6, 69, 69, 3) and "kl_nats" not in found.runs["ae_seed0"]
    assert found.runs["elbo_seed0"]["kl_nats"] > 0

    # Again, with one more study: the runs already in --out are kept, not trained or scored again.
    capsys.readouterr()
    more = studies.main(work + out + tiny + ["--only", "seeds,beta"])
    printed = capsys.readouterr().out
    assert printed.count("already in out.json") == 3 and printed.count(": trained") == 2
    assert set(more["runs"]) == set(results["runs"]) | {"elbo_beta0.1_seed0", "elbo_beta4_seed0"}
    assert more["runs"]["elbo_seed0"] == json.loads(json.dumps(results["runs"]["elbo_seed0"]))
    kept = evidence.load(tmp_path / "out.json")
    assert np.array_equal(kept.pictures("ae_seed0"), found.pictures("ae_seed0"))  # the kept runs' pictures too
    # A smaller re-run forgets nothing: what was planned before stays planned (and so listed if missing).
    smaller = studies.main(work + out + tiny + ["--only", "lam"])
    assert smaller["planned"][:5] == list(more["planned"]) and len(smaller["runs"]) == 7 and smaller["missing"] == []
    with pytest.raises(SystemExit, match="another profile"):  # a bigger network is another study: no mixing
        studies.main(work + out + tiny[:4] + ["--widths", "8,16", "--seeds", "1", "--only", "seeds"])
    with pytest.raises(SystemExit, match="another evaluation"):  # other galaxies: per-galaxy scores can't pair
        changed = json.loads((tmp_path / "out.json").read_text())
        changed["provenance"]["evaluation"]["sha256"] = "0" * 64
        (tmp_path / "other.json").write_text(json.dumps(changed))
        (tmp_path / "other.npz").write_bytes((tmp_path / "out.npz").read_bytes())
        studies.main(work + ["--out", str(tmp_path / "other.json")] + tiny + ["--only", "seeds"])
    (tmp_path / "other.json").write_text((tmp_path / "out.json").read_text())
    (tmp_path / "other.npz").unlink()
    with pytest.raises(SystemExit, match="no pictures file"):  # refused, not silently retrained
        studies.main(work + ["--out", str(tmp_path / "other.json")] + tiny + ["--only", "seeds"])
    for bad, said in [(["--out", str(tmp_path / "x.npz")], "give a .json"), (["--seeds", "0"], "at least 1")]:
        with pytest.raises(SystemExit):
            studies.main(work + tiny + bad)
        assert said in capsys.readouterr().err

    # A study stopped part-way has written every run it finished, and says which are missing.
    monkeypatch.setattr(studies, "train_run", _stop_after(studies.train_run, 1))
    with pytest.raises(KeyboardInterrupt):
        studies.main(work + ["--out", str(tmp_path / "part.json")] + tiny)
    part = evidence.load(tmp_path / "part.json", tmp_path / "part.npz")
    assert list(part.runs) == ["elbo_seed0"] and part.missing[:2] == ["mmd_seed0", "ae_seed0"]
    assert part.pictures("elbo_seed0").shape == (6, 69, 69, 3)

    # the headline's seeds first, then a round of every other run per seed: a study stopped part-way is useful
    assert [r["id"] for r in studies.runs(["seeds", "beta"], 2)] == [
        "elbo_seed0",
        "mmd_seed0",
        "elbo_seed1",
        "mmd_seed1",
        "ae_seed0",
        "elbo_beta0.1_seed0",
        "elbo_beta4_seed0",
        "ae_seed1",
        "elbo_beta0.1_seed1",
        "elbo_beta4_seed1",
    ]

"""`galaxy-ae` from a shell: data subcommands, exit codes, one-line errors."""

import importlib.util
import os
import subprocess
import sys
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from galaxy_autoencoders.cli import main
from galaxy_autoencoders.config import get_profile
from galaxy_autoencoders.metrics import active_units_kl

pytest.importorskip("galsim")


def _run(*args, cwd=None):
    """Run the installed console entry point in a fresh process, as a user would."""
    cmd = [sys.executable, "-m", "galaxy_autoencoders.cli", *args]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_synthetic_then_info_and_same_seed_same_bytes(tmp_path):
    first = _run("data", "synthetic", "--n", "512", "--seed", "0", "--out", str(tmp_path / "x.h5"))
    assert first.returncode == 0, first.stderr
    assert "512 synthetic galaxies" in first.stdout
    info = _run("data", "info", str(tmp_path / "x.h5"))
    assert info.returncode == 0, info.stderr
    assert "512" in info.stdout and "69, 69, 3)" in info.stdout and "Smooth, Cigar shaped" in info.stdout
    # The same seed renders byte-identical images, whatever else differs (here: one worker instead of two).
    assert (
        main(["data", "synthetic", "--n", "512", "--seed", "0", "--workers", "1", "--out", str(tmp_path / "y.h5")]) == 0
    )
    with h5py.File(tmp_path / "x.h5") as a, h5py.File(tmp_path / "y.h5") as b:
        assert a["images"][:].tobytes() == b["images"][:].tobytes()
        assert np.array_equal(a["ans"][:], b["ans"][:])


def test_bad_arguments_exit_2_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "synthetic", "--n", "0", "--out", "x.h5"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: galaxy-ae data synthetic" in err and "positive whole number" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["fly"])
    assert exit_info.value.code == 2


def test_failures_exit_1_with_a_one_line_error_and_debug_shows_traceback(tmp_path):
    missing = tmp_path / "nope.h5"
    result = _run("data", "info", str(missing))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("galaxy-ae: error:") and "nope.h5" in lines[0]
    assert "Traceback" not in result.stderr
    debug = _run("--debug", "data", "info", str(missing))
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_unreachable_download_says_what_to_do(tmp_path, monkeypatch):
    from galaxy_autoencoders.data import downloader as downloading

    spec = downloading.DATASETS["galaxy10_sdss"]
    closed_port_url = "http://127.0.0.1:9/Galaxy10.h5"  # the discard port: nothing listens there
    monkeypatch.setitem(downloading.DATASETS, "galaxy10_sdss", replace(spec, url=closed_port_url))
    assert main(["data", "galaxy10-sdss", "--data-dir", str(tmp_path)]) == 1
    assert not (tmp_path / "Galaxy10.h5").exists()


def test_train_writes_a_loadable_model_history_and_figures(tmp_path, monkeypatch):
    from galaxy_autoencoders.models import load_checkpoint

    monkeypatch.setenv("GALAXY_AE_DATA", str(tmp_path / "data"))
    out = tmp_path / "run"
    assert main(["train", "--quick", "--n", "96", "--epochs", "2", "--objective", "elbo", "--out", str(out)]) == 0
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0] == "epoch,train_loss,valid_loss,recon,kl,mmd,time" and len(rows) == 3
    assert (out / "loss.png").stat().st_size > 0 and (out / "reconstructions.png").stat().st_size > 0
    model = load_checkpoint(out / "model")
    assert model.config.latent_size == 20 and model.config.widths == get_profile("quick").widths


def test_demo_writes_its_figures_gif_and_metrics(tmp_path, monkeypatch):
    import json

    from PIL import Image

    monkeypatch.setenv("GALAXY_AE_DATA", str(tmp_path / "data"))
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--n", "128", "--epochs", "1", "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    for name in ("elbo", "mmd"):
        r = report[name]
        assert set(r) >= {"mse", "mean_image_mse", "mse_ratio", "colour_rho", "peak_ratio", "sharpness"}
        assert r["active_units_kl"] == active_units_kl(torch.tensor(r["kl_per_dim"])) and len(r["kl_per_dim"]) == 20
        assert set(r["best_correlation"]) >= {"arm_pitch_deg", "disk_q", "cos2_position_angle_deg"}
    with Image.open(out / "latent_walk.gif") as gif:
        assert gif.n_frames == 48
    assert (out / "latent_walk.gif").stat().st_size < 2_000_000
    for name in ("comparison.png", "traversal.png", "models/elbo.pt", "models/mmd.json"):
        assert (out / name).stat().st_size > 0


def test_train_flags_reach_the_model_and_its_record(tmp_path, monkeypatch):
    from galaxy_autoencoders.models import checkpoint_info

    monkeypatch.setenv("GALAXY_AE_DATA", str(tmp_path / "data"))
    out = tmp_path / "run"
    flags = ["--latent", "6", "--widths", "8,16,32,64", "--bs", "16", "--lr", "1e-3", "--seed", "3"]
    flags += ["--beta", "0.5", "--kl-warmup", "0.2", "--device", "cpu", "--objective", "elbo"]
    assert main(["train", "--quick", "--n", "96", "--epochs", "2", *flags, "--out", str(out)]) == 0
    info = checkpoint_info(out / "model")
    assert info["config"]["latent_size"] == 6 and info["config"]["widths"] == [8, 16, 32, 64]
    extra = info["extra"]
    assert (extra["objective"], extra["beta"], extra["kl_warmup"], extra["lr"]) == ("elbo", 0.5, 0.2, 1e-3)
    # --resume goes on from the saved weights: its first epoch starts where the first run ended.
    again = tmp_path / "again"
    assert (
        main(["train", "--quick", "--n", "96", "--epochs", "1", "--resume", str(out / "model"), "--out", str(again)])
        == 0
    )
    first, resumed = checkpoint_info(out / "model")["extra"], checkpoint_info(again / "model")["extra"]
    assert resumed["objective"] == "elbo" and resumed["resumed_from"] == str(out / "model")
    fresh_first_epoch = float((out / "history.csv").read_text().splitlines()[1].split(",")[2])
    assert resumed["metrics"]["valid_loss"] < fresh_first_epoch
    assert first["metrics"]["valid_loss"] > 0


def test_train_capture_and_no_compile_reach_the_learner(tmp_path, monkeypatch, capsys):
    from galaxy_autoencoders.training import learner, speed
    from galaxy_autoencoders.training.capture import CapturedStep

    made, compile_given = [], []

    class Counted(CapturedStep):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    def spy(learn, compile=None, **kwargs):
        compile_given.append(compile)
        return speed.speed_up(learn, compile=compile, **kwargs)

    monkeypatch.setattr(speed, "CapturedStep", Counted)
    monkeypatch.setattr(learner, "speed_up", spy)
    monkeypatch.setenv("GALAXY_AE_DATA", str(tmp_path / "data"))
    small = ["--quick", "--n", "96", "--epochs", "1", "--bs", "16", "--widths", "8,16,32,64", "--device", "cpu"]
    assert main(["train", *small, "--out", str(tmp_path / "plain")]) == 0
    assert made == [] and compile_given == [None]  # off unless asked for; compiling left to the device's default
    assert "Trained the mmd model for 1 epoch in" in capsys.readouterr().out
    assert main(["train", *small, "--capture", "--no-compile", "--out", str(tmp_path / "captured")]) == 0
    # 96 galaxies: 86 to train on, 5 full batches of 16, each stepped by the captured step (eagerly on a CPU).
    assert len(made) == 1 and made[0].batches == 5 and compile_given[-1] is False
    assert "the captured step ran eagerly (a CUDA graph needs a GPU)" in capsys.readouterr().out
    assert (tmp_path / "captured" / "model.pt").stat().st_size > 0


def test_resume_refuses_other_sizes_or_objective(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GALAXY_AE_DATA", str(tmp_path / "data"))
    out = tmp_path / "run"
    small = ["--quick", "--n", "96", "--epochs", "1", "--widths", "8,16,32,64", "--latent", "4"]
    assert main(["train", *small, "--objective", "ae", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", *small, "--resume", str(out / "model"), "--latent", "5", "--out", str(tmp_path / "b")]) == 1
    assert "--latent 5 differs from --resume" in capsys.readouterr().err
    assert (
        main(["train", *small[:-2], "--resume", str(out / "model"), "--objective", "mmd", "--out", str(tmp_path / "b")])
        == 1
    )
    assert "was trained as 'ae'; give --objective ae" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_train_help_shows_every_flag_with_its_default():
    done = _run("train", "--help")
    text = " ".join(done.stdout.split())
    for flag in ("--latent", "--beta", "--lam", "--kernel", "--lr", "--bs", "--widths", "--seed", "--device"):
        assert flag in text
    defaults = ("(default 20)", "(default 100 for mmd", "(default 1 for elbo", "(default imq)", "(default 42)")
    for default in (*defaults, "32 quick, 128 full"):
        assert default in text, default
    assert "--kl-warmup" in text and "--resume CHECKPOINT" in text and "--nproc N" in text and "--capture" in text
    assert "--no-compile" in text


def test_train_on_two_processes_with_nproc(tmp_path):
    pytest.importorskip("accelerate")
    from galaxy_autoencoders.data import write_galaxy10
    from galaxy_autoencoders.models import checkpoint_info

    rng = np.random.default_rng(0)
    write_galaxy10(tmp_path / "g.h5", rng.integers(0, 256, (128, 69, 69, 3), dtype=np.uint8), rng.integers(0, 10, 128))
    cmd = [sys.executable, "-m", "galaxy_autoencoders.cli", "train", "--nproc", "2"]
    cmd += ["--data", str(tmp_path / "g.h5"), "--quick", "--n", "128", "--epochs", "1"]
    cmd += ["--widths", "8,16,32,64", "--bs", "16", "--objective", "ae", "--out", str(tmp_path / "run")]
    # CPU processes on gloo, also on a machine with GPUs (one GPU would be too few for two processes)
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert done.stdout.count("Saved model.pt") == 1, done.stdout  # rank 0 writes; rank 1 only trains
    assert checkpoint_info(tmp_path / "run" / "model")["config"]["widths"] == [8, 16, 32, 64]
    assert len((tmp_path / "run" / "history.csv").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    "argv, named",
    [
        (["encode", "--model", "no-such-model", "--data", "no-such-folder", "--out", "{tmp}/latents.xlsx"], "'.xlsx'"),
        (["encode", "--model", "no-such-model", "--data", "no-such-folder", "--out", "{tmp}/latents"], "no extension"),
        (["encode", "--model", "no-such-model", "--data", "no-such-folder", "--out", "{tmp}/a.parquet"], "pyarrow"),
        (["data", "synthetic", "--n", "8", "--out", "{tmp}/galaxies.txt"], "'.txt'"),
        (["train", "--data", "no-such-file.h5", "--out", "{tmp}/model.pt"], "'.pt'"),
        (["train", "--data", "no-such-file.h5", "--out", "{tmp}/a_file"], "is a file, not a folder"),
        (["demo", "--data", "no-such-file.h5", "--out", "{tmp}/results.csv"], "'.csv'"),
        (["pretrain", "mmd", "--work", "{tmp}/work.json"], "'.json'"),
        (["data", "galaxy10-sdss", "--data-dir", "{tmp}/a_file"], "is a file, not a folder"),
    ],
)
def test_an_output_name_the_command_cannot_honour_is_refused_before_any_work(argv, named, tmp_path, capsys):
    if named == "pyarrow" and importlib.util.find_spec("pyarrow") is not None:
        pytest.skip("pyarrow is installed: Parquet can be written")
    (tmp_path / "a_file").write_text("a file the user keeps")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    # the error is about the name (not the missing model or data, which come later), and names the way out
    assert named in err and "no-such" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written
    assert (tmp_path / "a_file").read_text() == "a file the user keeps"


def test_the_writers_refuse_what_they_cannot_write(tmp_path):
    import matplotlib.pyplot as plt
    import pandas as pd

    from galaxy_autoencoders.catalogue import save_catalogue
    from galaxy_autoencoders.plots import save_figure, save_gif

    with pytest.raises(ValueError, match=r"'\.xlsx'; the catalogue can be written as \.csv, \.parquet"):
        save_catalogue(pd.DataFrame({"id": [1]}), tmp_path / "latents.xlsx")
    fig = plt.figure()
    with pytest.raises(ValueError, match=r"'\.bmp'; the figure can be written as \.png"):
        save_figure(fig, tmp_path / "figure.bmp")
    plt.close(fig)
    with pytest.raises(ValueError, match=r"'\.png'; the animation can be written as \.gif"):
        save_gif(np.zeros((2, 8, 8, 3), np.uint8), tmp_path / "walk.png")
    assert list(tmp_path.iterdir()) == []
    assert save_catalogue(pd.DataFrame({"id": [1]}), tmp_path / "latents.CSV").read_text() == "id\n1\n"

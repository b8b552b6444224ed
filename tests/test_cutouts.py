"""Your own galaxies (issue: own cutouts): folders of PNG/JPEG, .npy/.npz, HDF5 without labels; the latent
catalogue of `galaxy-ae encode`; clear errors for bad files; plain progress lines in a log."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from galaxy_autoencoders.catalogue import encode_catalogue, find_row, nearest_neighbours, outliers, save_catalogue
from galaxy_autoencoders.cli import main
from galaxy_autoencoders.data import GalaxyDataError, load_galaxies, write_galaxy10
from galaxy_autoencoders.data.cutouts import to_stamps
from galaxy_autoencoders.models import ModelConfig, build_model

RNG = np.random.default_rng(0)


def _folder(tmp_path):
    folder = tmp_path / "cutouts"
    folder.mkdir()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(RNG.integers(0, 256, (256, 256), dtype=np.uint8)).save(folder / "b_grey.jpg")
    Image.fromarray(RNG.integers(0, 256, (69, 69, 4), dtype=np.uint8)).save(folder / "c_rgba.png")
    return folder


def test_a_folder_of_mixed_cutouts_loads_as_stamps_and_says_what_it_changed(tmp_path, capsys):
    galaxies = load_galaxies(_folder(tmp_path))
    assert galaxies.images.shape == (3, 69, 69, 3) and galaxies.images.dtype == np.uint8
    assert galaxies.ids == ("a.png", "b_grey.jpg", "c_rgba.png") and not galaxies.labelled
    assert "unlabelled" in repr(galaxies)
    out = capsys.readouterr().out
    assert "grey (one band) images copied into the three colour channels" in out
    assert "RGBA images: the alpha channel dropped" in out
    assert "2 different sizes, each resized to 69x69 with antialiasing" in out
    grey = galaxies.images[1]
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])


def test_resizing_is_antialiased_and_keeps_the_brightness():
    # A one-pixel checkerboard averages to mid-grey; sampling every other pixel would give black or white.
    board = ((np.indices((138, 138)).sum(0) % 2) * 255).astype(np.uint8)
    stamp = to_stamps(board[None], "board")[0]
    assert abs(stamp.mean() - 127.5) < 3 and stamp.std() < 20
    disk = np.zeros((256, 256, 3), np.uint8)
    yy, xx = np.indices((256, 256))
    disk[(yy - 128) ** 2 + (xx - 128) ** 2 < 40**2] = 200
    small = to_stamps(disk[None], "disk")[0].astype(float)
    assert small.mean() == pytest.approx(disk.mean(), rel=0.05)  # the same light, spread on fewer pixels
    assert small[34, 34, 0] > 150 and small[0, 0, 0] == 0  # centred where it was


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda f: (f / "notes.txt").write_text("hello"), "notes.txt is not a PNG or JPEG cutout"),
        (lambda f: (f / "d.jpg").write_bytes((f / "a.png").read_bytes()[:200]), "d.jpg could not be read as an image"),
    ],
    ids=["stray-file", "corrupt-image"],
)
def test_bad_files_in_a_folder_are_refused_by_name(tmp_path, make, match):
    folder = _folder(tmp_path)
    make(folder)
    with pytest.raises(GalaxyDataError, match=match):
        load_galaxies(folder)


def test_an_empty_folder_is_refused_by_name(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GalaxyDataError, match="empty holds no images"):
        load_galaxies(tmp_path / "empty")


def test_arrays_load_channels_first_floats_and_npz(tmp_path, capsys):
    np.save(tmp_path / "x.npy", RNG.random((4, 3, 32, 32)).astype(np.float32))
    galaxies = load_galaxies(tmp_path / "x.npy")
    assert galaxies.images.shape == (4, 69, 69, 3) and galaxies.ids == ("0", "1", "2", "3")
    out = capsys.readouterr().out
    assert "channels-first" in out and "float images in [0, 1] scaled" in out
    np.savez(tmp_path / "y.npz", images=RNG.integers(0, 256, (2, 69, 69, 3), dtype=np.uint8), other=np.zeros(2))
    assert load_galaxies(tmp_path / "y.npz").images.shape == (2, 69, 69, 3)
    np.save(tmp_path / "bad.npy", RNG.random((2, 69, 69, 3)) * 1000)
    with pytest.raises(GalaxyDataError, match="uint8 .0..255. or float in .0, 1."):
        load_galaxies(tmp_path / "bad.npy")


def test_hdf5_without_labels_is_unlabelled_and_data_info_says_so(tmp_path, capsys):
    with h5py.File(tmp_path / "own.h5", "w") as f:
        f["images"] = RNG.integers(0, 256, (5, 69, 69, 3), dtype=np.uint8)
    galaxies = load_galaxies(tmp_path / "own.h5")
    assert len(galaxies) == 5 and not galaxies.labelled and set(galaxies.labels) == {0}
    assert main(["data", "info", str(tmp_path / "own.h5")]) == 0
    assert "labels: none (unlabelled" in capsys.readouterr().out


def test_truncated_hdf5_is_named_and_data_info_exits_1(tmp_path, capsys):
    write_galaxy10(tmp_path / "full.h5", RNG.integers(0, 256, (64, 69, 69, 3), dtype=np.uint8), np.zeros(64))
    data = (tmp_path / "full.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    assert main(["data", "info", str(tmp_path / "cut.h5")]) == 1
    err = capsys.readouterr().err
    assert "cut.h5 could not be opened as HDF5" in err and "truncated or partly copied" in err
    assert main(["train", "--data", str(tmp_path / "cut.h5"), "--out", str(tmp_path / "run")]) == 1
    assert "cut.h5 could not be opened as HDF5" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing half-written
    # A file that opens but cannot be loaded (labels out of range) also exits 1, after saying why.
    write_galaxy10(tmp_path / "ok.h5", RNG.integers(0, 256, (4, 69, 69, 3), dtype=np.uint8), np.zeros(4))
    with h5py.File(tmp_path / "ok.h5", "a") as f:
        f["ans"][0] = 42
    assert main(["data", "info", str(tmp_path / "ok.h5")]) == 1
    assert "not loadable as it is" in capsys.readouterr().out


def _catalogue_model(kind="vae"):
    import torch

    torch.manual_seed(0)
    return build_model(ModelConfig(widths=(8, 16, 32, 64), latent_size=4, kind=kind)).eval()


def test_the_catalogue_has_a_row_per_galaxy_with_codes_sigmas_errors_and_labels(tmp_path):
    images = RNG.integers(0, 256, (10, 69, 69, 3), dtype=np.uint8)
    write_galaxy10(tmp_path / "g.h5", images, np.arange(10) % 10)
    galaxies = load_galaxies(tmp_path / "g.h5")
    model = _catalogue_model()
    catalogue = encode_catalogue(model, galaxies, bs=4)
    assert list(catalogue.columns) == [
        "id",
        *[f"mu_{j}" for j in range(4)],
        *[f"sigma_{j}" for j in range(4)],
        "recon_mse",
        "label",
    ]
    assert len(catalogue) == 10 and catalogue["label"][3] == galaxies.class_names[3]
    import torch

    with torch.no_grad():
        x = torch.from_numpy(images[:4].transpose(0, 3, 1, 2).copy()).float() / 255
        recon, mu, logvar = model(x)
    assert np.allclose(catalogue[[f"mu_{j}" for j in range(4)]].to_numpy()[:4], mu.numpy(), atol=1e-5)
    assert np.allclose(catalogue["sigma_0"][:4], torch.exp(0.5 * logvar[:, 0]).numpy(), atol=1e-5)
    assert np.allclose(catalogue["recon_mse"][:4], (recon - x).pow(2).flatten(1).mean(1).numpy(), atol=1e-6)
    plain = encode_catalogue(_catalogue_model("ae"), images)  # no sigmas for a plain autoencoder, no labels
    assert not any(c.startswith("sigma_") for c in plain.columns) and "label" not in plain.columns


def test_neighbours_and_outliers_in_a_toy_catalogue():
    catalogue = pd.DataFrame({"id": list("abcde"), "mu_0": [0.0, 0.1, 5.0, 0.3, -2.0], "mu_1": [0.0] * 5})
    catalogue["recon_mse"] = [0.01, 0.5, 0.02, 0.3, 0.0]
    assert nearest_neighbours(catalogue, 0, k=3).tolist() == [1, 3, 4]  # nearest first, not itself
    assert outliers(catalogue, k=2).tolist() == [1, 3]
    assert find_row(catalogue, "c") == 2 and find_row(catalogue, "4") == 4
    with pytest.raises(KeyError, match="No galaxy 'z'"):
        find_row(catalogue, "z")


def test_encode_writes_csv_and_figures_and_parquet_needs_pyarrow(tmp_path, capsys):
    from galaxy_autoencoders.models import save_checkpoint

    save_checkpoint(_catalogue_model(), tmp_path / "m")
    folder = _folder(tmp_path)
    out = tmp_path / "lat.csv"
    assert main(["encode", "--model", str(tmp_path / "m"), "--data", str(folder), "--out", str(out), "--figures"]) == 0
    table = pd.read_csv(out)
    assert table["id"].tolist() == ["a.png", "b_grey.jpg", "c_rgba.png"] and "sigma_3" in table
    assert (tmp_path / "lat_neighbours.png").stat().st_size > 0 and (tmp_path / "lat_outliers.png").exists()
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs pyarrow"):
            save_catalogue(table, tmp_path / "lat.parquet")
        assert not (tmp_path / "lat.parquet").exists()
    else:
        save_catalogue(table, tmp_path / "lat.parquet")
        assert pd.read_parquet(tmp_path / "lat.parquet").equals(table)


def test_training_on_a_folder_logs_plain_lines_per_epoch(tmp_path):
    folder = tmp_path / "cut"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(RNG.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    cmd = [sys.executable, "-m", "galaxy_autoencoders.cli", "train", "--data", str(folder), "--quick"]
    cmd += ["--epochs", "2", "--widths", "8,16,32,64", "--bs", "8", "--out", str(tmp_path / "run")]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore")
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\r" not in done.stdout and "\r" not in done.stderr  # a log file, not a live bar's redraws
    lines = [line for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"] and "valid_loss" in lines[0]
    assert "unlabelled" in done.stdout and (tmp_path / "run" / "model.pt").exists()


def test_one_image_instead_of_a_stack_is_refused_with_the_fix(tmp_path):
    np.save(tmp_path / "one.npy", RNG.integers(0, 256, (69, 69, 3), dtype=np.uint8))
    with pytest.raises(GalaxyDataError, match=r"one image of shape \(69, 69, 3\)\? Give a stack"):
        load_galaxies(tmp_path / "one.npy")

"""`galaxy-ae data info` says "not loadable" (and exits 1) on exactly the files and folders that loading refuses,
and reads float images chunk by chunk."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from galaxy_autoencoders.cli import main
from galaxy_autoencoders.data import GalaxyDataError, describe, load_galaxies
from galaxy_autoencoders.data.cutouts import stored_problem

RNG = np.random.default_rng(0)
UNIT = RNG.random((6, 69, 69, 3)).astype(np.float32)
LAST_INF = UNIT.copy()
LAST_INF[5, 3, 3, 1] = np.inf
FILES = {  # name: (images, labelled, loadable)
    "float in [0, 1]": (UNIT, True, True),
    "float in [0, 1], unlabelled": (UNIT, False, True),
    "all NaN": (np.full_like(UNIT, np.nan), True, False),
    "all NaN, unlabelled": (np.full_like(UNIT, np.nan), False, False),
    "one inf in the last image": (LAST_INF, True, False),
    "float in 0..255": (UNIT * 255, True, False),
    "int16": ((UNIT * 255).astype(np.int16), True, False),
    "uint8": ((UNIT * 255).astype(np.uint8), True, True),
    "float 64x64": (RNG.random((6, 64, 64, 3)), True, True),
    "NaN 64x64": (np.full((6, 64, 64, 3), np.nan), True, False),
    "channels first": (RNG.random((6, 3, 69, 69)), True, True),
    "two bands": (RNG.random((6, 69, 69, 2)), True, False),
    "grey": (RNG.random((6, 69, 69)), True, True),
    "no images": (np.zeros((0, 69, 69, 3), np.float32), True, False),
}


@pytest.mark.parametrize("name", FILES)
def test_data_info_exits_1_on_exactly_the_files_loading_refuses(name, tmp_path, capsys):
    images, labelled, loadable = FILES[name]
    path = tmp_path / "mine.h5"
    with h5py.File(path, "w") as f:
        f["images"] = images
        if labelled:
            f["ans"] = np.zeros(len(images), np.int64)
    if loadable:
        load_galaxies(str(path))
    else:
        with pytest.raises(GalaxyDataError):
            load_galaxies(str(path))
    capsys.readouterr()
    assert main(["data", "info", str(path)]) == (0 if loadable else 1)
    out = capsys.readouterr().out
    assert ("not loadable as it is:" in out) == (not loadable), out


def _galaxy10_bad_label(tmp_path):
    path = tmp_path / "mine.h5"
    with h5py.File(path, "w") as f:
        f["images"] = (UNIT * 255).astype(np.uint8)  # the layout read_galaxy10 reads ...
        f["ans"] = np.array([0, 1, 2, 3, 4, 12])  # ... with a label outside the classes 0..9
    return path


def _folder(tmp_path, names):
    from PIL import Image

    folder = tmp_path / "cutouts"
    folder.mkdir()
    for name in names:
        if name.endswith(".png"):
            Image.fromarray((UNIT[0] * 255).astype(np.uint8)).save(folder / name)
        else:
            (folder / name).write_text("notes")
    return folder


OTHER_PATHS = {  # name: (make(tmp_path) -> path, loadable)
    "Galaxy10 layout, a label out of range": (_galaxy10_bad_label, False),
    "folder of PNGs": (lambda tmp_path: _folder(tmp_path, ["a.png", "b.png"]), True),
    "folder with a README": (lambda tmp_path: _folder(tmp_path, ["a.png", "README"]), False),
    "empty folder": (lambda tmp_path: _folder(tmp_path, []), False),
}


@pytest.mark.parametrize("name", OTHER_PATHS)
def test_data_info_prints_the_description_and_exits_1_with_its_problem(name, tmp_path, capsys):
    make, loadable = OTHER_PATHS[name]
    path = make(tmp_path)
    if loadable:
        load_galaxies(str(path))
    else:
        with pytest.raises(GalaxyDataError):
            load_galaxies(str(path))
    description = describe(path)
    assert description.loadable == loadable and (description.problem is None) == loadable
    capsys.readouterr()
    assert main(["data", "info", str(path)]) == (0 if loadable else 1)
    out = capsys.readouterr().out
    assert out == f"{description.text}\n"
    if loadable:
        assert "not loadable as it is:" not in out, out
    else:
        assert out.splitlines()[-1] == f"not loadable as it is: {description.problem}"


class _Recorded:
    """An HDF5 dataset's stand-in that records how many galaxies each read takes."""

    def __init__(self, images):
        self.images, self.shape, self.dtype, self.reads = images, images.shape, images.dtype, []

    def __getitem__(self, rows):
        self.reads.append(rows.stop - rows.start)
        return self.images[rows]


def test_float_images_are_checked_chunk_by_chunk_and_the_bad_ones_named():
    images = np.zeros((1000, 69, 69, 3), np.float32)
    images[700, 0, 0, 0] = np.nan
    stored = _Recorded(images)
    problem = stored_problem(stored, "big.h5", chunk=256)
    assert max(stored.reads) == 256 and len(stored.reads) == 3  # stops at the chunk holding image 700
    assert problem == "big.h5 (images 512 to 767): images contain NaN or inf; replace them (e.g. np.nan_to_num) first."
    clean = _Recorded(np.zeros((1000, 69, 69, 3), np.float32))
    assert stored_problem(clean, "big.h5", chunk=256) is None and clean.reads == [256, 256, 256, 232]
    as_bytes = _Recorded(np.zeros((1000, 69, 69, 3), np.uint8))
    assert stored_problem(as_bytes, "big.h5") is None and as_bytes.reads == []  # uint8: nothing to check

"""Tests for galaxy_autoencoders.data: downloads against a local HTTP server, validation, DECaLS, caching.

The only network used is 127.0.0.1: `FakeZenodo` serves small Galaxy10-layout files written by the tests and
can drop the connection, answer an error status or ignore Range requests.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import types
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest

import galaxy_autoencoders
from galaxy_autoencoders.data import (
    GALAXY10_DECALS_CLASSES,
    GALAXY10_SDSS_CLASSES,
    DataFolderError,
    DownloadError,
    GalaxyDataError,
    describe,
    download,
    downsample_decals,
    fetch,
    folders,
    load_galaxies,
    read_galaxy10,
    write_galaxy10,
)
from galaxy_autoencoders.data import downloader as downloading

# ----------------------------------------------------------------------------------------------------------
# A local stand-in for Zenodo


class FakeZenodo:
    """A threaded HTTP server on 127.0.0.1 serving bytes by name, with Range support and injectable faults."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[dict[str, str | None]] = []  # one entry per GET: path and Range header
        self.status: int | None = None  # answer every request with this HTTP error
        self.ignore_range = False  # answer 200 with the whole file even when asked for a range
        self.drop_after: int | None = None  # send only this many body bytes, then hang up ...
        self.drops = 0  # ... for this many requests
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def serve(self, name: str, data: bytes) -> str:
        self.files[name] = data
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


def _make_handler(zenodo: FakeZenodo) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest's output clean
            pass

        def do_GET(self) -> None:
            asked = self.headers.get("Range")
            zenodo.requests.append({"path": self.path, "range": asked})
            if zenodo.status is not None:
                self.send_error(zenodo.status)
                return
            data = zenodo.files.get(self.path.lstrip("/"))
            if data is None:
                self.send_error(404)
                return
            start = 0
            if asked and not zenodo.ignore_range:
                start = int(asked.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))  # always the full length, even when dropping
            self.end_headers()
            if zenodo.drops > 0 and zenodo.drop_after is not None:
                zenodo.drops -= 1
                body = body[: zenodo.drop_after]
            self.wfile.write(body)  # HTTP/1.0: the server closes the connection after each response

    return Handler


@pytest.fixture
def zenodo():
    server = FakeZenodo()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: the connection is refused at once, like being offline."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/Galaxy10.h5"


# ----------------------------------------------------------------------------------------------------------
# Small Galaxy10-layout files


def galaxy10_bytes(tmp_path: Path, n: int = 20, seed: int = 0, **extra: np.ndarray) -> bytes:
    """A small file laid out like the published Galaxy10.h5 (no attributes), returned as bytes."""
    rng = np.random.default_rng(seed)
    path = tmp_path / f"source_{n}_{seed}.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=rng.integers(0, 256, (n, 69, 69, 3), dtype=np.uint8))
        f.create_dataset("ans", data=rng.integers(0, 10, n).astype(np.uint8))
        for key, values in extra.items():
            f.create_dataset(key, data=values)
    return path.read_bytes()


def write_raw(path: Path, **arrays: np.ndarray) -> Path:
    """An h5 file with exactly these datasets: for files that write_galaxy10 would refuse to write."""
    with h5py.File(path, "w") as f:
        for key, values in arrays.items():
            f.create_dataset(key, data=values)
    return path


def use_spec(monkeypatch, data: bytes, url: str, key: str = "galaxy10_sdss", size: bool = True) -> None:
    """Point a DATASETS entry at a test file: its URL, SHA-256 and size."""
    spec = replace(
        downloading.DATASETS[key],
        url=url,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data) if size else None,
    )
    monkeypatch.setitem(downloading.DATASETS, key, spec)


def count_hashing(monkeypatch) -> list[Path]:
    calls: list[Path] = []
    real = downloading._sha256_file

    def counting(path, *args, **kwargs):
        calls.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(downloading, "_sha256_file", counting)
    return calls


# ----------------------------------------------------------------------------------------------------------
# Downloads


def test_download_verify_read_round_trip(tmp_path, zenodo, monkeypatch):
    data = galaxy10_bytes(tmp_path)
    use_spec(monkeypatch, data, zenodo.serve("Galaxy10.h5", data))
    folder = tmp_path / "data"

    path = fetch("galaxy10_sdss", data_dir=folder, progress=False)

    assert path == folder / "Galaxy10.h5"
    assert path.read_bytes() == data
    assert not (folder / "Galaxy10.h5.part").exists()
    mark = json.loads((folder / "Galaxy10.h5.verified").read_text())
    assert mark["size"] == len(data) and mark["mtime_ns"] == path.stat().st_mtime_ns
    galaxies = load_galaxies("galaxy10-sdss", data_dir=folder, progress=False)  # the CLI spelling
    assert galaxies.images.shape == (20, 69, 69, 3) and galaxies.images.dtype == np.uint8
    assert galaxies.labels.dtype == np.int64 and galaxies.labels.shape == (20,)
    assert galaxies.class_names == GALAXY10_SDSS_CLASSES
    assert galaxies.name == "galaxy10_sdss" and galaxies.params is None and len(galaxies) == 20
    assert len(zenodo.requests) == 1  # the second load used the cache


def test_resume_after_dropped_connection(tmp_path, zenodo):
    data = galaxy10_bytes(tmp_path)
    url = zenodo.serve("Galaxy10.h5", data)
    zenodo.drop_after, zenodo.drops = 50_000, 1
    dest = tmp_path / "out" / "Galaxy10.h5"

    download(url, dest, hashlib.sha256(data).hexdigest(), expected_size=len(data), progress=False)

    assert [r["range"] for r in zenodo.requests] == [None, "bytes=50000-"]
    assert dest.read_bytes() == data
    assert not (tmp_path / "out" / "Galaxy10.h5.part").exists()


def test_resume_from_part_left_by_earlier_session(tmp_path, zenodo):
    data = galaxy10_bytes(tmp_path)
    url = zenodo.serve("Galaxy10.h5", data)
    dest = tmp_path / "Galaxy10.h5"
    (tmp_path / "Galaxy10.h5.part").write_bytes(data[:1234])

    download(url, dest, hashlib.sha256(data).hexdigest(), progress=False)

    assert [r["range"] for r in zenodo.requests] == ["bytes=1234-"]
    assert dest.read_bytes() == data


def test_server_ignoring_range_restarts_from_zero(tmp_path, zenodo):
    data = galaxy10_bytes(tmp_path)
    url = zenodo.serve("Galaxy10.h5", data)
    zenodo.ignore_range = True
    dest = tmp_path / "Galaxy10.h5"
    # Wrong bytes in the .part: appending the full answer to them would fail the hash check.
    (tmp_path / "Galaxy10.h5.part").write_bytes(b"x" * 1000)

    download(url, dest, hashlib.sha256(data).hexdigest(), expected_size=len(data), progress=False)

    assert zenodo.requests[0]["range"] == "bytes=1000-"
    assert dest.read_bytes() == data


def test_connection_dropping_every_time_gives_up_without_final_file(tmp_path, zenodo):
    data = galaxy10_bytes(tmp_path)
    url = zenodo.serve("Galaxy10.h5", data)
    zenodo.drop_after, zenodo.drops = 1000, 100
    dest = tmp_path / "Galaxy10.h5"

    with pytest.raises(DownloadError, match="interrupted") as err:
        download(url, dest, hashlib.sha256(data).hexdigest(), progress=False)

    assert "run the same command again to resume" in str(err.value)
    assert not dest.exists()
    part = tmp_path / "Galaxy10.h5.part"
    assert part.read_bytes() == data[: part.stat().st_size] and part.stat().st_size == 4000


def test_hash_mismatch_moves_file_aside(tmp_path, zenodo):
    data = galaxy10_bytes(tmp_path)
    url = zenodo.serve("Galaxy10.h5", data)
    dest = tmp_path / "Galaxy10.h5"
    wrong = "0" * 64

    with pytest.raises(DownloadError) as err:
        download(url, dest, wrong, progress=False)

    message = str(err.value)
    assert "Galaxy10.h5" in message and wrong in message
    assert hashlib.sha256(data).hexdigest() in message  # what we got
    assert "sha256sum" in message
    assert not dest.exists() and not (tmp_path / "Galaxy10.h5.part").exists()
    assert (tmp_path / "Galaxy10.h5.corrupt").read_bytes() == data


def test_no_network_names_file_url_folder_and_offline_alternative(tmp_path, closed_port_url, monkeypatch):
    use_spec(monkeypatch, b"anything", closed_port_url)
    folder = tmp_path / "data"

    with pytest.raises(DownloadError) as err:
        fetch("galaxy10_sdss", data_dir=folder, progress=False)

    message = str(err.value)
    assert "Galaxy10.h5" in message and closed_port_url in message
    assert str(folder) in message and str(folder / "Galaxy10.h5") in message
    assert 'load_galaxies("synthetic")' in message and "GALAXY_AE_PROFILE=quick" in message
    assert not (folder / "Galaxy10.h5").exists()


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_status_is_reported(tmp_path, zenodo, status):
    url = zenodo.serve("Galaxy10.h5", b"data")
    zenodo.status = status
    dest = tmp_path / "Galaxy10.h5"

    with pytest.raises(DownloadError, match=f"HTTP {status}") as err:
        download(url, dest, "0" * 64, progress=False)

    assert url in str(err.value)
    assert not dest.exists()


def test_corrupt_cached_file_is_detected_and_replaced(tmp_path, zenodo, monkeypatch, capsys):
    data = galaxy10_bytes(tmp_path)
    use_spec(monkeypatch, data, zenodo.serve("Galaxy10.h5", data))
    folder = tmp_path / "data"
    folder.mkdir()
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF  # same size, one byte flipped: only the hash can tell
    (folder / "Galaxy10.h5").write_bytes(bytes(damaged))

    path = fetch("galaxy10_sdss", data_dir=folder, progress=False)

    assert path.read_bytes() == data
    assert (folder / "Galaxy10.h5.corrupt").read_bytes() == bytes(damaged)
    assert "damaged" in capsys.readouterr().out
    assert len(zenodo.requests) == 1


def test_truncated_cached_file_is_replaced(tmp_path, zenodo, monkeypatch):
    data = galaxy10_bytes(tmp_path)
    use_spec(monkeypatch, data, zenodo.serve("Galaxy10.h5", data))
    calls = count_hashing(monkeypatch)
    (tmp_path / "Galaxy10.h5").write_bytes(data[:100])

    fetch("galaxy10_sdss", data_dir=tmp_path, progress=False)

    assert (tmp_path / "Galaxy10.h5").read_bytes() == data
    assert tmp_path / "Galaxy10.h5" not in calls  # the wrong size was enough: the cached file was not hashed


def test_verified_cached_file_is_not_hashed_again(tmp_path, monkeypatch, closed_port_url):
    data = galaxy10_bytes(tmp_path)
    use_spec(monkeypatch, data, closed_port_url)  # any download attempt would fail
    (tmp_path / "Galaxy10.h5").write_bytes(data)
    calls = count_hashing(monkeypatch)

    fetch("galaxy10_sdss", data_dir=tmp_path, progress=False)
    fetch("galaxy10_sdss", data_dir=tmp_path, progress=False)
    assert len(calls) == 1

    os.utime(tmp_path / "Galaxy10.h5", ns=(1, 1))  # touched since: the file is checked again
    fetch("galaxy10_sdss", data_dir=tmp_path, progress=False)
    assert len(calls) == 2


def test_keyboard_interrupt_mid_download_leaves_no_final_file(tmp_path, zenodo, monkeypatch):
    data = galaxy10_bytes(tmp_path)
    url = zenodo.serve("Galaxy10.h5", data)
    dest = tmp_path / "Galaxy10.h5"
    real_tqdm = downloading.tqdm

    class CtrlCBar(real_tqdm):
        def update(self, n=1):
            super().update(n)
            raise KeyboardInterrupt  # the student presses Ctrl-C after the first chunk

    monkeypatch.setattr(downloading, "tqdm", CtrlCBar)
    with pytest.raises(KeyboardInterrupt):
        download(url, dest, hashlib.sha256(data).hexdigest(), progress=False, chunk_size=4096)
    assert not dest.exists()
    assert (tmp_path / "Galaxy10.h5.part").stat().st_size == 4096

    monkeypatch.setattr(downloading, "tqdm", real_tqdm)
    download(url, dest, hashlib.sha256(data).hexdigest(), progress=False)
    assert zenodo.requests[-1]["range"] == "bytes=4096-"
    assert dest.read_bytes() == data


def test_keyboard_interrupt_mid_write_leaves_no_file(tmp_path, monkeypatch):
    images = np.zeros((5, 69, 69, 3), np.uint8)
    real_create = h5py.Group.create_dataset

    def create_then_interrupt(self, name, *args, **kwargs):
        if name == "ans":
            raise KeyboardInterrupt
        return real_create(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", create_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_galaxy10(tmp_path / "out.h5", images, np.zeros(5, np.int64))

    assert list(tmp_path.iterdir()) == []  # neither the final file nor a temporary one


def test_saving_on_a_disk_without_room_is_refused_before_writing(tmp_path, monkeypatch):
    images = np.zeros((5, 69, 69, 3), np.uint8)
    dest = tmp_path / "set.h5"
    dest.write_bytes(b"the set the student rendered yesterday")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=300_000))
    with pytest.raises(DataFolderError) as err:
        write_galaxy10(dest, images, np.zeros(5, np.int64))
    message = str(err.value)
    assert f"Cannot save {dest}" in message and "needs about 1 MB and the disk has 300 kB free" in message
    assert f"Free space on the disk holding {tmp_path}" in message and "GALAXY_AE_DATA" in message
    assert dest.read_bytes() == b"the set the student rendered yesterday"
    assert [p.name for p in tmp_path.iterdir()] == ["set.h5"]  # no temporary file either


def test_a_synthetic_set_the_disk_has_no_room_for_is_refused_before_rendering(tmp_path, monkeypatch):
    calls: list[int] = []
    fake_synthetic(monkeypatch, calls)
    usage = shutil.disk_usage(tmp_path)
    free = 1_000_000 + 100 * (69 * 69 * 3 + 1) - 1  # one byte short of 100 stamps, labels and HDF5's own
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=free))
    with pytest.raises(DataFolderError, match="synthetic_v99_n100_seed0.h5: it needs about 2 MB"):
        load_galaxies("synthetic", n=100, data_dir=tmp_path, progress=False)
    assert calls == []  # refused before rendering: a student with a full disk does not wait for nothing
    assert list(tmp_path.iterdir()) == []
    load_galaxies("synthetic", n=99, data_dir=tmp_path, progress=False)  # one stamp fewer, with its parameter, fits
    assert calls == [99]


def test_disk_filling_up_while_h5py_writes_is_named_and_cleaned_up(tmp_path, monkeypatch):
    # A real full disk (a 200 kB tmpfs) makes h5py raise a RuntimeError whose text holds the errno; as here.
    dest = tmp_path / "set.h5"
    dest.write_bytes(b"an older set")
    h5py_says = "Can't write data (file write failed: ..., errno = 28, error message = 'No space left on device')"
    real_create = h5py.Group.create_dataset

    def fill_the_disk(self, name, *args, **kwargs):
        if name == "ans":
            raise RuntimeError(h5py_says)
        return real_create(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", fill_the_disk)
    with pytest.raises(DataFolderError, match="the disk filled up while writing") as err:
        write_galaxy10(dest, np.zeros((5, 69, 69, 3), np.uint8), np.zeros(5, np.int64))
    assert "a file already there is unchanged" in str(err.value)
    assert dest.read_bytes() == b"an older set"
    assert [p.name for p in tmp_path.iterdir()] == ["set.h5"]


class SmallDisk:
    """A file opened for writing on a disk with `room` bytes left: a write beyond that raises OSError(code)."""

    def __init__(self, file, room: int, code: int):
        self.file, self.room, self.code = file, room, code

    def write(self, block: bytes) -> int:
        if len(block) > self.room:
            raise OSError(self.code, os.strerror(self.code))
        self.room -= len(block)
        return self.file.write(block)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


@pytest.mark.parametrize(
    "code, problem, advice",
    [
        (errno.ENOSPC, "the disk is full", "Free space on the disk holding {folder}"),
        (errno.EDQUOT, "your disk quota is used up", "Free space on the disk holding {folder}"),
        (errno.EIO, os.strerror(errno.EIO), "Fix that"),  # a failing or unplugged drive
    ],
)
def test_disk_full_or_failing_mid_download_keeps_the_good_file_and_says_what_to_do(
    tmp_path, zenodo, monkeypatch, code, problem, advice
):
    data = galaxy10_bytes(tmp_path)
    url = zenodo.serve("Galaxy10.h5", data)
    folder = tmp_path / "data"
    folder.mkdir()
    dest, part = folder / "Galaxy10.h5", folder / "Galaxy10.h5.part"
    dest.write_bytes(b"an older copy the student already had")
    real_open = open

    def open_on_small_disk(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return SmallDisk(f, room=8192, code=code) if "w" in mode or "a" in mode else f

    monkeypatch.setattr(downloading, "open", open_on_small_disk, raising=False)
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(DataFolderError) as err:
        download(url, dest, sha, expected_size=len(data), progress=False, chunk_size=4096)

    message = str(err.value)
    assert problem in message and str(part) in message and "8,192 bytes" in message
    assert f"Nothing was written at {dest}" in message and advice.format(folder=folder) in message
    assert "GALAXY_AE_DATA" in message and "resumes" in message
    assert dest.read_bytes() == b"an older copy the student already had"
    assert part.read_bytes() == data[:8192]  # what arrived is kept, for a resume once there is room
    assert len(zenodo.requests) == 1  # a full disk is not a dropped connection: no retries

    monkeypatch.undo()  # space freed: the same call resumes and finishes
    download(url, dest, sha, expected_size=len(data), progress=False)
    assert zenodo.requests[-1]["range"] == "bytes=8192-"
    assert dest.read_bytes() == data and not part.exists()


def test_download_false_refuses_missing_file(tmp_path, monkeypatch, closed_port_url):
    use_spec(monkeypatch, b"anything", closed_port_url)
    with pytest.raises(FileNotFoundError, match="download=False") as err:
        load_galaxies("galaxy10_sdss", data_dir=tmp_path, download=False)
    assert str(tmp_path / "Galaxy10.h5") in str(err.value)


# ----------------------------------------------------------------------------------------------------------
# Reading and validation


def test_load_preplaced_sdss_file_and_seeded_subset(tmp_path, monkeypatch, closed_port_url):
    data = galaxy10_bytes(tmp_path, n=30)
    use_spec(monkeypatch, data, closed_port_url)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "Galaxy10.h5").write_bytes(data)

    everything = load_galaxies("galaxy10_sdss", data_dir=folder, progress=False)
    first = load_galaxies("galaxy10_sdss", n=8, seed=3, data_dir=folder, progress=False)
    again = load_galaxies("galaxy10_sdss", n=8, seed=3, data_dir=folder, progress=False)
    other = load_galaxies("galaxy10_sdss", n=8, seed=4, data_dir=folder, progress=False)

    assert everything.images.shape == (30, 69, 69, 3) and everything.labels.shape == (30,)
    assert first.images.shape == (8, 69, 69, 3) and first.labels.shape == (8,)
    np.testing.assert_array_equal(first.images, again.images)
    assert not np.array_equal(first.images, other.images)
    # The subset is made of whole rows of the full set (image and label together), in file order.
    rows = [int(np.flatnonzero((everything.images == image).all(axis=(1, 2, 3)))[0]) for image in first.images]
    assert rows == sorted(rows)
    np.testing.assert_array_equal(everything.labels[rows], first.labels)
    with pytest.raises(ValueError, match="holds 30 galaxies"):
        load_galaxies("galaxy10_sdss", n=31, data_dir=folder, progress=False)


def test_write_read_round_trip_with_params(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 69, 69, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 12)
    params = {"bulge_fraction": rng.random(12), "sersic_n": rng.random(12) * 4}

    path = write_galaxy10(tmp_path / "mine.h5", images, labels, params=params)
    galaxies = read_galaxy10(path)

    np.testing.assert_array_equal(galaxies.images, images)
    np.testing.assert_array_equal(galaxies.labels, labels)
    assert galaxies.labels.dtype == np.int64
    assert sorted(galaxies.params) == ["bulge_fraction", "sersic_n"]
    np.testing.assert_allclose(galaxies.params["sersic_n"], params["sersic_n"])
    assert galaxies.class_names == GALAXY10_SDSS_CLASSES and galaxies.name == "mine.h5"
    assert load_galaxies(path).images.shape == (12, 69, 69, 3)  # a path works as a dataset name
    assert "12 images" in repr(galaxies)


def test_describe_mentions_count_classes_and_params(tmp_path):
    labels = np.array([0, 1, 1, 9, 9, 9])
    path = write_galaxy10(
        tmp_path / "mine.h5", np.zeros((6, 69, 69, 3), np.uint8), labels, params={"sersic_n": np.ones(6)}
    )

    description = describe(path)
    text = description.text

    assert description.loadable and description.problem is None
    assert "mine.h5" in text and "6 galaxies" in text and "(6, 69, 69, 3)" in text and "uint8" in text
    assert any("Disk, Face-on, Loose Spiral" in line and line.rstrip().endswith(" 3") for line in text.splitlines())
    assert any("Smooth, Completely round" in line and line.rstrip().endswith(" 2") for line in text.splitlines())
    assert "sersic_n" in text


def test_describe_says_a_file_of_another_stamp_size_is_resized(tmp_path):
    path = write_raw(tmp_path / "big.h5", images=np.zeros((2, 256, 256, 3), np.uint8), ans=np.zeros(2, np.uint8))
    text = describe(path).text
    assert "stored: images (2, 256, 256, 3) uint8; loading converts them to uint8 (N, 69, 69, 3)" in text
    assert "galaxy10_decals" in text and "labels: 2 in 10 classes" in text


def _images(shape, dtype=np.uint8):
    return np.zeros(shape, dtype)


BAD_FILES = {
    "missing ans": (
        dict(images=_images((4, 69, 69, 3)), labels=np.zeros(4)),
        "found keys ['images', 'labels']",
    ),
    "missing images": (dict(x=_images((4, 69, 69, 3)), ans=np.zeros(4)), "has no 'images'"),
    "float images": (dict(images=_images((4, 69, 69, 3), np.float32), ans=np.zeros(4)), "(x * 255).round()"),
    "int64 images": (dict(images=_images((4, 69, 69, 3), np.int64), ans=np.zeros(4)), "np.clip(x, 0, 255)"),
    "grayscale": (dict(images=_images((4, 69, 69)), ans=np.zeros(4)), "grayscale"),
    "64x64": (dict(images=_images((4, 64, 64, 3)), ans=np.zeros(4)), "64x64 stamps"),
    "channels first": (dict(images=_images((4, 3, 69, 69)), ans=np.zeros(4)), "x.transpose(0, 2, 3, 1)"),
    "decals 256": (
        dict(images=_images((2, 256, 256, 3)), ans=np.zeros(2)),
        "load_galaxies('galaxy10_decals')",
    ),
    "empty": (dict(images=_images((0, 69, 69, 3)), ans=np.zeros(0)), "empty (N=0)"),
    "label count": (dict(images=_images((4, 69, 69, 3)), ans=np.zeros(3)), "4 images but 3 labels"),
    "label 10": (
        dict(images=_images((4, 69, 69, 3)), ans=np.array([0, 1, 10, 2])),
        "outside the class indices",
    ),
    "label -1": (
        dict(images=_images((4, 69, 69, 3)), ans=np.array([0, -1, 1, 2])),
        "outside the class indices",
    ),
    "one-hot labels": (dict(images=_images((4, 69, 69, 3)), ans=np.eye(10)[:4]), "argmax"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_are_refused_with_clear_errors(tmp_path, case):
    arrays, expected = BAD_FILES[case]
    path = write_raw(tmp_path / "bad.h5", **arrays)

    with pytest.raises(GalaxyDataError) as err:
        read_galaxy10(path)

    assert expected in str(err.value)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_float_images_is_named_before_the_dtype(tmp_path, bad):
    images = np.random.default_rng(0).random((6, 69, 69, 3)).astype(np.float32)
    images[2, 10, 10, 1] = images[4, 0, 0, 0] = bad

    with pytest.raises(GalaxyDataError) as err:
        write_galaxy10(tmp_path / "x.h5", images, np.zeros(6))

    message = str(err.value)
    assert "write_galaxy10(x.h5): 2 of 6 images contain NaN or inf values (the first is image 2)" in message
    assert "np.nan_to_num(x" in message  # the fix, before the uint8 conversion would turn NaN into black
    assert not (tmp_path / "x.h5").exists()
    finite = np.nan_to_num(images, nan=0.0, posinf=1.0, neginf=0.0)  # once fixed, the dtype is what is left
    with pytest.raises(GalaxyDataError, match=r"float32, expected uint8.*\(x \* 255\)\.round\(\)"):
        write_galaxy10(tmp_path / "x.h5", finite, np.zeros(6))


def test_not_an_hdf5_file_is_refused(tmp_path):
    path = tmp_path / "Galaxy10.h5"
    path.write_bytes(b"<html><body>Too many requests</body></html>")
    with pytest.raises(GalaxyDataError, match="not an HDF5 file") as err:
        read_galaxy10(path)
    assert str(path) in str(err.value)


def test_file_from_another_dataset_is_refused(tmp_path):
    decals_like = write_galaxy10(
        tmp_path / "x.h5",
        np.zeros((3, 69, 69, 3), np.uint8),
        np.zeros(3),
        class_names=GALAXY10_DECALS_CLASSES,
    )
    with pytest.raises(GalaxyDataError, match="different dataset"):
        read_galaxy10(decals_like, class_names=GALAXY10_SDSS_CLASSES)
    assert read_galaxy10(decals_like).class_names == GALAXY10_DECALS_CLASSES


def test_write_refuses_what_read_would_refuse(tmp_path):
    with pytest.raises(GalaxyDataError, match="channels-first"):
        write_galaxy10(tmp_path / "x.h5", np.zeros((3, 3, 69, 69), np.uint8), np.zeros(3))
    with pytest.raises(GalaxyDataError, match="sersic_n"):
        write_galaxy10(tmp_path / "x.h5", np.zeros((3, 69, 69, 3), np.uint8), np.zeros(3), {"sersic_n": np.ones(2)})
    assert not (tmp_path / "x.h5").exists()


def test_unknown_name_and_missing_path(tmp_path):
    with pytest.raises(ValueError, match="galaxy10_sdss"):
        load_galaxies("galaxy11")
    with pytest.raises(FileNotFoundError, match="No file at"):
        load_galaxies(tmp_path / "nothing.h5")


def test_uncreatable_data_folder_mentions_environment_variable(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(DataFolderError, match="GALAXY_AE_DATA") as err:
        load_galaxies("galaxy10_sdss", data_dir=blocker / "data")
    assert str(blocker / "data") in str(err.value)


@pytest.fixture(params=["chmod", "patched"])
def make_read_only(request, monkeypatch):
    """make_read_only(folder): from now on nothing can be written into folder.

    "chmod": chmod 0o555, as on a shared class folder; skipped as root, whom chmod does not stop. "patched":
    the ways the data modules write a file (probe, open, h5py, write_text, os.replace) refuse the folder.
    """
    made: list[Path] = []

    def refuse(path) -> None:
        if path is not None and any(Path(path).resolve().is_relative_to(f.resolve()) for f in made):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    def patch_writes() -> None:
        real_temporary, real_open, real_replace = tempfile.TemporaryFile, open, os.replace
        real_h5, real_write_text = h5py.File, Path.write_text

        def temporary(*args, dir=None, **kwargs):
            refuse(dir and Path(dir) / "probe")
            return real_temporary(*args, dir=dir, **kwargs)

        def writing_open(file, mode="r", *args, **kwargs):
            if "w" in mode or "a" in mode:
                refuse(file)
            return real_open(file, mode, *args, **kwargs)

        def replace(src, dst):
            refuse(dst)
            return real_replace(src, dst)

        def h5_file(name, mode="r", *args, **kwargs):
            if mode != "r":
                refuse(name)
            return real_h5(name, mode, *args, **kwargs)

        def write_text(self, *args, **kwargs):
            refuse(self)
            return real_write_text(self, *args, **kwargs)

        monkeypatch.setattr(tempfile, "TemporaryFile", temporary)
        for module in (downloading, folders):  # the modules that open files for writing
            monkeypatch.setattr(module, "open", writing_open, raising=False)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(h5py, "File", h5_file)
        monkeypatch.setattr(Path, "write_text", write_text)

    def make(folder: Path) -> None:
        if request.param == "chmod":
            folder.chmod(0o555)
            made.append(folder)
            if os.access(folder, os.W_OK):
                pytest.skip("running as root: chmod 0o555 does not stop writes (the 'patched' variant runs)")
        else:
            if not made:
                patch_writes()
            made.append(folder)

    yield make
    for folder in made:
        folder.chmod(0o755)  # so that pytest can remove tmp_path


def test_read_only_folder_with_a_good_file_is_used_as_it_is(tmp_path, monkeypatch, closed_port_url, make_read_only):
    data = galaxy10_bytes(tmp_path)
    use_spec(monkeypatch, data, closed_port_url)
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "Galaxy10.h5").write_bytes(data)
    make_read_only(folder)

    for _ in range(2):  # no .verified mark can be saved: the file is simply hashed again
        galaxies = load_galaxies("galaxy10_sdss", data_dir=folder, progress=False)
        assert galaxies.images.shape == (20, 69, 69, 3)
    assert sorted(p.name for p in folder.iterdir()) == ["Galaxy10.h5"]


def _served_with_a_shared_folder(tmp_path, zenodo, monkeypatch):
    """Galaxy10's bytes, served as its download, and an empty folder "shared" to point the package at."""
    data = galaxy10_bytes(tmp_path)
    use_spec(monkeypatch, data, zenodo.serve("Galaxy10.h5", data))
    folder = tmp_path / "shared"
    folder.mkdir()
    return data, folder


def test_read_only_folder_refuses_to_download_or_render_and_says_where_to_point(
    tmp_path, zenodo, monkeypatch, make_read_only
):
    data, folder = _served_with_a_shared_folder(tmp_path, zenodo, monkeypatch)
    calls: list[int] = []
    fake_synthetic(monkeypatch, calls)
    make_read_only(folder)

    with pytest.raises(DataFolderError) as err:
        fetch("galaxy10_sdss", data_dir=folder, progress=False)
    message = str(err.value)
    assert f"Cannot write into the data folder {folder} to download Galaxy10.h5" in message
    assert "export GALAXY_AE_DATA=" in message
    with pytest.raises(DataFolderError, match="to save synthetic_v99_n8_seed0.h5"):
        load_galaxies("synthetic", n=8, data_dir=folder, progress=False)
    assert calls == []  # refused before rendering, not after
    assert list(folder.iterdir()) == [] and zenodo.requests == []


def test_read_only_folder_with_a_damaged_file_says_so_and_keeps_it(tmp_path, zenodo, monkeypatch, make_read_only):
    data, folder = _served_with_a_shared_folder(tmp_path, zenodo, monkeypatch)
    (folder / "Galaxy10.h5").write_bytes(data[:100])
    make_read_only(folder)

    with pytest.raises(DataFolderError) as err:
        load_galaxies("galaxy10_sdss", data_dir=folder, progress=False)

    message = str(err.value)
    assert f"to replace Galaxy10.h5, which is damaged (100 bytes instead of {len(data)})" in message
    assert "GALAXY_AE_DATA" in message
    assert sorted(p.name for p in folder.iterdir()) == ["Galaxy10.h5"]
    assert (folder / "Galaxy10.h5").read_bytes() == data[:100] and zenodo.requests == []


def test_missing_data_folder_is_created(tmp_path, monkeypatch):
    fake_synthetic(monkeypatch, [])
    folder = tmp_path / "not" / "there" / "yet"
    monkeypatch.setenv("GALAXY_AE_DATA", str(folder))

    galaxies = load_galaxies("synthetic", n=8, progress=False)

    assert folder.is_dir() and galaxies.path == folder / "synthetic_v99_n8_seed0.h5"


def test_default_data_folder_follows_environment(tmp_path, monkeypatch, closed_port_url):
    data = galaxy10_bytes(tmp_path)
    use_spec(monkeypatch, data, closed_port_url)
    (tmp_path / "Galaxy10.h5").write_bytes(data)
    monkeypatch.setenv("GALAXY_AE_DATA", str(tmp_path))
    assert load_galaxies("galaxy10_sdss", progress=False).path == tmp_path / "Galaxy10.h5"


# ----------------------------------------------------------------------------------------------------------
# DECaLS downsampling


def reference_area_mean(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Exact area average along one axis, from the integral of the piecewise-constant pixel values."""
    x = np.moveaxis(x.astype(np.float64), axis, -1)
    length = x.shape[-1]
    integral = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x, axis=-1)], axis=-1)
    edges = np.arange(size + 1) * length / size
    left = np.minimum(np.floor(edges).astype(int), length - 1)
    at_edges = integral[..., left] + (edges - left) * x[..., left]  # the integral is linear inside a pixel
    return np.moveaxis(np.diff(at_edges, axis=-1) / (length / size), -1, axis)


def test_decals_downsampling_is_exact_area_average_in_chunks(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 256, 256, 3), dtype=np.uint8)
    images[3] = 137  # a constant image must stay constant
    ans = np.arange(10, dtype=np.uint8)
    src = write_raw(tmp_path / "Galaxy10_DECals.h5", images=images, ans=ans, pxscale=np.full(10, 0.262))

    small = read_galaxy10(downsample_decals(src, tmp_path / "small.h5", chunk=4, progress=False))
    whole = read_galaxy10(downsample_decals(src, tmp_path / "whole.h5", chunk=64, progress=False))

    expected = reference_area_mean(reference_area_mean(images, 69, axis=1), 69, axis=2)
    assert small.images.shape == (10, 69, 69, 3) and small.images.dtype == np.uint8
    assert np.abs(small.images - expected).max() <= 0.5 + 1e-3  # rounded to the nearest integer
    np.testing.assert_array_equal(small.images, whole.images)  # chunking changes nothing
    assert (small.images[3] == 137).all()
    np.testing.assert_array_equal(small.labels, ans)
    assert small.class_names == GALAXY10_DECALS_CLASSES
    with h5py.File(tmp_path / "small.h5") as f:
        np.testing.assert_allclose(f["pxscale"][:], 0.262 * 256 / 69)  # bigger pixels


def test_load_decals_downsamples_once_and_caches(tmp_path, monkeypatch, closed_port_url):
    rng = np.random.default_rng(1)
    src = write_raw(
        tmp_path / "src.h5",
        images=rng.integers(0, 256, (6, 256, 256, 3), dtype=np.uint8),
        ans=rng.integers(0, 10, 6).astype(np.uint8),
        ra=rng.random(6),
        dec=rng.random(6),
        redshift=rng.random(6),
        pxscale=np.full(6, 0.262),
    )
    data = src.read_bytes()
    use_spec(monkeypatch, data, closed_port_url, key="galaxy10_decals", size=False)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "Galaxy10_DECals.h5").write_bytes(data)

    galaxies = load_galaxies("galaxy10-decals", data_dir=folder, progress=False)
    (folder / "Galaxy10_DECals.h5").unlink()  # the 69x69 copy is enough from now on
    again = load_galaxies("galaxy10_decals", n=3, data_dir=folder, progress=False)

    assert galaxies.images.shape == (6, 69, 69, 3) and galaxies.name == "galaxy10_decals"
    assert galaxies.class_names == GALAXY10_DECALS_CLASSES
    assert (folder / "Galaxy10_DECals_69px.h5").exists()
    assert again.images.shape == (3, 69, 69, 3)
    assert "redshift" in describe(folder / "Galaxy10_DECals_69px.h5").text


# ----------------------------------------------------------------------------------------------------------
# The synthetic set


def fake_synthetic(monkeypatch, calls: list[int]) -> None:
    """Replace the GalSim renderer by a cheap deterministic one, to test the caching around it."""

    def render_galaxies(n, seed=0, class_weights=None, workers=None, progress=True):
        calls.append(n)
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, (n, 69, 69, 3), dtype=np.uint8)
        return images, rng.integers(0, 10, n), {"sersic_n": rng.random(n)}

    module = types.SimpleNamespace(
        SYNTHETIC_VERSION=99, CLASS_NAMES=GALAXY10_SDSS_CLASSES, render_galaxies=render_galaxies
    )
    monkeypatch.setitem(sys.modules, "galaxy_autoencoders.data.synthetic", module)
    monkeypatch.setattr(galaxy_autoencoders.data, "synthetic", module, raising=False)


def test_synthetic_is_rendered_once_then_read_from_cache(tmp_path, monkeypatch):
    calls: list[int] = []
    fake_synthetic(monkeypatch, calls)

    first = load_galaxies("synthetic", n=16, seed=2, data_dir=tmp_path, progress=False)
    second = load_galaxies("synthetic", n=16, seed=2, data_dir=tmp_path, progress=False)

    assert calls == [16]
    assert (tmp_path / "synthetic_v99_n16_seed2.h5").exists()
    np.testing.assert_array_equal(first.images, second.images)
    assert first.name == "synthetic" and sorted(first.params) == ["sersic_n"]


def test_synthetic_galsim_cache_and_determinism(tmp_path, monkeypatch):
    pytest.importorskip("galsim")
    synthetic = pytest.importorskip("galaxy_autoencoders.data.synthetic")

    first = load_galaxies("synthetic", n=40, seed=1, data_dir=tmp_path / "a", progress=False)
    cached = tmp_path / "a" / f"synthetic_v{synthetic.SYNTHETIC_VERSION}_n40_seed1.h5"
    assert cached.exists()

    def no_rendering(*args, **kwargs):
        raise AssertionError("the cached file should have been read, not re-rendered")

    with monkeypatch.context() as patch:
        patch.setattr(synthetic, "render_galaxies", no_rendering)
        again = load_galaxies("synthetic", n=40, seed=1, data_dir=tmp_path / "a", progress=False)
    elsewhere = load_galaxies("synthetic", n=40, seed=1, data_dir=tmp_path / "b", progress=False)

    assert first.images.shape == (40, 69, 69, 3) and first.images.dtype == np.uint8
    assert first.params and all(values.shape == (40,) for values in first.params.values())
    np.testing.assert_array_equal(first.images, again.images)
    assert first.images.tobytes() == elsewhere.images.tobytes()
    np.testing.assert_array_equal(first.labels, elsewhere.labels)

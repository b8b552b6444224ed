"""A resumable, verified download of the public Galaxy10 files.

Downloads stream into `<file>.part`, resume after a dropped connection, are checked against the published
SHA-256 and only then renamed to their final name: a file at the final path is always complete and verified.
A read-only folder that already holds a good file is simply read.
"""

from __future__ import annotations

import hashlib
import json
import os
from http.client import HTTPException
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from tqdm.auto import tqdm

from .. import config
from .errors import DownloadError
from .folders import check_writable_folder, data_folder, download_write_error, size_text
from .galaxy10 import DATASETS, DatasetSpec, dataset_key

DOWNLOAD_RETRIES = 3  # resumes after a dropped connection before giving up


OFFLINE_HINT = (
    'To work offline, use the synthetic galaxies instead: load_galaxies("synthetic"), '
    f"or run with `{config.PROFILE_ENV}=quick`."
)


def fetch(name: str, data_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Local path of "galaxy10_sdss" or "galaxy10_decals", downloaded and SHA-256 verified if needed."""
    key = dataset_key(name)
    if key not in DATASETS:
        raise ValueError(f"fetch() downloads one of {sorted(DATASETS)}, not {name!r}.")
    return fetch_spec(DATASETS[key], data_folder(data_dir), progress, allow_download=True)


def fetch_spec(spec: DatasetSpec, folder: Path, progress: bool, allow_download: bool) -> Path:
    """The verified file for spec in folder: hashed once (then trusted by size + mtime), else downloaded."""
    path = folder / spec.filename
    if path.exists():
        if _is_marked_verified(path, spec):
            return path
        problem = _cached_file_problem(path, spec)
        if problem is None:
            _mark_verified(path, spec)
            return path
        corrupt = _sibling(path, ".corrupt")
        # A shared read-only folder with a damaged file: say so, rather than only "cannot write".
        check_writable_folder(folder, f"to replace {path.name}, which is damaged ({problem})")
        os.replace(path, corrupt)
        _sibling(path, ".verified").unlink(missing_ok=True)
        print(f"The cached {path} is damaged ({problem}); moved it to {corrupt}.")
    if not allow_download:
        raise FileNotFoundError(
            f"{spec.filename} is not in {folder} and download=False. Download it with "
            f"load_galaxies({spec.name!r}) or by hand from {spec.url} to {path}. {OFFLINE_HINT}"
        )
    if progress:
        print(f"Downloading {spec.filename} ({size_text(spec.size)}) from {spec.url} to {folder}")
    download(spec.url, path, spec.sha256, expected_size=spec.size, progress=progress)
    _mark_verified(path, spec)
    return path


def _cached_file_problem(path: Path, spec: DatasetSpec) -> str | None:
    """None if the file has the published size and hash, else what is wrong (size first: it is free)."""
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        return f"{size} bytes instead of {spec.size}"
    digest = _sha256_file(path)
    if digest != spec.sha256.lower():
        return f"SHA-256 {digest} instead of {spec.sha256}"
    return None


def _is_marked_verified(path: Path, spec: DatasetSpec) -> bool:
    """True if the sidecar says this very file (same size and mtime) was hashed and matched spec before."""
    try:
        mark = json.loads(_sibling(path, ".verified").read_text())
    except (OSError, ValueError):
        return False
    stat = path.stat()
    return mark == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": spec.sha256.lower()}


def _mark_verified(path: Path, spec: DatasetSpec) -> None:
    """Remember a successful hash check, so later loads skip hashing hundreds of megabytes."""
    stat = path.stat()
    mark = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": spec.sha256.lower()}
    try:
        _sibling(path, ".verified").write_text(json.dumps(mark))
    except OSError:  # a read-only shared folder: fine, the file is just hashed again next time
        pass


def _sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


class _Interrupted(Exception):
    """The connection dropped mid-transfer; what arrived is kept in the .part file for a resume."""


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str,
    expected_size: int | None = None,
    progress: bool = True,
    chunk_size: int = 1 << 20,
    timeout: float = 30,
) -> Path:
    """Download url to dest via `dest.part` (resumed if present), check size and SHA-256, rename to dest."""
    dest = Path(dest)
    check_writable_folder(dest.parent, f"to download {dest.name}")
    part = _sibling(dest, ".part")
    for attempt in range(DOWNLOAD_RETRIES + 1):
        try:
            _transfer(url, part, dest, expected_size, progress, chunk_size, timeout)
            break
        except _Interrupted as err:
            if attempt == DOWNLOAD_RETRIES:
                raise DownloadError(
                    f"Downloading {dest.name} from {url} was interrupted {attempt + 1} times ({err}). "
                    f"The {part.stat().st_size if part.exists() else 0} bytes received are kept in {part}: "
                    f"run the same command again to resume. {OFFLINE_HINT}"
                ) from err
            print(f"{err}; resuming ({attempt + 1}/{DOWNLOAD_RETRIES})")
    size = part.stat().st_size
    digest = _sha256_file(part)
    if (expected_size is not None and size != expected_size) or digest != sha256.lower():
        # Keep the bad bytes for inspection, but never under the final name, and not as a .part to resume.
        corrupt = _sibling(dest, ".corrupt")
        os.replace(part, corrupt)
        raise DownloadError(
            f"Downloaded {dest.name} from {url}, but it does not match the published file: SHA-256 {digest} "
            f"(expected {sha256.lower()}), {size} bytes (expected {size_text(expected_size)}). "
            f"It was moved aside to {corrupt}. Run the same command again to download afresh; if it fails "
            f"again, download the file by hand, check it with `sha256sum`, and put it at {dest}."
        )
    os.replace(part, dest)
    return dest


def _transfer(
    url: str,
    part: Path,
    dest: Path,
    expected_size: int | None,
    progress: bool,
    chunk_size: int,
    timeout: float,
) -> None:
    """Append the rest of url to part, asking the server (HTTP Range) to skip the bytes part already holds."""
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have >= expected_size:
        if have == expected_size:
            return  # complete already (e.g. interrupted while hashing): the hash check decides
        part.unlink()  # longer than the real file: not ours, start over
        have = 0
    response = _open(url, dest, have, timeout)
    if response is None:
        return
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored Range and sends the whole file: start the .part over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else expected_size
        try:
            received = _stream(response, part, have, total, dest.name, progress, chunk_size, urlsplit(url).hostname)
        except OSError as err:  # writing the .part (reading errors are _Interrupted): disk full, quota, ...
            raise download_write_error(err, part, dest, total) from err
    # http.client returns a short body without an error when the server hangs up early: count the bytes.
    if total is not None and received < total:
        raise _Interrupted(f"connection to {urlsplit(url).hostname} closed after {received} of {total} bytes")


def _open(url: str, dest: Path, have: int, timeout: float):
    """The server's response for url from byte `have` on; None when part already holds the whole file."""
    headers = {"User-Agent": "galaxy_autoencoders"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        return urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and have:  # "range not satisfiable": part holds the whole file; the hash decides
            return None
        raise DownloadError(
            f"Could not download {dest.name}: the server answered HTTP {err.code} ({err.reason}) for {url}. "
            f"{_http_advice(err.code)} You can also download it by hand and put it at {dest}. {OFFLINE_HINT}"
        ) from err
    except (URLError, OSError, HTTPException) as err:  # no network, DNS failure, refused, timeout
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"Could not download {dest.name} from {url}: {reason}. Is this computer offline? Either download "
            f"the file by hand (e.g. in a browser) and put it in the folder {dest.parent}, as {dest} "
            f"(set {config.DATA_ENV} to use another folder), or work without it. {OFFLINE_HINT}"
        ) from err


def _stream(response, part: Path, have: int, total, name: str, progress: bool, chunk_size: int, host) -> int:
    """Append the response's body to part (which holds `have` bytes) with a progress bar; returns part's size."""
    bar_settings = {"unit": "B", "unit_scale": True, "unit_divisor": 1024, "desc": name, "disable": not progress}
    with open(part, "ab" if have else "wb") as out, tqdm(total=total, initial=have, **bar_settings) as bar:
        while True:
            try:
                block = response.read(chunk_size)
            except (OSError, HTTPException) as err:
                raise _Interrupted(f"connection to {host} lost after {out.tell()} bytes ({err})") from err
            if not block:
                break
            out.write(block)
            bar.update(len(block))
        return out.tell()


def _http_advice(code: int) -> str:
    if code == 404:
        return "The file is not at this address (moved?): check the address in galaxy10.md / DATASETS."
    if code in (401, 403):
        return "The server refuses access: try again later, or from another network."
    if code >= 500:
        return "The server has a problem: try again in a few minutes."
    return "Try again later."


def _sibling(path: Path, suffix: str) -> Path:
    """`Galaxy10.h5` -> `Galaxy10.h5.part` (appended, so the real suffix stays visible)."""
    return path.with_name(path.name + suffix)

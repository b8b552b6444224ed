"""Where students run it: conda environment.yml, Binder (binder/), Colab (install cell, badges).

Conda and repo2docker cannot run in CI, so these tests check the files themselves: every runtime dependency of
pyproject.toml is in both environment files, at the version of the test lock (requirements/test.txt), which pins
every requirement within pyproject.toml's bounds; Binder gets a CPU PyTorch, the quick profile and pre-rendered
galaxies, and every Colab/Binder badge and install cell points at this repository and at notebooks that exist.
No network.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SLUG = "galaxy-autoencoders/galaxy_autoencoders"
BRANCH = "main"
COLAB_URL = re.compile(
    r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/([\w.-]+)/([\w./-]+\.ipynb)"
)
BINDER_URL = re.compile(r"https://mybinder\.org/v2/gh/([\w.-]+/[\w.-]+)/([\w.-]+)\?urlpath=lab/tree/([\w./-]+\.ipynb)")
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"

# pip (PyPI) name -> the conda-forge names that provide it
CONDA_NAMES = {"torch": {"pytorch", "pytorch-cpu", "pytorch-gpu"}, "galsim": {"galsim"}}
# conda-forge name -> the distribution installed in this venv, to compare version bounds with
PIP_NAMES = {"pytorch": "torch", "pytorch-cpu": "torch", "pytorch-gpu": "torch"}
ENV_FILES = [ROOT / "environment.yml", ROOT / "binder" / "environment.yml"]
LOCK = ROOT / "requirements" / "test.txt"


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def _env_specs(path: Path) -> tuple[list[str], list[str]]:
    """The conda specs and the pip lines of an environment file."""
    env = yaml.safe_load(path.read_text())
    conda, pip = [], []
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            pip.extend(entry.get("pip", []))
        else:
            conda.append(entry)
    return conda, pip


def _split(spec: str) -> tuple[str, str]:
    """'pytorch>=2.2' -> ('pytorch', '>=2.2'); 'python' -> ('python', '')."""
    name = re.match(r"[A-Za-z0-9_.-]+", spec).group(0)
    return name.lower(), spec[len(name) :].strip()


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_environment_file_parses_and_uses_conda_forge(path):
    env = yaml.safe_load(path.read_text())
    assert env["name"] == "galaxy-autoencoders"
    assert env["channels"] == ["conda-forge"], f"{path.name}: use conda-forge only (defaults has licence terms)"
    conda, _ = _env_specs(path)
    assert any(_split(s)[0] == "python" for s in conda)
    assert "pip" in conda, f"{path.name} has a pip: section, so it must install pip itself"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_runtime_dependency_is_in_the_environment(path):
    conda, pip = _env_specs(path)
    conda_names = {_split(s)[0] for s in conda}
    pip_names = {_split(s)[0] for s in pip if not s.startswith("-")}
    missing = []
    for req in _runtime_requirements():
        name = req.name.lower()
        if not (CONDA_NAMES.get(name, {name}) & conda_names or name in pip_names):
            missing.append(req.name)
    assert not missing, f"{path.relative_to(ROOT)} lacks runtime dependencies of pyproject.toml: {missing}"


def _lock() -> dict[str, Version]:
    """requirements/test.txt: {normalised distribution name: pinned version}."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements/test.txt: {line!r} is not a pin (name==version)"
            pins[_normal(name)] = Version(version.strip())
    return pins


def _lock_python() -> str:
    """The Python (major.minor) the lock was made with, from its header: '# on CPython 3.11.7 x86_64. ...'."""
    return re.search(r"^# on \w+ (\d+\.\d+)\.", LOCK.read_text(), re.M).group(1)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _test_requirements() -> list[Requirement]:
    """The runtime requirements and the test extra's, with the extras it names of the package itself spelled out."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    found = _runtime_requirements()
    for line in extras["test"]:
        req = Requirement(line)
        if _normal(req.name) == _normal(project["name"]):  # "galaxy_autoencoders[web,site]": those extras' lists
            found += [Requirement(inner) for extra in sorted(req.extras) for inner in extras[extra]]
        else:
            found.append(req)
    return found


def test_the_lock_pins_every_requirement_within_pyprojects_bounds():
    pins = _lock()
    for req in _test_requirements():
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = _normal(req.name)
        assert name in pins, f"requirements/test.txt lacks {req.name}: run `bash requirements/lock.sh refresh`"
        assert req.specifier.contains(pins[name]), f"the lock's {req.name}=={pins[name]} is outside {req}"


def test_the_readme_test_command_installs_through_the_lock():
    readme = (ROOT / "README.md").read_text()
    command = readme.split("<!-- test-command -->", 1)[1].split("```bash", 1)[1].split("```", 1)[0].strip()
    assert command.startswith('pip install -c requirements/test.txt -e ".[test]" && '), command
    demo = readme.split("<!-- demo-command -->", 1)[1].split("```bash", 1)[1].split("```", 1)[0].strip()
    assert "requirements/" not in demo, "the user's install stays unpinned"
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    assert "lock.sh refresh" in contributing and "lock.sh newest" in contributing, "CONTRIBUTING.md: moving the lock"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_environment_files_pin_the_locked_versions(path):
    """Every conda and pip line with a version pins the lock's version (==), so conda and Binder run what CI ran."""
    pins = _lock()
    conda, pip = _env_specs(path)
    for spec in conda + [s for s in pip if not s.startswith("-")]:
        name, bound = _split(spec)
        bound = bound.split("#")[0].strip()
        if name == "python":
            made_on = _lock_python()
            assert bound == f"={made_on}", f"{path.name}: {spec!r}, but the lock was made on Python {made_on}"
            continue
        if name == "pip":  # the installer itself
            continue
        assert bound.startswith("=="), f"{path.name}: {spec!r} should pin the lock's version with =="
        dist = _normal(PIP_NAMES.get(name, name))
        assert Version(bound[2:].strip()) == pins[dist], f"{path.name}: {spec!r}, but the lock has {pins[dist]}"


def test_local_environment_installs_the_checkout():
    _, pip = _env_specs(ROOT / "environment.yml")
    assert "-e ." in pip, "environment.yml should install the package from the checkout (pip: -e .)"


def test_binder_has_cpu_pytorch_quick_profile_and_prerendered_data():
    conda, pip = _env_specs(ROOT / "binder" / "environment.yml")
    names = {_split(s)[0] for s in conda}
    assert "pytorch-cpu" in names and "pytorch" not in names, "Binder has no GPU: use the CPU-only PyTorch"
    assert not any(s.startswith("-e") for s in pip), "binder/postBuild installs the package (paths differ there)"

    post = ROOT / "binder" / "postBuild"
    start = ROOT / "binder" / "start"
    for script in (post, start):
        assert script.read_text().startswith("#!"), f"{script.name} needs a shebang line"
        assert os.access(script, os.X_OK), f"{script.name} must be executable (chmod +x)"
    text = post.read_text()
    assert "pip install --no-deps -e ." in text
    assert "load_galaxies(" in text and "get_profile('quick')" in text, "postBuild pre-renders the quick set"

    text = start.read_text()
    assert re.search(r"^export GALAXY_AE_PROFILE=\S*quick", text, re.M), "binder/start selects the quick profile"
    assert text.rstrip().endswith('exec "$@"'), 'binder/start must end with exec "$@" to start the server'


def test_binder_prerenders_what_the_quick_profile_loads():
    from galaxy_autoencoders.config import get_profile

    profile = get_profile("quick")
    assert profile.dataset == "synthetic", "postBuild renders the synthetic set: the quick profile must use it"


def _badge_targets(text: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    return COLAB_URL.findall(text), BINDER_URL.findall(text)


def test_readme_badges_point_at_existing_notebooks():
    readme = (ROOT / "README.md").read_text()
    colab, binder = _badge_targets(readme)
    for slug, branch, path in colab + binder:
        assert (slug, branch) == (SLUG, BRANCH), f"badge points at {slug}@{branch}, not {SLUG}@{BRANCH}"
        assert (ROOT / path).is_file(), f"README badge points at {path}, which does not exist"
    for nb in NOTEBOOKS:
        rel = nb.relative_to(ROOT).as_posix()
        assert rel in {p for _, _, p in colab}, f"README has no Colab badge for {rel}"
        assert rel in {p for _, _, p in binder}, f"README has no Binder badge for {rel}"
    assert COLAB_BADGE in readme and BINDER_BADGE in readme


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_colab_and_binder_badges_to_itself(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    colab, binder = _badge_targets(first.source)
    rel = nb_path.relative_to(ROOT).as_posix()
    assert colab == [(SLUG, BRANCH, rel)], f"{nb_path.name}: first cell needs one Colab badge for {rel}"
    assert binder == [(SLUG, BRANCH, rel)], f"{nb_path.name}: first cell needs one Binder badge for {rel}"
    assert COLAB_BADGE in first.source and BINDER_BADGE in first.source


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_installs_the_package_only_on_colab(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    lines = code[0].source.splitlines()
    guard = 'if "google.colab" in sys.modules:'
    assert "import sys" in lines and guard in lines, f"{nb_path.name}: first code cell lacks the Colab guard"
    installs = [i for i, line in enumerate(lines) if "pip install" in line]
    assert installs, f"{nb_path.name}: first code cell installs nothing on Colab"
    for i in installs:
        assert lines[i].startswith((" ", "\t")) and i > lines.index(guard), "the install must be inside the guard"
        assert f"git+https://github.com/{SLUG}" in lines[i], f"install from the GitHub repository {SLUG}"
    for cell in code[1:]:
        assert "pip install" not in cell.source, f"{nb_path.name}: only the first code cell installs"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_ignored_outputs_are_marked_by_cell_tags_not_comments_in_student_code(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            marked = cell.source[:60]
            assert "NBVAL" not in cell.source, f"{nb_path.name}: use the cell tag nbval-ignore-output: {marked}"
            for tag in cell.metadata.get("tags", []):  # a misspelt nbval tag would silently compare the output
                if tag.startswith("nbval"):
                    assert tag in {"nbval-ignore-output", "nbval-skip"}, f"{nb_path.name}: unknown tag {tag!r}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_compared_cell_shows_an_animation(nb_path):
    """nbval skips PNG and JPEG but compares a GIF byte for byte, and a GIF's palette turns a last-bit difference
    of a decoded frame (another thread count) into other bytes: an animation's cell is tagged nbval-ignore-output."""
    for cell in nbformat.read(nb_path, as_version=4).cells:
        shows_gif = any("image/gif" in out.get("data", {}) for out in cell.get("outputs", []))
        if shows_gif:
            assert "nbval-ignore-output" in cell.metadata.get("tags", []), f"{nb_path.name}: {cell.source[:60]}"


DOCUMENTS = [
    "README.md",
    "ARCHITECTURE.md",
    "CONTRIBUTING.md",
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")),
]


def test_the_readme_stays_a_users_document_under_2000_words():
    words = len((ROOT / "README.md").read_text().split())
    assert words < 2000, f"README.md has {words} words; move details to ARCHITECTURE.md, CONTRIBUTING.md or docs/"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_relative_link_of_the_documents_exists(document):
    path = ROOT / document
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    missing = [t for t in targets if "://" not in t and not (path.parent / t).exists()]
    assert not missing, f"{document} links to files that do not exist: {missing}"


def test_every_notebook_links_to_the_glossary_page():
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = "".join(
            "".join(c.source) for c in nbformat.read(nb_path, as_version=4).cells if c.cell_type == "markdown"
        )
        assert "](../docs/glossary.md)" in text, f"{nb_path.name} does not link to docs/glossary.md"
        missing = [t for t in re.findall(r"\]\((\.\./[^)#\s]+)", text) if not (nb_path.parent / t).exists()]
        assert not missing, f"{nb_path.name} links to files that do not exist: {missing}"

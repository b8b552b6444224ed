"""The code's shape (issue "One concept per module"): files a person reads top to bottom, functions that fit on a
screen, no private fastai API, and the README's map of the code naming every module there is."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "galaxy_autoencoders"
README = PACKAGE.parent / "README.md"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_longer_than_400_lines():
    long = {p.relative_to(PACKAGE).as_posix(): n for p in _modules() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"split these modules (one concept each): {long}"


def test_no_function_is_longer_than_60_lines():
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE).as_posix()}:{node.name}"] = length
    assert not long, f"split these functions: {long}"


def test_no_private_fastai_api_is_used():
    # A learner's or recorder's private members change between fastai versions without notice.
    private = re.compile(r"\b(learn|learner|recorder)\._[a-z]\w*")
    found = [f"{p.name}: {m.group(0)}" for p in _modules() for m in private.finditer(p.read_text())]
    assert not found, found


def test_the_readme_lays_out_every_module():
    section = README.read_text().split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([\w/]+\.py)`", section))
    modules = {p.relative_to(PACKAGE).as_posix() for p in _modules() if p.name != "__init__.py"}
    assert modules <= listed, f"not in the README's layout section: {sorted(modules - listed)}"
    assert listed <= modules, f"in the README but not in the package: {sorted(listed - modules)}"


def _layout_order() -> list[str]:
    """The modules in the order of the README's table (the order the data flows)."""
    section = README.read_text().split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    order = []
    for line in section.splitlines():
        if line.startswith("| `"):
            order += re.findall(r"`([\w/]+\.py)`", line.split(" | ")[0])
    return order


def _imported_modules(path: Path) -> set[str]:
    """The package modules path imports, at the top or inside a function (relative imports only)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.ImportFrom) and node.level):
            continue
        base = path.parent
        for _ in range(node.level - 1):
            base = base.parent
        stem = base.joinpath(*node.module.split(".")) if node.module else base
        for candidate in [stem, *(stem / alias.name for alias in node.names)]:
            if candidate.with_suffix(".py").is_file():
                found.add(candidate.with_suffix(".py").relative_to(PACKAGE).as_posix())
    return found


def test_a_module_imports_only_from_those_above_it_in_the_layout():
    order = _layout_order()
    position = {name: i for i, name in enumerate(order)}
    backwards = [
        f"{name} imports {used}"
        for name in order
        if name in position and (PACKAGE / name).is_file()
        for used in sorted(_imported_modules(PACKAGE / name))
        if used in position and position[used] > position[name]
    ]
    assert not backwards, backwards


def test_names_that_moved_are_importable_from_their_old_homes():
    from galaxy_autoencoders import data, inference, training
    from galaxy_autoencoders.datasets import GalaxyDataError, load_galaxies
    from galaxy_autoencoders.learner import save_learner, vae_learner
    from galaxy_autoencoders.metrics import encode_all, reconstruct_all

    assert (load_galaxies, GalaxyDataError) == (data.load_galaxies, data.GalaxyDataError)
    assert (vae_learner, save_learner) == (training.vae_learner, training.save_learner)
    assert (encode_all, reconstruct_all) == (inference.encode_all, inference.reconstruct_all)

"""The code's shape (issue "One concept per module"): files a person reads top to bottom, functions that fit on a
screen, no private fastai API, and ARCHITECTURE.md's map of the code naming every module there is."""

import ast
import importlib
import importlib.util
import inspect
import json
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "galaxy_autoencoders"
ARCHITECTURE = PACKAGE.parent / "ARCHITECTURE.md"
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


def test_the_architecture_lays_out_every_module():
    section = ARCHITECTURE.read_text().split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([\w/]+\.py)`", section))
    modules = {p.relative_to(PACKAGE).as_posix() for p in _modules() if p.name != "__init__.py"}
    assert modules <= listed, f"not in ARCHITECTURE.md's layout section: {sorted(modules - listed)}"
    assert listed <= modules, f"in ARCHITECTURE.md but not in the package: {sorted(listed - modules)}"


def _layout_order() -> list[str]:
    """The modules in the order of ARCHITECTURE.md's table (the order the data flows)."""
    section = ARCHITECTURE.read_text().split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
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


def _imports(path: Path, source: str):
    """(module, name) for each `from galaxy_autoencoders... import name` in source (relative ones resolved)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1] if path.is_relative_to(PACKAGE) else ()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            parts = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(parts + ([node.module] if node.module else []))
            if module.startswith("galaxy_autoencoders"):
                yield from ((module, alias.name) for alias in node.names)


def _code_of(path: Path) -> str:
    if path.suffix != ".ipynb":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    return "\n".join(line for cell in code for line in cell.splitlines() if not line.lstrip().startswith(("%", "!")))


def test_every_name_is_imported_from_its_one_home():
    """The package, its notebooks, tests and benchmarks import each name of the package from the module that defines
    it, or from a package (`galaxy_autoencoders`, `.data`, `.training`) that lists it in __all__: no re-exports."""
    root = PACKAGE.parent
    files = [*_modules(), *root.glob("tests/*.py"), *root.glob("benchmarks/*.py"), *root.glob("notebooks/*.ipynb")]
    wrong = set()
    for path in files:
        for module_name, name in _imports(path, _code_of(path)):
            module = importlib.import_module(module_name)
            if importlib.util.find_spec(f"{module_name}.{name}") if hasattr(module, "__path__") else False:
                continue  # a module of a package
            if module_name.endswith("._fastai") or inspect.ismodule(getattr(module, name)):
                continue  # fastai's names, imported in one place on purpose; or a module
            defined = _top_level_names(Path(module.__file__))
            if name not in defined and not (module.__file__.endswith("__init__.py") and name in module.__all__):
                wrong.add(f"{path.name}: {name} from {module_name}")
    assert not wrong, f"import these from the module that defines them: {sorted(wrong)}"


def _top_level_names(path: Path) -> set[str]:
    """Names a module defines itself: its functions, classes and assignments at the top level."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names

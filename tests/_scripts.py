"""Test helper: a script of the repository (a benchmark, docs/build_site.py) as a module, to call its functions."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def load_script(path: Path):
    """The Python file at path, run as a module named after it -> the module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

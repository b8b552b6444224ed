"""The tests that train a model for about a minute (marked slow) run after all the others, so that `pytest -x`
reaches the fast checks first: a broken change fails in seconds, and mutation testing (which stops a mutant at
its first failing test, `benchmarks/mutation_testing.py`) spends minutes only on the mutants the fast tests miss."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains a model for about a minute; runs after the other tests")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)  # stable: the rest keep their order

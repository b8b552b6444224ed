"""The tests that train a model for about a minute (marked slow) run after all the others, so that `pytest -x`
reaches the fast checks first: a broken change fails in seconds, and mutation testing (which stops a mutant at
its first failing test, `benchmarks/mutation_testing.py`) spends minutes only on the mutants the fast tests miss."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from _scripts import load_script


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains a model for about a minute; runs after the other tests")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)  # stable: the rest keep their order


# -- the course site and a browser, shared by tests/test_site.py and tests/test_explorer_page.py ----------------

CHROMIUM = "/usr/bin/chromium"  # Debian's; never a downloaded browser (see tests/test_browser.py)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def build_site():
    """docs/build_site.py as a module: its build, its link check."""
    return load_script(ROOT / "docs" / "build_site.py")


@pytest.fixture(scope="session")
def course_site(build_site, tmp_path_factory) -> Path:
    """The site `python docs/build_site.py` builds, once per test run, in a temporary folder; skips without npm,
    which the explorer's onnxruntime-web comes from (as the browser tests skip without Chromium)."""
    if not shutil.which("npm"):
        pytest.skip("the site's explorer needs onnxruntime-web from npm: install Node.js 18+ with npm (nodejs.org)")
    out = tmp_path_factory.mktemp("site") / "_site"
    assert build_site.main(["--out", str(out)]) == 0  # else its error is on stderr
    return out


@pytest.fixture(scope="session")
def course_site_url(course_site):
    """The built site served by Python's static server on 127.0.0.1, as a reader would open it: its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = load_script(ROOT / "benchmarks" / "web_explorer.py").serve(course_site, port)  # the benchmark's server
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=15)


@pytest.fixture(scope="module")
def chromium():
    """Debian's headless Chromium through Playwright, one per test module (Playwright's sync API allows one at a
    time, and tests/test_browser.py starts its own); skips where /usr/bin/chromium is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip("the browser tests need Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        yield browser
        browser.close()

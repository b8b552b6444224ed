"""The latent explorer in a real browser: JupyterLab on 127.0.0.1 with a token, driven by headless Chromium.

The test writes a one-cell notebook that shows a `LatentExplorer`, runs the cell in JupyterLab, drags a slider
and checks that the decoded galaxy on screen changed, then clicks "Reset to mean" and checks that the
original picture is back, pixel for pixel. Screenshots and the measured slider latency (slider drag to new
picture, as the browser sees it) are written to $GALAXY_AE_TEST_ARTIFACTS (default: test-artifacts/browser).

It uses Debian's Chromium (`apt-get install chromium`) through the Playwright Python client, never a
downloaded browser, and skips only when /usr/bin/chromium is missing.
"""

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("GALAXY_AE_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI containers run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="the browser test needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)",
)

# A drawn toy galaxy instead of a trained VAE: no training in a test, and a slider move that a person looking
# at the screenshot can read (z0 grows the galaxy, z1 stretches it, z2 turns it from blue to red).
CELL = """\
import torch

from galaxy_autoencoders.models import ModelConfig
from galaxy_autoencoders.widgets import LatentExplorer


class ToyGalaxies(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.config = ModelConfig(latent_size=3)
        self.brightness = torch.nn.Parameter(torch.tensor(1.0))

    def decode(self, z):  # (B, 3) -> (B, 3, 69, 69) in [0, 1]
        yy, xx = torch.meshgrid(torch.arange(69.0) - 34, torch.arange(69.0) - 34, indexing="ij")
        size = 7 * torch.exp(0.3 * z[:, 0]).view(-1, 1, 1)
        q = 0.2 + 0.8 * torch.sigmoid(z[:, 1]).view(-1, 1, 1)
        light = torch.exp(-(xx**2 + (yy / q) ** 2) / size**2)  # (B, 69, 69)
        red = torch.sigmoid(z[:, 2])
        colour = torch.stack([red, torch.full_like(red, 0.6), 1 - red], 1)  # (B, 3)
        return (self.brightness * light[:, None] * colour[:, :, None, None]).clamp(0, 1)


explorer = LatentExplorer(ToyGalaxies().eval(), k=3, name="toy galaxies")
explorer"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 with a random token, serving a folder with explorer.ipynb."""
    home = tmp_path_factory.mktemp("lab")
    work = home / "work"
    work.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, work / "explorer.ipynb")
    # Lab's own config, settings and workspaces in the temporary folder: the user's never leak in or get changed.
    labconfig = home / "config" / "labconfig"
    labconfig.mkdir(parents=True)
    # The news pop-up would ask a question on first start; nothing should cover the notebook.
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "GALAXY_AE_PROFILE": "quick",
    }
    port, token = _free_port(), uuid.uuid4().hex
    log = open(home / "lab.log", "w")  # noqa: SIM115  (closed in the teardown below)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.terminals_enabled=False",
            *(["--allow-root"] if os.geteuid() == 0 else []),  # CI containers often run as root
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start; its log:\n{(home / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        # Start the notebook's kernel through the REST API before the page opens: Lab then attaches to it
        # instead of starting one itself, which on a slow machine can end in a "Select Kernel" dialog.
        request = urllib.request.Request(
            f"{base}/api/sessions",
            data=json.dumps(
                {"path": "explorer.ipynb", "name": "explorer.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
            ).encode(),
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 201, f"could not start a kernel: HTTP {r.status}"
        yield {"url": f"{base}/lab/tree/explorer.ipynb?token={token}", "log": home / "lab.log"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def _run_cell(page, cell, attempts: int = 6) -> None:
    """Run cell with Ctrl+Enter until its prompt shows [*] or a number.

    Lab accepts the key press before its kernel connection is ready and then drops the request, so one press
    is not always enough on a slow machine; running again is harmless, the cell has not run yet.
    """
    prompt = cell.locator(".jp-InputArea-prompt")
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    for _ in range(attempts):
        if accept.is_visible():  # "Select Kernel": take the one offered, the notebook's python3
            accept.click()
        cell.locator(".cm-content").click()
        page.keyboard.press("Control+Enter")
        try:
            _wait_for(lambda: prompt.inner_text().strip() not in ("", "[ ]:"), 10, "the cell to start")
            return
        except AssertionError:
            continue
    raise AssertionError(f"The cell never started running after {attempts} tries; is the kernel alive?")


def _shot_if(element, predicate) -> bytes | None:
    """A screenshot of element if its pixels satisfy predicate, else None."""
    shot = element.screenshot()
    return shot if predicate(_pixels(shot)) else None


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value is not None and value is not False:
            return value
        time.sleep(0.05)
    raise AssertionError(f"Timed out after {timeout:.0f} s waiting for {what}.")


def test_explorer_slider_changes_the_galaxy_and_reset_restores_it(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.iterdir():  # the folder describes this run only
        old.unlink()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile: no cache, cookies or extensions from before
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        page = context.pages[0] if context.pages else context.new_page()
        try:
            page.goto(lab["url"])
            cell = page.locator(".jp-Notebook .jp-CodeCell").first
            cell.wait_for(timeout=60_000)
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
            _run_cell(page, cell)

            output = page.locator(".jp-OutputArea-output").filter(has=page.locator(".widget-slider")).first
            output.wait_for(timeout=60_000)  # kernel start, torch import and the first decode
            image = output.locator("img.widget-image").first
            _wait_for(lambda: image.get_attribute("src"), 30, "the decoded galaxy to appear")
            before = image.screenshot()
            output.screenshot(path=str(ARTIFACTS / "explorer_start.png"))

            # Drag the first slider's handle to the right, timing the browser's round trip: the mouse moves,
            # the kernel decodes, and the image's src changes to the new PNG.
            page.evaluate(
                """img => {
                    window.__srcChanged = null;
                    const first = () => { if (window.__srcChanged === null) window.__srcChanged = performance.now(); };
                    new MutationObserver(first).observe(img, {attributes: true, attributeFilter: ['src']});
                }""",
                image.element_handle(),
            )
            handle = output.locator(".noUi-handle").first
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            t_move = page.evaluate("performance.now()")
            page.mouse.move(box["x"] + box["width"] / 2 + 90, box["y"] + box["height"] / 2, steps=3)
            page.mouse.up()
            changed_at = _wait_for(lambda: page.evaluate("window.__srcChanged"), 20, "the image to update")
            latency_ms = changed_at - t_move
            readout = output.locator(".widget-readout").first
            _wait_for(lambda: readout.inner_text() not in ("+0.0", "0.0"), 10, "the slider readout to move")
            moved = _wait_for(
                lambda: _shot_if(image, lambda shot: not np.array_equal(shot, _pixels(before))),
                20,
                "the decoded galaxy to change after the slider moved",
            )
            moved_readout = readout.inner_text()
            output.screenshot(path=str(ARTIFACTS / "explorer_moved.png"))

            output.get_by_role("button", name="Reset to mean").click()
            _wait_for(lambda: readout.inner_text() in ("+0.0", "0.0"), 20, "the slider to return to 0")
            restored = _wait_for(
                lambda: _shot_if(image, lambda shot: np.array_equal(shot, _pixels(before))),
                20,
                "the reset button to restore the first picture",
            )
            output.screenshot(path=str(ARTIFACTS / "explorer_reset.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure_page.png"), full_page=True)
            shutil.copy(lab["log"], ARTIFACTS / "lab.log")
            raise
        finally:
            context.close()

    difference = np.abs(_pixels(moved) - _pixels(before))
    report = {
        "slider_readout_after_drag": moved_readout,
        "changed_pixel_fraction": float((difference.max(axis=2) > 0).mean()),
        "mean_abs_difference": float(difference.mean()),
        "browser_latency_ms": round(latency_ms, 1),
        "restored_exactly": bool(np.array_equal(_pixels(restored), _pixels(before))),
    }
    (ARTIFACTS / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"browser test: {report}")
    assert report["changed_pixel_fraction"] > 0.05  # a real change of the picture, not one stray pixel

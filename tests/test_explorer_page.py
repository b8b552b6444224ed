"""The course site's latent explorer page in a real browser: Debian's Chromium, driven by Playwright, reading the
site that docs/build_site.py built (the `course_site` fixture of conftest.py), served by a plain static server.

The page must load without a console error, redraw when a slider moves, decode what the package's PyTorch
decoders decode (5 fixed codes, both models), come back to the same picture on "Reset to the mean", fit a phone
and a projector, and stay within 20 MB of downloads. Its speed is measured by benchmarks/web_explorer.py.
"""

import json

import numpy as np
import pytest
import torch

from galaxy_autoencoders import pretrained
from galaxy_autoencoders.display import to_hwc_uint8
from galaxy_autoencoders.inference import decode

pytestmark = pytest.mark.usefixtures("chromium")
PAGE = "docs/explorer.html"
MODELS = ("elbo", "mmd")


@pytest.fixture(scope="module")
def browser(chromium, course_site_url):
    """One page of the explorer, loaded; with the console errors and failed requests it has seen."""
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.goto(f"{course_site_url}/{PAGE}")
    page.wait_for_function("window.galaxyExplorer !== undefined")
    page.evaluate("galaxyExplorer.ready")
    yield page, problems
    page.close()


def _pixels(page, model: str) -> np.ndarray:
    """The model's canvas as uint8 (69, 69, 3)."""
    rgba = np.array(page.evaluate(f"galaxyExplorer.pixels('{model}')"), dtype=np.uint8)
    return rgba.reshape(69, 69, 4)[..., :3]


def test_the_page_loads_without_errors_and_shows_both_models(browser):
    page, problems = browser
    assert problems == []
    assert page.locator(".ge-status").inner_text().startswith("Showing the mean galaxy.")
    assert page.locator("figure.ge-model strong").all_inner_texts() == ["ELBO-VAE", "MMD-VAE"]
    for model in MODELS:
        assert _pixels(page, model).std() > 5  # a galaxy, not a blank canvas
    assert page.locator(".ge-galaxy").count() == 10  # one real galaxy of each class to start from


def _assert_decodes(page, model: str, code: torch.Tensor) -> None:
    """The model's canvas equals the package's PyTorch decoder's picture of code, within 2/255 on 99% of pixels."""
    want = to_hwc_uint8(decode(pretrained.load(model), code[None]))[0].astype(int)
    difference = np.abs(_pixels(page, model).astype(int) - want)
    assert (difference <= 2).mean() >= 0.99, f"{model}: {np.mean(difference <= 2):.4f} of pixels within 2/255"
    assert difference.max() <= 8


@pytest.mark.parametrize("model", MODELS)
def test_five_codes_decode_as_in_python(browser, model):
    page, _ = browser
    generator = torch.Generator().manual_seed(7)
    codes = torch.cat([torch.zeros(1, 20), torch.randn(4, 20, generator=generator) * 1.5])  # (5, 20)
    for code in codes:
        page.evaluate("codes => galaxyExplorer.show(codes)", {m: code.tolist() for m in MODELS})
        _assert_decodes(page, model, code)


def test_a_slider_moves_each_models_top_dimension_by_its_sigma_even_in_a_burst(browser, course_site):
    page, _ = browser
    page.get_by_role("button", name="Reset to the mean").click()
    page.evaluate("galaxyExplorer.idle()")
    before = page.evaluate("galaxyExplorer.drawn.count")
    # Four input events at once, as a fast drag sends them: the page draws the first and then only the last.
    page.evaluate(
        """() => {
            const slider = document.querySelector('.ge-slider input');
            for (const value of [0.3, 0.9, 1.2, 1.5]) {
                slider.value = value;
                slider.dispatchEvent(new Event('input'));
            }
        }"""
    )
    page.evaluate("galaxyExplorer.idle()")
    assert page.evaluate("galaxyExplorer.drawn.count") - before == 2
    explorer = json.loads((course_site / "docs" / "explorer" / "explorer.json").read_text())
    for spec in explorer["models"]:
        top = spec["order"][0]
        code = torch.tensor(spec["mean"])
        code[top] += 1.5 * spec["std"][top]  # the mean code, its most informative dimension +1.5 sigma
        _assert_decodes(page, spec["key"], code)


def test_a_slider_changes_both_pictures_and_reset_restores_them(browser):
    page, problems = browser
    page.get_by_role("button", name="Reset to the mean").click()
    page.evaluate("galaxyExplorer.idle()")
    start = {m: _pixels(page, m) for m in MODELS}
    first = page.locator(".ge-slider input").first
    first.focus()
    for _ in range(15):  # +1.5 sigma with the keyboard, as a person without a mouse would
        page.keyboard.press("ArrowRight")
    page.evaluate("galaxyExplorer.idle()")
    assert page.locator(".ge-slider output").first.inner_text() == "+1.5σ"
    for model in MODELS:
        assert np.abs(_pixels(page, model).astype(int) - start[model]).max() > 20, model
    page.locator(".ge-galaxy").nth(9).click()
    page.evaluate("galaxyExplorer.idle()")
    assert "real galaxy" in page.locator(".ge-status").inner_text()
    page.get_by_role("button", name="Reset to the mean").click()
    page.evaluate("galaxyExplorer.idle()")
    assert page.locator(".ge-slider output").first.inner_text() == "+0.0σ"
    for model in MODELS:
        np.testing.assert_array_equal(_pixels(page, model), start[model])
    assert problems == []


def test_sampling_the_prior_says_so_and_draws_other_galaxies(browser):
    page, _ = browser
    page.get_by_role("button", name="Reset to the mean").click()
    page.evaluate("galaxyExplorer.idle()")
    mean = _pixels(page, "mmd")
    page.get_by_role("button", name="Sample the prior").click()
    page.evaluate("galaxyExplorer.idle()")
    assert "prior" in page.locator(".ge-status").inner_text()
    assert page.locator(".ge-source").all_inner_texts()[0].endswith("its ELBO-VAE code")
    assert not np.array_equal(_pixels(page, "mmd"), mean)


@pytest.mark.parametrize(("width", "height"), [(375, 740), (1920, 1080)])
def test_fits_a_phone_and_fills_a_projector(chromium, course_site_url, width, height):
    page = chromium.new_page(viewport={"width": width, "height": height})
    try:
        page.goto(f"{course_site_url}/{PAGE}")
        page.evaluate("galaxyExplorer.ready")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= width  # nothing to scroll sideways
        boxes = [page.locator(f'canvas[data-model="{m}"]').bounding_box() for m in MODELS]
        assert boxes[0]["y"] == boxes[1]["y"]  # side by side, not one under the other
        assert boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"]
        smallest = 140 if width < 500 else 300
        assert all(box["width"] >= smallest for box in boxes), boxes
        slider = page.locator(".ge-slider input").first.bounding_box()
        assert slider["width"] >= 150  # long enough to drag with a thumb
    finally:
        page.close()


def test_the_explorer_downloads_at_most_20_mb(chromium, course_site_url):
    page = chromium.new_page()
    sizes = {}
    page.on("response", lambda response: sizes.__setitem__(response.url, len(response.body())))
    try:
        page.goto(f"{course_site_url}/{PAGE}")
        page.evaluate("galaxyExplorer.ready")
        page.wait_for_load_state("networkidle")
    finally:
        page.close()
    assert any(url.endswith(".wasm") for url in sizes) and any(url.endswith("mmd.onnx") for url in sizes)
    assert all(url.startswith(course_site_url) or url.startswith("data:") for url in sizes)  # nothing from a CDN
    # The explorer's own files (runtime, decoders, codes, script): the budget. The theme comes on top.
    own = {url: size for url, size in sizes.items() if url.startswith(f"{course_site_url}/docs/explorer/")}
    assert sum(own.values()) <= 20e6, sorted(own.items(), key=lambda item: -item[1])[:5]

"""How fast the course site's latent explorer answers in a browser: slider to redrawn canvas, first picture, bytes.

    python docs/build_site.py                  # the site, with the explorer, in _site/
    python benchmarks/web_explorer.py [--site _site] [--moves 200] [--json OUT]

Serves the built site with Python's static server on 127.0.0.1, opens docs/explorer.html in Debian's Chromium
(headless, through Playwright, a fresh profile: nothing cached) and measures, in one run:
- what the page downloads, in MB: all of it (the page and the site's theme too), and the explorer's own files
  (runtime, decoders, codes, script: docs/explorer/), whose budget is 20 MB;
- the time from requesting the page to both decoded pictures on screen;
- slider input to redrawn canvas, for each model: the page decodes the ELBO-VAE, draws it, then the MMD-VAE,
  so the MMD time is the time until both pictures are new. Each move is a real key press (ArrowRight, then
  ArrowLeft at the ends) on the first slider, and the next waits until the page has drawn the last.
The budget is one frame at 60 fps: median <= 16 ms. The page's own clock (`performance.now()` against the input
event's timestamp) does the timing; `window.galaxyExplorer.drawn` holds it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from galaxy_autoencoders.config import cpu_info

CHROMIUM = "/usr/bin/chromium"
PAGE = "docs/explorer.html"
BUDGET_MS = 16.0


def serve(folder: Path, port: int) -> subprocess.Popen:
    """Python's static server for folder on 127.0.0.1:port, once it answers."""
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"python -m http.server did not answer on port {port} within 20 s") from None
            time.sleep(0.2)


def measure(url: str, moves: int) -> dict:
    """Load the explorer at url in a fresh Chromium and time `moves` slider moves; returns the numbers."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = context.new_page()
        sizes = {}
        page.on("response", lambda response: sizes.__setitem__(response.url, len(response.body())))
        page.goto(url)
        page.evaluate("galaxyExplorer.ready")
        page.wait_for_load_state("networkidle")
        first_ms = page.evaluate("galaxyExplorer.drawn.first")
        slider = page.locator(".ge-slider input").first
        slider.focus()
        key, position = "ArrowRight", 0
        for _ in range(moves):
            if abs(position) >= 30:  # +-3 sigma in steps of 0.1: turn round
                key = "ArrowLeft" if position > 0 else "ArrowRight"
            page.keyboard.press(key)
            position += 1 if key == "ArrowRight" else -1
            page.evaluate("galaxyExplorer.idle()")
        timings = page.evaluate("galaxyExplorer.drawn.timings")
        context.close()
    own = sum(size for address, size in sizes.items() if "/docs/explorer/" in address)  # runtime, decoders, codes
    result = {
        "first_picture_ms": round(first_ms),
        "download_mb": round(sum(sizes.values()) / 1e6, 2),
        "explorer_mb": round(own / 1e6, 2),
    }
    for model in ("elbo", "mmd"):
        ms = np.array([t["ms"] for t in timings if t["model"] == model])
        result[model] = {
            "moves": int(len(ms)),
            "median_ms": round(float(np.median(ms)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=Path("_site"), help="the built site (docs/build_site.py)")
    parser.add_argument("--moves", type=int, default=200, help="slider moves to time")
    parser.add_argument("--port", type=int, default=8731, help="port of the local static server")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    if not (args.site / PAGE).is_file():
        sys.exit(f"{args.site / PAGE} is missing: build the site first with `python docs/build_site.py`.")

    server = serve(args.site, args.port)
    try:
        result = measure(f"http://127.0.0.1:{args.port}/{PAGE}", args.moves)
    finally:
        server.terminate()
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    result["machine"] = {"cpu": cpu_info().get("model name", "unknown"), "cores": os.cpu_count(), "browser": version}
    print(f"{version}, served from {args.site}/ on 127.0.0.1")
    first = result["first_picture_ms"]
    print(
        f"download: {result['download_mb']:.1f} MB, of which the explorer's own files {result['explorer_mb']:.1f} MB "
        f"(budget 20 MB); first decoded pictures {first} ms after the request"
    )
    for model, label in (("elbo", "ELBO-VAE drawn"), ("mmd", "both drawn (MMD-VAE second)")):
        r = result[model]
        verdict = "within" if r["median_ms"] <= BUDGET_MS else "OVER"
        print(f"slider -> {label}: median {r['median_ms']} ms, p95 {r['p95_ms']} ms over {r['moves']} moves "
              f"({verdict} the {BUDGET_MS:.0f} ms budget)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

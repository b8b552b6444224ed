"""Build the course site into one folder that a plain static server serves, offline.

    python docs/build_site.py [--out _site]
    python -m http.server -d _site              # then open http://localhost:8000

1. Stage the pages in a temporary folder, in the repository's layout, so their relative links keep working: the
   README (the landing page), every notebook with its stored outputs, docs/, ARCHITECTURE.md, CONTRIBUTING.md,
   and the pictures they show. The README's copy gets the left navigation (`NAVIGATION`).
2. Sphinx with docs/conf.py, every warning an error: a broken cross-reference or a missing picture fails the
   build. The notebooks are rendered as stored, never executed.
3. Assemble the explorer page's files into OUT/docs/explorer/: its script and style, onnxruntime-web's wasm build
   (from npm, pinned by docs/explorer/package-lock.json) and the decoders and codes (`web.export_web`).
4. Check every page: each link and picture inside the site must lead to a file (and its #id), and no page may
   load a script, style, font or picture from another host. External links are not followed.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"  # holds conf.py
EXPLORER = DOCS / "explorer"  # the explorer page's script, style and npm lock; in the site beside its page too
ONNXRUNTIME = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
NOTEBOOKS = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "notebooks").glob("*.ipynb"))

# The left navigation: (caption, pages), in order. The README is the landing page above them (conf.py's root_doc).
NAVIGATION = (
    ("The course", NOTEBOOKS),
    ("Explore", ["docs/explorer.md"]),
    ("Reference", ["docs/glossary.md", "docs/troubleshooting.md", "docs/api.md", "docs/performance.md"]),
    ("Development", ["ARCHITECTURE.md", "CONTRIBUTING.md"]),
)
PAGES = ["README.md", *(page for _, pages in NAVIGATION for page in pages)]
IMG_SRC = re.compile(r"<img\b[^>]*\bsrc\s*=\s*[\"']([^\"']+)", re.IGNORECASE)
WIDGET = "application/vnd.jupyter.widget-view+json"
EXTERNAL_PICTURE = re.compile(r"!\[([^\]]*)\]\((?:https?:)?//[^)\s]+\)")  # ![alt](https://...)
CSS_URL = re.compile(r"(?:url\(\s*[\"']?|@import\s+[\"'])((?:https?:)?//[^\"')\s]+)", re.IGNORECASE)


class SiteError(RuntimeError):
    """The site cannot be built as asked; the message says why and what to do."""


def stage(staging: Path) -> None:
    """Copy the pages (`PAGES`) and the local pictures they show into staging, in the repository's layout."""
    for page in PAGES:
        source = ROOT / page
        if not source.is_file():
            raise SiteError(f"{page} is missing: the site's navigation lists it (NAVIGATION in docs/build_site.py).")
        _copy(source, staging / page)
        _offline(staging / page)
        for picture in _pictures(source):
            path = (source.parent / picture).resolve()
            if path.is_file() and path.is_relative_to(ROOT):  # a missing one is left for Sphinx to report
                _copy(path, staging / path.relative_to(ROOT))
    with open(staging / "README.md", "a", encoding="utf-8") as readme:
        readme.write(_toctrees())


def _offline(page: Path) -> None:
    """Make a staged page read well on a static site, in place. Each picture from another host (the Colab and
    Binder badges) becomes its alt text: offline it would be a broken picture, and its link still works as text.
    A notebook's widget outputs with no picture to stand in for them (the progress bars) are dropped: their
    stored text is a snapshot of a bar at 0%."""
    if page.suffix == ".ipynb":
        import nbformat

        notebook = nbformat.read(page, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "markdown":
                cell.source = EXTERNAL_PICTURE.sub(r"\1", cell.source)
            elif cell.cell_type == "code":
                cell.outputs = [output for output in cell.outputs if not _bare_widget(output)]
        nbformat.write(notebook, page)
    else:
        page.write_text(EXTERNAL_PICTURE.sub(r"\1", page.read_text(encoding="utf-8")), encoding="utf-8")


def _bare_widget(output) -> bool:
    """Whether a notebook output is a widget view with nothing but text besides (no picture to show instead)."""
    data = output.get("data", {})
    return WIDGET in data and not any(mime.startswith("image/") for mime in data)


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _pictures(page: Path) -> list[str]:
    """The local pictures a Markdown page or a notebook's Markdown cells show: ![...](path) and <img src=...>."""
    from markdown_it import MarkdownIt  # comes with MyST, as the pages are read the same way

    if page.suffix == ".ipynb":
        import nbformat

        cells = nbformat.read(page, as_version=4).cells
        texts = [cell.source for cell in cells if cell.cell_type == "markdown"]
    else:
        texts = [page.read_text(encoding="utf-8")]
    sources = []
    for token in (t for text in texts for t in MarkdownIt("commonmark").enable("table").parse(text)):
        for part in [token, *(token.children or [])]:
            if part.type == "image":
                sources.append(part.attrGet("src"))
            elif part.type in ("html_block", "html_inline"):
                sources += IMG_SRC.findall(part.content)
    return [unquote(src) for src in sources if not urlsplit(src).scheme and not urlsplit(src).netloc]


def _toctrees() -> str:
    """The left navigation as MyST toctrees, hidden: the theme shows them in its sidebar, not on the page."""
    blocks = []
    for caption, pages in NAVIGATION:
        docnames = "\n".join(Path(page).with_suffix("").as_posix() for page in pages)
        blocks.append(f"\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n{docnames}\n```\n")
    return "".join(blocks)


def run_sphinx(staging: Path, work: Path) -> Path:
    """Build staging's pages as HTML with docs/conf.py into work/html, returned; a warning fails it with SiteError.

    Sphinx goes on after a warning (what `sphinx-build -W --keep-going` does), so the error lists them all. MyST-NB
    writes the notebooks' outputs beside the HTML folder (jupyter_execute/), hence a folder inside work."""
    from sphinx.application import Sphinx
    from sphinx.util.console import strip_escape_sequences
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    warnings = io.StringIO()
    with patch_docutils(DOCS), docutils_namespace():  # as sphinx-build: a second build in one process starts clean
        app = Sphinx(
            staging, DOCS, work / "html", work / "doctrees", "html", status=None, warning=warnings, warningiserror=True
        )
        app.build()
    if app.statuscode != 0:
        found = strip_escape_sequences(warnings.getvalue()).strip()
        raise SiteError(f"Sphinx failed (every warning is an error here):\n{found}")
    return work / "html"


def write_index(out: Path) -> None:
    """OUT/index.html, what a server shows first, leads to the landing page (README.html)."""
    landing = "README.html"
    (out / "index.html").write_text(
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>galaxy_autoencoders</title>\n'
        f'<meta http-equiv="refresh" content="0; url={landing}"></head>\n'
        f'<body><a href="{landing}">What do galaxies look like to a VAE?</a></body></html>\n',
        encoding="utf-8",
    )


def find_npm() -> str:
    """npm's path, which the explorer needs for onnxruntime-web; SiteError, saying how to get it, without it."""
    npm = shutil.which("npm")
    if npm is None:
        raise SiteError(
            "npm is not on PATH: the explorer needs onnxruntime-web from npm. Install Node.js 20 with npm "
            "(https://nodejs.org, or `apt-get install nodejs npm`) and build again."
        )
    return npm


def assemble_explorer(folder: Path, npm: str) -> None:
    """The explorer page's files in folder: explorer.js and .css, onnxruntime-web's wasm build in ort/ (from npm),
    and web.export_web's decoders (elbo.onnx, mmd.onnx) and codes (explorer.json)."""
    from galaxy_autoencoders.web import export_web

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("explorer.js", "explorer.css"):
        shutil.copy2(EXPLORER / name, folder / name)
    if installed_onnxruntime() != locked_onnxruntime():  # npm ci only when the lock asks for another version
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=EXPLORER, capture_output=True, text=True)
        if done.returncode != 0:
            raise SiteError(f"`npm ci` in {EXPLORER} failed (is the computer offline?):\n{done.stderr.strip()}")
    (folder / "ort").mkdir(exist_ok=True)
    dist = EXPLORER / "node_modules" / "onnxruntime-web" / "dist"
    for name in ONNXRUNTIME:
        if not (dist / name).is_file():
            raise SiteError(
                f"onnxruntime-web {locked_onnxruntime()} has no {name} in {dist}: the page loads that file. Pin a "
                "version that has it in docs/explorer/package.json (npm install --save-exact), or update ONNXRUNTIME."
            )
        shutil.copy2(dist / name, folder / "ort" / name)
    export_web(folder)


def locked_onnxruntime() -> str:
    """The onnxruntime-web version docs/explorer/package-lock.json pins."""
    lock = json.loads((EXPLORER / "package-lock.json").read_text(encoding="utf-8"))
    return lock["packages"]["node_modules/onnxruntime-web"]["version"]


def installed_onnxruntime() -> str | None:
    """The onnxruntime-web version in docs/explorer/node_modules, None when there is none."""
    manifest = EXPLORER / "node_modules" / "onnxruntime-web" / "package.json"
    return json.loads(manifest.read_text(encoding="utf-8"))["version"] if manifest.is_file() else None


class _Page(HTMLParser):
    """One page's links, as (tag, URL) from href= and src=, and the ids a #fragment can name."""

    def __init__(self, path: Path):
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self.feed(path.read_text(encoding="utf-8", errors="replace"))

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" or (tag == "a" and name == "name"):
                self.ids.add(value)
            elif name in ("href", "src") and value is not None:
                self.links.append((tag, value))


def check_site(site: Path) -> list[tuple[str, str]]:
    """What a reader of site would miss, as (page, link) pairs: a link or picture inside the site that leads to
    no file (or to no such #id in a page), and a script, style, font or picture a page (or a style sheet) loads
    from another host. Links with a scheme or a host (https:, mailto:, data:) are not followed."""
    site = site.resolve()
    static = site / "_static"  # the theme's files, whose .html are template fragments, not pages
    pages = {path: _Page(path) for path in sorted(site.rglob("*.html")) if not path.is_relative_to(static)}
    problems = []
    for path, page in pages.items():
        name = path.relative_to(site).as_posix()
        for tag, link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:
                if tag in ("script", "link", "img") and parts.netloc:  # loaded with the page, from another host
                    problems.append((name, link))
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            target = target / "index.html" if target.is_dir() else target
            if not (target.is_file() and target.is_relative_to(site)):
                problems.append((name, link))
            elif parts.fragment and target in pages and unquote(parts.fragment) not in pages[target].ids:
                problems.append((name, link))
    for sheet in sorted(site.rglob("*.css")):
        problems += [(sheet.relative_to(site).as_posix(), url) for url in CSS_URL.findall(sheet.read_text("utf-8"))]
    return problems


def build(out: Path) -> dict:
    """Build the whole site into out (replacing a site built there before); returns pages, MB and seconds."""
    start = time.perf_counter()
    npm = find_npm()  # before the build, so that a missing npm is said at once
    out = out.resolve()
    if out.exists() and not (out / ".buildinfo").is_file() and (not out.is_dir() or any(out.iterdir())):
        raise SiteError(f"{out} holds files that are not a site built here; give another --out, or empty it.")
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="galaxy-ae-site-") as work:
        stage(Path(work) / "pages")
        shutil.move(run_sphinx(Path(work) / "pages", Path(work)), out)
    write_index(out)
    assemble_explorer(out / EXPLORER.relative_to(ROOT), npm)
    problems = check_site(out)
    if problems:
        lines = "\n".join(f"  {page}: {link}" for page, link in problems)
        raise SiteError(
            f"{len(problems)} links lead nowhere or to another host's scripts, styles and pictures:\n{lines}"
        )
    files = [path for path in out.rglob("*") if path.is_file()]
    return {
        "pages": len(PAGES),
        "html_files": sum(path.suffix == ".html" for path in files),  # the pages, index.html, search, indices
        "megabytes": sum(path.stat().st_size for path in files) / 1e6,
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    """The command: build the site and print what it holds; status 1, and why on stderr, when it cannot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--out", type=Path, default=ROOT / "_site", help="the site's folder (default: _site)")
    args = parser.parse_args(argv)
    try:
        summary = build(args.out)
    except SiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as error:  # Sphinx and MyST-NB (the site extra), or onnx (the web extra)
        print(
            f"error: {error}. Install the site's packages: pip install -c requirements/test.txt -e '.[site,web]'",
            file=sys.stderr,
        )
        return 1
    print(
        f"{args.out}: {summary['pages']} pages ({summary['html_files']} HTML files with the indices and search), "
        f"{summary['megabytes']:.1f} MB, built in {summary['seconds']:.0f} s.\n"
        f"Preview: python -m http.server -d {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

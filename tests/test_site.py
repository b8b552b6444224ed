"""The course site: `python docs/build_site.py` builds it once (conftest.py's `course_site`), and each test reads it.

What a reader needs: a page for every notebook showing its stored figures (the latent walk's GIF too), the README
as the landing page, the API reference, links that lead somewhere, and nothing loaded from another host, so the
site works offline from a plain static server. The link check itself is tested on small hand-made folders, and a
page with a missing picture must fail the build.

The explorer's onnxruntime-web comes from npm: without npm on PATH the tests that need the built site skip, as
tests/test_browser.py skips without Chromium.
"""

import json
import pkgutil
import re
from pathlib import Path

import pytest

import galaxy_autoencoders

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# sphinx-book-theme and MyST still read `.app` of Sphinx's transforms, which Sphinx 11 will remove: theirs to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*Check CHANGES for Sphinx API modifications:PendingDeprecationWarning")
EXTERNAL_ASSET = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"((?:https?:)?//[^\"]*)\"", re.IGNORECASE)


def _image_outputs(notebook: Path) -> int:
    """How many of a notebook's stored outputs hold a picture (PNG, JPEG or GIF)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    outputs = [output for cell in cells for output in cell.get("outputs", [])]
    return sum(any(mime.startswith("image/") for mime in output.get("data", {})) for output in outputs)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_notebook_has_a_page_with_its_stored_figures(course_site, notebook):
    page = (course_site / "notebooks" / f"{notebook.stem}.html").read_text(encoding="utf-8")
    figures = re.findall(r"<img\b[^>]*\bsrc=\"\.\./(_images/[^\"]+)\"", page)
    assert len(figures) == _image_outputs(notebook) > 0
    assert all((course_site / figure).is_file() for figure in figures)
    assert 'href="../docs/glossary.html"' in page  # the glossary link, as a link to the site's page


def test_the_latent_walk_gif_and_the_explorers_picture_are_shown(course_site):
    page = (course_site / "notebooks" / "05_generation.html").read_text(encoding="utf-8")
    gifs = re.findall(r"src=\"\.\./(_images/[^\"]+\.gif)\"", page)
    assert len(gifs) == 1 and (course_site / gifs[0]).stat().st_size > 100_000
    assert re.search(r"src=\"\.\./_images/[^\"]+\.png\"", page)  # the widget's stored picture stands in for it


def test_notebook_pages_read_well_offline_and_lead_to_the_explorer(course_site):
    pages = {path.stem: path.read_text(encoding="utf-8") for path in (course_site / "notebooks").glob("*.html")}
    assert not [name for name, page in pages.items() if "0%|" in page]  # no progress bar frozen at 0%
    colab = "https://colab.research.google.com/github/galaxy-autoencoders/galaxy_autoencoders/blob/main/notebooks/"
    assert re.search(
        rf'<a [^>]*href="{re.escape(colab)}05_generation.ipynb"[^>]*>Open In Colab</a>', pages["05_generation"]
    )
    assert 'href="../docs/explorer.html"' in pages["05_generation"]  # the explorer cell's link to the live page


def test_the_readme_is_the_landing_page(course_site):
    title = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[0].removeprefix("# ")
    assert re.search(rf"<h1>{re.escape(title)}<a", (course_site / "README.html").read_text(encoding="utf-8"))
    assert 'url=README.html"' in (course_site / "index.html").read_text(encoding="utf-8")
    assert (course_site / "_images" / "comparison.jpg").is_file()  # the README's picture


def test_the_api_page_documents_every_public_module(course_site):
    page = (course_site / "docs" / "api.html").read_text(encoding="utf-8")
    modules = [
        info.name
        for info in pkgutil.walk_packages(galaxy_autoencoders.__path__, "galaxy_autoencoders.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    missing = [name for name in modules if f'id="module-{name}"' not in page]
    assert not missing, f"docs/api.md should document {missing}"
    assert 'id="galaxy_autoencoders.latent.latent_stats"' in page
    assert "Mean, sigma, KL and ranking of each latent dimension" in page  # its docstring


def test_no_page_loads_a_script_style_or_picture_from_another_host(course_site):
    external = {
        path.relative_to(course_site).as_posix(): EXTERNAL_ASSET.findall(path.read_text(encoding="utf-8"))
        for path in course_site.rglob("*.html")
    }
    assert not {page: urls for page, urls in external.items() if urls}
    cdn = re.compile(r"unpkg|jsdelivr|require\.js")
    assert not [path for path in course_site.rglob("*.html") if cdn.search(path.read_text(encoding="utf-8"))]


def test_every_link_of_the_site_leads_somewhere(build_site, course_site):
    assert build_site.check_site(course_site) == []


def test_the_explorer_is_assembled_beside_its_page(build_site, course_site):
    folder = course_site / "docs" / "explorer"
    expected = ["explorer.js", "explorer.css", "explorer.json", "elbo.onnx", "mmd.onnx"]
    assert all((folder / name).is_file() for name in expected)
    assert all((folder / "ort" / name).stat().st_size > 0 for name in build_site.ONNXRUNTIME)


def test_the_link_check_names_each_broken_link(build_site, tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "here.png").write_bytes(b"png")
    (tmp_path / "page.html").write_text('<h2 id="here">Here</h2><a href="index.html#top">back</a>')
    (tmp_path / "index.html").write_text(
        '<p id="top"><img src="pics/here.png"> <img src="pics/gone.png"> <a href="page.html#here">fine</a> '
        '<a href="page.html#nowhere">no such id</a> <a href="missing.html?x=1">no such page</a> '
        '<a href="https://example.org/">external, not followed</a> <a href="mailto:a@b.c">mail</a> '
        '<script src="https://cdn.example.org/widgets.js"></script></p>'
    )
    assert sorted(build_site.check_site(tmp_path)) == [
        ("index.html", "https://cdn.example.org/widgets.js"),
        ("index.html", "missing.html?x=1"),
        ("index.html", "page.html#nowhere"),
        ("index.html", "pics/gone.png"),
    ]


def test_links_to_pages_stay_and_links_to_other_files_go_to_github(build_site, tmp_path):
    (tmp_path / "pages" / "docs").mkdir(parents=True)
    (tmp_path / "pages" / "docs" / "glossary.md").write_text("# Glossary\n")
    (tmp_path / "pages" / "README.md").write_text(
        "# Title\n\n[terms](docs/glossary.md), [the lock](requirements/test.txt), [benchmarks](benchmarks)\n\n"
        "```{toctree}\n:hidden:\n\ndocs/glossary\n```\n"
    )
    page = (build_site.run_sphinx(tmp_path / "pages", tmp_path) / "README.html").read_text(encoding="utf-8")
    repository = "https://github.com/galaxy-autoencoders/galaxy_autoencoders"
    assert 'href="docs/glossary.html"' in page
    assert f'href="{repository}/blob/main/requirements/test.txt"' in page
    assert f'href="{repository}/tree/main/benchmarks"' in page


def test_a_missing_picture_fails_the_build(build_site, tmp_path):
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "README.md").write_text("# Title\n\n![a galaxy](docs/no_such_picture.png)\n")
    with pytest.raises(build_site.SiteError, match="no_such_picture.png"):
        build_site.run_sphinx(tmp_path / "pages", tmp_path)

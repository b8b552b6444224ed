"""Sphinx's settings for the course site. Build the site with `python docs/build_site.py`, not with sphinx-build:
it stages the pages (README.md as the landing page, the notebooks, docs/, ARCHITECTURE.md, CONTRIBUTING.md) in the
repository's layout, runs Sphinx with this file, assembles the explorer and checks every link.

The notebooks are rendered with the outputs they store and never executed. Sphinx fetches nothing from the network
(no intersphinx), and the pages load no script, style or font from another host: the site works offline.
"""

import posixpath
from pathlib import Path

from docutils import nodes
from sphinx import addnodes

ROOT = Path(__file__).resolve().parent.parent  # the checkout: links to its files that are not pages go to GitHub
REPOSITORY = "https://github.com/galaxy-autoencoders/galaxy_autoencoders"  # as the notebooks' Colab badges

project = "galaxy_autoencoders"
author = "the galaxy_autoencoders contributors"
html_title = "What do galaxies look like to a VAE?"
root_doc = "README"  # the README is the landing page; build_site.py writes an index.html that leads to it
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.githubpages"]  # githubpages: .nojekyll

# MyST: `$...$` is maths, and `[text](page.md#a-heading)` finds the heading.
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# The notebooks as stored: never executed. A widget's stored picture (its image/png, or its text) stands in for
# the widget, so the pages need no ipywidgets JavaScript, which would come from a CDN.
nb_execution_mode = "off"
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_ipywidgets_js = {}

# The API page (docs/api.md): names in the order of their source. The docstrings write code between single
# backticks, as Markdown does.
autodoc_member_order = "bysource"
default_role = "code"

html_theme = "sphinx_book_theme"
html_theme_options = {
    "repository_url": REPOSITORY,
    "repository_branch": "main",
    "path_to_docs": "",  # the pages keep the repository's layout
    "use_repository_button": True,
    "home_page_in_toc": True,
    "launch_buttons": {
        "colab_url": "https://colab.research.google.com",
        "binderhub_url": "https://mybinder.org",
        "notebook_interface": "jupyterlab",
    },
}
html_context = {"default_mode": "auto"}  # light or dark as the reader's system; unset, the theme logs an error
html_favicon = "favicon.svg"  # else every browser asks for /favicon.ico, which the site does not have
html_math_renderer = "tex_source"
html_show_sourcelink = False
smartquotes_action = "qe"  # curly quotes and ellipses, but `--out` in prose stays two hyphens, not a dash


def _tex_source(translator, node: nodes.Element) -> None:
    """Show a formula's TeX source as code. MathJax would typeset it, but only from a CDN: the site stays offline."""
    tag = "div" if isinstance(node, nodes.math_block) else "code"
    translator.body.append(translator.starttag(node, tag, suffix="", CLASS="math tex-source"))
    translator.body.append(translator.encode(node.astext()) + f"</{tag}>")
    raise nodes.SkipNode


def repository_links(app, doctree: nodes.document) -> None:
    """Point a link to a file of the checkout that is not a page of the site (a script, the lock) at GitHub.

    MyST leaves such a link as an unresolved `pending_xref`, since only the pages are staged; one that names no
    file of the checkout either is left alone, and Sphinx reports it.
    """
    folder = posixpath.dirname(app.env.docname)
    for xref in list(doctree.findall(addnodes.pending_xref)):
        if xref.get("reftype") != "myst" or xref.get("refdomain"):
            continue
        target, hash_, fragment = xref["reftarget"].partition("#")
        path = posixpath.normpath(posixpath.join(folder, target))
        if not target or path.startswith("..") or not (ROOT / path).exists():
            continue
        kind = "tree" if (ROOT / path).is_dir() else "blob"
        link = nodes.reference("", "", refuri=f"{REPOSITORY}/{kind}/main/{path}{hash_}{fragment}", internal=False)
        link += [child.deepcopy() for child in xref.children] if xref.astext() else nodes.literal(target, target)
        xref.replace_self(link)


def setup(app):
    """This site's own pieces: the offline maths and the links to GitHub."""
    app.add_html_math_renderer("tex_source", (_tex_source, None), (_tex_source, None))
    app.connect("doctree-read", repository_links)

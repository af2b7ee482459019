"""Sphinx configuration for the fluke-airflow documentation (``make docs``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

# autodoc imports Airflow; keep whatever it writes (airflow.cfg, logs) out of the user's home.
os.environ.setdefault("AIRFLOW_HOME", str(DOCS / "_build" / "airflow-home"))

from fluke_airflow import __version__  # noqa: E402

project = "fluke-airflow"
author = "fluke-airflow contributors"
copyright = "fluke-airflow contributors"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",  # CHANGELOG.md (changelog.md includes it) and the benchmark report
    "sphinx_copybutton",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}

# The benchmark report, docs/benchmarks/README.md (make bench writes it), is Markdown:
# benchmarks/index.rst includes it, so it is no page of its own.
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "benchmarks/README.md"]
root_doc = "index"
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True  # signatures show a default as written: conf.getboolean(...), not its value here
autodoc_class_signature = "mixed"
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = False

# pydata-sphinx-theme (as many Python projects' docs; Airflow's own theme is not published for
# others): a search box, the site's sections in the top bar, and a layout that can hold a version
# switcher once the docs are hosted. The left sidebar holds the section's pages and this page's
# table of contents; with no right sidebar the content column is wide enough for 120-column code
# and the wide tables at 1400 px (custom.css; tests/e2e/test_e2e_browser.py checks they fit).
html_theme = "pydata_sphinx_theme"
html_title = f"fluke-airflow {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
templates_path = ["_templates"]
html_theme_options = {
    "logo": {"text": "fluke-airflow"},
    "navbar_start": ["navbar-logo", "version"],
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "navbar_persistent": ["search-button"],
    "secondary_sidebar_items": [],
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["version"],
}
html_sidebars = {"**": ["sidebar-nav-bs", "page-toc"], "index": ["page-toc"], "changelog": ["page-toc"]}
html_context = {"default_mode": "light"}
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

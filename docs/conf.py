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
]

# The benchmark report, docs/benchmarks/README.md (make bench writes it), is Markdown:
# benchmarks/index.rst includes it through myst-parser, so it is no page of its own.
# Everything else is reStructuredText.
extensions.append("myst_parser")

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "benchmarks/README.md"]
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = False

pygments_style = "sphinx"
html_theme = "alabaster"
html_title = f"fluke-airflow {release}"
html_theme_options = {
    "description": "Push, peek and poll Amazon SQS and Azure Queue Storage from Apache Airflow 3",
    "fixed_sidebar": True,
    "show_relbars": True,
}

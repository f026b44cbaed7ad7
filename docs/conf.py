"""Sphinx configuration: `make docs` builds these pages with warnings as errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# autodoc imports the package, which imports Airflow: give it a private home, not ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "build" / "airflow-docs"))

from airflow_provider_prefs import __version__  # noqa: E402

project = "airflow-provider-prefs"
author = "airflow-provider-prefs maintainers"
copyright = "2026, airflow-provider-prefs maintainers"
version = release = __version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
autodoc_default_options = {"members": False, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = f"airflow-provider-prefs {__version__}"

"""Where the end-to-end suite finds its inputs and writes its outputs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
DAGS_EXAMPLES = ROOT / "dags_examples"
#: DAGs only the e2e suite runs (next to the examples in the deployment's DAGs folder).
E2E_DAGS = Path(__file__).parent / "dags"
SCREENSHOTS = BUILD / "screenshots"
#: DAGs only the CeleryExecutor configuration runs (the crash and restart cases).
CELERY_DAGS = Path(__file__).parent / "celery_dags"

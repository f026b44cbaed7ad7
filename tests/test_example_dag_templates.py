"""Example DAG templates render for scheduled runs and for manual runs that have no logical date.

A run triggered through the REST API or ``airflow dags trigger`` may have no logical date: its
context then lacks ``ds``/``ds_nodash``/``logical_date`` and Airflow's StrictUndefined turns any use
of them into an ``UndefinedError``. The examples must work in both kinds of run.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("airflow.sdk", reason="the example DAGs are written for Airflow 3")

DAGS = Path(__file__).resolve().parents[1] / "dags_examples"
RUN_AFTER = datetime(2026, 11, 26, 7, 30, tzinfo=timezone.utc)
LOGICAL = datetime(2026, 11, 25, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return dict(bag.dags)


def manual_context() -> dict[str, Any]:
    """What a run triggered without a logical date offers templates: no ds, no logical_date."""
    return {"dag_run": SimpleNamespace(logical_date=None, run_after=RUN_AFTER, run_id="manual__x")}


def scheduled_context() -> dict[str, Any]:
    """What a scheduled run offers templates (the keys that depend on the logical date included)."""
    return {
        "dag_run": SimpleNamespace(logical_date=LOGICAL, run_after=RUN_AFTER, run_id="scheduled__x"),
        "logical_date": LOGICAL,
        "ds": LOGICAL.strftime("%Y-%m-%d"),
        "ds_nodash": LOGICAL.strftime("%Y%m%d"),
        "ts": LOGICAL.isoformat(),
    }


def rendered(dag: Any, context: dict[str, Any]) -> str:
    """Every task's template fields rendered with ``context``, as one JSON text."""
    out = {}
    for task in dag.tasks:
        task = copy.copy(task)
        task.render_template_fields(context)
        out[task.task_id] = {name: getattr(task, name) for name in task.template_fields}
    return json.dumps(out, default=str)


def test_templates_render_in_a_manual_run_without_logical_date(dags: dict[str, Any]) -> None:
    text = rendered(dags["scheduled_offer_refresh"], manual_context())
    assert "{{" not in text
    assert "Seasonal fallback 2026-11-26" in text  # run_after's date
    assert "/fallback/20261126.png" in text


#: Context keys that exist only when the run has a logical date (task_runner.py, Airflow 3.3);
#: as filters (``x | ds``) they are fine.
LOGICAL_DATE_ONLY = re.compile(
    r"\{\{[^}]*\b(?<![.\w])(?<!\|)(?<!\|\s)(ds|ds_nodash|ts|ts_nodash|ts_nodash_with_tz|logical_date|data_interval_start|"
    r"data_interval_end)\b"
)


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_no_example_template_needs_a_logical_date(path: Path) -> None:
    """Templates of tasks fed by XCom cannot be rendered here, so every example is also scanned."""
    offending = [m.group(0) for m in LOGICAL_DATE_ONLY.finditer(path.read_text())]
    assert offending == []


def test_scheduled_run_uses_its_logical_date(dags: dict[str, Any]) -> None:
    text = rendered(dags["scheduled_offer_refresh"], scheduled_context())
    assert "Seasonal fallback 2026-11-25" in text
    assert "/fallback/20261125.png" in text

"""Example DAG templates render for scheduled runs and for manual runs that have no logical date.

A run triggered through the REST API or ``airflow dags trigger`` may have no logical date: its
context then lacks ``ds``/``ds_nodash``/``logical_date`` and Airflow's StrictUndefined turns any use
of them into an ``UndefinedError``. The examples must work in both kinds of run.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

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


def rendered_fields(
    dag: Any, context: dict[str, Any], params: dict[str, Any] | None = None, task_ids: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The template fields of every task (or of ``task_ids``) rendered with ``context`` and the DAG params
    (their defaults, then ``params``), as a run's context has them."""
    context = {**context, "params": {**dag.params.dump(), **(params or {})}}
    out = {}
    for task in dag.tasks:
        if task_ids and task.task_id not in task_ids:
            continue
        task = copy.copy(task)
        task.render_template_fields(context)
        out[task.task_id] = {name: getattr(task, name) for name in task.template_fields}
    return out


def rendered(dag: Any, context: dict[str, Any]) -> str:
    """Every task's template fields rendered, as one JSON text."""
    return json.dumps(rendered_fields(dag, context), default=str)


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


def sandbox_ids() -> set[str]:
    """Every id of the sandbox's seed (orgs, sandboxes, offers, accounts, profiles), case-folded."""
    from airflow_provider_prefs.sandbox import state

    seed = json.loads((Path(state.__file__).parent / "seed.json").read_text())
    adobe, mypreferences = seed["adobe"], seed["mypreferences"]
    ids = {client["ims_org"] for client in adobe["clients"]}
    ids |= {name for client in adobe["clients"] for name in client["sandboxes"]}
    ids |= {offer["id"] for offers in adobe["offers"].values() for offer in offers}
    ids |= {client["client_id"] for client in mypreferences["clients"]}
    ids |= {entry["alternate_id"] for entries in mypreferences["profiles"].values() for entry in entries}
    return {value.casefold() for value in ids}


EXAMPLE_DAG_IDS = (
    "scheduled_offer_refresh",
    "offer_refreshed_report",
    "profile_preferences_sync",
    "bulk_profile_patch",
    "profile_change_taskflow",
)
#: A schedule (or a declared asset) is fixed when the file is parsed, before params exist: these constants name
#: the asset followed or declared.
SCHEDULE_CONSTANTS = {
    "offer_refreshed_report.py": {"IMS_ORG_ID", "SANDBOX_NAME", "OFFER_ID"},
    "bulk_profile_patch.py": {"CLIENT_ID"},
}


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_sandbox_ids_appear_only_as_param_defaults(path: Path) -> None:
    """The examples run against any account with DAG params: no sandbox id is hard-coded in a task."""
    ids = sandbox_ids()
    tree = ast.parse(path.read_text())
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Param" and node.args:
            allowed |= {id(inner) for inner in ast.walk(node.args[0])}
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # docstrings
            allowed.add(id(node.value))
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in SCHEDULE_CONSTANTS.get(path.name, ()) for t in statement.targets
        ):
            allowed |= {id(inner) for inner in ast.walk(statement.value)}
    hard_coded = [
        f"line {node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.casefold() in ids
        and id(node) not in allowed
    ]
    assert hard_coded == []


def test_every_example_param_is_typed_and_described(dags: dict[str, Any]) -> None:
    examples = {name: dag for name, dag in dags.items() if "example" in dag.tags}
    assert set(EXAMPLE_DAG_IDS) <= set(examples)
    for name, dag in examples.items():
        assert dag.params, name
        for key, param in dag.params.items():
            assert param.schema.get("type") and param.description, (name, key)
            param.resolve()  # the default is valid against its schema


def test_ids_come_from_params_in_every_example(dags: dict[str, Any]) -> None:
    other = {"offer_id": "yourOffer42", "alternate_id": "you@example.org", "alternate_id_type": "CustomerNumber"}
    refresh = rendered_fields(dags["scheduled_offer_refresh"], manual_context(), other)
    assert [fields["offer_id"] for fields in refresh.values()] == ["yourOffer42", "yourOffer42"]

    report = rendered_fields(dags["offer_refreshed_report"], manual_context(), other)
    assert report["report_offer"]["op_kwargs"] == {"offer_id": "yourOffer42"}
    assert rendered_fields(dags["offer_refreshed_report"], manual_context())["report_offer"]["op_kwargs"] == {
        "offer_id": "fallbackOffer1234"
    }

    # update_preferences is fed by XCom (not renderable here); the other two name the profile the same way.
    sync = rendered_fields(
        dags["profile_preferences_sync"],
        manual_context(),
        {**other, "customer_type": "Partner"},
        ("wait_until_processed", "set_customer_type"),
    )
    for fields in sync.values():
        assert (fields["alternate_id"], fields["alternate_id_type"]) == ("you@example.org", "CustomerNumber")
    assert sync["set_customer_type"]["desired"] == {"CustomerType": "Partner"}
    assert dags["profile_preferences_sync"].task_dict["update_preferences"].alternate_id == "{{ params.alternate_id }}"

    bulk = dags["bulk_profile_patch"]
    assert bulk.task_dict["patch_profile"].partial_kwargs["alternate_id_type"] == "{{ params.alternate_id_type }}"
    changes = bulk.task_dict["list_changes"].python_callable(
        params={"alternate_ids": ["you@example.org", "them@example.org"], "customer_type": "Partner"}
    )
    assert [change["alternate_id"] for change in changes] == ["you@example.org", "them@example.org"]
    assert {change["patch"][0]["value"] for change in changes} == {"Partner"}


def test_readme_lists_every_example_param(dags: dict[str, Any]) -> None:
    readme = (DAGS.parent / "README.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in readme.splitlines() if line.startswith("| `")}
    for dag_id in EXAMPLE_DAG_IDS:
        assert dag_id in rows, f"README's Example DAGs table has no row for {dag_id}"
        for key in dags[dag_id].params:
            assert f"`{key}`" in rows[dag_id].split("|")[2], (dag_id, key)

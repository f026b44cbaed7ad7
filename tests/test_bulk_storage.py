"""Bulk items streamed from files and object storage (file://, memory://, ObjectStoragePath), with a per-item report."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_prefs.operators import BulkProfilePatchOperator
from airflow_provider_prefs.operators.storage import open_items

GOOD = ["Ada@Example.com", "grace@example.com"]
PATCH = [{"op": "replace", "path": "/CustomerType", "value": "Marketing"}]
#: Two good items, a line that is not JSON (line 2), a blank line, an unknown profile.
LINES = [
    json.dumps({"alternate_id": GOOD[0], "patch": PATCH}),
    "{broken",
    "",
    json.dumps({"alternate_id": GOOD[1], "patch": PATCH}),
    json.dumps({"alternate_id": "ghost@example.com", "patch": PATCH}),
]


class FakeTi:
    """Collects what the task pushes to XCom."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)
        self.xcom[key] = value


def memory_uri(name: str) -> str:
    """A fresh memory:// location (fsspec's memory filesystem is process-wide)."""
    return f"memory://prefs-tests/{uuid.uuid4().hex}/{name}"


def write(location: str, text: str) -> None:
    import fsspec

    with fsspec.open(location, "w", encoding="utf-8") as out:
        out.write(text)


def read(location: str) -> list[dict[str, Any]]:
    import fsspec

    with fsspec.open(location, "r", encoding="utf-8") as source:
        return [json.loads(line) for line in source]


def run(items: Any, report_path: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ti = FakeTi()
    with pytest.raises(AirflowFailException):  # the bad line and the ghost fail; the rest applied
        BulkProfilePatchOperator(
            task_id="bulk", items=items, alternate_id_type="Email", report_path=report_path, max_concurrency=1
        ).execute({"ti": ti})
    return ti.xcom["bulk_report"], read(str(report_path))


def check(xcom: dict[str, Any], rows: list[dict[str, Any]], source_name: str, sandbox: Any) -> None:
    assert (xcom["total"], xcom["applied"], xcom["failed"]) == (4, 2, 2)
    assert [row["status"] for row in rows] == ["applied", "failed", "applied", "failed"]
    assert all(set(row) == {"target", "status", "error"} for row in rows)
    assert rows[1]["target"] == f"{source_name} line 2" and "line 2 is not valid JSON" in rows[1]["error"]
    assert "ghost@example.com" in rows[3]["target"] and rows[3]["error"]
    assert rows[0]["error"] is None
    for email in GOOD:
        assert sandbox.state.profile("DEMO", email, "Email")["CustomerType"] == "Marketing"


def test_items_and_report_as_file_uris(connections: Any, tmp_path: Path) -> None:
    (tmp_path / "items.jsonl").write_text("\n".join(LINES) + "\n")
    xcom, rows = run((tmp_path / "items.jsonl").as_uri(), (tmp_path / "report.jsonl").as_uri())
    check(xcom, rows, "items.jsonl", connections)
    assert xcom["report_path"] == (tmp_path / "report.jsonl").as_uri()


def test_items_and_report_in_fsspec_memory(connections: Any) -> None:
    source, report = memory_uri("profiles.jsonl"), memory_uri("report.jsonl")
    write(source, "\n".join(LINES))  # no final newline: the last line still counts
    xcom, rows = run(source, report)
    check(xcom, rows, "profiles.jsonl", connections)


def test_items_as_an_object_storage_path(connections: Any, tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    (tmp_path / "items.txt").write_text("\n".join(LINES))  # any name: the path object says it is a file
    xcom, rows = run(ObjectStoragePath((tmp_path / "items.txt").as_uri()), tmp_path / "report.jsonl")
    check(xcom, rows, "items.txt", connections)


def test_the_xcom_report_stays_small_while_the_file_has_every_item(connections: Any) -> None:
    from airflow_provider_prefs.bulk.runner import MAX_LISTED_FAILURES

    count = MAX_LISTED_FAILURES + 50
    source, report = memory_uri("ghosts.jsonl"), memory_uri("report.jsonl")
    ghosts = (json.dumps({"alternate_id": f"ghost{n}@example.com", "patch": PATCH}) for n in range(count))
    write(source, "".join(line + "\n" for line in ghosts))
    xcom, rows = run(source, report)
    assert len(rows) == count and xcom["failed"] == count
    assert len(xcom["failures"]) == MAX_LISTED_FAILURES and xcom["failures_truncated"] == 50


@pytest.mark.parametrize("location", ["memory://prefs-tests/none/missing.jsonl", "file:///nowhere/items.jsonl"])
def test_a_missing_source_fails_before_any_request(connections: Any, location: str) -> None:
    with pytest.raises(AirflowFailException) as info:
        BulkProfilePatchOperator(task_id="bulk", items=location, alternate_id_type="Email").execute({"ti": FakeTi()})
    assert "does not exist" in str(info.value) and location in str(info.value)
    assert connections.state.journal() == []


def test_an_unwritable_report_fails_before_any_request(connections: Any, tmp_path: Path) -> None:
    (tmp_path / "items.jsonl").write_text(LINES[0] + "\n")
    operator = BulkProfilePatchOperator(
        task_id="bulk",
        items=str(tmp_path / "items.jsonl"),
        alternate_id_type="Email",
        report_path=tmp_path / "no" / "such" / "dir" / "report.jsonl",
    )
    with pytest.raises(AirflowFailException):
        operator.execute({"ti": FakeTi()})
    assert connections.state.journal() == []


def test_json_text_is_not_mistaken_for_a_location() -> None:
    assert list(open_items('[{"alternate_id": "x", "patch": []}]')) == [{"alternate_id": "x", "patch": []}]

"""Bulk patching: bounded concurrency, per-item results, partial failures, shared 429 back-off."""

from __future__ import annotations

import json
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_prefs.bulk.runner import LOOKAHEAD_PER_THREAD, run_bulk
from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook
from airflow_provider_prefs.models import ChangeOutcome
from airflow_provider_prefs.operators import BulkFallbackOfferPatchOperator, BulkProfilePatchOperator

EMAILS = ["Ada@Example.com", "grace@example.com", "ALAN@EXAMPLE.COM"]


def test_run_bulk_bounds_concurrency_and_consumes_input_lazily() -> None:
    in_flight = 0
    peak = 0
    pulled = 0
    lock = threading.Lock()

    def items() -> Any:
        nonlocal pulled
        for n in range(200):
            pulled += 1
            yield n

    def handle(n: int) -> ChangeOutcome:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
            # never more than a small window read ahead: the lookahead, plus the items handed out
            assert pulled - n <= (LOOKAHEAD_PER_THREAD + 2) * 4 + 1
        time.sleep(0.002)
        with lock:
            in_flight -= 1
        return ChangeOutcome(
            status="failed" if n % 50 == 0 else "applied", target=str(n), error="x" if n % 50 == 0 else None
        )

    report = run_bulk(items(), handle, max_concurrency=4)
    assert peak <= 4 and peak > 1
    assert (report.total, report.applied, report.failed) == (200, 196, 4)
    assert [f.target for f in report.failures] == ["0", "50", "100", "150"]


def test_hook_bulk_reports_each_item(connections: Any) -> None:
    hook = MyPreferencesHook()
    items = [
        (EMAILS[0], [{"op": "replace", "path": "/CustomerType", "value": "Commercial"}]),
        {"alternate_id": EMAILS[1], "desired": {"CustomerType": "Marketing"}},
        {"alternate_id": EMAILS[2], "desired": {}},  # nothing to change
        ("nobody@example.com", [{"op": "replace", "path": "/CustomerType", "value": "Commercial"}]),
        (EMAILS[0], [{"op": "move", "from": "/CustomerType", "path": "/DefaultLocale"}]),
    ]
    report = hook.bulk_patch_profiles(items, alternate_id_type="Email", max_concurrency=3)
    assert (report.total, report.applied, report.unchanged, report.failed) == (5, 2, 1, 2)
    reasons = {f.target: f.error or "" for f in report.failures}
    assert "404" in reasons["profile Email:'nobody@example.com'"]
    assert "'move' is not allowed" in reasons["profile Email:'Ada@Example.com'"]
    assert json.loads(json.dumps(report.to_xcom()))["failed"] == 2


def test_bulk_backs_off_together_on_429(connections: Any) -> None:
    hook = MyPreferencesHook()
    connections.state.set_faults([{"route": "profile.patch", "kind": "429", "retry_after": 1, "count": 1}])
    items = [(EMAILS[n % 3], [{"op": "replace", "path": "/CustomerType", "value": f"T{n}"}]) for n in range(240)]
    start = time.monotonic()
    report = hook.bulk_patch_profiles(items, alternate_id_type="Email", max_concurrency=6)
    assert report.applied == 240
    patches = [e for e in connections.state.journal() if e["route"] == "profile.patch"]
    throttled_at = next(e["time"] for e in patches if e["status"] == 429)
    # Once the client has read the 429 (well within 0.25 s on loopback), no worker sends anything until
    # Retry-After has passed: the whole batch pauses. Workers backing off on their own would keep going.
    sent_during_pause = [e for e in patches if throttled_at + 0.25 < e["time"] < throttled_at + 0.95]
    assert sent_during_pause == []
    assert len(patches) == 241  # 240 items + the one throttled try
    assert time.monotonic() - start >= 1.0


def test_bulk_offer_operator_streams_a_jsonl_file(connections: Any, tmp_path: Path) -> None:
    path = tmp_path / "offers.jsonl"
    lines = [
        {"offer_id": "fallbackOffer1234", "patch": [{"op": "replace", "path": "/name", "value": "Bulk A"}]},
        {"offer_id": "fallbackOffer5678", "desired": {"name": "Bulk B"}},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = BulkFallbackOfferPatchOperator(task_id="bulk", items=str(path)).execute({})
    assert (result["total"], result["applied"], result["failed"]) == (2, 2, 0)
    assert connections.state.offer("dev", "fallbackOffer5678")["name"] == "Bulk B"


def test_bulk_operator_fails_at_the_end_listing_failures(connections: Any) -> None:
    items = [
        {"alternate_id": "ghost@example.com", "patch": [{"op": "replace", "path": "/CustomerType", "value": "X"}]},
        {"alternate_id": EMAILS[0], "patch": [{"op": "replace", "path": "/CustomerType", "value": "Marketing"}]},
    ]
    with pytest.raises(AirflowFailException) as info:
        BulkProfilePatchOperator(task_id="bulk", items=items, alternate_id_type="Email").execute({})
    assert "1 of 2 item(s) failed (1 applied" in str(info.value) and "ghost@example.com" in str(info.value)
    # The good item was applied even though another failed.
    assert connections.state.profile("DEMO", EMAILS[0], "Email")["CustomerType"] == "Marketing"


def test_offer_hook_bulk_pairs(connections: Any) -> None:
    report = OfferLibraryHook().bulk_patch_offers(
        [("fallbackOffer1234", [{"op": "replace", "path": "/status", "value": "draft"}])]
    )
    assert report.applied == 1


class FakeTi:
    """Collects what the task pushes to XCom."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # XCom must be JSON
        self.xcom[key] = value


GOOD_ID = "grace@example.com"
GOOD_PATCH = [{"op": "replace", "path": "/CustomerType", "value": "Marketing"}]

# (case, bad item, what its failure row must name)
BAD_ITEMS = [
    ("1-tuple", ("Ada@Example.com",), "1-item tuple"),
    ("int", 42, "got int"),
    ("bare string", "Ada@Example.com", "got str"),
    ("None", None, "got NoneType"),
    ("dict without id", {"patch": GOOD_PATCH}, "alternate_id"),
    (
        "datetime value",
        {
            "alternate_id": "Ada@Example.com",
            "patch": [{"op": "replace", "path": "/CustomerType", "value": datetime(2026, 1, 1, tzinfo=timezone.utc)}],
        },
        "datetime",
    ),
    ("date value", ["Ada@Example.com", [{"op": "add", "path": "/CustomFields/-", "value": date(2026, 1, 1)}]], "date"),
    ("patch not JSON", ["Ada@Example.com", "{not json"], "JSON"),
]


@pytest.mark.parametrize(("case", "bad", "named"), BAD_ITEMS, ids=[case for case, _, _ in BAD_ITEMS])
def test_a_bad_bulk_item_is_a_failure_row_and_the_rest_is_applied(
    connections: Any, case: str, bad: Any, named: str
) -> None:
    ti = FakeTi()
    items = [bad, {"alternate_id": GOOD_ID, "patch": GOOD_PATCH}]
    operator = BulkProfilePatchOperator(task_id="bulk", items=items, alternate_id_type="Email", max_concurrency=2)
    with pytest.raises(AirflowFailException) as info:
        operator.execute({"ti": ti})
    report = ti.xcom["bulk_report"]
    assert (report["total"], report["applied"], report["failed"]) == (2, 1, 1), report
    row = report["failures"][0]
    assert named in row["error"] or named in row["target"], row
    assert len(row["target"]) <= 400 and len(row["error"]) <= 800
    assert row["target"] in str(info.value)
    assert connections.state.profile("DEMO", GOOD_ID, "Email")["CustomerType"] == "Marketing"
    assert [e["route"] for e in connections.state.journal()].count("profile.patch") == 1  # only the good item


def test_a_huge_bad_item_is_quoted_truncated(connections: Any) -> None:
    ti = FakeTi()
    with pytest.raises(AirflowFailException):
        BulkProfilePatchOperator(task_id="bulk", items=[["x" * 100_000]], alternate_id_type="Email").execute({"ti": ti})
    row = ti.xcom["bulk_report"]["failures"][0]
    assert len(row["target"]) <= 400 and row["target"].endswith("...")


@pytest.mark.parametrize(
    ("items", "says"),
    [
        ("garbage", "items is not a list, JSON text of a list, a .jsonl path or a URI"),
        ("[1, 2", "items is not a list, JSON text of a list, a .jsonl path or a URI"),
        (42, "items must be a list of items, got int"),
        ({"alternate_id": GOOD_ID}, "items must be a list of items, got dict"),
        ("/nowhere/items.jsonl", "items names a file that does not exist"),
    ],
)
def test_unusable_items_fail_before_any_request(connections: Any, items: Any, says: str) -> None:
    """The message says what is wrong with the argument (quoting the value alone would not)."""
    with pytest.raises(AirflowFailException) as info:
        BulkProfilePatchOperator(task_id="bulk", items=items, alternate_id_type="Email").execute({"ti": FakeTi()})
    assert str(info.value).startswith(says), str(info.value)
    assert connections.state.journal() == []


def test_a_bad_jsonl_line_is_a_failure_row_naming_its_line(connections: Any, tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    good = json.dumps({"alternate_id": GOOD_ID, "patch": GOOD_PATCH})
    path.write_text(f"{good}\n{{broken\n\n{good}\n")
    ti = FakeTi()
    with pytest.raises(AirflowFailException):
        BulkProfilePatchOperator(task_id="bulk", items=str(path), alternate_id_type="Email").execute({"ti": ti})
    report = ti.xcom["bulk_report"]
    assert (report["total"], report["applied"], report["failed"]) == (3, 2, 1)
    assert "line 2" in report["failures"][0]["target"] and "line 2" in report["failures"][0]["error"]


def test_an_items_iterable_that_breaks_midway_still_reports(connections: Any) -> None:
    def items() -> Any:
        yield {"alternate_id": GOOD_ID, "patch": GOOD_PATCH}
        raise OSError("disk went away")

    ti = FakeTi()
    with pytest.raises(AirflowFailException):
        BulkProfilePatchOperator(task_id="bulk", items=items(), alternate_id_type="Email").execute({"ti": ti})
    report = ti.xcom["bulk_report"]
    assert report["applied"] == 1 and "disk went away" in report["failures"][0]["error"]


def test_items_as_a_list_are_data_not_templates_but_a_path_is_rendered() -> None:
    """Rendering walks every string of every item (seconds for 10,000 items), and feed values are data."""
    listed = BulkProfilePatchOperator(
        task_id="bulk", items=[{"alternate_id": "{{ ds }}", "desired": {}}], conn_id="{{ params.conn }}"
    )
    listed.render_template_fields({"ds": "2026-12-05", "params": {"conn": "mypreferences_x"}})
    assert listed.items == [{"alternate_id": "{{ ds }}", "desired": {}}]
    assert listed.conn_id == "mypreferences_x"  # the other template fields still render

    path = BulkProfilePatchOperator(task_id="bulk", items="/data/{{ ds }}.jsonl")
    path.render_template_fields({"ds": "2026-12-05"})
    assert path.items == "/data/2026-12-05.jsonl"

"""Bulk patching: bounded concurrency, per-item results, partial failures, shared 429 back-off."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_prefs._compat import fail_task_exception
from airflow_provider_prefs.bulk import run_bulk
from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook
from airflow_provider_prefs.models import PatchOutcome
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

    def handle(n: int) -> PatchOutcome:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
            assert pulled - n <= 2 * 4 + 1  # never more than a small window read ahead
        time.sleep(0.002)
        with lock:
            in_flight -= 1
        return PatchOutcome(
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
    with pytest.raises(fail_task_exception()) as info:
        BulkProfilePatchOperator(task_id="bulk", items=items, alternate_id_type="Email").execute({})
    assert "1 of 2 item(s) failed (1 applied" in str(info.value) and "ghost@example.com" in str(info.value)
    # The good item was applied even though another failed.
    assert connections.state.profile("DEMO", EMAILS[0], "Email")["CustomerType"] == "Marketing"


def test_offer_hook_bulk_pairs(connections: Any) -> None:
    report = OfferLibraryHook().bulk_patch_offers(
        [("fallbackOffer1234", [{"op": "replace", "path": "/status", "value": "draft"}])]
    )
    assert report.applied == 1

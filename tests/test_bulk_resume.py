"""Bulk progress checkpoint: a run stopped midway resumes (skips, re-judges) without applying twice.

The task state store is faked with a dict that can "crash" the run after a number of writes, which
stops it exactly where a SIGKILL would: after an intent was stored, before or after its send.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from airflow_provider_prefs.bulk.progress import STATE_KEY, BulkProgress
from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook

PROFILES = 40
MARK = "resume-test"


class Crash(BaseException):
    """Stands in for SIGKILL: nothing catches it, the run stops where it is."""


class FakeStore:
    """A task checkpoint kept in a dict; ``crash_after`` writes, the next write kills the run."""

    available = True

    def __init__(self, crash_after: int | None = None) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0
        self.crash_after = crash_after
        self.largest = 0

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    def delete(self, *keys: str) -> None:
        for key in keys:
            self.values.pop(key, None)

    def set(self, key: str, value: Any) -> None:
        if self.crash_after is not None and self.writes >= self.crash_after:
            raise Crash()
        self.values[key] = json.dumps(value)
        self.largest = max(self.largest, len(self.values[key]))
        self.writes += 1


def email(n: int) -> str:
    return f"resume{n:03d}@example.com"


@pytest.fixture
def profiles(connections: Any) -> Any:
    connections.state.add_profiles(
        "DEMO",
        [
            {"alternate_id": email(n), "alternate_id_type": "Email", "profile": {"ProfileId": n, "CustomFields": []}}
            for n in range(PROFILES)
        ],
    )
    return connections


def items() -> list[dict[str, Any]]:
    # Guarded appends: a copy that already landed fails its test, so a re-read can tell it landed.
    return [
        {
            "alternate_id": email(n),
            "patch": [
                {"op": "test", "path": "/CustomFields", "value": []},
                {"op": "add", "path": "/CustomFields/-", "value": {"Name": MARK, "Value": "1"}},
            ],
        }
        for n in range(PROFILES)
    ]


def marks(sandbox: Any) -> list[int]:
    return [
        sum(1 for f in sandbox.state.profile("DEMO", email(n), "Email")["CustomFields"] if f["Name"] == MARK)
        for n in range(PROFILES)
    ]


def test_a_run_stopped_midway_resumes_without_applying_twice(profiles: Any) -> None:
    store = FakeStore(crash_after=12)
    hook = MyPreferencesHook()
    with pytest.raises(Crash):
        hook.bulk_patch_profiles(items(), alternate_id_type="Email", max_concurrency=4, progress=BulkProgress(store))
    first = [e for e in profiles.state.journal() if e["route"] == "profile.patch"]
    assert 0 < len(first) < PROFILES
    state = store.get(STATE_KEY)
    assert state["inflight"], state  # intents were stored before their sends

    store.crash_after = None
    report = MyPreferencesHook().bulk_patch_profiles(
        items(), alternate_id_type="Email", max_concurrency=4, progress=BulkProgress(store)
    )
    assert marks(profiles) == [1] * PROFILES
    assert (report.total, report.applied, report.failed) == (PROFILES, PROFILES, 0), report
    assert report.resumed == len(state["inflight"]) and report.skipped == state["next"] + len(state["finished"])
    assert report.skipped + report.resumed <= len(first) + 4 * 2  # at most the run's window was in flight


def test_progress_state_stays_small_for_many_items() -> None:
    store = FakeStore()
    progress = BulkProgress(store, flush_interval=0)
    ops = [{"op": "add", "path": "/CustomFields/-", "value": {"Name": MARK, "Value": "1"}}]
    for block in range(0, 51_200, 64):  # finished out of order within a window, as the thread pool does
        for index in reversed(range(block, block + 64)):
            if index % 1000 == 0:
                progress.begin(index, f"{index:016x}", ops)
            progress.finish(index, "d", "applied")
    progress.flush()
    state = store.get(STATE_KEY)
    assert state["next"] == 51_200 and state["counts"]["applied"] == 51_200
    assert store.largest < 4_000, store.largest


def test_resuming_over_different_items_is_refused(profiles: Any) -> None:
    store = FakeStore()
    first = items()[:10]
    MyPreferencesHook().bulk_patch_profiles(first, alternate_id_type="Email", progress=BulkProgress(store))
    changed = items()
    changed[3]["patch"][1]["value"] = {"Name": "other"}
    report = MyPreferencesHook().bulk_patch_profiles(changed, alternate_id_type="Email", progress=BulkProgress(store))
    assert report.failed == 1 and "differ" in (report.failures[0].error or "")
    assert marks(profiles)[10:] == [0] * (PROFILES - 10)  # nothing beyond the checkpoint was sent


class SlowStore(FakeStore):
    """Each write takes as long as a round trip through a busy execution API."""

    def set(self, key: str, value: Any) -> None:
        time.sleep(0.03)
        super().set(key, value)


def test_concurrent_senders_share_their_intent_writes() -> None:
    """8 senders, each: store the intent, send (2 ms), finish. About one write per round of 8, not two.

    Without lingering, a writer that finds the store idle writes its own intent alone while the
    other 7 are still sending; they then queue behind it and share the next write: 2 writes a round.
    """
    store = SlowStore()
    progress = BulkProgress(store, flush_interval=3600)
    ops = [{"op": "replace", "path": "/CustomerType", "value": "Commercial"}]
    rounds, senders = 10, 8
    barrier = threading.Barrier(senders)

    def sender(number: int) -> None:
        barrier.wait()
        for round_ in range(rounds):
            index = round_ * senders + number
            progress.begin(index, f"{index:016x}", ops)
            time.sleep(0.002)  # the PATCH
            progress.finish(index, f"{index:016x}", "applied")

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.writes <= rounds + 4, store.writes
    progress.flush()
    assert store.get(STATE_KEY)["counts"]["applied"] == rounds * senders


@pytest.mark.parametrize("airflow_clears", [False, True])
def test_success_forgets_the_progress_unless_airflow_clears_it(
    monkeypatch: pytest.MonkeyPatch, airflow_clears: bool
) -> None:
    """A successful run forgets its checkpoint (one delete), or leaves it to [state_store] clear_on_success."""
    from helpers import FakeTaskStateStore

    from airflow_provider_prefs.operators.checkpoint import TaskCheckpoint

    monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", str(airflow_clears))
    store = FakeTaskStateStore()
    progress = BulkProgress(TaskCheckpoint(store, "prefs.bulk"))
    progress.begin(0, "d", [{"op": "replace", "path": "/CustomerType", "value": "Retail"}])
    progress.finish(0, "d", "applied")
    progress.forget()
    assert store.methods() == ["get", "set"] + ([] if airflow_clears else ["delete"])

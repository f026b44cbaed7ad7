"""Bulk progress checkpoint: a run stopped midway resumes (skips, re-judges) without applying twice.

The task state store is faked with a dict that can "crash" the run after a number of writes, which
stops it exactly where a SIGKILL would: after an intent was stored, before or after its send.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from typing import Any

import pytest

from airflow_provider_prefs.bulk import runner
from airflow_provider_prefs.bulk.progress import STATE_BYTES_BUDGET, STATE_KEY, BulkProgress, Resume, item_digest
from airflow_provider_prefs.bulk.runner import RECORDED_AHEAD
from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
from airflow_provider_prefs.patching.checkpoint import MemoryCheckpoint

PROFILES = 40
MARK = "resume-test"


class Crash(BaseException):
    """Stands in for SIGKILL: nothing catches it, the run stops where it is."""


class FakeStore(MemoryCheckpoint):
    """A checkpoint kept in a dict; ``crash_after`` writes, the next write kills the run."""

    def __init__(self, crash_after: int | None = None) -> None:
        super().__init__()
        self.writes = 0
        self.crash_after = crash_after
        self.largest = 0

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


def test_a_run_stopped_midway_resumes_without_applying_twice(profiles: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Intents are written in batches of at most one window (RECORDED_AHEAD items per connection, here
    # fewer than PROFILES at one connection): the run dies at its second write, after the first window was sent.
    monkeypatch.setattr(runner, "RECORDED_AHEAD", 8)
    store = FakeStore(crash_after=1)
    hook = MyPreferencesHook()
    with pytest.raises(Crash):
        hook.bulk_patch_profiles(items(), alternate_id_type="Email", max_concurrency=1, progress=BulkProgress(store))
    first = [e for e in profiles.state.journal() if e["route"] == "profile.patch"]
    assert 0 < len(first) < PROFILES
    state = store.get(STATE_KEY)
    stored = Resume.from_json(state)
    assert stored.inflight, state  # intents were stored before their sends

    store.crash_after = None
    report = MyPreferencesHook().bulk_patch_profiles(
        items(), alternate_id_type="Email", max_concurrency=4, progress=BulkProgress(store)
    )
    assert marks(profiles) == [1] * PROFILES
    assert (report.total, report.applied, report.failed) == (PROFILES, PROFILES, 0), report
    assert report.resumed == len(stored.inflight) and report.skipped == state["next"] + len(state["finished"])
    assert report.skipped <= len(first) and report.resumed <= RECORDED_AHEAD * 4  # at most one window in flight


class FailingStore(FakeStore):
    """A store whose ``fail_from``-th write fails (an execution API answering 500 once); the others work."""

    def __init__(self, fail_from: int) -> None:
        super().__init__()
        self.fail_from, self.failed = fail_from, 0

    def set(self, key: str, value: Any) -> None:
        if self.writes == self.fail_from and not self.failed:
            self.failed += 1
            raise RuntimeError("execution API: 500 Internal Server Error")
        super().set(key, value)


def test_a_failed_checkpoint_write_sends_none_of_its_items_and_the_next_run_sends_them_once(
    profiles: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Items whose intents a failed write was to store are never sent (their intent is not durable): they
    fail this run, and the next run of the task instance plans and sends them, each exactly once."""
    monkeypatch.setattr(runner, "RECORDED_AHEAD", 8)  # several writes over PROFILES items at one connection
    store = FailingStore(fail_from=1)
    first = MyPreferencesHook().bulk_patch_profiles(
        items(), alternate_id_type="Email", max_concurrency=1, progress=BulkProgress(store)
    )
    sent = len([e for e in profiles.state.journal() if e["route"] == "profile.patch"])
    assert 0 < first.applied < PROFILES and first.applied + first.failed == PROFILES, first
    assert sent == first.applied  # not one PATCH of an item whose intent was not stored
    assert all("500 Internal Server Error" in (f.error or "") for f in first.failures), first.failures
    assert sum(marks(profiles)) == first.applied

    assert store.failed == 1
    second = MyPreferencesHook().bulk_patch_profiles(
        items(), alternate_id_type="Email", max_concurrency=1, progress=BulkProgress(store)
    )
    assert marks(profiles) == [1] * PROFILES  # every item once: the failed ones sent now, none twice
    assert second.failed == 0 and second.retried == first.failed, second


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


def test_intents_are_stored_packed_and_a_version_2_state_still_resumes() -> None:
    ops = [{"op": "replace", "path": "/CustomerType", "value": "Retail"}]
    store = FakeStore()
    progress = BulkProgress(store)
    for index in range(3):
        progress.begin(index, f"{index:016x}", ops)
    state = store.get(STATE_KEY)
    assert state["v"] == 3 and "inflight" not in state and isinstance(state["intents"], str)
    assert Resume.from_json(state).inflight == {i: (f"{i:016x}", ops) for i in range(3)}
    older = {**state, "v": 2, "inflight": {"1": {"d": "d1", "ops": ops}}}
    del older["intents"]
    assert Resume.from_json(older).inflight == {1: ("d1", ops)}


def test_the_window_shrinks_so_large_intents_keep_the_state_under_its_budget() -> None:
    store = FakeStore()
    progress = BulkProgress(store)
    assert progress.window(512, 16) == 512  # nothing measured yet
    for index in range(64):  # intents that compress badly: ~2.7 KB each even packed
        noise = base64.b64encode(os.urandom(2_000)).decode()
        progress.register(index, f"{index:016x}", [{"op": "replace", "path": "/Note", "value": noise}])
    progress.flush()
    window = progress.window(512, 16)
    assert 16 <= window < 32, window
    assert store.largest < 64 * window * 2_800 / 16  # one write of 64 such intents
    assert window * progress.intent_bytes <= STATE_BYTES_BUDGET


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
    """Each write takes as long as a round trip through a busy execution API; remembers when it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[float, float]] = []

    def set(self, key: str, value: Any) -> None:
        started = time.time()
        time.sleep(0.05)
        super().set(key, value)
        self.spans.append((started, time.time()))


def test_the_store_latency_overlaps_the_sends_instead_of_gating_them(profiles: Any) -> None:
    """While one checkpoint write is on its way, more items than the connections go out.

    If every sender waited for the write holding its own intent (the store gating the pipeline), each
    connection could send at most one item per write: at most ``max_concurrency`` PATCHes would arrive
    during any write. Items planned ahead have their intents stored while others are on the wire.
    """
    store = SlowStore()
    rows = [(email(n), [{"op": "add", "path": "/CustomerType", "value": "Commercial"}]) for n in range(PROFILES)]
    rows += [(email(n), [{"op": "add", "path": "/CustomerType", "value": "Marketing"}]) for n in range(PROFILES)]
    report = MyPreferencesHook().bulk_patch_profiles(
        rows, alternate_id_type="Email", max_concurrency=2, progress=BulkProgress(store)
    )
    assert (report.applied, report.failed) == (2 * PROFILES, 0)
    arrivals = [e["received_at"] for e in profiles.state.journal() if e["route"] == "profile.patch"]
    during = [sum(1 for t in arrivals if start <= t < end) for start, end in store.spans]
    assert max(during) > 2, during
    assert store.writes < len(rows) / 2, store.writes  # intents are group-committed, not one write each


@pytest.mark.parametrize("airflow_clears", [False, True])
def test_success_forgets_the_progress_unless_airflow_clears_it(
    monkeypatch: pytest.MonkeyPatch, airflow_clears: bool
) -> None:
    """A successful run forgets its checkpoint (one delete), or leaves it to [state_store] clear_on_success."""
    from helpers import FakeTaskStateStore

    from airflow_provider_prefs.patching.checkpoint import TaskCheckpoint

    monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", str(airflow_clears))
    store = FakeTaskStateStore()
    progress = BulkProgress(TaskCheckpoint(store, "prefs.bulk"))
    progress.begin(0, "d", [{"op": "replace", "path": "/CustomerType", "value": "Retail"}])
    progress.finish(0, "d", "applied")
    progress.forget()
    assert store.methods() == ["get", "set"] + ([] if airflow_clears else ["delete"])


def test_an_item_digest_stays_what_earlier_versions_stored() -> None:
    # A checkpoint written by an earlier version is resumed by comparing these digests: the format is fixed.
    item = {"patch": [{"op": "replace", "path": "/CustomerType", "value": "é"}], "alternate_id": "a@b.c"}
    text = json.dumps(item, sort_keys=True, separators=(",", ":"), allow_nan=False)
    assert item_digest(item) == hashlib.sha256(text.encode()).hexdigest()[:16] == "daf9fab29798b64d"
    assert item_digest(("a@b.c", [{"op": "remove", "path": "/x"}])) == item_digest(
        ["a@b.c", [{"path": "/x", "op": "remove"}]]
    )
    assert item_digest({"n": float("nan")}) == hashlib.sha256(b"{'n': nan}").hexdigest()[:16]  # not JSON: its repr

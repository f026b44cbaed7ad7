"""Bulk runs over feeds with several changes per customer: applied in input order, exactly once, none refused.

Every scenario checks the sandbox against the feed applied sequentially (see :mod:`feeds`), with and
without another writer appending to the same profiles, with and without about 35 % injected faults
(answers lost, answers after the client's timeout, requests processed after the client gave up).
Each runs :data:`REPEAT` times (``PREFS_FEED_REPEAT`` raises it) so that a race shows.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any

import pytest
from conftest import FAST_TRANSPORT
from feeds import (
    FAULT_TRANSPORT,
    FAULTS,
    ID_TYPE,
    KINDS,
    SETTLE_SECONDS,
    OtherWriter,
    applied_in_order,
    check_feed,
    customers,
    feed,
    seed_profiles,
    seeded,
)

from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
from airflow_provider_prefs.operators import (
    BulkFallbackOfferPatchOperator,
    BulkProfilePatchOperator,
    ProfilePatchOperator,
)

REPEAT = int(os.environ.get("PREFS_FEED_REPEAT", "3"))
SCENARIOS = {"replace": ("replace",), "desired": ("desired",), "append": ("append",), "mixed": KINDS}


def run_feed(sandbox: Any, kinds: tuple[str, ...], *, other: bool, faults: bool, seed: int, via: str) -> Any:
    emails = customers(3)
    start = seed_profiles(sandbox.state, emails)
    rows = feed(emails, 20, kinds)
    transport = FAULT_TRANSPORT if faults else FAST_TRANSPORT
    if faults:
        sandbox.state.set_faults(seeded(FAULTS, seed))
    writer = OtherWriter(sandbox.state, emails)
    with writer if other else _nothing():
        if via == "operator":
            report = BulkProfilePatchOperator(
                task_id="feed", items=rows, alternate_id_type=ID_TYPE, max_concurrency=8, transport=transport
            ).execute({})
        else:
            hook = MyPreferencesHook(transport_overrides=transport)
            report = hook.bulk_patch_profiles(rows, alternate_id_type=ID_TYPE, max_concurrency=8).to_xcom()
    sandbox.state.set_faults([])
    time.sleep(SETTLE_SECONDS if faults else 0)  # anything held back in the sandbox lands (or is refused) by now
    assert (report["failed"], report["total"]) == (0, len(rows)), report.get("failures")
    check_feed(sandbox.state, applied_in_order(start, rows), writer.appended)
    return report


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("repeat", range(REPEAT))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_feed_in_order(connections: Any, scenario: str, repeat: int) -> None:
    report = run_feed(connections, SCENARIOS[scenario], other=False, faults=False, seed=repeat, via="operator")
    assert report["applied"] + report["unchanged"] == 60


@pytest.mark.parametrize("repeat", range(REPEAT))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_feed_with_another_writer(connections: Any, scenario: str, repeat: int) -> None:
    report = run_feed(connections, SCENARIOS[scenario], other=True, faults=False, seed=repeat, via="hook")
    if scenario in ("append", "mixed"):
        # Each append pins the array another system keeps appending to: refusals are expected, and planned around.
        assert report["replanned"] > 0


@pytest.mark.parametrize("repeat", range(REPEAT))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_feed_with_faults_and_another_writer(connections: Any, scenario: str, repeat: int) -> None:
    run_feed(connections, SCENARIOS[scenario], other=True, faults=True, seed=repeat, via="operator")
    patches = [e for e in connections.state.journal() if e["route"] == "profile.patch"]
    faulted = [e for e in patches if e.get("fault")]
    assert len(faulted) >= 0.2 * len(patches), (len(faulted), len(patches))


def test_two_hundred_appends_over_six_profiles_and_five_bad_items(connections: Any) -> None:
    emails = customers(6)
    start = seed_profiles(connections.state, emails)
    good = [
        {
            "alternate_id": emails[n % 6],
            "patch": [{"op": "add", "path": "/CustomFields/-", "value": {"Name": f"a{n}", "Value": "1"}}],
        }
        for n in range(200)
    ]
    bad = [
        {"alternate_id": emails[0], "patch": [{"op": "move", "from": "/CustomFields/0", "path": "/CustomFields/1"}]},
        {"alternate_id": "nobody@example.com", "patch": [{"op": "replace", "path": "/CustomerType", "value": "x"}]},
        {"alternate_id": emails[1], "patch": [{"op": "replace", "path": "/UpdateStatus", "value": "Complete"}]},
        {"alternate_id": emails[2], "patch": [{"op": "remove", "path": "/CustomFields/999"}]},
        {"patch": [{"op": "replace", "path": "/CustomerType", "value": "x"}]},
    ]
    rows = good[:100] + bad[:3] + good[100:] + bad[3:]
    report = MyPreferencesHook().bulk_patch_profiles(rows, alternate_id_type=ID_TYPE, max_concurrency=8)
    assert (report.total, report.applied, report.failed) == (205, 200, 5), report.failures
    for n, email in enumerate(emails):
        fields = connections.state.profile("DEMO", email, ID_TYPE)["CustomFields"]
        want = start[email]["CustomFields"] + [{"Name": f"a{k}", "Value": "1"} for k in range(n, 200, 6)]
        assert fields == want  # every append once, in input order


@pytest.mark.parametrize("repeat", range(REPEAT))
def test_offer_feed_several_items_per_offer(connections: Any, repeat: int) -> None:
    state = connections.state
    ids = [state.create_offer("dev", {"name": f"feed offer {n}", "labels": []}, "seed")["id"] for n in range(3)]
    rows: list[dict[str, Any]] = []
    for step in range(10):
        for offer_id in ids:
            kind = ("replace", "append", "desired")[step % 3]
            if kind == "replace":
                rows.append({"offer_id": offer_id, "patch": [{"op": "replace", "path": "/name", "value": f"n{step}"}]})
            elif kind == "append":
                rows.append({"offer_id": offer_id, "patch": [{"op": "add", "path": "/labels/-", "value": f"l{step}"}]})
            else:
                rows.append({"offer_id": offer_id, "desired": {"description": f"d{step}"}})
    state.set_faults(
        seeded([{**rule, "route": "offer.patch"} for rule in FAULTS if rule["kind"] != "late_apply"], repeat)
    )
    report = BulkFallbackOfferPatchOperator(
        task_id="offers", items=rows, max_concurrency=8, transport=FAULT_TRANSPORT
    ).execute({})
    state.set_faults([])
    time.sleep(SETTLE_SECONDS)  # a request held back in the sandbox lands (or is refused) now, not in the next test
    assert (report["failed"], report["applied"]) == (0, 30), report.get("failures")
    for offer_id in ids:
        offer = state.offer("dev", offer_id)
        assert (offer["name"], offer["description"]) == ("n9", "d8")
        assert offer["labels"] == ["l1", "l4", "l7"]


def test_single_operators_writing_one_profile_at_once(connections: Any) -> None:
    """Two tasks appending to the same profile at the same moment: neither refuses the other."""
    emails = customers(1)
    start = seed_profiles(connections.state, emails)
    failures: list[BaseException] = []

    def task(name: str) -> None:
        for n in range(10):
            patch = [{"op": "add", "path": "/CustomFields/-", "value": {"Name": f"{name}-{n}", "Value": "1"}}]
            try:
                ProfilePatchOperator(
                    task_id=name, alternate_id=emails[0], alternate_id_type=ID_TYPE, patch=patch
                ).execute({})
            except BaseException as exc:  # collected: a thread's exception would be lost
                failures.append(exc)

    threads = [threading.Thread(target=task, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    fields = connections.state.profile("DEMO", emails[0], ID_TYPE)["CustomFields"]
    added = [f["Name"] for f in fields[len(start[emails[0]]["CustomFields"]) :]]
    assert Counter(added) == Counter(f"{name}-{n}" for name in "ab" for n in range(10))
    assert [a for a in added if a.startswith("a")] == [f"a-{n}" for n in range(10)]  # each task's own order kept

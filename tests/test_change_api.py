"""One change API: an operator, a bulk item and a TaskFlow-style hook call make a change the same way.

Each case runs the same change three times from the same sandbox state (reset in between): through
``ProfilePatchOperator.execute``, as the single item of ``bulk_patch_profiles``, and through
``MyPreferencesHook.change_profile`` with a checkpoint, as a ``@task`` would. The three outcomes
must agree (status, operations, reconciled, the profile summary), and so must the requests the
sandbox received. Then clear-after-fix: a refused change is planned anew once its cause is fixed
and the task instance runs again on the same task state; an applied one is not sent again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from conftest import journal
from helpers import FakeTaskStateStore

from airflow_provider_prefs.bulk.progress import BulkProgress
from airflow_provider_prefs.errors import ConcurrentModificationError, NotFoundError, PrefsError
from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
from airflow_provider_prefs.models import ChangeOutcome
from airflow_provider_prefs.operators import BulkProfilePatchOperator, ProfilePatchOperator
from airflow_provider_prefs.patching.checkpoint import MemoryCheckpoint, TaskCheckpoint

ADA = ("Ada@Example.com", "Email")
APPEND = [{"op": "add", "path": "/CustomFields/-", "value": {"Name": "Campaign", "Value": "Spring"}}]
#: The parts of an outcome that must not depend on who made the change (``Edited`` is a timestamp).
COMPARED = ("status", "target", "operations", "reconciled", "replans")


def via_operator(change: dict[str, Any]) -> dict[str, Any]:
    task = ProfilePatchOperator(task_id="t", alternate_id=ADA[0], alternate_id_type=ADA[1], **change)
    return task.execute({"task_state_store": FakeTaskStateStore()})


def via_bulk_item(change: dict[str, Any]) -> dict[str, Any]:
    dry_run = change.pop("dry_run", False)
    item = {"alternate_id": ADA[0], "alternate_id_type": ADA[1], **change}
    outcomes: list[ChangeOutcome] = []
    MyPreferencesHook().bulk_patch_profiles(
        [item], dry_run=dry_run, progress=BulkProgress(MemoryCheckpoint()), on_outcome=outcomes.append
    )
    [outcome] = outcomes
    if outcome.status == "failed":
        raise RuntimeError(outcome.error)
    return outcome.to_xcom()


def via_hook(change: dict[str, Any]) -> dict[str, Any]:
    """What a TaskFlow task does: the hook's change with the task's checkpoint."""
    checkpoint = MemoryCheckpoint()
    outcome = MyPreferencesHook().change_profile(*ADA, checkpoint=checkpoint, **change)
    checkpoint.forget_on_success()
    return outcome.to_xcom()


def summary(result: dict[str, Any]) -> dict[str, Any]:
    profile = {k: v for k, v in result.get("profile", {}).items() if k != "Edited"}
    return {**{key: result.get(key) for key in COMPARED}, "profile": profile}


def requests_of(sandbox: Any) -> list[tuple[str, Any, bool | None]]:
    """What reached the sandbox: route, body and whether it was applied."""
    return [(e["route"], e.get("body"), e.get("applied")) for e in sandbox.state.journal() if "token" not in e["route"]]


def run_three_ways(sandbox: Any, change: dict[str, Any], prepare: Callable[[], None] = lambda: None) -> list[Any]:
    """The change through the operator, the hook and the bulk runner, each from the seed state."""
    runs = []
    for path in (via_operator, via_hook, via_bulk_item):
        sandbox.state.reset()
        sandbox.state.set_config(pending_delay=0.3)
        prepare()
        try:
            result: Any = path(dict(change))
        except (PrefsError, AirflowFailException, RuntimeError) as exc:
            result = exc
        runs.append((result, requests_of(sandbox), sandbox.state.profile("DEMO", *ADA)))
    return runs


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"patch": APPEND}, id="append-guarded"),
        pytest.param({"desired": {"DefaultLocale": "fr-FR", "CustomerType": "Retail"}}, id="desired"),
        pytest.param({"patch": APPEND, "dry_run": True}, id="dry-run"),
        pytest.param({"desired": {"DefaultLocale": "en-US"}}, id="desired-already-so"),
    ],
)
def test_operator_hook_and_bulk_item_agree(connections: Any, change: dict[str, Any]) -> None:
    if change.get("desired") == {"DefaultLocale": "en-US"}:
        change = {"desired": {"DefaultLocale": MyPreferencesHook().get_profile(*ADA)["DefaultLocale"]}}
    (operator, op_requests, op_doc), (hook, hook_requests, hook_doc), (bulk, bulk_requests, bulk_doc) = run_three_ways(
        connections, change
    )
    assert summary(operator) == summary(hook) == summary(bulk)
    # The same requests (the same guarded operations) reached the service, and left the same document.
    assert op_requests == hook_requests == bulk_requests
    strip = lambda doc: {k: v for k, v in doc.items() if k not in ("Edited", "UpdateStatus")}  # noqa: E731
    assert strip(op_doc) == strip(hook_doc) == strip(bulk_doc)
    if change.get("patch") and not change.get("dry_run"):
        [(_, body, applied)] = [r for r in op_requests if r[0] == "profile.patch"]
        assert body[0]["op"] == "test" and body[1:] == APPEND and applied  # the append went out guarded


def test_a_refusal_is_the_same_error_everywhere(connections: Any) -> None:
    """The patch's own test no longer holds: nothing is sent, and all three say the same thing."""
    stale = [{"op": "test", "path": "/DefaultLocale", "value": "xx-XX"}, *APPEND]
    runs = run_three_ways(connections, {"patch": stale})
    messages = [str(result) for result, _, _ in runs]
    assert isinstance(runs[1][0], ConcurrentModificationError)
    assert isinstance(runs[0][0], AirflowFailException) and isinstance(runs[2][0], RuntimeError)
    assert "test of /DefaultLocale" in messages[1]
    assert messages[1] in messages[0] and messages[1] in messages[2]
    # Each was refused by the service with the same body, once.
    assert runs[0][1] == runs[1][1] == runs[2][1]
    assert [applied for route, _, applied in runs[1][1] if route == "profile.patch"] == [False]


def test_a_lost_answer_is_reconciled_the_same_way_everywhere(connections: Any) -> None:
    """The service applied the append and the answer was lost: each path re-reads, none appends twice."""

    def lose_the_answer() -> None:
        connections.state.set_faults([{"route": "profile.patch", "kind": "503_after", "count": 1}])

    runs = run_three_ways(connections, {"patch": APPEND}, prepare=lose_the_answer)
    operator, hook, bulk = (result for result, _, _ in runs)
    assert summary(operator) == summary(hook) == summary(bulk) and operator["reconciled"] is True
    for _, requests, doc in runs:
        assert [applied for route, _, applied in requests if route == "profile.patch"] == [True]
        assert doc["CustomFields"].count(APPEND[0]["value"]) == 1


# Clear after a fix -----------------------------------------------------------------------------------

NEWCOMER = ("new.customer@example.com", "Email")


def add_newcomer(sandbox: Any) -> None:
    seed = sandbox.state.profile("DEMO", *ADA)
    profile = {**{k: v for k, v in seed.items() if k != "UpdateStatus"}, "CustomFields": []}
    sandbox.state.add_profiles(
        "DEMO", [{"alternate_id": NEWCOMER[0], "alternate_id_type": NEWCOMER[1], "profile": profile}]
    )


RETAIL = [{"op": "replace", "path": "/CustomerType", "value": "Retail"}]


@pytest.mark.parametrize("patch", [APPEND, RETAIL], ids=["read-first", "recorded-then-refused"])
def test_clear_after_fix_single(connections: Any, patch: list[dict[str, Any]]) -> None:
    """Refused (404: the profile is not there yet), then the cause is fixed and the task instance runs
    again on the same task state (what a clear does): the change is planned anew and sent."""
    store = FakeTaskStateStore()
    task = ProfilePatchOperator(task_id="t", alternate_id=NEWCOMER[0], alternate_id_type=NEWCOMER[1], patch=patch)
    with pytest.raises(AirflowFailException, match="404"):
        task.execute({"task_state_store": store})
    assert store.values == {}  # refused: nothing kept that could stop the next run
    if patch is RETAIL:
        assert [m for m, _, _ in store.calls] == ["get", "set", "delete"]  # its intent was recorded, then dropped
    add_newcomer(connections)
    again = ProfilePatchOperator(task_id="t", alternate_id=NEWCOMER[0], alternate_id_type=NEWCOMER[1], patch=patch)
    assert again.execute({"task_state_store": store})["status"] == "applied"
    after = connections.state.profile("DEMO", *NEWCOMER)
    assert after["CustomFields"].count(APPEND[0]["value"]) == (1 if patch is APPEND else 0)


def test_clear_after_fix_hook_with_a_checkpoint(connections: Any) -> None:
    checkpoint = MemoryCheckpoint()
    with pytest.raises(NotFoundError):
        MyPreferencesHook().change_profile(*NEWCOMER, patch=APPEND, checkpoint=checkpoint)
    assert checkpoint.values == {}
    add_newcomer(connections)
    assert MyPreferencesHook().change_profile(*NEWCOMER, patch=APPEND, checkpoint=checkpoint).status == "applied"


def bulk_task(items: list[Any]) -> BulkProfilePatchOperator:
    return BulkProfilePatchOperator(task_id="bulk", items=items, alternate_id_type="Email", max_concurrency=2)


def test_clear_after_fix_bulk(connections: Any) -> None:
    """4 items, 2 refused (404); the cause is fixed; the task instance runs again on the same task state:
    the 2 refused are sent, the 2 applied are not, and the report names what each count covers."""
    items = [
        ("Ada@Example.com", APPEND),
        (NEWCOMER[0], APPEND),
        ("grace@example.com", APPEND),
        (NEWCOMER[0], [{"op": "replace", "path": "/CustomerType", "value": "Retail"}]),
    ]
    store = FakeTaskStateStore()
    with pytest.raises(AirflowFailException, match="2 of 4 item"):
        bulk_task(items).execute({"task_state_store": store})
    first = [(e["query"]["alternateId"], e["applied"]) for e in journal(connections, "profile.patch")]
    assert sorted(e for e in first if e[1]) == [("Ada@Example.com", True), ("grace@example.com", True)]
    assert {applied for who, applied in first if who == NEWCOMER[0]} <= {False}
    connections.state.clear_journal()

    add_newcomer(connections)
    report = bulk_task(items).execute({"task_state_store": store})
    sent = [(e["query"]["alternateId"], e["applied"]) for e in journal(connections, "profile.patch")]
    assert sent == [(NEWCOMER[0], True), (NEWCOMER[0], True)]  # only the refused ones, in their order
    assert (report["total"], report["applied"], report["failed"]) == (4, 4, 0)
    assert (report["skipped"], report["retried"], report["resumed"]) == (2, 2, 0)
    for alternate_id in ("Ada@Example.com", "grace@example.com", NEWCOMER[0]):
        assert connections.state.profile("DEMO", alternate_id, "Email")["CustomFields"].count(APPEND[0]["value"]) == 1
    assert connections.state.profile("DEMO", *NEWCOMER)["CustomerType"] == "Retail"


def test_clear_after_fixing_the_refused_items_data_bulk(connections: Any) -> None:
    """A refused item may be corrected before the clear (its data is not part of the resume check)."""
    bad = ("Ada@Example.com", [{"op": "replace", "path": "/NoSuchField/x", "value": 1}])
    items = [("grace@example.com", APPEND), bad]
    store = FakeTaskStateStore()
    with pytest.raises(AirflowFailException, match="1 of 2 item"):
        bulk_task(items).execute({"task_state_store": store})
    connections.state.clear_journal()
    fixed = [items[0], ("Ada@Example.com", [{"op": "replace", "path": "/CustomerType", "value": "Retail"}])]
    report = bulk_task(fixed).execute({"task_state_store": store})
    assert [e["query"]["alternateId"] for e in journal(connections, "profile.patch")] == ["Ada@Example.com"]
    assert (report["skipped"], report["retried"], report["applied"]) == (1, 1, 2)


def test_a_taskflow_checkpoint_keeps_a_retry_from_sending_twice(connections: Any) -> None:
    """A retry of a TaskFlow task (the same store, the task died before success) does not append again."""
    store = FakeTaskStateStore()
    first = MyPreferencesHook().change_profile(*ADA, patch=APPEND, checkpoint=TaskCheckpoint(store))
    retry = MyPreferencesHook().change_profile(*ADA, patch=APPEND, checkpoint=TaskCheckpoint(store))
    assert first.to_xcom() == retry.to_xcom() and first.status == "applied"
    assert len(journal(connections, "profile.patch")) == 1
    last = TaskCheckpoint(store)
    MyPreferencesHook().change_profile(*ADA, patch=APPEND, checkpoint=last)
    last.forget_on_success()
    assert store.values == {}

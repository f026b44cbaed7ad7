"""Task-level exactly once: a retry of the same task instance resumes from the task state store.

Each test plays an earlier try's record into a fake store (what Airflow keeps per task instance
across tries) and checks the sandbox journal: a change that already landed is never sent again,
and the recorded operations are what gets sent, not a new plan.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from conftest import journal
from helpers import FakeTaskStateStore, airflow_exception

from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
from airflow_provider_prefs.operators import FallbackOfferPatchOperator, ProfilePatchOperator
from airflow_provider_prefs.patching.checkpoint import TaskCheckpoint, own_record, resource_key
from airflow_provider_prefs.update_status import UpdateStatusTimeoutError

ADA: dict[str, Any] = {"alternate_id": "Ada@Example.com", "alternate_id_type": "Email"}
APPEND: list[dict[str, Any]] = [
    {"op": "add", "path": "/CustomFields/-", "value": {"Name": "Campaign", "Value": "Spring"}}
]


def fake_store() -> FakeTaskStateStore:
    """A task state store as Airflow provides it (the checkpoint writes with its retention constant)."""
    return FakeTaskStateStore()


def profile_op(**kwargs: Any) -> ProfilePatchOperator:
    return ProfilePatchOperator(task_id="patch_profile", **ADA, **kwargs)


def custom_fields(sandbox: Any) -> list[dict[str, Any]]:
    return list(sandbox.state.profile("DEMO", "Ada@Example.com", "Email")["CustomFields"])


KEY = "patch.change"


def ada_key() -> list[Any]:
    """The stable key a record of Ada's profile carries (the service, account, id type and id, casefolded)."""
    return resource_key(MyPreferencesHook().profile(**ADA))


def test_first_try_records_intent_then_outcome_and_success_forgets_both(connections: Any) -> None:
    store = fake_store()
    task = profile_op(patch=APPEND)
    result = task.change_at_most_once({"task_state_store": store}, keep_outcome=True)
    [(_, _, intent), (_, _, answered)] = [call for call in store.calls if call[0] == "set"]
    assert intent["target"] == result["target"] and intent["ops"] == journal(connections, "profile.patch")[0]["body"]
    assert store.values[KEY] == answered == {"key": ada_key(), "target": result["target"], "outcome": result}
    # Airflow keeps task state after success, so the task forgets its own: clearing it later patches anew.
    task.task_done(result)
    assert store.values == {}


def test_a_task_makes_three_store_calls_one_read_one_write_one_delete(connections: Any) -> None:
    """Each call is an execution API round trip: read once, record the operations before sending, forget on success."""
    store = fake_store()
    assert profile_op(patch=APPEND).execute({"task_state_store": store})["status"] == "applied"
    assert store.methods() == ["get", "set", "delete"]
    assert store.calls[1][2]["ops"] == journal(connections, "profile.patch")[0]["body"]  # the intent, before sending
    assert store.values == {}


class TryOf:
    """The ``ti`` of a task context, as far as the checkpoint could look at it: which try this is."""

    def __init__(self, try_number: int) -> None:
        self.try_number = try_number


def test_a_first_try_still_reads_since_the_same_try_can_run_twice(connections: Any) -> None:
    """``try_number`` 1 does not mean nothing ran before: ``airflow tasks test`` after a killed
    ``dags test``, or a queue redelivering a dead worker's message, run try 1 again. The second run
    must find the first one's operations and re-judge them instead of appending a second copy."""
    store = fake_store()
    first = profile_op(patch=APPEND).change_at_most_once(
        {"task_state_store": store, "ti": TryOf(1)}, keep_outcome=False
    )
    assert store.methods() == ["get", "set"]  # the operations, before sending; then the try died before success
    again = profile_op(patch=APPEND).execute({"task_state_store": store, "ti": TryOf(1)})
    assert store.methods() == ["get", "set", "get", "delete"]
    assert first["status"] == again["status"] == "applied" and again["reconciled"] is True
    assert len(journal(connections, "profile.patch")) == 1
    assert custom_fields(connections).count(APPEND[0]["value"]) == 1


def test_nothing_to_send_means_one_read_only(connections: Any) -> None:
    store = fake_store()
    profile_op(patch=APPEND, dry_run=True).execute({"task_state_store": store})
    current = MyPreferencesHook().get_profile(**ADA)
    profile_op(desired={"DefaultLocale": current["DefaultLocale"]}).execute({"task_state_store": store})
    assert store.methods() == ["get", "get"]


def test_airflow_clearing_on_success_saves_the_delete(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With [state_store] clear_on_success the api-server drops the record with the success: no call of ours."""
    monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "True")
    store = fake_store()
    profile_op(patch=APPEND).execute({"task_state_store": store})
    assert store.methods() == ["get", "set"]


def test_a_try_killed_between_the_answer_and_success_is_settled_by_rejudging(connections: Any) -> None:
    """execute() records no answer (it succeeds right after it): a retry finds the operations and re-judges them."""
    store = fake_store()
    first = profile_op(patch=APPEND).change_at_most_once({"task_state_store": store}, keep_outcome=False)
    assert store.values[KEY]["ops"] == journal(connections, "profile.patch")[0]["body"]  # then the try died
    second = profile_op(patch=APPEND).execute({"task_state_store": store})
    assert first["status"] == second["status"] == "applied" and second["reconciled"] is True
    assert len(journal(connections, "profile.patch")) == 1
    assert custom_fields(connections).count(APPEND[0]["value"]) == 1
    assert store.values == {}


def test_retry_after_the_answer_returns_the_recorded_outcome_without_sending(connections: Any) -> None:
    store = fake_store()
    first = profile_op(patch=APPEND).change_at_most_once(
        {"task_state_store": store}, keep_outcome=True
    )  # then the try died
    second = profile_op(patch=APPEND).execute({"task_state_store": store})
    assert second == first
    assert len(journal(connections, "profile.patch")) == 1
    assert custom_fields(connections).count(APPEND[0]["value"]) == 1


def test_retry_after_a_lost_answer_judges_instead_of_appending_again(connections: Any) -> None:
    """The earlier try sent the append and died before the answer (intent recorded, no outcome)."""
    store = fake_store()
    before = MyPreferencesHook().get_profile(**ADA)
    store.set(KEY, {"key": ada_key(), "target": "profile Email:'Ada@Example.com'", "ops": APPEND, "base": before})
    MyPreferencesHook().change_profile(**ADA, patch=APPEND)  # the copy that landed
    connections.state.clear_journal()

    result = profile_op(patch=APPEND).change_at_most_once({"task_state_store": store}, keep_outcome=True)
    assert result["status"] == "applied" and result["reconciled"] is True
    assert journal(connections, "profile.patch") == []
    assert custom_fields(connections).count(APPEND[0]["value"]) == 1
    assert store.values[KEY]["outcome"] == result


def test_retry_after_a_request_that_never_landed_sends_the_recorded_ops_not_a_new_plan(connections: Any) -> None:
    store = fake_store()
    recorded = [{"op": "replace", "path": "/DefaultLocale", "value": "pt-PT"}]
    store.set(KEY, {"key": ada_key(), "target": "profile Email:'Ada@Example.com'", "ops": recorded})
    # The task's own arguments would now plan something else (say, a template rendered differently).
    result = profile_op(desired={"DefaultLocale": "es-ES"}).execute({"task_state_store": store})
    assert result["status"] == "applied" and not result.get("reconciled")
    assert [e["body"] for e in journal(connections, "profile.patch")] == [recorded]


def test_a_record_for_another_target_is_ignored(connections: Any) -> None:
    store = fake_store()
    other = resource_key(MyPreferencesHook().profile("someone@else.com", "Email"))
    store.set(KEY, {"key": other, "target": "profile Email:'someone@else.com'", "ops": APPEND})
    profile_op(patch=[{"op": "replace", "path": "/DefaultLocale", "value": "nl-NL"}]).execute(
        {"task_state_store": store}
    )
    assert [e["body"][0]["path"] for e in journal(connections, "profile.patch")] == ["/DefaultLocale"]


def test_a_record_of_a_long_id_is_not_taken_for_another_with_the_same_display_name(connections: Any) -> None:
    """Display targets cut long ids; identity is the stable key, so two long ids that look alike stay apart."""
    first, second = "a" * 120 + "1@example.com", "a" * 120 + "2@example.com"
    hook = MyPreferencesHook()
    one, two = hook.profile(first, "Email"), hook.profile(second, "Email")
    assert one.target == two.target  # what a display-string match would have confused
    store = fake_store()
    store.set(KEY, {"key": resource_key(one), "target": one.target, "ops": APPEND})
    checkpoint = TaskCheckpoint(store, "patch")
    assert own_record(checkpoint.get("change"), two) is None
    assert own_record(checkpoint.get("change"), one) is not None


def test_undecidable_resume_fails_without_sending(connections: Any) -> None:
    """Someone else changed the array since: neither 'applied' nor 'not applied' can be proven."""
    store = fake_store()
    before = MyPreferencesHook().get_profile(**ADA)
    store.set(KEY, {"key": ada_key(), "target": "profile Email:'Ada@Example.com'", "ops": APPEND, "base": before})
    MyPreferencesHook().change_profile(**ADA, patch=[{"op": "remove", "path": "/CustomFields/0"}])
    connections.state.clear_journal()
    with pytest.raises(AirflowFailException, match="could not tell whether they were applied"):
        profile_op(patch=APPEND).execute({"task_state_store": store})
    assert journal(connections, "profile.patch") == []


def test_offer_retry_after_a_lost_answer(connections: Any) -> None:
    store = fake_store()
    op = [{"op": "add", "path": "/labels/-", "value": "spring"}]
    task = FallbackOfferPatchOperator(task_id="o", offer_id="fallbackOffer1234", patch=op)
    connections.state.set_faults([{"route": "offer.patch", "kind": "503_after", "count": 1}])
    # First try: the append lands, its answer is a 503, and (today) the hook's re-read settles it.
    first = task.change_at_most_once({"task_state_store": store}, keep_outcome=False)
    labels = connections.state.offer("dev", "fallbackOffer1234")["labels"]
    assert "outcome" not in store.values[KEY]  # as if the worker died before recording the answer
    second = task.execute({"task_state_store": store})
    assert first["status"] == second["status"] == "applied" and second["reconciled"] is True
    assert connections.state.offer("dev", "fallbackOffer1234")["labels"] == labels
    assert len([e for e in journal(connections, "offer.patch") if e["applied"]]) == 1


def test_dry_run_records_nothing(connections: Any) -> None:
    store = fake_store()
    profile_op(patch=APPEND, dry_run=True).execute({"task_state_store": store})
    assert store.values == {}


def test_without_a_store_the_task_patches_as_before(connections: Any) -> None:
    assert profile_op(patch=APPEND).execute({})["status"] == "applied"
    assert len(journal(connections, "profile.patch")) == 1


def wait_op(**kwargs: Any) -> ProfilePatchOperator:
    return profile_op(patch=APPEND, wait_for_completion=True, poll_interval=0.1, wait_timeout=0.5, **kwargs)


def run_trigger(trigger: Any) -> dict[str, Any]:
    async def first_event() -> dict[str, Any]:
        [payload] = [event.payload async for event in trigger.run()]
        return payload

    return asyncio.run(first_event())


def test_worker_and_triggerer_waits_time_out_alike(connections: Any) -> None:
    TaskDeferred = airflow_exception("TaskDeferred")
    connections.state.set_config(pending_delay=60)

    with pytest.raises(UpdateStatusTimeoutError) as on_worker:
        wait_op(deferrable=False).execute({"task_state_store": fake_store()})

    task = wait_op(deferrable=True)
    store = fake_store()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({"task_state_store": store})
    event = run_trigger(deferred.value.trigger)
    assert event["status"] == "timeout"
    with pytest.raises(UpdateStatusTimeoutError) as in_triggerer:
        task.execute_complete({"task_state_store": store}, event)
    assert str(in_triggerer.value) == str(on_worker.value)
    assert on_worker.value.retryable


@pytest.mark.parametrize("deferrable", [False, True])
def test_retry_after_a_wait_timeout_waits_again_without_patching(connections: Any, deferrable: bool) -> None:
    TaskDeferred = airflow_exception("TaskDeferred")
    connections.state.set_config(pending_delay=1.0)
    store = fake_store()
    context = {"task_state_store": store}
    task = wait_op(deferrable=deferrable)

    def one_try() -> dict[str, Any]:
        if not deferrable:
            return task.execute(context)
        with pytest.raises(TaskDeferred) as deferred:
            task.execute(context)
        return task.execute_complete(context, run_trigger(deferred.value.trigger))

    with pytest.raises(UpdateStatusTimeoutError):
        one_try()
    time.sleep(0.6)
    result = one_try()
    assert result["status"] == "applied" and result["profile"]["UpdateStatus"] == "Complete"
    assert len(journal(connections, "profile.patch")) == 1
    assert custom_fields(connections).count(APPEND[0]["value"]) == 1


def test_execute_complete_needs_only_the_event(connections: Any) -> None:
    """``airflow dags test`` resumes with ``execute_complete(context, event=...)`` and no kwargs."""
    TaskDeferred = airflow_exception("TaskDeferred")
    connections.state.set_config(pending_delay=0.2)
    task = wait_op(deferrable=True)
    store = fake_store()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({"task_state_store": store})
    deferred.value.trigger.deadline = time.time() + 10
    result = task.execute_complete({"task_state_store": store}, event=run_trigger(deferred.value.trigger))
    assert result["status"] == "applied" and result["operations"] == 2  # the append and its test guard
    assert result["profile"]["UpdateStatus"] == "Complete"


def test_a_refused_patch_is_forgotten_so_a_fixed_task_plans_anew(connections: Any) -> None:
    """A 4xx proves nothing landed: after the DAG is fixed, clearing the task must not resend the refused ops."""
    store = fake_store()
    wrong_guard = [
        {"op": "test", "path": "/DefaultLocale", "value": "xx-XX"},
        {"op": "replace", "path": "/DefaultLocale", "value": "sv-SE"},
    ]
    with pytest.raises(AirflowFailException, match="does not match the patch's test"):
        profile_op(patch=wrong_guard).execute({"task_state_store": store})
    assert KEY not in store.values

    fixed = [{"op": "replace", "path": "/DefaultLocale", "value": "sv-SE"}]
    assert profile_op(patch=fixed).execute({"task_state_store": store})["status"] == "applied"
    assert [e["body"] for e in journal(connections, "profile.patch")] == [wrong_guard, fixed]


def test_a_context_without_a_store_warns_once_that_crash_recovery_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from unittest import mock

    from airflow_provider_prefs.patching import checkpoint

    monkeypatch.setattr(checkpoint, "_warned", False)
    log = mock.Mock()
    assert not checkpoint.TaskCheckpoint.from_context({}, "patch", log).available
    assert checkpoint.TaskCheckpoint.from_context({"task_state_store": None}, "patch", log).available is False
    assert log.warning.call_count == 1
    message = log.warning.call_args.args[0]
    assert "context has no task_state_store" in message and "crash recovery is off" in message
    assert "Airflow 3" not in message  # every supported Airflow has the store; a context may lack it
    assert checkpoint.TaskCheckpoint.from_context({"task_state_store": fake_store()}, "patch", log).available

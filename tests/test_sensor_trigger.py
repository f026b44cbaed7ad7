"""Waiting for UpdateStatus == Complete: sensor (poke, reschedule, deferrable) and trigger."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from conftest import journal
from helpers import airflow_exception, set_connection

from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
from airflow_provider_prefs.operators import ProfilePatchOperator
from airflow_provider_prefs.sensors import ProfileUpdateStatusSensor
from airflow_provider_prefs.triggers.profile_status import ProfileUpdateStatusTrigger

ADA: dict[str, Any] = {"alternate_id": "Ada@Example.com", "alternate_id_type": "Email"}


def make_pending(sandbox: Any, delay: float = 0.5) -> None:
    sandbox.state.set_config(pending_delay=delay)
    MyPreferencesHook().change_profile(**ADA, patch=[{"op": "replace", "path": "/DefaultLocale", "value": "fr-FR"}])


def sensor(**kwargs: Any) -> ProfileUpdateStatusSensor:
    return ProfileUpdateStatusSensor(task_id="wait", **{**ADA, **kwargs})


def test_poke_mode_waits_until_complete(connections: Any) -> None:
    make_pending(connections)
    start = time.monotonic()
    summary = sensor(poke_interval=0.1, timeout=10, mode="poke").execute({})
    assert summary["UpdateStatus"] == "Complete" and summary["ProfileId"]
    assert time.monotonic() - start >= 0.3
    statuses = [e["status"] for e in journal(connections, "profile.get")]
    assert len(statuses) >= 2 and set(statuses) == {200}


class RescheduleTI:
    """The one task-instance method an Airflow 3 sensor in reschedule mode calls."""

    def get_first_reschedule_date(self, context: Any) -> None:
        return None


def test_reschedule_mode_reschedules_then_completes(connections: Any) -> None:
    AirflowRescheduleException = airflow_exception("AirflowRescheduleException")

    make_pending(connections, delay=0.5)
    task = sensor(poke_interval=1, timeout=60, mode="reschedule")
    with pytest.raises(AirflowRescheduleException):
        task.execute({"ti": RescheduleTI()})
    time.sleep(0.6)
    assert task.execute({"ti": RescheduleTI()})["UpdateStatus"] == "Complete"


def test_missing_profile_fails_instead_of_waiting(connections: Any) -> None:
    with pytest.raises(AirflowFailException, match="404"):
        ProfileUpdateStatusSensor(
            task_id="w", alternate_id="ghost@example.com", alternate_id_type="Email", poke_interval=0.1, timeout=5
        ).execute({})
    assert len(journal(connections, "profile.get")) == 1


def test_bad_credentials_fail_instead_of_waiting(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(
        monkeypatch, "mp_wrong", connections.url, base="mypreferences_default", password="definitely-wrong-token"
    )
    with pytest.raises(AirflowFailException, match="401"):
        sensor(conn_id=conn_id, poke_interval=0.1, timeout=5).execute({})


def test_unknown_status_fails(connections: Any) -> None:
    connections.state.force_update_status("DEMO", "Ada@Example.com", "Email", "Archived")
    with pytest.raises(AirflowFailException, match="UpdateStatus 'Archived'"):
        sensor(poke_interval=0.1, timeout=5).execute({})


def test_transient_errors_keep_waiting(connections: Any) -> None:
    make_pending(connections, delay=0.3)
    connections.state.set_faults([{"route": "profile.get", "kind": "503_before", "count": 3}])
    summary = sensor(poke_interval=0.1, timeout=10).execute({})
    assert summary["UpdateStatus"] == "Complete"
    assert [e["status"] for e in journal(connections, "profile.get")][:3] == [503, 503, 503]


def run_trigger(trigger: ProfileUpdateStatusTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def test_trigger_completes(connections: Any) -> None:
    make_pending(connections, delay=0.4)
    trigger = ProfileUpdateStatusTrigger(**ADA, deadline=time.time() + 10, poll_interval=0.1)
    [event] = run_trigger(trigger)
    assert event["status"] == "success" and event["profile"]["UpdateStatus"] == "Complete"


def test_trigger_times_out_at_the_deadline(connections: Any) -> None:
    make_pending(connections, delay=30)
    start = time.monotonic()
    [event] = run_trigger(ProfileUpdateStatusTrigger(**ADA, deadline=time.time() + 0.5, poll_interval=0.1))
    assert event["status"] == "timeout" and "not Complete" in event["message"]
    assert 0.4 <= time.monotonic() - start < 3


def test_trigger_reports_errors(connections: Any) -> None:
    [event] = run_trigger(
        ProfileUpdateStatusTrigger(
            alternate_id="ghost@example.com", alternate_id_type="Email", deadline=time.time() + 5, poll_interval=0.1
        )
    )
    assert event["status"] == "error" and "404" in event["message"]


def test_fixed_connection_is_used_without_restarting_the_triggerer(
    connections: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_provider_prefs.hooks.mypreferences as mypreferences

    monkeypatch.setattr(mypreferences, "FORGOTTEN_HOOK_GRACE_SECONDS", 0.05)
    set_connection(monkeypatch, "mp_rotated", connections.url, base="mypreferences_default", password="old-token")

    def trigger() -> ProfileUpdateStatusTrigger:
        return ProfileUpdateStatusTrigger(**ADA, conn_id="mp_rotated", deadline=time.time() + 10, poll_interval=0.1)

    async def one_triggerer_loop() -> tuple[dict[str, Any], dict[str, Any], bool]:
        refused_hook = mypreferences.MyPreferencesAsyncHook.shared("mp_rotated")
        refused = await trigger().wait()
        refused_client = refused_hook._client
        # Someone puts the right token in the connection; the task retries, the triggerer keeps running.
        set_connection(monkeypatch, "mp_rotated", connections.url, base="mypreferences_default")
        accepted = await trigger().wait()
        await asyncio.sleep(0.2)
        return refused, accepted, refused_client is not None and refused_client.http.is_closed

    refused, accepted, old_client_closed = asyncio.run(one_triggerer_loop())
    assert refused["status"] == "error" and "401" in refused["message"]
    assert accepted["status"] == "success"
    assert old_client_closed


def test_trigger_serializes_to_plain_json_and_round_trips() -> None:
    trigger = ProfileUpdateStatusTrigger(**ADA, deadline=1234.5, poll_interval=2, conn_id="mp")
    classpath, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert classpath == "airflow_provider_prefs.triggers.profile_status.ProfileUpdateStatusTrigger"
    module, name = classpath.rsplit(".", 1)
    clone = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    assert clone.serialize() == (classpath, kwargs)


def deferred_sensor(connections: Any, pending: float) -> tuple[ProfileUpdateStatusSensor, ProfileUpdateStatusTrigger]:
    """A deferrable sensor on a profile pending for ``pending`` seconds, and the trigger it handed its wait to."""
    make_pending(connections, delay=pending)
    task = sensor(poke_interval=0.1, timeout=30, deferrable=True)
    with pytest.raises(airflow_exception("TaskDeferred")) as deferred:
        task.execute({})
    assert isinstance(deferred.value.trigger, ProfileUpdateStatusTrigger)
    return task, deferred.value.trigger


def test_deferrable_sensor_hands_over_to_the_trigger(connections: Any) -> None:
    task, trigger = deferred_sensor(connections, pending=0.4)
    [event] = run_trigger(trigger)
    assert task.execute_complete({}, event)["UpdateStatus"] == "Complete"


def test_a_wait_the_trigger_cannot_end_well_fails_the_task_with_its_reason(connections: Any) -> None:
    """The trigger's own error event (an unknown status) fails the task at once, naming the profile and the status."""
    task, trigger = deferred_sensor(connections, pending=30)
    connections.state.force_update_status("DEMO", "Ada@Example.com", "Email", "Archived")
    [event] = run_trigger(trigger)
    assert event["status"] == "error"
    with pytest.raises(AirflowFailException) as failed:
        task.execute_complete({}, event)
    assert "profile Email:'Ada@Example.com'" in str(failed.value) and "UpdateStatus 'Archived'" in str(failed.value)
    with pytest.raises(AirflowFailException, match="unexpected trigger event None"):
        task.execute_complete({}, None)  # type: ignore[arg-type]


def test_operator_patch_then_deferred_wait(connections: Any) -> None:
    TaskDeferred = airflow_exception("TaskDeferred")

    connections.state.set_config(pending_delay=0.3)
    task = ProfilePatchOperator(
        task_id="p",
        **ADA,
        patch=[{"op": "replace", "path": "/CustomerType", "value": "Retail"}],
        wait_for_completion=True,
        deferrable=True,
        poll_interval=0.1,
        wait_timeout=30,
    )
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({})
    kwargs = deferred.value.kwargs
    [event] = run_trigger(deferred.value.trigger)
    result = task.execute_complete({}, event, **(kwargs or {}))
    assert result["status"] == "applied" and result["profile"]["UpdateStatus"] == "Complete"
    assert len(journal(connections, "profile.patch")) == 1

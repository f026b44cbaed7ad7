"""The async path (triggerer): one token fetch at a time, the task's transport overrides, no silent deaths."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from conftest import journal

from airflow_provider_prefs.hooks.mypreferences import MyPreferencesAsyncHook, MyPreferencesHook
from airflow_provider_prefs.sensors import ProfileUpdateStatusSensor
from airflow_provider_prefs.triggers.profile_status import ProfileUpdateStatusTrigger

ADA: dict[str, Any] = {"alternate_id": "Ada@Example.com", "alternate_id_type": "Email"}


def run_trigger(trigger: ProfileUpdateStatusTrigger) -> dict[str, Any]:
    async def collect() -> dict[str, Any]:
        [payload] = [event.payload async for event in trigger.run()]
        return payload

    return asyncio.run(collect())


def test_concurrent_calls_on_one_shared_hook_fetch_one_token(connections: Any) -> None:
    # A slow token endpoint widens the window in which every caller finds the cache empty.
    connections.state.set_faults([{"route": "mp.token", "kind": "slow", "delay": 0.3}])

    async def twenty_waits() -> list[dict[str, Any]]:
        hook = MyPreferencesAsyncHook.shared("mypreferences_oauth")
        try:
            return await asyncio.gather(*(hook.get_profile(**ADA) for _ in range(20)))
        finally:
            await hook.aclose()

    profiles = asyncio.run(twenty_waits())
    assert {p["ProfileId"] for p in profiles} == {1001}
    assert len(journal(connections, "mp.token")) == 1
    assert len(journal(connections, "profile.get")) == 20


def test_trigger_honours_the_task_transport_overrides(connections: Any) -> None:
    """Every read is slower than the task's 0.3 s timeout (the connection allows 5 s): the wait must time out."""
    delay = 2.0
    connections.state.set_faults([{"route": "profile.get", "kind": "slow", "delay": delay}])
    transport = {"timeout": 0.3, "max_attempts": 1}
    trigger = ProfileUpdateStatusTrigger(**ADA, deadline=time.time() + 1.0, poll_interval=0.1, transport=transport)
    assert trigger.serialize()[1]["transport"] == transport

    async def wait_and_inspect() -> tuple[dict[str, Any], float]:
        payload = await trigger.wait()
        client = MyPreferencesAsyncHook.shared("mypreferences_default", transport)._client
        assert client is not None
        return payload, client.settings.timeout

    event, read_timeout = asyncio.run(wait_and_inspect())
    assert read_timeout == 0.3
    assert event["status"] == "timeout"
    # The sandbox journals the abandoned slow reads when their answers go out: let that happen
    # here, not in the journal of whichever test runs next.
    time.sleep(delay + 0.5)


def test_deferrable_sensor_passes_its_transport_to_the_trigger(connections: Any) -> None:
    from helpers import airflow_exception

    connections.state.set_config(pending_delay=30)
    connections.state.force_update_status("DEMO", "Ada@Example.com", "Email", "Pending Update")
    task = ProfileUpdateStatusSensor(task_id="w", **ADA, deferrable=True, timeout=5, transport={"timeout": 7})
    with pytest.raises(airflow_exception("TaskDeferred")) as deferred:
        task.execute({})
    assert deferred.value.trigger.serialize()[1]["transport"] == {"timeout": 7}
    assert task.hook.transport.timeout == 7


def test_any_exception_in_the_trigger_becomes_an_error_event(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: Any, alternate_id: str, alternate_id_type: str) -> dict[str, Any]:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(MyPreferencesAsyncHook, "get_profile", broken)
    event = run_trigger(ProfileUpdateStatusTrigger(**ADA, deadline=time.time() + 5, poll_interval=0.1))
    assert event == {
        "status": "error",
        "message": "profile Email:'Ada@Example.com': the wait failed in the triggerer: RuntimeError: kaboom",
    }
    sensor = ProfileUpdateStatusSensor(task_id="w", **ADA)
    with pytest.raises(AirflowFailException, match="RuntimeError: kaboom"):
        sensor.execute_complete({}, event)


def test_an_answer_that_is_not_a_profile_ends_the_wait_with_a_reason(
    connections: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def not_a_profile(self: Any, alternate_id: str, alternate_id_type: str) -> Any:
        return ["not", "a", "profile"]

    monkeypatch.setattr(MyPreferencesAsyncHook, "get_profile", not_a_profile)
    event = run_trigger(ProfileUpdateStatusTrigger(**ADA, deadline=time.time() + 5, poll_interval=0.1))
    assert event["status"] == "error" and "not a profile" in event["message"]


def test_deferred_sensor_times_out_like_a_poking_one(connections: Any) -> None:
    """A profile that stays Pending: both modes end in AirflowSensorTimeout, the deferred one naming the profile."""
    from helpers import airflow_exception

    AirflowSensorTimeout, TaskDeferred = airflow_exception("AirflowSensorTimeout"), airflow_exception("TaskDeferred")
    connections.state.set_config(pending_delay=60)
    MyPreferencesHook().change_profile(**ADA, patch=[{"op": "replace", "path": "/DefaultLocale", "value": "fr-FR"}])

    def sensor(**kwargs: Any) -> ProfileUpdateStatusSensor:
        return ProfileUpdateStatusSensor(task_id="w", **ADA, poke_interval=0.1, timeout=0.5, **kwargs)

    with pytest.raises(AirflowSensorTimeout) as poking:
        sensor(mode="poke").execute({})
    deferrable = sensor(deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        deferrable.execute({})
    event = run_trigger(deferred.value.trigger)
    assert event["status"] == "timeout"
    with pytest.raises(AirflowSensorTimeout) as waited:
        deferrable.execute_complete({}, event)
    assert type(waited.value) is type(poking.value)
    assert str(waited.value) == "profile Email:'Ada@Example.com': UpdateStatus not Complete by the deadline"
    with pytest.raises(AirflowSensorTimeout) as bare:
        deferrable.execute_complete({}, {"status": "timeout"})  # an event without a message still names the profile
    assert str(bare.value) == "profile Email:'Ada@Example.com': the wait timed out"

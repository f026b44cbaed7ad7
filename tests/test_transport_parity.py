"""One table of transport scenarios, run through the sync client (hooks) and the async client (triggers).

Each scenario sets sandbox faults, sends one request through the client a real hook builds (the sync
``MyPreferencesHook.client`` or the client the trigger's ``MyPreferencesAsyncHook`` builds), and checks the
requests the server saw and how the call ended against the *same* expectation for both clients: the two
differ only in how they wait (blocking or async), never in the rules (429 and Retry-After, the retry budget,
401 refresh once, ``transport=`` overrides, a 5xx on a patch is an unknown outcome).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_prefs.errors import OutcomeUnknownError, PrefsError, RateLimitedError, ServerError
from airflow_provider_prefs.hooks.mypreferences import MyPreferencesAsyncHook, MyPreferencesHook
from airflow_provider_prefs.transport.client import ApiRequest

ADA = ("Ada@Example.com", "Email")
PATCH = [{"op": "replace", "path": "/DefaultLocale", "value": "fr-FR"}]
#: Both clients' waits are real sleeps; a loaded machine only makes them longer, never shorter.
SLACK = 0.15


@dataclass(frozen=True)
class Scenario:
    """Faults and overrides in, the server's view and the call's end out."""

    name: str
    faults: list[dict[str, Any]]
    #: (route, status) of every request the sandbox answered, in order.
    journal: list[tuple[str, int]]
    #: None when the call returns the document, else the exception class it must raise.
    raises: type[PrefsError] | None = None
    method: str = "GET"
    conn_id: str = "mypreferences_default"
    overrides: dict[str, Any] = field(default_factory=dict)
    #: The call must take at least this long (a Retry-After that was honoured).
    min_seconds: float = 0.0
    #: Make the server forget its tokens after a first successful read (the next one gets a 401).
    expire_token: bool = False


SCENARIOS = [
    Scenario(
        "429 waits Retry-After, then retries",
        faults=[{"route": "profile.get", "kind": "429", "retry_after": 1, "count": 1}],
        journal=[("profile.get", 429), ("profile.get", 200)],
        min_seconds=1.0,
    ),
    Scenario(
        "429 on a patch is resent (nothing was applied)",
        method="PATCH",
        faults=[{"route": "profile.patch", "kind": "429", "retry_after": 1, "count": 1}],
        journal=[("profile.patch", 429), ("profile.patch", 200)],
        min_seconds=1.0,
    ),
    Scenario(
        "retry budget: a failing read is tried max_attempts times",
        overrides={"max_attempts": 3},
        faults=[{"route": "profile.get", "kind": "503_before"}],
        journal=[("profile.get", 503)] * 3,
        raises=ServerError,
    ),
    Scenario(
        "transport override max_attempts=1: no retry at all",
        overrides={"max_attempts": 1},
        faults=[{"route": "profile.get", "kind": "503_before", "count": 1}],
        journal=[("profile.get", 503)],
        raises=ServerError,
    ),
    Scenario(
        "transport override max_retry_after: a longer Retry-After is not waited for",
        overrides={"max_retry_after": 1},
        faults=[{"route": "profile.get", "kind": "429", "retry_after": 30, "count": 1}],
        journal=[("profile.get", 429)],
        raises=RateLimitedError,
    ),
    Scenario(
        "5xx on a patch: outcome unknown, never resent blindly",
        method="PATCH",
        faults=[{"route": "profile.patch", "kind": "503_after", "count": 1}],
        journal=[("profile.patch", 503)],
        raises=OutcomeUnknownError,
    ),
    Scenario(
        "401 fetches a new token once and resends",
        conn_id="mypreferences_oauth",
        faults=[],
        expire_token=True,
        journal=[("profile.get", 401), ("mp.token", 200), ("profile.get", 200)],
    ),
]


class SyncSide:
    """The client a task's hook sends with."""

    def __init__(self, conn_id: str, overrides: dict[str, Any]) -> None:
        self.hook = MyPreferencesHook(conn_id, transport_overrides=overrides)

    def request(self, method: str) -> ApiRequest:
        return self.hook.settings.profile_request(method, *ADA, body=PATCH if method == "PATCH" else None)

    def run(self, steps: Callable[[Callable[[str], Any]], Any]) -> Any:
        try:
            return steps(lambda method: self.hook.client.send(self.request(method)))
        finally:
            self.hook.client.close()


class AsyncSide:
    """The client the trigger's async hook builds (its own connection lookup and override parsing)."""

    def __init__(self, conn_id: str, overrides: dict[str, Any]) -> None:
        self.hook = MyPreferencesAsyncHook(conn_id, transport_overrides=overrides)

    def run(self, steps: Callable[[Callable[[str], Any]], Any]) -> Any:
        # One event loop for the whole scenario: the httpx client belongs to the loop it was made on.
        loop = asyncio.new_event_loop()

        def send(method: str) -> Any:
            async def once() -> Any:
                settings, client = await self.hook._ready()
                body = PATCH if method == "PATCH" else None
                return await client.send(settings.profile_request(method, *ADA, body=body))

            return loop.run_until_complete(once())

        try:
            return steps(send)
        finally:
            loop.run_until_complete(self.hook.aclose())
            loop.close()


SIDES: dict[str, type[SyncSide | AsyncSide]] = {"sync": SyncSide, "async": AsyncSide}


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_both_clients_apply_the_same_rules(connections: Any, scenario: Scenario, side: str) -> None:
    client = SIDES[side](scenario.conn_id, scenario.overrides)

    def steps(send: Callable[[str], Any]) -> tuple[Any, float]:
        if scenario.expire_token:
            send("GET")  # obtains a token
            connections.state.reset()  # the server forgets every token it issued
        connections.state.set_faults(scenario.faults)
        started = time.monotonic()
        try:
            return send(scenario.method), time.monotonic() - started
        except PrefsError as exc:
            return exc, time.monotonic() - started

    result, seconds = client.run(steps)
    seen = [(e["route"], e["status"]) for e in connections.state.journal()]
    if scenario.expire_token:
        seen = seen[seen.index(("profile.get", 401)) :] if ("profile.get", 401) in seen else seen
    assert seen == scenario.journal
    if scenario.raises is None:
        assert isinstance(result, dict) and result.get("ProfileId") == 1001, result
    else:
        assert type(result) is scenario.raises, repr(result)
    assert seconds >= scenario.min_seconds - SLACK


def sync_pair(connections: Any) -> None:
    """Two reads on one sync client: the second starts once the first was throttled."""
    hook = MyPreferencesHook("mypreferences_default")
    request = hook.settings.profile_request("GET", *ADA)
    first = threading.Thread(target=hook.client.send, args=(request,))
    first.start()
    wait_for_429(connections)
    hook.client.send(request)
    first.join(timeout=60)
    hook.client.close()


def async_pair(connections: Any) -> None:
    """Two reads on the trigger's async client: the second starts once the first was throttled."""
    hook = MyPreferencesAsyncHook("mypreferences_default")

    async def both() -> None:
        settings, client = await hook._ready()
        request = settings.profile_request("GET", *ADA)
        first = asyncio.ensure_future(client.send(request))
        deadline = time.monotonic() + 30
        while not throttled(connections):
            assert time.monotonic() < deadline, "the 429 never came"
            await asyncio.sleep(0.01)
        await client.send(request)
        await first
        await hook.aclose()

    asyncio.run(both())


def throttled(connections: Any) -> bool:
    """True once the sandbox has answered the 429."""
    return any(e["status"] == 429 for e in connections.state.journal())


def wait_for_429(connections: Any) -> None:
    """Block until the sandbox has answered the 429 (generous: a loaded machine is slow)."""
    deadline = time.monotonic() + 30
    while not throttled(connections):
        assert time.monotonic() < deadline, "the 429 never came"
        time.sleep(0.01)


@pytest.mark.parametrize(
    "pair",
    [
        pytest.param(sync_pair, id="sync"),
        pytest.param(async_pair, id="async"),
    ],
)
def test_a_429_holds_back_the_clients_other_requests(connections: Any, pair: Callable[[Any], None]) -> None:
    """A 429 with Retry-After pauses every request of that client, not only the throttled one."""
    retry_after = 2
    connections.state.set_faults([{"route": "profile.get", "kind": "429", "retry_after": retry_after, "count": 1}])
    pair(connections)
    entries = connections.state.journal()
    first_429 = next(e for e in entries if e["status"] == 429)
    later = [e for e in entries if e["seq"] > first_429["seq"]]
    assert [e["status"] for e in later] == [200, 200]
    # Both the throttled request's resend and the other request waited out the Retry-After.
    assert all(e["time"] - first_429["time"] >= retry_after - SLACK for e in later)

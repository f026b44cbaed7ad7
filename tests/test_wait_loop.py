"""One wait loop for the operator's wait on the worker and the trigger: the same looks give the same end."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_prefs.errors import PrefsError, ServerError
from airflow_provider_prefs.update_status import (
    StatusCheck,
    await_until_complete,
    interpret,
    wait_until_complete,
)

TARGET = "profile Email:'ada@example.com'"
PENDING = {"ProfileId": 1, "UpdateStatus": "Pending Update"}
COMPLETE = {"ProfileId": 1, "UpdateStatus": "Complete"}
UNKNOWN = {"ProfileId": 1, "UpdateStatus": "Sideways"}
THROTTLED = ServerError(status=503, method="GET", url="https://x", vendor_message="busy", action="GET")

#: name -> (what each look reads, seconds until the deadline, expected end, looks made)
SCENARIOS: dict[str, tuple[list[Any], float, str, int]] = {
    "complete at once": ([COMPLETE], 5, "complete", 1),
    "pending, a 503, then complete": ([PENDING, THROTTLED, COMPLETE], 5, "complete", 3),
    "an unknown status stops the wait": ([PENDING, UNKNOWN, COMPLETE], 5, "failure", 2),
    "still pending at the deadline": ([PENDING] * 1000, 0.2, "timeout", -1),
    "past the deadline still looks once": ([COMPLETE], -1, "complete", 1),
}


def look_at(reads: list[Any]) -> tuple[Any, list[int]]:
    made: list[int] = []

    def look() -> StatusCheck:
        read = reads[len(made)]
        made.append(1)
        if isinstance(read, PrefsError):
            return interpret(TARGET, error=read)
        return interpret(TARGET, profile=read)

    return look, made


def end_of(check: StatusCheck | None) -> str:
    if check is None:
        return "timeout"
    return "failure" if check.failure is not None else "complete" if check.complete else "pending"


def run_sync(reads: list[Any], left: float) -> tuple[str, int]:
    look, made = look_at(reads)
    return end_of(wait_until_complete(look, time.time() + left, poll_interval=0.02)), len(made)


def run_async(reads: list[Any], left: float) -> tuple[str, int]:
    look, made = look_at(reads)

    async def alook() -> StatusCheck:
        return look()

    check = asyncio.run(await_until_complete(alook, time.time() + left, poll_interval=0.02))
    return end_of(check), len(made)


@pytest.mark.parametrize("driver", [run_sync, run_async], ids=["worker", "triggerer"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_both_waits_end_the_same_way(driver: Any, name: str) -> None:
    reads, left, expected, looks = SCENARIOS[name]
    end, made = driver(list(reads), left)
    assert end == expected, name
    if looks >= 0:
        assert made == looks, name
    else:
        assert 2 <= made <= 20, f"{name}: {made} looks in {left}s at 0.02s intervals"


def test_the_wait_sleeps_between_looks_and_not_past_the_deadline() -> None:
    look, made = look_at([PENDING] * 1000)
    started = time.monotonic()
    assert wait_until_complete(look, time.time() + 0.3, poll_interval=10) is None
    elapsed = time.monotonic() - started
    assert len(made) == 2 and 0.25 <= elapsed < 3, (len(made), elapsed)

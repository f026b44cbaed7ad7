"""Waiting for a profile's ``UpdateStatus == Complete``: one rule for the sensor, the trigger and the operator.

Each look at the profile ends in one of three ways: the status was read (done once it is
``Complete``), the read failed in a way the next look may not (429, 5xx, network: keep waiting),
or waiting cannot end well (missing profile, refused credentials, an unknown status: stop). That
rule is :func:`interpret`; the loop around it (look, stop or sleep until the deadline) is
:func:`wait_steps`, written once without I/O and driven by :func:`wait_until_complete` on the
worker and :func:`await_until_complete` in the triggerer, so the two cannot disagree. The sensor
makes one look per poke (Airflow's own loop). A wait that runs out of time raises the same
:class:`UpdateStatusTimeoutError` on the worker and after the trigger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any

from airflow_provider_prefs.errors import PrefsError
from airflow_provider_prefs.models import ProfileSummary, profile_summary


class UpdateStatusTimeoutError(PrefsError):
    """The profile was not ``Complete`` in time. Retryable: a task retry resumes the wait, it does not patch again."""

    retryable = True


def wait_timeout_message(target: str, seconds: float) -> str:
    """The one message of a wait that ran out of time (worker and triggerer alike)."""
    return f"{target}: UpdateStatus not Complete after {seconds:g}s"


@dataclass(frozen=True)
class StatusCheck:
    """One look at a profile while waiting: exactly one of the three fields is set."""

    #: The status was read.
    summary: ProfileSummary | None = None
    #: The read failed, but a later one may work: keep waiting.
    transient: str | None = None
    #: Waiting cannot end well: stop with this message.
    failure: str | None = None
    #: The error behind ``transient`` or ``failure`` (the trigger inspects it).
    error: PrefsError | None = None

    @property
    def complete(self) -> bool:
        """True once the profile's last update is processed."""
        return self.summary is not None and self.summary.is_complete

    def summary_json(self) -> dict[str, Any]:
        """The summary as plain JSON (XCom, trigger event)."""
        assert self.summary is not None
        return self.summary.model_dump(mode="json", exclude_none=True)


def interpret(target: str, *, profile: Any = None, error: PrefsError | None = None) -> StatusCheck:
    """The rule: what one read (its answer ``profile`` or its ``error``) means for the wait."""
    if error is not None:
        if error.retryable:
            return StatusCheck(transient=str(error), error=error)
        return StatusCheck(failure=str(error), error=error)
    try:
        return StatusCheck(summary=profile_summary(profile, target))
    except PrefsError as exc:
        return StatusCheck(failure=str(exc), error=exc)
    except ValueError as exc:  # pydantic: the answer is not a profile at all
        return StatusCheck(failure=f"{target}: the answer is not a profile ({exc.__class__.__name__})")


def _logged(check: StatusCheck, target: str, log: logging.Logger | Any) -> StatusCheck:
    if check.summary is not None:
        log.info("%s UpdateStatus: %s", target, check.summary.UpdateStatus)
    elif check.transient is not None:
        log.warning("%s: %s; will check again", target, check.transient)
    return check


def check_update_status(read: Callable[[], Any], target: str, log: logging.Logger | Any) -> StatusCheck:
    """Read the profile once (blocking) and apply :func:`interpret`."""
    try:
        profile = read()
    except PrefsError as exc:
        return _logged(interpret(target, error=exc), target, log)
    return _logged(interpret(target, profile=profile), target, log)


async def acheck_update_status(
    read: Callable[[], Awaitable[Any]], target: str, log: logging.Logger | Any
) -> StatusCheck:
    """Async twin of :func:`check_update_status` for triggers."""
    try:
        profile = await read()
    except PrefsError as exc:
        return _logged(interpret(target, error=exc), target, log)
    return _logged(interpret(target, profile=profile), target, log)


#: One step of the wait: ``None`` asks the driver for a look (it sends back the :class:`StatusCheck`),
#: a number asks it to sleep that many seconds.
WaitStep = float | None


def wait_steps(deadline: float, poll_interval: float) -> Generator[WaitStep, StatusCheck, StatusCheck | None]:
    """The wait loop, without I/O: look; stop on ``Complete`` or a failure; sleep until the next look.

    Returns the final check, or None once the absolute ``deadline`` (epoch seconds) has passed.
    """
    while True:
        check = yield None
        if check.failure is not None or check.complete:
            return check
        left = deadline - time.time()
        if left <= 0:
            return None
        yield min(poll_interval, left)


def wait_until_complete(look: Callable[[], StatusCheck], deadline: float, poll_interval: float) -> StatusCheck | None:
    """Drive :func:`wait_steps` with blocking looks and sleeps (the operator's wait on the worker)."""
    steps = wait_steps(deadline, poll_interval)
    try:
        step = next(steps)
        while True:
            if step is None:
                step = steps.send(look())
            else:
                time.sleep(step)
                step = next(steps)
    except StopIteration as finished:
        return finished.value


async def await_until_complete(
    look: Callable[[], Awaitable[StatusCheck]], deadline: float, poll_interval: float
) -> StatusCheck | None:
    """Drive :func:`wait_steps` with awaited looks and sleeps (the trigger)."""
    steps = wait_steps(deadline, poll_interval)
    try:
        step = next(steps)
        while True:
            if step is None:
                step = steps.send(await look())
            else:
                await asyncio.sleep(step)
                step = next(steps)
    except StopIteration as finished:
        return finished.value

"""Checks of operator and sensor arguments, run when the task is created (DAG parsing), not when it runs.

A negative ``poll_interval`` used to surface only after the patch had been applied, as a
``ValueError`` from ``time.sleep``; the task then failed with its change already made. Every check
here raises :class:`~airflow_provider_prefs.errors.InvalidArgumentError` (a ``ValueError``) naming
the argument, the value and what to give instead. Kept free of heavy imports: DAG files import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow_provider_prefs.errors import InvalidArgumentError, InvalidInputError, quoted
from airflow_provider_prefs.jsonvalue import check_depth


def positive_seconds(owner: str, name: str, value: Any) -> float:
    """``value`` (seconds, or a timedelta) as a float, or an error unless it is finite and > 0."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds < float("inf"):
        raise InvalidArgumentError(
            f"{owner}: {name} must be a positive number of seconds (or a timedelta), got {quoted(value)}; "
            f"e.g. {name}=30"
        )
    return float(seconds)


def check_change_arguments(owner: str, patch: Any, desired: Any) -> None:
    """A patch operator needs ``patch=`` or ``desired=``, not both and not neither, nested boundedly.

    The depth is checked here because Airflow walks template fields recursively right after
    ``__init__`` (looking for XComArgs): a value 3,000 levels deep would be a raw ``RecursionError``.
    Content (NaN, datetimes...) is checked when the task runs, once templates are rendered.
    """
    for name, value in (("patch", patch), ("desired", desired)):
        try:
            check_depth(value, f"{name}=", what=owner)
        except InvalidInputError as exc:
            raise InvalidArgumentError(str(exc)) from None
    if (patch is None) == (desired is None):
        given = "both" if patch is not None else "neither"
        raise InvalidArgumentError(
            f"{owner} needs exactly one of patch= or desired= (got {given}): patch= is a JSON Patch, a list "
            "of operations; desired= is an object of the fields you want"
        )


def check_wait_arguments(owner: str, *, poll_interval: Any, wait_timeout: Any) -> None:
    """The profile operator's wait settings (checked even when not waiting: they may be templated in later)."""
    positive_seconds(owner, "poll_interval", poll_interval)
    positive_seconds(owner, "wait_timeout", wait_timeout)


def check_sensor_arguments(owner: str, kwargs: Mapping[str, Any]) -> None:
    """A sensor's ``timeout`` and ``poke_interval`` when given: zero would fail or spin, negative is refused."""
    for name in ("timeout", "poke_interval"):
        if name in kwargs:
            positive_seconds(owner, name, kwargs[name])

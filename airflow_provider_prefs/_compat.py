"""Import shims so the same code runs on Airflow 3 (Task SDK) and Airflow 2.10+."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator, PokeReturnValue
else:
    try:
        from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator, PokeReturnValue
    except ImportError:  # Airflow 2.10
        from airflow.hooks.base import BaseHook
        from airflow.models import BaseOperator
        from airflow.sensors.base import BaseSensorOperator, PokeReturnValue


def mask_secret(secret: Any, name: str | None = None) -> None:
    """Register a value with Airflow's secrets masker (no-op for empty values)."""
    if not secret:
        return
    try:
        from airflow.sdk.log import mask_secret as _mask
    except ImportError:  # Airflow 2.10
        from airflow.utils.log.secrets_masker import mask_secret as _mask  # type: ignore[no-redef]
    _mask(secret, name)


def fail_task_exception() -> type[Exception]:
    """The exception class that fails a task without using its retries."""
    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:  # Airflow 2.10
        from airflow.exceptions import AirflowFailException  # type: ignore[no-redef]
    return AirflowFailException


def sensor_timeout_exception() -> type[Exception]:
    """The exception a sensor raises when it runs out of time (fails without retries, like a timed-out poke)."""
    try:
        from airflow.sdk.exceptions import AirflowSensorTimeout
    except ImportError:  # Airflow 2.10
        from airflow.exceptions import AirflowSensorTimeout  # type: ignore[no-redef]
    return AirflowSensorTimeout


__all__ = [
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "PokeReturnValue",
    "fail_task_exception",
    "mask_secret",
    "sensor_timeout_exception",
]

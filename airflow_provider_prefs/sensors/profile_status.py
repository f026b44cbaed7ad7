"""Sensor that waits until a MyPreferences profile's ``UpdateStatus`` is ``Complete``."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_prefs._compat import BaseSensorOperator, PokeReturnValue, fail_task_exception
from airflow_provider_prefs.operators.arguments import check_sensor_arguments
from airflow_provider_prefs.operators.mypreferences import default_deferrable
from airflow_provider_prefs.provider_info import MYPREFERENCES_CONN_TYPE

if TYPE_CHECKING:
    from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
    from airflow_provider_prefs.models import ProfileSummary


def read_update_status(
    hook: MyPreferencesHook, alternate_id: str, alternate_id_type: str, log: logging.Logger | Any
) -> ProfileSummary | None:
    """Read the profile's status: a summary, or None after a transient failure (keep waiting).

    A missing profile, bad credentials or an unknown status raise: waiting would never end well.
    """
    from airflow_provider_prefs.errors import PrefsError
    from airflow_provider_prefs.models import profile_summary

    try:
        profile = hook.get_profile(alternate_id, alternate_id_type)
    except PrefsError as exc:
        if not exc.retryable:
            raise fail_task_exception()(str(exc)) from exc
        log.warning("profile %s:%r: %s; will check again", alternate_id_type, alternate_id, exc)
        return None
    try:
        summary = profile_summary(profile, f"profile {alternate_id_type}:{alternate_id!r}")
    except PrefsError as exc:
        raise fail_task_exception()(str(exc)) from exc
    log.info("profile %s:%r UpdateStatus: %s", alternate_id_type, alternate_id, summary.UpdateStatus)
    return summary


class ProfileUpdateStatusSensor(BaseSensorOperator):
    """Wait until a MyPreferences profile's ``UpdateStatus`` is ``Complete``.

    Fails at once (no more waiting) when the profile does not exist, the credentials are refused,
    or the status is one it does not know. Transient failures (429, 5xx, network) keep it waiting.
    Works in ``poke`` and ``reschedule`` modes; with ``deferrable=True`` the wait runs in the
    triggerer and holds no worker slot. Returns (XCom) the final profile summary
    (``ProfileId``, ``UpdateStatus``, ...).

    :param alternate_id: the profile's alternate id (templated).
    :param alternate_id_type: its type (templated), e.g. ``Email``.
    :param conn_id: connection of type ``mypreferences``.
    :param deferrable: wait in the triggerer.
    """

    template_fields: Sequence[str] = ("alternate_id", "alternate_id_type", "conn_id")
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        alternate_id: str,
        alternate_id_type: str,
        conn_id: str = f"{MYPREFERENCES_CONN_TYPE}_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        check_sensor_arguments(type(self).__name__, kwargs)  # before Airflow's own, vaguer checks
        super().__init__(**kwargs)
        self.alternate_id = alternate_id
        self.alternate_id_type = alternate_id_type
        self.conn_id = conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    @cached_property
    def hook(self) -> MyPreferencesHook:
        """The MyPreferences hook."""
        from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook

        return MyPreferencesHook(self.conn_id)

    def poke(self, context: Any) -> PokeReturnValue:
        """One status read; done only on ``Complete``."""
        summary = read_update_status(self.hook, self.alternate_id, self.alternate_id_type, self.log)
        if summary is None or not summary.is_complete:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=summary.model_dump(mode="json", exclude_none=True))

    def execute(self, context: Any) -> Any:
        """Poke/reschedule as usual, or hand the wait to the trigger when deferrable."""
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        from airflow_provider_prefs.triggers.profile_status import ProfileUpdateStatusTrigger

        self.defer(
            trigger=ProfileUpdateStatusTrigger(
                conn_id=self.conn_id,
                alternate_id=self.alternate_id,
                alternate_id_type=self.alternate_id_type,
                poll_interval=float(
                    self.poke_interval
                    if not isinstance(self.poke_interval, timedelta)
                    else self.poke_interval.total_seconds()
                ),
                deadline=time.time() + float(self.timeout),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + 60),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger: the final summary, or a clear failure."""
        from airflow_provider_prefs.triggers.profile_status import summary_from_event

        return summary_from_event(event)

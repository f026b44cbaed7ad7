"""Sensor that waits until a MyPreferences profile's ``UpdateStatus`` is ``Complete``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSensorTimeout
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_prefs.operators.arguments import check_sensor_arguments
from airflow_provider_prefs.operators.mypreferences import default_deferrable
from airflow_provider_prefs.provider_info import MYPREFERENCES_CONN_TYPE

if TYPE_CHECKING:
    from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook


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
    :param transport: overrides of the connection's transport extras (``timeout``, ``max_attempts``...),
        honoured on the worker and in the triggerer.
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
        transport: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        check_sensor_arguments(type(self).__name__, kwargs)  # before Airflow's own, vaguer checks
        super().__init__(**kwargs)
        self.alternate_id = alternate_id
        self.alternate_id_type = alternate_id_type
        self.conn_id = conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.transport = transport

    @property
    def target(self) -> str:
        """``profile <type>:'<id>'``."""
        return f"profile {self.alternate_id_type}:{self.alternate_id!r}"

    @cached_property
    def hook(self) -> MyPreferencesHook:
        """The MyPreferences hook."""
        from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook

        return MyPreferencesHook(self.conn_id, transport_overrides=self.transport)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the account's profiles of this id type as input (it reads, never changes them)."""
        from airflow_provider_prefs.assets import operator_lineage, profiles_asset_uri

        return operator_lineage(inputs=[profiles_asset_uri(self.hook.settings.client_id, self.alternate_id_type)])

    def poke(self, context: Any) -> PokeReturnValue:
        """One status read; done only on ``Complete``, failed at once when waiting cannot end well."""
        from airflow_provider_prefs.update_status import check_update_status

        check = check_update_status(
            lambda: self.hook.get_profile(self.alternate_id, self.alternate_id_type), self.target, self.log
        )
        if check.failure is not None:
            raise AirflowFailException(check.failure)
        if not check.complete:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=check.summary_json())

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
                transport=self.transport,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + 60),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger: the final summary, or a clear failure.

        A timeout fails like a timed-out poke (``AirflowSensorTimeout``), so both modes end alike.
        """
        from airflow_provider_prefs.triggers.profile_status import summary_from_event

        if event and event.get("status") == "timeout":
            raise AirflowSensorTimeout(event.get("message") or f"{self.target}: the wait timed out")
        return summary_from_event(event)

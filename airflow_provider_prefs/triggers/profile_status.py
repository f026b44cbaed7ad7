"""Trigger that polls a MyPreferences profile until ``UpdateStatus`` is ``Complete`` (pure async)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_prefs.provider_info import MYPREFERENCES_CONN_TYPE


class ProfileUpdateStatusTrigger(BaseTrigger):
    """Poll a profile without blocking the event loop and fire one event.

    The event is ``{"status": "success", "profile": {...}}``, ``{"status": "error", "message"}``
    (missing profile, refused credentials, unknown status) or ``{"status": "timeout", "message"}``
    once the absolute ``deadline`` (epoch seconds) passes. Transient failures keep it polling; any
    other exception becomes an error event naming it, so the task fails at once with a reason
    instead of staying deferred until its timeout. Serialized kwargs are plain JSON and hold no
    secret: the connection id and the task's ``transport`` overrides (timeouts, retries, TLS).
    """

    def __init__(
        self,
        *,
        alternate_id: str,
        alternate_id_type: str,
        deadline: float,
        conn_id: str = f"{MYPREFERENCES_CONN_TYPE}_default",
        poll_interval: float = 30.0,
        transport: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.alternate_id = alternate_id
        self.alternate_id_type = alternate_id_type
        self.deadline = float(deadline)
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.transport = dict(transport) if transport else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and plain-JSON kwargs."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "alternate_id": self.alternate_id,
                "alternate_id_type": self.alternate_id_type,
                "deadline": self.deadline,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "transport": self.transport,
            },
        )

    @property
    def target(self) -> str:
        """How messages name the profile."""
        return f"profile {self.alternate_id_type}:{self.alternate_id!r}"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until complete, failed, or past the deadline; yield exactly one event."""
        try:
            payload = await self.wait()
        except Exception as exc:
            # Anything unforeseen (a bug, a library error) must still end the wait with a reason:
            # a trigger that dies leaves its task deferred until the deferral timeout.
            self.log.exception("%s: the wait failed in the triggerer", self.target)
            payload = {
                "status": "error",
                "message": f"{self.target}: the wait failed in the triggerer: {type(exc).__name__}: {exc}"[:1000],
            }
        yield TriggerEvent(payload)

    async def wait(self) -> dict[str, Any]:
        """The polling loop; returns the event payload."""
        from airflow_provider_prefs.errors import (
            AuthenticationError,
            ConfigurationError,
            PermissionDeniedError,
            UntrustedCertificateError,
        )
        from airflow_provider_prefs.hooks.mypreferences import MyPreferencesAsyncHook
        from airflow_provider_prefs.update_status import StatusCheck, acheck_update_status, await_until_complete

        refused = AuthenticationError | PermissionDeniedError | ConfigurationError | UntrustedCertificateError

        async def look() -> StatusCheck:
            hook = MyPreferencesAsyncHook.shared(self.conn_id, self.transport)
            check = await acheck_update_status(
                lambda: hook.get_profile(self.alternate_id, self.alternate_id_type), self.target, self.log
            )
            if isinstance(check.error, refused):
                MyPreferencesAsyncHook.forget(self.conn_id)  # fixing the connection must be enough
            return check

        check = await await_until_complete(look, self.deadline, self.poll_interval)
        if check is None:
            return {"status": "timeout", "message": f"{self.target}: UpdateStatus not Complete by the deadline"}
        if check.failure is not None:
            return {"status": "error", "message": check.failure}
        return {"status": "success", "profile": check.summary_json()}


def summary_from_event(event: dict[str, Any] | None) -> dict[str, Any]:
    """The profile summary from a success event; anything else fails the task with its message."""
    if not event or event.get("status") != "success":
        message = (event or {}).get("message") or f"unexpected trigger event {event!r}"
        raise AirflowFailException(message)
    return dict(event["profile"])

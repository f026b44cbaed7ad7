"""Operator that patches a PossibleNOW MyPreferences profile, optionally waiting until it is processed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_prefs.assets import PROFILE_CHANGES_ALIAS
from airflow_provider_prefs.operators.arguments import check_wait_arguments
from airflow_provider_prefs.operators.base import PatchOperatorBase
from airflow_provider_prefs.provider_info import MYPREFERENCES_CONN_TYPE

if TYPE_CHECKING:
    from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
    from airflow_provider_prefs.patching.changes import Resource


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable`` setting (read at task creation, not at import)."""
    try:
        from airflow.configuration import conf

        return conf.getboolean("operators", "default_deferrable", fallback=False)
    except Exception:
        return False


class ProfilePatchOperator(PatchOperatorBase):
    """Patch a MyPreferences profile found by ``alternate_id`` + ``alternate_id_type``.

    Give either ``patch`` (RFC 6902 ops: add, replace, remove, test; array removes in descending
    index order) or ``desired`` (the fields you want; a minimal guarded patch is computed, with
    removes ordered, and nothing is sent when it already matches).

    With ``wait_for_completion=True`` the task then waits until the profile's ``UpdateStatus`` is
    ``Complete``: polling on the worker, or, with ``deferrable=True``, in the triggerer (no worker
    slot held) through :class:`~airflow_provider_prefs.triggers.profile_status.ProfileUpdateStatusTrigger`.

    Returns (XCom) ``{"status", "target", "operations", "reconciled", "profile": {ProfileId, UpdateStatus, ...}}``.

    :param alternate_id: the profile's alternate id (templated), e.g. an e-mail address.
    :param alternate_id_type: its type (templated), e.g. ``Email``; both are matched case-insensitively.
    :param conn_id: connection of type ``mypreferences``.
    :param wait_for_completion: wait for ``UpdateStatus == Complete`` after patching.
    :param deferrable: wait in the triggerer instead of on the worker.
    :param poll_interval: seconds between status reads while waiting.
    :param wait_timeout: seconds to wait before failing.
    """

    template_fields: Sequence[str] = ("alternate_id", "alternate_id_type", *PatchOperatorBase.template_fields)
    changes_alias = PROFILE_CHANGES_ALIAS

    def __init__(
        self,
        *,
        alternate_id: str,
        alternate_id_type: str,
        conn_id: str = f"{MYPREFERENCES_CONN_TYPE}_default",
        wait_for_completion: bool = False,
        deferrable: bool | None = None,
        poll_interval: float = 30.0,
        wait_timeout: float = 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        check_wait_arguments(type(self).__name__, poll_interval=poll_interval, wait_timeout=wait_timeout)
        self.alternate_id = alternate_id
        self.alternate_id_type = alternate_id_type
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout

    @cached_property
    def hook(self) -> MyPreferencesHook:
        """The MyPreferences hook."""
        from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook

        return MyPreferencesHook(self.conn_id, transport_overrides=self.transport)

    @property
    def target(self) -> str:
        """``profile <type>:'<id>'``."""
        return f"profile {self.alternate_id_type}:{self.alternate_id!r}"

    def resource(self) -> Resource:
        """The profile ``alternate_id_type:alternate_id``."""
        return self.hook.profile(self.alternate_id, self.alternate_id_type)

    def execute(self, context: Any) -> dict[str, Any]:
        """Patch (at most once per task instance), then optionally wait for ``UpdateStatus == Complete``.

        A retry after a wait that timed out finds the patch's outcome in the task state store and
        resumes the wait without patching again, on the worker and in the triggerer alike.
        """
        # The answer is worth a store write only when a wait follows that can fail (and be retried).
        result = self.change_at_most_once(context, keep_outcome=self.wait_for_completion)
        if not self.wait_for_completion or result["status"] == "dry_run":
            return self.task_done(result)
        if self.deferrable:
            from airflow_provider_prefs.triggers.profile_status import ProfileUpdateStatusTrigger

            self.defer(
                trigger=ProfileUpdateStatusTrigger(
                    conn_id=self.conn_id,
                    alternate_id=self.alternate_id,
                    alternate_id_type=self.alternate_id_type,
                    poll_interval=self.poll_interval,
                    deadline=time.time() + self.wait_timeout,
                    transport=self.transport,
                ),
                method_name="execute_complete",
                # Only the real triggerer passes these back (``airflow dags test`` passes just the
                # event); without them execute_complete reads the outcome from the task state store.
                kwargs={"outcome": result},
                timeout=timedelta(seconds=self.wait_timeout + 60),
            )
        return self.task_done(self._wait_on_worker(result))

    def _wait_on_worker(self, result: dict[str, Any]) -> dict[str, Any]:
        from airflow_provider_prefs.update_status import (
            UpdateStatusTimeoutError,
            check_update_status,
            wait_timeout_message,
            wait_until_complete,
        )

        check = wait_until_complete(
            lambda: check_update_status(
                lambda: self.hook.get_profile(self.alternate_id, self.alternate_id_type), self.target, self.log
            ),
            deadline=time.time() + self.wait_timeout,
            poll_interval=self.poll_interval,
        )
        if check is None:
            raise UpdateStatusTimeoutError(wait_timeout_message(self.target, self.wait_timeout))
        if check.failure is not None:
            raise AirflowFailException(check.failure)
        self.log.info("%s: UpdateStatus is Complete", self.target)
        return {**result, "profile": check.summary_json()}

    def execute_complete(
        self,
        context: Any,
        event: dict[str, Any] | None = None,
        outcome: dict[str, Any] | None = None,
        patch_result: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Resume after the trigger: the patch outcome with the final profile summary merged in.

        A timeout raises the same retryable :class:`UpdateStatusTimeoutError` as the wait on the worker.
        """
        from airflow_provider_prefs.operators.base import CHECKPOINT_NAMESPACE
        from airflow_provider_prefs.patching.checkpoint import CHANGE_KEY, TaskCheckpoint, own_record, recorded_outcome
        from airflow_provider_prefs.triggers.profile_status import summary_from_event
        from airflow_provider_prefs.update_status import UpdateStatusTimeoutError, wait_timeout_message

        self._checkpoint = TaskCheckpoint.from_context(context, CHECKPOINT_NAMESPACE, self.log)
        resource = self.resource()
        # ``patch_result``: what tasks deferred by version 0.1 pass back (their trigger kwargs are already stored).
        outcome = outcome if outcome is not None else patch_result
        if outcome is None:
            # Only the real triggerer passes the outcome back; without it, read what execute() recorded.
            recorded = recorded_outcome(own_record(self._checkpoint.get(CHANGE_KEY), resource, self.log))
            outcome = recorded.to_xcom() if recorded is not None else None
        else:
            # The record execute() kept is still in the store: forget it with the success.
            self._checkpoint.adopt(CHANGE_KEY)
        if outcome is None:
            self.log.warning("%s: this task's patch outcome is not available; returning the profile only", self.target)
            outcome = {"target": self.target}
        if event and event.get("status") == "timeout":
            raise UpdateStatusTimeoutError(wait_timeout_message(self.target, self.wait_timeout))
        # A resumed task instance starts with fresh outlet events: the deferring try's are gone.
        self.record_change(context, outcome.get("status"), resource.asset_uri)
        return self.task_done({**outcome, "profile": summary_from_event(event)})

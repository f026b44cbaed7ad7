"""Task-level memory across retries and crashes, kept in Airflow's ``task_state_store``.

Operators record what they are about to send before sending and, when more work follows, what came
of it, so a retry (after a timeout, a failed wait, or a worker killed mid-request) resumes instead of
patching again. Where the context has no store (a TaskFlow task or a test context may have none) the
task logs once that crash recovery is off and behaves as before.

Every call is a round trip through the execution API (task process -> supervisor -> api-server ->
metadata database): tens of milliseconds on an idle deployment, well over a hundred under load. So
callers keep one small record per task and make only the calls that can change an outcome.
"""

from __future__ import annotations

import logging
from typing import Any

_log = logging.getLogger(__name__)
_warned = False


class TaskCheckpoint:
    """Namespaced, JSON-only view of ``context["task_state_store"]``; every call is a no-op without one."""

    def __init__(self, store: Any, namespace: str) -> None:
        self._store = store
        self._namespace = namespace

    @classmethod
    def from_context(cls, context: Any, namespace: str, log: logging.Logger | Any = _log) -> TaskCheckpoint:
        """The checkpoint of the running task instance (unavailable ones warn once per process)."""
        global _warned
        store = context.get("task_state_store") if hasattr(context, "get") else None
        if store is None and not _warned:
            _warned = True
            log.warning(
                "this task's context has no task_state_store: crash recovery is off, so a task "
                "retry after a lost answer or a killed worker sends its patch again"
            )
        return cls(store, namespace)

    @property
    def available(self) -> bool:
        """True when values survive a retry of this task instance."""
        return self._store is not None

    def _key(self, key: str) -> str:
        return f"{self._namespace}.{key}"

    def get(self, key: str, default: Any = None) -> Any:
        """The stored value, or ``default``."""
        if self._store is None:
            return default
        return self._store.get(self._key(key), default)

    def set(self, key: str, value: Any) -> None:
        """Store a JSON value for Airflow's ``[state_store] default_retention_days`` (30 by default)."""
        if self._store is not None:
            self._store.set(self._key(key), value)

    def delete(self, *keys: str) -> None:
        """Forget values now (one call per key)."""
        if self._store is not None:
            for key in keys:
                self._store.delete(self._key(key))

    def forget_on_success(self, *keys: str) -> None:
        """The task instance is about to succeed: forget ``keys``, so clearing the task later runs it anew.

        Airflow keeps task state after success unless ``[state_store] clear_on_success`` is set; then
        the api-server drops it in the same transaction that marks the task successful, which is both
        cheaper (no call here) and safer (nothing is forgotten before the success is recorded), so the
        keys are left to it.
        """
        if self._store is not None and not airflow_clears_on_success():
            self.delete(*keys)


def airflow_clears_on_success() -> bool:
    """Airflow's ``[state_store] clear_on_success`` (the task runner, too, assumes the api-server shares it)."""
    try:
        # The task SDK's view of the configuration (what the task runner reads); older Airflow has only the core one.
        from airflow.sdk.configuration import conf
    except ImportError:
        from airflow.configuration import conf
    try:
        return bool(conf.getboolean("state_store", "clear_on_success", fallback=False))
    except Exception:
        return False

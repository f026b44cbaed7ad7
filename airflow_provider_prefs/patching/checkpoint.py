"""The checkpoint policy: what a change leaves behind so that a retry, a rerun or a clear does the right thing.

One policy, whoever makes the change (a patch operator, a bulk item, a TaskFlow task calling the hook):

* **applied** (or already as wanted): a retry of the same task instance never sends it again. Its
  record stays until the task instance succeeds (:meth:`Checkpoint.forget_on_success`), so a later
  *clear* of a successful task plans it anew;
* **refused**, or surely never sent (bad input, a 4xx, a guard that no longer holds, an untrusted
  certificate): its record is forgotten at once, so once the DAG, the data or the connection is
  fixed, clearing the task plans the change anew and sends it;
* **in flight** (sent, the answer lost, or the worker killed meanwhile): its exact operations stay
  recorded, and the next run re-judges them on a fresh read and resends those same operations only
  if they did not land (:mod:`.resume`).

A record belongs to a resource by the resource's stable key (service, account, id type and id, as the
service matches them: :attr:`~.changes.Resource.key`), never by its display ``target``.

:meth:`~airflow_provider_prefs.hooks.base.PrefsApiHook.carry` applies the policy with the functions
below; every change goes through it. A :class:`Checkpoint` is any object with the small interface
below. Operators pass the task instance's Airflow task state store (:class:`TaskCheckpoint`); a TaskFlow task passes
``TaskCheckpoint.from_context(context)``; tests and scripts can pass a :class:`MemoryCheckpoint`.
The bulk runner gives each item a view of the run's progress
(:class:`~airflow_provider_prefs.bulk.progress.ItemCheckpoint`).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from airflow_provider_prefs.models import ChangeOutcome
    from airflow_provider_prefs.patching.changes import PendingRecord, PlannedChange, Resource

_log = logging.getLogger(__name__)
#: Whether a context without a task state store was already reported (once per process is enough).
_warned = False

#: Key of a single change's record: ``{"key", "target", "ops", "base"?}`` before sending (its intent),
#: ``{"key", "target", "outcome"}`` once answered when the caller asked to keep the outcome.
CHANGE_KEY = "change"

#: A planned-against document larger than this is not recorded (the task state store warns above
#: 64 KiB per value); without it, an unguarded array patch is judged "unknown" rather than resent.
MAX_RECORDED_BASE_BYTES = 32 * 1024


@runtime_checkable
class Checkpoint(Protocol):
    """Memory that survives a retry of the caller (a task instance's state store, or any stand-in)."""

    @property
    def available(self) -> bool:
        """True when stored values survive a retry; False makes every call a no-op."""

    def get(self, key: str, default: Any = None) -> Any:
        """The stored JSON value, or ``default``."""

    def set(self, key: str, value: Any) -> PendingRecord | None:
        """Store a JSON value: None once stored, or the :class:`~.changes.PendingRecord` to wait for
        before relying on it (a bulk item's intent, stored by its run's next shared write)."""

    def delete(self, *keys: str) -> None:
        """Forget values now."""

    def forget_on_success(self) -> None:
        """The caller is about to succeed: forget what this checkpoint holds (so a clear starts anew)."""


class MemoryCheckpoint:
    """A :class:`Checkpoint` kept in this process: for tests, and for scripts that retry in a loop."""

    available = True

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        """The stored value (a JSON copy, as a real store would give), or ``default``."""
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key: str, value: Any) -> None:
        """Store a JSON value (refused like a real store when it is not JSON)."""
        self.values[key] = json.dumps(value, allow_nan=False)

    def delete(self, *keys: str) -> None:
        """Forget values now."""
        for key in keys:
            self.values.pop(key, None)

    def forget_on_success(self) -> None:
        """Forget everything."""
        self.values.clear()


class TaskCheckpoint:
    """A task instance's Airflow ``task_state_store`` under one namespace, as a :class:`Checkpoint`.

    Every call is a round trip through the execution API (task process -> supervisor -> api-server ->
    metadata database): tens of milliseconds on an idle deployment, more under load. So it remembers
    which keys it may hold (read back or written by this try) and makes no call for the others.
    """

    def __init__(self, store: Any, namespace: str = "patch") -> None:
        self._store = store
        self._namespace = namespace
        #: Keys that may be in the store: found by a read, or written, and not deleted since.
        self._held: set[str] = set()

    @classmethod
    def from_context(cls, context: Any, namespace: str = "patch", log: logging.Logger | Any = _log) -> TaskCheckpoint:
        """The checkpoint of the running task instance; without a store (a test context) it is unavailable
        (said once per process)."""
        global _warned
        store = context.get("task_state_store") if hasattr(context, "get") else None
        if store is None and not _warned:
            _warned = True
            log.warning(
                "this task context has no task_state_store: crash recovery is off, so a retry after a lost "
                "answer or a killed worker may send the change again"
            )
        return cls(store, namespace)

    @property
    def available(self) -> bool:
        """True when values survive a retry of this task instance."""
        return self._store is not None

    @property
    def holds_anything(self) -> bool:
        """True when this try read or wrote a value it has not deleted."""
        return bool(self._held)

    def _key(self, key: str) -> str:
        return f"{self._namespace}.{key}"

    def adopt(self, *keys: str) -> None:
        """Count ``keys`` as held: an earlier process of this task instance wrote them (a deferred task
        resumes in a new process), so :meth:`forget_on_success` forgets them too."""
        self._held.update(keys)

    def get(self, key: str, default: Any = None) -> Any:
        """The stored value, or ``default``."""
        if self._store is None:
            return default
        value = self._store.get(self._key(key), None)
        if value is None:
            return default
        self._held.add(key)
        return value

    def set(self, key: str, value: Any) -> None:
        """Store a JSON value for Airflow's ``[state_store] default_retention_days`` (30 by default)."""
        if self._store is not None:
            self._store.set(self._key(key), value)
            self._held.add(key)

    def delete(self, *keys: str) -> None:
        """Forget values now (one call per key this try may hold; none for the others)."""
        if self._store is not None:
            for key in keys:
                if key in self._held:
                    self._store.delete(self._key(key))
                    self._held.discard(key)

    def forget_on_success(self) -> None:
        """The task instance is about to succeed: forget what it holds, so clearing it later runs it anew.

        Airflow keeps task state after success unless ``[state_store] clear_on_success`` is set; then
        the api-server drops it in the same transaction that marks the task successful, which is both
        cheaper (no call here) and safer (nothing is forgotten before the success is recorded).
        """
        if self._store is not None and not airflow_clears_on_success():
            self.delete(*sorted(self._held))
        self._held.clear()


class _NoCheckpoint:
    """No memory: every call is a no-op (a caller that passed no checkpoint)."""

    available = False

    def get(self, key: str, default: Any = None) -> Any:
        return default

    def set(self, key: str, value: Any) -> None:
        pass

    def delete(self, *keys: str) -> None:
        pass

    def forget_on_success(self) -> None:
        pass


NO_CHECKPOINT: Checkpoint = _NoCheckpoint()


def airflow_clears_on_success() -> bool:
    """Airflow's ``[state_store] clear_on_success`` (the task runner, too, assumes the api-server shares it)."""
    try:
        # The task SDK's view of the configuration (what the task runner reads).
        from airflow.sdk.configuration import conf

        return bool(conf.getboolean("state_store", "clear_on_success", fallback=False))
    except Exception:
        return False


def surely_not_applied(exc: BaseException) -> bool:
    """True when ``exc`` proves the change was not applied: refused with a 4xx (not 429), or never sent."""
    from airflow_provider_prefs.errors import (
        ApiError,
        ConcurrentModificationError,
        ConfigurationError,
        InvalidInputError,
        UntrustedCertificateError,
    )

    if isinstance(exc, ApiError):
        return 400 <= exc.status < 500 and exc.status != 429
    return isinstance(
        exc, ConcurrentModificationError | ConfigurationError | InvalidInputError | UntrustedCertificateError
    )


def resource_key(resource: Resource) -> list[Any]:
    """The resource's stable key as it reads back from JSON (tuples become lists)."""
    return list(json.loads(json.dumps(list(resource.key), default=str)))


def intent_record(resource: Resource, planned: PlannedChange) -> dict[str, Any]:
    """What is stored before ``planned`` is sent: its exact operations, and the document they were planned on."""
    record: dict[str, Any] = {"key": resource_key(resource), "target": resource.target, "ops": planned.ops}
    if planned.base is not None and len(json.dumps(planned.base, default=str)) <= MAX_RECORDED_BASE_BYTES:
        record["base"] = planned.base
    return record


def own_record(record: Any, resource: Resource, log: logging.Logger | Any = _log) -> dict[str, Any] | None:
    """``record`` if it is this resource's (same stable key); None, with a warning, if it is another's."""
    if not isinstance(record, dict):
        return None
    if record.get("key") != resource_key(resource):
        log.warning(
            "the checkpoint holds a record for %s, not for %s (this try changes another resource): ignoring it",
            record.get("target"),
            resource.target,
        )
        return None
    return record


def planned_from_intent(record: dict[str, Any] | None) -> PlannedChange | None:
    """The operations an earlier try recorded before sending (None when the record holds none)."""
    from airflow_provider_prefs.patching.changes import PlannedChange

    if record is None or not isinstance(record.get("ops"), list):
        return None
    base = record.get("base")
    return PlannedChange(ops=record["ops"], base=base if isinstance(base, dict) else None)


def recorded_outcome(record: dict[str, Any] | None) -> ChangeOutcome | None:
    """The outcome an earlier try recorded after its answer, if the record holds one."""
    from pydantic import ValidationError

    from airflow_provider_prefs.models import ChangeOutcome

    outcome = record.get("outcome") if record is not None else None
    if not isinstance(outcome, dict):
        return None
    try:
        return ChangeOutcome.model_validate(outcome)
    except ValidationError:
        return None


def outcome_record(resource: Resource, outcome: ChangeOutcome) -> dict[str, Any]:
    """What is stored once a change is answered, when its caller has more to do before it can succeed."""
    return {"key": resource_key(resource), "target": resource.target, "outcome": outcome.to_xcom()}


def settle_failure(checkpoint: Checkpoint, exc: BaseException) -> None:
    """A change failed with ``exc``: forget its record if it was refused or never sent (a clear then plans
    it anew); keep it if its fate is unknown (the next run re-judges the recorded operations)."""
    if surely_not_applied(exc):
        checkpoint.delete(CHANGE_KEY)

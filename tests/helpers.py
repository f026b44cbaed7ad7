"""Small helpers shared by the tests (not fixtures)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from airflow_provider_prefs.sandbox.connections import sandbox_connections


def set_connection(
    monkeypatch: pytest.MonkeyPatch,
    conn_id: str,
    url: str,
    *,
    base: str,
    extra: dict[str, Any] | None = None,
    drop_extra: tuple[str, ...] = (),
    **fields: Any,
) -> str:
    """Define ``conn_id`` as a variant of one of the sandbox connections."""
    definition = copy.deepcopy(sandbox_connections(url, backoff_base=0.01, backoff_max=0.05, timeout=5)[base])
    definition.update(fields)
    definition["extra"].update(extra or {})
    for key in drop_extra:
        definition["extra"].pop(key, None)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(definition))
    return conn_id


def airflow_exception(name: str) -> Any:
    """An Airflow exception class from the Task SDK."""
    import airflow.sdk.exceptions as exceptions

    return getattr(exceptions, name)


def routes(sandbox: Any) -> list[str]:
    return [entry["route"] for entry in sandbox.state.journal()]


class FakeTaskStateStore:
    """In-memory stand-in for Airflow's ``task_state_store`` accessor: what one task instance sees across tries.

    ``calls`` lists every call as ``(method, key, value)``: each one is an execution API round trip
    in a real task, so tests can count them and see what was written in which order.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.calls: list[tuple[str, str | None, Any]] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.calls.append(("get", key, None))
        return copy.deepcopy(self.values.get(key, default))

    def set(self, key: str, value: Any, retention: Any = None) -> None:
        assert value is not None
        self.calls.append(("set", key, json.loads(json.dumps(value))))
        self.values[key] = json.loads(json.dumps(value))  # JSON only, like the real store

    def delete(self, key: str) -> None:
        self.calls.append(("delete", key, None))
        self.values.pop(key, None)

    def clear(self) -> None:
        self.calls.append(("clear", None, None))
        self.values.clear()

    def methods(self) -> list[str]:
        """The methods called so far, in order."""
        return [method for method, _, _ in self.calls]

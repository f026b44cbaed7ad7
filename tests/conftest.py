"""Shared fixtures: Airflow configured inside build/, one sandbox server, connections pointing at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Before anything imports airflow: a private AIRFLOW_HOME and the example DAGs folder.
os.environ["AIRFLOW_HOME"] = os.environ.get("PREFS_TEST_AIRFLOW_HOME", str(ROOT / "build" / "airflow-test"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags_examples")

#: Fast retries so fault tests take seconds, not minutes.
FAST_TRANSPORT: dict[str, Any] = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5, "connect_timeout": 2}


@pytest.fixture(autouse=True)
def private_token_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own shared token cache, so no test sees a token another one fetched."""
    directory = tmp_path_factory.mktemp("token-cache") / "tokens"
    monkeypatch.setenv("AIRFLOW__PREFS__TOKEN_CACHE_DIR", str(directory))
    return directory


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Any]:
    from airflow_provider_prefs.sandbox import SandboxServer

    with SandboxServer(pending_delay=0.3) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: Any) -> Iterator[Any]:
    """The sandbox, reset to its seed (no faults, empty journal, default config)."""
    sandbox_server.state.reset()
    sandbox_server.state.set_config(pending_delay=0.3, token_lifetime=3600)
    yield sandbox_server
    sandbox_server.state.reset()


@pytest.fixture
def connections(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """AIRFLOW_CONN_* variables for the sandbox connections; returns the sandbox."""
    from airflow_provider_prefs.sandbox.connections import airflow_conn_env

    for name, value in airflow_conn_env(sandbox.url, **FAST_TRANSPORT).items():
        monkeypatch.setenv(name, value)
    return sandbox


def journal(sandbox: Any, route: str | None = None) -> list[dict[str, Any]]:
    """Journal entries, optionally of one route (e.g. ``offer.patch``)."""
    return [e for e in sandbox.state.journal() if route is None or e["route"] == route]


@pytest.fixture(autouse=True)
def _fresh_shared_tokens() -> Iterator[None]:
    """Hooks of one process share tokens per credentials; a test must not inherit another's token."""
    from airflow_provider_prefs.transport.auth import forget_shared_tokens

    forget_shared_tokens()
    yield
    forget_shared_tokens()

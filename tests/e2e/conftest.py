"""Session fixtures of the end-to-end suite: the sandbox and a real Airflow deployment pointed at it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from airflow_provider_prefs.sandbox import SandboxServer
from airflow_provider_prefs.sandbox.connections import airflow_conn_env
from e2e.deployment import TRANSPORT, Deployment, copy_dags
from e2e.paths import BUILD, DAGS_EXAMPLES, E2E_DAGS

#: Long enough that the sensor surely finds `Pending Update` and defers (a LocalExecutor task starts in ~3 s).
PENDING_DELAY = 8.0

pytest.importorskip("airflow.sdk", reason="the deployment is Airflow 3")


@pytest.fixture(scope="session")
def e2e_sandbox() -> Iterator[SandboxServer]:
    """The sandbox in this process (so the test can read every token it issued)."""
    with SandboxServer(pending_delay=PENDING_DELAY) as server:
        yield server


@pytest.fixture(scope="session")
def deployment(e2e_sandbox: SandboxServer) -> Iterator[Deployment]:
    """api-server, scheduler, dag-processor and triggerer, stopped at the end whatever happened."""
    started = time.monotonic()
    dags = copy_dags(BUILD / "e2e" / "dags", [*DAGS_EXAMPLES.glob("*.py"), *E2E_DAGS.glob("*.py")])
    deployment = Deployment(BUILD / "e2e" / "airflow", dags, airflow_conn_env(e2e_sandbox.url, **TRANSPORT))
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()
        print(f"\ne2e deployment lived {time.monotonic() - started:.1f} s")

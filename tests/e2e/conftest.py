"""Fixtures of the end-to-end suite: the sandbox and real Airflow deployments pointed at it.

Two configurations: ``deployment`` (LocalExecutor, SQLite; for the whole session) and
``celery_deployment`` (CeleryExecutor with two workers, PostgreSQL, Redis; for the Celery module
only, so that it is stopped, servers included, before the other one starts: two deployments at
once would share 2 cores).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_prefs.sandbox import SandboxServer
from airflow_provider_prefs.sandbox.connections import airflow_conn_env
from e2e.deployment import TRANSPORT, Backend, Deployment, copy_dags
from e2e.paths import BUILD, CELERY_DAGS, DAGS_EXAMPLES, E2E_DAGS
from e2e.services import PostgresServer, RedisServer, celery_services

#: Long enough that the sensor surely finds `Pending Update` and defers (a LocalExecutor task starts in ~3 s).
PENDING_DELAY = 8.0
#: Celery workers and task slots per worker: two workers so one can die, small for 2 cores.
CELERY_WORKERS = 2
CELERY_CONCURRENCY = 2
#: Seconds without a task heartbeat before the scheduler fails the task instance (Airflow's default is
#: 300): how soon a try whose worker died without a word is failed and retried. Tasks heartbeat every
#: 5 s ([workers] min_heartbeat_interval); 30 s leaves room for a loaded 2-core machine.
HEARTBEAT_TIMEOUT = 30
#: Seconds without a triggerer heartbeat before its triggers go to another triggerer (default 30).
TRIGGERER_HEALTH_THRESHOLD = 15
CELERY_FOLDER = BUILD / "e2e-celery"
CELERY_CONFIG = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_THRESHOLD),
}


@pytest.fixture(scope="session")
def example_dags() -> dict[str, Any]:
    """The example DAGs as parsed here (to find their deferrable tasks by class)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(DAGS_EXAMPLES))
    assert not bag.import_errors
    assert bag.dags, "no example DAG found"
    return dict(bag.dags)


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


@pytest.fixture(scope="module")
def celery_sandbox() -> Iterator[SandboxServer]:
    """A sandbox of its own: the Celery tests read its journal without the other deployment's requests."""
    with SandboxServer(pending_delay=PENDING_DELAY) as server:
        yield server


@pytest.fixture(scope="module")
def celery_servers() -> Iterator[tuple[PostgresServer, RedisServer]]:
    """PostgreSQL and Redis (installed when missing), stopped after the module whatever happened."""
    started = time.monotonic()
    with celery_services(CELERY_FOLDER) as servers:
        print(f"\nPostgreSQL and Redis up in {time.monotonic() - started:.1f} s")
        yield servers


@pytest.fixture(scope="module")
def celery_deployment(
    celery_servers: tuple[PostgresServer, RedisServer], celery_sandbox: SandboxServer
) -> Iterator[Deployment]:
    """The components and two Celery workers on those servers, stopped (before the servers) whatever happened."""
    started = time.monotonic()
    postgres, redis = celery_servers
    dags = copy_dags(CELERY_FOLDER / "dags", [*DAGS_EXAMPLES.glob("*.py"), *CELERY_DAGS.glob("*.py")])
    backend = Backend(
        executor="CeleryExecutor",
        database_url=postgres.url,
        broker_url=redis.url,
        workers=CELERY_WORKERS,
        worker_concurrency=CELERY_CONCURRENCY,
        config=CELERY_CONFIG,
    )
    connections = airflow_conn_env(celery_sandbox.url, **TRANSPORT)
    deployment = Deployment(CELERY_FOLDER / "airflow", dags, connections, backend)
    try:
        deployment.start()
        for name in deployment.components:
            if name.startswith("worker-"):
                deployment.wait_for_log(name, " ready.")
        print(f"\nCelery deployment started in {time.monotonic() - started:.1f} s (workers ready)")
        yield deployment
    finally:
        deployment.stop()
        print(f"\nCelery deployment lived {time.monotonic() - started:.1f} s")

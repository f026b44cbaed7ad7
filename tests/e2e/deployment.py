"""A real Airflow 3 deployment for the end-to-end tests: one process per Airflow component.

``api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and, with the CeleryExecutor, each
Celery worker run as separate process groups, each logging to ``<home>/process-logs/<name>.log``,
all sharing one environment (so the ``AIRFLOW_CONN_*`` connections reach every one of them, the
triggerer included) and one metadata database. The default :class:`Backend` is the LocalExecutor on
SQLite (Airflow 3 accepts it; ``airflow standalone`` does it); a ``Backend`` with a database URL, a
broker and workers is the CeleryExecutor on PostgreSQL and Redis (servers from ``e2e.services``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
from cryptography.fernet import Fernet

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
#: Transport extras of the sandbox connections: quick retries, timeouts generous enough for a loaded 2-core machine.
TRANSPORT: dict[str, Any] = {"backoff_base": 0.05, "backoff_max": 0.5, "timeout": 20, "connect_timeout": 5}
USERNAME = "e2e-admin"
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--workers", "1"],
    # --skip-serve-logs: every component shares the log folder, so no log server (and no 0.0.0.0 port) is needed.
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


@dataclass(frozen=True)
class Backend:
    """Executor and metadata database of a deployment; the default is the LocalExecutor on SQLite."""

    executor: str = "LocalExecutor"
    #: SQLAlchemy URL of the metadata database; None is a SQLite file in the deployment's home.
    database_url: str | None = None
    #: CeleryExecutor: the broker, and how many workers (process groups) with how many task slots each.
    broker_url: str | None = None
    workers: int = 0
    worker_concurrency: int = 2
    #: Further ``AIRFLOW__SECTION__KEY`` settings (they win over the defaults of :func:`deployment_env`).
    config: Mapping[str, str] = field(default_factory=dict)

    def components(self) -> dict[str, list[str]]:
        """The ``airflow`` sub-commands to run, by process name; the api-server first."""
        workers = {
            # --skip-serve-logs: the logs folder is shared, and the log server would listen on 0.0.0.0.
            f"worker-{n}": [
                "celery",
                "worker",
                "--concurrency",
                str(self.worker_concurrency),
                "--celery-hostname",
                f"worker-{n}@%h",
                "--skip-serve-logs",
            ]
            for n in range(1, self.workers + 1)
        }
        return {**COMPONENTS, **workers}

    def settings(self, home: Path) -> dict[str, str]:
        """The executor's and database's part of the environment."""
        database = self.database_url or f"sqlite:///{home}/airflow.db"
        settings = {"AIRFLOW__CORE__EXECUTOR": self.executor, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database}
        if self.broker_url is not None:
            settings["AIRFLOW__CELERY__BROKER_URL"] = self.broker_url
            # Task states go to the metadata database (Celery's "db+" SQLAlchemy backend), not to a third server.
            settings["AIRFLOW__CELERY__RESULT_BACKEND"] = f"db+{database}"
            settings["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(self.worker_concurrency)
        return {**settings, **self.config}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def copy_dags(folder: Path, sources: Iterable[Path]) -> Path:
    """Empty ``folder`` and copy ``sources`` into it: the deployment's DAGs folder (also used by benchmarks)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for source in sources:
        shutil.copy(source, folder / source.name)
    return folder


def deployment_env(
    home: Path, port: int, dags_folder: Path, connections: dict[str, str], backend: Backend | None = None
) -> dict[str, str]:
    """The environment every component gets: config tuned for a 2-core machine, plus the connections."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    url = f"http://127.0.0.1:{port}"
    config = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Unpaused, so the scheduler also makes the @daily run a real deployment would make.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # Runs of one DAG one after the other: two refreshes of the same offer must not race.
        "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "1",
        "AIRFLOW__CORE__PARALLELISM": "6",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        # One signing secret for every component: the api-server checks the tokens the scheduler issues to tasks.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "300",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
    }
    return {**inherited, **config, **(backend or Backend()).settings(home), **connections}


class Deployment:
    """Start the components, give REST access (JWT), stop every process group on ``stop()``."""

    def __init__(
        self, home: Path, dags_folder: Path, connections: dict[str, str], backend: Backend | None = None
    ) -> None:
        shutil.rmtree(home, ignore_errors=True)
        (home / "process-logs").mkdir(parents=True)
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(12)
        # The simple auth manager reads passwords from this file (it would generate and print one otherwise).
        (home / "passwords.json").write_text(json.dumps({USERNAME: self.password}))
        self.backend = backend or Backend()
        self.components = self.backend.components()
        self.env = deployment_env(home, self.port, dags_folder, connections, self.backend)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        #: Processes ended by kill(): reaped, no longer checked by _check_alive(), still swept by stop().
        self.killed: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self._token: str | None = None

    @property
    def process_logs(self) -> Path:
        """Folder of the components' stdout/stderr files."""
        return self.home / "process-logs"

    def start(self, timeout: float = 150.0) -> None:
        """Migrate the database, start every component, wait until the REST API answers a login."""
        migrate = subprocess.run(
            [AIRFLOW, "db", "migrate"], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        (self.process_logs / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed: {migrate.stderr[-2000:]}")
        # The api-server first: task workers and the triggerer talk to its execution API from their first second.
        self._spawn("api-server")
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                self._token = self._login()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"api-server did not answer in {timeout} s; see {self.process_logs}") from None
                time.sleep(1)
        for name in self.components:
            if name != "api-server":
                self._spawn(name)

    def _spawn(self, name: str) -> None:
        # Appending: a component started again (see restart()) keeps the log of the one before.
        log = (self.process_logs / f"{name}.log").open("ab")
        self._logs.append(log)
        # A session (process group) of its own, so stop() reaches the workers each component forks.
        self.processes[name] = subprocess.Popen(
            [AIRFLOW, *self.components[name]],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_for_log(self, name: str, text: str, timeout: float = 120.0) -> None:
        """Wait until component ``name``'s log contains ``text`` (e.g. a Celery worker's "ready.")."""
        deadline = time.monotonic() + timeout
        while text.encode() not in (self.process_logs / f"{name}.log").read_bytes():
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not log {text!r} in {timeout} s; see {self.process_logs}")
            time.sleep(0.5)

    def owner_of(self, pid: int) -> str | None:
        """The component that ``pid`` descends from (a task runner -> its Celery worker), if any."""
        try:
            ancestors = {p.pid for p in psutil.Process(pid).parents()} | {pid}
        except psutil.NoSuchProcess:
            return None
        return next((name for name, p in self.processes.items() if p.pid in ancestors), None)

    def kill(self, name: str) -> float:
        """SIGKILL component ``name`` and everything it started, as a lost machine would: nothing cleans up.

        Task runners live in process groups of their own (Airflow's supervisor puts them there), so
        killing the component's group alone would leave them running, orphaned. Every group of the
        tree is stopped first, so no process sees a sibling die and reacts, then killed. Returns the
        ``time.monotonic()`` of the kill.
        """
        process = self.processes.pop(name)
        groups = _groups_of_tree(process.pid)
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for group in groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, sig)
        killed_at = time.monotonic()
        process.wait()
        self.killed.append(process)
        return killed_at

    def restart(self, name: str) -> None:
        """Start component ``name`` anew (after :meth:`kill`), with the same command and environment."""
        if name in self.processes:
            raise RuntimeError(f"{name} is still running")
        self._spawn(name)

    def _check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"Airflow components exited: {dead}; see {self.process_logs}")

    def _login(self) -> str:
        body = json.dumps({"username": USERNAME, "password": self.password}).encode()
        request = urllib.request.Request(
            f"{self.url}/auth/token", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return str(json.loads(answer.read())["access_token"])

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``/api/v2/{path}`` with the bearer token; return the JSON answer (raises on HTTP errors)."""
        return self.call(method, f"/api/v2/{path.lstrip('/')}", body)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``path`` (from the root, e.g. ``/ui/...``) with the bearer token; return the JSON answer."""
        self._check_alive()
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else None

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 120.0) -> None:
        """Wait until the dag-processor has serialized every DAG in ``dag_ids``."""
        deadline = time.monotonic() + timeout
        while True:
            known = {dag["dag_id"] for dag in self.api("GET", "dags?limit=100")["dags"]}
            if set(dag_ids) <= known:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAGs not parsed after {timeout} s: {set(dag_ids) - known}")
            time.sleep(1)

    def stop(self) -> None:
        """SIGTERM every process group, SIGKILL what is still alive after 20 s; close the log files.

        The groups task runners made for themselves are noted first and killed last, in case their
        component exited without ending them.
        """
        groups = {group for process in self.processes.values() for group in _groups_of_tree(process.pid)}
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in [*self.processes.values(), *self.killed]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            # Also the group: a component may have exited and left forked children (task runners) behind.
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        for group in groups:
            _signal_group(group, signal.SIGKILL)
        for log in self._logs:
            log.close()


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def _groups_of_tree(pid: int) -> set[int]:
    """Process groups of ``pid`` and all its descendants (``pid`` leads its own group: start_new_session)."""
    groups = {pid}
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(ProcessLookupError):
                groups.add(os.getpgid(child.pid))
    return groups

"""A real Airflow 3 deployment for the end-to-end tests: one process per Airflow component.

``api-server``, ``scheduler`` (LocalExecutor), ``dag-processor`` and ``triggerer`` run as separate
process groups, each logging to ``<home>/process-logs/<name>.log``, all sharing one environment
(so the ``AIRFLOW_CONN_*`` connections reach every one of them, the triggerer included) and one
SQLite database (Airflow 3 accepts SQLite with the LocalExecutor; ``airflow standalone`` does it).
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
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

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


def deployment_env(home: Path, port: int, dags_folder: Path, connections: dict[str, str]) -> dict[str, str]:
    """The environment every component gets: config tuned for a 2-core machine, plus the connections."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    url = f"http://127.0.0.1:{port}"
    config = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
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
    return {**inherited, **config, **connections}


class Deployment:
    """Start the components, give REST access (JWT), stop every process group on ``stop()``."""

    def __init__(self, home: Path, dags_folder: Path, connections: dict[str, str]) -> None:
        shutil.rmtree(home, ignore_errors=True)
        (home / "process-logs").mkdir(parents=True)
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(12)
        # The simple auth manager reads passwords from this file (it would generate and print one otherwise).
        (home / "passwords.json").write_text(json.dumps({USERNAME: self.password}))
        self.env = deployment_env(home, self.port, dags_folder, connections)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
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
        for name in COMPONENTS:
            if name != "api-server":
                self._spawn(name)

    def _spawn(self, name: str) -> None:
        log = (self.process_logs / f"{name}.log").open("wb")
        self._logs.append(log)
        # A session (process group) of its own, so stop() reaches the workers each component forks.
        self.processes[name] = subprocess.Popen(
            [AIRFLOW, *COMPONENTS[name]], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

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
        """SIGTERM every process group, SIGKILL what is still alive after 20 s; close the log files."""
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            # Also the group: a component may have exited and left forked children (task runners) behind.
            _signal_group(process, signal.SIGKILL)
            process.wait()
        for log in self._logs:
            log.close()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)

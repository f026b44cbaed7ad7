"""PostgreSQL and Redis for the CeleryExecutor deployment: installed when missing, started privately, stopped.

CI is a fresh machine where only the repository's own files install things, so the suite installs the
Debian packages itself (as root, like ``make chromium``), once. Each server then runs as a child
process of the test session in a process group of its own, on a free loopback port, with its data in
the build folder (nothing of the system's default cluster or service is used or started), and is
stopped by the ``with`` block that started it, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from e2e.deployment import free_port

#: Debian package -> a program it installs (how we tell it is missing).
POSTGRES_PACKAGE = "postgresql"
REDIS_PACKAGE = "redis-server"
#: apt waits this long for a lock another apt (another engineer, unattended upgrades) holds.
APT_LOCK_TIMEOUT = 300
#: Settings of a throwaway test cluster: durability off (faster on a loaded 2-core machine), loopback only.
POSTGRES_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",  # TCP only: no socket path that could be too long or unwritable
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Every component, Celery result backend and task keeps a small pool; the default 100 is enough
    # today, the margin keeps "too many clients" out of the failure modes.
    "max_connections": "200",
}


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian keeps them versioned), if any."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name), reverse=True
    )
    return candidates[0].parent if candidates else None


def redis_server() -> str | None:
    """Path of ``redis-server``, if installed."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


def ensure_packages() -> None:
    """``apt-get install`` PostgreSQL and Redis when missing (one ``apt-get update`` first).

    The packages' own services are not started: Debian images (CI's included) forbid that with
    ``policy-rc.d``; where they do start, they listen on loopback only and we never use them.
    """
    missing = [
        package
        for package, found in ((POSTGRES_PACKAGE, postgres_bin()), (REDIS_PACKAGE, redis_server()))
        if found is None
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"the Celery e2e needs {missing}: run as root, or `apt-get install {' '.join(missing)}`")
    apt = ["apt-get", "-q", "-o", f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT}"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([*apt, "update"], [*apt, "install", "-y", "--no-install-recommends", *missing]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    if postgres_bin() is None or redis_server() is None:
        raise RuntimeError(f"installed {missing}, but postgres or redis-server is still missing")


class _Server:
    """One server process in its own process group, logging to a file; ``stop()`` ends the group."""

    name = "server"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def _spawn(self, command: list[str], **kwargs: Any) -> None:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )

    def _wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}); see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log_path}")
            time.sleep(0.2)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """``sig`` to the group (a clean shutdown), SIGKILL after 20 s."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self._log is not None:
            self._log.close()


class PostgresServer(_Server):
    """A private cluster (``initdb``) in ``folder``, superuser ``airflow`` trusted on loopback, database ``airflow``."""

    name = "postgres"

    def __init__(self, folder: Path) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (ensure_packages() first)")
        self.bin = bin_dir
        # initdb and postgres refuse to run as root: as root, run them as Debian's `postgres` user.
        self.user = "postgres" if os.geteuid() == 0 else None
        folder = folder.resolve()  # initdb and postgres run in another cwd
        folder.mkdir(parents=True, exist_ok=True)
        #: A folder of ours in /tmp, removed by stop(): when the `postgres` user cannot enter ``folder``.
        self.temporary: Path | None = None
        if self.user is not None and not _reachable_by(folder, pwd.getpwnam(self.user).pw_uid):
            # A clone in a folder only root may enter (say 0700): the data then lives in /tmp.
            folder = self.temporary = Path(tempfile.mkdtemp(prefix="prefs-e2e-postgres-"))
            folder.chmod(0o711)  # mkdtemp makes it 0700: the `postgres` user must enter it (the data stays 0700)
        super().__init__(folder / "postgres.log")
        self.data = folder / "data"
        self.url = f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"

    def start(self, timeout: float = 60.0) -> None:
        """``initdb`` a fresh cluster, start ``postgres`` and create the ``airflow`` database."""
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(mode=0o700)
        if self.user is not None:
            shutil.chown(self.data, self.user, self.user)
        initdb = subprocess.run(
            [
                str(self.bin / "initdb"),
                *("-D", str(self.data), "-U", "airflow", "-A", "trust", "-E", "UTF8", "--locale=C"),
                *("--no-sync", "--no-instructions"),
            ],
            user=self.user,
            cwd=self.data,  # the `postgres` user may not read the cwd we were started in
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed: {initdb.stdout[-1500:]}{initdb.stderr[-1500:]}")
        options = [arg for key, value in POSTGRES_SETTINGS.items() for arg in ("-c", f"{key}={value}")]
        self._spawn(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), *options],
            user=self.user,
            cwd=self.data,
        )
        self._wait_until(self._accepts, timeout)
        self._execute("CREATE DATABASE airflow")

    def _accepts(self) -> bool:
        try:
            self._execute("SELECT 1", database="postgres")
        except Exception:  # psycopg2.OperationalError while it starts
            return False
        return True

    def _execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="airflow", dbname=database, connect_timeout=5
        )
        try:
            connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()

    def stop(self, sig: signal.Signals = signal.SIGINT) -> None:
        """SIGINT is PostgreSQL's "fast" shutdown: it ends the sessions of processes that were killed."""
        super().stop(sig)
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)


class RedisServer(_Server):
    """``redis-server`` on loopback, nothing saved to disk: the Celery broker."""

    name = "redis"

    def __init__(self, folder: Path) -> None:
        folder = folder.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(folder / "redis.log")
        self.folder = folder
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it answers PING."""
        server = redis_server()
        if server is None:
            raise RuntimeError("redis-server is not installed (ensure_packages() first)")
        self._spawn(
            [
                server,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
                *("--daemonize", "no", "--dir", str(self.folder)),
            ]
        )
        self._wait_until(self._pings, timeout)

    def _pings(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2).ping())
        except redis.RedisError:
            return False


@contextlib.contextmanager
def celery_services(folder: Path) -> Iterator[tuple[PostgresServer, RedisServer]]:
    """Install when missing, start PostgreSQL and Redis; stop both on the way out, whatever happened."""
    ensure_packages()
    with contextlib.ExitStack() as stack:
        postgres = PostgresServer(folder / "postgres")
        stack.callback(postgres.stop)
        postgres.start()
        redis = RedisServer(folder / "redis")
        stack.callback(redis.stop)
        redis.start()
        yield postgres, redis


def _reachable_by(folder: Path, uid: int) -> bool:
    """Whether user ``uid`` (not root) may enter every folder from ``/`` down to ``folder``."""
    for path in [folder.resolve(), *folder.resolve().parents]:
        info = path.stat()
        if not (info.st_mode & stat.S_IXOTH or (info.st_uid == uid and info.st_mode & stat.S_IXUSR)):
            return False
    return True

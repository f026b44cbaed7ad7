"""The sandbox in a child process of its own (own interpreter, own GIL), for the demo and benchmarks."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any


class SandboxProcess:
    """Start ``python -m airflow_provider_prefs.sandbox`` on a free port and wait until it listens.

    ``url`` is where it serves, ``verify`` what a client needs to trust it (``True``, or the
    certificate file when it serves HTTPS), ``control()`` calls its ``/_sandbox/`` API.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        seed: Path | None = None,
        pending_delay: float = 2.0,
        tls: tuple[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "sandbox.log"
        port_file = log_dir / "sandbox.port"
        port_file.unlink(missing_ok=True)
        command = [sys.executable, "-m", "airflow_provider_prefs.sandbox", "--port", "0"]
        command += ["--port-file", str(port_file), "--pending-delay", str(pending_delay)]
        if seed is not None:
            command += ["--seed", str(seed)]
        if tls is not None:
            command += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + startup_timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox did not start; see {self.log_path}")
            time.sleep(0.05)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port_file.read_text().strip()}"
        self.verify: bool | str = tls[0] if tls else True
        self._ssl = ssl.create_default_context(cafile=tls[0]) if tls else None
        self.control("GET", "health")

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``/_sandbox/{path}`` and return its JSON answer."""
        request = urllib.request.Request(
            f"{self.url}/_sandbox/{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60, context=self._ssl) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else None

    def stop(self) -> None:
        """Stop it (SIGTERM, then kill after 10 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

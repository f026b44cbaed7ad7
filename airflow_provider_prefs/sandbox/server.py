"""Run the sandbox: in a background thread (tests, notebooks) or in the foreground (the CLI)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_provider_prefs.sandbox.state import SandboxState


class _ExpectedDrops(logging.Filter):
    """Hide uvicorn's complaint about the responses the ``drop_after`` fault cuts off on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


def _uvicorn_server(state: SandboxState, tls: tuple[str, str] | None = None) -> Any:
    import uvicorn

    logging.getLogger("uvicorn.error").addFilter(_ExpectedDrops())

    from airflow_provider_prefs.sandbox.app import ConnectionDropper, create_app

    config = uvicorn.Config(
        ConnectionDropper(create_app(state)),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    return uvicorn.Server(config)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


class SandboxServer:
    """The sandbox on a background thread, as a context manager.

    ``with SandboxServer(pending_delay=0.3) as server:`` then ``server.url`` and ``server.state``
    (journal, faults, documents, config).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: str | Path | dict[str, Any] | None = None,
        pending_delay: float = 2.0,
        token_lifetime: int = 3600,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.state = SandboxState(seed, pending_delay=pending_delay, token_lifetime=token_lifetime)
        self._socket = bind(host, port)
        self.host = host
        self.port = self._socket.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://{host}:{self.port}"
        #: What a client needs to trust it: ``True``, or the certificate file when it serves HTTPS.
        self.verify: bool | str = tls[0] if tls else True
        self._server = _uvicorn_server(self.state, tls)
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        """Start serving and wait until it accepts connections."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="prefs-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("sandbox server failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

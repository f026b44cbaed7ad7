"""A loopback HTTP server that misbehaves the way real servers, gateways and proxies do (tests/test_hostile.py).

Raw sockets, since no web framework lets an answer trickle, never end or break off mid-body. Each request is
answered by a *behaviour* chosen by method and path; every connection is closed after one answer. Every loop
is bounded (:data:`LIMIT_SECONDS`) and stops as soon as the client goes away, and the server stops with its
``with`` block, so nothing outlives a test.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

#: No behaviour runs longer than this, whatever the client does.
LIMIT_SECONDS = 20.0


@dataclass(frozen=True)
class Seen:
    """One request as it reached the server."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def echo(self) -> str:
        """Everything the client sent, as a proxy's debug page would show it."""
        head = "\n".join(f"{name}: {value}" for name, value in self.headers.items())
        return f"{self.method} {self.path}\n{head}\n\n{self.body.decode('utf-8', 'replace')}"


class Reply:
    """Writes an answer to one connection; every write reports whether the client is still there."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.started = time.monotonic()

    def raw(self, data: bytes) -> bool:
        """Send bytes; False once the client is gone or the time limit passed."""
        if time.monotonic() - self.started > LIMIT_SECONDS:
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def head(self, status: int, headers: dict[str, str] | None = None, *, length: int | None = None) -> bool:
        """Status line and headers only; ``length`` announces a body (else it is chunked-less and ends on close)."""
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Whatever')}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        return self.raw(("\r\n".join(lines) + "\r\n\r\n").encode())

    def send(self, status: int, body: bytes | str = b"", headers: dict[str, str] | None = None) -> bool:
        """A complete answer."""
        data = body.encode() if isinstance(body, str) else body
        return self.head(status, headers, length=len(data)) and self.raw(data)

    def json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> bool:
        """A complete JSON answer."""
        return self.send(status, json.dumps(value), {"Content-Type": "application/json", **(headers or {})})

    def trickle(self, data: bytes, every: float) -> None:
        """Send ``data`` one byte every ``every`` seconds, until done, the client leaves, or the time limit."""
        for i in range(len(data)):
            if not self.raw(data[i : i + 1]):
                return
            time.sleep(every)

    def hang(self) -> None:
        """Answer nothing: wait until the client leaves or the time limit passes."""
        self.sock.settimeout(0.1)
        while time.monotonic() - self.started < LIMIT_SECONDS:
            try:
                if not self.sock.recv(1, socket.MSG_PEEK):
                    return  # the client closed
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return

    def reset(self) -> None:
        """Break the connection off with a TCP reset, as a crashing gateway does."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def endless(self, chunk: bytes = b"x" * 65536, every: float = 0.0) -> None:
        """Body bytes with no end (the answer announced no length): until the client leaves or the time limit."""
        while self.raw(chunk):
            time.sleep(every)


Behaviour = Callable[[Seen, Reply], Any]

REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def not_found(seen: Seen, reply: Reply) -> None:
    """What a route without a behaviour answers."""
    reply.json(404, {"message": f"no behaviour for {seen.method} {seen.path}"})


def http_date(seconds_from_now: float) -> str:
    """An HTTP date (for ``Retry-After``)."""
    return formatdate(time.time() + seconds_from_now, usegmt=True)


class HostileServer:
    """Serves ``routes`` on a free loopback port: ``{(method, path prefix): behaviour}``, first match wins.

    ``seen`` lists every request that reached it (a TLS handshake that failed reaches nothing).
    """

    def __init__(self, routes: dict[tuple[str, str], Behaviour], *, tls: tuple[Path, Path] | None = None) -> None:
        self.routes = routes
        self.seen: list[Seen] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._tls: ssl.SSLContext | None = None
        if tls is not None:
            self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls.load_cert_chain(*tls)
        port = self._listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> HostileServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=LIMIT_SECONDS + 1)
        self._listener.close()

    def count(self, method: str | None = None, path: str = "") -> int:
        """How many requests (of ``method``, under ``path``) reached the server."""
        return sum(1 for s in self.seen if (method is None or s.method == method) and s.path.startswith(path))

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:  # timeout: look at the stop flag again
                continue
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(5)
        with contextlib.suppress(OSError, ValueError), contextlib.closing(sock):
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True)
            seen = self._read(sock)
            if seen is None:
                return
            self.seen.append(seen)
            behaviour = next(
                (
                    b
                    for (method, prefix), b in self.routes.items()
                    if seen.method == method and seen.path.startswith(prefix)
                ),
                not_found,
            )
            behaviour(seen, Reply(sock))
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _read(sock: socket.socket) -> Seen | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {name.strip(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return Seen(method, path, headers, body)

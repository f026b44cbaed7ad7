"""One deadline per request: connecting, sending and receiving the complete answer within the connection's ``timeout``.

httpx's timeouts bound each socket operation, not the answer: a server that sends its headers and then one byte
every half second never trips them and holds the task as long as it likes. So each attempt gets a
:class:`Deadline`:

* the async client cancels the whole exchange when it passes (``anyio.fail_after``);
* the sync client cannot cancel a blocking read from outside, so every socket operation httpcore makes (connect,
  TLS handshake, each read and write, through proxies too) is given at most the time left:
  :class:`DeadlineBackend` wraps httpcore's network backend and reads the deadline of the attempt running in
  this thread (a context variable). A read that would outlive the deadline times out when it passes.

Both also check between chunks of the answer, which alone would bound a trickle to the deadline plus one chunk.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

log = logging.getLogger(__name__)

#: The monotonic time by which the attempt running in this thread (or task) must be complete.
_current: ContextVar[float | None] = ContextVar("prefs_request_deadline", default=None)


@dataclass(frozen=True)
class Deadline:
    """When one attempt must be complete."""

    seconds: float
    at: float

    @classmethod
    def start(cls, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now."""
        return cls(seconds, time.monotonic() + seconds)

    def left(self) -> float:
        """Seconds left (0 once passed)."""
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        """True once the deadline has passed."""
        return time.monotonic() >= self.at

    def timeouts(self, connect: float) -> dict[str, float]:
        """httpx's per-operation timeouts for this attempt, none longer than the time left."""
        left = max(self.left(), 0.001)
        return {"connect": min(connect, left), "pool": min(connect, left), "read": left, "write": left}

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Socket operations of this thread (sync client) end by the deadline while inside."""
        token = _current.set(self.at)
        try:
            yield
        finally:
            _current.reset(token)


def _clamp(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` cut to the time left of the current attempt; ``expired`` raised once none is left."""
    at = _current.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A connection whose every operation ends by the current deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self.stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.stream.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        return _Stream(self.stream.start_tls(ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self.stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's blocking network backend with every operation bounded by the current deadline."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self.backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """A TCP connection, made by the deadline."""
        timeout = _clamp(timeout, httpcore.ConnectTimeout)
        return _Stream(self.backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        """A Unix socket connection, made by the deadline."""
        return _Stream(self.backend.connect_unix_socket(path, _clamp(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        """Sleep (httpcore's retries; none are configured)."""
        self.backend.sleep(seconds)


def install(client: httpx.Client) -> bool:
    """Give every connection pool of ``client`` (direct and proxied) the deadline-bound backend.

    httpx 0.28 offers no public way to pass a network backend, so this reaches its transports' httpcore pools
    (``_transport``, ``_mounts``, ``_pool._network_backend``: pinned in constraints.txt; the hostile-server
    suite fails if they move). Returns False, with a warning, when a pool could not be reached: the check
    between chunks still bounds a trickled answer, but not a stall after the last byte.
    """
    transports = [client._transport, *client._mounts.values()]
    reached = True
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if transport is None or isinstance(getattr(pool, "_network_backend", None), DeadlineBackend):
            continue
        if pool is None or not hasattr(pool, "_network_backend"):
            reached = False
            continue
        pool._network_backend = DeadlineBackend(pool._network_backend)
    if not reached:
        log.warning("httpx internals changed: the sync client's deadline is only checked between chunks")
    return reached

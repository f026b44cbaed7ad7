"""The bad-input corpus harness: one table row per way a user can get an input or a setting wrong.

Each :class:`BadInput` acts through the public API (operators, hooks, bulk, sensor, connections)
against the sandbox and is checked the same way: the error type, a message that names the field or
path and the fix, no secret in it, a bounded size, and how many requests reached the sandbox (zero
wherever a request can be avoided).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_prefs.sandbox import connections as sandbox_credentials

#: An error message longer than this is itself a defect (ids quoted whole, bodies dumped).
MAX_MESSAGE_CHARS = 2_000

SECRETS = (
    sandbox_credentials.ADOBE_CLIENT_SECRET,
    sandbox_credentials.MP_STATIC_TOKEN,
    sandbox_credentials.MP_OAUTH_CLIENT_SECRET,
)


@dataclass(frozen=True)
class BadInput:
    """One bad input: what the user does, and what they must see."""

    id: str
    #: Does the wrong thing through the public API; gets the sandbox server (connections are set).
    act: Callable[[Any], Any]
    error: type[BaseException] | tuple[type[BaseException], ...]
    #: Substrings (case-insensitive) the message must contain: the field/path, and the fix.
    mentions: tuple[str, ...]
    #: Requests the sandbox may receive; None when the case cannot avoid an unknown number.
    requests: int | None = 0


def check(case: BadInput, sandbox: Any) -> str:
    """Run one case and assert everything the corpus promises; return the message."""
    sandbox.state.clear_journal()
    with pytest.raises(case.error) as caught:
        case.act(sandbox)
    message = str(caught.value)
    lowered = message.lower()
    missing = [m for m in case.mentions if m.lower() not in lowered]
    assert not missing, f"{case.id}: message lacks {missing}: {message}"
    leaked = [s for s in (*SECRETS, *sandbox.state.issued_tokens()) if s in message]
    assert not leaked, f"{case.id}: secret in message: {message}"
    assert len(message) <= MAX_MESSAGE_CHARS, f"{case.id}: message of {len(message)} chars"
    if case.requests is not None:
        sent = [entry["route"] for entry in sandbox.state.journal()]
        assert len(sent) == case.requests, f"{case.id}: sandbox received {sent}"
    return message


@contextmanager
def offline(sandbox: Any) -> Iterator[list[str]]:
    """The network as a worker without one sees it; yields what the code tried to do with it.

    Every name lookup and connection attempt is refused, and anything written to an already open
    TCP socket (a pooled connection) is recorded. Stronger than the sandbox journal, which only lists
    requests that reached one of its routes: not a request to a path it has no route for, nor to
    another host. The sandbox server's own sockets (it runs in this process) are left alone.
    """
    attempts: list[str] = []
    real = {name: getattr(socket.socket, name) for name in ("connect", "connect_ex", "send", "sendall", "sendmsg")}
    lookup = socket.getaddrinfo

    def refused(name: str) -> Callable[..., Any]:
        def attempt(self: socket.socket, address: Any, *args: Any) -> Any:
            attempts.append(f"{name} {address!r}")
            raise ConnectionRefusedError(f"offline: {name} {address!r}")

        return attempt

    def watched(name: str) -> Callable[..., Any]:
        def send(self: socket.socket, data: Any, *args: Any) -> Any:
            tcp = self.family in (socket.AF_INET, socket.AF_INET6)  # not asyncio's self-pipe
            if tcp and self.getsockname()[1] != sandbox.port:
                attempts.append(f"{name} {bytes(data[:60])!r}")
            return real[name](self, data, *args)

        return send

    def refused_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(f"getaddrinfo {host!r}")
        raise socket.gaierror(f"offline: getaddrinfo {host!r}")

    try:
        for name in ("connect", "connect_ex"):
            setattr(socket.socket, name, refused(name))
        for name in ("send", "sendall", "sendmsg"):
            setattr(socket.socket, name, watched(name))
        socket.getaddrinfo = refused_lookup
        yield attempts
    finally:
        for name, method in real.items():
            setattr(socket.socket, name, method)
        socket.getaddrinfo = lookup


def check_offline(case: BadInput, sandbox: Any) -> None:
    """:func:`check` with the network cut: a case judged on the worker must not even try to use it."""
    with offline(sandbox) as attempts:
        try:
            check(case, sandbox)
        finally:
            assert attempts == [], f"{case.id}: the worker used the network: {attempts}"

"""The bad-input corpus harness: one table row per way a user can get an input or a setting wrong.

Each :class:`BadInput` acts through the public API (operators, hooks, bulk, sensor, connections)
against the sandbox and is checked the same way: the error type, a message that names the field or
path and the fix, no secret in it, a bounded size, and how many requests reached the sandbox (zero
wherever a request can be avoided).
"""

from __future__ import annotations

from collections.abc import Callable
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

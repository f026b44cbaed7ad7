"""Credentials out of everything quoted from a server (bodies, headers, ``Location``) before it reaches a message.

A proxy's error page that echoes the request headers, or a token endpoint that echoes the form it got, would
otherwise put the bearer token or the client secret into exception text, which users forward themselves
(``on_failure_callback`` to chat or e-mail, XCom, report files) where Airflow's masker never looks. So the
client redacts on its own, before any text leaves it: every credential it knows by value (in the encodings a
server may echo it in), and anything shaped like a credential that it does not know.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
#: Shorter values are not redacted by value (blanking every "ab" would garble messages); no credential is that short.
MIN_SECRET_CHARS = 6

#: Credential shapes, whoever sent them: ``Bearer <token>``, ``Basic <b64>``, and ``name: value`` / ``name=value``
#: (headers, form fields, JSON members, query parameters) for names that hold credentials.
_SCHEMES = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{6,}")
_NAMED = re.compile(
    r"(?i)((?:proxy-)?authorization|x-api-key|api[_-]?key|client[_-]?secret|(?:access|refresh|id)[_-]?token"
    r"|passw(?:or)?d|secret|token|sig(?:nature)?)"
    r"(\\?[\"']?\s*[:=]\s*\\?[\"']?)(?!\*\*\*|(?:bearer|basic)\s)([^\"'\s&,;<>]{4,})"
)


def _forms(secret: str) -> set[str]:
    """The ways a server may echo ``secret``: as is, URL-encoded (form bodies, query strings), JSON-escaped."""
    return {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}


class Redactor:
    """Replaces known credentials and credential-shaped text with ``***``.

    :param secrets: credentials fixed for the client's life (API key, proxy password, static token).
    :param more: called at each use for credentials that change (the OAuth tokens fetched so far).
    """

    def __init__(self, secrets: Iterable[str | None] = (), more: Callable[[], Iterable[str]] | None = None) -> None:
        self.secrets = frozenset(s for s in secrets if s)
        self.more = more

    def __call__(self, text: str) -> str:
        """``text`` without any credential."""
        known = set(self.secrets) | set(self.more() if self.more else ())
        forms = sorted({form for secret in known if len(secret) >= MIN_SECRET_CHARS for form in _forms(secret)})
        if forms:  # longest first, so a secret containing another is replaced whole
            pattern = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
            text = re.sub(pattern, MASK, text)
        text = _SCHEMES.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
        return _NAMED.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)


#: Redacts credential shapes only: for text quoted where no client is at hand.
SHAPES_ONLY = Redactor()

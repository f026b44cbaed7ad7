"""Exception hierarchy shared by both services.

Every error carries one readable message that says what was wrong and where; none of them ever
holds a credential (URLs here carry ids, never tokens, and user info is stripped).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: How much of an unparseable answer body is quoted in an error message.
BODY_EXCERPT_CHARS = 300
#: How much of a user-given id, path or value is quoted in an error message (a 100 KB id must not
#: make a 200 KB message: logs, XCom and the UI all carry it).
QUOTED_CHARS = 80


def shorten(text: str, limit: int = QUOTED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...({len(text):,} chars)"


def quoted(value: object, limit: int = QUOTED_CHARS) -> str:
    """``repr(value)`` for a message, bounded: how every id, path or value is quoted in an error."""
    if isinstance(value, str):
        # Cut before repr: a 100 KB id is never copied whole into a message.
        return repr(value) if len(value) <= limit else f"{value[:limit]!r}...({len(value):,} chars)"
    if isinstance(value, int | float | bool) or value is None:
        return shorten(repr(value), limit)
    return f"<{type(value).__name__}>"


class PrefsError(Exception):
    """Base class of every error raised by airflow-provider-prefs."""

    #: False when retrying the task cannot help (bad input, bad configuration, 4xx).
    retryable: bool = False


class ConfigurationError(PrefsError):
    """The Airflow connection or operator arguments are missing or invalid."""


class InvalidInputError(PrefsError):
    """An argument (id, patch, desired state) is unusable; nothing was sent."""


class InvalidArgumentError(ConfigurationError, ValueError):
    """An operator or sensor argument is invalid; raised when the task is created, before it runs."""


class RequestTooLargeError(InvalidInputError):
    """A request body is larger than the connection's ``max_request_bytes``; nothing was sent."""


class PatchValidationError(InvalidInputError):
    """A JSON Patch was rejected locally, before anything was sent."""

    def __init__(self, message: str, *, op_index: int | None = None) -> None:
        super().__init__(message)
        self.op_index = op_index


class ApiConnectionError(PrefsError):
    """The service could not be reached (refused, DNS, TLS, timeout)."""

    retryable = True

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class DeadlineExceededError(ApiConnectionError):
    """The whole exchange (connect, send, the complete answer) took longer than the connection's ``timeout``.

    Not resent by the client: the server already had the whole deadline. Retryable at the task level.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, request_sent=True)


class UntrustedCertificateError(ApiConnectionError):
    """The service's TLS certificate failed verification; retrying cannot help, configuration can."""

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message, request_sent=False)


class OutcomeUnknownError(PrefsError):
    """A patch may or may not have been applied, and re-reading the resource could not tell."""


class UnexpectedAnswerError(PrefsError):
    """The service answered successfully, but with something this provider does not understand."""


class ResponseTooLargeError(PrefsError):
    """The service answered with a body larger than the configured limit."""


class ApiError(PrefsError):
    """The service answered with an HTTP error status."""

    def __init__(
        self,
        *,
        status: int,
        method: str,
        url: str,
        vendor_message: str,
        action: str | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        self.status = status
        self.method = method
        # Ids travel in the URL (path or query): bounded, so the message stays readable.
        self.url = shorten(redact_url(url), 2 * QUOTED_CHARS)
        self.vendor_message = shorten(vendor_message, BODY_EXCERPT_CHARS)
        self.action = shorten(action or f"{method} {self.url}", 2 * QUOTED_CHARS)
        self.retry_after = retry_after
        # The hook's own hint (naming its Airflow connection and fields) beats the generic one.
        hint = hint or STATUS_HINTS.get(status, "")
        #: What to check or fix, as the message ends with it.
        self.hint = hint
        super().__init__(
            f"{self.action} failed: HTTP {status} from {method} {self.url}: {vendor_message}"
            + (f" ({hint})" if hint else "")
        )


class RedirectError(ApiError):
    """HTTP 3xx: the service (or a gateway) answered elsewhere. Never followed: a redirect would carry the
    credentials to wherever ``Location`` points; the fix is the connection's URL."""

    def __init__(self, *, location: str | None, **kwargs: Any) -> None:
        #: Where the answer pointed (absolute, user info and credentials removed), or None when it did not say.
        self.location = location
        super().__init__(**kwargs)


class BadRequestError(ApiError):
    """HTTP 400: the service rejected the request as invalid."""


class AuthenticationError(ApiError):
    """HTTP 401: credentials missing, wrong or expired."""


class PermissionDeniedError(ApiError):
    """HTTP 403: the credentials are valid but not allowed to do this."""


class NotFoundError(ApiError):
    """HTTP 404: no such resource (or, for MyPreferences, no such client id)."""


class ConflictError(ApiError):
    """HTTP 409, or a failed ``test`` guard: the resource is not in the state the patch expects."""


class ConcurrentModificationError(PrefsError):
    """A guarded patch was refused because the resource changed after it was read; nothing was applied.

    ``replannable`` is True when none of this change's copies landed (or can land later: their guards
    no longer hold), so planning it again on a fresh read applies it exactly once; the change flow
    does so, bounded, for every change whose intent is still well defined.
    """

    def __init__(self, message: str, *, replannable: bool = False, current: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.replannable = replannable
        #: The document as re-read when the refusal was judged (so planning again need not read it again).
        self.current = current


class RateLimitedError(ApiError):
    """HTTP 429 after the retry budget was spent."""

    retryable = True


class ServerError(ApiError):
    """HTTP 5xx after the retry budget was spent."""

    retryable = True


STATUS_HINTS: dict[int, str] = {
    401: "check the connection's client id, secret or token",
    403: "the credentials lack permission for this org, sandbox or client id",
    404: "check the id and the connection's base URL / client id",
    409: "the resource changed; re-read it and retry",
    429: "rate limited; retries were exhausted",
}

_ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
}


def api_error_class(status: int) -> type[ApiError]:
    """Pick the most specific :class:`ApiError` subclass for an HTTP error status (4xx, 5xx)."""
    if status >= 500:
        return ServerError
    return _ERRORS_BY_STATUS.get(status, ApiError)


def redact_url(url: str) -> str:
    """Drop user info (``user:pass@``) from a URL so it can be shown."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def vendor_message(body: bytes | str, content_type: str = "") -> str:
    """One readable line from any error body.

    Adobe answers ``{"error_code", "message"}`` or RFC 7807 ``{"type", "status", "title",
    "detail"}``; MyPreferences' format is undocumented, so any JSON or text is accepted.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip()
    if not text:
        return "(empty body)"
    try:
        data: Any = json.loads(text)
    except ValueError:
        return _excerpt(" ".join(text.split()))
    return _message_from_json(data)


def _message_from_json(data: Any) -> str:
    if isinstance(data, list) and data:
        return "; ".join(_message_from_json(item) for item in data[:5])
    if not isinstance(data, dict):
        return _excerpt(json.dumps(data))
    if "error_code" in data or ("message" in data and "title" not in data):
        code = data.get("error_code")
        message = data.get("message") or data.get("Message") or ""
        return f"{message} [error_code {code}]" if code else str(message)
    if "title" in data or "detail" in data:
        title, detail = data.get("title"), data.get("detail")
        return ": ".join(str(p) for p in (title, detail) if p) or _excerpt(json.dumps(data))
    for key in ("Message", "message", "error_description", "error", "Error", "errors"):
        if data.get(key):
            value = data[key]
            return value if isinstance(value, str) else _excerpt(json.dumps(value))
    return _excerpt(json.dumps(data))


def _excerpt(text: str) -> str:
    return text if len(text) <= BODY_EXCERPT_CHARS else text[:BODY_EXCERPT_CHARS] + "..."

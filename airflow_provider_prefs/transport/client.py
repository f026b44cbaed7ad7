"""The HTTP layer under both hooks: one session, timeouts, bounded retries, readable errors.

The retry rules live in :func:`decide`, which sees only what happened to one attempt and says what
to do next. The sync client (``requests``, used by hooks on workers) and the async client
(``httpx``, used by triggers) only do the I/O around it, so both follow exactly the same rules:

* connect failures and 429 are retried for every request (nothing reached the service);
* 5xx, resets and read timeouts are retried only for requests that can be resent safely; for a
  patch they raise :class:`OutcomeUnknownError`, and the hook re-reads the resource to decide;
* a 401 with a refreshable token fetches a new token once and resends.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from airflow_provider_prefs.errors import (
    ApiConnectionError,
    ApiError,
    OutcomeUnknownError,
    PrefsError,
    ResponseTooLargeError,
    UntrustedCertificateError,
    api_error_class,
    redact_url,
    vendor_message,
)
from airflow_provider_prefs.jsonvalue import DEFAULT_MAX_REQUEST_BYTES, encode_json
from airflow_provider_prefs.transport.auth import ClientCredentials, TokenProvider
from airflow_provider_prefs.transport.retry import BackoffGate, RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    import httpx
    import requests

log = logging.getLogger(__name__)

USER_AGENT = "airflow-provider-prefs"
RESENDABLE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class ApiRequest:
    """One logical call; ``action`` names it in logs and errors (e.g. ``PATCH offer 'x'``)."""

    method: str
    url: str
    action: str
    params: Mapping[str, str] | None = None
    json_body: Any = None
    form: Mapping[str, str] | None = None
    #: False for a patch that must not be applied twice: no blind resend after it may have landed.
    resends_safely: bool = True
    authenticated: bool = True


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced: an HTTP answer, or a transport failure."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    failure: str | None = None
    request_sent: bool = False
    #: The TLS handshake failed verification: no retry can cure that, so raise at once.
    untrusted_certificate: bool = False


@dataclass(frozen=True)
class Decision:
    """What to do after an attempt."""

    kind: Literal["return", "retry", "refresh", "raise"]
    delay: float = 0.0
    error: Exception | None = None
    pause_everyone: bool = False


class Attempts:
    """Counts tries of one request against the policy's attempt and time budgets."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.count = 0
        self.waited = 0.0

    def next_delay(self, retry_after: float | None) -> float | None:
        """Seconds to wait before the next try, or None when the budget is spent."""
        policy = self.policy
        if self.count >= policy.max_attempts:
            return None
        if retry_after is not None and retry_after > policy.max_retry_after:
            return None
        delay = policy.delay(self.count, retry_after)
        if self.waited + delay > policy.max_total_seconds:
            return None
        self.waited += delay
        return delay


class RetryLoop:
    """Bookkeeping of one request's tries, shared by the sync and async clients."""

    def __init__(
        self,
        request: ApiRequest,
        policy: RetryPolicy,
        auth: TokenProvider | None,
        hints: Mapping[int, str] | None = None,
    ) -> None:
        self.request = request
        self.hints = hints
        self.auth = auth if request.authenticated else None
        self.attempts = Attempts(policy)
        self.refreshed = False

    def next(self, outcome: Outcome) -> Decision:
        """Count the attempt that produced ``outcome`` and decide what comes next."""
        self.attempts.count += 1
        can_refresh = bool(self.auth and self.auth.refreshable) and not self.refreshed
        decision = decide(self.request, outcome, self.attempts, can_refresh=can_refresh, hints=self.hints)
        if decision.kind == "refresh":
            assert self.auth is not None
            log.info("%s: HTTP 401, fetching a new token and resending once", self.request.action)
            self.auth.invalidate()
            self.refreshed = True
            self.attempts.count -= 1  # the rejected try does not use up the retry budget
        elif decision.kind == "retry":
            log.warning(
                "%s: attempt %d/%d got %s; retrying in %.2fs",
                self.request.action,
                self.attempts.count,
                self.attempts.policy.max_attempts,
                outcome.failure or f"HTTP {outcome.status}",
                decision.delay,
            )
        elif decision.kind == "raise":
            assert decision.error is not None
            raise decision.error
        return decision


def decide(
    request: ApiRequest,
    outcome: Outcome,
    attempts: Attempts,
    *,
    can_refresh: bool,
    hints: Mapping[int, str] | None = None,
) -> Decision:
    """The retry rules for both clients (see the module docstring); ``hints`` per status end errors."""
    action = request.action
    if outcome.failure is not None:
        if outcome.untrusted_certificate:
            return Decision("raise", error=UntrustedCertificateError(f"{action} failed: {outcome.failure}"))
        if not outcome.request_sent or request.resends_safely:
            delay = attempts.next_delay(None)
            if delay is not None:
                return Decision("retry", delay)
            return Decision(
                "raise",
                error=ApiConnectionError(
                    f"{action} failed: {outcome.failure} (gave up after {attempts.count} attempt(s))",
                    request_sent=outcome.request_sent,
                ),
            )
        return Decision(
            "raise",
            error=OutcomeUnknownError(
                f"{action}: {outcome.failure} after the request was sent; it may have been applied"
            ),
        )

    status = outcome.status or 0
    if status < 400:
        return Decision("return")
    if status == 401 and can_refresh:
        return Decision("refresh")
    retry_after = parse_retry_after(_header(outcome.headers, "Retry-After"))
    error = api_error_class(status)(
        status=status,
        method=request.method,
        url=_shown_url(request),
        vendor_message=vendor_message(outcome.body, _header(outcome.headers, "Content-Type") or ""),
        action=action,
        retry_after=retry_after,
        hint=(hints or {}).get(status),
    )
    if status == 429 or (status in RESENDABLE_STATUSES and request.resends_safely):
        delay = attempts.next_delay(retry_after)
        if delay is not None:
            return Decision("retry", delay, pause_everyone=status == 429)
        return Decision("raise", error=error)
    if status >= 500 and not request.resends_safely:
        return Decision(
            "raise",
            error=OutcomeUnknownError(
                f"{action}: HTTP {status} ({error.vendor_message}); the patch may have been applied"
            ),
        )
    return Decision("raise", error=error)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value


def _shown_url(request: ApiRequest) -> str:
    if not request.params:
        return redact_url(request.url)
    from urllib.parse import urlencode

    return redact_url(f"{request.url}?{urlencode(dict(request.params))}")


def token_request(credentials: ClientCredentials) -> ApiRequest:
    """The client-credentials token request (safe to resend: it changes nothing)."""
    return ApiRequest(
        "POST",
        credentials.token_url,
        action=f"token request for client id {credentials.client_id!r}",
        form=credentials.form(),
        authenticated=False,
    )


def parse_body(request: ApiRequest, outcome: Outcome) -> Any:
    """The JSON of a successful answer (None for an empty body)."""
    if not outcome.body.strip():
        return None
    try:
        return json.loads(outcome.body)
    except ValueError as exc:
        raise PrefsError(
            f"{request.action}: HTTP {outcome.status} answer is not JSON: {vendor_message(outcome.body)}"
        ) from exc


@dataclass(frozen=True)
class ClientSettings:
    """Transport settings shared by the sync and async clients (from the connection extras)."""

    base_headers: Mapping[str, str]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    verify: bool | str = True
    max_response_bytes: int = 10 * 1024 * 1024
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    pool_size: int = 16
    #: Per HTTP status, what to check in the Airflow connection (e.g. 401 -> login and password).
    status_hints: Mapping[int, str] = field(default_factory=dict)


JSON_HEADERS = {"Content-Type": "application/json"}


def encode_body(request: ApiRequest, settings: ClientSettings) -> bytes | None:
    """The JSON body, encoded once per request and checked against ``max_request_bytes`` before sending."""
    if request.json_body is None:
        return None
    return encode_json(request.json_body, limit=settings.max_request_bytes, what=request.action)


@dataclass(frozen=True)
class OriginEnvironment:
    """What ``requests`` would read from the environment for one origin: proxies, CA bundle, .netrc."""

    #: Never mutated: requests copies it when merging with the session's (empty) proxies.
    proxies: dict[str, str]
    verify: bool | str
    netrc_auth: tuple[str, str] | None


def resolve_environment(url: str, verify: bool | str) -> OriginEnvironment:
    """Read proxy variables (``NO_PROXY`` included), ``REQUESTS_CA_BUNDLE`` and ``~/.netrc`` for ``url``.

    Uses requests' own functions, so the result is exactly what ``trust_env`` would have produced.
    """
    import requests
    import requests.sessions

    probe = requests.Session()  # trust_env=True: only used to run requests' merge rules
    try:
        merged = probe.merge_environment_settings(url, {}, None, verify, None)
    finally:
        probe.close()
    netrc = requests.sessions.get_netrc_auth(url)
    return OriginEnvironment(
        proxies=dict(merged["proxies"] or {}),
        verify=verify if merged["verify"] is None else merged["verify"],
        netrc_auth=tuple(netrc) if netrc else None,  # type: ignore[arg-type]
    )


class ApiClient:
    """Blocking client over one reused ``requests.Session`` (thread-safe for bulk work).

    The session does not consult the environment on every request (``trust_env`` costs a proxy
    lookup and a ``~/.netrc`` stat per call, about half of requests' preparation time): proxies,
    CA bundle and ``.netrc`` are resolved once per origin (scheme and host) and passed explicitly.
    """

    def __init__(self, settings: ClientSettings, auth: TokenProvider | None = None) -> None:
        self.settings = settings
        self.auth = auth
        self.gate = BackoffGate()
        self._environments: dict[tuple[str, str], OriginEnvironment] = {}
        self._environment_lock = threading.Lock()
        if settings.verify is False:
            log.warning("TLS certificate verification is OFF for this connection")

    @cached_property
    def session(self) -> requests.Session:
        """The one session (and connection pool) every call of this client goes through."""
        import requests
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.settings.pool_size, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update({"User-Agent": USER_AGENT, **self.settings.base_headers})
        session.verify = self.settings.verify
        session.trust_env = False  # the environment is resolved once per origin, see environment()
        return session

    def environment(self, url: str) -> OriginEnvironment:
        """Proxies, CA bundle and ``.netrc`` for the origin of ``url``, resolved on first use only."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        found = self._environments.get(origin)
        if found is None:
            with self._environment_lock:
                found = self._environments.get(origin)
                if found is None:
                    found = self._environments[origin] = resolve_environment(url, self.settings.verify)
        return found

    def close(self) -> None:
        """Close pooled connections."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    def fetch_token(self, credentials: ClientCredentials) -> Any:
        """POST a client-credentials token request (safe to resend: it changes nothing)."""
        return self.send(token_request(credentials))

    def send(self, request: ApiRequest) -> Any:
        """Send with retries; return the parsed JSON answer or raise a :class:`PrefsError`."""
        body = encode_body(request, self.settings)
        loop = RetryLoop(request, self.settings.policy, self.auth, self.settings.status_hints)
        while True:
            self.gate.wait()
            headers = dict(JSON_HEADERS) if body is not None else {}
            if loop.auth is not None:
                headers["Authorization"] = loop.auth.authorization(self.fetch_token)
            outcome = self._attempt(request, headers, body)
            decision = loop.next(outcome)
            if decision.kind == "return":
                return parse_body(request, outcome)
            if decision.pause_everyone:
                self.gate.pause(decision.delay)
            elif decision.delay:
                time.sleep(decision.delay)

    def _attempt(self, request: ApiRequest, headers: dict[str, str], body: bytes | None) -> Outcome:
        import requests

        settings = self.settings
        environment = self.environment(request.url)
        log.debug("%s: %s %s", request.action, request.method, redact_url(request.url))
        try:
            response = self.session.request(
                request.method,
                request.url,
                params=request.params,
                data=body if body is not None else request.form,
                headers=headers,
                timeout=(settings.connect_timeout, settings.read_timeout),
                verify=environment.verify,
                proxies=environment.proxies,
                # .netrc credentials only where we send none of our own: requests would otherwise let
                # a .netrc entry for the API host replace the bearer token with Basic auth.
                auth=None if "Authorization" in headers else environment.netrc_auth,
                stream=True,
            )
        except (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError) as exc:
            return _not_sent(exc, request)
        except requests.exceptions.ConnectionError as exc:
            return Outcome(failure=_describe(exc), request_sent=not _never_connected(exc))
        except requests.exceptions.RequestException as exc:
            return Outcome(failure=_describe(exc), request_sent=True)
        try:
            body = self._read_limited(request, response)
        except ResponseTooLargeError:
            raise
        except requests.exceptions.RequestException as exc:
            return Outcome(failure=_describe(exc), request_sent=True)
        return Outcome(status=response.status_code, headers=response.headers, body=body)

    def _read_limited(self, request: ApiRequest, response: requests.Response) -> bytes:
        limit = self.settings.max_response_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            response.close()
            raise _too_large(request, limit)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > limit:
                response.close()
                raise _too_large(request, limit)
            chunks.append(chunk)
        return b"".join(chunks)


def _too_large(request: ApiRequest, limit: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"{request.action}: answer larger than max_response_bytes={limit}; raise the limit in the "
        "connection extras if this is expected"
    )


def _never_connected(exc: BaseException) -> bool:
    """True when a ``requests`` ConnectionError happened before any byte of the request left."""
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NameResolutionError, NewConnectionError

    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError | NameResolutionError)


def _not_sent(exc: BaseException, request: ApiRequest) -> Outcome:
    """The outcome of a failure before the request left (connect, TLS handshake)."""
    certificate_problem = _certificate_problem(exc)
    if certificate_problem is None:
        return Outcome(failure=_describe(exc), request_sent=False)
    return Outcome(
        failure=(
            f"the TLS certificate of {urlsplit(request.url).netloc} is not trusted ({certificate_problem}); "
            "if the service uses a private CA, put its PEM file in the connection extra 'ca_bundle'"
        ),
        untrusted_certificate=True,
    )


def _certificate_problem(exc: BaseException) -> str | None:
    """The verification error behind a ``requests`` or ``httpx`` failure, if that is what it was."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return str(current.verify_message or current.reason or "certificate verify failed")
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
    return None


def _describe(exc: BaseException) -> str:
    """A short, secret-free description of a transport failure."""
    name = type(exc).__name__
    text = str(exc)
    for marker in ("Failed to establish a new connection", "Read timed out", "Connection refused"):
        if marker in text:
            return f"{name}: {marker.lower()}"
    return f"{name}: {text[:200]}"


def ssl_context(ca_bundle: str) -> ssl.SSLContext:
    """A verifying TLS context that trusts ``ca_bundle`` (httpx wants a context, not a path)."""
    return ssl.create_default_context(cafile=ca_bundle)


class AsyncApiClient:
    """Non-blocking twin of :class:`ApiClient` over ``httpx`` for triggers (same :func:`decide`)."""

    def __init__(self, settings: ClientSettings, auth: TokenProvider | None = None) -> None:
        self.settings = settings
        self.auth = auth
        #: The same shared 429 pause as the sync client: one throttled wait holds back the others.
        self.gate = BackoffGate()
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        import httpx

        if self._client is None:
            settings = self.settings
            verify: bool | ssl.SSLContext = (
                settings.verify if isinstance(settings.verify, bool) else ssl_context(settings.verify)
            )
            self._client = httpx.AsyncClient(
                headers={"User-Agent": USER_AGENT, **settings.base_headers},
                timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
                verify=verify,
                limits=httpx.Limits(max_connections=settings.pool_size),
            )
        return self._client

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch_token(self, credentials: ClientCredentials) -> Any:
        """POST a client-credentials token request."""
        return await self.send(token_request(credentials))

    async def send(self, request: ApiRequest) -> Any:
        """Send with the same retry rules as the sync client."""
        import asyncio

        body = encode_body(request, self.settings)
        loop = RetryLoop(request, self.settings.policy, self.auth, self.settings.status_hints)
        while True:
            while (paused := self.gate.remaining()) > 0:
                await asyncio.sleep(paused)
            headers = dict(JSON_HEADERS) if body is not None else {}
            if loop.auth is not None:
                headers["Authorization"] = await loop.auth.aauthorization(self.fetch_token)
            outcome = await self._attempt(request, headers, body)
            decision = loop.next(outcome)
            if decision.kind == "return":
                return parse_body(request, outcome)
            if decision.pause_everyone:
                self.gate.pause(decision.delay)
            elif decision.delay:
                await asyncio.sleep(decision.delay)

    async def _attempt(self, request: ApiRequest, headers: dict[str, str], body: bytes | None) -> Outcome:
        import httpx

        limit = self.settings.max_response_bytes
        try:
            async with self._http().stream(
                request.method,
                request.url,
                params=dict(request.params) if request.params else None,
                content=body,
                data=dict(request.form) if request.form else None,
                headers=headers,
            ) as response:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(request, limit)
                    chunks.append(chunk)
                return Outcome(status=response.status_code, headers=response.headers, body=b"".join(chunks))
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return _not_sent(exc, request)
        except httpx.HTTPError as exc:
            return Outcome(failure=f"{type(exc).__name__}: {exc}"[:200], request_sent=True)


__all__ = [
    "ApiClient",
    "ApiError",
    "ApiRequest",
    "AsyncApiClient",
    "Attempts",
    "ClientSettings",
    "Decision",
    "Outcome",
    "decide",
]

"""The HTTP layer under both hooks: :func:`decide` (the retry rules), :meth:`Transport.steps` (the one retry
loop, without I/O) and the two httpx clients that drive it: :class:`ApiClient` (hooks), :class:`AsyncApiClient`
(triggers). Each reads the environment once: proxies, ``NO_PROXY``, ``SSL_CERT_FILE``/``SSL_CERT_DIR``, ``.netrc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import ssl
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from netrc import NetrcParseError
from typing import Any, ClassVar, Literal, cast
from urllib.parse import urlencode, urlsplit

import httpx

from airflow_provider_prefs import errors
from airflow_provider_prefs.errors import OutcomeUnknownError, redact_url, vendor_message
from airflow_provider_prefs.jsonvalue import encode_json
from airflow_provider_prefs.transport.auth import ClientCredentials, TokenProvider
from airflow_provider_prefs.transport.retry import Attempts, BackoffGate, parse_retry_after
from airflow_provider_prefs.transport.settings import TransportSettings

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Decision:
    """What to do after an attempt."""

    kind: Literal["return", "retry", "refresh", "raise"]
    delay: float = 0.0
    error: Exception | None = None
    pause_everyone: bool = False


def decide(
    request: ApiRequest, outcome: Outcome, attempts: Attempts, *, can_refresh: bool, hints: Mapping[int, str] = {}
) -> Decision:
    """The retry rules of both clients; ``hints`` (per status) end error messages.

    * connect failures and 429 are retried for every request (nothing reached the service);
    * 5xx, resets and read timeouts are retried only for requests that can be resent safely; for a
      patch they raise :class:`OutcomeUnknownError`, and the hook re-reads the resource to decide;
    * a 401 with a refreshable token fetches a new token once and resends (``can_refresh``);
    * a 429 holds back every request of the client (``pause_everyone``).
    """
    action, status, failure = request.action, outcome.status or 0, outcome.failure
    if failure is None and status < 400:
        return Decision("return")
    if status == 401 and can_refresh:
        return Decision("refresh")
    headers = httpx.Headers(outcome.headers)
    retry_after = parse_retry_after(headers.get("Retry-After"))
    error: errors.PrefsError
    if failure is not None:
        gave_up = f"{action} failed: {failure} (gave up after {attempts.count} attempt(s))"
        error = errors.ApiConnectionError(gave_up, request_sent=outcome.request_sent)
        retry, what = not outcome.request_sent or request.resends_safely, f"{failure} after the request was sent"
    else:
        error = errors.api_error_class(status)(
            status=status,
            method=request.method,
            url=redact_url(request.url + (f"?{urlencode(dict(request.params))}" if request.params else "")),
            vendor_message=vendor_message(outcome.body, headers.get("Content-Type", "")),
            action=action,
            retry_after=retry_after,
            hint=hints.get(status),
        )
        retry = status == 429 or (status in (502, 503, 504) and request.resends_safely)
        what = f"HTTP {status} ({error.vendor_message})"
    if retry:
        delay = attempts.next_delay(retry_after)
        return Decision("raise", error=error) if delay is None else Decision("retry", delay, None, status == 429)
    if not request.resends_safely and (failure is not None or status >= 500):
        return Decision("raise", error=OutcomeUnknownError(f"{action}: {what}; it may have been applied"))
    return Decision("raise", error=error)


def failure_outcome(exc: httpx.HTTPError, request: ApiRequest) -> Outcome:
    """The outcome of an attempt that got no answer (sync and async httpx raise the same classes)."""
    cause: BaseException | None = exc  # httpx wraps httpcore, which wraps the ssl error
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):  # no retry can cure that: raise at once
        raise errors.UntrustedCertificateError(
            f"{request.action} failed: the TLS certificate of {urlsplit(redact_url(request.url)).netloc} is "
            f"not trusted ({cause.verify_message}); if the service uses a private CA, put its PEM file in the "
            "connection extra 'ca_bundle'"
        ) from None
    # Not sent: no connection, or none free in the pool. httpx's messages never show URL or headers (no secrets).
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return Outcome(failure=f"{type(exc).__name__}: {exc}"[:200], request_sent=sent)


def add_chunk(request: ApiRequest, body: bytearray, chunk: bytes, limit: int) -> None:
    """Add a chunk of a streaming answer; refuse the answer as soon as it passes ``max_response_bytes``."""
    body += chunk
    if len(body) > limit:
        raise errors.ResponseTooLargeError(
            f"{request.action}: answer larger than max_response_bytes={limit}; raise the limit in the "
            "connection extras if this is expected"
        )


@functools.lru_cache(maxsize=16)
def tls_context(verify: bool | str, changed: int) -> ssl.SSLContext:
    """One TLS context per setting (and CA bundle mtime, ``changed``) per process: loading CAs costs ~20 ms."""
    context = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
    return httpx.create_ssl_context(verify=context)  # True: certifi, or SSL_CERT_FILE / SSL_CERT_DIR


@dataclass(frozen=True)
class Answer:
    """The last step of :meth:`Transport.steps`: the parsed JSON of a successful answer."""

    value: Any


class Transport:
    """What both clients share: settings, token, 429 gate, the httpx pool and the retry loop."""

    pool: ClassVar[Callable[..., Any]]
    send: Callable[[ApiRequest], Any]

    def __init__(
        self,
        settings: TransportSettings,
        headers: Mapping[str, str] | None = None,
        auth: TokenProvider | None = None,
        hints: Mapping[int, str] | None = None,
    ) -> None:
        self.settings, self.auth, self.hints = settings, auth, dict(hints or {})
        self.gate, verify = BackoffGate(), settings.verify
        if verify is False:
            log.warning("TLS certificate verification is OFF for this connection")
        self.netrc: httpx.Auth | None = None
        with contextlib.suppress(OSError, NetrcParseError):  # none (the usual case) or unusable: ignored
            self.netrc = httpx.NetRCAuth(os.environ.get("NETRC"))  # default: ~/.netrc
        self.http = self.pool(
            headers={"User-Agent": "airflow-provider-prefs", **(headers or {})},
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            verify=tls_context(verify, os.stat(verify).st_mtime_ns if isinstance(verify, str) else 0),
            limits=httpx.Limits(max_connections=settings.pool_size, max_keepalive_connections=settings.pool_size),
        )

    def fetch_token(self, creds: ClientCredentials) -> Any:
        """POST a client-credentials token request (safe to resend: it changes nothing); async: awaitable."""
        action = f"token request for client id {creds.client_id!r}"
        return self.send(ApiRequest("POST", creds.token_url, action, form=creds.form(), authenticated=False))

    def steps(self, request: ApiRequest) -> Generator[float | TokenProvider | httpx.Request | Answer, Any, None]:
        """The retry loop. Yields seconds to sleep, a token provider (send back the header), the request to
        send (send back its :class:`Outcome`), and at last the :class:`Answer`; or raises the error."""
        body = None  # encoded once, and refused before sending when over max_request_bytes
        if request.json_body is not None:
            body = encode_json(request.json_body, limit=self.settings.max_request_bytes, what=request.action)
        content_type = {"Content-Type": "application/json"} if body is not None else None
        http = self.http.build_request(
            request.method, request.url, params=request.params, content=body, data=request.form, headers=content_type
        )
        auth = self.auth if request.authenticated else None
        attempts, refreshed = Attempts(self.settings), False
        while True:
            while (paused := self.gate.remaining()) > 0:
                yield paused
            if auth is not None:
                http.headers["Authorization"] = yield auth
            outcome: Outcome = yield http
            attempts.count += 1
            can_refresh = auth is not None and auth.refreshable and not refreshed
            decision = decide(request, outcome, attempts, can_refresh=can_refresh, hints=self.hints)
            if decision.kind == "return":
                try:
                    value = json.loads(outcome.body) if outcome.body.strip() else None
                except ValueError:
                    got = f"HTTP {outcome.status} answer is not JSON: {vendor_message(outcome.body)}"
                    raise errors.PrefsError(f"{request.action}: {got}") from None
                yield Answer(value)
                return
            if decision.error is not None:
                raise decision.error
            if decision.kind == "refresh" and auth is not None:
                log.info("%s: HTTP 401, fetching a new token and resending once", request.action)
                auth.invalidate()
                attempts.count, refreshed = attempts.count - 1, True  # the rejected try costs no budget
                continue
            got = f"{attempts.count}/{self.settings.max_attempts} got {outcome.failure or f'HTTP {outcome.status}'}"
            log.warning("%s: attempt %s; retrying in %.2fs", request.action, got, decision.delay)
            if decision.pause_everyone:
                self.gate.pause(decision.delay)
            else:
                yield decision.delay


class ApiClient(Transport):
    """Blocking client over one ``httpx.Client`` (thread-safe: bulk work shares its pool)."""

    pool = httpx.Client
    http: httpx.Client

    def close(self) -> None:
        """Close pooled connections."""
        self.http.close()

    def send(self, request: ApiRequest) -> Any:
        """Send with retries; return the parsed JSON answer or raise a :class:`PrefsError`."""
        steps, reply = self.steps(request), cast(Any, None)  # the header or Outcome the last step asked for
        while not isinstance(step := steps.send(reply), Answer):
            if isinstance(step, TokenProvider):
                reply = step.authorization(self.fetch_token)
            elif isinstance(step, httpx.Request):
                reply = self._attempt(request, step)
            else:
                time.sleep(step)
        return step.value

    def _attempt(self, request: ApiRequest, http: httpx.Request) -> Outcome:
        # .netrc only where we send no token: it must never replace the bearer with Basic auth.
        netrc = None if "Authorization" in http.headers else self.netrc
        try:
            with contextlib.closing(self.http.send(http, stream=True, auth=netrc)) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    add_chunk(request, body, chunk, self.settings.max_response_bytes)
        except httpx.HTTPError as exc:
            return failure_outcome(exc, request)
        return Outcome(response.status_code, response.headers, bytes(body))


class AsyncApiClient(Transport):
    """Non-blocking twin of :class:`ApiClient` over one ``httpx.AsyncClient``, for triggers."""

    pool = httpx.AsyncClient
    http: httpx.AsyncClient

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self.http.aclose()

    async def send(self, request: ApiRequest) -> Any:
        """Send with the same retry loop as the sync client."""
        steps, reply = self.steps(request), cast(Any, None)  # the header or Outcome the last step asked for
        while not isinstance(step := steps.send(reply), Answer):
            if isinstance(step, TokenProvider):
                reply = await step.aauthorization(self.fetch_token)
            elif isinstance(step, httpx.Request):
                reply = await self._attempt(request, step)
            else:
                await asyncio.sleep(step)
        return step.value

    async def _attempt(self, request: ApiRequest, http: httpx.Request) -> Outcome:
        netrc = None if "Authorization" in http.headers else self.netrc
        try:
            async with contextlib.aclosing(await self.http.send(http, stream=True, auth=netrc)) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    add_chunk(request, body, chunk, self.settings.max_response_bytes)
        except httpx.HTTPError as exc:
            return failure_outcome(exc, request)
        return Outcome(response.status_code, response.headers, bytes(body))

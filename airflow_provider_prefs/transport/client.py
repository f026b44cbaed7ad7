"""The HTTP layer under both hooks: :func:`decide` (the retry rules), :meth:`ClientBase.steps` (the one retry
loop, without I/O) and the two httpx clients that drive it: :class:`ApiClient` (hooks), :class:`AsyncApiClient`
(triggers). Each reads the environment once: proxies, ``NO_PROXY``, the CA variables (:mod:`.trust`), ``.netrc``.

Every answer is judged before use: only a 2xx is a success (a 3xx is an error, never followed), a success must
have the shape the request expects (:mod:`.answers`), each attempt must be complete by its deadline
(:class:`Deadline`), and whatever is quoted from the server is redacted first (:mod:`.redact`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from netrc import NetrcParseError
from typing import Any, ClassVar, Literal, cast
from urllib.parse import unquote, urlencode, urlsplit

import anyio
import httpcore
import httpx
from pydantic import BaseModel

from airflow_provider_prefs import errors
from airflow_provider_prefs.errors import OutcomeUnknownError, redact_url, shorten, vendor_message
from airflow_provider_prefs.jsonvalue import encode_json
from airflow_provider_prefs.transport.answers import check_shape, expected_of, parse_json
from airflow_provider_prefs.transport.auth import ClientCredentials, TokenAnswer, TokenProvider
from airflow_provider_prefs.transport.build import RequestBuilder
from airflow_provider_prefs.transport.redact import SHAPES_ONLY, Redactor
from airflow_provider_prefs.transport.retry import Attempts, BackoffGate, parse_retry_after
from airflow_provider_prefs.transport.settings import TransportSettings
from airflow_provider_prefs.transport.trust import Trust, trust_of

#: Of an error answer only an excerpt is quoted, so no more than this is read of it.
ERROR_BODY_BYTES = 64 * 1024
#: Request headers whose values are credentials (redacted wherever a server echoes them).
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization"})

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
    idempotent: bool = True
    authenticated: bool = True
    #: What a successful answer must be (a model with an ``EXPECTED`` description); None accepts any JSON or nothing.
    expects: type[BaseModel] | None = None
    #: The setting holding this URL, named when the service redirects (the fix is to set it to the final URL).
    url_setting: str = "the host of the Airflow connection"


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt produced: an HTTP answer, or a transport failure."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    failure: str | None = None
    request_sent: bool = False
    #: No (complete) answer came in time.
    timed_out: bool = False
    #: The answer began, but its deadline passed before it was complete.
    over_deadline: bool = False
    #: The body was not read to its end (over ``max_response_bytes``, or an error answer past its excerpt).
    truncated: bool = False


@dataclass(frozen=True)
class Decision:
    """What to do after an attempt."""

    kind: Literal["return", "retry", "refresh", "raise"]
    delay: float = 0.0
    error: Exception | None = None
    pause_everyone: bool = False


# Deadlines ------------------------------------------------------------------------------------------------------------
# One deadline per request: connecting, sending and receiving the complete answer within the connection's ``timeout``.
#
# httpx's timeouts bound each socket operation, not the answer: a server that sends its headers and then one byte
# every half second never trips them and holds the task as long as it likes. So each attempt gets a
# :class:`Deadline`:
#
# * the async client cancels the whole exchange when it passes (``anyio.fail_after``);
# * the sync client cannot cancel a blocking read from outside, so every socket operation httpcore makes (connect,
#   TLS handshake, each read and write, through proxies too) is given at most the time left:
#   :class:`DeadlineBackend` wraps httpcore's network backend and reads the deadline of the attempt running in
#   this thread (a context variable). A read that would outlive the deadline times out when it passes.
#
# Both also check between chunks of the answer, which alone would bound a trickle to the deadline plus one chunk.


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


def install_deadlines(client: httpx.Client) -> bool:
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


def decide(
    request: ApiRequest,
    outcome: AttemptResult,
    attempts: Attempts,
    *,
    can_refresh: bool,
    hints: Mapping[int, str] = {},
    redact: Callable[[str], str] = SHAPES_ONLY,
) -> Decision:
    """The retry rules of both clients; ``hints`` (per status) end error messages, ``redact`` cleans quoted text.

    * only a 2xx is a success; a 3xx is an error naming ``Location``, never followed (it would carry the
      credentials wherever it points);
    * connect failures and 429 are retried for every request (nothing reached the service);
    * 5xx and resets are retried only for requests that can be resent safely; for a patch they raise
      :class:`OutcomeUnknownError`, and the hook re-reads the resource to decide (a 3xx too);
    * an answer that began but was not complete by the attempt's deadline is not resent (the server had all of
      it: a read fails, a patch is uncertain); no answer at all in time counts as a lost answer;
    * a 401 with a refreshable token fetches a new token once and resends (``can_refresh``);
    * a 429 holds back every request of the client (``pause_everyone``).
    """
    action, status, failure = request.action, outcome.status or 0, outcome.failure
    if failure is None and 200 <= status < 300:
        return Decision("return")
    if status == 401 and can_refresh:
        return Decision("refresh")
    headers = httpx.Headers(outcome.headers)
    retry_after = parse_retry_after(headers.get("Retry-After"))
    error: errors.PrefsError
    if failure is not None:
        error = connection_error(request, outcome, attempts)
        retry = not outcome.over_deadline and (not outcome.request_sent or request.idempotent)
        what = f"{failure} after the request was sent"
    else:
        error = answer_error(request, outcome, attempts, hints, redact, retry_after)
        retry = status == 429 or (status in (502, 503, 504) and request.idempotent)
        what = f"HTTP {status} ({error.vendor_message})"
        if isinstance(error, errors.RedirectError):  # the fix belongs in the uncertain outcome's message too
            what += f"; {error.hint}"
    if retry:
        delay = attempts.next_delay(retry_after)
        return Decision("raise", error=error) if delay is None else Decision("retry", delay, None, status == 429)
    # A patch that may have reached processing (its answer lost, cut off, a 5xx or a redirect from a gateway):
    # only a re-read can tell.
    if not request.idempotent and (outcome.request_sent or status >= 500 or 300 <= status < 400):
        uncertain = OutcomeUnknownError(f"{action}: {what}; it may have been applied")
        uncertain.__cause__ = error
        return Decision("raise", error=uncertain)
    return Decision("raise", error=error)


def connection_error(request: ApiRequest, outcome: AttemptResult, attempts: Attempts) -> errors.ApiConnectionError:
    """The error of an attempt that got no (complete) answer, saying what to check."""
    if outcome.over_deadline:
        return errors.DeadlineExceededError(
            f"{request.action} failed: {outcome.failure}; the service or a proxy in between is too slow or stalled "
            f"(raise the connection's extra 'timeout' if the service is merely slow)"
        )
    if outcome.timed_out:
        fix = "raise the connection's extra 'timeout' if the service is merely slow"
    elif outcome.request_sent:
        fix = "the service or a proxy dropped the connection mid-answer"
    else:
        fix = "check the connection's host and port, and any proxy (extra 'proxy', HTTPS_PROXY)"
    return errors.ApiConnectionError(
        f"{request.action} failed: {outcome.failure} (gave up after {attempts.count} attempt(s)); {fix}",
        request_sent=outcome.request_sent,
    )


def answer_error(
    request: ApiRequest,
    outcome: AttemptResult,
    attempts: Attempts,
    hints: Mapping[int, str],
    redact: Callable[[str], str],
    retry_after: float | None,
) -> errors.ApiError:
    """The error of an answer that is not a success (3xx, 4xx, 5xx), quoting the server redacted."""
    status = outcome.status or 0
    headers = httpx.Headers(outcome.headers)
    content_type = headers.get("Content-Type", "")
    quoted_body = redact(vendor_message(redact(outcome.body.decode("utf-8", "replace")), content_type))
    query = f"?{urlencode(dict(request.params))}" if request.params else ""
    common: dict[str, Any] = {
        "status": status,
        "method": request.method,
        "url": redact(redact_url(request.url + query)),
        "action": request.action,
        "retry_after": retry_after,
    }
    if 300 <= status < 400:
        location = redirect_target(request.url, headers.get("Location"), redact)
        return errors.RedirectError(
            location=location,
            vendor_message=f"redirected to {location}" if location else "a redirect without a Location",
            hint=f"redirects are not followed, since they would carry the credentials along: set {request.url_setting} "
            "to the final URL",
            **common,
        )
    hint = hints.get(status)
    limit = attempts.settings.max_retry_after
    if retry_after is not None and retry_after > limit and (status == 429 or status >= 500):
        hint = (
            f"the service asks to wait {retry_after:,.0f} s (Retry-After), longer than the connection's "
            f"max_retry_after={limit:g} s: try later, or raise extra 'max_retry_after'"
        )
    return errors.api_error_class(status)(vendor_message=quoted_body, hint=hint, **common)


def redirect_target(url: str, location: str | None, redact: Callable[[str], str]) -> str | None:
    """The absolute URL a redirect points to, fit to show: no user info, no credential, bounded."""
    if not location:
        return None
    try:
        target = str(httpx.URL(url).join(location.strip()))
    except (httpx.InvalidURL, ValueError):
        target = location
    return shorten(redact(redact_url(target)), 200)


def failure_outcome(
    exc: BaseException,
    request: ApiRequest,
    deadline: Deadline,
    trust: Trust,
    received: int | None,
    redact: Callable[[str], str],
) -> AttemptResult:
    """The outcome of an attempt that got no complete answer (sync and async httpx raise the same classes);
    ``received`` is how much of the answer's body came (None: not even its status line)."""
    cause: BaseException | None = exc  # httpx wraps httpcore, which wraps the ssl error
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):  # no retry can cure that: raise at once
        raise errors.UntrustedCertificateError(
            f"{request.action} failed: the TLS certificate of {urlsplit(redact_url(request.url)).netloc} is "
            f"not trusted ({cause.verify_message}; checked against {trust.source}); if the service uses a private "
            "CA, put its PEM file in the connection extra 'ca_bundle' (or REQUESTS_CA_BUNDLE)"
        ) from None
    # Not sent: no connection, or none free in the pool. httpx's messages never show URL or headers (no secrets).
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if sent and (deadline.expired() or isinstance(exc, TimeoutError)):  # TimeoutError: the async deadline
        if received is None:  # no answer began: like a read timeout, resent if that is safe
            failure = f"no answer within timeout={deadline.seconds:g}s"
            return AttemptResult(failure=failure, request_sent=True, timed_out=True)
        # The answer began but did not end in time: the server had the whole deadline, it is not asked again.
        failure = f"the answer was not complete within timeout={deadline.seconds:g}s ({received:,} bytes came)"
        return AttemptResult(failure=failure, request_sent=True, timed_out=True, over_deadline=True)
    timed_out = isinstance(exc, httpx.TimeoutException)
    return AttemptResult(failure=redact(f"{type(exc).__name__}: {exc}")[:200], request_sent=sent, timed_out=timed_out)


class Body:
    """An answer's bytes as they arrive: a success up to ``max_response_bytes``, an error only up to what a message
    quotes (:data:`ERROR_BODY_BYTES`); each chunk is checked against the attempt's deadline."""

    def __init__(self, response: httpx.Response, limit: int, deadline: Deadline) -> None:
        self.response, self.deadline = response, deadline
        self.limit = limit if 200 <= response.status_code < 300 else min(limit, ERROR_BODY_BYTES)
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; False once enough was read (stop reading)."""
        self.data += chunk
        if self.deadline.expired():
            raise httpx.ReadTimeout("the request's deadline has passed", request=self.response.request)
        if len(self.data) > self.limit:
            self.truncated = True
            return False
        return True

    def outcome(self) -> AttemptResult:
        """What the attempt produced."""
        response = self.response
        return AttemptResult(response.status_code, response.headers, bytes(self.data), truncated=self.truncated)


@dataclass(frozen=True)
class Answer:
    """The last step of :meth:`ClientBase.steps`: the parsed JSON of a successful answer."""

    value: Any


class ClientBase:
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
        self.gate, self.trust = BackoffGate(), trust_of(settings)
        if not self.trust.verify:
            log.warning("TLS certificate verification is OFF for this connection")
        proxy = settings.proxy.get_secret_value() if settings.proxy else None
        headers = {"User-Agent": "airflow-provider-prefs", **(headers or {})}
        #: Cleans whatever is quoted from a server: the credentials in our headers, the proxy's, the tokens'.
        self.redact = Redactor(
            [value for name, value in headers.items() if name.lower() in SECRET_HEADERS] + proxy_secrets(proxy),
            auth.secrets if auth is not None else None,
        )
        self.netrc: httpx.Auth | None = None
        with contextlib.suppress(OSError, NetrcParseError):  # none (the usual case) or unusable: ignored
            self.netrc = httpx.NetRCAuth(os.environ.get("NETRC"))  # default: ~/.netrc
        self.http = self.pool(
            headers=headers,
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            verify=self.trust.context(),
            limits=httpx.Limits(max_connections=settings.pool_size, max_keepalive_connections=settings.pool_size),
            proxy=proxy,  # the connection's own; None: HTTP(S)_PROXY, ALL_PROXY, NO_PROXY
        )
        self.builder = RequestBuilder(self.http)

    def fetch_token(self, creds: ClientCredentials) -> Any:
        """POST a client-credentials token request (safe to resend: it changes nothing); async: awaitable."""
        return self.send(
            ApiRequest(
                "POST",
                creds.token_url,
                f"token request for client id {creds.client_id!r}",
                form=creds.form(),
                authenticated=False,
                expects=TokenAnswer,
                url_setting="the token endpoint extra of the Airflow connection (ims_endpoint or oauth_endpoint)",
            )
        )

    def start_attempt(self, http: httpx.Request) -> Deadline:
        """The deadline of one attempt, with httpx's per-operation timeouts cut to it."""
        deadline = Deadline.start(self.settings.timeout)
        http.extensions["timeout"] = deadline.timeouts(self.settings.connect_timeout)
        return deadline

    def failed(self, exc: BaseException, request: ApiRequest, deadline: Deadline, body: Body | None) -> AttemptResult:
        """The outcome of an attempt that raised ``exc`` after ``body`` (if any) arrived."""
        received = len(body.data) if body is not None else None
        return failure_outcome(exc, request, deadline, self.trust, received, self.redact)

    def judge(self, request: ApiRequest, outcome: AttemptResult) -> Any:
        """The JSON of a 2xx answer, checked against what ``request`` expects."""
        if outcome.truncated:
            raise errors.ResponseTooLargeError(
                f"{request.action}: answer larger than max_response_bytes={self.settings.max_response_bytes}; "
                "raise the limit in the connection extras if this is expected"
            )
        if request.expects is None and not outcome.body.strip():
            return None
        expected = expected_of(request.expects) if request.expects is not None else "a JSON answer"
        headers = outcome.headers  # the response's own (case-insensitive) headers, or a plain mapping in tests
        content_type = (headers if isinstance(headers, httpx.Headers) else httpx.Headers(headers)).get(
            "Content-Type", ""
        )
        try:
            value = parse_json(outcome.body, content_type, expected, self.redact)
            if request.expects is not None:
                check_shape(request.expects, value, self.redact)
        except errors.UnexpectedAnswerError as exc:
            raise errors.UnexpectedAnswerError(f"{request.action}: HTTP {outcome.status} answer {exc}") from None
        return value

    def steps(self, request: ApiRequest) -> Generator[float | TokenProvider | httpx.Request | Answer, Any, None]:
        """The retry loop. Yields seconds to sleep, a token provider (send back the header), the request to
        send (send back its :class:`AttemptResult`), and at last the :class:`Answer`; or raises the error."""
        body = None  # encoded once, and refused before sending when over max_request_bytes
        if request.json_body is not None:
            body = encode_json(request.json_body, limit=self.settings.max_request_bytes, what=request.action)
        http = self.builder.build(
            request.method,
            request.url,
            params=request.params,
            content=body,
            content_type="application/json" if body is not None else None,
            form=request.form,
        )
        auth = self.auth if request.authenticated else None
        attempts, refreshed = Attempts(self.settings), False
        while True:
            while (paused := self.gate.remaining()) > 0:
                yield paused
            if auth is not None:
                http.headers["Authorization"] = yield auth
            outcome: AttemptResult = yield http
            attempts.count += 1
            can_refresh = auth is not None and auth.refreshable and not refreshed
            decision = decide(request, outcome, attempts, can_refresh=can_refresh, hints=self.hints, redact=self.redact)
            if decision.kind == "return":
                try:
                    value = self.judge(request, outcome)
                except (errors.UnexpectedAnswerError, errors.ResponseTooLargeError) as wrong:
                    if request.idempotent:
                        raise
                    # A patch answered with something unusable was processed, or not: a re-read decides.
                    raise OutcomeUnknownError(f"{wrong}; it may have been applied") from wrong
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


def proxy_secrets(proxy: str | None) -> list[str]:
    """The password of a proxy URL (as written and decoded), to redact wherever a server echoes it."""
    password = urlsplit(proxy).password if proxy else None
    return [password, unquote(password)] if password else []


class ApiClient(ClientBase):
    """Blocking client over one ``httpx.Client`` (thread-safe: bulk work shares its pool)."""

    pool = httpx.Client
    http: httpx.Client

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        install_deadlines(self.http)

    def close(self) -> None:
        """Close pooled connections."""
        self.http.close()

    def send(self, request: ApiRequest) -> Any:
        """Send with retries; return the parsed JSON answer or raise a :class:`PrefsError`."""
        steps, reply = self.steps(request), cast(Any, None)  # the header or AttemptResult the last step asked for
        while not isinstance(step := steps.send(reply), Answer):
            if isinstance(step, TokenProvider):
                reply = step.authorization(self.fetch_token)
            elif isinstance(step, httpx.Request):
                reply = self._attempt(request, step)
            else:
                time.sleep(step)
        return step.value

    def _attempt(self, request: ApiRequest, http: httpx.Request) -> AttemptResult:
        deadline, body = self.start_attempt(http), None
        # .netrc only where we send no token: it must never replace the bearer with Basic auth.
        netrc = None if "Authorization" in http.headers else self.netrc
        try:
            # Every socket operation of this thread ends by the deadline (see Deadlines above).
            with deadline.applied(), contextlib.closing(self.http.send(http, stream=True, auth=netrc)) as response:
                body = Body(response, self.settings.max_response_bytes, deadline)
                for chunk in response.iter_bytes():
                    if not body.add(chunk):
                        break
        except httpx.HTTPError as exc:
            return self.failed(exc, request, deadline, body)
        return body.outcome()


class AsyncApiClient(ClientBase):
    """Non-blocking twin of :class:`ApiClient` over one ``httpx.AsyncClient``, for triggers."""

    pool = httpx.AsyncClient
    http: httpx.AsyncClient

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self.http.aclose()

    async def send(self, request: ApiRequest) -> Any:
        """Send with the same retry loop as the sync client."""
        steps, reply = self.steps(request), cast(Any, None)  # the header or AttemptResult the last step asked for
        while not isinstance(step := steps.send(reply), Answer):
            if isinstance(step, TokenProvider):
                reply = await step.aauthorization(self.fetch_token)
            elif isinstance(step, httpx.Request):
                reply = await self._attempt(request, step)
            else:
                await asyncio.sleep(step)
        return step.value

    async def _attempt(self, request: ApiRequest, http: httpx.Request) -> AttemptResult:
        deadline, body = self.start_attempt(http), None
        netrc = None if "Authorization" in http.headers else self.netrc
        try:
            with anyio.fail_after(deadline.left()):  # cancels the whole exchange when the deadline passes
                async with contextlib.aclosing(await self.http.send(http, stream=True, auth=netrc)) as response:
                    body = Body(response, self.settings.max_response_bytes, deadline)
                    async for chunk in response.aiter_bytes():
                        if not body.add(chunk):
                            break
        except (httpx.HTTPError, TimeoutError) as exc:
            return self.failed(exc, request, deadline, body)
        return body.outcome()

"""Hostile servers and networks, through both clients (sync for tasks, async for triggers) and the token endpoints.

Each case runs one request against :class:`~hostile_server.HostileServer` and asserts the error class, a
message naming what to fix, a time bound, how many requests reached which server, and that no credential
(bearer and OAuth tokens, client secret, API key) appears in the exception, its chain, its attributes or any
log record. Nothing here relies on Airflow's secrets masker: the client redacts on its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from hostile_server import Behaviour, HostileServer, Reply, Seen, http_date
from pydantic import SecretStr

from airflow_provider_prefs import errors
from airflow_provider_prefs.models import OfferMetadata
from airflow_provider_prefs.transport.auth import ClientCredentials, TokenProvider
from airflow_provider_prefs.transport.client import ApiClient, ApiRequest, AsyncApiClient
from airflow_provider_prefs.transport.settings import TransportSettings

TOKEN = f"tok-{secrets.token_hex(16)}"
STATIC = f"static-{secrets.token_hex(16)}"
CLIENT_SECRET = f"secret/{secrets.token_hex(12)}+&="  # characters a form body or JSON encodes
API_KEY = f"apikey-{secrets.token_hex(12)}"
CREDENTIALS = (TOKEN, STATIC, CLIENT_SECRET, API_KEY)
MB = 1024 * 1024
TIMEOUT = 2.0
SETTINGS = TransportSettings(
    timeout=TIMEOUT,
    connect_timeout=1,
    max_attempts=2,
    backoff_base=0.01,
    backoff_max=0.05,
    max_response_bytes=MB,
)
OFFER = {"id": "offer-1", "etag": 1}


# Behaviours -------------------------------------------------------------------------------------------------------


def token_ok(seen: Seen, reply: Reply) -> None:
    reply.json(200, {"access_token": TOKEN, "token_type": "bearer", "expires_in": 3600})


def answer(status: int, value: Any, headers: dict[str, str] | None = None) -> Behaviour:
    return lambda seen, reply: reply.json(status, value, headers)


def page(status: int, text: str | bytes, content_type: str = "text/html") -> Behaviour:
    return lambda seen, reply: reply.send(status, text, {"Content-Type": content_type})


def redirect(status: int, location: str) -> Behaviour:
    return lambda seen, reply: reply.send(status, "", {"Location": location})


def echo_page(status: int) -> Behaviour:
    """A proxy's error page quoting the whole request (headers and form body)."""

    def behaviour(seen: Seen, reply: Reply) -> None:
        html = f"<html><head><title>{status} Bad Gateway</title></head><body><pre>{seen.echo()}</pre></body></html>"
        reply.send(status, html, {"Content-Type": "text/html"})

    return behaviour


def echo_json(status: int) -> Behaviour:
    """A JSON error that quotes the request, header values and form fields included."""

    def behaviour(seen: Seen, reply: Reply) -> None:
        reply.json(status, {"message": "upstream refused", "headers": seen.headers, "body": seen.body.decode()})

    return behaviour


def trickle(seen: Seen, reply: Reply) -> None:
    """Headers at once, then the body one byte every half second."""
    reply.head(200, {"Content-Type": "application/json"}, length=100)
    reply.trickle(b'{"id": "' + b"x" * 90 + b'"}', 0.5)


def header_trickle(seen: Seen, reply: Reply) -> None:
    """Even the status line and headers one byte at a time."""
    reply.trickle(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: " + b"a" * 100, 0.2)


def hang(seen: Seen, reply: Reply) -> None:
    reply.hang()


def endless(seen: Seen, reply: Reply) -> None:
    """A body without a length that never ends."""
    reply.head(200, {"Content-Type": "application/json"})
    reply.endless()


def reset_mid_answer(seen: Seen, reply: Reply) -> None:
    reply.head(200, {"Content-Type": "application/json"}, length=1000)
    reply.raw(b'{"id": "offer-1", "etag": ')
    time.sleep(0.05)
    reply.reset()


def unauthorized(seen: Seen, reply: Reply) -> None:
    """401, quoting the token it refused."""
    reply.json(401, {"error": "invalid_token", "seen": seen.headers.get("Authorization", "")})


# Cases ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One hostile behaviour and what the client must make of it."""

    name: str
    #: Behaviours by (method, path prefix); ``other`` is the URL of a second server, for cross-origin redirects.
    routes: Callable[[str], dict[tuple[str, str], Behaviour]]
    raises: type[errors.PrefsError]
    #: Fragments the message must contain (what happened, what to fix).
    says: tuple[str, ...]
    #: Requests that must have reached the server, by (method, path prefix).
    counts: dict[tuple[str, str], int]
    max_seconds: float
    method: str = "GET"
    auth: str = "static"  # or "oauth": a token from POST /token first
    #: The exception's __cause__ must be of this class (a patch's uncertain outcome keeps the answer's error).
    cause: type[BaseException] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


def api(behaviour: Behaviour, method: str = "GET") -> Callable[[str], dict[tuple[str, str], Behaviour]]:
    return lambda other: {("POST", "/token"): token_ok, (method, "/api"): behaviour}


CASES = [
    Case(
        "redirect to the same origin",
        api(redirect(307, "/moved/offer-1?access_token=" + TOKEN)),
        errors.RedirectError,
        ("HTTP 307", "redirected to http://127.0.0.1", "/moved/offer-1", "final URL"),
        {("GET", "/api"): 1, ("GET", "/moved"): 0},
        max_seconds=1.5,
    ),
    Case(
        "redirect to another origin",
        lambda other: {("GET", "/api"): redirect(302, f"{other}/elsewhere")},
        errors.RedirectError,
        ("HTTP 302", "/elsewhere", "not followed", "host of the Airflow connection"),
        {("GET", "/api"): 1},
        max_seconds=1.5,
    ),
    Case(
        "redirected PATCH: uncertain, for a re-read to judge",
        api(redirect(308, "https://moved.example/api/offer-1"), "PATCH"),
        errors.OutcomeUnknownError,
        ("HTTP 308", "https://moved.example/api/offer-1", "may have been applied"),
        {("PATCH", "/api"): 1},
        max_seconds=1.5,
        method="PATCH",
        cause=errors.RedirectError,
    ),
    Case(
        "redirected token endpoint",
        lambda other: {("POST", "/token"): redirect(301, f"{other}/ims/token/v3")},
        errors.RedirectError,
        ("HTTP 301", "/ims/token/v3", "token endpoint"),
        {("POST", "/token"): 1, ("GET", "/api"): 0},
        max_seconds=1.5,
        auth="oauth",
    ),
    Case(
        "Retry-After of an hour, in seconds",
        api(answer(429, {"message": "slow down"}, {"Retry-After": "3600"})),
        errors.RateLimitedError,
        ("HTTP 429", "3,600 s", "max_retry_after"),
        {("GET", "/api"): 1},
        max_seconds=1.5,
    ),
    Case(
        "Retry-After of an hour, as an HTTP date",
        api(lambda seen, reply: reply.json(503, {"message": "maintenance"}, {"Retry-After": http_date(3600)})),
        errors.ServerError,
        ("HTTP 503", "Retry-After", "max_retry_after"),
        {("GET", "/api"): 1},
        max_seconds=1.5,
    ),
    Case(
        "a trickled answer: cut at the deadline, not resent",
        api(trickle),
        errors.DeadlineExceededError,
        ("not complete within timeout=2s", "extra 'timeout'"),
        {("GET", "/api"): 1},
        max_seconds=TIMEOUT + 1,
    ),
    Case(
        "a trickled PATCH answer: uncertain",
        api(trickle, "PATCH"),
        errors.OutcomeUnknownError,
        ("not complete within timeout=2s", "may have been applied"),
        {("PATCH", "/api"): 1},
        max_seconds=TIMEOUT + 1,
        method="PATCH",
        cause=errors.DeadlineExceededError,
    ),
    Case(
        "trickled headers: each attempt cut at its deadline",
        api(header_trickle),
        errors.ApiConnectionError,
        ("no answer within timeout=2s", "gave up after 2 attempt(s)", "extra 'timeout'"),
        {("GET", "/api"): 2},
        max_seconds=2 * TIMEOUT + 1,
    ),
    Case(
        "no answer at all",
        api(hang),
        errors.ApiConnectionError,
        ("no answer within timeout=2s", "extra 'timeout'"),
        {("GET", "/api"): 2},
        max_seconds=2 * TIMEOUT + 1,
    ),
    Case(
        "a trickled token answer",
        lambda other: {("POST", "/token"): trickle},
        errors.DeadlineExceededError,
        ("token request", "not complete within timeout=2s"),
        {("POST", "/token"): 1, ("GET", "/api"): 0},
        max_seconds=TIMEOUT + 1,
        auth="oauth",
    ),
    Case(
        "an answer that never ends",
        api(endless),
        errors.ResponseTooLargeError,
        ("max_response_bytes=1048576",),
        {("GET", "/api"): 1},
        max_seconds=TIMEOUT + 1,
    ),
    Case(
        "an oversized success",
        api(page(200, b'{"id": "' + b"x" * 2 * MB + b'", "etag": 1}', "application/json")),
        errors.ResponseTooLargeError,
        ("answer larger than max_response_bytes",),
        {("GET", "/api"): 1},
        max_seconds=2,
    ),
    Case(
        "an oversized error page: quoted in part",
        api(page(500, "<html><body>" + "broken " * MB + "</body></html>")),
        errors.ServerError,
        ("HTTP 500", "broken broken"),
        {("GET", "/api"): 1},
        max_seconds=2,
    ),
    Case(
        "a reset mid-answer",
        api(reset_mid_answer),
        errors.ApiConnectionError,
        ("gave up after 2 attempt(s)", "dropped the connection"),
        {("GET", "/api"): 2},
        max_seconds=2,
    ),
    Case(
        "a reset mid-answer to a PATCH: uncertain",
        api(reset_mid_answer, "PATCH"),
        errors.OutcomeUnknownError,
        ("may have been applied",),
        {("PATCH", "/api"): 1},
        max_seconds=2,
        method="PATCH",
        cause=errors.ApiConnectionError,
    ),
    Case(
        "an error page echoing the request headers",
        api(echo_page(502)),
        errors.ServerError,
        ("HTTP 502", "Bad Gateway", "Bearer ***"),
        {("GET", "/api"): 2},
        max_seconds=2,
    ),
    Case(
        "a JSON error echoing the request headers, OAuth token",
        api(echo_json(400)),
        errors.BadRequestError,
        ("HTTP 400", "upstream refused"),
        {("POST", "/token"): 1, ("GET", "/api"): 1},
        max_seconds=2,
        auth="oauth",
    ),
    Case(
        "a token endpoint echoing the form, client secret included",
        lambda other: {("POST", "/token"): echo_json(502)},
        errors.ServerError,
        ("token request", "HTTP 502"),
        {("POST", "/token"): 2, ("GET", "/api"): 0},
        max_seconds=2,
        auth="oauth",
    ),
    Case(
        "an HTML page as a success",
        api(page(200, "<!doctype html><html><title>Maintenance</title><p>Back soon</p></html>")),
        errors.UnexpectedAnswerError,
        ("expected an offer", "got an HTML page", "Maintenance"),
        {("GET", "/api"): 1},
        max_seconds=1.5,
    ),
    Case(
        "an HTML page as a PATCH success: uncertain",
        api(page(200, "<html>Thanks!</html>"), "PATCH"),
        errors.OutcomeUnknownError,
        ("expected an offer", "got an HTML page", "may have been applied"),
        {("PATCH", "/api"): 1},
        max_seconds=1.5,
        method="PATCH",
        cause=errors.UnexpectedAnswerError,
    ),
    Case(
        "an empty success",
        api(page(200, "", "application/json")),
        errors.UnexpectedAnswerError,
        ("expected an offer", "got an empty body"),
        {("GET", "/api"): 1},
        max_seconds=1.5,
    ),
    Case(
        "a list where an object is due",
        api(answer(200, [OFFER])),
        errors.UnexpectedAnswerError,
        ("expected an offer", "got a JSON array of 1 item(s)"),
        {("GET", "/api"): 1},
        max_seconds=1.5,
    ),
    Case(
        "fields of the wrong type",
        api(answer(200, {"id": 5, "etag": "two"})),
        errors.UnexpectedAnswerError,
        ("expected an offer", "id: Input should be a valid string", "etag:", "(got 'two')"),
        {("GET", "/api"): 1},
        max_seconds=1.5,
    ),
    Case(
        "a token answer with expires_in 'soon'",
        lambda other: {("POST", "/token"): answer(200, {"access_token": TOKEN, "expires_in": "soon"})},
        errors.UnexpectedAnswerError,
        ("token request", "expected a token answer", "expires_in", "(got 'soon')"),
        {("POST", "/token"): 1, ("GET", "/api"): 0},
        max_seconds=1.5,
        auth="oauth",
    ),
    Case(
        "a token answer without a token",
        lambda other: {("POST", "/token"): answer(200, {"token_type": "bearer", "expires_in": 3600})},
        errors.UnexpectedAnswerError,
        ("expected a token answer", "access_token: Field required"),
        {("POST", "/token"): 1, ("GET", "/api"): 0},
        max_seconds=1.5,
        auth="oauth",
    ),
    Case(
        "a token endpoint answering HTML",
        lambda other: {("POST", "/token"): page(200, "<html><title>Sign in</title></html>")},
        errors.UnexpectedAnswerError,
        ("expected a token answer", "got an HTML page", "Sign in"),
        {("POST", "/token"): 1, ("GET", "/api"): 0},
        max_seconds=1.5,
        auth="oauth",
    ),
    Case(
        "401 forever: one new token, then the error",
        api(unauthorized),
        errors.AuthenticationError,
        ("HTTP 401", "invalid_token"),
        {("POST", "/token"): 2, ("GET", "/api"): 2},
        max_seconds=2,
        auth="oauth",
    ),
]


# Running a case through either client -----------------------------------------------------------------------------


def auth_for(kind: str, url: str) -> TokenProvider:
    if kind == "static":
        return TokenProvider(token=STATIC)
    credentials = ClientCredentials(
        token_url=f"{url}/token", client_id="client-id", client_secret=SecretStr(CLIENT_SECRET)
    )
    return TokenProvider(credentials)


def request_to(url: str, method: str) -> ApiRequest:
    body = [{"op": "replace", "path": "/name", "value": "n"}] if method == "PATCH" else None
    return ApiRequest(
        method,
        f"{url}/api/offers/offer-1",
        action=f"{method} offer 'offer-1'",
        json_body=body,
        idempotent=body is None,
        expects=OfferMetadata,
    )


def call(side: str, settings: TransportSettings, request: ApiRequest, auth: TokenProvider) -> Any:
    """Send ``request`` through a new client of ``side``; the answer, or the library error it raised."""
    headers = {"Accept": "application/json", "x-api-key": API_KEY}
    if side == "sync":
        client = ApiClient(settings, headers, auth)
        try:
            return client.send(request)
        except errors.PrefsError as exc:
            return exc
        finally:
            client.close()

    async def once() -> Any:
        client = AsyncApiClient(settings, headers, auth)
        try:
            return await client.send(request)
        except errors.PrefsError as exc:
            return exc
        finally:
            await client.aclose()

    return asyncio.run(once())


def texts_of(exc: BaseException, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Everything a user could see of a failure: the chain's texts and attributes, and every log record."""
    texts, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), *(repr(value) for value in vars(current).values())]
        current = current.__cause__ or current.__context__
    return texts + [record.getMessage() for record in caplog.records]


def assert_no_credential(exc: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    """No credential, as sent or in the encodings a server echoes it in (a form body, JSON)."""
    texts = texts_of(exc, caplog)
    forms = {
        (secret, form) for secret in CREDENTIALS for form in (secret, quote_plus(secret), json.dumps(secret)[1:-1])
    }
    leaked = sorted({secret[:10] for secret, form in forms if any(form in text for text in texts)})
    assert not leaked, f"credentials leaked: {leaked}"


@pytest.fixture
def servers() -> Iterator[tuple[HostileServer, HostileServer]]:
    """The hostile server (routes set per case) and a second origin that must never be reached."""
    other = HostileServer({})
    with other:
        yield HostileServer({}), other


SIDES = ["sync", "async"]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_server(
    case: Case, side: str, servers: tuple[HostileServer, HostileServer], caplog: pytest.LogCaptureFixture
) -> None:
    # Our records down to DEBUG, others from INFO (Airflow's default): httpcore's DEBUG trace prints raw answer
    # headers, a debugging aid no deployment runs with.
    caplog.set_level(logging.DEBUG, logger="airflow_provider_prefs")
    caplog.set_level(logging.INFO)
    server, other = servers
    server.routes = case.routes(other.url)
    with server:
        settings = SETTINGS.model_copy(update=case.overrides)
        started = time.monotonic()
        result = call(side, settings, request_to(server.url, case.method), auth_for(case.auth, server.url))
        seconds = time.monotonic() - started
    assert type(result) is case.raises, repr(result)
    message = str(result)
    for fragment in case.says:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    if case.cause is not None:
        assert isinstance(result.__cause__, case.cause), repr(result.__cause__)
    assert seconds <= case.max_seconds, f"took {seconds:.2f}s"
    assert {key: server.count(*key) for key in case.counts} == case.counts
    assert other.seen == []  # a redirect never takes anything (credentials least of all) to another origin
    assert len(message) < 2000
    assert_no_credential(result, caplog)


@pytest.mark.parametrize("side", SIDES)
def test_refused_connection(side: str, caplog: pytest.LogCaptureFixture) -> None:
    server = HostileServer({})  # bound, never listening for answers: closed at once
    url = server.url
    server._listener.close()
    started = time.monotonic()
    result = call(side, SETTINGS, request_to(url, "GET"), auth_for("static", url))
    assert type(result) is errors.ApiConnectionError, repr(result)
    assert "gave up after 2 attempt(s)" in str(result) and "host and port" in str(result)
    assert not result.request_sent
    assert time.monotonic() - started < 2
    assert_no_credential(result, caplog)


@pytest.mark.parametrize("side", SIDES)
def test_untrusted_certificate(side: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from airflow_provider_prefs.sandbox.tls import self_signed_cert

    cert, key = self_signed_cert(tmp_path)
    server = HostileServer({("GET", "/api"): answer(200, OFFER)}, tls=(Path(cert), Path(key)))
    with server:
        started = time.monotonic()
        result = call(side, SETTINGS, request_to(server.url, "GET"), auth_for("static", server.url))
        trusted = call(
            side, SETTINGS.model_copy(update={"ca_bundle": cert}), request_to(server.url, "GET"), auth_for("static", "")
        )
    assert type(result) is errors.UntrustedCertificateError, repr(result)
    assert "not trusted" in str(result) and "ca_bundle" in str(result) and "REQUESTS_CA_BUNDLE" in str(result)
    assert time.monotonic() - started < 3
    assert trusted == OFFER
    assert server.count() == 1  # only the trusted client's request got past the handshake
    assert_no_credential(result, caplog)


@pytest.mark.parametrize("side", SIDES)
def test_a_good_server_still_works(side: str, servers: tuple[HostileServer, HostileServer]) -> None:
    """The suite's own control: the same client, request and checks succeed against a server that behaves."""
    server, _ = servers
    server.routes = api(answer(200, OFFER))("")
    with server:
        assert call(side, SETTINGS, request_to(server.url, "GET"), auth_for("oauth", server.url)) == OFFER
    assert server.count("POST", "/token") == 1 and server.count("GET", "/api") == 1


# Through the hooks and the patch engine: a PATCH that got no usable answer is judged by a re-read -----------------

PROFILE = {"ProfileId": 1001, "UpdateStatus": "Complete", "IsActive": True, "DefaultLocale": "en-US"}
LOCALE = [{"op": "replace", "path": "/DefaultLocale", "value": "fr-FR"}]


def profile_hook(monkeypatch: pytest.MonkeyPatch, url: str) -> Any:
    from helpers import set_connection

    from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook

    conn_id = set_connection(
        monkeypatch, "hostile_profiles", url, base="mypreferences_default", extra={"max_attempts": 2, "timeout": 2}
    )
    return MyPreferencesHook(conn_id)


def test_redirected_patch_is_judged_by_a_re_read_and_never_applied_blindly(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's 307: once a raw pydantic ValidationError, now an uncertain outcome the engine re-reads."""
    server = HostileServer(
        {
            ("PATCH", "/api/v4/"): redirect(307, "https://moved.example/api/v4/x/profiles"),
            ("GET", "/api/v4/"): answer(200, PROFILE),
        }
    )
    with server, pytest.raises(errors.OutcomeUnknownError) as info:
        profile_hook(monkeypatch, server.url).change_profile("ada@example.com", "Email", patch=LOCALE)
    message = str(info.value)
    assert "HTTP 307" in message and "https://moved.example/api/v4/x/profiles" in message and "final URL" in message
    assert "Not applied at the last re-read" in message
    # Each PATCH was followed by a re-read; max_attempts=2 bounds the resends.
    assert (server.count("PATCH"), server.count("GET")) == (2, 2)


def test_moved_host_names_the_location_through_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    server = HostileServer(
        {("PATCH", "/api/v4/"): redirect(301, "/v5/profiles"), ("GET", "/api/v4/"): redirect(301, "/v5/profiles")}
    )
    with server, pytest.raises(errors.RedirectError) as info:
        profile_hook(monkeypatch, server.url).change_profile("ada@example.com", "Email", patch=LOCALE)
    assert info.value.location == f"{server.url}/v5/profiles" and "host of the Airflow connection" in str(info.value)
    assert (server.count("PATCH"), server.count("GET")) == (1, 1)


def test_malformed_patch_answer_then_a_re_read_showing_it_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    server = HostileServer(
        {
            ("PATCH", "/api/v4/"): answer(200, ["ok"]),
            ("GET", "/api/v4/"): answer(200, {**PROFILE, "DefaultLocale": "fr-FR"}),
        }
    )
    with server:
        result = profile_hook(monkeypatch, server.url).change_profile("ada@example.com", "Email", patch=LOCALE)
    assert (result.status, result.reconciled) == ("applied", True) and result.profile is not None
    assert (server.count("PATCH"), server.count("GET")) == (1, 1)


# Trust: the connection's ca_bundle, then REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, SSL_CERT_FILE / SSL_CERT_DIR ----------


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"])
@pytest.mark.parametrize("side", SIDES)
def test_ca_variables_trust_a_corporate_ca(
    variable: str, side: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_prefs.sandbox.tls import self_signed_cert

    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv(variable, cert)
    server = HostileServer({("GET", "/api"): answer(200, OFFER)}, tls=(Path(cert), Path(key)))
    with server:
        assert call(side, SETTINGS, request_to(server.url, "GET"), auth_for("static", "")) == OFFER


def test_trust_precedence(tmp_path: Path) -> None:
    from airflow_provider_prefs.transport.trust import trust_of

    every = {"REQUESTS_CA_BUNDLE": "r.pem", "CURL_CA_BUNDLE": "c.pem", "SSL_CERT_FILE": "s.pem", "SSL_CERT_DIR": "d"}
    order = [("extra 'ca_bundle'", "x.pem"), *every.items()]
    settings = TransportSettings(ca_bundle="x.pem")
    assert (trust_of(settings, every).source, trust_of(settings, every).path) == order[0]
    for i, (name, path) in enumerate(order[1:], start=1):
        environ = {key: value for key, value in every.items() if key in dict(order[i:])}
        environ |= {key: "" for key in every if key not in environ}  # empty counts as unset
        assert (trust_of(TransportSettings(), environ).source, trust_of(TransportSettings(), environ).path) == (
            name,
            path,
        )
    assert trust_of(TransportSettings(), {}).source == "certifi"
    assert not trust_of(TransportSettings(verify_tls=False, ca_bundle="x.pem"), every).verify


def test_a_missing_ca_file_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "gone.pem"))
    with pytest.raises(errors.ConfigurationError, match=r"REQUESTS_CA_BUNDLE names .*gone\.pem"):
        ApiClient(SETTINGS)

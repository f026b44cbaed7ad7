"""The retry rules and error parsing, which both clients share (pure functions, no server needed)."""

from __future__ import annotations

import email.utils
import time

import pytest

from airflow_provider_prefs.errors import (
    ApiConnectionError,
    BadRequestError,
    OutcomeUnknownError,
    RateLimitedError,
    vendor_message,
)
from airflow_provider_prefs.transport.client import ApiRequest, AttemptResult, decide
from airflow_provider_prefs.transport.retry import Attempts, BackoffGate, parse_retry_after
from airflow_provider_prefs.transport.settings import TransportSettings

GET = ApiRequest("GET", "https://x/offers/1", action="GET offer '1'")
PATCH = ApiRequest("PATCH", "https://x/offers/1", action="PATCH offer '1'", idempotent=False)
POLICY = TransportSettings(max_attempts=3, backoff_base=0.1, backoff_max=1, max_total_seconds=10)


def attempts(count: int = 1) -> Attempts:
    a = Attempts(POLICY)
    a.count = count
    return a


def test_adobe_error_code_shape() -> None:
    body = b'{"error_code": "1234-404", "message": "Offer not found"}'
    assert vendor_message(body) == "Offer not found [error_code 1234-404]"


def test_adobe_rfc7807_shape() -> None:
    body = b'{"type": "https://ns.adobe.com/aep/errors/x", "status": 403, "title": "Forbidden", "detail": "bad org"}'
    assert vendor_message(body) == "Forbidden: bad org"


def test_mypreferences_text_and_json_bodies() -> None:
    assert vendor_message(b"Profile   not\nfound") == "Profile not found"
    assert vendor_message(b'{"Message": "Authorization has been denied"}') == "Authorization has been denied"
    assert vendor_message(b"") == "(empty body)"
    assert vendor_message(b"x" * 1000).endswith("...")


@pytest.mark.parametrize("request_", [GET, PATCH])
def test_429_is_retried_for_every_request_and_pauses_everyone(request_: ApiRequest) -> None:
    decision = decide(request_, AttemptResult(status=429, headers={"Retry-After": "2"}), attempts(), can_refresh=False)
    assert decision.kind == "retry" and decision.delay == 2 and decision.pause_everyone


def test_429_past_budget_raises_rate_limited() -> None:
    decision = decide(GET, AttemptResult(status=429), attempts(3), can_refresh=False)
    assert decision.kind == "raise" and isinstance(decision.error, RateLimitedError)


def test_503_is_retried_for_reads_but_uncertain_for_patches() -> None:
    assert decide(GET, AttemptResult(status=503), attempts(), can_refresh=False).kind == "retry"
    decision = decide(PATCH, AttemptResult(status=503, body=b"down"), attempts(), can_refresh=False)
    assert decision.kind == "raise" and isinstance(decision.error, OutcomeUnknownError)
    assert "may have been applied" in str(decision.error)


def test_connect_failure_is_retried_even_for_patches() -> None:
    outcome = AttemptResult(failure="ConnectionError: connection refused", request_sent=False)
    assert decide(PATCH, outcome, attempts(), can_refresh=False).kind == "retry"
    final = decide(PATCH, outcome, attempts(3), can_refresh=False)
    assert isinstance(final.error, ApiConnectionError) and "3 attempt" in str(final.error)


def test_read_timeout_after_sending_a_patch_is_uncertain() -> None:
    outcome = AttemptResult(failure="ReadTimeout: read timed out", request_sent=True)
    assert decide(GET, outcome, attempts(), can_refresh=False).kind == "retry"
    assert isinstance(decide(PATCH, outcome, attempts(), can_refresh=False).error, OutcomeUnknownError)


def test_401_refreshes_only_when_allowed() -> None:
    assert decide(GET, AttemptResult(status=401), attempts(), can_refresh=True).kind == "refresh"
    assert decide(GET, AttemptResult(status=401), attempts(), can_refresh=False).kind == "raise"


def test_400_is_not_retried_and_reads_well() -> None:
    body = b'{"error_code": "x", "message": "path /etag is read-only"}'
    decision = decide(PATCH, AttemptResult(status=400, body=body), attempts(), can_refresh=False)
    assert isinstance(decision.error, BadRequestError)
    assert str(decision.error).startswith("PATCH offer '1' failed: HTTP 400 from PATCH https://x/offers/1")
    assert "path /etag is read-only" in str(decision.error)


def test_retry_after_longer_than_allowed_is_not_waited_for() -> None:
    decision = decide(GET, AttemptResult(status=429, headers={"Retry-After": "3600"}), attempts(), can_refresh=False)
    assert decision.kind == "raise"


def test_total_wait_is_bounded() -> None:
    policy = TransportSettings(max_attempts=10, max_total_seconds=3)
    a = Attempts(policy)
    a.count = 1
    assert a.next_delay(2.0) == 2.0
    assert a.next_delay(2.0) is None


def test_backoff_grows_exponentially_with_jitter() -> None:
    settings = TransportSettings(backoff_base=1, backoff_max=100, max_total_seconds=1000, max_attempts=20)
    for attempt in range(1, 6):
        delays = []
        for _ in range(200):
            budget = Attempts(settings)
            budget.count = attempt
            delays.append(budget.next_delay(None) or 0.0)
        assert max(delays) <= 2 ** (attempt - 1)
        assert len(set(delays)) > 100  # jittered


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("5") == 5
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (parse_retry_after(future) or 0) <= 31
    assert parse_retry_after("soon") is None


def test_backoff_gate_pause_extends_never_shortens() -> None:
    gate = BackoffGate()
    assert gate.remaining() == 0
    gate.pause(5)
    gate.pause(0.05)  # never shortens
    assert 4 <= gate.remaining() <= 5  # both clients wait while it is above 0 (test_transport_parity)


def test_redactor_removes_known_credentials_in_every_echoed_form_and_credential_shapes() -> None:
    import json
    from urllib.parse import quote_plus

    from airflow_provider_prefs.transport.redact import Redactor

    secret = 'se"cr/et+&=42'
    redact = Redactor([secret, "ab"], lambda: ["issued-token-1"])
    echoed = f"form client_id=x&client_secret={quote_plus(secret)} json {json.dumps({'s': secret})} raw {secret}"
    cleaned = redact(echoed + " Authorization: Bearer issued-token-1 x-api-key: k3y-unknown-to-us token=abcdef")
    assert secret not in cleaned and quote_plus(secret) not in cleaned and "issued-token-1" not in cleaned
    assert "k3y-unknown-to-us" not in cleaned and "abcdef" not in cleaned
    assert "Authorization: Bearer ***" in cleaned
    # Prose is left alone: too-short "secrets" and words that only look like names.
    assert redact("Authorization has been denied; token expired; grab it") == (
        "Authorization has been denied; token expired; grab it"
    )


def test_a_redirect_is_an_error_naming_the_absolute_location_never_a_success() -> None:
    from airflow_provider_prefs.errors import RedirectError

    outcome = AttemptResult(status=302, headers={"Location": "//user:pw@other.example/x?sig=abcdef123"})
    decision = decide(GET, outcome, attempts(), can_refresh=False)
    assert decision.kind == "raise" and isinstance(decision.error, RedirectError)
    assert decision.error.location == "https://other.example/x?sig=***"
    patch = decide(PATCH, outcome, attempts(), can_refresh=False)
    assert isinstance(patch.error, OutcomeUnknownError) and isinstance(patch.error.__cause__, RedirectError)

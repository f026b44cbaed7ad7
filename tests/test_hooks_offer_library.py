"""OfferLibraryHook against the sandbox over real HTTP: tokens, headers, encoding, errors, timeouts."""

from __future__ import annotations

import time
from typing import Any

import pytest
from helpers import routes, set_connection

from airflow_provider_prefs.errors import (
    ApiConnectionError,
    AuthenticationError,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook

ODD_ID = "odd/id with space?#%"


def test_get_offer_fetches_one_token_and_reuses_it(connections: Any) -> None:
    hook = OfferLibraryHook()
    first = hook.get_offer("fallbackOffer1234")
    second = hook.get_offer("fallbackOffer5678")
    assert first["id"] == "fallbackOffer1234" and second["id"] == "fallbackOffer5678"
    assert routes(connections) == ["ims.token", "offer.get", "offer.get"]


def test_token_is_renewed_after_expiry(connections: Any) -> None:
    connections.state.set_config(token_lifetime=1)
    hook = OfferLibraryHook()
    hook.get_offer("fallbackOffer1234")
    time.sleep(1.1)
    hook.get_offer("fallbackOffer1234")
    assert routes(connections) == ["ims.token", "offer.get", "ims.token", "offer.get"]
    assert [e["status"] for e in connections.state.journal()] == [200, 200, 200, 200]


def test_401_fetches_a_new_token_once_and_resends(connections: Any) -> None:
    hook = OfferLibraryHook()
    hook.get_offer("fallbackOffer1234")
    connections.state.reset()  # the server forgets every token it issued
    assert hook.get_offer("fallbackOffer1234")["id"] == "fallbackOffer1234"
    entries = connections.state.journal()
    assert [(e["route"], e["status"]) for e in entries] == [("offer.get", 401), ("ims.token", 200), ("offer.get", 200)]


def test_wrong_secret_is_one_clear_authentication_error(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(
        monkeypatch, "bad_secret", connections.url, base="adobe_offer_library_default", password="not-the-secret"
    )
    with pytest.raises(AuthenticationError) as info:
        OfferLibraryHook(conn_id).get_offer("fallbackOffer1234")
    message = str(info.value)
    assert "HTTP 401" in message and "token request" in message and "not-the-secret" not in message
    assert routes(connections) == ["ims.token"]


def test_every_call_sends_all_four_adobe_headers(connections: Any) -> None:
    hook = OfferLibraryHook()
    hook.get_offer("fallbackOffer1234")
    hook.change_offer("fallbackOffer1234", patch=[{"op": "replace", "path": "/name", "value": "Renamed"}])
    hook.list_offers(limit=1)
    calls = [e for e in connections.state.journal() if e["route"].startswith("offer.")]
    assert len(calls) == 3
    for entry in calls:
        headers = {k.lower(): v for k, v in entry["headers"].items()}
        assert headers["authorization"] == "***" and headers["x-api-key"] == "***"
        assert headers["x-gw-ims-org-id"] == "DEMO123@AdobeOrg"
        assert headers["x-sandbox-name"] == "dev"
        assert entry["status"] == 200


def test_missing_sandbox_name_fails_before_any_request(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(
        monkeypatch, "no_sandbox", connections.url, base="adobe_offer_library_default", drop_extra=("sandbox_name",)
    )
    with pytest.raises(ConfigurationError, match="sandbox_name"):
        OfferLibraryHook(conn_id).get_offer("fallbackOffer1234")
    assert connections.state.journal() == []


def test_missing_org_fails_before_any_request(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(
        monkeypatch, "no_org", connections.url, base="adobe_offer_library_default", drop_extra=("ims_org_id",)
    )
    with pytest.raises(ConfigurationError, match="ims_org_id"):
        OfferLibraryHook(conn_id).get_offer("fallbackOffer1234")
    assert connections.state.journal() == []


def test_unknown_connection_id_is_a_configuration_error(connections: Any) -> None:
    with pytest.raises(ConfigurationError, match="'does_not_exist' is not defined"):
        OfferLibraryHook("does_not_exist").get_offer("fallbackOffer1234")


def test_odd_ids_are_encoded_not_injected(connections: Any) -> None:
    offer = OfferLibraryHook().get_offer(ODD_ID)
    assert offer["id"] == ODD_ID
    entry = connections.state.journal()[-1]
    assert entry["raw_path"] == "/data/core/dps/offers/odd%2Fid%20with%20space%3F%23%25"
    assert entry["query"] == {"offer-type": "fallback"}


@pytest.mark.parametrize("bad_id", ["", "   ", None])
def test_empty_ids_are_rejected_before_sending(connections: Any, bad_id: Any) -> None:
    with pytest.raises(InvalidInputError, match="offer_id must be a non-empty string"):
        OfferLibraryHook().get_offer(bad_id)
    assert connections.state.journal() == []


def test_404_is_parsed_from_the_error_code_shape(connections: Any) -> None:
    with pytest.raises(NotFoundError) as info:
        OfferLibraryHook().get_offer("noSuchOffer")
    error = info.value
    assert error.status == 404 and "error_code" in str(error) and "noSuchOffer" in str(error)


def test_403_is_parsed_from_the_rfc7807_shape(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(
        monkeypatch,
        "wrong_org",
        connections.url,
        base="adobe_offer_library_default",
        extra={"ims_org_id": "OTHER@AdobeOrg"},
    )
    with pytest.raises(PermissionDeniedError) as info:
        OfferLibraryHook(conn_id).get_offer("fallbackOffer1234")
    error = info.value
    assert error.status == 403
    # RFC 7807 answers are shown as "title: detail", never as raw JSON.
    assert ": " in error.vendor_message and "{" not in error.vendor_message


def test_read_timeout_on_a_get_is_retried(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(
        monkeypatch, "short_timeout", connections.url, base="adobe_offer_library_default", extra={"timeout": 0.3}
    )
    hook = OfferLibraryHook(conn_id)
    hook.get_offer("fallbackOffer1234")  # token first, so the fault hits the GET
    connections.state.set_faults([{"route": "offer.get", "kind": "slow", "delay": 1.0, "count": 1}])
    started = time.monotonic()
    assert hook.get_offer("fallbackOffer1234")["id"] == "fallbackOffer1234"
    assert time.monotonic() - started < 0.9  # gave up on the slow answer instead of waiting for it
    time.sleep(1.0)  # the slow answer is journaled once the server finishes it
    gets = [e for e in connections.state.journal() if e["route"] == "offer.get"]
    assert len(gets) == 3 and [g["fault"] for g in gets].count("slow") == 1


def test_unreachable_host_is_a_connection_error(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn_id = set_connection(
        monkeypatch,
        "nowhere",
        f"http://127.0.0.1:{port}",
        base="adobe_offer_library_default",
        extra={"max_attempts": 2},
    )
    with pytest.raises(ApiConnectionError) as info:
        OfferLibraryHook(conn_id).get_offer("fallbackOffer1234")
    assert info.value.request_sent is False and "2 attempt" in str(info.value)


def test_test_connection_reports_success_and_failure(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = OfferLibraryHook().test_connection()
    assert ok and "sandbox dev" in message
    conn_id = set_connection(monkeypatch, "bad", connections.url, base="adobe_offer_library_default", password="nope")
    ok, message = OfferLibraryHook(conn_id).test_connection()
    assert not ok and "401" in message
    assert all(e["method"] in ("GET", "POST") for e in connections.state.journal())


def test_repr_holds_no_secret(connections: Any) -> None:
    hook = OfferLibraryHook()
    hook.get_offer("fallbackOffer1234")
    assert "demo-client-secret" not in repr(hook) and "demo-client-secret" not in repr(hook.settings)
    assert "demo-client-secret" not in repr(hook.client.auth)


def test_get_conn_is_the_client_every_call_of_the_hook_uses(connections: Any) -> None:
    from airflow_provider_prefs.transport.client import ApiClient, ApiRequest

    hook = OfferLibraryHook()
    client = hook.get_conn()
    assert isinstance(client, ApiClient)
    assert client is hook.client is hook.get_conn()
    # A call the hook has no method for, through the escape hatch: the Adobe headers and token come with it.
    page = client.send(
        ApiRequest(
            "GET",
            f"{hook.settings.base_url}/offers",
            action="list offers",
            params={"offer-type": "fallback", "limit": "1"},
        )
    )
    assert page["results"]
    hook.get_offer("fallbackOffer1234")
    # One token for both calls: the hook's own read went through the same client.
    assert routes(connections) == ["ims.token", "offer.list", "offer.get"]
    listed = connections.state.journal()[1]
    assert listed["headers"]["x-sandbox-name"] == hook.settings.sandbox_name
    assert listed["headers"]["x-gw-ims-org-id"] == hook.settings.ims_org_id

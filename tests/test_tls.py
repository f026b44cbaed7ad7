"""HTTPS end to end: verification stays on, ``ca_bundle`` trusts a private CA, bad certificates fail fast."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import routes, set_connection

from airflow_provider_prefs.errors import UntrustedCertificateError
from airflow_provider_prefs.hooks.mypreferences import MyPreferencesAsyncHook, MyPreferencesHook
from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook


@pytest.fixture(scope="module")
def tls_sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from airflow_provider_prefs.sandbox import SandboxServer
    from airflow_provider_prefs.sandbox.tls import self_signed_cert

    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    with SandboxServer(pending_delay=0.3, tls=(cert, key)) as server:
        yield server


@pytest.fixture
def tls_sandbox(tls_sandbox_server: Any) -> Iterator[Any]:
    tls_sandbox_server.state.reset()
    yield tls_sandbox_server
    tls_sandbox_server.state.reset()


def test_sandbox_serves_https(tls_sandbox: Any) -> None:
    assert tls_sandbox.url.startswith("https://127.0.0.1:")


def test_ca_bundle_trusts_the_private_certificate(tls_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"ca_bundle": tls_sandbox.verify}
    offers = set_connection(monkeypatch, "tls_offers", tls_sandbox.url, base="adobe_offer_library_default", extra=extra)
    profiles = set_connection(monkeypatch, "tls_profiles", tls_sandbox.url, base="mypreferences_default", extra=extra)

    hook = OfferLibraryHook(offers)
    hook.change_offer("fallbackOffer1234", patch=[{"op": "replace", "path": "/description", "value": "over TLS"}])
    assert hook.get_offer("fallbackOffer1234")["description"] == "over TLS"
    assert MyPreferencesHook(profiles).get_profile("ada@example.com", "Email")["UpdateStatus"] == "Complete"
    assert routes(tls_sandbox) == ["ims.token", "offer.patch", "offer.get", "profile.get"]


def test_untrusted_certificate_fails_at_once_with_the_fix(
    tls_sandbox: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    conn_id = set_connection(monkeypatch, "tls_untrusted", tls_sandbox.url, base="adobe_offer_library_default")
    caplog.set_level(logging.WARNING, logger="airflow_provider_prefs")
    with pytest.raises(UntrustedCertificateError) as info:
        OfferLibraryHook(conn_id).change_offer("fallbackOffer1234", patch=[{"op": "remove", "path": "/description"}])
    message = str(info.value)
    assert "127.0.0.1" in message and "ca_bundle" in message and "not trusted" in message
    assert not info.value.retryable
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]  # no retry can fix a certificate
    assert routes(tls_sandbox) == []  # nothing got past the handshake


def test_async_hook_uses_the_same_tls_settings(tls_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    trusted = set_connection(
        monkeypatch, "tls_async", tls_sandbox.url, base="mypreferences_default", extra={"ca_bundle": tls_sandbox.verify}
    )
    untrusted = set_connection(monkeypatch, "tls_async_untrusted", tls_sandbox.url, base="mypreferences_default")

    async def read(conn_id: str) -> dict[str, Any]:
        hook = MyPreferencesAsyncHook(conn_id)
        try:
            return await hook.get_profile("ADA@example.com", "email")
        finally:
            await hook.aclose()

    assert asyncio.run(read(trusted))["UpdateStatus"] == "Complete"
    with pytest.raises(UntrustedCertificateError, match="ca_bundle"):
        asyncio.run(read(untrusted))
    assert routes(tls_sandbox) == ["profile.get"]


def test_turning_verification_off_works_but_warns(
    tls_sandbox: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    conn_id = set_connection(
        monkeypatch, "tls_off", tls_sandbox.url, base="mypreferences_default", extra={"verify_tls": False}
    )
    caplog.set_level(logging.WARNING, logger="airflow_provider_prefs")
    assert MyPreferencesHook(conn_id).get_profile("ada@example.com", "Email")["UpdateStatus"] == "Complete"
    assert any("verification is OFF" in r.getMessage() for r in caplog.records)


def test_hooks_share_one_tls_context_per_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a CA store costs ~20 ms: a new client (one per task) reuses the process's; a replaced bundle does not."""
    import os

    import httpx

    from airflow_provider_prefs.sandbox.tls import self_signed_cert
    from airflow_provider_prefs.transport import client, trust
    from airflow_provider_prefs.transport.settings import TransportSettings

    made: list[object] = []
    original = httpx.create_ssl_context

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counted)
    trust.tls_context.cache_clear()
    cert, _ = self_signed_cert(tmp_path)
    for _ in range(3):
        client.ApiClient(TransportSettings()).close()
        client.ApiClient(TransportSettings(ca_bundle=cert)).close()
    assert len(made) == 2  # the system store once, the private CA once
    stat = os.stat(cert)
    os.utime(cert, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the bundle file was replaced
    client.ApiClient(TransportSettings(ca_bundle=cert)).close()
    assert len(made) == 3

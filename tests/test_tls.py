"""HTTPS end to end: verification stays on, ``ca_bundle`` trusts a private CA, bad certificates fail fast."""

from __future__ import annotations

import asyncio
import functools
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


@pytest.fixture
def fresh_trust(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The trust module with no CA variable set and its own cache of contexts (none loaded yet)."""
    from airflow_provider_prefs.transport import trust

    for name in trust.CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(trust, "tls_context", functools.lru_cache(maxsize=16)(trust.tls_context.__wrapped__))
    return trust


def test_hooks_share_one_tls_context_per_setting(
    fresh_trust: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading a CA store costs ~20 ms: a new client (one per task) reuses the process's; a replaced bundle does not."""
    import os

    from airflow_provider_prefs.sandbox.tls import self_signed_cert
    from airflow_provider_prefs.transport import client
    from airflow_provider_prefs.transport.settings import TransportSettings

    trust = fresh_trust
    made: list[object] = []
    original = trust.tls_context.__wrapped__

    @functools.lru_cache(maxsize=16)
    def counted(path: str | None, changed: int) -> Any:
        made.append(path)
        return original(path, changed)

    monkeypatch.setattr(trust, "tls_context", counted)
    cert, _ = self_signed_cert(tmp_path)
    contexts = set()
    for _ in range(3):
        for settings in (TransportSettings(), TransportSettings(ca_bundle=cert)):
            api = client.ApiClient(settings)
            contexts.add(id(api.trust.context()))
            api.close()
    assert made == [None, cert] and len(contexts) == 2  # the system store once, the private CA once
    stat = os.stat(cert)
    os.utime(cert, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the bundle file was replaced
    client.ApiClient(TransportSettings(ca_bundle=cert)).close()
    assert made == [None, cert, cert]


@pytest.mark.parametrize("store", ["certifi", "REQUESTS_CA_BUNDLE"])
def test_the_ca_store_loads_at_the_first_handshake_only(
    store: str, fresh_trust: Any, tls_sandbox: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task talking plain HTTP never pays for a CA bundle; the first HTTPS handshake loads all of it."""
    import ssl

    import certifi

    trust = fresh_trust
    if store != "certifi":
        monkeypatch.setenv(store, certifi.where())
    plain = set_connection(monkeypatch, "plain_http", sandbox.url, base="mypreferences_default")
    hook = MyPreferencesHook(plain)
    assert hook.get_profile("ada@example.com", "Email")["UpdateStatus"] == "Complete"
    context = hook.client.trust.context()
    assert isinstance(context, trust.DeferredTrustContext) and not context.loaded
    assert context.cert_store_stats()["x509_ca"] == 0  # nothing trusted until loaded: it fails closed
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname

    untrusted = set_connection(monkeypatch, "tls_default_store", tls_sandbox.url, base="mypreferences_default")
    with pytest.raises(UntrustedCertificateError):
        MyPreferencesHook(untrusted).get_profile("ada@example.com", "Email")
    assert context.loaded  # the same process-wide context, loaded by that handshake
    full = ssl.create_default_context(cafile=certifi.where()).cert_store_stats()["x509_ca"]
    assert full > 0 and context.cert_store_stats()["x509_ca"] == full


def test_the_async_client_loads_the_ca_store_at_its_first_handshake(
    fresh_trust: Any, tls_sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_prefs.transport import trust

    untrusted = set_connection(monkeypatch, "tls_async_default_store", tls_sandbox.url, base="mypreferences_default")

    async def read() -> trust.DeferredTrustContext:
        hook = MyPreferencesAsyncHook(untrusted)
        context = (await hook.get_async_conn()).trust.context()
        assert isinstance(context, trust.DeferredTrustContext) and not context.loaded
        try:
            with pytest.raises(UntrustedCertificateError):
                await hook.get_profile("ada@example.com", "Email")
        finally:
            await hook.aclose()
        return context

    assert asyncio.run(read()).cert_store_stats()["x509_ca"] > 0


def test_a_ca_file_that_does_not_parse_fails_the_first_https_request_with_the_fix(
    tls_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_prefs.errors import ConfigurationError

    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    conn_id = set_connection(
        monkeypatch, "tls_broken_ca", tls_sandbox.url, base="mypreferences_default", extra={"ca_bundle": str(broken)}
    )
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        MyPreferencesHook(conn_id).get_profile("ada@example.com", "Email")
    assert routes(tls_sandbox) == []

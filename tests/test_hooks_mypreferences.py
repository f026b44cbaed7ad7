"""MyPreferencesHook against the sandbox: bearer and OAuth auth, case-insensitive ids, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import routes, set_connection

from airflow_provider_prefs.errors import (
    AuthenticationError,
    ConcurrentModificationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    ResponseTooLargeError,
)
from airflow_provider_prefs.hooks.mypreferences import MyPreferencesAsyncHook, MyPreferencesHook


def test_bearer_token_reads_profile_case_insensitively(connections: Any) -> None:
    hook = MyPreferencesHook()
    exact = hook.get_profile("Ada@Example.com", "Email")
    shouted = hook.get_profile("ADA@EXAMPLE.COM", "email")
    assert exact["ProfileId"] == shouted["ProfileId"]
    assert exact["UpdateStatus"] == "Complete"
    assert routes(connections) == ["profile.get", "profile.get"]


def test_get_conn_is_the_client_every_call_of_the_hook_uses(connections: Any) -> None:
    from airflow_provider_prefs.transport.client import ApiClient

    hook = MyPreferencesHook("mypreferences_oauth")
    client = hook.get_conn()
    assert isinstance(client, ApiClient)
    assert client is hook.client is hook.get_conn()
    request = hook.settings.profile_request("GET", "Ada@Example.com", "Email")
    assert client.send(request)["UpdateStatus"] == "Complete"
    hook.get_profile("Ada@Example.com", "Email")
    # One OAuth token for both calls: the hook's own read went through the same client.
    assert routes(connections) == ["mp.token", "profile.get", "profile.get"]


def test_oauth_token_is_fetched_once_and_cached(connections: Any) -> None:
    hook = MyPreferencesHook("mypreferences_oauth")
    hook.get_profile("Ada@Example.com", "Email")
    hook.get_profile("Ada@Example.com", "Email")
    assert routes(connections) == ["mp.token", "profile.get", "profile.get"]


def test_oauth_401_refreshes_once(connections: Any) -> None:
    hook = MyPreferencesHook("mypreferences_oauth")
    hook.get_profile("Ada@Example.com", "Email")
    connections.state.reset()
    hook.get_profile("Ada@Example.com", "Email")
    assert [(e["route"], e["status"]) for e in connections.state.journal()] == [
        ("profile.get", 401),
        ("mp.token", 200),
        ("profile.get", 200),
    ]


def test_wrong_static_token_is_401_with_vendor_hint(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(
        monkeypatch, "mp_bad", connections.url, base="mypreferences_default", password="wrong-static-token-value"
    )
    with pytest.raises(AuthenticationError) as info:
        MyPreferencesHook(conn_id).get_profile("Ada@Example.com", "Email")
    assert "ClientId" in str(info.value) and "wrong-static-token-value" not in str(info.value)
    assert len(connections.state.journal()) == 1  # a static token cannot be refreshed: no resend


def test_token_of_another_client_is_403(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(
        monkeypatch, "mp_other", connections.url, base="mypreferences_default", extra={"client_id": "OTHER"}
    )
    with pytest.raises(PermissionDeniedError):
        MyPreferencesHook(conn_id).get_profile("Ada@Example.com", "Email")


def test_unknown_profile_and_client_are_404_with_text_bodies(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NotFoundError) as info:
        MyPreferencesHook().get_profile("nobody@example.com", "Email")
    assert "nobody@example.com" in str(info.value)
    conn_id = set_connection(
        monkeypatch, "mp_nowhere", connections.url, base="mypreferences_default", extra={"client_id": "NO-SUCH-CLIENT"}
    )
    with pytest.raises((NotFoundError, PermissionDeniedError)):
        MyPreferencesHook(conn_id).get_profile("Ada@Example.com", "Email")


def test_client_id_is_required(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(
        monkeypatch, "mp_noclient", connections.url, base="mypreferences_default", drop_extra=("client_id",)
    )
    with pytest.raises(ConfigurationError, match="client_id"):
        MyPreferencesHook(conn_id).get_profile("Ada@Example.com", "Email")
    assert connections.state.journal() == []


def test_oauth_needs_oauth_endpoint(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(
        monkeypatch, "mp_oauth_bad", connections.url, base="mypreferences_oauth", drop_extra=("oauth_endpoint",)
    )
    with pytest.raises(ConfigurationError, match="oauth_endpoint"):
        MyPreferencesHook(conn_id).get_profile("Ada@Example.com", "Email")


def test_alternate_ids_with_reserved_characters_are_encoded(connections: Any) -> None:
    with pytest.raises(NotFoundError):
        MyPreferencesHook().get_profile("a&alternateIdType=Phone#x", "Email")
    entry = connections.state.journal()[-1]
    assert entry["query"]["alternateId"] == "a&alternateIdType=Phone#x"
    assert entry["query"]["alternateIdType"] == "Email"


def test_test_connection(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = MyPreferencesHook().test_connection()
    assert ok and "DEMO" in message
    conn_id = set_connection(monkeypatch, "mp_bad2", connections.url, base="mypreferences_default", password="bad")
    ok, message = MyPreferencesHook(conn_id).test_connection()
    assert not ok and "401" in message


def test_async_hook_reads_the_same_profile(connections: Any) -> None:
    async def read() -> dict[str, Any]:
        hook = MyPreferencesAsyncHook("mypreferences_oauth")
        try:
            return await hook.get_profile("ada@example.com", "EMAIL")
        finally:
            await hook.aclose()

    profile = asyncio.run(read())
    assert profile["ProfileId"] == MyPreferencesHook().get_profile("Ada@Example.com", "Email")["ProfileId"]
    assert routes(connections)[:2] == ["mp.token", "profile.get"]


def test_async_hook_is_an_airflow_hook_of_the_same_connection_type() -> None:
    from airflow.sdk import BaseHook

    assert issubclass(MyPreferencesAsyncHook, BaseHook)
    for attr in ("conn_name_attr", "default_conn_name", "conn_type", "hook_name"):
        assert getattr(MyPreferencesAsyncHook, attr) == getattr(MyPreferencesHook, attr), attr
    hook = MyPreferencesAsyncHook()
    assert getattr(hook, hook.conn_name_attr) == "mypreferences_default"
    assert hook.log.name.endswith("MyPreferencesAsyncHook")  # BaseHook's logger
    assert getattr(MyPreferencesAsyncHook("mp_x"), MyPreferencesAsyncHook.conn_name_attr) == "mp_x"


def test_get_async_conn_is_the_client_get_profile_uses(connections: Any) -> None:
    from airflow_provider_prefs.transport.client import AsyncApiClient

    async def read() -> tuple[dict[str, Any], dict[str, Any]]:
        hook = MyPreferencesAsyncHook.shared("mypreferences_oauth")
        try:
            client = await hook.get_async_conn()
            assert isinstance(client, AsyncApiClient)
            assert await hook.get_async_conn() is client
            assert await MyPreferencesAsyncHook.shared("mypreferences_oauth").get_async_conn() is client
            settings = MyPreferencesHook("mypreferences_oauth").settings
            direct = dict(await client.send(settings.profile_request("GET", "Ada@Example.com", "Email")))
            return direct, await hook.get_profile("Ada@Example.com", "Email")
        finally:
            await hook.aclose()

    direct, profile = asyncio.run(read())
    assert direct["ProfileId"] == profile["ProfileId"]
    # One OAuth token for both reads: get_profile went through the client get_async_conn returned.
    assert routes(connections) == ["mp.token", "profile.get", "profile.get"]


def test_failing_test_op_is_a_409_that_applies_nothing(connections: Any) -> None:
    before = connections.state.profile("DEMO", "Ada@Example.com", "Email")
    patch = [
        {"op": "test", "path": "/CustomerType", "value": "Nope"},
        {"op": "replace", "path": "/DefaultLocale", "value": "fr-FR"},
    ]
    with pytest.raises(ConcurrentModificationError) as info:
        MyPreferencesHook().change_profile("Ada@Example.com", "Email", patch=patch)
    message = str(info.value)
    assert "test of /CustomerType" in message and "'Nope'" in message and "Nothing was applied" in message
    assert [(e["route"], e["status"]) for e in connections.state.journal()] == [
        ("profile.patch", 409),
        ("profile.get", 200),  # the re-read that names the broken guard
    ]
    assert connections.state.profile("DEMO", "Ada@Example.com", "Email") == before


def test_oversized_answers_fail_clearly_in_both_clients(connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_connection(
        monkeypatch, "mp_small", connections.url, base="mypreferences_default", extra={"max_response_bytes": 64}
    )
    with pytest.raises(ResponseTooLargeError, match="larger than max_response_bytes=64"):
        MyPreferencesHook(conn_id).get_profile("Ada@Example.com", "Email")

    async def read() -> dict[str, Any]:
        hook = MyPreferencesAsyncHook(conn_id)
        try:
            return await hook.get_profile("Ada@Example.com", "Email")
        finally:
            await hook.aclose()

    with pytest.raises(ResponseTooLargeError, match="larger than max_response_bytes=64"):
        asyncio.run(read())
    assert routes(connections) == ["profile.get", "profile.get"]  # refused answers are not retried

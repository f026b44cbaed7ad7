"""Both clients honour proxy variables, NO_PROXY and ~/.netrc, and read them once per client, not per request."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_prefs.transport.auth import TokenProvider
from airflow_provider_prefs.transport.client import ApiClient, ApiRequest, AsyncApiClient
from airflow_provider_prefs.transport.settings import TransportSettings

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class Recorder:
    """A loopback HTTP server that answers every request with JSON and remembers what it saw."""

    def __init__(self, name: str) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                recorder.seen.append((self.path, dict(self.headers)))
                body = json.dumps({"answered_by": name}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Recorder, Recorder]]:
    """A proxy and a direct target; a clean proxy environment and an empty HOME."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    proxy, target = Recorder("proxy"), Recorder("target")
    yield proxy, target
    proxy.close()
    target.close()


SETTINGS = TransportSettings(connect_timeout=5, timeout=10)


def client(auth: Any = None) -> ApiClient:
    return ApiClient(SETTINGS, {}, auth)


def send_async(request: ApiRequest, auth: Any = None) -> Any:
    async def once() -> Any:
        api = AsyncApiClient(SETTINGS, {}, auth)
        try:
            return await api.send(request)
        finally:
            await api.aclose()

    return asyncio.run(once())


#: One request through a new sync client, or through a new async client: both must read the environment alike.
SENDERS: dict[str, Callable[..., Any]] = {
    "sync": lambda request, auth=None: client(auth).send(request),
    "async": send_async,
}


def get(url: str) -> ApiRequest:
    return ApiRequest("GET", url, action="GET thing", authenticated=True)


@pytest.mark.parametrize("side", SENDERS)
def test_proxy_from_environment_is_used(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch, side: str
) -> None:
    proxy, _ = servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    # A name that only the proxy can answer for: nothing is resolved or contacted besides the proxy.
    assert SENDERS[side](get("http://api.example.test/thing")) == {"answered_by": "proxy"}
    assert [path for path, _ in proxy.seen] == ["http://api.example.test/thing"]


@pytest.mark.parametrize("side", SENDERS)
def test_no_proxy_goes_direct(servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch, side: str) -> None:
    proxy, target = servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert SENDERS[side](get(f"{target.url}/thing")) == {"answered_by": "target"}
    assert proxy.seen == [] and [path for path, _ in target.seen] == ["/thing"]


def write_netrc(home: Path) -> None:
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pass\n")
    netrc.chmod(0o600)


@pytest.mark.parametrize("side", SENDERS)
def test_netrc_credentials_apply_to_unauthenticated_requests(
    servers: tuple[Recorder, Recorder], tmp_path: Path, side: str
) -> None:
    _, target = servers
    write_netrc(tmp_path)
    SENDERS[side](get(f"{target.url}/thing"))
    expected = "Basic " + base64.b64encode(b"netrc-user:netrc-pass").decode()
    assert target.seen[0][1].get("Authorization") == expected


@pytest.mark.parametrize("side", SENDERS)
def test_netrc_never_replaces_the_bearer_token(servers: tuple[Recorder, Recorder], tmp_path: Path, side: str) -> None:
    _, target = servers
    write_netrc(tmp_path)
    SENDERS[side](get(f"{target.url}/thing"), TokenProvider(token="the-bearer"))
    assert target.seen[0][1].get("Authorization") == "Bearer the-bearer"


def counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    calls: list[int] = []
    original: Callable[..., Any] = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_environment_is_read_once_per_client(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import netrc

    import httpx._client

    proxy, target = servers
    write_netrc(tmp_path)
    proxy_lookups = counting(monkeypatch, httpx._client, "get_environment_proxies")
    netrc_reads = counting(monkeypatch, netrc, "netrc")
    api = client()
    for _ in range(20):
        api.send(get(f"{target.url}/thing"))
    api.send(get(f"{proxy.url}/other-origin"))
    assert len(target.seen) == 20 and len(proxy.seen) == 1
    assert all(headers.get("Authorization", "").startswith("Basic ") for _, headers in target.seen)  # .netrc applied
    assert len(proxy_lookups) == 1 and len(netrc_reads) == 1  # when the client was made, not per request


def send_with(settings: TransportSettings, side: str, request: ApiRequest) -> Any:
    if side == "sync":
        api = ApiClient(settings, {}, None)
        try:
            return api.send(request)
        finally:
            api.close()

    async def once() -> Any:
        api = AsyncApiClient(settings, {}, None)
        try:
            return await api.send(request)
        finally:
            await api.aclose()

    return asyncio.run(once())


@pytest.mark.parametrize("side", SENDERS)
def test_proxy_extra_is_per_connection_and_beats_the_environment(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch, side: str
) -> None:
    from pydantic import SecretStr

    proxy, target = servers
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the environment says direct; the connection says its proxy
    host, port = proxy.url.removeprefix("http://").split(":")
    through = SETTINGS.model_copy(update={"proxy": SecretStr(f"http://user:p%40ss-word@{host}:{port}")})
    assert send_with(through, side, get(f"{target.url}/thing")) == {"answered_by": "proxy"}
    assert send_with(SETTINGS, side, get(f"{target.url}/thing")) == {"answered_by": "target"}  # another connection
    assert [path for path, _ in proxy.seen] == [f"{target.url}/thing"] and len(target.seen) == 1
    expected = "Basic " + base64.b64encode(b"user:p@ss-word").decode()
    assert proxy.seen[0][1].get("Proxy-Authorization") == expected


def test_proxy_extra_is_checked_and_kept_secret() -> None:
    from airflow_provider_prefs.errors import ConfigurationError
    from airflow_provider_prefs.hooks.base import ConnectionExtras, parse_transport

    extras = ConnectionExtras("c", "mypreferences", {"client_id": "x", "proxy": "***"})
    with pytest.raises(ConfigurationError, match=r"extra 'proxy': .*saved its mask") as info:
        parse_transport(extras)
    assert "***" not in str(info.value).split("mask")[0]  # the value itself is never quoted
    settings = parse_transport(ConnectionExtras("c", "mypreferences", {"proxy": "http://u:hunter22@proxy:3128"}))
    assert "hunter22" not in repr(settings) and "hunter22" not in str(settings)

"""The sync client still honours proxy variables, NO_PROXY and ~/.netrc, but reads them once per origin."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_prefs.transport.auth import StaticToken
from airflow_provider_prefs.transport.client import ApiClient, ApiRequest, ClientSettings

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


def client(auth: Any = None) -> ApiClient:
    return ApiClient(ClientSettings(base_headers={}, connect_timeout=5, read_timeout=10), auth)


def get(url: str) -> ApiRequest:
    return ApiRequest("GET", url, action="GET thing", authenticated=True)


def test_proxy_from_environment_is_used(servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, _ = servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    # A name that only the proxy can answer for: nothing is resolved or contacted besides the proxy.
    assert client().send(get("http://api.example.test/thing")) == {"answered_by": "proxy"}
    assert [path for path, _ in proxy.seen] == ["http://api.example.test/thing"]


def test_no_proxy_goes_direct(servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, target = servers
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert client().send(get(f"{target.url}/thing")) == {"answered_by": "target"}
    assert proxy.seen == [] and [path for path, _ in target.seen] == ["/thing"]


def write_netrc(home: Path) -> None:
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pass\n")
    netrc.chmod(0o600)


def test_netrc_credentials_apply_to_unauthenticated_requests(
    servers: tuple[Recorder, Recorder], tmp_path: Path
) -> None:
    _, target = servers
    write_netrc(tmp_path)
    client().send(get(f"{target.url}/thing"))
    expected = "Basic " + base64.b64encode(b"netrc-user:netrc-pass").decode()
    assert target.seen[0][1].get("Authorization") == expected


def test_netrc_never_replaces_the_bearer_token(servers: tuple[Recorder, Recorder], tmp_path: Path) -> None:
    _, target = servers
    write_netrc(tmp_path)
    client(StaticToken("the-bearer")).send(get(f"{target.url}/thing"))
    assert target.seen[0][1].get("Authorization") == "Bearer the-bearer"


def counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    calls: list[int] = []
    original: Callable[..., Any] = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_environment_is_read_once_per_origin(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests.sessions

    proxy, target = servers
    proxy_lookups = counting(monkeypatch, requests.sessions, "get_environ_proxies")
    netrc_lookups = counting(monkeypatch, requests.sessions, "get_netrc_auth")
    api = client()
    for _ in range(20):
        api.send(get(f"{target.url}/thing"))
    api.send(get(f"{proxy.url}/other-origin"))
    assert len(target.seen) == 20
    assert len(proxy_lookups) == 2 and len(netrc_lookups) == 2  # one per origin, not one per request

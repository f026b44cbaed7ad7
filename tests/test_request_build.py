"""The transport's request builder makes exactly what httpx's ``build_request`` makes, or defers to it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from airflow_provider_prefs.transport.build import RequestBuilder, _with_query

HEADERS = {"User-Agent": "airflow-provider-prefs", "x-api-key": "key", "x-sandbox-name": "prod"}


def same(left: httpx.Request, right: httpx.Request) -> None:
    assert (left.method, str(left.url), left.url.raw_path) == (right.method, str(right.url), right.url.raw_path)
    assert (left.url, left.url.params, left.url.query) == (right.url, right.url.params, right.url.query)
    assert left.headers.multi_items() == right.headers.multi_items()
    assert left.read() == right.read()
    assert left.extensions == right.extensions


CASES: list[dict[str, Any]] = [
    {"method": "GET", "url": "http://127.0.0.1:8080/api/v1/profiles", "params": {"alternateId": "a@b.c"}},
    {
        "method": "PATCH",
        "url": "https://host.example/offers/x%2Fy",
        "params": {"offer-type": "fallback"},
        "content": b'[{"op":"replace","path":"/a","value":1}]',
        "content_type": "application/json",
    },
    {"method": "GET", "url": "https://host.example/p", "params": {"id": "Ada Lovelace+x&y=z/é", "t": "E mail"}},
    {"method": "GET", "url": "https://host.example:8443/p", "params": None},
    {"method": "GET", "url": "https://host.example/p", "params": {}},
    # Deferred to httpx: a form, a query of its own, user info, an IPv6 host, a non-ASCII host.
    {"method": "POST", "url": "https://ims.example/token", "params": None, "form": {"grant_type": "x"}},
    {"method": "GET", "url": "https://host.example/p?fixed=1", "params": {"a": "b"}},
    {"method": "GET", "url": "https://user:pw@host.example/p", "params": {"a": "b"}},
    {"method": "GET", "url": "http://[::1]:8080/p", "params": {"a": "b"}},
    {"method": "GET", "url": "https://bücher.example/p", "params": {"a": "b"}},
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case['method']} {case['url']}")
@pytest.mark.parametrize("client_class", [httpx.Client, httpx.AsyncClient])
def test_the_builder_makes_what_httpx_makes(case: dict[str, Any], client_class: type) -> None:
    client = client_class(headers=HEADERS, timeout=httpx.Timeout(7.0, connect=2.0))
    builder = RequestBuilder(client)
    content_type = case.get("content_type")
    for _ in range(2):  # the second time from the builder's caches
        built = builder.build(
            case["method"],
            case["url"],
            params=case["params"],
            content=case.get("content"),
            content_type=content_type,
            form=case.get("form"),
        )
        expected = client.build_request(
            case["method"],
            case["url"],
            params=case["params"],
            content=case.get("content"),
            data=case.get("form"),
            headers={"Content-Type": content_type} if content_type else None,
        )
        same(built, expected)
    # The first five are built by the builder itself (its point); the others by httpx.
    assert (builder._urls.get(case["url"]) is not None) == (CASES.index(case) < 5)


def test_a_request_sent_with_cookies_the_server_set_carries_them() -> None:
    client = httpx.Client(headers=HEADERS)
    builder = RequestBuilder(client)
    builder.build("GET", "https://host.example/p", params={"a": "b"}, content=None, content_type=None, form=None)
    client.cookies.set("AWSALB", "sticky", domain="host.example")
    built = builder.build(
        "GET", "https://host.example/p", params={"a": "b"}, content=None, content_type=None, form=None
    )
    assert built.headers["Cookie"] == "AWSALB=sticky"


def test_headers_set_on_one_request_do_not_leak_into_the_next() -> None:
    builder = RequestBuilder(httpx.Client(headers=HEADERS))
    first = builder.build("GET", "https://host.example/p", params=None, content=None, content_type=None, form=None)
    first.headers["Authorization"] = "Bearer secret-token"
    second = builder.build("GET", "https://host.example/p", params=None, content=None, content_type=None, form=None)
    assert "Authorization" not in second.headers


def test_a_url_without_httpx_parsed_form_gets_its_query_through_the_public_constructor() -> None:
    # What another httpx version that keeps its parsed URL differently would hand the builder.
    base = SimpleNamespace(scheme="https", host="host.example", port=8443, raw_path=b"/p")
    url = _with_query(base, "a=b%40c&d=e+f")  # type: ignore[arg-type]
    assert url == httpx.URL("https://host.example:8443/p?a=b%40c&d=e+f")
    assert url.params == httpx.QueryParams({"a": "b@c", "d": "e f"})

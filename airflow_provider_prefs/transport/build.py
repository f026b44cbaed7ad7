"""The ``httpx.Request`` for one attempt of an :class:`~.client.ApiRequest`, built cheaply.

What ``httpx.Client.build_request`` makes, for the requests this provider sends (an absolute URL,
query parameters, a JSON body), without parsing and re-validating the URL and merging the client's
headers on every call: httpx spends ~110 µs there per request, the largest single cost of a bulk
item on the sending core (measured in a 10,000-item task). The base URL is parsed once, the query
encoded as httpx encodes it, the client's headers merged once per content type. Anything else (a
form, cookies the server set, a URL with its own query, user info, a non-ASCII or IPv6 host) goes
through ``build_request`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

#: Base URLs parsed and kept per builder: the handful a hook talks to (profiles, offers, token endpoint).
MAX_CACHED_URLS = 64


class RequestBuilder:
    """Builds requests for one ``httpx.Client`` (whose headers and timeout must not change afterwards)."""

    def __init__(self, client: httpx.Client | httpx.AsyncClient) -> None:
        self._client = client
        self._urls: dict[str, httpx.URL | None] = {}
        self._headers: dict[str | None, httpx.Headers] = {}
        self._timeout = client.timeout.as_dict()

    def build(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        content: bytes | None,
        content_type: str | None,
        form: Mapping[str, str] | None,
    ) -> httpx.Request:
        """The request httpx's ``build_request`` would make."""
        base = self._base(url) if form is None and not self._client.cookies else None
        if base is None:
            headers = {"Content-Type": content_type} if content_type else None
            return self._client.build_request(method, url, params=params, content=content, data=form, headers=headers)
        if params:
            base = _with_query(base, str(httpx.QueryParams(params)))
        return httpx.Request(
            method, base, content=content, headers=self._merged(content_type), extensions={"timeout": self._timeout}
        )

    def _base(self, url: str) -> httpx.URL | None:
        if url in self._urls:
            return self._urls[url]
        parsed: httpx.URL | None = httpx.URL(url)
        if parsed is not None and (
            parsed.scheme not in ("http", "https")
            or parsed.query
            or parsed.fragment
            or parsed.userinfo
            or not parsed.host.isascii()
            or ":" in parsed.host
        ):
            parsed = None  # built by httpx itself every time
        if len(self._urls) < MAX_CACHED_URLS:
            self._urls[url] = parsed
        return parsed

    def _merged(self, content_type: str | None) -> httpx.Headers:
        headers = self._headers.get(content_type)
        if headers is None:
            headers = httpx.Headers(self._client.headers)
            if content_type:
                headers["Content-Type"] = content_type
            self._headers[content_type] = headers
        return headers


def _with_query(base: httpx.URL, query: str) -> httpx.URL:
    """``base`` (no query of its own) with ``query``, already encoded by ``httpx.QueryParams``.

    httpx's public constructor parses and validates every component again (~17 µs); the parsed base
    is kept instead and only its query replaced (~1 µs). Where httpx keeps its parsed form differently
    (another version), the public constructor is used.
    """
    reference = getattr(base, "_uri_reference", None)
    if reference is None or not hasattr(reference, "_replace"):
        return httpx.URL(
            scheme=base.scheme, host=base.host, port=base.port, raw_path=base.raw_path + b"?" + query.encode("ascii")
        )
    url = httpx.URL.__new__(httpx.URL)
    url._uri_reference = reference._replace(query=query)
    return url

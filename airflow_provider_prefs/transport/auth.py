"""Bearer tokens: a static token, or OAuth client credentials (Adobe IMS, MyPreferences) cached until expiry."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import mask_secret as _airflow_mask_secret
from pydantic import BaseModel, ConfigDict, SecretStr

from airflow_provider_prefs.errors import ConfigurationError

if TYPE_CHECKING:
    from airflow_provider_prefs.transport.token_cache import SharedTokenCache

#: Renew a cached token this many seconds before the server says it expires.
EXPIRY_SKEW_SECONDS = 60.0


def mask_secret(secret: Any, name: str | None = None) -> None:
    """Register a value with Airflow's secrets masker (not an empty one: no empty mask for the supervisor)."""
    if secret:
        _airflow_mask_secret(secret, name)


class ClientCredentials(BaseModel):
    """What an OAuth client-credentials token request needs."""

    model_config = ConfigDict(frozen=True)

    token_url: str
    client_id: str
    client_secret: SecretStr
    scope: str | None = None

    def form(self) -> dict[str, str]:
        """The form body of the token request."""
        secret = self.client_secret.get_secret_value()
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": secret}
        return form | {"scope": self.scope} if self.scope else form


class AccessToken(BaseModel):
    """A bearer token and the monotonic time after which it must not be used."""

    model_config = ConfigDict(frozen=True)

    value: SecretStr
    renew_at: float

    def is_fresh(self) -> bool:
        """True while the token can still be sent."""
        return time.monotonic() < self.renew_at


def parse_token_answer(data: Any) -> AccessToken:
    """Read ``{"access_token", "token_type", "expires_in"}`` into an :class:`AccessToken`."""
    if not isinstance(data, dict) or not data.get("access_token"):
        raise ConfigurationError("token endpoint answered without an access_token")
    token = str(data["access_token"])
    mask_secret(token)
    expires_in = float(data.get("expires_in") or 3600)
    # Short-lived tokens (sandbox tests) still get a useful share of their life.
    skew = min(EXPIRY_SKEW_SECONDS, expires_in / 4)
    return AccessToken(value=SecretStr(token), renew_at=time.monotonic() + expires_in - skew)


class TokenProvider:
    """Produces the ``Authorization`` header value (the token fetched by the client that asks, sync or async).

    One fetch at a time: threads wait on a lock and the shared cache's ``flock`` (tasks starting together make
    one request), coroutines on an asyncio lock of their event loop (never on ``flock``).
    """

    #: Whether a 401 can be cured by fetching a new token.
    refreshable = False
    credentials: ClientCredentials
    shared: SharedTokenCache | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._async_locks: MutableMapping[Any, asyncio.Lock] = weakref.WeakKeyDictionary()  # per event loop

    def authorization(self, fetch: Callable[[ClientCredentials], Any]) -> str:
        """The header value, fetching a token with ``fetch`` when none is at hand."""
        header = self.at_hand()
        if header is None:
            with self._lock, self.shared.fetch_lock(self.credentials) if self.shared else contextlib.nullcontext():
                header = self.at_hand() or self.keep(fetch(self.credentials))
        return header

    async def aauthorization(self, fetch: Callable[[ClientCredentials], Awaitable[Any]]) -> str:
        """Async twin of :meth:`authorization`."""
        header = self.at_hand()
        if header is None:
            async with self._async_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
                header = self.at_hand() or self.keep(await fetch(self.credentials))
        return header

    def at_hand(self) -> str | None:
        """The header value if a usable token is at hand (no request needed), else None."""
        raise NotImplementedError

    def keep(self, answer: Any) -> str:
        """Read a token answer, keep the token, and return the header value."""
        raise NotImplementedError

    def invalidate(self) -> None:
        """Forget the cached token (after a 401)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"


class StaticToken(TokenProvider):
    """A bearer token stored in the connection."""

    def __init__(self, token: str) -> None:
        super().__init__()
        mask_secret(token)
        self._header = f"Bearer {token}"

    def at_hand(self) -> str:
        """The stored token: never anything to fetch."""
        return self._header


class ClientCredentialsToken(TokenProvider):
    """OAuth client credentials: one cached token for all threads and coroutines, and with ``shared`` (a
    :class:`~airflow_provider_prefs.transport.token_cache.SharedTokenCache`) for the worker's other task processes.
    """

    refreshable = True

    def __init__(self, credentials: ClientCredentials, shared: SharedTokenCache | None = None) -> None:
        super().__init__()
        mask_secret(credentials.client_secret.get_secret_value())
        self.credentials, self.shared = credentials, shared
        self._token: AccessToken | None = None

    def at_hand(self) -> str | None:
        """The token in memory or, once that is stale, in the shared cache, while fresh."""
        token = self._token
        if (token is None or not token.is_fresh()) and self.shared is not None:
            token = self._token = self.shared.load(self.credentials)
            if token is not None:
                mask_secret(token.value.get_secret_value())
        return f"Bearer {token.value.get_secret_value()}" if token and token.is_fresh() else None

    def keep(self, answer: Any) -> str:
        """Keep the answer's token here and in the shared cache."""
        token = self._token = parse_token_answer(answer)
        if self.shared is not None:
            self.shared.store(self.credentials, token)
        return f"Bearer {token.value.get_secret_value()}"

    def invalidate(self) -> None:
        """Drop the cached token (here and in the shared cache) so the next call fetches a new one."""
        rejected, self._token = self._token, None
        if self.shared is not None:
            self.shared.discard(self.credentials, rejected)


@functools.lru_cache(maxsize=64)
def shared_token_provider(credentials: ClientCredentials, shared: SharedTokenCache | None) -> ClientCredentialsToken:
    """The provider of this process for ``credentials``: one token however many hooks use them (a token per
    hook would grow Airflow's secrets masker, which recompiles one pattern over every secret, per hook)."""
    return ClientCredentialsToken(credentials, shared)


#: Drop every shared provider (tests; or after credentials were rotated).
forget_shared_tokens = shared_token_provider.cache_clear

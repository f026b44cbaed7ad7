"""Bearer tokens: a static token, or OAuth client credentials (Adobe IMS, MyPreferences) cached until expiry."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
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
    """The ``Authorization`` header value: a static bearer ``token``, or with ``credentials`` an OAuth token cached
    until shortly before expiry, and with ``shared`` (a :class:`~.token_cache.SharedTokenCache`) also for the
    worker's other task processes.

    One fetch at a time: threads wait on a lock and the shared cache's ``flock`` (tasks starting together make
    one request), coroutines on an asyncio lock of their event loop (never on ``flock``).
    """

    def __init__(
        self,
        credentials: ClientCredentials | None = None,
        shared: SharedTokenCache | None = None,
        *,
        token: str | None = None,
    ) -> None:
        self.credentials, self.shared = credentials, shared
        #: Whether a 401 can be cured by fetching a new token.
        self.refreshable = credentials is not None
        mask_secret(credentials.client_secret.get_secret_value() if credentials else token)
        self._token = None if token is None else AccessToken(value=SecretStr(token), renew_at=math.inf)
        self._lock = threading.Lock()
        self._async_locks: MutableMapping[Any, asyncio.Lock] = weakref.WeakKeyDictionary()  # per event loop

    def authorization(self, fetch: Callable[[ClientCredentials], Any]) -> str:
        """The header value, fetching a token with ``fetch`` when none is at hand."""
        header = self.at_hand()
        if header is None:
            assert self.credentials is not None  # a static token is always at hand
            with self._lock, self.shared.fetch_lock(self.credentials) if self.shared else contextlib.nullcontext():
                header = self.at_hand() or self.keep(fetch(self.credentials))
        return header

    async def aauthorization(self, fetch: Callable[[ClientCredentials], Awaitable[Any]]) -> str:
        """Async twin of :meth:`authorization`."""
        header = self.at_hand()
        if header is None:
            assert self.credentials is not None
            async with self._async_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
                header = self.at_hand() or self.keep(await fetch(self.credentials))
        return header

    def at_hand(self) -> str | None:
        """The header value of the token in memory or, once that is stale, in the shared cache, while fresh."""
        token = self._token
        if (token is None or not token.is_fresh()) and self.shared is not None and self.credentials is not None:
            token = self._token = self.shared.load(self.credentials)
            if token is not None:
                mask_secret(token.value.get_secret_value())
        return f"Bearer {token.value.get_secret_value()}" if token and token.is_fresh() else None

    def keep(self, answer: Any) -> str:
        """Keep the token of a token answer, here and in the shared cache; its header value."""
        token = self._token = parse_token_answer(answer)
        if self.shared is not None and self.credentials is not None:
            self.shared.store(self.credentials, token)
        return f"Bearer {token.value.get_secret_value()}"

    def invalidate(self) -> None:
        """Drop the cached token (here and in the shared cache) after a 401, so the next call fetches a new one."""
        rejected, self._token = self._token, None
        if self.shared is not None and self.credentials is not None:
            self.shared.discard(self.credentials, rejected)


@functools.lru_cache(maxsize=64)
def shared_token_provider(credentials: ClientCredentials, shared: SharedTokenCache | None) -> TokenProvider:
    """The provider of this process for ``credentials``: one token however many hooks use them (a token per
    hook would grow Airflow's secrets masker, which recompiles one pattern over every secret, per hook)."""
    return TokenProvider(credentials, shared)


#: Drop every shared provider (tests; or after credentials were rotated).
forget_shared_tokens = shared_token_provider.cache_clear

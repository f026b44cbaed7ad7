"""Bearer tokens: a static token, or OAuth client credentials (Adobe IMS, MyPreferences) cached until expiry.

The client (sync or async) sends the token request; this module decides when one is needed and reads the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
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

    def seconds_left(self) -> float:
        """Seconds until the token must be renewed (negative once stale)."""
        return self.renew_at - time.monotonic()


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


FetchToken = Callable[[ClientCredentials], Any]
AsyncFetchToken = Callable[[ClientCredentials], Awaitable[Any]]


class TokenProvider:
    """Produces the ``Authorization`` header value; subclasses decide where the token comes from."""

    #: Whether a 401 can be cured by fetching a new token.
    refreshable = False

    def authorization(self, fetch: FetchToken) -> str:
        """The header value, fetching a token with ``fetch`` when needed."""
        raise NotImplementedError

    async def aauthorization(self, fetch: AsyncFetchToken) -> str:
        """Async twin of :meth:`authorization`."""
        raise NotImplementedError

    def invalidate(self) -> None:
        """Forget the cached token (after a 401)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"


class StaticToken(TokenProvider):
    """A bearer token stored in the connection."""

    def __init__(self, token: str) -> None:
        mask_secret(token)
        self._header = f"Bearer {token}"

    def authorization(self, fetch: FetchToken) -> str:
        """The stored token; nothing to fetch."""
        return self._header

    async def aauthorization(self, fetch: AsyncFetchToken) -> str:
        """The stored token; nothing to fetch."""
        return self._header


class ClientCredentialsToken(TokenProvider):
    """OAuth client credentials, one cached token shared by all threads and coroutines of a process.

    With ``shared`` (a :class:`~airflow_provider_prefs.transport.token_cache.SharedTokenCache`), the token is
    also shared with the other task processes of the worker instead of fetched once per process.
    One fetch at a time: threads wait on a lock (and, with ``shared``, on the entry's ``flock``, so tasks
    starting together make one request); coroutines on an asyncio lock of their loop, never on ``flock``.
    """

    refreshable = True

    def __init__(self, credentials: ClientCredentials, shared: SharedTokenCache | None = None) -> None:
        mask_secret(credentials.client_secret.get_secret_value())
        self.credentials = credentials
        self.shared = shared
        self._token: AccessToken | None = None
        self._lock = threading.Lock()
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def authorization(self, fetch: FetchToken) -> str:
        """A fresh token, fetched at most once at a time however many threads (and tasks) ask."""
        header = self._fresh()
        if header is None:
            shared_lock = self.shared.fetch_lock(self.credentials) if self.shared else contextlib.nullcontext()
            with self._lock, shared_lock:
                header = self._fresh() or self._keep(fetch(self.credentials))
        return header

    async def aauthorization(self, fetch: AsyncFetchToken) -> str:
        """A fresh token, fetched at most once at a time however many coroutines of this loop ask."""
        header = self._fresh()
        if header is None:
            lock = self._async_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
            async with lock:
                header = self._fresh() or self._keep(await fetch(self.credentials))
        return header

    def _fresh(self) -> str | None:
        """The header of the token in memory or, once that is stale, in the shared cache; None if neither."""
        token = self._token
        if (token is None or not token.is_fresh()) and self.shared is not None:
            token = self._token = self.shared.load(self.credentials)
            if token is not None:
                mask_secret(token.value.get_secret_value())
        return f"Bearer {token.value.get_secret_value()}" if token and token.is_fresh() else None

    def _keep(self, answer: Any) -> str:
        """Read a token answer, keep the token here and in the shared cache; its header."""
        token = self._token = parse_token_answer(answer)
        if self.shared is not None:
            self.shared.store(self.credentials, token)
        return f"Bearer {token.value.get_secret_value()}"

    def invalidate(self) -> None:
        """Drop the cached token (here and in the shared cache) so the next call fetches a new one."""
        rejected, self._token = self._token, None
        if self.shared is not None:
            self.shared.discard(self.credentials, rejected)


#: One provider per credentials per process, however many hooks: each new provider's token would go to
#: Airflow's secrets masker, which recompiles one pattern over every secret so far (slower per hook).
MAX_SHARED_PROVIDERS = 64
_shared: OrderedDict[ClientCredentials, ClientCredentialsToken] = OrderedDict()
_shared_lock = threading.Lock()


def shared_token_provider(provider: TokenProvider) -> TokenProvider:
    """The process-wide provider for ``provider``'s credentials (static tokens pass through)."""
    if not isinstance(provider, ClientCredentialsToken):
        return provider
    with _shared_lock:
        provider = _shared.setdefault(provider.credentials, provider)
        _shared.move_to_end(provider.credentials)
        if len(_shared) > MAX_SHARED_PROVIDERS:
            _shared.popitem(last=False)
    return provider


def forget_shared_tokens() -> None:
    """Drop every shared provider (tests; or after credentials were rotated)."""
    with _shared_lock:
        _shared.clear()

"""Bearer tokens: a static token, or OAuth client credentials cached until shortly before expiry.

Adobe IMS and MyPreferences both use the client-credentials grant, so one class serves both.
The token request itself is done by whichever client (sync or async) asks for it; this module only
decides *when* a token is needed and how to read the answer, so the two never drift apart.
"""

from __future__ import annotations

import asyncio
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
    """Register a value with Airflow's secrets masker; empty values (no password set) are skipped,
    so no empty mask is sent to the task supervisor."""
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
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret.get_secret_value(),
        }
        if self.scope:
            form["scope"] = self.scope
        return form


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
    """OAuth client credentials, one cached token shared by all threads of a hook.

    With ``shared`` (a :class:`~airflow_provider_prefs.transport.token_cache.SharedTokenCache`), the token is
    also shared with the other task processes of the worker instead of fetched once per process.
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
        """A fresh token, fetched at most once at a time however many threads ask."""
        token = self._token
        if token is None or not token.is_fresh():
            with self._lock:
                token = self._token
                if token is None or not token.is_fresh():
                    token = self._token = self._obtain(fetch)
        return f"Bearer {token.value.get_secret_value()}"

    async def aauthorization(self, fetch: AsyncFetchToken) -> str:
        """A fresh token, fetched at most once at a time however many coroutines ask.

        The event loop runs one coroutine at a time, but each awaits the token request: without
        the lock, every wait that finds the cache empty would start a request of its own.
        """
        token = self._token
        if token is None or not token.is_fresh():
            async with self._async_lock():
                token = self._token
                if token is None or not token.is_fresh():
                    token = self._token = await self._aobtain(fetch)
        return f"Bearer {token.value.get_secret_value()}"

    def _async_lock(self) -> asyncio.Lock:
        """The lock of the running event loop (an asyncio lock must not cross loops)."""
        loop = asyncio.get_running_loop()
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks[loop] = asyncio.Lock()
        return lock

    def invalidate(self) -> None:
        """Drop the cached token (here and in the shared cache) so the next call fetches a new one."""
        rejected, self._token = self._token, None
        if self.shared is not None:
            self.shared.discard(self.credentials, rejected)

    def _obtain(self, fetch: FetchToken) -> AccessToken:
        """The shared token if fresh, else fetched (one process at a time) and shared."""
        shared = self.shared
        if shared is None:
            return parse_token_answer(fetch(self.credentials))
        token = shared.load(self.credentials)
        if token is None:
            with shared.fetch_lock(self.credentials):
                token = shared.load(self.credentials)  # another process may have fetched meanwhile
                if token is None:
                    token = parse_token_answer(fetch(self.credentials))
                    shared.store(self.credentials, token)
                    return token
        mask_secret(token.value.get_secret_value())
        return token

    async def _aobtain(self, fetch: AsyncFetchToken) -> AccessToken:
        """Async twin of :meth:`_obtain`, without the cross-process lock (it would block the loop)."""
        shared = self.shared
        token = shared.load(self.credentials) if shared is not None else None
        if token is not None:
            mask_secret(token.value.get_secret_value())
            return token
        token = parse_token_answer(await fetch(self.credentials))
        if shared is not None:
            shared.store(self.credentials, token)
        return token


#: Client-credentials providers shared by every hook of this process with the same credentials.
#: Without sharing, each new hook fetched its own token and registered it with Airflow's secrets
#: masker, which recompiles one pattern over every secret ever registered: after 600 hooks in one
#: process most of a call was ``re.compile``. Shared, a process holds one live token per credential
#: (renewed near expiry), so the masker grows with credentials and time, not with hooks.
MAX_SHARED_PROVIDERS = 64
_shared: OrderedDict[ClientCredentials, ClientCredentialsToken] = OrderedDict()
_shared_lock = threading.Lock()


def shared_token_provider(provider: TokenProvider) -> TokenProvider:
    """The process-wide provider for ``provider``'s credentials (static tokens pass through)."""
    if not isinstance(provider, ClientCredentialsToken):
        return provider
    with _shared_lock:
        existing = _shared.get(provider.credentials)
        if existing is not None:
            _shared.move_to_end(provider.credentials)
            return existing
        _shared[provider.credentials] = provider
        while len(_shared) > MAX_SHARED_PROVIDERS:
            _shared.popitem(last=False)
        return provider


def forget_shared_tokens() -> None:
    """Drop every shared provider (tests; or after credentials were rotated)."""
    with _shared_lock:
        _shared.clear()

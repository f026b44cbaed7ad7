"""Bearer tokens: a static token, or OAuth client credentials (Adobe IMS, MyPreferences) cached until expiry."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import mask_secret as _airflow_mask_secret
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from airflow_provider_prefs.transport.answers import check_shape
from airflow_provider_prefs.transport.redact import Redactor

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


#: Lifetime assumed when a token answer gives none (RFC 6749 makes ``expires_in`` optional).
DEFAULT_TOKEN_SECONDS = 3600.0


class TokenAnswer(BaseModel):
    """What a client-credentials token endpoint must answer (RFC 6749 section 5.1)."""

    EXPECTED: ClassVar[str] = (
        "a token answer: a JSON object with a non-empty string access_token and, if given, expires_in as "
        "seconds greater than 0 and token_type bearer"
    )
    #: Never quoted in a message, whatever else is wrong with the answer.
    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"access_token", "refresh_token", "id_token"})
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    access_token: str = Field(min_length=1, strict=True)
    expires_in: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    token_type: str | None = None

    @field_validator("token_type")
    @classmethod
    def _bearer(cls, value: str | None) -> str | None:
        if value is not None and value.lower() != "bearer":
            raise ValueError("only bearer tokens can be sent")
        return value


def parse_token_answer(data: Any) -> AccessToken:
    """Read ``{"access_token", "token_type", "expires_in"}`` into an :class:`AccessToken`; an
    :class:`~airflow_provider_prefs.errors.UnexpectedAnswerError` when it is not a usable token answer."""
    token = data.get("access_token") if isinstance(data, dict) else None
    if isinstance(token, str):
        mask_secret(token)  # before anything could quote it
    check_shape(TokenAnswer, data, Redactor([token if isinstance(token, str) else None]))
    answer = TokenAnswer.model_validate(data)
    token = answer.access_token
    expires_in = answer.expires_in or DEFAULT_TOKEN_SECONDS
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
        #: The last tokens handed out, for redaction: a server may echo one in an error page even after a refresh.
        self._issued: collections.deque[str] = collections.deque(maxlen=8)
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

    def secrets(self) -> Iterator[str]:
        """Every credential this provider holds or has handed out (to redact them from quoted server text)."""
        if self.credentials is not None:
            yield self.credentials.client_secret.get_secret_value()
        token = self._token
        if token is not None:
            yield token.value.get_secret_value()
        yield from list(self._issued)

    def at_hand(self) -> str | None:
        """The header value of the token in memory or, once that is stale, in the shared cache, while fresh."""
        token = self._token
        if (token is None or not token.is_fresh()) and self.shared is not None and self.credentials is not None:
            token = self._token = self.shared.load(self.credentials)
            if token is not None:
                mask_secret(token.value.get_secret_value())
        if token is None or not token.is_fresh():
            return None
        return self._issue(token)

    def keep(self, answer: Any) -> str:
        """Keep the token of a token answer, here and in the shared cache; its header value."""
        token = self._token = parse_token_answer(answer)
        if self.shared is not None and self.credentials is not None:
            self.shared.store(self.credentials, token)
        return self._issue(token)

    def _issue(self, token: AccessToken) -> str:
        value = token.value.get_secret_value()
        if value not in self._issued:
            self._issued.append(value)
        return f"Bearer {value}"

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

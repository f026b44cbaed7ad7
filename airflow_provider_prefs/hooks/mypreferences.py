"""Hooks for PossibleNOW MyPreferences profiles, found by alternate id (sync for workers, async for triggers)."""

from __future__ import annotations

import asyncio
import json
import uuid
import weakref
from collections.abc import Iterable, Mapping
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote

from airflow.sdk import BaseHook
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from airflow_provider_prefs.assets import profiles_asset_uri
from airflow_provider_prefs.errors import ConfigurationError, NotFoundError, PrefsError, quoted, shorten
from airflow_provider_prefs.hooks.base import (
    ChangeOptions,
    ConnectionExtras,
    PrefsApiHook,
    ResourceDescription,
    aload_connection,
    base_url_of,
    check_url,
    client_credentials_token,
    parse_model,
    parse_transport,
    require_id,
)
from airflow_provider_prefs.models import ChangeOutcome, ProfileSummary, profile_summary
from airflow_provider_prefs.patching.rules import PROFILE_RULES, Patch
from airflow_provider_prefs.provider_info import (
    DEFAULT_PROFILE_PATH,
    MYPREFERENCES_CONN_TYPE,
    MYPREFERENCES_PRODUCTION_URL,
    MYPREFERENCES_STAGING_URL,
)
from airflow_provider_prefs.transport.auth import TokenProvider
from airflow_provider_prefs.transport.client import ApiRequest, AsyncApiClient

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from airflow_provider_prefs.bulk.runner import BulkOptions
    from airflow_provider_prefs.models import BulkReport
    from airflow_provider_prefs.patching.changes import Resource

#: What a positional bulk item looks like (quoted in the error for any other shape).
PROFILE_ITEM_SHAPE = (
    "a dict with alternate_id and patch or desired, an (alternate_id, patch) pair "
    "or an (alternate_id, alternate_id_type, patch) triple"
)

ENVIRONMENT_URLS = {"production": MYPREFERENCES_PRODUCTION_URL, "staging": MYPREFERENCES_STAGING_URL}


def environment_url(extras: ConnectionExtras) -> str:
    """The base URL of the ``environment`` extra; a typo is an error, never a silent production."""
    environment = extras.get("environment", "production")
    url = ENVIRONMENT_URLS.get(environment.strip().lower()) if isinstance(environment, str) else None
    if url is None:
        raise ConfigurationError(
            f"Airflow connection {extras.conn_id!r} ({MYPREFERENCES_CONN_TYPE}): {extras.where('environment')} "
            f"is {str(environment)[:60]!r}; valid environments: {', '.join(ENVIRONMENT_URLS)} "
            "(or set the Host field to the full base URL)"
        )
    return url


@lru_cache(maxsize=64)
def _profiles_url(base_url: str, profile_path: str, client_id: str) -> str:
    # Once per account, not per profile: a bulk run addresses thousands of profiles of one account.
    path = profile_path.format(client_id=quote(client_id, safe=""))
    return f"{base_url}/{path.lstrip('/')}"


class MyPreferencesSettings(BaseModel):
    """Everything the MyPreferences hooks read from their Airflow connection."""

    model_config = ConfigDict(frozen=True)

    base_url: str
    client_id: str = Field(min_length=1, description="MyPreferences account (client) id, a path parameter")
    profile_path: str = DEFAULT_PROFILE_PATH
    auth_type: Literal["bearer", "oauth"] = "bearer"
    token: SecretStr | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: SecretStr | None = None
    oauth_endpoint: str | None = None
    oauth_scope: str | None = None

    #: Where each non-extra field is set in the Airflow connection, for error messages.
    SOURCES: ClassVar[dict[str, str]] = {
        "base_url": "host (Base URL)",
        "token": "password (bearer token)",
        "oauth_client_id": "login (OAuth client id)",
        "oauth_client_secret": "password (OAuth client secret)",
    }

    @field_validator("base_url", "oauth_endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @model_validator(mode="after")
    def _auth_complete(self) -> MyPreferencesSettings:
        if self.auth_type == "bearer" and not (self.token and self.token.get_secret_value()):
            raise ValueError("auth_type 'bearer' needs the token in the password field")
        if self.auth_type == "oauth":
            missing = [
                name
                for name, value in (
                    ("login (OAuth client id)", self.oauth_client_id),
                    ("password (OAuth client secret)", self.oauth_client_secret),
                    ("extra 'oauth_endpoint' (token endpoint URL)", self.oauth_endpoint),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"auth_type 'oauth' needs {', '.join(missing)}")
        if "{client_id}" not in self.profile_path:
            raise ValueError("extra 'profile_path' must contain {client_id}")
        return self

    @classmethod
    def from_connection(cls, conn: Any, extras: ConnectionExtras) -> MyPreferencesSettings:
        """Parse an Airflow connection of type ``mypreferences`` (extras already checked)."""
        conn_id = extras.conn_id
        auth_type = extras.get("auth_type") or ("oauth" if extras.get("oauth_endpoint") and conn.login else "bearer")
        data: dict[str, Any] = {
            "base_url": base_url_of(conn.host, conn.port, environment_url(extras)),
            "client_id": extras.get("client_id", ""),
            "profile_path": extras.get("profile_path", DEFAULT_PROFILE_PATH),
            "auth_type": auth_type.lower() if isinstance(auth_type, str) else auth_type,
            "oauth_endpoint": extras.get("oauth_endpoint"),
        }
        if data["auth_type"] == "oauth":
            data |= {
                "oauth_client_id": conn.login,
                "oauth_client_secret": conn.password,
                "oauth_scope": extras.get("oauth_scope") or f"{data['client_id']}/{conn.login}",
            }
        else:
            data["token"] = conn.password
        names = extras.names(("client_id", "profile_path", "auth_type", "oauth_endpoint", "oauth_scope"), **cls.SOURCES)
        what = f"Airflow connection {conn_id!r} ({MYPREFERENCES_CONN_TYPE})"
        return parse_model(cls, data, what, names=names)

    def token_provider(self, *, share: bool = True) -> TokenProvider:
        """A static bearer token, or OAuth client credentials cached until expiry.

        ``share`` puts OAuth tokens in the worker-wide :mod:`~airflow_provider_prefs.transport.token_cache`.
        """
        if self.auth_type == "oauth":
            assert self.oauth_client_id and self.oauth_client_secret and self.oauth_endpoint
            return client_credentials_token(
                self.oauth_endpoint, self.oauth_client_id, self.oauth_client_secret, self.oauth_scope, share=share
            )
        assert self.token is not None
        return TokenProvider(token=self.token.get_secret_value())

    def status_hints(self, conn_id: str) -> dict[int, str]:
        """What to check in the Airflow connection when the service refuses a call."""
        conn = f"check Airflow connection {conn_id!r}"
        if self.auth_type == "oauth":
            credentials = "login (OAuth client id), password (OAuth client secret) and extra 'oauth_scope'"
        else:
            credentials = "password (bearer token)"
        return {
            401: f"{conn}: {credentials}; they must belong to extra 'client_id' ({self.client_id!r})",
            403: f"{conn}: extra 'client_id' ({self.client_id!r}) must be the account the credentials in "
            "login/password belong to, with permission for this call",
            404: f"no such profile, or an unknown client id: check the alternate id and type, and extra "
            f"'client_id' ({self.client_id!r}) of Airflow connection {conn_id!r} (Test connection tells which)",
        }

    @property
    def profiles_url(self) -> str:
        """The profile collection URL for this account."""
        return _profiles_url(self.base_url, self.profile_path, self.client_id)

    def describe_profile(self, alternate_id: str, alternate_id_type: str) -> ResourceDescription:
        """The one place that knows how a profile is addressed (used by both hooks) and summarized."""
        require_id(alternate_id, "alternate_id")
        require_id(alternate_id_type, "alternate_id_type")
        target = f"profile {shorten(alternate_id_type)}:{quoted(alternate_id)}"
        url = self.profiles_url
        return ResourceDescription(
            target=target,
            url=url,
            params={"alternateId": alternate_id, "alternateIdType": alternate_id_type},
            summarize=lambda outcome, doc: outcome.model_copy(update={"profile": profile_summary(doc, target)}),
            # The account and id type only: the alternate id itself is personal data.
            asset_uri=profiles_asset_uri(self.client_id, alternate_id_type),
            # MyPreferences matches alternateId and alternateIdType case-insensitively.
            key=("mypreferences", url, alternate_id_type.casefold(), alternate_id.casefold()),
            answer=ProfileSummary,
        )

    def profile_request(
        self, method: str, alternate_id: str, alternate_id_type: str, body: Patch | None = None
    ) -> ApiRequest:
        """A request to one profile (the async hook's reads, the connection test's probe)."""
        return self.describe_profile(alternate_id, alternate_id_type).request(method, body)


class MyPreferencesHook(PrefsApiHook):
    """Reads and patches PossibleNOW MyPreferences profiles by ``alternateId`` + ``alternateIdType``.

    Auth is a static bearer token (password field) or OAuth client credentials (``auth_type: oauth``
    with ``oauth_endpoint``; the token is cached until shortly before it expires). Updates are processed
    asynchronously: right after a patch the profile's ``UpdateStatus`` is ``Pending Update``.

    :param conn_id: connection of type ``mypreferences``.
    """

    conn_type = MYPREFERENCES_CONN_TYPE
    default_conn_name = "mypreferences_default"
    hook_name = "PossibleNOW MyPreferences"
    patch_rules = PROFILE_RULES

    @cached_property
    def settings(self) -> MyPreferencesSettings:
        """The parsed connection."""
        return MyPreferencesSettings.from_connection(self.connection, self.extras)

    def token_provider(self) -> TokenProvider:
        """Static token or cached OAuth token, per the connection."""
        return self.settings.token_provider(share=self.transport.share_across_tasks)

    def status_hints(self) -> dict[int, str]:
        """What to check in this connection on a 401, 403 or 404."""
        return self.settings.status_hints(self.conn_id)

    def profile(self, alternate_id: str, alternate_id_type: str) -> Resource:
        """The profile as a :class:`~airflow_provider_prefs.patching.changes.Resource` (for :meth:`change`)."""
        return self.resource(self.settings.describe_profile(alternate_id, alternate_id_type))

    def get_profile(self, alternate_id: str, alternate_id_type: str) -> dict[str, Any]:
        """The full profile (alternate id and type are matched case-insensitively by the service)."""
        return self.profile(alternate_id, alternate_id_type).read()

    def change_profile(
        self, alternate_id: str, alternate_id_type: str, **options: Unpack[ChangeOptions]
    ) -> ChangeOutcome:
        """Change a profile exactly once, by ``patch`` or ``desired`` state; see :meth:`~.base.PrefsApiHook.change`.

        Only add/replace/remove/test are accepted, array removes must be in descending index order,
        and ``ProfileId``, ``Edited`` and ``UpdateStatus`` are read-only; all checked before sending.
        The outcome's ``profile`` summary right after a change shows ``UpdateStatus: Pending Update``:
        wait with :class:`~airflow_provider_prefs.sensors.profile_status.ProfileUpdateStatusSensor`.
        """
        return self.change(self.profile(alternate_id, alternate_id_type), **options)

    def bulk_patch_profiles(
        self, items: Iterable[Any], *, alternate_id_type: str | None = None, **options: Unpack[BulkOptions]
    ) -> BulkReport:
        """Patch many profiles concurrently over one session.

        :param items: ``(alternate_id, patch)`` pairs (with ``alternate_id_type`` given here),
            ``(alternate_id, alternate_id_type, patch)`` triples, or dicts with ``alternate_id``,
            optional ``alternate_id_type`` and ``patch`` or ``desired``; consumed lazily.
        :param options: how the run goes (``max_concurrency``, ``dry_run``, ``progress`` to resume from
            and record into, ``on_outcome``), see :func:`~airflow_provider_prefs.bulk.runner.apply_changes`.
        :return: counts of applied / unchanged / failed, with the failures' reasons.
        """

        # Imported here: a single-change task (most mapped tasks) never loads the bulk runner (~4 ms per process).
        from airflow_provider_prefs.bulk.runner import apply_changes, item_tuple

        def resource_of(item: Any) -> tuple[Resource, dict[str, Any]]:
            if isinstance(item, dict):
                id_type = item.get("alternate_id_type") or alternate_id_type
                return self.profile(item.get("alternate_id"), id_type), item  # type: ignore[arg-type]
            fields = item_tuple(item, (2, 3), PROFILE_ITEM_SHAPE)
            if len(fields) == 3:
                return self.profile(fields[0], fields[1]), {"patch": fields[2]}
            return self.profile(fields[0], alternate_id_type), {"patch": fields[1]}  # type: ignore[arg-type]

        return apply_changes(
            items, resource_of, self.carry_steps, pool_size=self.transport.pool_size, log=self.log, **options
        )

    def probe(self) -> str:
        """Authenticate, look up a probe profile, and prove the client id is known.

        A 404 means "unknown profile" or "unknown client id" and the vendor's body format is
        undocumented, so the body is not parsed for words. Instead the same lookup is made for a
        client id that cannot exist: if our answer is the same as that one (status and message, with
        each client id blanked out), our client id is unknown too. Costs one more GET, only here.
        """
        settings = self.settings
        extras = self.extras
        configured = extras.get("test_alternate_id")
        alternate_id = configured or PROBE_ALTERNATE_ID
        alternate_id_type = extras.get("test_alternate_id_type", "Email")
        try:
            self.get_profile(alternate_id, alternate_id_type)
        except NotFoundError as exc:
            if self._answers_like_unknown_client(exc, alternate_id, alternate_id_type):
                raise ConfigurationError(
                    f"client id {settings.client_id!r} is unknown to {settings.base_url}: it answers exactly as for "
                    f"a client id that does not exist ({exc.vendor_message[:200]}); fix extra 'client_id' of "
                    f"Airflow connection {self.conn_id!r} (your MyPreferences account id)"
                ) from None
            if configured:
                raise ConfigurationError(
                    f"client id {settings.client_id!r} is known, but the test profile {alternate_id_type}:"
                    f"{configured[:100]!r} was not found; fix extra 'test_alternate_id' of Airflow connection "
                    f"{self.conn_id!r} or remove it"
                ) from None
            return (
                f"Authenticated to {settings.base_url}; client id {settings.client_id!r} is known "
                "(probe profile not found, as expected)"
            )
        return f"Connected to {settings.base_url}; client id {settings.client_id!r}; probe profile found"

    def _answers_like_unknown_client(self, answer: NotFoundError, alternate_id: str, alternate_id_type: str) -> bool:
        """True when the same lookup under a client id that cannot exist gets the same 404."""
        nowhere = f"{UNKNOWN_CLIENT_PREFIX}{uuid.uuid4().hex[:12]}"
        request = self.settings.model_copy(update={"client_id": nowhere}).profile_request(
            "GET", alternate_id, alternate_id_type
        )
        try:
            self.send(request)
        except NotFoundError as other:
            return _blank(answer.vendor_message, self.settings.client_id) == _blank(other.vendor_message, nowhere)
        except PrefsError:
            return False  # any other answer (403...) differs from ours
        return False


#: Alternate id looked up by the connection test when ``test_alternate_id`` is not set.
PROBE_ALTERNATE_ID = "airflow-connection-test"
#: Prefix of the client id that cannot exist, used to recognize an unknown-client-id answer.
UNKNOWN_CLIENT_PREFIX = "airflow-no-such-client-"


def _blank(message: str, client_id: str) -> str:
    """``message`` with the client id (raw or URL-encoded) replaced, so two answers can be compared."""
    for form in {client_id, quote(client_id, safe="")}:
        message = message.replace(form, "{client_id}")
    return message


FORGOTTEN_HOOK_GRACE_SECONDS = 60.0
#: Close tasks of forgotten hooks (the event loop keeps only weak references to tasks).
_closing: set[asyncio.Task[None]] = set()


def _close_later(hook: MyPreferencesAsyncHook) -> None:
    task = asyncio.get_running_loop().create_task(hook.aclose())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


class MyPreferencesAsyncHook(BaseHook):
    """Non-blocking profile reads for triggers: async connection lookup, ``httpx`` client.

    Shares :class:`MyPreferencesSettings` (addressing, auth) and the retry rules with
    :class:`MyPreferencesHook`, so the two cannot disagree about the API. Triggers take the instance
    shared by their event loop (:meth:`shared`); :meth:`get_async_conn` is the escape hatch to its client.

    :param conn_id: connection of type ``mypreferences``.
    """

    conn_name_attr: ClassVar[str] = "conn_id"
    default_conn_name: ClassVar[str] = MyPreferencesHook.default_conn_name
    conn_type: ClassVar[str] = MYPREFERENCES_CONN_TYPE
    hook_name: ClassVar[str] = MyPreferencesHook.hook_name

    #: One hook per (event loop, connection, transport overrides): a triggerer running a thousand
    #: waits shares one connection lookup, one token and one connection pool instead of a thousand.
    _shared: ClassVar[
        weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], MyPreferencesAsyncHook]]
    ] = weakref.WeakKeyDictionary()

    def __init__(
        self,
        conn_id: str = MyPreferencesHook.default_conn_name,
        *,
        transport_overrides: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.transport_overrides = dict(transport_overrides or {})
        self._settings: MyPreferencesSettings | None = None
        self._client: AsyncApiClient | None = None
        self._lock: asyncio.Lock | None = None

    @classmethod
    def shared(cls, conn_id: str, transport_overrides: Mapping[str, Any] | None = None) -> MyPreferencesAsyncHook:
        """The hook for ``conn_id`` (with these transport overrides) shared by every trigger of the running loop."""
        hooks = cls._shared.setdefault(asyncio.get_running_loop(), {})
        key = (conn_id, json.dumps(dict(transport_overrides or {}), sort_keys=True, default=str))
        if key not in hooks:
            hooks[key] = cls(conn_id, transport_overrides=transport_overrides)
        return hooks[key]

    @classmethod
    def forget(cls, conn_id: str) -> None:
        """Drop the shared hooks for ``conn_id``: the next wait reads the connection again.

        For when the service refused what the connection holds (credentials, certificate): once
        someone fixes the connection, retried tasks must not keep failing until the triggerer
        restarts. Waits still mid-request on an old hook get a grace period before it is closed.
        """
        loop = asyncio.get_running_loop()
        hooks = cls._shared.get(loop, {})
        for key in [key for key in hooks if key[0] == conn_id]:
            loop.call_later(FORGOTTEN_HOOK_GRACE_SECONDS, _close_later, hooks.pop(key))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    async def _ready(self) -> tuple[MyPreferencesSettings, AsyncApiClient]:
        if self._settings is not None and self._client is not None:
            return self._settings, self._client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._settings is not None and self._client is not None:
                return self._settings, self._client
            conn = await aload_connection(self.conn_id, MyPreferencesHook)
            # Off the event loop: parsing masks secrets, and making the client reads CA certificates,
            # proxy variables and .netrc.
            settings, client = await asyncio.to_thread(self._prepare, conn)
            self._settings, self._client = settings, client
            return settings, client

    def _prepare(self, conn: Any) -> tuple[MyPreferencesSettings, AsyncApiClient]:
        extras = ConnectionExtras(self.conn_id, MYPREFERENCES_CONN_TYPE, conn.extra_dejson)
        settings = MyPreferencesSettings.from_connection(conn, extras)
        # Same precedence as the sync hook: the task's overrides on top of the connection extras.
        transport = parse_transport(extras, self.transport_overrides)
        auth = settings.token_provider(share=transport.share_across_tasks)
        client = AsyncApiClient(transport, {"Accept": "application/json"}, auth, settings.status_hints(self.conn_id))
        return settings, client

    async def get_async_conn(self) -> AsyncApiClient:
        """The configured :class:`~airflow_provider_prefs.transport.client.AsyncApiClient` (the connection is
        read on first use): the one :meth:`get_profile` goes through, with its token, connection pool, retries
        and TLS settings. Send requests with ``await client.send(ApiRequest(...))``; :meth:`aclose` closes it.
        """
        _, client = await self._ready()
        return client

    async def get_profile(self, alternate_id: str, alternate_id_type: str) -> dict[str, Any]:
        """The full profile."""
        settings, client = await self._ready()
        return dict(await client.send(settings.profile_request("GET", alternate_id, alternate_id_type)))

    async def aclose(self) -> None:
        """Close pooled connections."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

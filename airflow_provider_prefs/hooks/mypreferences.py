"""Hooks for PossibleNOW MyPreferences profiles, found by alternate id (sync for workers, async for triggers)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from airflow_provider_prefs.auth import ClientCredentials, ClientCredentialsToken, StaticToken, TokenProvider
from airflow_provider_prefs.exactly_once import PatchResult
from airflow_provider_prefs.hooks.base import (
    PrefsApiHook,
    TransportSettings,
    aload_connection,
    base_url_of,
    parse_model,
    require_id,
)
from airflow_provider_prefs.http_client import ApiRequest, AsyncApiClient
from airflow_provider_prefs.patching import PROFILE_RULES, Patch, validate_patch
from airflow_provider_prefs.provider_info import (
    DEFAULT_PROFILE_PATH,
    MYPREFERENCES_CONN_TYPE,
    MYPREFERENCES_PRODUCTION_URL,
    MYPREFERENCES_STAGING_URL,
)
from airflow_provider_prefs.token_cache import shared_cache

if TYPE_CHECKING:
    from airflow_provider_prefs.changes import Resource
    from airflow_provider_prefs.models import BulkReport

ENVIRONMENT_URLS = {"production": MYPREFERENCES_PRODUCTION_URL, "staging": MYPREFERENCES_STAGING_URL}


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
    token_url: str | None = None
    oauth_scope: str | None = None

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
                    ("token_url extra", self.token_url),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"auth_type 'oauth' needs {', '.join(missing)}")
        if "{client_id}" not in self.profile_path:
            raise ValueError("profile_path must contain {client_id}")
        return self

    @classmethod
    def from_connection(cls, conn: Any, conn_id: str) -> MyPreferencesSettings:
        """Parse an Airflow connection of type ``mypreferences``."""
        extras = conn.extra_dejson
        environment = extras.get("environment") or "production"
        default_url = ENVIRONMENT_URLS.get(environment, MYPREFERENCES_PRODUCTION_URL)
        auth_type = extras.get("auth_type") or ("oauth" if extras.get("token_url") and conn.login else "bearer")
        data: dict[str, Any] = {
            "base_url": base_url_of(conn.host, conn.port, default_url),
            "client_id": extras.get("client_id") or "",
            "profile_path": extras.get("profile_path") or DEFAULT_PROFILE_PATH,
            "auth_type": auth_type,
            "token_url": extras.get("token_url"),
        }
        if auth_type == "oauth":
            data |= {
                "oauth_client_id": conn.login,
                "oauth_client_secret": conn.password,
                "oauth_scope": extras.get("oauth_scope") or f"{data['client_id']}/{conn.login}",
            }
        else:
            data["token"] = conn.password
        return parse_model(cls, data, f"connection {conn_id!r} (mypreferences)")

    def token_provider(self, *, share: bool = True) -> TokenProvider:
        """A static bearer token, or OAuth client credentials cached until expiry.

        ``share`` puts OAuth tokens in the worker-wide :mod:`~airflow_provider_prefs.token_cache`.
        """
        if self.auth_type == "oauth":
            assert self.oauth_client_id and self.oauth_client_secret and self.token_url
            return ClientCredentialsToken(
                ClientCredentials(
                    token_url=self.token_url,
                    client_id=self.oauth_client_id,
                    client_secret=self.oauth_client_secret,
                    scope=self.oauth_scope,
                ),
                shared=shared_cache(share),
            )
        assert self.token is not None
        return StaticToken(self.token.get_secret_value())

    @property
    def profiles_url(self) -> str:
        """The profile collection URL for this account."""
        path = self.profile_path.format(client_id=quote(self.client_id, safe=""))
        return f"{self.base_url}/{path.lstrip('/')}"

    def profile_request(
        self, method: str, alternate_id: str, alternate_id_type: str, body: Patch | None = None
    ) -> ApiRequest:
        """The one place that knows how a profile is addressed (used by both hooks)."""
        require_id(alternate_id, "alternate_id")
        require_id(alternate_id_type, "alternate_id_type")
        return ApiRequest(
            method,
            self.profiles_url,
            action=f"{method} profile {alternate_id_type}:{alternate_id!r}",
            params={"alternateId": alternate_id, "alternateIdType": alternate_id_type},
            json_body=body,
            resends_safely=body is None,
        )


class MyPreferencesHook(PrefsApiHook):
    """Reads and patches PossibleNOW MyPreferences profiles by ``alternateId`` + ``alternateIdType``.

    Auth is a static bearer token (password field) or OAuth client credentials (``auth_type: oauth``
    with ``token_url``; the token is cached until shortly before it expires). Updates are processed
    asynchronously: right after a patch the profile's ``UpdateStatus`` is ``Pending Update``.

    :param conn_id: connection of type ``mypreferences``.
    """

    conn_type = MYPREFERENCES_CONN_TYPE
    default_conn_name = "mypreferences_default"
    hook_name = "PossibleNOW MyPreferences"
    patch_rules = PROFILE_RULES

    # Older Airflow looks for these two in the class's own __dict__, so each hook defines them.
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra form fields for Airflow before 3.2 (newer versions read ``conn-fields``)."""
        from airflow_provider_prefs.provider_info import connection_form_widgets

        return connection_form_widgets(cls.conn_type)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form behaviour for Airflow versions that read it from the hook."""
        from airflow_provider_prefs.provider_info import ui_field_behaviour

        return ui_field_behaviour(cls.conn_type)

    @cached_property
    def settings(self) -> MyPreferencesSettings:
        """The parsed connection."""
        return MyPreferencesSettings.from_connection(self.connection, self.conn_id)

    def token_provider(self) -> TokenProvider:
        """Static token or cached OAuth token, per the connection."""
        return self.settings.token_provider(share=self.transport.token_cache)

    def get_profile(self, alternate_id: str, alternate_id_type: str) -> dict[str, Any]:
        """The full profile (alternate id and type are matched case-insensitively by the service)."""
        return dict(self.send(self.settings.profile_request("GET", alternate_id, alternate_id_type)))

    def patch_profile(
        self,
        alternate_id: str,
        alternate_id_type: str,
        patch: Patch | str,
        *,
        base: dict[str, Any] | None = None,
    ) -> PatchResult:
        """Validate and send a JSON Patch to a profile, applied exactly once.

        Only add/replace/remove/test are accepted, array removes must be in descending index order,
        and ``ProfileId``, ``Edited`` and ``UpdateStatus`` are read-only; all checked before sending.
        """
        ops = validate_patch(patch, self.patch_rules)
        request = self.settings.profile_request("PATCH", alternate_id, alternate_id_type, ops)
        return self.send_patch(request, ops, read=lambda: self.get_profile(alternate_id, alternate_id_type), base=base)

    def profile(self, alternate_id: str, alternate_id_type: str) -> Resource:
        """The profile as a :class:`~airflow_provider_prefs.changes.Resource` for :func:`apply_change`."""
        from airflow_provider_prefs.changes import Resource
        from airflow_provider_prefs.models import profile_summary

        require_id(alternate_id, "alternate_id")
        require_id(alternate_id_type, "alternate_id_type")
        target = f"profile {alternate_id_type}:{alternate_id!r}"
        return Resource(
            target=target,
            rules=self.patch_rules,
            read=lambda: self.get_profile(alternate_id, alternate_id_type),
            patch=lambda ops, base: self.patch_profile(alternate_id, alternate_id_type, ops, base=base),
            summarize=lambda outcome, doc: outcome.model_copy(update={"profile": profile_summary(doc, target)}),
        )

    def bulk_patch_profiles(
        self,
        items: Iterable[Any],
        *,
        alternate_id_type: str | None = None,
        max_concurrency: int = 8,
        dry_run: bool = False,
    ) -> BulkReport:
        """Patch many profiles concurrently over one session.

        :param items: ``(alternate_id, patch)`` pairs (with ``alternate_id_type`` given here),
            ``(alternate_id, alternate_id_type, patch)`` triples, or dicts with ``alternate_id``,
            optional ``alternate_id_type`` and ``patch`` or ``desired``; consumed lazily.
        :return: counts of applied / unchanged / failed, with the failures' reasons.
        """

        def resource_of(item: Any) -> tuple[Resource, dict[str, Any]]:
            if isinstance(item, dict):
                id_type = item.get("alternate_id_type") or alternate_id_type
                return self.profile(item.get("alternate_id"), id_type), item  # type: ignore[arg-type]
            if len(item) == 3:
                return self.profile(item[0], item[1]), {"patch": item[2]}
            return self.profile(item[0], alternate_id_type), {"patch": item[1]}  # type: ignore[arg-type]

        return self.bulk_apply(items, resource_of, max_concurrency=max_concurrency, dry_run=dry_run)

    def probe(self) -> str:
        """Authenticate and look up a probe profile; a 404 for it still proves the credentials."""
        from airflow_provider_prefs.errors import NotFoundError

        settings = self.settings
        extras = self.connection.extra_dejson
        alternate_id = extras.get("test_alternate_id") or "airflow-connection-test"
        alternate_id_type = extras.get("test_alternate_id_type") or "Email"
        try:
            self.get_profile(alternate_id, alternate_id_type)
        except NotFoundError as exc:
            if "test_alternate_id" in extras:
                raise
            return (
                f"Authenticated to {settings.base_url} for client id {settings.client_id!r} "
                f"(probe profile not found, as expected: {exc.vendor_message})"
            )
        return f"Connected to {settings.base_url}; client id {settings.client_id!r}; probe profile found"


FORGOTTEN_HOOK_GRACE_SECONDS = 60.0
#: Close tasks of forgotten hooks (the event loop keeps only weak references to tasks).
_closing: set[asyncio.Task[None]] = set()


def _close_later(hook: MyPreferencesAsyncHook) -> None:
    task = asyncio.get_running_loop().create_task(hook.aclose())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


class MyPreferencesAsyncHook:
    """Non-blocking profile reads for triggers: async connection lookup, ``httpx`` client.

    Shares :class:`MyPreferencesSettings` (addressing, auth) and the retry rules with
    :class:`MyPreferencesHook`, so the two cannot disagree about the API.
    """

    #: One hook per (event loop, connection): a triggerer running a thousand waits shares one
    #: connection lookup, one token and one connection pool instead of a thousand.
    _shared: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, MyPreferencesAsyncHook]]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, conn_id: str = MyPreferencesHook.default_conn_name) -> None:
        self.conn_id = conn_id
        self._settings: MyPreferencesSettings | None = None
        self._client: AsyncApiClient | None = None
        self._lock: asyncio.Lock | None = None

    @classmethod
    def shared(cls, conn_id: str) -> MyPreferencesAsyncHook:
        """The hook for ``conn_id`` shared by every trigger of the running event loop."""
        hooks = cls._shared.setdefault(asyncio.get_running_loop(), {})
        if conn_id not in hooks:
            hooks[conn_id] = cls(conn_id)
        return hooks[conn_id]

    @classmethod
    def forget(cls, conn_id: str) -> None:
        """Drop the shared hook for ``conn_id``: the next wait reads the connection again.

        For when the service refused what the connection holds (credentials, certificate): once
        someone fixes the connection, retried tasks must not keep failing until the triggerer
        restarts. Waits still mid-request on the old hook get a grace period before it is closed.
        """
        loop = asyncio.get_running_loop()
        hook = cls._shared.get(loop, {}).pop(conn_id, None)
        if hook is not None:
            loop.call_later(FORGOTTEN_HOOK_GRACE_SECONDS, _close_later, hook)

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
            settings = MyPreferencesSettings.from_connection(conn, self.conn_id)
            transport = parse_model(TransportSettings, conn.extra_dejson, f"connection {self.conn_id!r}")
            self._settings = settings
            self._client = AsyncApiClient(
                transport.client_settings({"Accept": "application/json"}),
                settings.token_provider(share=transport.token_cache),
            )
            return settings, self._client

    async def get_profile(self, alternate_id: str, alternate_id_type: str) -> dict[str, Any]:
        """The full profile."""
        settings, client = await self._ready()
        return dict(await client.send(settings.profile_request("GET", alternate_id, alternate_id_type)))

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._client is not None:
            await self._client.aclose()

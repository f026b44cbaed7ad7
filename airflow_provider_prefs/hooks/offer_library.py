"""Hook for Adobe Journey Optimizer Offer Library fallback offers (Adobe IMS OAuth server-to-server)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from airflow_provider_prefs.assets import offer_asset_uri
from airflow_provider_prefs.errors import quoted
from airflow_provider_prefs.hooks.base import (
    ChangeOptions,
    ConnectionExtras,
    PrefsApiHook,
    ResourceDescription,
    base_url_of,
    check_url,
    client_credentials_token,
    parse_model,
    require_id,
)
from airflow_provider_prefs.models import ChangeOutcome, OfferMetadata, OfferPage
from airflow_provider_prefs.patching.rules import OFFER_RULES
from airflow_provider_prefs.provider_info import (
    ADOBE_CONN_TYPE,
    DEFAULT_IMS_TOKEN_URL,
    DEFAULT_PLATFORM_URL,
    DEFAULT_SCOPES,
)
from airflow_provider_prefs.transport.auth import TokenProvider
from airflow_provider_prefs.transport.client import ApiRequest

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from airflow_provider_prefs.bulk.runner import BulkOptions
    from airflow_provider_prefs.models import BulkReport
    from airflow_provider_prefs.patching.changes import Resource

#: What a positional bulk item looks like (quoted in the error for any other shape).
OFFER_ITEM_SHAPE = "a dict with offer_id and patch or desired, or an (offer_id, patch) pair"

FALLBACK = {"offer-type": "fallback"}


class OfferLibrarySettings(BaseModel):
    """Everything the Offer Library hook reads from its Airflow connection."""

    model_config = ConfigDict(frozen=True)

    base_url: str
    client_id: str = Field(min_length=1, description="Adobe credential client id, also the x-api-key")
    client_secret: SecretStr
    ims_org_id: str = Field(min_length=1)
    sandbox_name: str = Field(min_length=1)
    scopes: str = DEFAULT_SCOPES
    ims_endpoint: str = DEFAULT_IMS_TOKEN_URL

    #: Where each field is set in the Airflow connection, for error messages.
    SOURCES: ClassVar[dict[str, str]] = {
        "base_url": "host (Platform base URL)",
        "client_id": "login (client id)",
        "client_secret": "password (client secret)",
    }

    @field_validator("client_secret")
    @classmethod
    def _secret_present(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("the client secret (password field) is empty")
        return value

    @field_validator("base_url", "ims_endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    def offer_url(self, offer_id: str) -> str:
        """URL of one offer; the id is percent-encoded entirely (``/``, ``?``, ``#`` included)."""
        return f"{self.base_url}/offers/{quote(require_id(offer_id, 'offer_id', path_segment=True), safe='')}"

    def describe_offer(self, offer_id: str) -> ResourceDescription:
        """Where fallback offer ``offer_id`` lives (``/offers/{id}?offer-type=fallback``) and how it is summarized."""
        return ResourceDescription(
            target=f"offer {quoted(offer_id)}",
            url=self.offer_url(offer_id),
            params=FALLBACK,
            summarize=lambda outcome, doc: outcome.model_copy(update={"offer": OfferMetadata.model_validate(doc)}),
            asset_uri=offer_asset_uri(self.ims_org_id, self.sandbox_name, offer_id),
            patch_answers_document=False,  # a PATCH answers the offer's metadata only
            key=("adobe_offer", self.base_url, self.ims_org_id, self.sandbox_name, offer_id),
            answer=OfferMetadata,
        )

    @classmethod
    def from_connection(cls, conn: Any, extras: ConnectionExtras) -> OfferLibrarySettings:
        """Parse an Airflow connection of type ``adobe_offer_library`` (extras already checked)."""
        data = {
            "base_url": base_url_of(conn.host, conn.port, DEFAULT_PLATFORM_URL),
            "client_id": conn.login or "",
            "client_secret": conn.password or "",
            "ims_org_id": extras.get("ims_org_id", ""),
            "sandbox_name": extras.get("sandbox_name", ""),
            "scopes": extras.get("scopes", DEFAULT_SCOPES),
            "ims_endpoint": extras.get("ims_endpoint", DEFAULT_IMS_TOKEN_URL),
        }
        names = extras.names(("ims_org_id", "sandbox_name", "scopes", "ims_endpoint"), **cls.SOURCES)
        what = f"Airflow connection {extras.conn_id!r} ({ADOBE_CONN_TYPE})"
        return parse_model(cls, data, what, names=names)


class OfferLibraryHook(PrefsApiHook):
    """Reads and patches Adobe Journey Optimizer fallback offers.

    Authenticates with an Adobe IMS client-credentials token (cached until shortly before it
    expires, refreshed once on a 401) and sends the four headers Adobe requires on every call:
    ``Authorization``, ``x-api-key``, ``x-gw-ims-org-id`` and ``x-sandbox-name``.

    :param conn_id: connection of type ``adobe_offer_library``.
    """

    conn_type = ADOBE_CONN_TYPE
    default_conn_name = "adobe_offer_library_default"
    hook_name = "Adobe Journey Optimizer Offer Library"
    patch_rules = OFFER_RULES
    version_key = "etag"

    @cached_property
    def settings(self) -> OfferLibrarySettings:
        """The parsed connection."""
        return OfferLibrarySettings.from_connection(self.connection, self.extras)

    def base_headers(self) -> dict[str, str]:
        """The Adobe headers besides ``Authorization``, on every call."""
        settings = self.settings
        return {
            **super().base_headers(),
            "x-api-key": settings.client_id,
            "x-gw-ims-org-id": settings.ims_org_id,
            "x-sandbox-name": settings.sandbox_name,
        }

    def token_provider(self) -> TokenProvider:
        """An IMS client-credentials token, cached until shortly before expiry."""
        settings = self.settings
        share = self.transport.share_across_tasks
        return client_credentials_token(
            settings.ims_endpoint, settings.client_id, settings.client_secret, settings.scopes, share=share
        )

    def status_hints(self) -> dict[int, str]:
        """What to check in this connection when IMS or the platform refuses a call."""
        conn = f"check Airflow connection {self.conn_id!r}"
        return {
            404: f"check the offer id, and extra 'sandbox_name' ({self.settings.sandbox_name!r}) of Airflow "
            f"connection {self.conn_id!r}: offers live in one sandbox",
            401: f"{conn}: login (client id) and password (client secret) of the OAuth server-to-server "
            "credential, and extra 'scopes'",
            403: f"{conn}: extra 'ims_org_id' must be the credential's organization and extra 'sandbox_name' "
            "a sandbox its product profile can access; login (client id) is also sent as x-api-key",
        }

    def offer(self, offer_id: str) -> Resource:
        """The offer as a :class:`~airflow_provider_prefs.patching.changes.Resource` (for :meth:`change`)."""
        return self.resource(self.settings.describe_offer(offer_id))

    def get_offer(self, offer_id: str) -> dict[str, Any]:
        """The full fallback offer document."""
        return self.offer(offer_id).read()

    def change_offer(self, offer_id: str, **options: Unpack[ChangeOptions]) -> ChangeOutcome:
        """Change a fallback offer exactly once, by ``patch`` or ``desired``; see :meth:`~.base.PrefsApiHook.change`.

        Adobe accepts add, replace, remove, copy and test; ``id``, ``etag`` and the other metadata are
        read-only. The outcome's ``offer`` is the metadata of the changed offer (its new ``etag``).
        """
        return self.change(self.offer(offer_id), **options)

    def bulk_patch_offers(self, items: Iterable[Any], **options: Unpack[BulkOptions]) -> BulkReport:
        """Patch many offers concurrently over one session.

        :param items: ``(offer_id, patch)`` pairs or ``{"offer_id", "patch" | "desired"}`` dicts,
            consumed lazily (a generator over a file is fine).
        :param options: how the run goes (``max_concurrency``, ``dry_run``, ``progress`` to resume from
            and record into, ``on_outcome``), see :func:`~airflow_provider_prefs.bulk.runner.apply_changes`.
        :return: counts of applied / unchanged / failed, with the failures' reasons.
        """

        # Imported here: a single-change task (most mapped tasks) never loads the bulk runner (~4 ms per process).
        from airflow_provider_prefs.bulk.runner import apply_changes, item_tuple

        def resource_of(item: Any) -> tuple[Resource, dict[str, Any]]:
            if isinstance(item, dict):
                return self.offer(item.get("offer_id")), item  # type: ignore[arg-type]
            offer_id, patch = item_tuple(item, (2,), OFFER_ITEM_SHAPE)
            return self.offer(offer_id), {"patch": patch}

        return apply_changes(
            items, resource_of, self.carry_steps, pool_size=self.transport.pool_size, log=self.log, **options
        )

    def list_offers(self, *, limit: int = 10, name: str | None = None) -> dict[str, Any]:
        """One page of fallback offers (``results``, ``count``, ``total``, ``_links``)."""
        params = {**FALLBACK, "limit": str(limit)}
        if name:
            params["property"] = f"name=={name}"
        url = f"{self.settings.base_url}/offers"
        return dict(self.send(ApiRequest("GET", url, action="list offers", params=params, expects=OfferPage)))

    def probe(self) -> str:
        """Fetch a token and list one offer: proves credentials, org, sandbox and URL."""
        page = self.list_offers(limit=1)
        settings = self.settings
        return (
            f"Connected to {settings.base_url} as {settings.client_id!r} (org {settings.ims_org_id}, "
            f"sandbox {settings.sandbox_name}); {page.get('total', page.get('count', '?'))} fallback offer(s)"
        )

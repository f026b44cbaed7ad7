"""Airflow Assets for what this provider changes, and their OpenLineage names.

One asset per fallback offer, ``adobe-offer://{ims org}/{sandbox}/{offer id}``, and one per
MyPreferences account and alternate id type, ``mypreferences://{client id}/{id type}``. A profile
is deliberately *not* an asset of its own: its alternate id is usually an e-mail address, and
personal data must never end up in a URI, an asset table or a lineage backend.

The schemes are registered in ``get_provider_info()["asset-uris"]``; Airflow calls the ``sanitize_*``
handlers on every URI of these schemes, and OpenLineage the ``convert_*`` converters.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset

OFFER_SCHEME = "adobe-offer"
PROFILE_SCHEME = "mypreferences"


def _segment(value: str) -> str:
    # "@" would read as user info in the authority ("ABC123@AdobeOrg"), "/" as a path separator.
    return quote(value, safe="")


def offer_asset_uri(ims_org_id: str, sandbox_name: str, offer_id: str) -> str:
    """The URI of one fallback offer."""
    return f"{OFFER_SCHEME}://{_segment(ims_org_id)}/{_segment(sandbox_name)}/{_segment(offer_id)}"


@lru_cache(maxsize=256)  # per account and id type, asked for by every profile of a bulk run
def profiles_asset_uri(client_id: str, alternate_id_type: str) -> str:
    """The URI of the profiles of one MyPreferences account, addressed by one alternate id type."""
    return f"{PROFILE_SCHEME}://{_segment(client_id)}/{_segment(alternate_id_type.lower())}"


def create_offer_asset(
    *, ims_org_id: str, sandbox_name: str, offer_id: str, extra: dict[str, Any] | None = None
) -> Asset:
    """An :class:`~airflow.sdk.Asset` for one fallback offer (the ``factory`` of the scheme)."""
    from airflow.sdk import Asset

    return Asset(uri=offer_asset_uri(ims_org_id, sandbox_name, offer_id), extra=extra)


def create_profiles_asset(*, client_id: str, alternate_id_type: str, extra: dict[str, Any] | None = None) -> Asset:
    """An :class:`~airflow.sdk.Asset` for a MyPreferences account's profiles of one id type."""
    from airflow.sdk import Asset

    return Asset(uri=profiles_asset_uri(client_id, alternate_id_type), extra=extra)


def _path_parts(uri: SplitResult) -> list[str]:
    return [part for part in uri.path.split("/") if part]


def sanitize_offer_uri(uri: SplitResult) -> SplitResult:
    """Airflow's check of an ``adobe-offer://org/sandbox/offer`` URI."""
    if not uri.netloc or len(_path_parts(uri)) != 2:
        raise ValueError(f"URI format {OFFER_SCHEME}:// must be {OFFER_SCHEME}://{{ims org}}/{{sandbox}}/{{offer id}}")
    if uri.query or uri.fragment:
        raise ValueError(f"{OFFER_SCHEME}:// URIs take no query or fragment")
    return uri


def sanitize_profiles_uri(uri: SplitResult) -> SplitResult:
    """Airflow's check of a ``mypreferences://client/idtype`` URI (no personal data below it)."""
    if not uri.netloc or len(_path_parts(uri)) != 1:
        raise ValueError(
            f"URI format {PROFILE_SCHEME}:// must be {PROFILE_SCHEME}://{{client id}}/{{alternate id type}}; "
            "profiles are never addressed individually (their ids are personal data)"
        )
    if uri.query or uri.fragment:
        raise ValueError(f"{PROFILE_SCHEME}:// URIs take no query or fragment")
    return uri


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any) -> Any:
    """The OpenLineage dataset of either scheme: namespace ``{scheme}://{tenant}``, name the path below it.

    ``adobe-offer://ABC%40AdobeOrg/dev/offer1`` is namespace ``adobe-offer://ABC@AdobeOrg``, name
    ``dev/offer1``; ``mypreferences://ACME/email`` is namespace ``mypreferences://ACME``, name ``email``.
    """
    from urllib.parse import urlsplit

    from airflow.providers.common.compat.openlineage.facet import Dataset

    parsed = urlsplit(asset.uri)
    return Dataset(
        namespace=f"{parsed.scheme}://{unquote(parsed.netloc)}", name="/".join(map(unquote, _path_parts(parsed)))
    )


#: The alias every offer-changing task declares as outlet; the concrete offer assets are only known
#: at run time (org and sandbox come from the connection), so they are attached to it per event.
OFFER_CHANGES_ALIAS = "airflow-provider-prefs.adobe-offer-changes"
#: The same for MyPreferences profile changes (one event per account and alternate id type).
PROFILE_CHANGES_ALIAS = "airflow-provider-prefs.mypreferences-changes"
#: At most this many distinct assets get an event per task; a bulk run over 50,000 offers must not
#: flood the asset tables and the scheduler. The rest are counted in the log.
MAX_ASSET_EVENTS = 1000


def changes_alias(name: str) -> Any:
    """The :class:`~airflow.sdk.AssetAlias` an operator declares as outlet (None before Airflow 3)."""
    try:
        from airflow.sdk import AssetAlias
    except ImportError:  # Airflow 2.10: no runtime asset events from this provider
        return None
    return AssetAlias(name=name)


def with_alias_outlet(outlets: Any, name: str) -> list[Any]:
    """The user's ``outlets`` plus the changes alias ``name``."""
    if outlets is None:
        listed: list[Any] = []
    elif isinstance(outlets, list | tuple):
        listed = list(outlets)
    else:
        listed = [outlets]
    alias = changes_alias(name)
    return listed if alias is None else [*listed, alias]


class ChangedAssets:
    """The distinct asset URIs a task changed, in order, capped at :data:`MAX_ASSET_EVENTS`."""

    def __init__(self, limit: int = MAX_ASSET_EVENTS) -> None:
        self.limit = limit
        self.uris: dict[str, None] = {}
        #: Changes beyond the cap (not deduplicated: remembering them is what the cap avoids).
        self.dropped = 0

    def add(self, uri: str | None) -> None:
        """Record ``uri`` (None: nothing to record)."""
        if uri is None or uri in self.uris:
            return
        if len(self.uris) < self.limit:
            self.uris[uri] = None
        else:
            self.dropped += 1

    def emit(self, context: Any, alias_name: str, log: Any) -> None:
        """Add one asset event per recorded URI to ``alias_name`` in ``context["outlet_events"]``.

        Without outlet events in the context (Airflow 2, a plain ``execute({})`` call) nothing is
        emitted: the URIs stay available for OpenLineage.
        """
        outlet_events = context.get("outlet_events") if hasattr(context, "get") else None
        if outlet_events is None or not self.uris:
            return
        from airflow.sdk import Asset, AssetAlias

        accessor = outlet_events[AssetAlias(name=alias_name)]
        for uri in self.uris:
            accessor.add(Asset(uri=uri))
        log.info("asset events: %d changed asset(s) via alias %s", len(self.uris), alias_name)
        if self.dropped:
            log.warning(
                "asset events: %d further change(s) got no event (at most %d assets per task)", self.dropped, self.limit
            )


def operator_lineage(outputs: Any = (), inputs: Any = ()) -> Any:
    """An OpenLineage ``OperatorLineage`` naming asset URIs by :func:`convert_asset_to_openlineage`.

    Only URIs of the two schemes above are passed, so no personal data reaches a lineage backend.
    """
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Asset

    return OperatorLineage(
        inputs=[convert_asset_to_openlineage(Asset(uri=uri), None) for uri in inputs],
        outputs=[convert_asset_to_openlineage(Asset(uri=uri), None) for uri in outputs],
    )

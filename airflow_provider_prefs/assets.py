"""Airflow Assets for what this provider changes, and their OpenLineage names.

One asset per fallback offer, ``adobe-offer://{ims org}/{sandbox}/{offer id}``, and one per
MyPreferences account and alternate id type, ``mypreferences://{client id}/{id type}``. A profile
is deliberately *not* an asset of its own: its alternate id is usually an e-mail address, and
personal data must never end up in a URI, an asset table or a lineage backend.

The schemes are registered in ``get_provider_info()["asset-uris"]``; Airflow calls the ``sanitize_*``
handlers on every URI of these schemes, and OpenLineage the ``convert_*`` converters.
"""

from __future__ import annotations

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

"""Asset URIs for what the provider changes: registered with Airflow, checked, named for OpenLineage."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from airflow_provider_prefs.assets import (
    convert_asset_to_openlineage,
    create_offer_asset,
    create_profiles_asset,
    offer_asset_uri,
    profiles_asset_uri,
    sanitize_offer_uri,
    sanitize_profiles_uri,
)


def test_offer_uri_keeps_the_org_out_of_user_info() -> None:
    uri = offer_asset_uri("ABC123@AdobeOrg", "prod", "fallback/Offer 1")
    assert uri == "adobe-offer://ABC123%40AdobeOrg/prod/fallback%2FOffer%201"
    parts = urlsplit(uri)
    assert parts.username is None and parts.password is None
    assert sanitize_offer_uri(parts) == parts


def test_profiles_uri_names_the_account_and_id_type_never_a_person() -> None:
    uri = profiles_asset_uri("ACME", "Email")
    assert uri == "mypreferences://ACME/email"
    assert "@" not in uri


@pytest.mark.parametrize(
    ("sanitize", "uri"),
    [
        (sanitize_offer_uri, "adobe-offer://org/prod"),
        (sanitize_offer_uri, "adobe-offer://org/prod/offer/extra"),
        (sanitize_offer_uri, "adobe-offer://org/prod/offer?x=1"),
        (sanitize_profiles_uri, "mypreferences://ACME/email/ada@example.com"),
        (sanitize_profiles_uri, "mypreferences://ACME"),
    ],
)
def test_malformed_uris_are_refused(sanitize: object, uri: str) -> None:
    with pytest.raises(ValueError, match="URI"):
        sanitize(urlsplit(uri))  # type: ignore[operator]


def test_airflow_uses_the_registered_handlers() -> None:
    from airflow.providers_manager import ProvidersManager

    handlers = ProvidersManager().asset_uri_handlers
    assert handlers["adobe-offer"] is sanitize_offer_uri
    assert handlers["mypreferences"] is sanitize_profiles_uri


def test_openlineage_names() -> None:
    offer = convert_asset_to_openlineage(
        create_offer_asset(ims_org_id="A@AdobeOrg", sandbox_name="dev", offer_id="o1"), None
    )
    assert (offer.namespace, offer.name) == ("adobe-offer://A@AdobeOrg", "dev/o1")
    profiles = convert_asset_to_openlineage(create_profiles_asset(client_id="DEMO", alternate_id_type="Email"), None)
    assert (profiles.namespace, profiles.name) == ("mypreferences://DEMO", "email")

"""Provider registration (``apache_airflow_provider`` entry point) and connection form declarations.

Data only (plus the transport fields generated from their pydantic model): Airflow reads this when it
discovers providers, and Airflow 3.2+ builds the connection forms from ``conn-fields`` /
``ui-field-behaviour`` without importing our hooks. The README's extras tables are generated from the
same declarations (``make readme``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

PACKAGE_NAME = "airflow-provider-prefs"

ADOBE_CONN_TYPE = "adobe_offer_library"
MYPREFERENCES_CONN_TYPE = "mypreferences"

DEFAULT_PLATFORM_URL = "https://platform.adobe.io/data/core/dps"
DEFAULT_IMS_TOKEN_URL = "https://ims-na1.adobelogin.com/ims/token/v3"
DEFAULT_SCOPES = "openid,AdobeID,read_organizations,additional_info.projectedProductContext"
MYPREFERENCES_PRODUCTION_URL = "https://pm.mypreferences.com"
MYPREFERENCES_STAGING_URL = "https://pmstg.mypreferences.com"
DEFAULT_PROFILE_PATH = "/api/v4/{client_id}/profiles"

#: The provider's own section of the Airflow configuration (``airflow.cfg`` or ``AIRFLOW__PREFS__<OPTION>``).
CONFIG_SECTION = "prefs"
TOKEN_CACHE_DIR_OPTION = "token_cache_dir"
#: Airflow's configuration expands ``{AIRFLOW_HOME}``, as in its own defaults (``[core] dags_folder``).
DEFAULT_TOKEN_CACHE_DIR = "{AIRFLOW_HOME}/.cache/airflow_provider_prefs/tokens"

#: Every ``[prefs]`` option the provider reads, in the format of Airflow's ``config.yml`` (``get_provider_info``
#: ``config``): ``airflow config list --section prefs`` shows them with their defaults.
CONFIG: dict[str, dict[str, Any]] = {
    CONFIG_SECTION: {
        "description": "Options of airflow-provider-prefs (Adobe Offer Library and PossibleNOW MyPreferences).\n",
        "options": {
            TOKEN_CACHE_DIR_OPTION: {
                "description": (
                    "Directory of the OAuth token cache shared by the task processes of a worker and the "
                    "triggerer (Adobe IMS and MyPreferences OAuth tokens, one encrypted 0600 file per set of "
                    "credentials, reused until shortly before expiry). It must be local to the machine and "
                    "belong to the user running Airflow; it is created 0700, and the cache turns itself off "
                    "when the directory is not private. The extra ``share_across_tasks: false`` of a "
                    "connection turns the cache off for that connection.\n"
                ),
                "version_added": None,
                "type": "string",
                "example": "/var/cache/airflow/prefs-tokens",
                "default": DEFAULT_TOKEN_CACHE_DIR,
            },
        },
    },
}

#: The extras specific to each connection type; both also take the transport extras (:func:`conn_fields`).
ADOBE_EXTRAS: dict[str, dict[str, Any]] = {
    "ims_org_id": {
        "label": "IMS org id",
        "description": "Your organization, like ABC123@AdobeOrg; sent as x-gw-ims-org-id.",
        "schema": {"type": "string"},
    },
    "sandbox_name": {
        "label": "Sandbox name",
        "description": "Sent as x-sandbox-name; never defaulted (Adobe would silently use production).",
        "schema": {"type": "string"},
    },
    "scopes": {
        "label": "Scopes",
        "description": "Comma-separated OAuth scopes of the credential.",
        "schema": {"type": ["string", "null"], "default": DEFAULT_SCOPES},
    },
    # Not "ims_token_url": the Airflow UI masks extras whose name contains "token", so the default
    # was shown and saved as "***". The old name is still read (RENAMED_EXTRAS).
    "ims_endpoint": {
        "label": "IMS token endpoint URL",
        "description": "Adobe IMS token endpoint of the OAuth server-to-server credential.",
        "schema": {"type": ["string", "null"], "default": DEFAULT_IMS_TOKEN_URL, "format": "url"},
    },
}

MYPREFERENCES_EXTRAS: dict[str, dict[str, Any]] = {
    "client_id": {
        "label": "MyPreferences client id",
        "description": (
            "Your MyPreferences account id, a path parameter; an unknown one is a 404, and Test connection says so."
        ),
        "schema": {"type": "string"},
    },
    "environment": {
        "label": "Environment",
        "description": (
            "Used when Host is empty: production (https://pm.mypreferences.com) or staging "
            "(https://pmstg.mypreferences.com). Anything else is an error listing the valid values (case does not "
            "matter); a typo never falls back to production."
        ),
        "schema": {"type": ["string", "null"], "enum": ["production", "staging"], "default": "production"},
    },
    "profile_path": {
        "label": "Profile path template",
        "description": "Path of the profile collection below the base URL; must contain {client_id}.",
        "schema": {"type": ["string", "null"], "default": DEFAULT_PROFILE_PATH},
    },
    "auth_type": {
        "label": "Auth type",
        "description": (
            "bearer: the password is a static token. oauth: login/password are OAuth client credentials. "
            "When unset, oauth if oauth_endpoint and login are set."
        ),
        "schema": {"type": ["string", "null"], "enum": ["bearer", "oauth"], "default": "bearer"},
    },
    # Not "token_url": the Airflow UI masks extras whose name contains "token" (see ims_endpoint).
    "oauth_endpoint": {
        "label": "OAuth token endpoint URL",
        "description": "OAuth token endpoint; required for auth_type oauth.",
        "schema": {"type": ["string", "null"], "format": "url"},
    },
    "oauth_scope": {
        "label": "OAuth scope",
        "description": "Defaults to {client_id}/{login}.",
        "schema": {"type": ["string", "null"]},
    },
    "test_alternate_id": {
        "label": "Test connection: alternate id",
        "description": (
            "A profile Test connection reads; when set it must exist. Unset, Test connection looks up a profile "
            "that does not exist and accepts the 404 only once it has proven the client id is known."
        ),
        "schema": {"type": ["string", "null"]},
    },
    "test_alternate_id_type": {
        "label": "Test connection: alternate id type",
        "description": "The alternate id type of that lookup.",
        "schema": {"type": ["string", "null"], "default": "Email"},
    },
}

#: Old extra names still read (old -> new), per connection type; the new name wins when both are set.
RENAMED_EXTRAS: dict[str, dict[str, str]] = {
    ADOBE_CONN_TYPE: {"ims_token_url": "ims_endpoint"},
    MYPREFERENCES_CONN_TYPE: {"token_url": "oauth_endpoint"},
}

UI_FIELD_BEHAVIOUR: dict[str, dict[str, Any]] = {
    ADOBE_CONN_TYPE: {
        "hidden-fields": ["schema", "port"],
        "relabeling": {"host": "Platform base URL", "login": "Client ID (API key)", "password": "Client secret"},
        "placeholders": {"host": DEFAULT_PLATFORM_URL, "login": "client id of your OAuth server-to-server credential"},
    },
    MYPREFERENCES_CONN_TYPE: {
        "hidden-fields": ["schema", "port"],
        "relabeling": {
            "host": "Base URL",
            "login": "OAuth client id (oauth only)",
            "password": "Bearer token or OAuth client secret",
        },
        "placeholders": {"host": MYPREFERENCES_PRODUCTION_URL},
    },
}


SERVICE_EXTRAS: dict[str, dict[str, dict[str, Any]]] = {
    ADOBE_CONN_TYPE: ADOBE_EXTRAS,
    MYPREFERENCES_CONN_TYPE: MYPREFERENCES_EXTRAS,
}


@cache
def transport_fields() -> dict[str, dict[str, Any]]:
    """The transport extras' form fields, generated from their settings model (on first use: DAG files
    that import an operator for its connection type constant do not pay for the model)."""
    from airflow_provider_prefs.transport.settings import TransportSettings, form_fields

    return form_fields(TransportSettings)


def conn_fields(conn_type: str) -> dict[str, dict[str, Any]]:
    """Every extra of ``conn_type``, as Airflow ``conn-fields``: the service's own, then the transport ones."""
    return {**SERVICE_EXTRAS[conn_type], **transport_fields()}


def get_provider_info() -> dict[str, Any]:
    """What Airflow's ProvidersManager reads through the ``apache_airflow_provider`` entry point."""
    from airflow_provider_prefs import __version__

    return {
        "package-name": PACKAGE_NAME,
        "name": "Marketing preferences (Adobe Offer Library, PossibleNOW MyPreferences)",
        "description": "Patch Adobe Journey Optimizer fallback offers and PossibleNOW MyPreferences profiles.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "Adobe Journey Optimizer Offer Library", "tags": ["service"]},
            {"integration-name": "PossibleNOW MyPreferences", "tags": ["service"]},
        ],
        "hooks": [
            {
                "integration-name": "Adobe Journey Optimizer Offer Library",
                "python-modules": ["airflow_provider_prefs.hooks.offer_library"],
            },
            {
                "integration-name": "PossibleNOW MyPreferences",
                "python-modules": ["airflow_provider_prefs.hooks.mypreferences"],
            },
        ],
        "operators": [
            {
                "integration-name": "Adobe Journey Optimizer Offer Library",
                "python-modules": [
                    "airflow_provider_prefs.operators.offer_library",
                    "airflow_provider_prefs.operators.bulk",
                ],
            },
            {
                "integration-name": "PossibleNOW MyPreferences",
                "python-modules": [
                    "airflow_provider_prefs.operators.mypreferences",
                    "airflow_provider_prefs.operators.bulk",
                ],
            },
        ],
        "sensors": [
            {
                "integration-name": "PossibleNOW MyPreferences",
                "python-modules": ["airflow_provider_prefs.sensors.profile_status"],
            }
        ],
        "triggers": [
            {
                "integration-name": "PossibleNOW MyPreferences",
                "python-modules": ["airflow_provider_prefs.triggers.profile_status"],
            }
        ],
        "asset-uris": [
            {
                "schemes": ["adobe-offer"],
                "handler": "airflow_provider_prefs.assets.sanitize_offer_uri",
                "factory": "airflow_provider_prefs.assets.create_offer_asset",
                "to_openlineage_converter": "airflow_provider_prefs.assets.convert_asset_to_openlineage",
            },
            {
                "schemes": ["mypreferences"],
                "handler": "airflow_provider_prefs.assets.sanitize_profiles_uri",
                "factory": "airflow_provider_prefs.assets.create_profiles_asset",
                "to_openlineage_converter": "airflow_provider_prefs.assets.convert_asset_to_openlineage",
            },
        ],
        "config": CONFIG,
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_prefs.hooks.offer_library.OfferLibraryHook",
                "hook-name": "Adobe Journey Optimizer Offer Library",
                "connection-type": ADOBE_CONN_TYPE,
                "conn-fields": conn_fields(ADOBE_CONN_TYPE),
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR[ADOBE_CONN_TYPE],
            },
            {
                "hook-class-name": "airflow_provider_prefs.hooks.mypreferences.MyPreferencesHook",
                "hook-name": "PossibleNOW MyPreferences",
                "connection-type": MYPREFERENCES_CONN_TYPE,
                "conn-fields": conn_fields(MYPREFERENCES_CONN_TYPE),
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR[MYPREFERENCES_CONN_TYPE],
            },
        ],
    }

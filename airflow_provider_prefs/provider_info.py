"""Provider registration (``apache_airflow_provider`` entry point) and connection form declarations.

Pure data on purpose: Airflow reads this when it discovers providers, and Airflow 3.2+ builds the
connection forms from ``conn-fields`` / ``ui-field-behaviour`` without importing our hooks.
"""

from __future__ import annotations

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

#: Extras both connection types understand (transport and retry tuning).
TRANSPORT_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": {
        "label": "Read timeout (s)",
        "description": "Seconds to wait for an answer; every request has a timeout.",
        "schema": {"type": ["number", "null"], "default": 60},
    },
    "connect_timeout": {
        "label": "Connect timeout (s)",
        "schema": {"type": ["number", "null"], "default": 10},
    },
    "max_attempts": {
        "label": "Max attempts",
        "description": "Tries per request on 429, on 5xx for reads, and on connection failures (1 = no retry).",
        "schema": {"type": ["integer", "null"], "default": 5, "minimum": 1, "maximum": 20},
    },
    "max_total_seconds": {
        "label": "Max total retry wait (s)",
        "description": "Retries of one request stop once their waits would exceed this.",
        "schema": {"type": ["number", "null"], "default": 120},
    },
    "max_request_bytes": {
        "label": "Max request body (bytes)",
        "description": "Larger patches are refused before sending (nothing is applied).",
        "schema": {"type": ["integer", "null"], "default": 1048576, "minimum": 1},
    },
    "backoff_base": {
        "label": "Backoff base (s)",
        "description": "First retry wait; doubles per attempt (with jitter) up to backoff_max.",
        "schema": {"type": ["number", "null"], "default": 0.5, "minimum": 0},
    },
    "backoff_max": {
        "label": "Backoff max (s)",
        "description": "Longest wait between two tries.",
        "schema": {"type": ["number", "null"], "default": 30, "minimum": 0},
    },
    "max_retry_after": {
        "label": "Max Retry-After honoured (s)",
        "description": "A 429 asking to wait longer than this fails at once instead of waiting.",
        "schema": {"type": ["number", "null"], "default": 60, "minimum": 0},
    },
    "max_response_bytes": {
        "label": "Max answer size (bytes)",
        "description": "Answers larger than this are refused (ResponseTooLargeError).",
        "schema": {"type": ["integer", "null"], "default": 10 * 1024 * 1024, "minimum": 1},
    },
    "pool_size": {
        "label": "Connection pool size",
        "description": "Pooled connections per hook; also caps bulk concurrency.",
        "schema": {"type": ["integer", "null"], "default": 16, "minimum": 1},
    },
    "ca_bundle": {
        "label": "CA bundle path",
        "description": "PEM bundle for a private CA. Certificates are always verified unless verify_tls is false.",
        "schema": {"type": ["string", "null"]},
    },
    "verify_tls": {
        "label": "Verify TLS certificates",
        "description": "Turn off only for local testing; a warning is logged when off.",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
    "share_across_tasks": {
        "label": "Share OAuth tokens across tasks",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
}

ADOBE_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "ims_org_id": {
        "label": "IMS org id",
        "description": "Your organization id, like ABC123@AdobeOrg (sent as x-gw-ims-org-id).",
        "schema": {"type": "string"},
    },
    "sandbox_name": {
        "label": "Sandbox name",
        "description": "Required: Adobe silently uses production when it is missing, so it is never defaulted.",
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
        "description": "Adobe IMS OAuth server-to-server token endpoint.",
        "schema": {"type": ["string", "null"], "default": DEFAULT_IMS_TOKEN_URL, "format": "url"},
    },
    **TRANSPORT_CONN_FIELDS,
}

MYPREFERENCES_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "client_id": {
        "label": "MyPreferences client id",
        "description": "Your organization's MyPreferences account id (a path parameter; unknown ids are a 404).",
        "schema": {"type": "string"},
    },
    "environment": {
        "label": "Environment",
        "description": "Used when Host is empty: production (pm.mypreferences.com) or staging (pmstg).",
        "schema": {"type": ["string", "null"], "enum": ["production", "staging"], "default": "production"},
    },
    "profile_path": {
        "label": "Profile path template",
        "schema": {"type": ["string", "null"], "default": DEFAULT_PROFILE_PATH},
    },
    "auth_type": {
        "label": "Auth type",
        "description": "bearer: the password is a static token. oauth: login/password are OAuth client credentials.",
        "schema": {"type": ["string", "null"], "enum": ["bearer", "oauth"], "default": "bearer"},
    },
    # Not "token_url": the Airflow UI masks extras whose name contains "token" (see ims_endpoint).
    "oauth_endpoint": {
        "label": "OAuth token endpoint URL",
        "description": "Required for auth_type oauth: where the client-credentials token is requested.",
        "schema": {"type": ["string", "null"], "format": "url"},
    },
    "oauth_scope": {
        "label": "OAuth scope",
        "description": "Defaults to {client id}/{login}.",
        "schema": {"type": ["string", "null"]},
    },
    "test_alternate_id": {
        "label": "Test connection: alternate id",
        "description": "A profile the connection test reads; when set, it must exist.",
        "schema": {"type": ["string", "null"]},
    },
    "test_alternate_id_type": {
        "label": "Test connection: alternate id type",
        "schema": {"type": ["string", "null"], "default": "Email"},
    },
    **TRANSPORT_CONN_FIELDS,
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


CONN_FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    ADOBE_CONN_TYPE: ADOBE_CONN_FIELDS,
    MYPREFERENCES_CONN_TYPE: MYPREFERENCES_CONN_FIELDS,
}


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
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_prefs.hooks.offer_library.OfferLibraryHook",
                "hook-name": "Adobe Journey Optimizer Offer Library",
                "connection-type": ADOBE_CONN_TYPE,
                "conn-fields": ADOBE_CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR[ADOBE_CONN_TYPE],
            },
            {
                "hook-class-name": "airflow_provider_prefs.hooks.mypreferences.MyPreferencesHook",
                "hook-name": "PossibleNOW MyPreferences",
                "connection-type": MYPREFERENCES_CONN_TYPE,
                "conn-fields": MYPREFERENCES_CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR[MYPREFERENCES_CONN_TYPE],
            },
        ],
    }

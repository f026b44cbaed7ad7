"""Airflow connections that point the hooks at a running sandbox (used by the demo, tests and users)."""

from __future__ import annotations

import json
from typing import Any

#: Credentials the default seed (seed.json) accepts. They are sandbox-only values, not real secrets.
ADOBE_CLIENT_ID = "demo-client-id"
ADOBE_CLIENT_SECRET = "demo-client-secret"
ADOBE_IMS_ORG = "DEMO123@AdobeOrg"
ADOBE_SANDBOX_NAME = "dev"
MP_CLIENT_ID = "DEMO"
MP_STATIC_TOKEN = "demo-mp-token"
MP_OAUTH_CLIENT_ID = "demo-mp-client"
MP_OAUTH_CLIENT_SECRET = "demo-mp-secret"


def sandbox_connections(url: str, **transport: Any) -> dict[str, dict[str, Any]]:
    """Connection definitions (conn_id -> JSON form) for a sandbox at ``url``.

    ``transport`` adds extras to every connection (e.g. ``timeout=5``, ``backoff_base=0.05``).
    """
    url = url.rstrip("/")
    return {
        "adobe_offer_library_default": {
            "conn_type": "adobe_offer_library",
            "host": f"{url}/data/core/dps",
            "login": ADOBE_CLIENT_ID,
            "password": ADOBE_CLIENT_SECRET,
            "extra": {
                "ims_org_id": ADOBE_IMS_ORG,
                "sandbox_name": ADOBE_SANDBOX_NAME,
                "ims_endpoint": f"{url}/ims/token/v3",
                **transport,
            },
        },
        "mypreferences_default": {
            "conn_type": "mypreferences",
            "host": url,
            "password": MP_STATIC_TOKEN,
            "extra": {"client_id": MP_CLIENT_ID, "auth_type": "bearer", **transport},
        },
        "mypreferences_oauth": {
            "conn_type": "mypreferences",
            "host": url,
            "login": MP_OAUTH_CLIENT_ID,
            "password": MP_OAUTH_CLIENT_SECRET,
            "extra": {
                "client_id": MP_CLIENT_ID,
                "auth_type": "oauth",
                "oauth_endpoint": f"{url}/mypreferences/oauth/token",
                **transport,
            },
        },
    }


def airflow_conn_env(url: str, **transport: Any) -> dict[str, str]:
    """The same connections as ``AIRFLOW_CONN_<ID>`` environment variables (JSON form)."""
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(definition)
        for conn_id, definition in sandbox_connections(url, **transport).items()
    }

"""The transport extras both connection types accept: the one place their names, defaults and limits live.

The connection form fields (``conn-fields`` in :mod:`airflow_provider_prefs.provider_info`) and the
README's transport table are generated from this model, and operators' ``transport={...}``
overrides are validated against it, so none of them can drift from what the client really does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from airflow_provider_prefs.jsonvalue import DEFAULT_MAX_REQUEST_BYTES


class TransportSettings(BaseModel):
    """Timeouts, retries, TLS and pooling of one connection (extras, with operator overrides on top).

    ``title`` is the form label, ``description`` the form help and the README's "meaning" column.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    timeout: float = Field(
        default=60.0,
        gt=0,
        title="Timeout per request (s)",
        description="Seconds one request may take in all: connecting, sending and the complete answer (a server "
        "trickling its answer is cut off at this bound). Token requests too; each retry gets its own.",
    )
    connect_timeout: float = Field(
        default=10.0, gt=0, title="Connect timeout (s)", description="Seconds to wait for a connection."
    )
    max_attempts: int = Field(
        default=5,
        ge=1,
        le=20,
        title="Max attempts",
        description="Tries per request on 429, on 5xx for reads, and on connection failures (1 = no retry).",
    )
    backoff_base: float = Field(
        default=0.5,
        ge=0,
        title="Backoff base (s)",
        description="First retry wait; doubles per attempt (full jitter) up to backoff_max.",
    )
    backoff_max: float = Field(
        default=30.0, ge=0, title="Backoff max (s)", description="Longest wait between two tries."
    )
    max_total_seconds: float = Field(
        default=120.0,
        ge=0,
        title="Max total retry wait (s)",
        description="Retries of one request stop once their waits would exceed this.",
    )
    max_retry_after: float = Field(
        default=60.0,
        ge=0,
        title="Max Retry-After honoured (s)",
        description="A 429 asking to wait longer than this fails at once instead of waiting.",
    )
    ca_bundle: str | None = Field(
        default=None,
        title="CA bundle path",
        description="PEM file (or directory) of a private CA; certificates are always verified unless verify_tls is "
        "false. Unset: REQUESTS_CA_BUNDLE, else CURL_CA_BUNDLE, else SSL_CERT_FILE / SSL_CERT_DIR, else certifi.",
    )
    proxy: SecretStr | None = Field(
        default=None,
        title="Proxy URL",
        description="http(s)://[user:password@]host:port; every request of this connection (token endpoint "
        "included) goes through it, whatever HTTP(S)_PROXY, ALL_PROXY and NO_PROXY say. Kept secret.",
    )
    verify_tls: bool = Field(
        default=True,
        title="Verify TLS certificates",
        description="Turn off only for local testing; a warning is logged when off.",
    )
    max_response_bytes: int = Field(
        default=10 * 1024 * 1024,
        gt=0,
        title="Max answer size (bytes)",
        description="Answers larger than this are refused (ResponseTooLargeError).",
    )
    max_request_bytes: int = Field(
        default=DEFAULT_MAX_REQUEST_BYTES,
        gt=0,
        title="Max request body (bytes)",
        description="A patch body larger than this is refused before sending; nothing is applied.",
    )
    pool_size: int = Field(
        default=16,
        ge=1,
        title="Connection pool size",
        description="Pooled connections per hook; also caps bulk concurrency.",
    )
    share_across_tasks: bool = Field(
        default=True,
        title="Share OAuth tokens across tasks",
        description="Share OAuth tokens between the task processes of a worker (see transport/token_cache.py).",
    )

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value() if value is not None else ""
        if not url:
            return None
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            masked = set(url) == {"*"}
            raise ValueError(
                "not an http(s) proxy URL"
                + (" (the Airflow UI saved its mask instead of the value: enter the proxy URL again)" if masked else "")
            )
        return value


#: JSON schema keywords copied into a form field (the rest of pydantic's schema means nothing to the form).
_FORM_KEYWORDS = ("default", "minimum", "maximum", "exclusiveMinimum", "enum", "format")


def _plain(value: Any) -> Any:
    """``60`` rather than ``60.0``: the form shows a whole number as one, and the saved extra then equals it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def form_fields(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Airflow ``conn-fields`` for every field of ``model``: label, help text and a nullable JSON schema.

    Every field is optional in the form (``null`` allowed): an empty field takes the model's default.
    """
    fields: dict[str, dict[str, Any]] = {}
    for name, prop in model.model_json_schema()["properties"].items():
        options = [option for option in prop.get("anyOf", [prop]) if option.get("type") not in (None, "null")]
        schema: dict[str, Any] = {"type": [*(option["type"] for option in options), "null"]}
        for source in (*options, prop):  # an optional field's format (a secret's "password") is in its option
            schema.update({key: _plain(source[key]) for key in _FORM_KEYWORDS if source.get(key) is not None})
        fields[name] = {"label": prop["title"], "description": prop["description"], "schema": schema}
    return fields

"""What both hooks share: reading the Airflow connection, transport settings, the client, patches."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airflow_provider_prefs._compat import BaseHook, mask_secret
from airflow_provider_prefs.errors import (
    BadRequestError,
    ConcurrentModificationError,
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    PrefsError,
)
from airflow_provider_prefs.retry import RetryPolicy

if TYPE_CHECKING:
    from airflow_provider_prefs.auth import TokenProvider
    from airflow_provider_prefs.changes import Resource
    from airflow_provider_prefs.exactly_once import PatchResult
    from airflow_provider_prefs.http_client import ApiClient, ApiRequest, ClientSettings
    from airflow_provider_prefs.models import BulkReport, PatchOutcome
    from airflow_provider_prefs.patching import Patch, PatchRules


class TransportSettings(BaseModel):
    """Timeouts, retries and TLS, read from connection extras (operators may override)."""

    model_config = ConfigDict(extra="ignore")

    timeout: float = Field(default=60.0, gt=0)
    connect_timeout: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_base: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=30.0, ge=0)
    max_total_seconds: float = Field(default=120.0, ge=0)
    max_retry_after: float = Field(default=60.0, ge=0)
    ca_bundle: str | None = None
    verify_tls: bool = True
    max_response_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    pool_size: int = Field(default=16, ge=1)
    #: Share OAuth tokens with the worker's other task processes (see token_cache); False = per process.
    token_cache: bool = True

    def retry_policy(self) -> RetryPolicy:
        """The retry policy these settings describe."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            max_total_seconds=self.max_total_seconds,
            max_retry_after=self.max_retry_after,
        )

    def client_settings(self, base_headers: Mapping[str, str]) -> ClientSettings:
        """Settings for :class:`ApiClient` / :class:`AsyncApiClient`."""
        from airflow_provider_prefs.http_client import ClientSettings

        verify: bool | str = self.ca_bundle or True
        if not self.verify_tls:
            verify = False
        return ClientSettings(
            base_headers=dict(base_headers),
            policy=self.retry_policy(),
            connect_timeout=self.connect_timeout,
            read_timeout=self.timeout,
            verify=verify,
            max_response_bytes=self.max_response_bytes,
            pool_size=self.pool_size,
        )


def base_url_of(host: str | None, port: int | None, default: str) -> str:
    """The service base URL from the connection's host field (a full URL, or a bare host name)."""
    if not host:
        return default.rstrip("/")
    if "://" not in host:
        host = f"https://{host}"
    if port and host.count(":") < 2:
        scheme, rest = host.split("://", 1)
        name, _, path = rest.partition("/")
        host = f"{scheme}://{name}:{port}" + (f"/{path}" if path else "")
    return host.rstrip("/")


def require_id(value: Any, name: str) -> str:
    """Reject empty or non-string ids before any request is built."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string, got {value!r}")
    return value


def parse_model(model: type[BaseModel], data: Mapping[str, Any], what: str) -> Any:
    """Validate connection data into ``model``; one readable :class:`ConfigurationError` otherwise."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors())
        raise ConfigurationError(f"{what} is invalid: {problems}") from None


class PrefsApiHook(BaseHook):
    """Base of both service hooks: connection parsing, secret masking, one client, exactly-once patches.

    Subclasses describe their service (connection fields, headers, token source, patch rules); all
    I/O goes through :class:`~airflow_provider_prefs.http_client.ApiClient`.
    """

    conn_name_attr: ClassVar[str] = "conn_id"
    patch_rules: ClassVar[PatchRules]
    #: Field whose change proves a patch landed (``etag`` for offers); None compares documents.
    version_key: ClassVar[str | None] = None

    def __init__(
        self, conn_id: str | None = None, *, transport_overrides: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id: str = conn_id or str(getattr(self, "default_conn_name", ""))
        self.transport_overrides = dict(transport_overrides or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    @cached_property
    def connection(self) -> Any:
        """The Airflow connection, with every secret in it registered with the masker."""
        return load_connection(self.conn_id, type(self))

    @cached_property
    def transport(self) -> TransportSettings:
        """Timeouts, retries and TLS from the connection extras, with operator overrides on top."""
        extras = {**self.connection.extra_dejson, **self.transport_overrides}
        return parse_model(TransportSettings, extras, f"connection {self.conn_id!r} transport settings")

    @cached_property
    def client(self) -> ApiClient:
        """The one client (and ``requests.Session``) every call of this hook goes through."""
        from airflow_provider_prefs.http_client import ApiClient

        return ApiClient(self.transport.client_settings(self.base_headers()), self.token_provider())

    def base_headers(self) -> dict[str, str]:
        """Headers sent on every call of this service (besides ``Authorization``)."""
        return {"Accept": "application/json"}

    def token_provider(self) -> TokenProvider:
        """Where the bearer token comes from."""
        raise NotImplementedError

    def close(self) -> None:
        """Release pooled connections."""
        if "client" in self.__dict__:
            self.client.close()

    def send(self, request: ApiRequest) -> Any:
        """Send one request through the shared client (retries included)."""
        return self.client.send(request)

    def send_patch(
        self,
        request: ApiRequest,
        ops: Patch,
        *,
        read: Callable[[], dict[str, Any]],
        base: dict[str, Any] | None = None,
    ) -> PatchResult:
        """Send a validated patch exactly once (see :mod:`airflow_provider_prefs.exactly_once`)."""
        from airflow_provider_prefs.exactly_once import needs_base, send_exactly_once

        if base is None and needs_base(ops):
            # Costs one GET, and only for unguarded array-position patches: without it a lost
            # answer could not be told apart from a patch that never landed.
            base = read()
        try:
            return send_exactly_once(
                action=request.action,
                ops=ops,
                rules=self.patch_rules,
                send=lambda: self.client.send(request),
                read=read,
                base=base,
                version_key=self.version_key,
                max_resends=self.transport.max_attempts - 1,
            )
        except (BadRequestError, ConflictError) as exc:
            failed = _broken_guard(ops, read) if any(op["op"] == "test" for op in ops) else None
            if failed is None:
                raise
            raise ConcurrentModificationError(
                f"{request.action} refused: the resource does not match the patch's test of {failed['path']} "
                f"(expected {failed['value']!r}), so it changed since the patch was planned or the test is "
                "wrong. Nothing was applied; re-read the resource before patching again."
            ) from exc

    def bulk_apply(
        self,
        items: Iterable[Any],
        resource_of: Callable[[Any], tuple[Resource, dict[str, Any]]],
        *,
        max_concurrency: int = 8,
        dry_run: bool = False,
    ) -> BulkReport:
        """Apply many changes over this hook's one session; failures are recorded, never skipped.

        ``resource_of`` turns one input item into the resource and its ``patch``/``desired`` change.
        Concurrency is capped at the connection pool size so no connection is opened and dropped.
        """
        from airflow_provider_prefs.bulk import failed_outcome, run_bulk
        from airflow_provider_prefs.changes import apply_change

        if max_concurrency > self.transport.pool_size:
            self.log.warning(
                "max_concurrency %d capped to the connection pool size %d (pool_size extra)",
                max_concurrency,
                self.transport.pool_size,
            )
            max_concurrency = self.transport.pool_size

        def handle(item: Any) -> PatchOutcome:
            target = f"item {item!r}"[:200]
            try:
                resource, change = resource_of(item)
                target = resource.target
                return apply_change(resource, patch=change.get("patch"), desired=change.get("desired"), dry_run=dry_run)
            except PrefsError as exc:
                return failed_outcome(target, exc)

        return run_bulk(items, handle, max_concurrency=max_concurrency)

    def probe(self) -> str:
        """A cheap read-only call proving the connection works; returns what it showed."""
        raise NotImplementedError

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's connection test: a cheap read-only call; never raises."""
        try:
            return True, self.probe()
        except PrefsError as exc:
            return False, str(exc)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"


def _broken_guard(ops: Patch, read: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """The first ``test`` op that no longer holds on a fresh read, if any."""
    from airflow_provider_prefs.patching import apply_patch

    current = read()
    for op in ops:
        if op["op"] == "test":
            try:
                apply_patch(current, [op])
            except InvalidInputError:
                return op
    return None


def load_connection(conn_id: str, hook_class: type[PrefsApiHook]) -> Any:
    """Fetch a connection and mask its secrets; a missing one becomes a :class:`ConfigurationError`."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:
        if "isn't defined" in str(exc) or type(exc).__name__ == "AirflowNotFoundException":
            raise ConfigurationError(
                f"Airflow connection {conn_id!r} is not defined: create it in the UI or set "
                f"AIRFLOW_CONN_{conn_id.upper()} (type {getattr(hook_class, 'conn_type', '?')!r})"
            ) from None
        raise
    mask_connection(conn)
    return conn


async def aload_connection(conn_id: str, hook_class: type[PrefsApiHook]) -> Any:
    """Async twin of :func:`load_connection` for triggers."""
    try:
        if hasattr(BaseHook, "aget_connection"):
            conn = await BaseHook.aget_connection(conn_id)
        else:  # Airflow 2.10
            from asgiref.sync import sync_to_async

            conn = await sync_to_async(BaseHook.get_connection)(conn_id)
    except Exception as exc:
        if type(exc).__name__ == "AirflowNotFoundException":
            raise ConfigurationError(f"Airflow connection {conn_id!r} is not defined") from None
        raise
    mask_connection(conn)
    return conn


SECRET_EXTRA_KEYS = frozenset({"client_secret", "token", "access_token", "api_key", "password"})


def mask_connection(conn: Any) -> None:
    """Register the password and secret-looking extras with Airflow's secrets masker."""
    mask_secret(conn.password)
    for key, value in (conn.extra_dejson or {}).items():
        if key in SECRET_EXTRA_KEYS and isinstance(value, str):
            mask_secret(value)

"""What both hooks share: reading the Airflow connection, transport settings, the client, resources to patch."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict
from urllib.parse import urlsplit

from airflow.providers.common.compat.connection import get_async_connection
from airflow.sdk import BaseHook
from pydantic import BaseModel, SecretStr, ValidationError

from airflow_provider_prefs.errors import (
    ConfigurationError,
    InvalidInputError,
    PrefsError,
    quoted,
    redact_url,
)
from airflow_provider_prefs.models import ChangeOutcome
from airflow_provider_prefs.transport.auth import mask_secret
from airflow_provider_prefs.transport.settings import TransportSettings

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from airflow_provider_prefs.patching.changes import Carried, Change, PendingRecord, Resource
    from airflow_provider_prefs.patching.checkpoint import Checkpoint
    from airflow_provider_prefs.patching.rules import Patch, PatchRules
    from airflow_provider_prefs.transport.auth import TokenProvider
    from airflow_provider_prefs.transport.client import ApiClient, ApiRequest


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


#: Longest id accepted. Real ids are short (``fallbackOffer1234``, an e-mail address); a longer one
#: is a templating mistake, and URLs that long are refused by servers and proxies anyway.
MAX_ID_CHARS = 1024


def require_id(value: Any, name: str, *, path_segment: bool = False) -> str:
    """Reject unusable ids before any request is built.

    :param path_segment: the id becomes one URL path segment: ``.`` and ``..`` are refused, since
        every HTTP stack resolves them (``/offers/..`` is the base path, not an offer).
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string, got {quoted(value)}")
    if len(value) > MAX_ID_CHARS:
        raise InvalidInputError(
            f"{name} is {len(value):,} characters long (limit {MAX_ID_CHARS:,}): {quoted(value)}; "
            "check the value or template that produced it"
        )
    if path_segment and value.strip() in (".", ".."):
        raise InvalidInputError(
            f"{name} {value!r} is a dot segment: the request would go to another URL; give the real id"
        )
    return value


def parse_model(
    model: type[BaseModel], data: Mapping[str, Any], what: str, *, names: Mapping[str, str] | None = None
) -> Any:
    """Validate connection data into ``model``; one readable :class:`ConfigurationError` otherwise.

    ``names`` says where each model field lives in the connection (``login``, ``extra 'x'``...), so
    the message names what the user must edit; field values are quoted unless the field is secret.
    """
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(_problem(model, err, names or {}) for err in exc.errors())
        raise ConfigurationError(f"{what} is invalid: {problems}") from None


def _problem(model: type[BaseModel], err: Any, names: Mapping[str, str]) -> str:
    """One validation error as "<where it is set>: <what is wrong> (got <value>)"."""
    field = str(err["loc"][0]) if err["loc"] else ""
    message = str(err["msg"]).removeprefix("Value error, ")
    if not field:  # a check across fields: its message names them
        return message
    where = names.get(field, f"extra {field!r}")
    if err["type"] in ("missing", "string_too_short"):
        return f"{where} is required but empty"
    info = model.model_fields.get(field)
    secret = info is not None and "SecretStr" in str(info.annotation)
    shown = "" if secret or err["type"] == "value_error" else f" (got {repr(err.get('input'))[:80]})"
    return f"{where}: {message}{shown}"


def check_url(value: str) -> str:
    """Reject a URL that cannot be requested, so it fails once here instead of after retries."""
    masked = bool(value) and set(value) == {"*"}
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        hint = (
            " (the Airflow UI saved its mask instead of the value; enter the URL again, or remove the extra "
            "to use the default)"
            if masked
            else ""
        )
        raise ValueError(f"not an http(s) URL: {redact_url(value)[:120]!r}{hint}")
    return value


class ConnectionExtras:
    """A connection's extras, checked against what its type declares (``provider_info`` conn-fields).

    Unknown keys are an error (a typo such as ``timout`` would otherwise be silently ignored), old
    names of renamed extras are read under their new name, and unset form fields (``None`` or ``""``)
    count as absent so the defaults apply.
    """

    def __init__(self, conn_id: str, conn_type: str, raw: Any) -> None:
        from airflow_provider_prefs.provider_info import RENAMED_EXTRAS, conn_fields

        self.conn_id = conn_id
        self.conn_type = conn_type
        if not isinstance(raw, Mapping):
            raise ConfigurationError(
                f"Airflow connection {conn_id!r}: the Extra field must be a JSON object, got {type(raw).__name__}"
            )
        declared = conn_fields(conn_type)
        renamed = RENAMED_EXTRAS.get(conn_type, {})
        # Forms of older Airflow versions saved custom fields as "extra__<conn_type>__<name>".
        prefix = f"extra__{conn_type}__"
        raw = {str(key).removeprefix(prefix): value for key, value in raw.items()}
        unknown = sorted(str(key) for key in raw if key not in declared and key not in renamed)
        if unknown:
            raise ConfigurationError(unknown_extras_message(conn_id, conn_type, unknown, [*declared, *renamed]))
        #: Where each value came from, for messages: the old name when it was read from one.
        self.origin: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        for key, value in raw.items():
            if value is None or value == "":
                continue
            new = renamed.get(key, key)
            if new != key and raw.get(new) not in (None, ""):
                continue  # both names set: the new one wins
            self.values[new] = value
            self.origin[new] = key

    def get(self, key: str, default: Any = None) -> Any:
        """The value of an extra (by its current name), or ``default`` when unset."""
        return self.values.get(key, default)

    def where(self, key: str) -> str:
        """How to name an extra in a message: by the name the user wrote."""
        old = self.origin.get(key, key)
        return f"extra {key!r}" if old == key else f"extra {old!r} (old name of {key!r})"

    def names(self, fields: Iterable[str], **others: str) -> dict[str, str]:
        """Display names for :func:`parse_model`: ``others`` for non-extra fields, extras otherwise."""
        return {**{field: self.where(field) for field in fields}, **others}


def unknown_extras_message(conn_id: str, conn_type: str, unknown: list[str], valid: Iterable[str]) -> str:
    """Name each unknown extra (with the nearest valid one) and list every valid name."""
    import difflib

    valid = sorted(valid)
    named = []
    for key in unknown[:5]:
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        named.append(f"{key[:60]!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (
        f"Airflow connection {conn_id!r} ({conn_type}) has unknown extra(s) {', '.join(named)}; "
        f"fix or remove them in the connection's Extra. Valid extras: {', '.join(valid)}"
    )


def check_transport_overrides(overrides: Mapping[str, Any], what: str) -> None:
    """Operator ``transport=`` overrides may only name transport settings."""
    unknown = sorted(str(key) for key in overrides if key not in TransportSettings.model_fields)
    if unknown:
        raise ConfigurationError(
            f"{what} name unknown transport setting(s) {', '.join(repr(k[:60]) for k in unknown)}; "
            f"valid: {', '.join(sorted(TransportSettings.model_fields))}"
        )


def parse_transport(extras: ConnectionExtras, overrides: Mapping[str, Any] | None = None) -> TransportSettings:
    """Transport settings from checked extras, with operator overrides on top."""
    fields = TransportSettings.model_fields
    what = f"Airflow connection {extras.conn_id!r} ({extras.conn_type})"
    check_transport_overrides(overrides or {}, f"{what}: transport= overrides")
    data = {key: value for key, value in extras.values.items() if key in fields}
    data.update({key: value for key, value in (overrides or {}).items() if value is not None})
    names = {key: f"transport override {key!r}" if key in (overrides or {}) else extras.where(key) for key in fields}
    return parse_model(TransportSettings, data, what, names=names)


def client_credentials_token(
    token_url: str, client_id: str, client_secret: SecretStr, scope: str | None, *, share: bool
) -> TokenProvider:
    """The process's OAuth client-credentials token provider for these credentials (cached until shortly
    before expiry); ``share`` also puts the token in the worker-wide
    :mod:`~airflow_provider_prefs.transport.token_cache`.
    """
    from airflow_provider_prefs.transport.auth import ClientCredentials, shared_token_provider
    from airflow_provider_prefs.transport.token_cache import shared_cache

    credentials = ClientCredentials(token_url=token_url, client_id=client_id, client_secret=client_secret, scope=scope)
    return shared_token_provider(credentials, shared_cache(share))


_CLIENT_LOCK = threading.Lock()


@dataclass(frozen=True)
class ResourceDescription:
    """What a service hook says about one offer or profile: where it lives and how to summarize it.

    :meth:`PrefsApiHook.resource` turns it into the :class:`~airflow_provider_prefs.patching.changes.Resource`
    the patch engine reads and patches.
    """

    #: How messages name it, e.g. ``offer 'fallbackOffer1234'``; requests are named ``GET <target>``...
    target: str
    url: str
    params: Mapping[str, str]
    #: The outcome with the service's summary of the answered (or re-read) document added.
    summarize: Callable[[ChangeOutcome, dict[str, Any]], ChangeOutcome]
    #: The Airflow asset the resource belongs to (see :mod:`airflow_provider_prefs.assets`).
    asset_uri: str | None = None
    #: Identity of the resource as the service compares it (never the display ``target``): the service,
    #: its account and the id, normalized the way the vendor matches them. Changes with equal keys
    #: touch the same document, so a bulk run applies them one after the other, in input order.
    key: tuple[str, ...] = ()
    #: True when the PATCH answer is the whole document; False when it is only metadata.
    patch_answers_document: bool = True
    #: What every answer about it (read or patch) must be; the client refuses anything else.
    answer: type[BaseModel] | None = None

    def request(self, method: str, body: Patch | None = None) -> ApiRequest:
        """A request to this resource; one with a body (a PATCH) is never resent blindly by the client."""
        from airflow_provider_prefs.transport.client import ApiRequest

        return ApiRequest(
            method,
            self.url,
            action=f"{method} {self.target}",
            params=dict(self.params),
            json_body=body,
            idempotent=body is None,
            expects=self.answer,
        )


class ChangeOptions(TypedDict, total=False):
    """The keyword arguments of every change (``change``, ``change_offer``, ``change_profile``)."""

    #: A JSON Patch (list of operations) or its JSON text. Give this or ``desired``.
    patch: Any
    #: The fields the resource should have (a JSON Merge Patch of it). Give this or ``patch``.
    desired: Any
    #: Read, plan and log the diff; send nothing.
    dry_run: bool
    #: Let ``desired`` change a field's JSON type (refused by default: far more often a mistake).
    allow_type_changes: bool
    #: The document as you last read it: guards are taken from it instead of a fresh read.
    base: dict[str, Any] | None
    #: Memory across retries (see :mod:`~airflow_provider_prefs.patching.checkpoint`); in a task,
    #: ``TaskCheckpoint.from_context(context)``, and ``checkpoint.forget_on_success()`` as its last step so a
    #: later clear changes anew (Airflow does that itself with ``[state_store] clear_on_success``).
    checkpoint: Checkpoint | None
    #: With a checkpoint, also record the outcome (one more store call; default True), so a retry returns it
    #: without reading the resource; operators that succeed right after the answer turn it off.
    keep_outcome: bool


class PrefsApiHook(BaseHook):
    """Base of both service hooks: connection parsing, secret masking, one client, resources to patch.

    Subclasses describe their service (connection fields, headers, token source, patch rules) and
    their resources (:class:`ResourceDescription`); :meth:`resource` binds a description to the
    client for the patch engine. All I/O goes through
    :class:`~airflow_provider_prefs.transport.client.ApiClient`.
    """

    conn_name_attr: ClassVar[str] = "conn_id"
    conn_type: ClassVar[str]
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
    def extras(self) -> ConnectionExtras:
        """The connection's extras, checked against what this connection type declares."""
        return ConnectionExtras(self.conn_id, self.conn_type, self.connection.extra_dejson)

    @cached_property
    def transport(self) -> TransportSettings:
        """Timeouts, retries and TLS from the connection extras, with operator overrides on top."""
        return parse_transport(self.extras, self.transport_overrides)

    @cached_property
    def client(self) -> ApiClient:
        """The one client (and ``httpx.Client`` connection pool) every call of this hook goes through."""
        from airflow_provider_prefs.transport.client import ApiClient

        parts = (self.transport, self.base_headers(), self.token_provider(), self.status_hints())
        # Bulk threads may all ask first, and cached_property has no lock since Python 3.12: two clients
        # would mean two 429 gates.
        with _CLIENT_LOCK:
            if "client" not in self.__dict__:
                self.__dict__["client"] = ApiClient(*parts)
            return self.__dict__["client"]

    def get_conn(self) -> ApiClient:
        """The configured :class:`~airflow_provider_prefs.transport.client.ApiClient`: the escape hatch every
        Airflow hook has, for a call this hook has no method for.

        It is :attr:`client` itself, the one every call of this hook goes through: same token, connection
        pool, retries, timeouts, TLS settings and 429 gate. Send requests with
        ``hook.get_conn().send(ApiRequest("GET", url, action="GET <what>"))``; the answer is the parsed JSON.
        """
        return self.client

    def base_headers(self) -> dict[str, str]:
        """Headers sent on every call of this service (besides ``Authorization``)."""
        return {"Accept": "application/json"}

    def token_provider(self) -> TokenProvider:
        """Where the bearer token comes from."""
        raise NotImplementedError

    def status_hints(self) -> dict[int, str]:
        """Per HTTP status (401, 403, 404), which fields of this hook's Airflow connection to check."""
        raise NotImplementedError

    def close(self) -> None:
        """Release pooled connections (a later call opens new ones)."""
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()

    def send(self, request: ApiRequest) -> Any:
        """Send one request through the shared client (retries included); returns the answer's JSON."""
        return self.client.send(request)

    def resource(self, described: ResourceDescription) -> Resource:
        """The resource a service hook described, bound to this hook's client, for the patch engine.

        Its ``send`` is the client's own, so a PATCH goes from the change flow
        (:mod:`~airflow_provider_prefs.patching.changes`) straight to the transport.
        """
        from airflow_provider_prefs.patching.changes import Resource

        client = self.client
        return Resource(
            target=described.target,
            rules=self.patch_rules,
            # Built when read: most bulk items are never read (an idempotent patch needs no guard).
            read=lambda: dict(client.send(described.request("GET"))),
            patch_request=lambda ops: described.request("PATCH", ops),
            send=client.send,
            summarize=described.summarize,
            version_key=self.version_key,
            max_resends=self.transport.max_attempts - 1,
            max_request_bytes=self.transport.max_request_bytes,
            asset_uri=described.asset_uri,
            patch_answers_document=described.patch_answers_document,
            key=described.key or (type(self).__name__, described.url, *sorted(described.params.items())),
        )

    def change(self, resource: Resource, **options: Unpack[ChangeOptions]) -> ChangeOutcome:
        """Change one resource, exactly once: the path of every change (operators and bulk runs included).

        Give ``patch`` (a JSON Patch, or its JSON text) or ``desired`` (the fields you want: the minimal
        guarded patch is planned from a read, and nothing is sent when the resource already matches);
        the other options are described on :class:`ChangeOptions`. Everything checkable without the
        resource is checked before any request. A patch whose second copy could apply twice is guarded
        with ``test`` ops; a lost answer is judged by a re-read, and the patch resent only when a second
        copy cannot apply twice; when someone else changed the resource first, the change is planned
        again on a fresh read, unless it no longer applies.

        :raises PrefsError: a subclass saying what was wrong (bad input, 4xx, conflict, an outcome that
            cannot be told); nothing was applied unless the message says otherwise.
        """
        from airflow_provider_prefs.patching.changes import Change

        wanted = Change(
            patch=options.get("patch"),
            desired=options.get("desired"),
            allow_type_changes=options.get("allow_type_changes", False),
        )
        return self.carry(
            resource,
            wanted,
            checkpoint=options.get("checkpoint"),
            dry_run=options.get("dry_run", False),
            keep_outcome=options.get("keep_outcome", True),
            base=options.get("base"),
        ).outcome

    def carry(
        self,
        resource: Resource,
        change: Change,
        *,
        checkpoint: Checkpoint | None = None,
        dry_run: bool = False,
        keep_outcome: bool = False,
        base: dict[str, Any] | None = None,
        pin_all: bool = False,
    ) -> Carried:
        """:meth:`change`, for callers that also need the document as the change left it.

        Applies the checkpoint policy (:mod:`~airflow_provider_prefs.patching.checkpoint`): an outcome
        recorded by an earlier try is returned as it is; operations it recorded are re-judged, never
        planned anew; new operations are recorded before they are sent; a refused change's record is
        forgotten. ``pin_all`` guards idempotent operations too (a later change of the resource follows).
        """
        from airflow_provider_prefs.patching.changes import settle

        return settle(
            self.carry_steps(
                resource,
                change,
                checkpoint=checkpoint,
                dry_run=dry_run,
                keep_outcome=keep_outcome,
                base=base,
                pin_all=pin_all,
            )
        )

    def carry_steps(
        self,
        resource: Resource,
        change: Change,
        *,
        checkpoint: Checkpoint | None = None,
        dry_run: bool = False,
        keep_outcome: bool = False,
        base: dict[str, Any] | None = None,
        pin_all: bool = False,
    ) -> Generator[PendingRecord, None, Carried]:
        """:meth:`carry` as steps: yields each record its checkpoint has not stored yet, and sends only
        once resumed (see :func:`~airflow_provider_prefs.patching.changes.carry_steps`). The bulk runner
        drives it, so that no thread waits for the store while others could send."""
        from airflow_provider_prefs.patching.changes import Carried, PlannedChange, carry_steps
        from airflow_provider_prefs.patching.checkpoint import (
            CHANGE_KEY,
            NO_CHECKPOINT,
            intent_record,
            outcome_record,
            own_record,
            planned_from_intent,
            recorded_outcome,
            settle_failure,
        )

        memory = checkpoint if checkpoint is not None and checkpoint.available else NO_CHECKPOINT
        record = own_record(memory.get(CHANGE_KEY), resource, self.log) if memory.available else None
        recorded = recorded_outcome(record)
        if recorded is not None:
            self.log.info(
                "%s: an earlier try already got its answer (%s); not sending again", resource.target, recorded.status
            )
            return Carried(recorded.model_copy(update={"asset_uri": resource.asset_uri}))

        def keep_intent(planned: PlannedChange) -> PendingRecord | None:
            return memory.set(CHANGE_KEY, intent_record(resource, planned))

        try:
            carried = yield from carry_steps(
                resource,
                change,
                recorded=planned_from_intent(record),
                record=keep_intent if memory.available else None,
                base=base,
                pin_all=pin_all,
                dry_run=dry_run,
                log=self.log,
            )
        except PrefsError as exc:
            settle_failure(memory, exc)
            raise
        outcome = carried.outcome.model_copy(update={"asset_uri": resource.asset_uri})
        if keep_outcome and outcome.status != "dry_run":
            memory.set(CHANGE_KEY, outcome_record(resource, outcome))
        return Carried(outcome, carried.document, carried.sent)

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


def missing_connection_message(conn_id: str, hook_class: type[PrefsApiHook]) -> str:
    """What to do when a connection is not defined (the same text on workers and in the triggerer)."""
    return (
        f"Airflow connection {conn_id!r} is not defined here: create it in the UI (Admin > Connections, "
        f"type {getattr(hook_class, 'conn_type', '?')!r}) or set AIRFLOW_CONN_{conn_id.upper()}; a triggerer "
        "and each worker need it in their own environment or secrets backend"
    )


def _is_missing(exc: BaseException) -> bool:
    return type(exc).__name__ == "AirflowNotFoundException" or "isn't defined" in str(exc)


def check_connection(conn: Any, conn_id: str, hook_class: type[PrefsApiHook]) -> Any:
    """Refuse a connection of another type (its extras mean something else), then mask its secrets."""
    expected = getattr(hook_class, "conn_type", None)
    actual = getattr(conn, "conn_type", None)
    if expected and actual and actual.replace("-", "_") != expected:
        raise ConfigurationError(
            f"Airflow connection {conn_id!r} has type {actual!r}, but {hook_class.__name__} needs type "
            f"{expected!r}: change its Connection Type, or pass the id of a {expected!r} connection"
        )
    mask_connection(conn)
    return conn


def load_connection(conn_id: str, hook_class: type[PrefsApiHook]) -> Any:
    """Fetch a connection and mask its secrets; a missing one becomes a :class:`ConfigurationError`."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:
        if _is_missing(exc):
            raise ConfigurationError(missing_connection_message(conn_id, hook_class)) from None
        raise
    return check_connection(conn, conn_id, hook_class)


async def aload_connection(conn_id: str, hook_class: type[PrefsApiHook]) -> Any:
    """Async twin of :func:`load_connection` for triggers."""
    try:
        # common-compat picks the async lookup that does not deadlock on this Airflow version.
        conn = await get_async_connection(conn_id)
    except Exception as exc:
        if _is_missing(exc):
            raise ConfigurationError(missing_connection_message(conn_id, hook_class)) from None
        raise
    # Masking reaches the supervisor and parses the extras: off the event loop, as common-compat's own
    # lookup does with the synchronous parts of a connection fetch.
    return await asyncio.to_thread(check_connection, conn, conn_id, hook_class)


SECRET_EXTRA_KEYS = frozenset({"client_secret", "token", "access_token", "api_key", "password", "proxy"})


def mask_connection(conn: Any) -> None:
    """Register the password and secret-looking extras with Airflow's secrets masker (once per value)."""
    mask_secret(conn.password)
    extras = conn.extra_dejson
    if isinstance(extras, Mapping):
        for key, value in extras.items():
            if key in SECRET_EXTRA_KEYS and isinstance(value, str):
                mask_secret(value)
        proxy = extras.get("proxy")
        if isinstance(proxy, str):  # its password alone, too: httpx and proxies quote it without the URL around it
            with contextlib.suppress(ValueError):
                mask_secret(urlsplit(proxy).password)

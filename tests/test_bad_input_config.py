"""Bad-input corpus, connections and configuration: every way a connection can be wrong.

One row per mistake a user can make in an Airflow connection of either type (missing, empty or
wrongly typed fields, typos in extras, bad URLs, a bad environment, wrong credentials, wrong org,
sandbox or client id), in ``test_connection()``, and in the sensor/trigger when the connection is
missing. Each row is checked by :func:`corpus.check`: error type, a message naming the field and the
fix, no secret, bounded size, and how many requests reached the sandbox (zero wherever avoidable).
The connection forms (``conn-fields``) are checked after the table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from corpus import BadInput, check, check_offline
from helpers import set_connection

from airflow_provider_prefs.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
)
from airflow_provider_prefs.hooks.mypreferences import MyPreferencesHook
from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook

BAD = "bad_conn"
ADOBE = "adobe_offer_library_default"
MP = "mypreferences_default"
MP_OAUTH = "mypreferences_oauth"
ADA = ("Ada@Example.com", "Email")


class ConnectionTestFailed(Exception):
    """``test_connection()`` returned ``(False, message)``: raised so the corpus can check the message."""


@dataclass(frozen=True)
class Row:
    """A corpus case plus the variant of a sandbox connection it runs against (as ``bad_conn``)."""

    case: BadInput
    #: The sandbox connection the variant starts from; None leaves ``bad_conn`` undefined.
    base: str | None = None
    #: Extras to set (``{url}`` is replaced by the sandbox URL) and extras to drop.
    extra: dict[str, Any] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    #: Connection fields to override (host, login, password, conn_type).
    fields: dict[str, Any] = field(default_factory=dict)


def failing_test(hook: Any) -> None:
    """Run Airflow's connection test; a failure becomes an exception carrying its message."""
    ok, message = hook.test_connection()
    if not ok:
        raise ConnectionTestFailed(message)


def offer(_: Any) -> Any:
    return OfferLibraryHook(BAD).get_offer("fallbackOffer1234")


def profile(_: Any) -> Any:
    return MyPreferencesHook(BAD).get_profile(*ADA)


def offer_test(_: Any) -> Any:
    return failing_test(OfferLibraryHook(BAD))


def profile_test(_: Any) -> Any:
    return failing_test(MyPreferencesHook(BAD))


def sensor_poke(_: Any) -> Any:
    from airflow_provider_prefs.sensors import ProfileUpdateStatusSensor

    task = ProfileUpdateStatusSensor(task_id="wait", conn_id=BAD, alternate_id=ADA[0], alternate_id_type=ADA[1])
    return task.poke({})


def trigger_wait(_: Any) -> Any:
    """The triggerer's path: the error event, turned into the task failure ``execute_complete`` raises."""
    import time

    from airflow_provider_prefs.triggers.profile_status import ProfileUpdateStatusTrigger, summary_from_event

    trigger = ProfileUpdateStatusTrigger(
        conn_id=BAD, alternate_id=ADA[0], alternate_id_type=ADA[1], deadline=time.time() + 30, poll_interval=0.1
    )
    return summary_from_event(asyncio.run(trigger.wait()))


def with_override(hook_class: type[Any], **overrides: Any) -> Callable[[Any], Any]:
    def act(_: Any) -> Any:
        hook = hook_class(BAD, transport_overrides=overrides)
        return hook.transport

    return act


def case(
    id: str,
    act: Callable[[Any], Any],
    error: Any,
    mentions: tuple[str, ...],
    requests: int | None = 0,
    base: str | None = None,
    **variant: Any,
) -> Row:
    """One row: ``variant`` holds ``extra``, ``drop`` and ``fields`` of the connection."""
    return Row(BadInput(id, act, error, mentions, requests), base, **variant)


FIX = "connection 'bad_conn'"  # every configuration message names the connection to edit
CONFIG = ConfigurationError

ROWS: list[Row] = [
    # ---- Adobe Offer Library connection -------------------------------------------------------
    case("adobe-missing-connection", offer, CONFIG, ("'bad_conn'", "AIRFLOW_CONN_BAD_CONN", "adobe_offer_library")),
    case("adobe-wrong-conn-type", offer, CONFIG, (FIX, "'mypreferences'", "adobe_offer_library"), base=MP),
    case("adobe-empty-login", offer, CONFIG, (FIX, "login (client id)", "required"), base=ADOBE, fields={"login": ""}),
    case("adobe-empty-password", offer, CONFIG, (FIX, "password"), base=ADOBE, fields={"password": ""}),
    case("adobe-no-org", offer, CONFIG, (FIX, "ims_org_id", "required"), base=ADOBE, drop=("ims_org_id",)),
    case("adobe-no-sandbox", offer, CONFIG, (FIX, "sandbox_name"), base=ADOBE, drop=("sandbox_name",)),
    case("adobe-empty-sandbox", offer, CONFIG, (FIX, "sandbox_name"), base=ADOBE, extra={"sandbox_name": ""}),
    case("adobe-sandbox-wrong-type", offer, CONFIG, (FIX, "sandbox_name"), base=ADOBE, extra={"sandbox_name": 7}),
    case(
        "adobe-typo-timout",
        offer,
        CONFIG,
        (FIX, "'timout'", "did you mean 'timeout'", "valid extras", "max_attempts"),
        base=ADOBE,
        extra={"timout": 5},
    ),
    case(
        "adobe-typo-sandbox",
        offer,
        CONFIG,
        (FIX, "'sandbox'", "sandbox_name", "valid extras"),
        base=ADOBE,
        extra={"sandbox": "dev"},
    ),
    case(
        "adobe-foreign-extra",
        offer,
        CONFIG,
        (FIX, "'client_id'", "valid extras"),
        base=ADOBE,
        extra={"client_id": "DEMO"},
    ),
    case(
        "adobe-ui-masked-token-url",  # what the Airflow 3 form saved for the old extra name
        offer,
        CONFIG,
        ("ims_token_url", "ims_endpoint", "not an http(s) URL", "'***'", "enter the URL again"),
        base=ADOBE,
        drop=("ims_endpoint",),
        extra={"ims_token_url": "***"},
    ),
    case(
        "adobe-endpoint-no-scheme",
        offer,
        CONFIG,
        (FIX, "ims_endpoint", "not an http(s) URL"),
        base=ADOBE,
        extra={"ims_endpoint": "ims-na1.adobelogin.com/ims/token/v3"},
    ),
    case(
        "adobe-host-with-space",
        offer,
        CONFIG,
        (FIX, "host", "not an http(s) URL"),
        base=ADOBE,
        fields={"host": "https://platform adobe.io"},
    ),
    case(
        "adobe-host-ftp",
        offer,
        CONFIG,
        (FIX, "host", "http(s)"),
        base=ADOBE,
        fields={"host": "ftp://platform.adobe.io"},
    ),
    case("adobe-timeout-text", offer, CONFIG, (FIX, "'timeout'", "number"), base=ADOBE, extra={"timeout": "soon"}),
    case("adobe-timeout-zero", offer, CONFIG, (FIX, "'timeout'", "greater than 0"), base=ADOBE, extra={"timeout": 0}),
    case("adobe-attempts-zero", offer, CONFIG, (FIX, "'max_attempts'"), base=ADOBE, extra={"max_attempts": 0}),
    case("adobe-attempts-100", offer, CONFIG, (FIX, "'max_attempts'", "20"), base=ADOBE, extra={"max_attempts": 100}),
    case("adobe-verify-tls-maybe", offer, CONFIG, (FIX, "'verify_tls'"), base=ADOBE, extra={"verify_tls": "maybe"}),
    case("adobe-pool-negative", offer, CONFIG, (FIX, "'pool_size'"), base=ADOBE, extra={"pool_size": -1}),
    case(
        "adobe-override-typo",
        with_override(OfferLibraryHook, retries=3),
        CONFIG,
        ("'retries'", "max_attempts", "transport"),
        base=ADOBE,
    ),
    case(
        "adobe-wrong-secret",
        offer,
        AuthenticationError,
        (FIX, "password (client secret)", "login (client id)", "401"),
        requests=1,
        base=ADOBE,
        fields={"password": "not-the-secret"},
    ),
    case(
        "adobe-wrong-client-id",
        offer,
        AuthenticationError,
        (FIX, "login (client id)", "401"),
        requests=1,
        base=ADOBE,
        fields={"login": "nobody"},
    ),
    case(
        "adobe-wrong-org",
        offer,
        PermissionDeniedError,
        (FIX, "ims_org_id", "403"),
        requests=2,
        base=ADOBE,
        extra={"ims_org_id": "OTHER999@AdobeOrg"},
    ),
    case(
        "adobe-sandbox-no-access",
        offer,
        PermissionDeniedError,
        (FIX, "sandbox_name", "403"),
        requests=2,
        base=ADOBE,
        extra={"sandbox_name": "nosuch"},
    ),
    case(
        "adobe-offer-in-other-sandbox",
        offer,
        NotFoundError,
        (FIX, "sandbox_name", "'prod'", "404"),
        requests=2,
        base=ADOBE,
        extra={"sandbox_name": "prod"},
    ),
    case(
        "adobe-test-wrong-secret",
        offer_test,
        ConnectionTestFailed,
        (FIX, "password (client secret)"),
        requests=1,
        base=ADOBE,
        fields={"password": "not-the-secret"},
    ),
    case(
        "adobe-test-wrong-org",
        offer_test,
        ConnectionTestFailed,
        (FIX, "ims_org_id"),
        requests=2,
        base=ADOBE,
        extra={"ims_org_id": "OTHER999@AdobeOrg"},
    ),
    case(
        "adobe-test-bad-extra",
        offer_test,
        ConnectionTestFailed,
        (FIX, "'scope'", "did you mean 'scopes'"),
        base=ADOBE,
        extra={"scope": "openid"},
    ),
    # ---- MyPreferences connection -------------------------------------------------------------
    case("mp-missing-connection", profile, CONFIG, ("'bad_conn'", "AIRFLOW_CONN_BAD_CONN", "mypreferences")),
    case("mp-wrong-conn-type", profile, CONFIG, (FIX, "'adobe_offer_library'", "'mypreferences'"), base=ADOBE),
    case(
        "mp-environment-typo-no-host",
        profile,
        CONFIG,
        (FIX, "'prodution'", "valid environments: production, staging"),
        base=MP,
        fields={"host": None},
        extra={"environment": "prodution"},
    ),
    case(
        "mp-environment-typo-with-host",
        profile,
        CONFIG,
        (FIX, "'environment'", "'stagin'", "production, staging"),
        base=MP,
        extra={"environment": "stagin"},
    ),
    case(
        "mp-environment-wrong-type",
        profile,
        CONFIG,
        (FIX, "'environment'", "production, staging"),
        base=MP,
        extra={"environment": 1},
    ),
    case("mp-no-client-id", profile, CONFIG, (FIX, "'client_id'", "required"), base=MP, drop=("client_id",)),
    case("mp-empty-client-id", profile, CONFIG, (FIX, "'client_id'", "required"), base=MP, extra={"client_id": ""}),
    case("mp-empty-token", profile, CONFIG, (FIX, "password"), base=MP, fields={"password": ""}),
    case(
        "mp-auth-type-basic",
        profile,
        CONFIG,
        (FIX, "'auth_type'", "bearer", "oauth"),
        base=MP,
        extra={"auth_type": "basic"},
    ),
    case(
        "mp-oauth-no-endpoint",
        profile,
        CONFIG,
        (FIX, "oauth_endpoint"),
        base=MP_OAUTH,
        drop=("oauth_endpoint",),
    ),
    case("mp-oauth-no-login", profile, CONFIG, (FIX, "login (oauth client id)"), base=MP_OAUTH, fields={"login": ""}),
    case(
        "mp-ui-masked-token-url",
        profile,
        CONFIG,
        ("token_url", "oauth_endpoint", "not an http(s) URL", "enter the URL again"),
        base=MP_OAUTH,
        drop=("oauth_endpoint",),
        extra={"token_url": "***"},
    ),
    case(
        "mp-endpoint-relative",
        profile,
        CONFIG,
        (FIX, "oauth_endpoint", "not an http(s) URL"),
        base=MP_OAUTH,
        extra={"oauth_endpoint": "/mypreferences/oauth/token"},
    ),
    case(
        "mp-profile-path-no-client-id",
        profile,
        CONFIG,
        (FIX, "profile_path", "{client_id}"),
        base=MP,
        extra={"profile_path": "/api/v4/profiles"},
    ),
    case(
        "mp-typo-timout",
        profile,
        CONFIG,
        (FIX, "'timout'", "did you mean 'timeout'", "valid extras", "environment"),
        base=MP,
        extra={"timout": 5},
    ),
    case("mp-typo-clientid", profile, CONFIG, (FIX, "'clientid'", "'client_id'"), base=MP, extra={"clientid": "DEMO"}),
    case(
        "mp-foreign-extra",
        profile,
        CONFIG,
        (FIX, "'ims_org_id'", "valid extras"),
        base=MP,
        extra={"ims_org_id": "DEMO123@AdobeOrg"},
    ),
    case(
        "mp-connect-timeout-negative",
        profile,
        CONFIG,
        (FIX, "'connect_timeout'"),
        base=MP,
        extra={"connect_timeout": -1},
    ),
    case(
        "mp-total-seconds-text",
        profile,
        CONFIG,
        (FIX, "'max_total_seconds'"),
        base=MP,
        extra={"max_total_seconds": "x"},
    ),
    case("mp-ca-bundle-number", profile, CONFIG, (FIX, "'ca_bundle'", "string"), base=MP, extra={"ca_bundle": 5}),
    case(
        "mp-override-typo",
        with_override(MyPreferencesHook, timout=1),
        CONFIG,
        ("'timout'", "timeout", "transport"),
        base=MP,
    ),
    case(
        "mp-wrong-token",
        profile,
        AuthenticationError,
        (FIX, "password (bearer token)", "401"),
        requests=1,
        base=MP,
        fields={"password": "not-a-token"},
    ),
    case(
        "mp-wrong-oauth-secret",
        profile,
        AuthenticationError,
        (FIX, "password (oauth client secret)", "login (oauth client id)", "401"),
        requests=1,
        base=MP_OAUTH,
        fields={"password": "not-the-secret"},
    ),
    case(
        "mp-other-account",
        profile,
        PermissionDeniedError,
        (FIX, "'client_id'", "'OTHER'", "403"),
        requests=1,
        base=MP,
        extra={"client_id": "OTHER"},
    ),
    case(
        "mp-unknown-client-id",
        profile,
        NotFoundError,
        (FIX, "DEMOX", "'client_id'", "404", "test connection tells which"),
        requests=1,
        base=MP,
        extra={"client_id": "DEMOX"},
    ),
    case(
        "mp-test-unknown-client-id",
        profile_test,
        ConnectionTestFailed,
        (FIX, "client id 'DEMOX' is unknown", "extra 'client_id'"),
        requests=2,
        base=MP,
        extra={"client_id": "DEMOX"},
    ),
    case(
        "mp-test-unknown-client-id-oauth",
        profile_test,
        ConnectionTestFailed,
        (FIX, "client id 'DEMOX' is unknown", "extra 'client_id'"),
        requests=3,
        base=MP_OAUTH,
        extra={"client_id": "DEMOX"},
    ),
    case(
        "mp-test-missing-test-profile",
        profile_test,
        ConnectionTestFailed,
        (FIX, "test_alternate_id", "not found", "client id 'DEMO' is known"),
        requests=2,
        base=MP,
        extra={"test_alternate_id": "nobody@example.com"},
    ),
    case(
        "mp-test-wrong-token",
        profile_test,
        ConnectionTestFailed,
        (FIX, "password (bearer token)"),
        requests=1,
        base=MP,
        fields={"password": "not-a-token"},
    ),
    case(
        "mp-test-environment-typo",
        profile_test,
        ConnectionTestFailed,
        (FIX, "'prodution'", "production, staging"),
        base=MP,
        fields={"host": None},
        extra={"environment": "prodution"},
    ),
    # ---- sensor and trigger ---------------------------------------------------------------------
    case("sensor-missing-connection", sensor_poke, AirflowFailException, ("'bad_conn'", "AIRFLOW_CONN_BAD_CONN")),
    case("trigger-missing-connection", trigger_wait, AirflowFailException, ("'bad_conn'", "AIRFLOW_CONN_BAD_CONN")),
    case(
        "trigger-environment-typo",
        trigger_wait,
        AirflowFailException,
        (FIX, "'prodution'", "production, staging"),
        base=MP,
        fields={"host": None},
        extra={"environment": "prodution"},
    ),
    case(
        "trigger-wrong-token",
        trigger_wait,
        AirflowFailException,
        (FIX, "password (bearer token)", "401"),
        requests=1,
        base=MP,
        fields={"password": "not-a-token"},
    ),
]


def define(row: Row, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Define ``bad_conn`` for ``row`` (or make sure it is undefined)."""
    monkeypatch.delenv(f"AIRFLOW_CONN_{BAD.upper()}", raising=False)
    if row.base is None:
        return
    extra = {key: value.format(url=url) if isinstance(value, str) else value for key, value in row.extra.items()}
    set_connection(monkeypatch, BAD, url, base=row.base, extra=extra, drop_extra=row.drop, **row.fields)


@pytest.mark.parametrize("row", ROWS, ids=[row.case.id for row in ROWS])
def test_bad_connection(row: Row, connections: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    define(row, connections.url, monkeypatch)
    check(row.case, connections)


#: The rows judged on the worker, without asking either service.
FREE = [row for row in ROWS if row.case.requests == 0]


@pytest.mark.parametrize("row", FREE, ids=[row.case.id for row in FREE])
def test_a_connection_mistake_judged_on_the_worker_needs_no_network(
    row: Row, connections: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused as well with the network cut: no lookup, no connection, nothing sent on a pooled one."""
    define(row, connections.url, monkeypatch)
    check_offline(row.case, connections)

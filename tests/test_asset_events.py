"""Asset events: every operator emits one per changed asset through its alias, and none when nothing changed."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_prefs.assets import (
    OFFER_CHANGES_ALIAS,
    PROFILE_CHANGES_ALIAS,
    ChangedAssets,
    offer_asset_uri,
    profiles_asset_uri,
)
from airflow_provider_prefs.hooks.offer_library import OfferLibraryHook
from airflow_provider_prefs.operators import (
    BulkFallbackOfferPatchOperator,
    BulkProfilePatchOperator,
    FallbackOfferPatchOperator,
    ProfilePatchOperator,
)
from airflow_provider_prefs.sandbox.connections import ADOBE_IMS_ORG, MP_CLIENT_ID

OFFER = "fallbackOffer1234"
OFFER_URI = "adobe-offer://DEMO123%40AdobeOrg/dev/fallbackOffer1234"
EMAIL_URI = "mypreferences://DEMO/email"
RENAME = [{"op": "replace", "path": "/name", "value": "Renamed by the asset test"}]
CUSTOMER = [{"op": "replace", "path": "/CustomerType", "value": "Marketing"}]
EMAILS = ["Ada@Example.com", "grace@example.com", "ALAN@EXAMPLE.COM"]


def run(operator: Any) -> tuple[Any, dict[str, list[str]]]:
    """Execute ``operator`` with real outlet-event accessors; return its result and the URIs per alias."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    events = OutletEventAccessors()
    result = operator.execute({"outlet_events": events})
    return result, emitted(events)


def emitted(events: Any) -> dict[str, list[str]]:
    """Alias name -> URIs of the asset events added to it."""
    from airflow.sdk import AssetAlias

    found: dict[str, list[str]] = {}
    for key in events:
        if isinstance(key, AssetAlias):
            found[key.name] = [e.dest_asset_key.uri for e in events[key].asset_alias_events]
    return {name: uris for name, uris in found.items() if uris}


def test_the_uris_are_those_an_asset_scheduled_dag_names() -> None:
    # The e2e example DAG is scheduled on this literal URI: the builder must produce exactly it.
    assert offer_asset_uri(ADOBE_IMS_ORG, "dev", OFFER) == OFFER_URI
    assert profiles_asset_uri(MP_CLIENT_ID, "Email") == EMAIL_URI


@pytest.mark.parametrize(
    ("operator", "alias"),
    [
        (FallbackOfferPatchOperator(task_id="o", offer_id=OFFER, patch=RENAME), OFFER_CHANGES_ALIAS),
        (ProfilePatchOperator(task_id="p", alternate_id="a", alternate_id_type="E", patch=[]), PROFILE_CHANGES_ALIAS),
        (BulkFallbackOfferPatchOperator(task_id="bo", items=[]), OFFER_CHANGES_ALIAS),
        (BulkProfilePatchOperator(task_id="bp", items=[], outlets=["user's own"]), PROFILE_CHANGES_ALIAS),
    ],
)
def test_every_operator_declares_its_alias_and_keeps_the_users_outlets(operator: Any, alias: str) -> None:
    from airflow.sdk import AssetAlias

    assert AssetAlias(name=alias) in operator.outlets
    if operator.task_id == "bp":
        assert "user's own" in operator.outlets


def test_an_applied_offer_patch_emits_the_offers_asset(connections: Any) -> None:
    result, events = run(FallbackOfferPatchOperator(task_id="o", offer_id=OFFER, patch=RENAME))
    assert result["status"] == "applied"
    assert events == {OFFER_CHANGES_ALIAS: [OFFER_URI]}


def test_no_event_for_an_unchanged_offer_or_a_dry_run(connections: Any) -> None:
    current = OfferLibraryHook().get_offer(OFFER)
    result, events = run(FallbackOfferPatchOperator(task_id="o", offer_id=OFFER, desired={"name": current["name"]}))
    assert (result["status"], events) == ("unchanged", {})
    result, events = run(FallbackOfferPatchOperator(task_id="o", offer_id=OFFER, patch=RENAME, dry_run=True))
    assert (result["status"], events) == ("dry_run", {})


def test_a_profile_patch_emits_the_accounts_id_type_never_the_person(connections: Any) -> None:
    operator = ProfilePatchOperator(task_id="p", alternate_id=EMAILS[0], alternate_id_type="Email", patch=CUSTOMER)
    result, events = run(operator)
    assert result["status"] == "applied"
    assert events == {PROFILE_CHANGES_ALIAS: [EMAIL_URI]}
    assert "example" not in repr(events).lower()


def test_a_profile_wait_resumed_from_the_triggerer_emits_again(connections: Any) -> None:
    """The deferring try's events are dropped with it: execute_complete must emit for the applied patch."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    operator = ProfilePatchOperator(task_id="p", alternate_id=EMAILS[0], alternate_id_type="Email", patch=CUSTOMER)
    events = OutletEventAccessors()
    outcome = {"status": "applied", "target": "profile Email:'Ada@Example.com'", "operations": 1}
    event = {"status": "success", "profile": {"ProfileId": 1, "UpdateStatus": "Complete"}}
    operator.execute_complete({"outlet_events": events}, event, outcome=outcome)
    assert emitted(events) == {PROFILE_CHANGES_ALIAS: [EMAIL_URI]}


def test_bulk_offers_emit_one_event_per_distinct_changed_offer(connections: Any) -> None:
    current = OfferLibraryHook().get_offer("fallbackOffer5678")
    items = [
        {"offer_id": OFFER, "patch": RENAME},
        {"offer_id": OFFER, "patch": [{"op": "replace", "path": "/name", "value": "Twice"}]},
        {"offer_id": "fallbackOffer5678", "desired": {"name": current["name"]}},  # unchanged: no event
        {"offer_id": "noSuchOffer", "patch": RENAME},  # failed: no event
    ]
    operator = BulkFallbackOfferPatchOperator(task_id="bo", items=items, max_concurrency=1, fail_on_error=False)
    result, events = run(operator)
    assert (result["applied"], result["unchanged"], result["failed"]) == (2, 1, 1)
    assert events == {OFFER_CHANGES_ALIAS: [OFFER_URI]}


def test_bulk_profiles_emit_one_event_per_account_and_id_type(connections: Any) -> None:
    items = [{"alternate_id": email, "patch": CUSTOMER} for email in EMAILS]
    result, events = run(BulkProfilePatchOperator(task_id="bp", items=items, alternate_id_type="Email"))
    assert result["applied"] == 3
    assert events == {PROFILE_CHANGES_ALIAS: [EMAIL_URI]}


def test_a_bulk_dry_run_emits_nothing(connections: Any) -> None:
    items = [{"alternate_id": email, "patch": CUSTOMER} for email in EMAILS]
    result, events = run(BulkProfilePatchOperator(task_id="bp", items=items, alternate_id_type="Email", dry_run=True))
    assert result["total"] == 3 and events == {}


def test_events_are_bounded_per_task(caplog: pytest.LogCaptureFixture) -> None:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    changed = ChangedAssets(limit=2)
    for n in [1, 2, 1, 3, 4, None]:
        changed.add(None if n is None else offer_asset_uri("O@AdobeOrg", "dev", f"o{n}"))
    events = OutletEventAccessors()
    with caplog.at_level(logging.INFO):
        changed.emit({"outlet_events": events}, OFFER_CHANGES_ALIAS, logging.getLogger("test"))
    assert [uri.rsplit("/", 1)[-1] for uri in emitted(events)[OFFER_CHANGES_ALIAS]] == ["o1", "o2"]
    assert "2 further change(s) got no event" in caplog.text
